package tasks

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/pgrotate/pgrotate/workflow"
)

// retireCall is one RetirePassword call: names and the grace, never the password.
type retireCall struct {
	Host, User     string
	Grace          time.Duration
	RightPassword  bool // the AWSPREVIOUS password (currentPW) was passed
	AdminCredsUsed bool
}

// fakeRetirer stands in for tasks/postgres (whose SQL is tested against PostgreSQL).
type fakeRetirer struct {
	mu      sync.Mutex
	calls   []retireCall
	until   time.Time
	skipped string
	err     error
}

func (f *fakeRetirer) RetirePassword(_ context.Context, admin workflow.Target, user string, pw workflow.Password, grace time.Duration) (time.Time, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, retireCall{Host: admin.Endpoint.Host, User: user, Grace: grace, RightPassword: pw.Reveal() == currentPW,
		AdminCredsUsed: admin.User == "dbadmin" && admin.Password.Reveal() == adminPW && admin.DBName == "app"})
	return f.until, f.skipped, f.err
}

func (f *fakeRetirer) callLog() []retireCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]retireCall(nil), f.calls...)
}

// redeployed is the state after Promote and a Redeploy that COMPLETED on every service,
// with retirement after an hour.
func (e *env) redeployed() workflow.State {
	e.t.Helper()
	st := e.preflighted()
	e.promote(tok)
	st.Promotion = &workflow.PromoteResult{PromotedAt: pendingAt}
	for _, svc := range st.Services {
		st.Rollouts = append(st.Rollouts, workflow.Rollout{SecretARN: st.SecretARN, Token: st.Token, Service: svc,
			PromotedAt: pendingAt, DeploymentID: "ecs-svc/1", RolloutState: "COMPLETED", Done: true, Checks: 1})
	}
	st.Retirement = &workflow.Retirement{After: "1h0m0s"}
	return st
}

func TestRetirePrevious(t *testing.T) {
	until := pendingAt.Add(2 * time.Hour)
	tests := []struct {
		name    string
		change  func(e *env, st *workflow.State, db *fakeRetirer)
		named   string // the named error expected; "" for success
		retired bool   // RetirePassword is called
		skipped string // part of Retirement.Skipped
	}{
		{name: "retires the AWSPREVIOUS user", retired: true},
		{name: "the adapter found nothing to do", retired: true, skipped: "already expired",
			change: func(_ *env, _ *workflow.State, db *fakeRetirer) { db.skipped = "the password is already expired" }},
		{name: "retirement off", named: "InvalidSecret",
			change: func(_ *env, st *workflow.State, _ *fakeRetirer) { st.Retirement.After = workflow.RetireOff }},
		{name: "no retirement in the state", named: "InvalidSecret",
			change: func(_ *env, st *workflow.State, _ *fakeRetirer) { st.Retirement = nil }},
		{name: "a rollout did not complete", named: "InvalidSecret",
			change: func(_ *env, st *workflow.State, _ *fakeRetirer) {
				st.Rollouts[1].RolloutState, st.Rollouts[1].Done = "FAILED", false
			}},
		{name: "a service has no rollout", named: "InvalidSecret",
			change: func(_ *env, st *workflow.State, _ *fakeRetirer) { st.Rollouts = st.Rollouts[:1] }},
		{name: "not preflighted", named: "InvalidSecret",
			change: func(_ *env, st *workflow.State, _ *fakeRetirer) { st.ActiveVersion = "" }},
		{name: "the version is not AWSCURRENT", skipped: "no longer AWSCURRENT",
			change: func(e *env, _ *workflow.State, _ *fakeRetirer) { e.promote(v1) }},
		{name: "a newer rotation began", skipped: "newer rotation",
			change: func(e *env, _ *workflow.State, _ *fakeRetirer) {
				e.putVersion(tok2, e.current().Pending(workflow.NewPassword(otherPW)), workflow.StagePending)
			}},
		{name: "AWSPREVIOUS is not the version replaced", skipped: "not the version this rotation replaced",
			change: func(e *env, st *workflow.State, _ *fakeRetirer) { st.ActiveVersion = manual }},
		{name: "AWSPREVIOUS names the AWSCURRENT user", named: "InvalidSecret",
			change: func(e *env, st *workflow.State, _ *fakeRetirer) {
				// A version set by hand with the current user, labelled AWSPREVIOUS.
				same := e.current().Pending(workflow.NewPassword(otherPW))
				e.putVersion(manual, same, "MANUAL")
				e.movePrevious(manual)
				st.ActiveVersion = manual
			}},
		{name: "the adapter fails", retired: true,
			change: func(_ *env, _ *workflow.State, db *fakeRetirer) { db.err = errors.New("connection reset") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			st := e.redeployed()
			db := &fakeRetirer{until: until}
			if tc.change != nil {
				tc.change(e, &st, db)
			}
			h := NewRetirePrevious(e.store, db, e.log)
			out, err := h.Handle(context.Background(), st)
			calls := db.callLog()
			if tc.retired != (len(calls) == 1) {
				t.Fatalf("RetirePassword calls: %+v; want retired=%v", calls, tc.retired)
			}
			if tc.retired {
				c := calls[0]
				if c.User != "app_user" || c.Host != primaryHost || c.Grace != time.Hour || !c.RightPassword || !c.AdminCredsUsed {
					t.Fatalf("RetirePassword call %+v; want app_user on the primary as the admin, with AWSPREVIOUS's password, grace 1h", c)
				}
			}
			switch {
			case tc.named != "":
				wantNamed(t, err, tc.named)
				return
			case db.err != nil:
				if err == nil || !strings.Contains(err.Error(), "connection reset") {
					t.Fatalf("err = %v, want the adapter's", err)
				}
				return
			case err != nil:
				t.Fatalf("Handle: %v", err)
			}
			r := out.Retirement
			if r == nil || r.After != "1h0m0s" || !strings.Contains(r.Skipped, tc.skipped) || (tc.skipped == "") != (r.Skipped == "") {
				t.Fatalf("Retirement = %+v; want skipped containing %q", r, tc.skipped)
			}
			if tc.retired && (r.User != "app_user" || r.Version != v1 || r.ValidUntil == nil || !r.ValidUntil.Equal(until)) {
				t.Fatalf("Retirement = %+v; want app_user, version %s, valid until %s", r, v1, until)
			}
			if !tc.retired && (r.User != "" || r.ValidUntil != nil) {
				t.Fatalf("nothing was retired, yet Retirement = %+v", r)
			}
		})
	}
}

// movePrevious moves AWSPREVIOUS to id.
func (e *env) movePrevious(id string) {
	e.t.Helper()
	v, err := e.store.VersionStages(context.Background(), e.appARN)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.sm.UpdateSecretVersionStage(context.Background(), &secretsmanager.UpdateSecretVersionStageInput{
		SecretId: aws.String(e.appARN), VersionStage: aws.String(workflow.StagePrevious),
		MoveToVersionId: aws.String(id), RemoveFromVersionId: aws.String(workflow.Versions(v).With(workflow.StagePrevious)),
	}); err != nil {
		e.t.Fatal(err)
	}
}
