package tasks

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/pgrotate/pgrotate/workflow"
)

// supersessions are the ways a rotation loses ownership between Preflight and a mutating
// step (invariants 2 and 8): each must stop the step before the database is touched.
var supersessions = []struct {
	name   string
	change func(e *env, st *workflow.State)
}{
	{"AWSPENDING moved to another version", func(e *env, _ *workflow.State) {
		e.putVersion(tok2, e.current().Pending(workflow.NewPassword(otherPW)), workflow.StagePending)
	}},
	{"AWSCURRENT moved to another version", func(e *env, _ *workflow.State) {
		s := e.current()
		s.Password = workflow.NewPassword(otherPW)
		e.putVersion(manual, s) // a manual version: AWSCURRENT
	}},
	{"the token was promoted", func(e *env, _ *workflow.State) { e.promote(tok) }},
	{"the state names the users the other way round", func(_ *env, st *workflow.State) {
		st.ActiveUser, st.PendingUser = st.PendingUser, st.ActiveUser
	}},
}

// A step that mutates returns its state and error.
type stepFunc func(e *env, st workflow.State) (workflow.State, error)

var mutatingSteps = []struct {
	name string
	run  stepFunc
}{
	{"CloneUser", func(e *env, st workflow.State) (workflow.State, error) {
		return e.cloneUser().Handle(context.Background(), st)
	}},
	{"SetPassword", func(e *env, st workflow.State) (workflow.State, error) {
		return e.setPassword().Handle(context.Background(), st)
	}},
}

func TestMutatingStepsRefuseWhenSuperseded(t *testing.T) {
	for _, step := range mutatingSteps {
		for _, sup := range supersessions {
			t.Run(step.name+"/"+sup.name, func(t *testing.T) {
				e := newEnv(t)
				st := e.preflighted()
				sup.change(e, &st)
				_, err := step.run(e, st)
				wantNamed(t, err, "RotationSuperseded")
				if calls := e.db.callLog(); len(calls) != 0 {
					t.Errorf("a superseded %s reached the database: %+v", step.name, calls)
				}
			})
		}
	}
}

func TestMutatingStepsNeedPreflight(t *testing.T) {
	for _, step := range mutatingSteps {
		t.Run(step.name, func(t *testing.T) {
			e := newEnv(t)
			_, err := step.run(e, e.state())
			wantNamed(t, err, "InvalidSecret")
			if calls := e.db.callLog(); len(calls) != 0 {
				t.Errorf("%s reached the database without Preflight: %+v", step.name, calls)
			}
		})
	}
}

func TestCloneUser(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(db *fakeDB)
		want    string // workflow error name; "" for success
	}{
		{name: "twins", prepare: func(*fakeDB) {}},
		{
			name: "the active user does not exist",
			// The adapter wraps its errors with the action, as adapters/postgres does.
			prepare: func(db *fakeDB) {
				db.cloneErr = fmt.Errorf("clone role: %w", &workflow.ActiveUserMissing{User: "app_user"})
			},
			want: "ActiveUserMissing",
		},
		{
			name: "privileges differ",
			prepare: func(db *fakeDB) {
				db.parity = fmt.Errorf("compare grants: %w", &workflow.PrivilegeMismatch{Active: "app_user", Pending: "app_user_clone", Differences: []string{"SELECT on orders"}})
			},
			want: "PrivilegeMismatch",
		},
		{
			name:    "the database refuses a role name",
			prepare: func(db *fakeDB) { db.cloneErr = &workflow.InvalidRoleName{Quoted: `"x"`, Reason: "reserved"} },
			want:    "InvalidRoleName",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			st := e.preflighted()
			tc.prepare(e.db)
			out, err := e.cloneUser().Handle(context.Background(), st)
			if tc.want != "" {
				wantNamed(t, err, tc.want)
				return
			}
			if err != nil {
				t.Fatalf("clone user: %v", err)
			}
			wantCalls := []dbCall{
				{Op: "CloneUser", Host: primaryHost, As: "dbadmin", User: "app_user_clone", Arg: "app_user"},
				{Op: "CheckParity", Host: primaryHost, As: "dbadmin", User: "app_user_clone", Arg: "app_user"},
			}
			if got := e.db.callLog(); !slices.Equal(got, wantCalls) {
				t.Errorf("database calls = %+v\nwant %+v", got, wantCalls)
			}
			if out.ActiveVersion != st.ActiveVersion || out.LSN != "" {
				t.Errorf("CloneUser changed the state: %+v", out)
			}
		})
	}
}

func TestSetPassword(t *testing.T) {
	e := newEnv(t)
	st := e.preflighted()
	out, err := e.setPassword().Handle(context.Background(), st)
	if err != nil {
		t.Fatalf("set password: %v", err)
	}
	if out.LSN != "0/3000148" {
		t.Errorf("LSN = %q, want the primary's LSN after the change", out.LSN)
	}
	// Invariant 3 is checked again right before the change (a redrive may come late): on the
	// primary as the admin, on the replicas as AWSCURRENT, never sending the admin password there.
	want := []dbCall{
		{Op: "Sessions", Host: primaryHost, As: "dbadmin", User: "app_user_clone"},
		{Op: "Sessions", Host: replica1, As: "app_user", User: "app_user_clone"},
		{Op: "Sessions", Host: replica2, As: "app_user", User: "app_user_clone"},
		{Op: "SetPassword", Host: primaryHost, As: "dbadmin", User: "app_user_clone"},
	}
	if got := e.db.callLog(); !slices.Equal(got, want) {
		t.Fatalf("database calls = %+v\nwant %+v", got, want)
	}
	// The pending user now has the AWSPENDING password; the active user's is untouched
	// (invariant 2).
	if !e.db.valid["app_user_clone"].Equal(workflow.NewPassword(pendingPW)) {
		t.Error("the pending user did not get the AWSPENDING password")
	}
	if !e.db.valid["app_user"].Equal(workflow.NewPassword(currentPW)) {
		t.Error("the active user's password changed")
	}

	// Again (a retry or a redrive): same outcome, still only the pending user.
	again, err := e.setPassword().Handle(context.Background(), st)
	if err != nil || again.LSN != out.LSN {
		t.Fatalf("second run: %+v %v", again, err)
	}
	for _, c := range e.db.mutations() {
		if c.User != "app_user_clone" {
			t.Errorf("SetPassword altered %q", c.User)
		}
	}
	if !strings.Contains(e.logs.String(), `"changed":false`) {
		t.Errorf("the second run does not log that nothing changed:\n%s", e.logs.String())
	}
}

func TestSetPasswordDatabaseErrors(t *testing.T) {
	e := newEnv(t)
	st := e.preflighted()
	e.db.setErr = fmt.Errorf("alter role: %w", &workflow.CredentialRejected{User: "dbadmin", Host: primaryHost, Reason: "password authentication failed"})
	out, err := e.setPassword().Handle(context.Background(), st)
	wantNamed(t, err, "CredentialRejected")
	if out.LSN != "" {
		t.Errorf("LSN %q recorded for a failed change", out.LSN)
	}
}

func TestTestLogin(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(e *env, st *workflow.State)
		want    string
	}{
		{name: "the pending password logs in", prepare: func(e *env, _ *workflow.State) {
			e.db.valid["app_user_clone"] = workflow.NewPassword(pendingPW)
		}},
		{name: "the password was never set", prepare: func(*env, *workflow.State) {}, want: "CredentialRejected"},
		{name: "the primary refuses the pending user", prepare: func(e *env, _ *workflow.State) {
			e.db.valid["app_user_clone"] = workflow.NewPassword(pendingPW)
			e.db.reject["app_user_clone@"+primaryHost] = true
		}, want: "CredentialRejected"},
		{name: "the pending version names another user than the execution", prepare: func(_ *env, st *workflow.State) {
			st.ActiveUser, st.PendingUser = st.PendingUser, st.ActiveUser
		}, want: "InvalidSecret"},
		{name: "Preflight has not run", prepare: func(_ *env, st *workflow.State) { st.ActiveVersion = "" }, want: "InvalidSecret"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			st := e.preflighted()
			tc.prepare(e, &st)
			_, err := e.testLogin().Handle(context.Background(), st)
			if tc.want != "" {
				wantNamed(t, err, tc.want)
				return
			}
			if err != nil {
				t.Fatalf("test login: %v", err)
			}
			if got := e.db.ops(); !slices.Equal(got, []string{"Login " + primaryHost + " app_user_clone"}) {
				t.Errorf("database calls = %q, want one login of the pending user on the primary", got)
			}
		})
	}
}

func TestCheckReplicas(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(e *env, st *workflow.State)
		want    string
		check   func(t *testing.T, e *env, err error)
	}{
		{
			name: "caught up and logging in",
			check: func(t *testing.T, e *env, _ error) {
				want := []string{
					"CaughtUp " + replica1, "Login " + replica1 + " app_user_clone",
					"CaughtUp " + replica2, "Login " + replica2 + " app_user_clone",
				}
				if got := e.db.ops(); !slices.Equal(got, want) {
					t.Errorf("database calls = %q\nwant %q", got, want)
				}
				for _, c := range e.db.callLog() {
					if c.Op == "CaughtUp" && (c.Arg != "0/3000148" || c.As != "app_user") {
						t.Errorf("CaughtUp %+v: want the LSN from SetPassword, read as AWSCURRENT (never the admin on a replica)", c)
					}
				}
			},
		},
		{
			name:    "a replica lags",
			prepare: func(e *env, _ *workflow.State) { e.db.lagging[replica2] = true },
			want:    "ReplicaNotReady",
			check: func(t *testing.T, e *env, err error) {
				if r := err.(*workflow.ReplicaNotReady); r.Replica != replica2 {
					t.Errorf("not ready: %q, want %s", r.Replica, replica2)
				}
			},
		},
		{
			name:    "a replica refuses the pending user",
			prepare: func(e *env, _ *workflow.State) { e.db.reject["app_user_clone@"+replica1] = true },
			want:    "CredentialRejected",
		},
		{
			name:    "no LSN: SetPassword has not run",
			prepare: func(_ *env, st *workflow.State) { st.LSN = "" },
			want:    "InvalidSecret",
			check: func(t *testing.T, e *env, _ error) {
				if calls := e.db.callLog(); len(calls) != 0 {
					t.Errorf("replicas checked without an LSN: %+v", calls)
				}
			},
		},
		{
			name:    "no replicas",
			prepare: func(_ *env, st *workflow.State) { st.Replicas, st.LSN = nil, "" },
			check: func(t *testing.T, e *env, _ error) {
				if calls := e.db.callLog(); len(calls) != 0 {
					t.Errorf("database calls without replicas: %+v", calls)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			st := e.preflighted()
			st, err := e.setPassword().Handle(context.Background(), st)
			if err != nil {
				t.Fatal(err)
			}
			e.db.reset()
			if tc.prepare != nil {
				tc.prepare(e, &st)
			}
			out, err := e.checkReplicas().Handle(context.Background(), st)
			if tc.want != "" {
				wantNamed(t, err, tc.want)
			} else if err != nil {
				t.Fatalf("check replicas: %v", err)
			} else if out.LSN != st.LSN {
				t.Errorf("LSN changed: %q", out.LSN)
			}
			if tc.check != nil {
				tc.check(t, e, err)
			}
			if m := e.db.mutations(); len(m) != 0 {
				t.Errorf("CheckReplicas changed roles: %+v", m)
			}
		})
	}
}

// A redrive can reach SetPassword long after Preflight: a session of the pending user that
// appeared since stops the change (invariant 3).
func TestSetPasswordRefusesWhileThePendingUserHasSessions(t *testing.T) {
	e := newEnv(t)
	st := e.preflighted()
	e.db.mu.Lock()
	e.db.sessions[replica2] = 1
	e.db.mu.Unlock()
	_, err := e.setPassword().Handle(context.Background(), st)
	inUse, ok := err.(*workflow.PendingUserInUse)
	if !ok || inUse.Sessions != 1 || !strings.Contains(inUse.Where, replica2) {
		t.Fatalf("want *workflow.PendingUserInUse on %s, got %T %v", replica2, err, err)
	}
	if m := e.db.mutations(); len(m) != 0 {
		t.Fatalf("the password was changed: %+v", m)
	}
}
