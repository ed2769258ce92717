// Package audit is the compliance report of pgrotate's rotation evidence (`pgrotate audit`):
// it reads the evidence records one secret has in the evidence bucket (Load), turns them
// into rotations, failures and the intervals between successful rotations measured against a
// maximum-age policy (Build), and renders that report as a terminal table, JSON, CSV or one
// self-contained HTML file with an inline SVG timeline (Report.Write).
//
// Everything the report prints is a field of an evidence record (tasks/evidence, schema
// pgrotate.evidence/v1), which holds references only, or a time or duration computed from
// them: never a secret value.
package audit
