package main

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/pgrotate/pgrotate/internal/testctx"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pgrotate/pgrotate/operator"
	"github.com/pgrotate/pgrotate/workflow"
)

// The operator commands run here through the real aws-sdk-go-v2 clients against the served
// local deployment (real state machine, real PostgreSQL primary+replica), found from the
// secret's name alone; every test ends with a scan of all output for every secret value.

func decode[T any](t *testing.T, out string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("the --json output does not decode: %v\n%s", err, out)
	}
	return v
}

func TestOperatorStatus(t *testing.T) {
	d := newDeployment(t, "op_status_user", nil)
	t.Cleanup(d.scan)
	d.rotate()
	name := d.secret()
	_, current, err := d.b.Secret(testctx.Context(t), workflow.StageCurrent)
	if err != nil {
		t.Fatal(err)
	}

	code, out, errOut := d.cli("status", name)
	if code != exitOK {
		t.Fatalf("status = %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitOK, out, errOut)
	}
	words := strings.Join(strings.Fields(out), " ")
	for _, want := range []string{"live user op_status_user_clone", "versions " + current + " ", "every 15 days", "SUCCEEDED", "prod/api:", "COMPLETED", "may rotate now yes"} {
		if !strings.Contains(words, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}

	code, out, errOut = d.cli("status", "--json", name)
	if code != exitOK {
		t.Fatalf("status --json = %d\n%s", code, errOut)
	}
	s := decode[operator.Status](t, out)
	switch {
	case s.LiveUser != "op_status_user_clone" || !s.MayRotate || !s.Preflight.Safe || s.Preflight.AlternateUser != "op_status_user":
		t.Errorf("status: live user %q, may rotate %v, preflight %+v", s.LiveUser, s.MayRotate, s.Preflight)
	case s.Versions[0].ID != current || !slices.Contains(s.Versions[0].Stages, workflow.StageCurrent):
		t.Errorf("versions %+v: want %s AWSCURRENT first", s.Versions, current)
	case s.LastRotation == nil || s.LastRotation.Status != "SUCCEEDED" || s.LastRotation.Version != current:
		t.Errorf("last rotation %+v, want the SUCCEEDED rotation to %s", s.LastRotation, current)
	case len(s.Services) != 1 || len(s.Services[0].Deployments) != 1 || s.Services[0].Deployments[0].RolloutState != workflow.RolloutCompleted:
		t.Errorf("services %+v, want prod/api with one COMPLETED deployment", s.Services)
	case s.Deployment.NextRotation == nil || s.Deployment.LastRotated == nil || !s.Deployment.NextRotation.After(*s.Deployment.LastRotated):
		t.Errorf("schedule: last %v, next %v", s.Deployment.LastRotated, s.Deployment.NextRotation)
	case len(s.Preflight.Checks) != 5:
		t.Errorf("preflight checks %+v, want secrets, two logins, sessions and the service", s.Preflight.Checks)
	}

	// A session of the alternate user: a rotation would change the password under it.
	held := d.holdAlternate()
	code, out, _ = d.cli("status", "--json", name)
	if code != exitFailed {
		t.Fatalf("status with a held session = %d, want %d", code, exitFailed)
	}
	s = decode[operator.Status](t, out)
	var failed []string
	for _, c := range s.Preflight.Checks {
		if !c.OK {
			failed = append(failed, c.Name+"/"+c.Error)
		}
	}
	if s.MayRotate || s.Preflight.Safe || !slices.Equal(failed, []string{"alternate-sessions/PendingUserInUse"}) || !strings.Contains(strings.Join(s.Reasons, "\n"), held) {
		t.Errorf("status with a session of %s: may rotate %v, failed checks %v, reasons %q", held, s.MayRotate, failed, s.Reasons)
	}
	code, out, _ = d.cli("status", name)
	if words := strings.Join(strings.Fields(out), " "); code != exitFailed || !strings.Contains(words, "may rotate now no") || !strings.Contains(words, "NOT alternate-sessions") {
		t.Errorf("status (text) with a held session = %d:\n%s", code, out)
	}
}

func TestOperatorRotateAndHistory(t *testing.T) {
	d := newDeployment(t, "op_rotate_user", nil)
	t.Cleanup(d.scan)
	name := d.secret()

	code, out, errOut := d.cli("rotate", name, "--follow", "--poll", "20ms")
	if code != exitOK {
		t.Fatalf("rotate --follow = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	// One line per state entered and exited, in order, then the outcome.
	var states []string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= 3 && (f[1] == "entered" || f[1] == "exited") {
			states = append(states, f[1]+" "+f[2])
		}
	}
	var want []string
	for _, s := range workflow.MainPath {
		want = append(want, "entered "+s, "exited "+s)
	}
	if !slices.Equal(states, want) || !strings.Contains(out, "succeeded") {
		t.Errorf("rotate --follow lines %q\nwant %q\n%s", states, want, out)
	}

	code, out, errOut = d.cli("rotate", "--json", "--follow", "--poll", "20ms", name)
	if code != exitOK {
		t.Fatalf("rotate --follow --json = %d\n%s", code, errOut)
	}
	o := decode[operator.Outcome](t, out)
	_, current, err := d.b.Secret(testctx.Context(t), workflow.StageCurrent)
	if err != nil {
		t.Fatal(err)
	}
	if !o.Succeeded() || o.Version != current {
		t.Errorf("outcome %+v, want SUCCEEDED for %s (now AWSCURRENT)", o, current)
	}

	code, out, _ = d.cli("history", name, "--json")
	if code != exitOK {
		t.Fatalf("history = %d", code)
	}
	rs := decode[[]operator.Rotation](t, out)
	if len(rs) != 2 || rs[0].Version != current || rs[0].FromUser != "op_rotate_user_clone" || rs[0].ToUser != "op_rotate_user" ||
		rs[1].FromUser != "op_rotate_user" || rs[1].ToUser != "op_rotate_user_clone" || rs[0].StartedAt.Before(*rs[1].StartedAt) {
		t.Errorf("history %+v: want 2 rotations, newest first, alternating users", rs)
	}
	for _, r := range rs {
		if r.Status != "SUCCEEDED" || r.Source != operator.SourceExecutions || r.Attempt != 1 {
			t.Errorf("rotation %+v", r)
		}
	}
	code, out, _ = d.cli("history", name)
	if code != exitOK || !strings.Contains(out, "STARTED") || strings.Count(out, "SUCCEEDED") != 2 {
		t.Errorf("history (text) = %d:\n%s", code, out)
	}
	for since, n := range map[string]int{"1h": 2, "2999-01-01": 0} {
		code, out, _ = d.cli("history", name, "--json", "--since", since)
		if got := decode[[]operator.Rotation](t, out); code != exitOK || len(got) != n {
			t.Errorf("history --since %s = %d, %d rotations; want %d", since, code, len(got), n)
		}
	}
}

func TestOperatorFailedRotationThenRedrive(t *testing.T) {
	var fail atomic.Bool
	fail.Store(true)
	d := newDeployment(t, "op_redrive_user", func() bool { return fail.Swap(false) })
	t.Cleanup(d.scan)
	name := d.secret()

	if code, out, errOut := d.cli("redrive", name); code != exitNoPending || !strings.Contains(errOut, "no version") {
		t.Errorf("redrive with nothing pending = %d, want %d\n%s%s", code, exitNoPending, out, errOut)
	}
	code, out, errOut := d.cli("rotate", name, "--follow", "--poll", "20ms")
	if code != exitFailed || !strings.Contains(out, "FAILED in SetPassword") {
		t.Fatalf("rotate --follow of a failing rotation = %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitFailed, out, errOut)
	}
	_, pending, err := d.b.Secret(testctx.Context(t), workflow.StagePending)
	if err != nil {
		t.Fatal(err)
	}
	code, out, _ = d.cli("status", name, "--json")
	if s := decode[operator.Status](t, out); code != exitFailed || s.MayRotate || s.LastRotation == nil || s.LastRotation.FailedState != workflow.StateSetPassword {
		t.Errorf("status after the failure = %d, may rotate %v, last %+v", code, s.MayRotate, s.LastRotation)
	}

	code, out, errOut = d.cli("redrive", name, "--follow", "--poll", "20ms")
	if code != exitOK || !strings.Contains(out, "resumes at SetPassword") || !strings.Contains(out, "succeeded") {
		t.Fatalf("redrive --follow = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if _, current, err := d.b.Secret(testctx.Context(t), workflow.StageCurrent); err != nil || current != pending {
		t.Errorf("AWSCURRENT is %s after the redrive, want the pending version %s (%v)", current, pending, err)
	}
	if code, _, errOut := d.cli("redrive", name); code != exitNoPending {
		t.Errorf("a second redrive = %d, want %d\n%s", code, exitNoPending, errOut)
	}
	code, out, _ = d.cli("history", name, "--json")
	if rs := decode[[]operator.Rotation](t, out); code != exitOK || len(rs) != 1 || rs[0].Status != "SUCCEEDED" || rs[0].Redrives != 1 || rs[0].Version != pending {
		t.Errorf("history after the redrive = %d, %+v", code, rs)
	}
}

func TestOperatorDiscoveryAndUsage(t *testing.T) {
	d := newDeployment(t, "op_usage_user", nil)
	t.Cleanup(d.scan)
	name := d.secret()
	tests := []struct {
		name string
		args []string
		want int
		says string
	}{
		{"unknown secret", []string{"status", "no-such-secret"}, exitNotFound, "not found"},
		{"unknown state machine", []string{"history", name, "--state-machine", "arn:aws:states:eu-west-1:000000000000:stateMachine:other"}, exitAWS, "StateMachineDoesNotExist"},
		{"unknown Preflight function", []string{"status", name, "--preflight-function", "nope"}, exitAWS, "ResourceNotFoundException"},
		{"no secret", []string{"status"}, exitUsage, "missing SECRET"},
		{"two secrets", []string{"status", name, "other"}, exitUsage, "unexpected argument"},
		{"bad --since", []string{"history", name, "--since", "yesterday"}, exitUsage, "--since"},
		{"wrong access key", []string{"status", name}, exitAWS, "UnrecognizedClientException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "wrong access key" {
				t.Setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNKEY000000")
			}
			code, _, errOut := d.cli(tt.args...)
			if code != tt.want || !strings.Contains(errOut, tt.says) {
				t.Errorf("pgrotate %v = %d (%q), want %d saying %q", tt.args, code, errOut, tt.want, tt.says)
			}
		})
	}
	// Interrupted (Ctrl-C cancels the context): 130, whatever the call in flight.
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	if code := run(cancelled, []string{"status", name}, &stdout, &stderr); code != exitInterrupted {
		t.Errorf("status with a cancelled context = %d, want %d (%s)", code, exitInterrupted, stderr.String())
	}
	code, out, _ := d.cli("status", "-h")
	if code != exitOK || !strings.Contains(out, "-state-machine") {
		t.Errorf("status -h = %d:\n%s", code, out)
	}
}
