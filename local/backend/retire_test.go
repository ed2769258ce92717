package backend

// Execution tests of the opt-in retirement of the previous password (RetirePrevious), with
// the fixture of execution_test.go: the real definition, handlers and PostgreSQL
// primary+replica.

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/pgrotate/pgrotate/adapters/postgres"
	localecs "github.com/pgrotate/pgrotate/local/ecs"
	"github.com/pgrotate/pgrotate/workflow"
)

// validUntil reads a role's VALID UNTIL on the primary as text ("none" for NULL).
func (f *fixture) validUntil(user string) string {
	f.t.Helper()
	su, err := f.c.Superuser(f.ctx, f.c.Primary)
	if err != nil {
		f.t.Fatal(err)
	}
	defer su.Close(context.WithoutCancel(f.ctx))
	var v string
	if err := su.QueryRow(f.ctx, "SELECT COALESCE(rolvaliduntil::text, 'none') FROM pg_roles WHERE rolname = $1", user).Scan(&v); err != nil {
		f.t.Fatalf("read VALID UNTIL of %s: %v", user, err)
	}
	return v
}

// waitServerPast waits until the primary's clock is past t (VALID UNTIL is compared with
// the server's clock), then until the replica has replayed everything.
func (f *fixture) waitServerPast(t time.Time) {
	f.t.Helper()
	su, err := f.c.Superuser(f.ctx, f.c.Primary)
	if err != nil {
		f.t.Fatal(err)
	}
	defer su.Close(context.WithoutCancel(f.ctx))
	for {
		var past bool
		if err := su.QueryRow(f.ctx, "SELECT clock_timestamp() > $1", t).Scan(&past); err != nil {
			f.t.Fatalf("read the primary's clock: %v", err)
		}
		if past {
			break
		}
		select {
		case <-f.ctx.Done():
			f.t.Fatalf("the primary's clock did not pass %s: %v", t, f.ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := f.c.WaitReplayed(f.ctx); err != nil {
		f.t.Fatal(err)
	}
}

// refusedEverywhere checks that the version at stage is refused as a credential (28P01) on
// the primary and on every replica.
func (f *fixture) refusedEverywhere(stage string) workflow.AppSecret {
	f.t.Helper()
	s, version := f.secret(stage)
	for _, ep := range append([]workflow.Endpoint{s.Primary()}, s.Replicas...) {
		_, _, err := postgres.Login(f.ctx, s.At(ep), postgres.Options{CABundle: f.c.CAFile})
		var rejected *workflow.CredentialRejected
		if !errors.As(err, &rejected) || !strings.Contains(rejected.Reason, "28P01") {
			f.t.Fatalf("%s (user %s, version %s) on %s: %v; want refused with SQLSTATE 28P01", stage, s.Username, version, ep, err)
		}
	}
	return s
}

// Retirement on: after each rotation RetirePrevious gives the AWSPREVIOUS user's password
// the grace; past it AWSPREVIOUS is refused on the primary and the replica while
// AWSCURRENT logs in; and four further rotations, each taking over a retired user, succeed.
func TestRetirementExpiresThePreviousPassword(t *testing.T) {
	const grace = time.Second
	services := []workflow.Service{{Cluster: "prod", Service: "api"}, {Cluster: "prod", Service: "worker"}}
	f := newFixture(t, "ret_exec_user", Options{Services: services, RetirePreviousAfter: grace})

	for i := 1; i <= 5; i++ {
		_, before := f.secret(workflow.StageCurrent)
		r := f.rotate()
		f.mustSucceed(r)
		current, cv := f.logsIn(workflow.StageCurrent)
		previous, pv := f.secret(workflow.StagePrevious)
		if cv != r.Token || pv != before || current.Username == previous.Username {
			t.Fatalf("rotation %d: AWSCURRENT %s at %s, AWSPREVIOUS %s at %s; want the token %s and the version before %s",
				i, current.Username, cv, previous.Username, pv, r.Token, before)
		}
		if tr := f.trace(r.Token); count(tr, "TaskStateEntered "+workflow.StateRetirePrevious) != 1 {
			t.Fatalf("rotation %d: RetirePrevious not entered once:\n%s", i, strings.Join(tr, "\n"))
		}
		ret := r.Retirement
		if ret == nil || ret.After != grace.String() || ret.User != previous.Username || ret.Version != pv || ret.ValidUntil == nil || ret.Skipped != "" {
			t.Fatalf("rotation %d: retirement %+v; want %s (version %s) retired after %s", i, ret, previous.Username, pv, grace)
		}
		// Invariant 2: the AWSCURRENT user never gets an expiry.
		if v := f.validUntil(current.Username); v != "infinity" && v != "none" {
			t.Fatalf("rotation %d: AWSCURRENT's user %s has VALID UNTIL %s", i, current.Username, v)
		}
		if v := f.validUntil(previous.Username); v == "infinity" || v == "none" {
			t.Fatalf("rotation %d: the retired user %s has VALID UNTIL %s", i, previous.Username, v)
		}

		f.waitServerPast(*ret.ValidUntil)
		f.refusedEverywhere(workflow.StagePrevious)
		f.logsIn(workflow.StageCurrent)
	}
	f.noSecrets()
}

// Retirement on, but a deployment fails after Promote (circuit breaker with rollback): the
// execution fails with DeploymentFailed without entering RetirePrevious, and past the grace
// both users still log in. Once a deployment completes, the next rotation retires.
func TestFailedRedeployRetiresNothing(t *testing.T) {
	const grace = time.Second
	services := []workflow.Service{{Cluster: "prod", Service: "api"}, {Cluster: "prod", Service: "worker"}}
	var failWorker atomic.Bool
	failWorker.Store(true)
	controller := localecs.ControllerFunc(func(ctx context.Context, r *localecs.Rollout) {
		if r.Service() != "worker" || !failWorker.CompareAndSwap(true, false) {
			_ = r.Replace()
			return
		}
		r.Go(func() {
			select {
			case <-ctx.Done():
			case <-time.After(300 * time.Millisecond):
				_ = r.Fail("ECS deployment circuit breaker: tasks failed to start", true)
			}
		})
	})
	f := newFixture(t, "ret_fail_user", Options{Services: services, Controller: controller, RetirePreviousAfter: grace})

	started := time.Now()
	r1 := f.rotate()
	if r1.Status != types.ExecutionStatusFailed || r1.Error != "DeploymentFailed" {
		t.Fatalf("status %s, error %s, cause %s\n%s", r1.Status, r1.Error, r1.Cause, strings.Join(f.trace(r1.Token), "\n"))
	}
	tr := f.trace(r1.Token)
	for _, s := range []string{"RetirementPolicy", "RetireOrDone", workflow.StateRetirePrevious} {
		if slices.ContainsFunc(tr, func(l string) bool { return strings.HasSuffix(l, "Entered "+s) }) {
			t.Fatalf("a failed redeploy entered %s:\n%s", s, strings.Join(tr, "\n"))
		}
	}
	current, previous := f.bothLogIn()
	for _, u := range []string{current.Username, previous.Username} {
		if v := f.validUntil(u); v != "infinity" && v != "none" {
			t.Fatalf("after a failed redeploy %s has VALID UNTIL %s", u, v)
		}
	}
	// Well past the grace, by the server's clock: still two valid credentials.
	f.waitServerPast(started.Add(grace))
	f.bothLogIn()

	// The operator redeploys; the next rotation completes and retires its previous user.
	if _, err := f.b.ECS.UpdateService(f.ctx, &ecs.UpdateServiceInput{Cluster: aws.String("prod"), Service: aws.String("worker"), ForceNewDeployment: true}); err != nil {
		t.Fatal(err)
	}
	r2 := f.rotate()
	f.mustSucceed(r2)
	if r2.Retirement == nil || r2.Retirement.ValidUntil == nil || r2.Retirement.User != current.Username {
		t.Fatalf("retirement after recovery %+v, want %s retired", r2.Retirement, current.Username)
	}
	f.waitServerPast(*r2.Retirement.ValidUntil)
	f.refusedEverywhere(workflow.StagePrevious)
	f.logsIn(workflow.StageCurrent)
	f.noSecrets()
}
