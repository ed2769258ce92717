package rotator

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgrotate/pgrotate/internal/testctx"
	localsecrets "github.com/pgrotate/pgrotate/local/secrets"
	"github.com/pgrotate/pgrotate/workflow"
)

var mainPath = []string{workflow.StatePreflight, workflow.StateCloneUser, workflow.StateSetPassword,
	workflow.StateTestLogin, workflow.StateCheckReplicas, workflow.StatePromote}

// next returns the state after state on the main path (Redeploy after Promote).
func next(state string) string {
	for i, s := range mainPath {
		if s == state {
			if i+1 < len(mainPath) {
				return mainPath[i+1]
			}
			return workflow.StateRedeploy
		}
	}
	panic("not a main-path state: " + state)
}

// upTo returns the main path up to and including state.
func upTo(state string) []string {
	for i, s := range mainPath {
		if s == state {
			return mainPath[:i+1]
		}
	}
	panic("not a main-path state: " + state)
}

// runAsync runs the handler in a goroutine and returns a channel with its error.
func (f *fixture) runAsync(ctx context.Context, ev Event) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := f.handle(ctx, ev)
		done <- err
	}()
	return done
}

func await(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-testctx.Context(t).Done():
		t.Fatal("the handler did not return")
		return nil
	}
}

func TestWaitStepsReturnOnceTheirStateHasExited(t *testing.T) {
	tests := []struct {
		step, milestone string
	}{
		{StepSet, workflow.StateSetPassword},
		{StepTest, workflow.StateCheckReplicas},
		{StepFinish, workflow.StatePromote},
	}
	for _, tc := range tests {
		t.Run(tc.step, func(t *testing.T) {
			f := newFixture(t, Config{})
			f.createPending(tok)
			ctx := testctx.Context(t)

			var released atomic.Bool
			done := f.runAsync(ctx, f.event(tc.step, tok))
			go func() {
				path := upTo(tc.milestone)
				// Everything before the milestone, then the milestone's state entered but
				// not exited: the handler must keep waiting.
				f.sfn.pass(tok, path[:len(path)-1]...)
				f.sfn.stall(tok, tc.milestone)
				f.waitForPolls(tok, 3)
				released.Store(true)
				if tc.milestone == workflow.StatePromote {
					if _, err := f.r.Promote(ctx, f.arn, tok); err != nil {
						t.Errorf("promote: %v", err)
					}
				}
				// Exited alone proves nothing (a caught failure exits too): the milestone
				// counts once the next state is entered.
				f.sfn.pass(tok, tc.milestone)
				f.waitForPolls(tok, 2+len(f.sfn.callsWith("GetExecutionHistory "+tok)))
				f.sfn.stall(tok, next(tc.milestone))
			}()
			if err := await(t, done); err != nil {
				t.Fatalf("%s: %v", tc.step, err)
			}
			if !released.Load() {
				t.Fatalf("%s returned before %s exited", tc.step, tc.milestone)
			}
		})
	}
}

func TestWaitStepsReportTheFailedState(t *testing.T) {
	tests := []struct {
		name, step         string
		failIn, errName    string
		cause              string
		notifyingAwhile    bool // the execution sits in NotifyFailure (still RUNNING) for a while
		wantOK             bool // the step's milestone was passed before the failure
		wantErrMentionsAll []string
	}{
		{name: "setSecret, SetPassword rejected", step: StepSet, failIn: workflow.StateSetPassword, errName: "CredentialRejected",
			cause: "login as app_user_clone rejected"},
		{name: "setSecret, caught failure still notifying", step: StepSet, failIn: workflow.StateSetPassword, errName: "CredentialRejected",
			cause: "login as app_user_clone rejected", notifyingAwhile: true},
		{name: "setSecret, Preflight refused", step: StepSet, failIn: workflow.StatePreflight, errName: "ServiceNotSteady",
			cause: "2 deployments in progress"},
		{name: "setSecret after SetPassword, TestLogin failed later", step: StepSet, failIn: workflow.StateTestLogin, errName: "CredentialRejected",
			cause: "rejected", wantOK: true},
		{name: "testSecret, replicas never caught up", step: StepTest, failIn: workflow.StateCheckReplicas, errName: "ReplicaNotReady",
			cause: "replica-1 replayed 0/3000000", notifyingAwhile: true},
		{name: "finishSecret, Promote superseded", step: StepFinish, failIn: workflow.StatePromote, errName: "RotationSuperseded",
			cause: "the version is no longer AWSPENDING"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			f.createPending(tok)
			ctx := testctx.Context(t)

			done := f.runAsync(ctx, f.event(tc.step, tok))
			go func() {
				path := upTo(tc.failIn)
				f.sfn.pass(tok, path[:len(path)-1]...)
				f.waitForPolls(tok, 2)
				if tc.notifyingAwhile {
					f.sfn.catch(tok, tc.failIn, tc.errName)
					f.waitForPolls(tok, 4+len(f.sfn.callsWith("GetExecutionHistory "+tok)))
					f.sfn.end(tok, tc.errName, tc.cause)
					return
				}
				f.sfn.fail(tok, tc.failIn, tc.errName, tc.cause)
			}()
			err := await(t, done)
			if tc.wantOK {
				if err != nil {
					t.Fatalf("%s: %v (its milestone had passed)", tc.step, err)
				}
				return
			}
			wantErrContains(t, err, tok, tc.failIn, tc.errName, tc.cause)
		})
	}
}

func TestWaitStepsGiveUpBeforeTheDeadline(t *testing.T) {
	for _, step := range []string{StepSet, StepTest, StepFinish} {
		t.Run(step, func(t *testing.T) {
			f := newFixture(t, Config{PollInterval: 20 * time.Millisecond, DeadlineMargin: 150 * time.Millisecond})
			f.createPending(tok)
			f.sfn.pass(tok, workflow.StatePreflight)
			f.sfn.stall(tok, workflow.StateCloneUser)

			ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
			t.Cleanup(cancel)
			_, err := f.handle(ctx, f.event(step, tok))
			if ctx.Err() != nil {
				t.Fatalf("the handler returned only after the deadline (%v)", err)
			}
			wantErrContains(t, err, tok, "deadline", "Secrets Manager will retry")
			if polls := len(f.sfn.callsWith("GetExecutionHistory " + tok)); polls < 2 {
				t.Errorf("the handler gave up after %d history reads; it should poll until the margin", polls)
			}
		})
	}
}

func TestWaitStepsReturnAtOnceWhenAlreadyCurrent(t *testing.T) {
	for _, step := range []string{StepSet, StepTest, StepFinish} {
		t.Run(step, func(t *testing.T) {
			// A poll would sleep an hour, past the test's deadline: a step that would wait
			// fails at once ("before the Lambda deadline") instead of returning.
			f := newFixture(t, Config{PollInterval: time.Hour})
			f.createPending(tok)
			if _, err := f.r.Promote(context.Background(), f.arn, tok); err != nil {
				t.Fatal(err)
			}
			f.sfn.resetCalls()
			start := time.Now()
			f.mustHandle(f.event(step, tok))
			for _, c := range f.sfn.callLog() {
				if !strings.HasPrefix(c, "DescribeExecution") && !strings.HasPrefix(c, "GetExecutionHistory") {
					t.Errorf("%s changed the execution although the version is AWSCURRENT: %s", step, c)
				}
			}
			t.Logf("%s returned in %s", step, time.Since(start).Round(time.Millisecond))
		})
	}
}

func TestWaitStepsRefuse(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(f *fixture)
		step    string
		want    []string
	}{
		{
			name: "no execution",
			prepare: func(f *fixture) {
				f.putVersion(tok, f.appSecret(v1).Pending(workflow.NewPassword("Pend-Pw-0a1b2c3d4e5f6a7b8c9d")), workflow.StagePending)
			},
			step: StepSet, want: []string{tok, "createSecret has not started it"},
		},
		{
			name:    "token not pending",
			prepare: func(f *fixture) { f.createPending(tok); f.createPending(tok2) },
			step:    StepTest, want: []string{tok, "not AWSPENDING"},
		},
		{
			name: "succeeded without the milestone",
			prepare: func(f *fixture) {
				f.createPending(tok)
				f.sfn.pass(tok, workflow.StatePreflight)
				f.sfn.succeed(tok)
			},
			step: StepSet, want: []string{tok, "succeeded without passing", workflow.StateSetPassword},
		},
		{
			// The history says Promote exited, but AWSCURRENT is not on the token.
			name: "finishSecret with the token not AWSCURRENT",
			prepare: func(f *fixture) {
				f.createPending(tok)
				f.sfn.pass(tok, mainPath...)
				f.sfn.stall(tok, workflow.StateRedeploy)
			},
			step: StepFinish, want: []string{tok, "not AWSCURRENT"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			tc.prepare(f)
			ctx := testctx.Context(t)
			_, err := f.handle(ctx, f.event(tc.step, tok))
			wantErrContains(t, err, tc.want...)
			if n := len(f.sm.CallsOf(localsecrets.OpUpdateSecretVersionStage)); n != 0 {
				t.Errorf("%s moved a label", tc.step)
			}
		})
	}
}

// Every history read asks for no execution data (the fake panics otherwise); this checks
// that the reads happened at all, so the guard was exercised.
func TestHistoryIsReadWithoutData(t *testing.T) {
	f := newFixture(t, Config{})
	f.createPending(tok)
	f.sfn.pass(tok, mainPath[:3]...)
	f.sfn.stall(tok, workflow.StateTestLogin)
	f.mustHandle(f.event(StepSet, tok))
	if reads := f.sfn.callsWith("GetExecutionHistory " + tok); len(reads) < 4 {
		// The fake pages every 4 events: 19 events are 5 pages.
		t.Errorf("history read in %d pages; the reader does not follow NextToken", len(reads))
	}
}

// A redriven execution that fails again, elsewhere, is reported with its new failure; one
// that gets through is followed to the milestone.
func TestWaitStepsFollowARedrivenExecution(t *testing.T) {
	tests := []struct {
		name  string
		after func(f *fixture)
		want  []string // empty: setSecret succeeds
	}{
		{
			name: "fails again in SetPassword",
			after: func(f *fixture) {
				f.sfn.pass(tok, workflow.StateCloneUser)
				f.sfn.fail(tok, workflow.StateSetPassword, "CredentialRejected", "login as app_user_clone rejected")
			},
			want: []string{workflow.StateSetPassword, "CredentialRejected", "login as app_user_clone rejected"},
		},
		{
			name: "gets through",
			after: func(f *fixture) {
				f.sfn.pass(tok, workflow.StateCloneUser, workflow.StateSetPassword)
				f.sfn.stall(tok, workflow.StateTestLogin)
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			f.createPending(tok)
			f.sfn.pass(tok, workflow.StatePreflight)
			f.sfn.fail(tok, workflow.StateCloneUser, "PrivilegeMismatch", "privileges of app_user and app_user_clone differ")

			// Secrets Manager retries the rotation: createSecret redrives the execution.
			f.createPending(tok)
			if got := f.sfn.callsWith("RedriveExecution " + tok); len(got) != 1 {
				t.Fatalf("want one redrive, calls %v", f.sfn.callLog())
			}
			ctx := testctx.Context(t)
			done := f.runAsync(ctx, f.event(StepSet, tok))
			go func() {
				f.waitForPolls(tok, 2)
				tc.after(f)
			}()
			err := await(t, done)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("setSecret: %v", err)
				}
				return
			}
			wantErrContains(t, err, tc.want...)
			if strings.Contains(err.Error(), "PrivilegeMismatch") {
				t.Errorf("setSecret reports the failure before the redrive: %v", err)
			}
		})
	}
}
