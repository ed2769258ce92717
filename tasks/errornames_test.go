package tasks

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pgrotate/pgrotate/local/sfnlocal"
	"github.com/pgrotate/pgrotate/workflow"
)

// Every named failure of every handler reaches Step Functions under its own name (the Go
// type name aws-lambda-go reports as errorType), and that name is one the state machine
// matches (workflow.ErrorNames). Together the handlers produce every name in the list.
func TestNamedFailuresAreStateMachineErrorNames(t *testing.T) {
	ctx := context.Background()
	state := func(e *env) workflow.State { return e.state() }
	preflighted := func(e *env) workflow.State { return e.preflighted() }
	withLSN := func(e *env) workflow.State {
		st, err := e.setPassword().Handle(ctx, e.preflighted())
		if err != nil {
			e.t.Fatal(err)
		}
		e.db.reset()
		return st
	}
	type stateStep func(e *env, st workflow.State) error
	preflight := func(e *env, st workflow.State) error { _, err := e.preflight().Handle(ctx, st); return err }
	clone := func(e *env, st workflow.State) error { _, err := e.cloneUser().Handle(ctx, st); return err }
	setPW := func(e *env, st workflow.State) error { _, err := e.setPassword().Handle(ctx, st); return err }
	login := func(e *env, st workflow.State) error { _, err := e.testLogin().Handle(ctx, st); return err }
	replicas := func(e *env, st workflow.State) error { _, err := e.checkReplicas().Handle(ctx, st); return err }
	noPreflight := func(st *workflow.State) { st.ActiveVersion = "" }

	tests := []struct {
		handler string
		want    string
		from    func(e *env) workflow.State
		spoil   func(e *env, st *workflow.State)
		run     stateStep
	}{
		{"Preflight", "InvalidSecret", state, func(_ *env, st *workflow.State) { st.SecretARN = "" }, preflight},
		{"Preflight", "RotationSuperseded", state, func(e *env, _ *workflow.State) { e.promote(tok) }, preflight},
		{"Preflight", "CredentialRejected", state, func(e *env, _ *workflow.State) { e.db.reject["app_user@"+primaryHost] = true }, preflight},
		{"Preflight", "ServiceNotSteady", state, func(e *env, _ *workflow.State) { e.promos.at = pendingAt }, preflight},
		{"Preflight", "PendingUserInUse", state, func(e *env, _ *workflow.State) { e.db.sessions[primaryHost] = 1 }, preflight},

		{"CloneUser", "InvalidSecret", preflighted, func(_ *env, st *workflow.State) { noPreflight(st) }, clone},
		{"CloneUser", "RotationSuperseded", preflighted, func(e *env, _ *workflow.State) { e.promote(tok) }, clone},
		{"CloneUser", "ActiveUserMissing", preflighted, func(e *env, _ *workflow.State) {
			e.db.cloneErr = fmt.Errorf("clone: %w", &workflow.ActiveUserMissing{User: "app_user"})
		}, clone},
		{"CloneUser", "PrivilegeMismatch", preflighted, func(e *env, _ *workflow.State) {
			e.db.parity = fmt.Errorf("parity: %w", &workflow.PrivilegeMismatch{Active: "app_user", Pending: "app_user_clone"})
		}, clone},
		{"CloneUser", "InvalidRoleName", preflighted, func(e *env, _ *workflow.State) {
			e.db.cloneErr = fmt.Errorf("clone: %w", &workflow.InvalidRoleName{Quoted: `"x"`, Reason: "reserved"})
		}, clone},

		{"SetPassword", "InvalidSecret", preflighted, func(_ *env, st *workflow.State) { noPreflight(st) }, setPW},
		{"SetPassword", "RotationSuperseded", preflighted, func(e *env, _ *workflow.State) {
			e.putVersion(tok2, e.current().Pending(workflow.NewPassword(otherPW)), workflow.StagePending)
		}, setPW},
		{"SetPassword", "CredentialRejected", preflighted, func(e *env, _ *workflow.State) {
			e.db.setErr = fmt.Errorf("alter role: %w", &workflow.CredentialRejected{User: "dbadmin", Host: primaryHost})
		}, setPW},

		{"SetPassword", "DatabaseUnavailable", preflighted, func(e *env, _ *workflow.State) {
			e.db.setErr = fmt.Errorf("set password: %w", &workflow.DatabaseUnavailable{Endpoint: primaryHost + ":5432", Reason: "connection refused"})
		}, setPW},
		{"SetPassword", "StepFailed", preflighted, func(e *env, _ *workflow.State) {
			e.db.setErr = fmt.Errorf("set password: %w", context.DeadlineExceeded)
		}, setPW},

		{"TestLogin", "InvalidSecret", preflighted, func(_ *env, st *workflow.State) { noPreflight(st) }, login},
		{"TestLogin", "CredentialRejected", preflighted, func(*env, *workflow.State) {}, login},

		{"CheckReplicas", "InvalidSecret", preflighted, func(*env, *workflow.State) {}, replicas}, // no LSN
		{"CheckReplicas", "ReplicaNotReady", withLSN, func(e *env, _ *workflow.State) { e.db.lagging[replica1] = true }, replicas},
		{"CheckReplicas", "CredentialRejected", withLSN, func(e *env, _ *workflow.State) { e.db.reject["app_user_clone@"+replica2] = true }, replicas},
	}
	produced := map[string]bool{}
	for _, tc := range tests {
		t.Run(tc.handler+"/"+tc.want, func(t *testing.T) {
			e := newEnv(t)
			st := tc.from(e)
			tc.spoil(e, &st)
			err := tc.run(e, st)
			checkName(t, err, tc.want)
			produced[tc.want] = true
		})
	}

	rollouts := []struct {
		handler string
		want    string
		run     func(e *env) error
	}{
		{"UpdateService", "InvalidSecret", func(e *env) error {
			ro := rollout(web)
			ro.PromotedAt = time.Time{}
			_, err := e.redeploy().Handle(ctx, ro)
			return err
		}},
		{"CheckRollout", "InvalidSecret", func(e *env) error { _, err := e.checkRollout(0).Handle(ctx, rollout(web)); return err }},
		{"CheckRollout", "DeploymentFailed", func(e *env) error {
			ro, err := e.redeploy().Handle(ctx, rollout(web))
			if err != nil {
				return err
			}
			if err := e.ecs.FailDeployment("prod", "web", "circuit breaker", false); err != nil {
				return err
			}
			_, err = e.checkRollout(0).Handle(ctx, ro)
			return err
		}},
		{"CheckRollout", "RolloutTimedOut", func(e *env) error {
			ro, err := e.redeploy().Handle(ctx, rollout(web))
			if err != nil {
				return err
			}
			_, err = e.checkRollout(1).Handle(ctx, ro)
			return err
		}},
	}
	for _, tc := range rollouts {
		t.Run(tc.handler+"/"+tc.want, func(t *testing.T) {
			e := newEnv(t)
			e.clock.Set(promoteAt.Add(time.Minute))
			checkName(t, tc.run(e), tc.want)
			produced[tc.want] = true
		})
	}

	for _, name := range workflow.ErrorNames {
		if !produced[name] {
			t.Errorf("no handler test produces %s", name)
		}
	}
}

// checkName asserts the errorType the Lambda runtime reports for err.
func checkName(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want %s, got nil", want)
	}
	got := sfnlocal.ErrorName(err)
	if got != want {
		t.Fatalf("the Lambda runtime reports %q (%T: %v), want %q", got, err, err, want)
	}
	if !slices.Contains(workflow.ErrorNames, got) {
		t.Fatalf("%q is not in workflow.ErrorNames: the state machine cannot match it", got)
	}
}
