package main

import (
	"strings"
	"testing"
	"time"

	"github.com/pgrotate/pgrotate/operator"
)

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{in: "", want: time.Time{}},
		{in: "90d", want: now.AddDate(0, 0, -90)},
		{in: "36h", want: now.Add(-36 * time.Hour)},
		{in: "2026-01-31", want: time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC)},
		{in: "2026-01-31T10:00:00+02:00", want: time.Date(2026, 1, 31, 8, 0, 0, 0, time.UTC)},
		{in: "-3d", bad: true},
		{in: "yesterday", bad: true},
		{in: "d", bad: true},
	}
	for _, tt := range tests {
		got, err := parseSince(tt.in, now)
		if (err != nil) != tt.bad || (!tt.bad && !got.Equal(tt.want)) {
			t.Errorf("parseSince(%q) = %v, %v; want %v (error: %v)", tt.in, got, err, tt.want, tt.bad)
		}
	}
}

// On a terminal each state gets a mark and its duration; failures are marked too.
func TestTTYLines(t *testing.T) {
	at := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		step operator.Step
		want string
	}{
		{operator.Step{Kind: operator.StepEntered, State: "Preflight", At: at}, "→ Preflight"},
		{operator.Step{Kind: operator.StepExited, State: "Preflight", At: at, Took: 1234 * time.Millisecond}, "✓ Preflight"},
		{operator.Step{Kind: operator.StepFailed, At: at, Error: "DatabaseUnavailable"}, "✗ failed: DatabaseUnavailable"},
		{operator.Step{Kind: operator.StepSucceeded, At: at}, "● execution succeeded"},
	}
	for _, tt := range tests {
		line := ttyLine(tt.step, "12:00:00")
		if !strings.Contains(line, tt.want) || !strings.HasPrefix(line, "  12:00:00") {
			t.Errorf("ttyLine(%+v) = %q, want it to contain %q", tt.step, line, tt.want)
		}
	}
	if line := ttyLine(tests[1].step, "12:00:00"); !strings.HasSuffix(line, "1.234s") {
		t.Errorf("exited line %q lacks the duration", line)
	}
}
