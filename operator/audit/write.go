package audit

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/pgrotate/pgrotate/tasks/evidence"
)

// Formats are the formats Write renders.
var Formats = []string{"table", "json", "csv", "html"}

// UnknownFormat reports a format Write does not render; nothing is written.
type UnknownFormat struct{ Format string }

func (e *UnknownFormat) Error() string {
	return fmt.Sprintf("unknown report format %q: use one of %s", e.Format, strings.Join(Formats, ", "))
}

// Write renders the report in format (table, json, csv or html). The whole report is
// rendered before the first byte is written, so an error writes nothing.
func (r *Report) Write(w io.Writer, format string) error {
	var buf bytes.Buffer
	var err error
	switch format {
	case "table":
		err = r.writeTable(&buf)
	case "json":
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		err = enc.Encode(r)
	case "csv":
		err = r.writeCSV(&buf)
	case "html":
		err = r.writeHTML(&buf)
	default:
		return &UnknownFormat{Format: format}
	}
	if err != nil {
		return fmt.Errorf("render %s report: %w", format, err)
	}
	_, err = buf.WriteTo(w)
	return err
}

const timeLayout = "2006-01-02 15:04:05Z07:00"

func fmtTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func fmtTimePtr(t *time.Time) string {
	if t == nil {
		return ""
	}
	return fmtTime(*t)
}

// rfc3339 is a machine-readable time for CSV; "" for none.
func rfc3339(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func users(rot Rotation) string {
	if rot.FromUser == "" && rot.ToUser == "" {
		return ""
	}
	return rot.FromUser + " → " + rot.ToUser
}

func startedBy(s evidence.StartedBy) string {
	who := s.Principal
	if who == "" {
		who = s.InvokedBy
	}
	if who == "" {
		return s.Via
	}
	return s.Via + " (" + who + ")"
}

func replicas(rs []evidence.Replica) string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Host + ":" + strconv.Itoa(r.Port)
		if r.LSN != "" {
			out[i] += " @" + r.LSN
		}
	}
	return strings.Join(out, "; ")
}

func deployments(ds []evidence.Deployment) string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Cluster + "/" + d.Service
		if d.DeploymentID != "" {
			out[i] += " " + d.DeploymentID
		}
		if d.RolloutState != "" {
			out[i] += " " + d.RolloutState
		}
		out[i] += taskCounts(d)
	}
	return strings.Join(out, "; ")
}

// taskCounts is " running/desired tasks" at the deployment's last check, or "" when the
// record has none (records written before the counts were).
func taskCounts(d evidence.Deployment) string {
	if d.DesiredCount == 0 && d.RunningCount == 0 {
		return ""
	}
	return fmt.Sprintf(" %d/%d tasks", d.RunningCount, d.DesiredCount)
}

// failuresOf lists a rotation's failures as "run N STATE: ERROR".
func (r *Report) failuresOf(rot Rotation) string {
	var out []string
	for _, f := range r.Failures {
		if f.Kind == evidence.KindExecution && f.Execution == rot.Execution {
			out = append(out, fmt.Sprintf("run %d %s: %s", f.Run, orDash(f.State), orDash(failureName(f))))
		}
	}
	return strings.Join(out, "; ")
}

// runOf is a failed run's number; "-" for a Secrets Manager event, which has none.
func runOf(f Failure) string {
	if f.Execution == "" {
		return "-"
	}
	return strconv.Itoa(int(f.Run))
}

// failureName is the error name, else the status (a Secrets Manager event, an abort).
func failureName(f Failure) string {
	if f.Error != "" {
		return f.Error
	}
	return f.Status
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (r *Report) policyLine() string {
	if r.Longest == nil {
		return "no interval"
	}
	l := r.Longest
	verdict := "within"
	if l.OverPolicy {
		verdict = "OVER"
	}
	to := orDash(l.ToVersion)
	if l.ToVersion == "" {
		to = "until " + fmtTime(l.To)
	}
	return fmt.Sprintf("%s (%s → %s), %s the policy of %s", l.Length, orDash(l.FromVersion), to, verdict, r.MaxAge)
}

// clean keeps a terminal table a table: control characters (escape sequences, tabs,
// newlines) in a field become spaces.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

func (r *Report) writeTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(cells ...string) {
		for i, c := range cells {
			cells[i] = clean(c)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	row("Secret", r.SecretARN)
	row("Period", fmtTime(r.From)+" → "+fmtTime(r.Until))
	row("Policy", "a successful rotation at least every "+r.MaxAge.String())
	row("Longest interval", r.policyLine())
	row("Compliant", yesNo(r.Compliant))
	if r.NextDue != nil {
		row("Next rotation due", fmtTime(*r.NextDue))
	}
	row("Rotations", fmt.Sprintf("%d, failures %d", len(r.Rotations), len(r.Failures)))
	row()
	if len(r.Rotations) == 0 {
		row("No rotation in the period.")
	} else {
		row("VERSION", "EXECUTION", "FROM → TO", "STARTED", "DURATION", "OUTCOME", "RUNS", "STARTED BY", "REPLICAS VERIFIED", "DEPLOYMENTS")
	}
	for _, rot := range r.Rotations {
		row(rot.Version, rot.Execution, users(rot), fmtTime(rot.StartedAt), rot.Duration.String(), rot.Outcome,
			strconv.Itoa(rot.Runs), startedBy(rot.StartedBy), orDash(replicas(rot.Replicas)), orDash(deployments(rot.Deployments)))
	}
	if len(r.Failures) > 0 {
		row()
		row("FAILED AT", "VERSION", "EXECUTION", "RUN", "STATE", "ERROR", "RESOLUTION", "RESOLVED BY", "RESOLVED AT")
		for _, f := range r.Failures {
			row(fmtTime(f.At), orDash(f.Version), orDash(f.Execution), runOf(f), orDash(f.State), failureName(f),
				f.Resolution, orDash(f.ResolvedBy), orDash(fmtTimePtr(f.ResolvedAt)))
		}
	}
	return tw.Flush()
}

// CSVHeader is the CSV's first row; one row per rotation follows.
var CSVHeader = []string{
	"version", "execution", "execution_arn", "from_version", "from_user", "to_user", "started_at", "ended_at",
	"duration_seconds", "rotated_at", "outcome", "status", "runs", "started_by", "replicas_verified", "deployments", "failures",
}

func (r *Report) writeCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	for _, rot := range r.Rotations {
		dur, _ := rot.Duration.MarshalJSON()
		end := rot.EndedAt
		if err := cw.Write([]string{
			rot.Version, rot.Execution, rot.ExecutionARN, rot.FromVersion, rot.FromUser, rot.ToUser, rfc3339(&rot.StartedAt),
			rfc3339(end), string(dur), rfc3339(rot.RotatedAt), rot.Outcome, rot.Status, strconv.Itoa(rot.Runs),
			startedBy(rot.StartedBy), replicas(rot.Replicas), deployments(rot.Deployments), r.failuresOf(rot),
		}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
