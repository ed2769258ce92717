package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/pgrotate/pgrotate/workflow"
)

// The dry run answers "may a rotation start now" with a result, read-only: each check
// passes or names its problem and the error the rotation's Preflight would fail with.
func TestPreflightDryRun(t *testing.T) {
	tests := []struct {
		name     string
		spoil    func(e *env)
		safe     bool
		failed   string // the failed check
		errName  string
		liveUser string
	}{
		{name: "healthy", safe: true, liveUser: "app_user"},
		{name: "a session holds the alternate user on a replica", spoil: func(e *env) { e.db.sessions[replica2] = 2 },
			failed: CheckSessions, errName: "PendingUserInUse", liveUser: "app_user"},
		{name: "AWSCURRENT is refused on the primary", spoil: func(e *env) { e.db.reject["app_user@"+primaryHost] = true },
			failed: CheckLogin + " " + primaryHost + ":5432", errName: "CredentialRejected", liveUser: "app_user"},
		{name: "a deployment in progress", spoil: func(e *env) { e.deploy(e.services[0]) },
			failed: CheckService + " prod/web", errName: "ServiceNotSteady", liveUser: "app_user"},
		{name: "a left AWSPENDING does not alternate", spoil: func(e *env) {
			bad := e.current().Pending(workflow.NewPassword(pendingPW))
			bad.Username = "app_user"
			e.putVersion(tok2, bad, workflow.StagePending)
		}, failed: CheckSecrets, errName: "InvalidSecret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			if tt.spoil != nil {
				tt.spoil(e)
			}
			before := e.sm.Calls()
			in, _ := json.Marshal(DryRunInput{DryRun: true, SecretARN: e.appARN, Services: e.services})
			out, err := e.preflight().Invoke(context.Background(), in)
			if err != nil {
				t.Fatalf("dry run: %v", err)
			}
			res := out.(DryRunResult)
			if res.Safe != tt.safe || res.LiveUser != tt.liveUser {
				t.Errorf("safe %v, live user %q; want %v, %q (checks %+v)", res.Safe, res.LiveUser, tt.safe, tt.liveUser, res.Checks)
			}
			var failed []DryRunCheck
			for _, c := range res.Checks {
				if !c.OK {
					failed = append(failed, c)
				}
			}
			switch {
			case tt.failed == "" && len(failed) > 0:
				t.Errorf("failed checks %+v, want none", failed)
			case tt.failed != "" && (len(failed) != 1 || failed[0].Name != tt.failed || failed[0].Error != tt.errName || failed[0].Problem == ""):
				t.Errorf("failed checks %+v, want only %s with %s", failed, tt.failed, tt.errName)
			}
			if tt.safe && (res.AlternateUser != "app_user_clone" || res.CurrentVersion != v1 || len(res.Replicas) != 2) {
				t.Errorf("result %+v: want alternate app_user_clone, version %s, 2 replicas", res, v1)
			}
			// Read-only: the dry run wrote nothing to Secrets Manager, nothing to ECS.
			for _, c := range e.sm.Calls()[len(before):] {
				if c.Op != "DescribeSecret" && c.Op != "GetSecretValue" {
					t.Errorf("the dry run called Secrets Manager %s", c.Op)
				}
			}
			for _, op := range e.db.ops() {
				if op[:len("Login")] != "Login" && op[:len("Sessions")] != "Sessions" {
					t.Errorf("the dry run made the database call %s", op)
				}
			}
		})
	}
}

// Bad input is a named error; the State still goes to Handle.
func TestPreflightInvokeModes(t *testing.T) {
	e := newEnv(t)
	for _, payload := range []string{`{"DryRun":true}`, `{"DryRun":true,"SecretARN":"x","Token":"t"}`, `{"DryRun":true,"SecretARN":1}`} {
		_, err := e.preflight().Invoke(context.Background(), json.RawMessage(payload))
		var bad *InvalidDryRun
		if !errors.As(err, &bad) {
			t.Errorf("Invoke(%s) = %v, want an InvalidDryRun", payload, err)
		}
	}
	in, _ := json.Marshal(e.state())
	out, err := e.preflight().Invoke(context.Background(), in)
	if err != nil {
		t.Fatalf("Invoke(state): %v", err)
	}
	if st := out.(workflow.State); st.ActiveUser != "app_user" || st.PendingUser != "app_user_clone" {
		t.Errorf("Invoke(state) = %+v, want Preflight's output", st)
	}
	if ops := e.db.ops(); !slices.Contains(ops, "Sessions "+primaryHost+" app_user_clone") {
		t.Errorf("Invoke(state) did not run Preflight: %v", ops)
	}
}
