package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgrotate/pgrotate/adapters/ecsservice"
	localecs "github.com/pgrotate/pgrotate/local/ecs"
	localsecrets "github.com/pgrotate/pgrotate/local/secrets"
	"github.com/pgrotate/pgrotate/local/sfnlocal"
	"github.com/pgrotate/pgrotate/statemachine"
	"github.com/pgrotate/pgrotate/workflow"
)

// faultyDB fails the n-th call of one operation of the database fake with err, as the
// postgres adapter would return it.
type faultyDB struct {
	*fakeDB
	op    string
	n     int
	err   error
	calls map[string]int
}

func (d *faultyDB) fault(op string) error {
	d.calls[op]++
	if op == d.op && d.calls[op] == d.n {
		return d.err
	}
	return nil
}

func (d *faultyDB) Login(ctx context.Context, s workflow.Target) error {
	if err := d.fault("Login"); err != nil {
		return err
	}
	return d.fakeDB.Login(ctx, s)
}

func (d *faultyDB) Sessions(ctx context.Context, admin workflow.Target, user string) (int, error) {
	if err := d.fault("Sessions"); err != nil {
		return 0, err
	}
	return d.fakeDB.Sessions(ctx, admin, user)
}

func (d *faultyDB) CloneUser(ctx context.Context, admin workflow.Target, active, pending string) error {
	if err := d.fault("CloneUser"); err != nil {
		return err
	}
	return d.fakeDB.CloneUser(ctx, admin, active, pending)
}

func (d *faultyDB) CheckParity(ctx context.Context, admin workflow.Target, active, pending string) error {
	if err := d.fault("CheckParity"); err != nil {
		return err
	}
	return d.fakeDB.CheckParity(ctx, admin, active, pending)
}

func (d *faultyDB) SetPassword(ctx context.Context, admin workflow.Target, user string, pw workflow.Password) (string, bool, error) {
	if err := d.fault("SetPassword"); err != nil {
		return "", false, err
	}
	return d.fakeDB.SetPassword(ctx, admin, user, pw)
}

func (d *faultyDB) CaughtUp(ctx context.Context, admin workflow.Target, lsn string) error {
	if err := d.fault("CaughtUp"); err != nil {
		return err
	}
	return d.fakeDB.CaughtUp(ctx, admin, lsn)
}

func (d *faultyDB) RetirePassword(ctx context.Context, admin workflow.Target, user string, pw workflow.Password, grace time.Duration) (time.Time, string, error) {
	if err := d.fault("RetirePassword"); err != nil {
		return time.Time{}, "", err
	}
	return d.fakeDB.RetirePassword(ctx, admin, user, pw, grace)
}

// aslNames returns, per state, the error names its Retry and named Catch list (States.ALL
// aside); the states of the Redeploy Map report through the Map's Catch.
func aslNames(t *testing.T) map[string][]string {
	t.Helper()
	vals := map[string]string{}
	for _, k := range statemachine.Keys() {
		vals[k] = "arn:aws:lambda:eu-west-1:123456789012:function:" + strings.ToLower(k)
	}
	vals[statemachine.AlarmTopicArn] = "arn:aws:sns:eu-west-1:123456789012:alarms"
	vals[statemachine.RetirePreviousAfter] = "1h0m0s"
	def, err := statemachine.Render(vals)
	if err != nil {
		t.Fatal(err)
	}
	type matcher struct{ ErrorEquals []string }
	var asl struct {
		States map[string]struct {
			Retry, Catch []matcher
		}
	}
	if err := json.Unmarshal([]byte(def), &asl); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for name, s := range asl.States {
		for _, m := range append(s.Retry, s.Catch...) {
			for _, n := range m.ErrorEquals {
				if !strings.HasPrefix(n, "States.") {
					out[name] = append(out[name], n)
				}
			}
		}
	}
	out["UpdateService"], out["CheckRollout"] = out[workflow.StateRedeploy], out[workflow.StateRedeploy]
	return out
}

// Issue 8, item 3: no unnamed error reaches Step Functions. Every handler is driven down its
// failure paths — the n-th call of each Secrets Manager, ECS, promotion and database
// operation fails, in each way it can — and every error it returns must be reported under a
// name in workflow.ErrorNames that its state's Retry or named Catch lists. A database that is
// down is DatabaseUnavailable wherever it is met; anything without a name of its own is
// StepFailed.
func TestEveryFailurePathHasANameTheStateMachineKnows(t *testing.T) {
	ctx := context.Background()
	asl := aslNames(t)
	down := fmt.Errorf("connect to %s as %q: %w", primaryHost+":5432", "dbadmin",
		&workflow.DatabaseUnavailable{Endpoint: primaryHost + ":5432", Reason: "connection refused"})
	dbErrs := map[string]error{
		"down":        down,
		"sql":         fmt.Errorf("clone role: %w", &pgconn.PgError{Code: "42501", Message: "permission denied"}),
		"deadline":    context.DeadlineExceeded,
		"rejected":    &workflow.CredentialRejected{User: "dbadmin", Host: primaryHost, Reason: "password authentication failed"},
		"plain error": errors.New("something else"),
	}
	awsErrs := map[string]error{
		"internal": &smtypes.InternalServiceError{Message: aws.String("internal")},
		"missing":  &smtypes.ResourceNotFoundException{Message: aws.String("no such secret")},
		"deadline": context.DeadlineExceeded,
	}
	ecsErrs := map[string]error{
		"server":   &ecstypes.ServerException{Message: aws.String("boom")},
		"deadline": context.DeadlineExceeded,
	}
	type handler struct {
		state string
		from  func(e *env) workflow.State
		run   func(e *env, db *faultyDB, st workflow.State) error
		db    []string // database operations it calls
	}
	state := func(e *env) workflow.State { return e.state() }
	preflighted := func(e *env) workflow.State { return e.preflighted() }
	withLSN := func(e *env) workflow.State {
		st, err := e.setPassword().Handle(ctx, e.preflighted())
		if err != nil {
			e.t.Fatal(err)
		}
		return st
	}
	handlers := []handler{
		{workflow.StatePreflight, state, func(e *env, db *faultyDB, st workflow.State) error {
			_, err := (&Preflight{Secrets: e.store, Dates: e.store, DB: db, ECS: ecsservice.New(e.ecs), Promotions: e.promos, Log: e.log}).Handle(ctx, st)
			return err
		}, []string{"Login", "Sessions"}},
		{workflow.StateCloneUser, preflighted, func(e *env, db *faultyDB, st workflow.State) error {
			_, err := NewCloneUser(e.store, db, e.log).Handle(ctx, st)
			return err
		}, []string{"CloneUser", "CheckParity"}},
		{workflow.StateSetPassword, preflighted, func(e *env, db *faultyDB, st workflow.State) error {
			_, err := NewSetPassword(e.store, db, e.log).Handle(ctx, st)
			return err
		}, []string{"Sessions", "SetPassword"}},
		{workflow.StateTestLogin, withLSN, func(e *env, db *faultyDB, st workflow.State) error {
			_, err := NewTestLogin(e.store, db, e.log).Handle(ctx, st)
			return err
		}, []string{"Login"}},
		{workflow.StateCheckReplicas, withLSN, func(e *env, db *faultyDB, st workflow.State) error {
			_, err := (&CheckReplicas{Secrets: e.store, DB: db, Log: e.log}).Handle(ctx, st)
			return err
		}, []string{"CaughtUp", "Login"}},
		{workflow.StateRetirePrevious, func(e *env) workflow.State { return e.redeployed() }, func(e *env, db *faultyDB, st workflow.State) error {
			_, err := NewRetirePrevious(e.store, db, e.log).Handle(ctx, st)
			return err
		}, []string{"RetirePassword"}},
	}

	produced := map[string]bool{}
	check := func(t *testing.T, state string, err error) string {
		t.Helper()
		name := sfnlocal.ErrorName(err)
		if !slices.Contains(workflow.ErrorNames, name) {
			t.Fatalf("%s returned %T (%v): the Lambda runtime reports %q, not in workflow.ErrorNames", state, err, err, name)
		}
		if !slices.Contains(asl[state], name) {
			t.Fatalf("%s returned %s, which the state's Retry and named Catch %v do not list", state, name, asl[state])
		}
		produced[name] = true
		return name
	}
	for _, h := range handlers {
		t.Run(h.state, func(t *testing.T) {
			failed := map[string]int{} // source → failing runs
			for _, op := range h.db {
				for kind, dbErr := range dbErrs {
					for n := 1; n <= 4; n++ {
						e := newEnv(t)
						st := h.from(e)
						db := &faultyDB{fakeDB: e.db, op: op, n: n, err: dbErr, calls: map[string]int{}}
						err := h.run(e, db, st)
						if err == nil {
							continue
						}
						name := check(t, h.state, err)
						failed["db "+op]++
						if kind == "down" && name != "DatabaseUnavailable" {
							t.Fatalf("%s with the database down at call %d of %s: %s (%v), want DatabaseUnavailable", h.state, n, op, name, err)
						}
						if kind == "down" && !strings.Contains(err.Error(), primaryHost+":5432") {
							t.Fatalf("%s: %q does not name the server", h.state, err)
						}
					}
				}
			}
			for _, op := range []string{localsecrets.OpGetSecretValue, localsecrets.OpDescribeSecret} {
				for _, awsErr := range awsErrs {
					for n := 1; n <= 6; n++ {
						e := newEnv(t)
						st := h.from(e)
						for range n - 1 {
							e.sm.Intercept(op, func() error { return nil })
						}
						e.sm.FailNext(op, awsErr)
						if err := h.run(e, &faultyDB{fakeDB: e.db, calls: map[string]int{}}, st); err != nil {
							check(t, h.state, err)
							failed["secrets "+op]++
						}
					}
				}
			}
			if h.state == workflow.StatePreflight {
				for _, op := range []string{localecs.OpDescribeServices, localecs.OpListTasks, localecs.OpDescribeTasks} {
					for _, ecsErr := range ecsErrs {
						e := newEnv(t)
						st := h.from(e)
						e.ecs.FailNext(op, ecsErr)
						if err := h.run(e, &faultyDB{fakeDB: e.db, calls: map[string]int{}}, st); err != nil {
							check(t, h.state, err)
							failed["ecs "+op]++
						}
					}
				}
				e := newEnv(t)
				e.promos.err = errors.New("ListExecutions: ThrottlingException")
				if err := h.run(e, &faultyDB{fakeDB: e.db, calls: map[string]int{}}, e.state()); err != nil {
					check(t, h.state, err)
					failed["promotions"]++
				}
			}
			// Every source the handler uses made it fail at least once, or the loop above
			// proves nothing.
			for _, op := range h.db {
				if failed["db "+op] == 0 {
					t.Errorf("no injected failure of %s made %s fail", op, h.state)
				}
			}
			if failed["secrets "+localsecrets.OpGetSecretValue] == 0 {
				t.Errorf("Secrets Manager failures never made %s fail: %v", h.state, failed)
			}
			t.Logf("failing runs by source: %v", failed)
		})
	}

	rollouts := []struct {
		state   string
		ops     []string
		prepare func(e *env) workflow.Rollout
		run     func(e *env, ro workflow.Rollout) error
	}{
		{"UpdateService", []string{localecs.OpDescribeServices, localecs.OpUpdateService},
			func(*env) workflow.Rollout { return rollout(web) },
			func(e *env, ro workflow.Rollout) error { _, err := e.redeploy().Handle(ctx, ro); return err }},
		{"CheckRollout", []string{localecs.OpDescribeServices},
			func(e *env) workflow.Rollout {
				ro, err := e.redeploy().Handle(ctx, rollout(web))
				if err != nil {
					e.t.Fatal(err)
				}
				return ro
			},
			func(e *env, ro workflow.Rollout) error { _, err := e.checkRollout(0).Handle(ctx, ro); return err }},
	}
	for _, r := range rollouts {
		t.Run(r.state, func(t *testing.T) {
			for _, op := range r.ops {
				for _, ecsErr := range ecsErrs {
					e := newEnv(t)
					e.clock.Set(promoteAt.Add(time.Minute))
					ro := r.prepare(e)
					e.ecs.FailNext(op, ecsErr)
					err := r.run(e, ro)
					if err == nil {
						t.Fatalf("%s with %s failing: no error", r.state, op)
					}
					if name := check(t, r.state, err); name != "StepFailed" {
						t.Fatalf("%s with %s failing: %s, want StepFailed", r.state, op, name)
					}
				}
			}
		})
	}

	for _, want := range []string{"DatabaseUnavailable", "StepFailed", "CredentialRejected"} {
		if !produced[want] {
			t.Errorf("no failure path produced %s", want)
		}
	}
}
