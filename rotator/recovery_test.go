package rotator

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgrotate/pgrotate/adapters/executions"
	"github.com/pgrotate/pgrotate/workflow"
)

// testClock is now plus an offset a test moves forward.
type testClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

const day = 24 * time.Hour

// TestFailedRotationPastTheRedriveWindow: a rotation failed before Promote and was not
// retried for 15 days. Step Functions no longer redrives it and the name stays taken, so
// createSecret starts a successor execution of the same version, which the waits follow.
func TestFailedRotationPastTheRedriveWindow(t *testing.T) {
	tests := []struct {
		name        string
		age         time.Duration
		wantRedrive bool
	}{
		{"13 days: redriven", 13 * day, true},
		{"15 days: a successor", 15 * day, false},
		{"89 days: a successor", 89 * day, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			clock := &testClock{}
			f.sfn.now = clock.now
			f.createPending(tok)
			f.sfn.pass(tok, workflow.StatePreflight)
			f.sfn.fail(tok, workflow.StateCloneUser, "PrivilegeMismatch", "privileges differ")
			clock.advance(tc.age)

			f.sfn.resetCalls()
			f.createPending(tok) // Secrets Manager retries the rotation with the same version
			succ := executions.AttemptName(tok, 2)
			if tc.wantRedrive {
				if len(f.sfn.callsWith("RedriveExecution "+tok)) != 1 || f.sfn.count() != 1 {
					t.Fatalf("calls %v, want the failed execution redriven", f.sfn.callLog())
				}
				return
			}
			if len(f.sfn.callsWith("StartExecution "+succ)) != 1 || f.sfn.status(succ) != "RUNNING" {
				t.Fatalf("calls %v, want the successor %s started", f.sfn.callLog(), succ)
			}
			in, _, _, _ := f.sfn.execution(succ)
			if in != f.input(tok) {
				t.Errorf("successor input %s, want %s", in, f.input(tok))
			}
			if !strings.Contains(f.logs.String(), "successor started") {
				t.Errorf("no log line says why: %s", f.logs.String())
			}

			// The waits follow the successor, which runs the rotation again from Preflight.
			done := f.runAsync(context.Background(), f.event(StepSet, tok))
			f.waitForPolls(succ, 1)
			f.sfn.pass(succ, upTo(workflow.StateTestLogin)...)
			if err := await(t, done); err != nil {
				t.Fatalf("setSecret: %v", err)
			}
			// A retried createSecret leaves the running successor alone.
			f.createPending(tok)
			if f.sfn.count() != 2 {
				t.Errorf("%d executions, want the failed one and its successor", f.sfn.count())
			}
		})
	}
}

// TestRotationStuck: when no successor can be started either, createSecret fails with a
// named error whose message is the one command that clears the rotation.
func TestRotationStuck(t *testing.T) {
	f := newFixture(t, Config{})
	clock := &testClock{}
	f.sfn.now = clock.now
	f.createPending(tok)
	f.sfn.fail(tok, workflow.StatePreflight, "ServiceNotSteady", "not steady")
	for n := 2; n <= executions.MaxAttempts; n++ {
		name := executions.AttemptName(tok, n)
		f.sfn.seed(name, f.input(tok))
		f.sfn.fail(name, workflow.StatePreflight, "ServiceNotSteady", "not steady")
	}
	clock.advance(20 * day)
	_, err := f.handle(context.Background(), f.event(StepCreate, tok))
	var stuck *RotationStuck
	if !errors.As(err, &stuck) {
		t.Fatalf("createSecret: %v, want RotationStuck", err)
	}
	wantErrContains(t, err, "aws secretsmanager update-secret-version-stage --secret-id "+f.arn+" --version-stage AWSPENDING --remove-from-version-id "+tok)
	if n := len(f.sfn.callsWith("StartExecution " + executions.AttemptName(tok, executions.MaxAttempts+1))); n != 0 {
		t.Errorf("started an attempt beyond the limit")
	}
}

// TestHostileClientRequestToken: a ClientRequestToken Step Functions would refuse as an
// execution name (RotateSecret takes any 32 to 64 characters) is mapped to a valid name;
// the rotation runs and the waits find it.
func TestHostileClientRequestToken(t *testing.T) {
	tests := []struct{ name, token string }{
		{"slashes, colons, spaces", "evil/token: with spaces & ${shell} ; rm -rf"},
		{"brackets and wildcards", "<script>[*?]{}</script>-0123456789abcdefgh"},
		{"quotes, hash, percent, backtick", "\"quoted\"#hash%percent`tick`|pipe~tilde^"},
		{"control characters", "tab\there-newline\nhere-0123456789abcdefghij"},
		{"sixty-four characters of unicode", strings.Repeat("é", 32)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			f.createPending(tc.token)
			name := executions.Name(tc.token)
			if name == tc.token || !validExecutionName(name) {
				t.Fatalf("execution name %q", name)
			}
			if got := f.sfn.callsWith("StartExecution "); len(got) != 1 || got[0] != "StartExecution "+name {
				t.Fatalf("StartExecution calls %v, want one named %s", got, name)
			}
			in, _, _, _ := f.sfn.execution(name)
			if in != f.input(tc.token) {
				t.Errorf("input %s, want the token itself in the state", in)
			}
			done := f.runAsync(context.Background(), f.event(StepSet, tc.token))
			f.waitForPolls(name, 1)
			f.sfn.pass(name, upTo(workflow.StateTestLogin)...)
			if err := await(t, done); err != nil {
				t.Fatalf("setSecret: %v", err)
			}
			// A second createSecret finds the running execution by its mapped name.
			f.createPending(tc.token)
			if f.sfn.count() != 1 {
				t.Errorf("%d executions, want 1", f.sfn.count())
			}
		})
	}
}
