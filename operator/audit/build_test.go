package audit

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pgrotate/pgrotate/tasks/evidence"
)

func TestBuild(t *testing.T) {
	tests := []struct {
		name string
		recs []evidence.Record
		opts Options
		// rotations as "execution:outcome:runs", failures as "execution/run:resolution:resolvedBy"
		rotations, failures []string
		compliant           bool
		longest             time.Duration
		longestFrom         string // FromVersion → ToVersion of the longest interval
		longestTo           string
		intervals           int
		from                time.Time
	}{
		{
			name:      "all succeeded",
			recs:      []evidence.Record{ok("v1", 0), ok("v2", 30*day), ok("v3", 60*day)},
			opts:      Options{Now: at(80 * day)},
			rotations: []string{"v1:succeeded:1", "v2:succeeded:1", "v3:succeeded:1"},
			compliant: true, longest: 30 * day, longestFrom: "v1", longestTo: "v2", intervals: 3,
			from: at(-10 * time.Minute),
		},
		{
			name: "failed then redriven is one rotation",
			recs: []evidence.Record{
				ok("v1", 0),
				run("v2", 0, "FAILED", at(30*day), at(30*day+5*time.Minute), failedIn("CloneUser", "PrivilegeMismatch")),
				run("v2", 1, "SUCCEEDED", at(30*day), at(31*day)),
			},
			opts:      Options{Now: at(40 * day)},
			rotations: []string{"v1:succeeded:1", "v2:redriven:2"},
			failures:  []string{"v2/0:redriven:v2 run 1"},
			compliant: true, longest: 31 * day, longestFrom: "v1", longestTo: "v2", intervals: 2,
			from: at(-10 * time.Minute),
		},
		{
			name: "superseded by the next rotation",
			recs: []evidence.Record{
				ok("v1", 0),
				run("v2", 0, "ABORTED", at(30*day), at(30*day+time.Hour), failedIn("Promote", "RotationSuperseded")),
				ok("v3", 31*day),
			},
			opts:      Options{Now: at(40 * day)},
			rotations: []string{"v1:succeeded:1", "v2:superseded:1", "v3:succeeded:1"},
			failures:  []string{"v2/0:superseded:v3"},
			compliant: true, longest: 31 * day, longestFrom: "v1", longestTo: "v3", intervals: 2,
			from: at(-10 * time.Minute),
		},
		{
			name: "successor execution of the same version, past the redrive window",
			recs: []evidence.Record{
				ok("v1", 0),
				run("v2", 0, "FAILED", at(30*day), at(30*day+time.Hour), failedIn("CheckReplicas", "ReplicaNotReady")),
				ok("v2_2", 46*day),
			},
			opts:      Options{Now: at(50 * day)},
			rotations: []string{"v1:succeeded:1", "v2:superseded:1", "v2_2:succeeded:1"},
			failures:  []string{"v2/0:superseded:v2_2"},
			compliant: true, longest: 46 * day, longestFrom: "v1", longestTo: "v2", intervals: 2,
			from: at(-10 * time.Minute),
		},
		{
			name: "open failure",
			recs: []evidence.Record{
				ok("v1", 0),
				run("v2", 0, "FAILED", at(30*day), at(30*day+time.Hour), failedIn("SetPassword", "DatabaseUnavailable")),
				smFailure("sm-1", 30*day+2*time.Hour),
			},
			opts:      Options{Now: at(40 * day)},
			rotations: []string{"v1:succeeded:1", "v2:failed:1"},
			failures:  []string{"v2/0:open:", "/0:open:"},
			compliant: true, longest: 40*day + time.Minute, longestFrom: "v1", intervals: 1,
			from: at(-10 * time.Minute),
		},
		{
			name:      "gap over the policy",
			recs:      []evidence.Record{ok("v1", 0), ok("v2", 100*day)},
			opts:      Options{Now: at(110 * day)},
			rotations: []string{"v1:succeeded:1", "v2:succeeded:1"},
			compliant: false, longest: 100 * day, longestFrom: "v1", longestTo: "v2", intervals: 2,
			from: at(-10 * time.Minute),
		},
		{
			name:      "overdue since the last success",
			recs:      []evidence.Record{ok("v1", 0)},
			opts:      Options{Now: at(95 * day)},
			rotations: []string{"v1:succeeded:1"},
			compliant: false, longest: 95*day + time.Minute, longestFrom: "v1", intervals: 1,
			from: at(-10 * time.Minute),
		},
		{
			name:      "a policy of 30 days",
			recs:      []evidence.Record{ok("v1", 0), ok("v2", 45*day)},
			opts:      Options{Now: at(50 * day), MaxAge: 30 * day},
			rotations: []string{"v1:succeeded:1", "v2:succeeded:1"},
			compliant: false, longest: 45 * day, longestFrom: "v1", longestTo: "v2", intervals: 2,
			from: at(-10 * time.Minute),
		},
		{
			name: "since and until",
			recs: []evidence.Record{
				ok("v0", 0),
				run("x1", 0, "FAILED", at(10*day), at(10*day+time.Hour), failedIn("Preflight", "ServiceNotSteady")),
				ok("v30", 30*day), ok("v60", 60*day),
				smFailure("sm-after", 75*day), ok("v90", 90*day),
			},
			opts:      Options{Since: at(20 * day), Until: at(70 * day), Now: at(100 * day)},
			rotations: []string{"v30:succeeded:1", "v60:succeeded:1"},
			compliant: true, longest: 30 * day, longestFrom: "v0", longestTo: "v30", intervals: 3,
			from: at(20 * day),
		},
		{
			name: "a Secrets Manager failure resolved by the redrive",
			recs: []evidence.Record{
				run("v2", 0, "FAILED", at(30*day), at(30*day+time.Hour), failedIn("TestLogin", "LoginFailed")),
				smFailure("sm-2", 30*day+2*time.Hour),
				run("v2", 1, "SUCCEEDED", at(30*day), at(31*day)),
			},
			opts:      Options{Now: at(40 * day)},
			rotations: []string{"v2:redriven:2"},
			failures:  []string{"v2/0:redriven:v2 run 1", "/0:redriven:v2"},
			compliant: true, longest: 9*day + time.Minute, longestFrom: "v2", intervals: 1,
			from: at(30 * day),
		},
		{
			name:      "no evidence",
			opts:      Options{Since: at(0), Now: at(100 * day)},
			compliant: false, longest: 100 * day, intervals: 1,
			from: at(0),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Build(tc.recs, tc.opts)
			var rots, fails []string
			for _, rot := range r.Rotations {
				rots = append(rots, fmt.Sprintf("%s:%s:%d", rot.Execution, rot.Outcome, rot.Runs))
			}
			for _, f := range r.Failures {
				fails = append(fails, fmt.Sprintf("%s/%d:%s:%s", f.Execution, f.Run, f.Resolution, f.ResolvedBy))
			}
			if !slices.Equal(rots, tc.rotations) {
				t.Errorf("rotations %q, want %q", rots, tc.rotations)
			}
			if !slices.Equal(fails, tc.failures) {
				t.Errorf("failures %q, want %q", fails, tc.failures)
			}
			if r.Compliant != tc.compliant {
				t.Errorf("compliant %v, want %v", r.Compliant, tc.compliant)
			}
			if r.Longest == nil {
				t.Fatal("no longest interval")
			}
			if l := r.Longest; time.Duration(l.Length) != tc.longest || l.FromVersion != tc.longestFrom || l.ToVersion != tc.longestTo {
				t.Errorf("longest %s %q → %q, want %s %q → %q", l.Length, l.FromVersion, l.ToVersion, Seconds(tc.longest), tc.longestFrom, tc.longestTo)
			}
			if r.Longest.OverPolicy == tc.compliant {
				t.Errorf("longest over policy %v with compliant %v", r.Longest.OverPolicy, tc.compliant)
			}
			if len(r.Intervals) != tc.intervals {
				t.Errorf("%d intervals, want %d: %+v", len(r.Intervals), tc.intervals, r.Intervals)
			}
			if !r.From.Equal(tc.from) {
				t.Errorf("period from %v, want %v", r.From, tc.from)
			}
			wantUntil := tc.opts.Until
			if wantUntil.IsZero() {
				wantUntil = tc.opts.Now
			}
			if !r.Until.Equal(wantUntil) || r.SecretARN != secretOf(tc.recs) {
				t.Errorf("until %v secret %q", r.Until, r.SecretARN)
			}
		})
	}
}

func secretOf(recs []evidence.Record) string {
	if len(recs) == 0 {
		return ""
	}
	return testSecretARN
}

// A redriven rotation keeps the last run's facts: replicas, deployments, the promotion as
// its rotation time, and its duration from the start to the end of the last run.
func TestBuildMergesRuns(t *testing.T) {
	recs := []evidence.Record{
		run("v2", 0, "FAILED", at(0), at(time.Hour), failedIn("CheckReplicas", "ReplicaNotReady")),
		run("v2", 1, "SUCCEEDED", at(0), at(2*day)),
	}
	r := Build(recs, Options{Now: at(3 * day)})
	if len(r.Rotations) != 1 {
		t.Fatalf("%d rotations", len(r.Rotations))
	}
	rot := r.Rotations[0]
	if rot.Version != "v2" || rot.FromVersion != "prev-v2" || rot.Status != "SUCCEEDED" || time.Duration(rot.Duration) != 2*day ||
		rot.RotatedAt == nil || !rot.RotatedAt.Equal(at(2*day).Add(-time.Minute)) || len(rot.Replicas) != 1 || len(rot.Deployments) != 1 {
		t.Errorf("rotation %+v", rot)
	}
	f := r.Failures[0]
	if f.State != "CheckReplicas" || f.Error != "ReplicaNotReady" || !f.At.Equal(at(time.Hour)) || f.ResolvedAt == nil || !f.ResolvedAt.Equal(at(2*day)) {
		t.Errorf("failure %+v", f)
	}
	if time.Duration(r.MaxAge) != DefaultMaxAge {
		t.Errorf("policy %s", r.MaxAge)
	}
}
