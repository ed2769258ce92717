package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pgrotate/pgrotate/internal/atomicfile"
	"github.com/pgrotate/pgrotate/local/backend"
	"github.com/pgrotate/pgrotate/operator"
	"github.com/pgrotate/pgrotate/operator/audit"
)

// NoEvidence: the deployment writes no evidence (no bucket tag) and --bucket was not given.
type NoEvidence struct{ Secret string }

func (e *NoEvidence) Error() string {
	return fmt.Sprintf("%s: the deployment writes no evidence (its rotation function has no %q tag); give --bucket", e.Secret, "pgrotate:evidence-bucket")
}

// evidenceSource reads the deployment's evidence bucket, or is nil when it has none.
func (c *clients) evidenceSource(d *operator.Deployment) operator.EvidenceSource {
	if d.EvidenceBucket == "" {
		return nil
	}
	return audit.Source{S3: c.s3, Bucket: d.EvidenceBucket, Prefix: d.EvidencePrefix}
}

func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newOpFlags("audit", "The compliance report of the secret's rotations, from the evidence records: each rotation,\nthe longest interval between successful rotations against the policy (--max-age), every\nfailure and how it was resolved. Exit 1 when the secret is not compliant.")
	var since, until, maxAge, format, out string
	f.fs.StringVar(&since, "since", "", "only rotations started since: a date (2026-01-31), an RFC 3339 time, or an age (365d)")
	f.fs.StringVar(&until, "until", "", "the report as of this date, time or age (default: now)")
	f.fs.StringVar(&maxAge, "max-age", "90d", "the policy: the longest allowed interval between successful rotations (90d, 2160h)")
	f.fs.StringVar(&format, "format", "table", "table, json, csv or html")
	f.fs.StringVar(&out, "o", "", "write the report to this file (default: stdout)")
	if code, ok := f.parse(args, stdout, stderr); !ok {
		return code
	}
	now := time.Now()
	opts, err := auditOptions(since, until, maxAge, now)
	if err == nil && f.json {
		format = "json"
	}
	if err == nil && !slices.Contains(audit.Formats, format) {
		err = &audit.UnknownFormat{Format: format}
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", f.fs.Name(), err)
		return exitUsage
	}
	c, err := f.clients(ctx)
	if err != nil {
		return opExit(ctx, err, stderr)
	}
	d, err := operator.Discover(ctx, c.sm, c.lam, f.secret, f.overrides)
	if err != nil {
		return opExit(ctx, err, stderr)
	}
	src := c.evidenceSource(d)
	if src == nil {
		fmt.Fprintf(stderr, "pgrotate: %v\n", &NoEvidence{Secret: d.SecretName})
		return exitNotFound
	}
	recs, err := src.Records(ctx, d.SecretARN)
	if err != nil {
		return opExit(ctx, fmt.Errorf("read the evidence of %s: %w", d.SecretARN, err), stderr)
	}
	rep := audit.Build(recs, opts)
	if rep.SecretARN == "" {
		rep.SecretARN = d.SecretARN
	}
	if err := writeReport(rep, format, out, stdout); err != nil {
		fmt.Fprintf(stderr, "pgrotate: %v\n", err)
		return exitFailed
	}
	if out != "" {
		fmt.Fprintf(stderr, "pgrotate: %s report of %d rotations written to %s\n", format, len(rep.Rotations), out)
	}
	if !rep.Compliant {
		fmt.Fprintf(stderr, "pgrotate: %s is not compliant with a maximum age of %s\n", d.SecretName, maxAge)
		return exitFailed
	}
	return exitOK
}

// demoAudit writes the HTML audit report of the demo's evidence, read back through the
// served S3 as pgrotate audit reads a deployment's bucket.
func demoAudit(ctx context.Context, served *backend.Served, path string, stderr io.Writer) error {
	recs, err := audit.Source{S3: served.S3(), Bucket: served.Bucket, Prefix: served.Prefix}.Records(ctx, served.Env.SecretARN)
	if err != nil {
		return fmt.Errorf("audit report: read the demo's evidence: %w", err)
	}
	rep := audit.Build(recs, audit.Options{})
	if err := writeReport(rep, "html", path, nil); err != nil {
		return fmt.Errorf("audit report: %w", err)
	}
	fmt.Fprintf(stderr, "pgrotate: audit report of %d rotations (%d evidence records) written to %s\n", len(rep.Rotations), len(recs), path)
	return nil
}

// auditOptions reads --since, --until and --max-age.
func auditOptions(since, until, maxAge string, now time.Time) (audit.Options, error) {
	o := audit.Options{Now: now}
	var err error
	if o.Since, err = parseSince(since, now); err != nil {
		return o, fmt.Errorf("--since %q: %w", since, err)
	}
	if o.Until, err = parseSince(until, now); err != nil {
		return o, fmt.Errorf("--until %q: %w", until, err)
	}
	if !o.Since.IsZero() && !o.Until.IsZero() && !o.Until.After(o.Since) {
		return o, fmt.Errorf("--until %s is not after --since %s", until, since)
	}
	if o.MaxAge, err = parseAge(maxAge); err != nil {
		return o, fmt.Errorf("--max-age %q: %w", maxAge, err)
	}
	return o, nil
}

// parseAge reads a positive age: a number of days (90d) or a Go duration (2160h).
func parseAge(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n > 0 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	} else if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return d, nil
	}
	return 0, errors.New("want a positive age: days (90d) or a duration (2160h)")
}

// writeReport renders the report and writes it to stdout, or to path (mode 0644, replaced
// whole: it is rendered first and renamed into place, so a failure leaves no half report).
func writeReport(rep *audit.Report, format, path string, stdout io.Writer) error {
	var buf bytes.Buffer
	if err := rep.Write(&buf, format); err != nil {
		return err
	}
	if path == "" {
		_, err := buf.WriteTo(stdout)
		return err
	}
	if err := atomicfile.Write(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write the report: %w", err)
	}
	return nil
}
