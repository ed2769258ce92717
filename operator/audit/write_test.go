package audit

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgrotate/pgrotate/tasks/evidence"
)

// hostile is a field value a record could carry that each format must keep inert.
const hostile = `<script>alert("x")</script>, "quoted"` + "\n\x1b[31mred"

// sampleReport has every outcome and resolution, a gap over the policy, and a hostile
// cause and service name.
func sampleReport() *Report {
	redrive := run("v3", 1, "SUCCEEDED", at(130*day), at(131*day))
	redrive.Deployments = append(redrive.Deployments, evidence.Deployment{Cluster: "prod", Service: hostile, RolloutState: "COMPLETED"})
	recs := []evidence.Record{
		ok("v1", 0),
		ok("v2", 30*day),
		run("v3", 0, "FAILED", at(130*day), at(130*day+time.Hour), failedIn("CloneUser", "PrivilegeMismatch"), func(r *evidence.Record) { r.Outcome.Cause = hostile }),
		smFailure("sm-1", 130*day+2*time.Hour),
		redrive,
		run("v4", 0, "ABORTED", at(150*day), at(150*day+time.Hour), failedIn("Promote", "RotationSuperseded")),
		ok("v5", 151*day),
		run("v6", 0, "FAILED", at(170*day), at(170*day+time.Hour), failedIn("SetPassword", "DatabaseUnavailable")),
	}
	return Build(recs, Options{Now: at(180 * day)})
}

func TestSampleReport(t *testing.T) {
	r := sampleReport()
	var outcomes []string
	for _, rot := range r.Rotations {
		outcomes = append(outcomes, rot.Outcome)
	}
	if want := []string{"succeeded", "succeeded", "redriven", "superseded", "succeeded", "failed"}; !slices.Equal(outcomes, want) {
		t.Fatalf("outcomes %q, want %q", outcomes, want)
	}
	if r.Compliant || r.Longest == nil || r.Longest.FromVersion != "v2" || r.Longest.ToVersion != "v3" {
		t.Fatalf("compliance %v, longest %+v", r.Compliant, r.Longest)
	}
}

func TestWriteTable(t *testing.T) {
	r := sampleReport()
	var buf bytes.Buffer
	if err := r.Write(&buf, "table"); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{`(?m)^Compliant +no$`, `(?m)^Next rotation due +2026-08-29 23:59:00Z$`, `101d \(v2 → v3\), OVER the policy of 90d`,
		`prod/api ecs-svc/1 COMPLETED 4/4 tasks`,
		`(?m)^2026-06-20 01:00:00Z +v6 +v6 +0 +SetPassword +DatabaseUnavailable +open +- +-$`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.ContainsAny(out, "\x1b\t\r") {
		t.Error("table holds a control character of a field")
	}
	lines := strings.Split(out, "\n")
	header := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "VERSION") })
	if header < 0 {
		t.Fatalf("no rotation header:\n%s", out)
	}
	col := strings.Index(lines[header], "OUTCOME")
	for i, rot := range r.Rotations {
		line := lines[header+1+i]
		if !strings.HasPrefix(line, rot.Version+" ") || !strings.HasPrefix(line[col:], rot.Outcome) {
			t.Errorf("row %d %q: version %s, outcome %s not in the OUTCOME column", i, line, rot.Version, rot.Outcome)
		}
	}
}

func TestWriteJSON(t *testing.T) {
	r := sampleReport()
	var buf bytes.Buffer
	if err := r.Write(&buf, "json"); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&back, r) {
		t.Errorf("JSON does not round-trip:\n%s", buf.String())
	}
	// The documented field names (README.md, "Audit report").
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(buf.Bytes(), &fields); err != nil {
		t.Fatal(err)
	}
	want := []string{"compliant", "failures", "from", "generatedAt", "intervals", "longestInterval", "maxAgeSeconds", "nextDue", "rotations", "schema", "secretArn", "until"}
	if got := sortedKeys(fields); !slices.Equal(got, want) {
		t.Errorf("report fields %q, want %q", got, want)
	}
	if string(fields["maxAgeSeconds"]) != "7776000" || string(fields["schema"]) != `"pgrotate.audit/v1"` {
		t.Errorf("maxAgeSeconds %s, schema %s", fields["maxAgeSeconds"], fields["schema"])
	}
	var rots []map[string]json.RawMessage
	if err := json.Unmarshal(fields["rotations"], &rots); err != nil {
		t.Fatal(err)
	}
	wantRot := []string{"deployments", "durationSeconds", "endedAt", "execution", "executionArn", "fromUser", "fromVersion", "outcome",
		"replicas", "rotatedAt", "runs", "startedAt", "startedBy", "status", "toUser", "version"}
	if got := sortedKeys(rots[0]); !slices.Equal(got, wantRot) {
		t.Errorf("rotation fields %q, want %q", got, wantRot)
	}
}

func sortedKeys(m map[string]json.RawMessage) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestSecondsJSON(t *testing.T) {
	tests := []struct {
		d    time.Duration
		json string
	}{
		{90 * day, "7776000"}, {1500 * time.Millisecond, "1.5"}, {time.Nanosecond, "0.000000001"}, {-2 * time.Second, "-2"}, {0, "0"},
	}
	for _, tc := range tests {
		b, err := Seconds(tc.d).MarshalJSON()
		if err != nil || string(b) != tc.json {
			t.Errorf("%v: %s, %v; want %s", tc.d, b, err, tc.json)
		}
		var back Seconds
		if err := back.UnmarshalJSON(b); err != nil || time.Duration(back) != tc.d {
			t.Errorf("%s: read back %v, %v", b, time.Duration(back), err)
		}
	}
	for _, bad := range []string{`"1"`, "1e3", "1.0000000001", ""} {
		var s Seconds
		if err := s.UnmarshalJSON([]byte(bad)); err == nil {
			t.Errorf("%q read as %v", bad, time.Duration(s))
		}
	}
}

func TestSecondsString(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{90 * day, "90d"}, {101*day + 3*time.Hour + 5*time.Minute, "101d 3h"}, {time.Hour, "1h"}, {10 * time.Minute, "10m"},
		{4*time.Minute + 5*time.Second, "4m 5s"}, {1500 * time.Millisecond, "1.5s"}, {850 * time.Millisecond, "850ms"}, {-time.Hour, "-1h"},
	}
	for _, tc := range tests {
		if got := Seconds(tc.d).String(); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestWriteCSV(t *testing.T) {
	r := sampleReport()
	var buf bytes.Buffer
	if err := r.Write(&buf, "csv"); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatalf("CSV does not parse back: %v", err)
	}
	if !slices.Equal(rows[0], CSVHeader) || len(rows) != 1+len(r.Rotations) {
		t.Fatalf("header %q, %d rows for %d rotations", rows[0], len(rows), len(r.Rotations))
	}
	col := func(name string) int { return slices.Index(CSVHeader, name) }
	for i, rot := range r.Rotations {
		row := rows[i+1]
		started, err := time.Parse(time.RFC3339Nano, row[col("started_at")])
		var dur Seconds
		derr := dur.UnmarshalJSON([]byte(row[col("duration_seconds")]))
		if row[col("version")] != rot.Version || row[col("outcome")] != rot.Outcome || err != nil || !started.Equal(rot.StartedAt) ||
			derr != nil || dur != rot.Duration || row[col("deployments")] != deployments(rot.Deployments) {
			t.Errorf("row %d %q does not read back as %+v", i, row, rot)
		}
	}
	if redriven := rows[3]; !strings.Contains(redriven[col("deployments")], hostile) || redriven[col("failures")] != "run 0 CloneUser: PrivilegeMismatch" {
		t.Errorf("redriven row %q", redriven)
	}
}

func TestWriteUnknownFormat(t *testing.T) {
	for _, format := range []string{"", "xml", "HTML", "pdf"} {
		var buf bytes.Buffer
		err := sampleReport().Write(&buf, format)
		var e *UnknownFormat
		if !errors.As(err, &e) || e.Format != format || buf.Len() != 0 {
			t.Errorf("format %q: error %v, %d bytes written", format, err, buf.Len())
		}
	}
}

func TestWriteHTML(t *testing.T) {
	r := sampleReport()
	var buf bytes.Buffer
	if err := r.Write(&buf, "html"); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, rot := range r.Rotations {
		if !strings.Contains(page, ">"+rot.Version+"<") {
			t.Errorf("the page does not name version %s", rot.Version)
		}
	}
	if !strings.Contains(page, "prod/api COMPLETED 4/4 tasks") {
		t.Error("the page does not show the deployment's task counts")
	}
	if strings.Contains(page, "<script") || !strings.Contains(page, "&lt;script&gt;") {
		t.Error("a field reached the page unescaped")
	}
	for _, external := range []string{"http://", "https://", "//fonts", "@import", "url("} {
		if i := strings.Index(page, external); i >= 0 && !strings.HasPrefix(page[i:], "http://www.w3.org/2000/svg") {
			t.Errorf("the page refers to something outside it: %q", page[i:min(i+60, len(page))])
		}
	}
	if n := strings.Count(page, `<circle class="mark `); n != len(r.Rotations) {
		t.Errorf("%d rotation marks for %d rotations", n, len(r.Rotations))
	}
	if !strings.Contains(page, `class="overdue"`) || !strings.Contains(page, `id="compliant">No<`) {
		t.Error("the gap over the policy or the verdict is not drawn")
	}
}

// A secret without evidence: every format renders, and says there is nothing.
func TestWriteEmptyReport(t *testing.T) {
	r := Build(nil, Options{Now: at(0)})
	tests := []struct{ format, want string }{
		{"table", "No rotation in the period."},
		{"json", `"rotations": []`},
		{"csv", strings.Join(CSVHeader, ",") + "\n"},
		{"html", "No rotation in the period."},
	}
	for _, tc := range tests {
		t.Run(tc.format, func(t *testing.T) {
			var buf bytes.Buffer
			if err := r.Write(&buf, tc.format); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(buf.String(), tc.want) {
				t.Errorf("%s report lacks %q:\n%s", tc.format, tc.want, buf.String())
			}
		})
	}
}
