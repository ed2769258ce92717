package backend

// Execution tests for issue 8 ("Holds on real AWS"): idle VPC functions
// (Lambda.ResourceNotReadyException on every step), a primary that stops during SetPassword
// (restarted, or kept down), and a caught Lambda error that RotationFailed must not retry.
// The real ASL in the real interpreter, the real handlers, the real PostgreSQL primary and
// replica; TimeScale shrinks the deployed Wait and Retry timings uniformly, as the other
// execution tests do.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/pgrotate/pgrotate/internal/testctx"
	"github.com/pgrotate/pgrotate/local/pgcluster"
	"github.com/pgrotate/pgrotate/local/pgcluster/pgtest"
	"github.com/pgrotate/pgrotate/local/probe"
	"github.com/pgrotate/pgrotate/local/sfnlocal"
	"github.com/pgrotate/pgrotate/rotator"
	"github.com/pgrotate/pgrotate/tasks"
	"github.com/pgrotate/pgrotate/workflow"
)

// idleMessage is the Invoke API's description of ResourceNotReadyException
// (https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html).
const idleMessage = "The function is inactive and its VPC connection is no longer available. Wait for the VPC connection to reestablish and try again."

// keepPrimaryRunning restarts the shared primary when the test ends, whatever happened, so
// that the tests after this one find it up.
func keepPrimaryRunning(t *testing.T, c *pgcluster.Cluster) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := testctx.CleanupContext(t)
		defer cancel()
		if err := c.Restart(ctx, c.Primary); err != nil {
			t.Errorf("restart the primary: %v", err)
		}
		if err := c.WaitReplayed(ctx); err != nil {
			t.Errorf("wait for the replica: %v", err)
		}
	})
}

// Issue 8, item 2: after a long idle time every function of the rotation meets
// Lambda.ResourceNotReadyException, twice, before the invocation gets through. The rotation
// still succeeds, each function running once per step.
func TestIdleFunctionsOnEveryStep(t *testing.T) {
	const idleTimes = 2
	states := map[string]string{
		resource("preflight"): workflow.StatePreflight, resource("cloneuser"): workflow.StateCloneUser,
		resource("setpassword"): workflow.StateSetPassword, resource("testlogin"): workflow.StateTestLogin,
		resource("checkreplicas"): workflow.StateCheckReplicas, resource("rotator"): workflow.StatePromote,
		resource("redeploy"): "UpdateService", resource("checkrollout"): "CheckRollout",
	}
	var (
		mu  sync.Mutex
		met = map[string]int{} // resource → service errors met
		ran = map[string]int{} // resource → function runs
	)
	f := newFixture(t, "exec_idle_user", Options{
		Services: []workflow.Service{{Cluster: "prod", Service: "api"}},
		Intercept: func(res string, next sfnlocal.Handler) sfnlocal.Handler {
			if _, ok := states[res]; !ok {
				return next
			}
			counted := func(ctx context.Context, payload []byte) ([]byte, error) {
				mu.Lock()
				ran[res]++
				mu.Unlock()
				return next(ctx, payload)
			}
			return sfnlocal.ServiceErrors(counted, func([]byte) *sfnlocal.ServiceError {
				mu.Lock()
				defer mu.Unlock()
				if met[res] < idleTimes {
					met[res]++
					return &sfnlocal.ServiceError{Code: "ResourceNotReadyException", Message: idleMessage}
				}
				return nil
			})
		},
	})
	before, _ := f.secret(workflow.StageCurrent)
	r := f.rotate()
	f.mustSucceed(r)

	tr := f.trace(r.Token)
	for res, state := range states {
		if n := count(tr, "LambdaFunctionFailed "+state+" Lambda.ResourceNotReadyException"); n != idleTimes {
			t.Errorf("%s met Lambda.ResourceNotReadyException %d times, want %d\n%s", state, n, idleTimes, strings.Join(tr, "\n"))
		}
		mu.Lock()
		if ran[res] != 1 {
			t.Errorf("the %s function ran %d times, want once", state, ran[res])
		}
		mu.Unlock()
	}
	if current, _ := f.bothLogIn(); current.Username != workflow.Alternate(before.Username) {
		t.Fatalf("AWSCURRENT is %s", current.Username)
	}
	t.Logf("rotation with %d idle-function failures per step took %s", idleTimes, r.Ended.Sub(r.Started).Round(time.Millisecond))
	f.noSecrets()
}

// startProbe logs in continually with AWSCURRENT (read from the secret store each round) on
// the primary and the replica until the returned stop is called.
func startProbe(f *fixture) (stop func() probe.Report) {
	f.t.Helper()
	dsn := func(s *pgcluster.Server) string {
		return fmt.Sprintf("host=%s port=%d dbname=db_%s sslmode=verify-full sslrootcert=%s", s.Host, s.Port, f.user, f.c.CAFile)
	}
	p, err := probe.New([]probe.Target{{Name: probe.TargetPrimary, DSN: dsn(f.c.Primary)}, {Name: probe.TargetReplica, DSN: dsn(f.c.Replica)}},
		probe.Options{Interval: 50 * time.Millisecond, Credentials: func() []probe.Credential {
			s, _, err := f.b.Secret(context.Background(), workflow.StageCurrent)
			if err != nil {
				return nil
			}
			return []probe.Credential{{User: s.Username, Password: s.Password}}
		}})
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	return func() probe.Report {
		cancel()
		if err := <-done; err != nil {
			f.t.Fatalf("probe: %v", err)
		}
		return p.Report()
	}
}

// Issue 8, item 3: the primary stops (fast shutdown, as in a restart or a Multi-AZ failover)
// during SetPassword and comes back on the same endpoint after SetPassword has met it down
// twice. The state machine rides it out: the rotation succeeds without a redrive, and no
// login with AWSCURRENT is ever refused — the probe's only failures are connections to the
// primary while it is down.
func TestPrimaryRestartsDuringSetPassword(t *testing.T) {
	c := pgtest.Cluster(t)
	var (
		armed       atomic.Bool
		unavailable atomic.Int32
		restarted   = make(chan error, 1)
		stopErr     = make(chan error, 1)
	)
	f := newFixture(t, "exec_restart_user", Options{
		Services: []workflow.Service{{Cluster: "prod", Service: "api"}},
		// A fifth of the deployed timings: the DatabaseUnavailable retries span 73 s on average
		// here (367 s deployed), CheckReplicas' ReplicaNotReady retries 28 s.
		TimeScale: 0.2,
		Intercept: func(res string, next sfnlocal.Handler) sfnlocal.Handler {
			if res != resource("setpassword") {
				return next
			}
			return func(ctx context.Context, payload []byte) ([]byte, error) {
				if armed.CompareAndSwap(true, false) {
					stopErr <- c.Stop(c.Primary)
				}
				out, err := next(ctx, payload)
				var du *workflow.DatabaseUnavailable
				if errors.As(err, &du) && unavailable.Add(1) == 2 {
					go func() {
						began := time.Now()
						err := c.Restart(context.Background(), c.Primary)
						t.Logf("primary restarted in %s: %v", time.Since(began).Round(time.Millisecond), err)
						restarted <- err
					}()
				}
				return out, err
			}
		},
	})
	keepPrimaryRunning(t, c)
	primary := workflow.Endpoint{Host: c.Primary.Host, Port: c.Primary.Port}.String()
	armed.Store(true)

	stopProbe := startProbe(f)
	r, err := f.b.Rotate(f.ctx) // not f.rotate: it reads the primary's verifiers, and the primary may be down
	report := stopProbe()
	if err != nil {
		t.Fatal(err)
	}
	if err := <-stopErr; err != nil {
		t.Fatalf("stop the primary: %v", err)
	}
	select {
	case err := <-restarted:
		if err != nil {
			t.Fatalf("restart the primary: %v", err)
		}
	default:
		t.Fatalf("the primary was never restarted: SetPassword met DatabaseUnavailable %d times; execution %s (%s: %s)\n%s",
			unavailable.Load(), r.Status, r.Error, r.Cause, strings.Join(f.trace(r.Token), "\n"))
	}
	f.seen(r)
	f.mustSucceed(r)

	tr := f.trace(r.Token)
	if n := count(tr, "LambdaFunctionFailed SetPassword DatabaseUnavailable"); n < 2 {
		t.Fatalf("SetPassword met DatabaseUnavailable %d times, want ≥ 2 (retried):\n%s", n, strings.Join(tr, "\n"))
	}
	if n := count(tr, "ExecutionRedriven"); n != 0 {
		t.Fatalf("the execution was redriven %d times", n)
	}
	wantStates := []string{workflow.StatePreflight, workflow.StateCloneUser, workflow.StateSetPassword, workflow.StateTestLogin,
		workflow.StateCheckReplicas, workflow.StatePromote, workflow.StateRedeploy}
	if got := topLevelEntered(tr); !slices.Equal(got, wantStates) {
		t.Fatalf("states entered %v, want %v", got, wantStates)
	}
	current, _ := f.bothLogIn()
	if _, v := f.secret(workflow.StageCurrent); v != r.Token || current.Username != "exec_restart_user_clone" {
		t.Fatalf("AWSCURRENT %s at %s, want exec_restart_user_clone at %s", current.Username, v, r.Token)
	}

	// No login with AWSCURRENT refused; the replica served throughout; the primary failed only
	// to connect while it was down.
	if report.Replica.Attempts == 0 || report.Primary.Attempts == 0 || report.Replica.Failed != 0 {
		t.Fatalf("probe: %+v, want attempts on both servers and no failure on the replica", report)
	}
	if report.Primary.Failed == 0 {
		t.Fatalf("probe: no failure on the primary at all: it was not down while the probe ran (%+v)", report.Primary)
	}
	for _, fl := range report.Failures {
		if fl.Target != probe.TargetPrimary || strings.Contains(fl.Reason, "SQLSTATE 28") || strings.Contains(fl.Reason, "authentication") {
			t.Fatalf("a login with AWSCURRENT was refused: %+v", fl)
		}
	}
	t.Logf("primary %s down for %d SetPassword attempts; rotation took %s; probe: primary %d/%d failed (down), replica %d/%d failed, refused logins 0",
		primary, unavailable.Load(), r.Ended.Sub(r.Started).Round(time.Millisecond),
		report.Primary.Failed, report.Primary.Attempts, report.Replica.Failed, report.Replica.Attempts)
	f.noSecrets()
}

// Issue 8, item 3: the primary stops during SetPassword and stays down. Every retry meets
// DatabaseUnavailable; the execution fails with it, naming the primary's host:port, having
// changed nothing; restarted and redriven, the same execution resumes at SetPassword and
// succeeds.
func TestPrimaryKeptDown(t *testing.T) {
	c := pgtest.Cluster(t)
	var (
		armed   atomic.Bool
		stopErr = make(chan error, 1)
	)
	f := newFixture(t, "exec_down_user", Options{
		Services: []workflow.Service{{Cluster: "prod", Service: "api"}},
		Intercept: func(res string, next sfnlocal.Handler) sfnlocal.Handler {
			if res != resource("setpassword") {
				return next
			}
			return func(ctx context.Context, payload []byte) ([]byte, error) {
				if armed.CompareAndSwap(true, false) {
					stopErr <- c.Stop(c.Primary)
				}
				return next(ctx, payload)
			}
		},
	})
	keepPrimaryRunning(t, c)
	f.mustSucceed(f.rotate()) // a clean run first, so that AWSPREVIOUS exists
	before, beforeVersion := f.secret(workflow.StageCurrent)
	verifiers := f.roleVerifiers()
	primary := workflow.Endpoint{Host: c.Primary.Host, Port: c.Primary.Port}.String()

	armed.Store(true)
	r, err := f.b.Rotate(f.ctx) // not f.rotate: it reads the primary's verifiers
	if err != nil {
		t.Fatal(err)
	}
	if err := <-stopErr; err != nil {
		t.Fatalf("stop the primary: %v", err)
	}
	tr := f.trace(r.Token)
	if r.Status != types.ExecutionStatusFailed || r.Error != "DatabaseUnavailable" {
		t.Fatalf("status %s, error %s, cause %s\n%s", r.Status, r.Error, r.Cause, strings.Join(tr, "\n"))
	}
	if !strings.Contains(r.Cause, "database "+primary+" unavailable") || !strings.Contains(r.Cause, "connection refused") {
		t.Fatalf("cause %q does not name the primary %s and the cause", r.Cause, primary)
	}
	if r.StepErr == nil || !strings.Contains(r.StepErr.Error(), "in state "+workflow.StateSetPassword) {
		t.Fatalf("Secrets Manager's step error %v does not name SetPassword", r.StepErr)
	}
	// 1 + MaxAttempts: the retrier was used up.
	if n := count(tr, "LambdaFunctionFailed SetPassword DatabaseUnavailable"); n != 16 {
		t.Fatalf("SetPassword met DatabaseUnavailable %d times, want 16 (1 + MaxAttempts 15):\n%s", n, strings.Join(tr, "\n"))
	}
	if got := topLevelEntered(tr); !slices.Equal(got, []string{workflow.StatePreflight, workflow.StateCloneUser, workflow.StateSetPassword, workflow.StateNotifyFailure}) {
		t.Fatalf("states entered %v", got)
	}
	if !f.notified("DatabaseUnavailable", r.Token) {
		t.Fatalf("no alarm for %s: %q", r.Token, f.b.Notifications())
	}
	if _, v := f.secret(workflow.StageCurrent); v != beforeVersion {
		t.Fatalf("AWSCURRENT moved to %s while the primary was down", v)
	}
	d := f.describe(r.Token)
	if d.RedriveStatus != types.ExecutionRedriveStatusRedrivable {
		t.Fatalf("redrive status %s (%s)", d.RedriveStatus, aws.ToString(d.RedriveStatusReason))
	}
	t.Logf("kept down: failed after 16 SetPassword attempts in %s: %s", r.Ended.Sub(r.Started).Round(time.Millisecond), r.Cause)

	if err := c.Restart(f.ctx, c.Primary); err != nil {
		t.Fatal(err)
	}
	// The replica reconnects on its own retry interval; a redrive before it streams again
	// would spend CheckReplicas' scaled-down retries waiting for it.
	if err := c.WaitStreaming(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.seen(r)
	// Nothing half-done: no password changed, both users still log in.
	if after := f.roleVerifiers(); !maps(after, verifiers) {
		t.Fatal("a password changed although SetPassword never reached the primary")
	}
	f.bothLogIn()

	if _, err := f.b.Machine.RedriveExecution(f.ctx, &sfn.RedriveExecutionInput{ExecutionArn: aws.String(f.arn(r.Token))}); err != nil {
		t.Fatalf("RedriveExecution: %v", err)
	}
	for _, step := range []string{rotator.StepSet, rotator.StepTest, rotator.StepFinish} {
		if err := f.b.Step(f.ctx, step, r.Token); err != nil {
			t.Fatalf("%s after the redrive: %v\n%s", step, err, strings.Join(f.trace(r.Token), "\n"))
		}
	}
	status, err := f.b.Machine.Wait(f.ctx, f.arn(r.Token))
	if err != nil {
		t.Fatal(err)
	}
	tr = f.trace(r.Token)
	if status != types.ExecutionStatusSucceeded {
		t.Fatalf("redriven execution %s:\n%s", status, strings.Join(tr, "\n"))
	}
	want := []string{workflow.StatePreflight, workflow.StateCloneUser, workflow.StateSetPassword, workflow.StateNotifyFailure,
		workflow.StateSetPassword, workflow.StateTestLogin, workflow.StateCheckReplicas, workflow.StatePromote, workflow.StateRedeploy}
	if got := topLevelEntered(tr); !slices.Equal(got, want) || count(tr, "ExecutionRedriven") != 1 {
		t.Fatalf("states entered %v, want %v after one redrive\n%s", got, want, strings.Join(tr, "\n"))
	}
	current, previous := f.bothLogIn()
	if _, v := f.secret(workflow.StageCurrent); v != r.Token || current.Username != workflow.Alternate(before.Username) || previous.Username != before.Username {
		t.Fatalf("after the redrive: AWSCURRENT %s at %s, AWSPREVIOUS %s", current.Username, v, previous.Username)
	}
	f.collectVerifiers()
	f.noSecrets()
}

func maps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Issue 8, item 4: SetPassword's invocations keep failing with Lambda.ServiceException until
// its retries are spent. The execution fails through NotifyFailure (the alarm names the
// original error) and RotationFailed, which runs once: the rethrown error is not retried as
// if RotationFailed's own invocation had failed.
func TestRethrownLambdaErrorIsNotRetried(t *testing.T) {
	var fails atomic.Int32 // invocations of RotationFailed's rethrow function
	f := newFixture(t, "exec_rethrow_user", Options{
		Services: []workflow.Service{{Cluster: "prod", Service: "api"}},
		Intercept: func(res string, next sfnlocal.Handler) sfnlocal.Handler {
			switch res {
			case resource("setpassword"):
				return sfnlocal.ServiceErrors(next, func([]byte) *sfnlocal.ServiceError {
					return &sfnlocal.ServiceError{Code: "ServiceException", Message: "Lambda service error (injected)"}
				})
			case resource("rethrow"):
				return func(ctx context.Context, payload []byte) ([]byte, error) {
					var ev struct{ Action string }
					if json.Unmarshal(payload, &ev) == nil && ev.Action == tasks.ActionFail {
						fails.Add(1)
					}
					return next(ctx, payload)
				}
			}
			return next
		},
	})
	r, err := f.b.Rotate(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.seen(r)
	tr := f.trace(r.Token)
	if n := count(tr, "LambdaFunctionFailed SetPassword Lambda.ServiceException"); n != 7 {
		t.Fatalf("SetPassword failed %d times, want 7 (1 + MaxAttempts 6)", n)
	}
	if n := fails.Load(); n != 1 {
		t.Fatalf("RotationFailed invoked the fail action %d times, want once (no retry of the rethrown error)\n%s", n, strings.Join(tr, "\n"))
	}
	if r.Status != types.ExecutionStatusFailed || r.Error != "LambdaInvokeFailed" || !strings.Contains(r.Cause, "Lambda.ServiceException") {
		t.Fatalf("status %s, error %s, cause %s; want LambdaInvokeFailed naming Lambda.ServiceException\n%s", r.Status, r.Error, r.Cause, strings.Join(tr, "\n"))
	}
	if !f.notified("Lambda.ServiceException", r.Token) {
		t.Fatalf("the alarm does not name the original error: %q", f.b.Notifications())
	}
	f.logsIn(workflow.StageCurrent)
	f.noSecrets()
}
