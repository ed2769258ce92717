package backend

// Execution tests: the real statemachine/rotation.asl.json in aws-local-stepfunctions, its
// Task states calling the real Go handlers over HTTP, against the real PostgreSQL primary and
// replica of the test kit, with the in-process Secrets Manager and ECS. Each test has its own
// app user and database, so tests sharing the cluster do not interfere, and each ends with a
// scan for secret values (invariant 5).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/jackc/pgx/v5"

	"github.com/pgrotate/pgrotate/adapters/ecsservice"
	"github.com/pgrotate/pgrotate/adapters/executions"
	"github.com/pgrotate/pgrotate/adapters/postgres"
	"github.com/pgrotate/pgrotate/internal/testctx"
	localecs "github.com/pgrotate/pgrotate/local/ecs"
	"github.com/pgrotate/pgrotate/local/pgcluster"
	"github.com/pgrotate/pgrotate/local/pgcluster/pgtest"
	"github.com/pgrotate/pgrotate/local/sfnlocal"
	"github.com/pgrotate/pgrotate/rotator"
	"github.com/pgrotate/pgrotate/tasks"
	"github.com/pgrotate/pgrotate/workflow"
)

// fixture is one local deployment for one test: its own app user and database.
type fixture struct {
	t    *testing.T
	ctx  context.Context
	c    *pgcluster.Cluster
	b    *Backend
	user string
	logs *syncBuffer

	mu             sync.Mutex
	rotationTokens []string          // every RotationToken Step passed
	verifiers      map[string]string // SCRAM verifier -> role, every one seen
	texts          []string          // step errors and causes seen by the test
}

// newFixture bootstraps a backend for user in a database of its own. opts' Database,
// AppUser, Log and RotationTokens are set here.
func newFixture(t *testing.T, user string, opts Options) *fixture {
	t.Helper()
	c := pgtest.Cluster(t)
	ctx := testctx.Context(t)
	f := &fixture{t: t, ctx: ctx, c: c, user: user, logs: &syncBuffer{}, verifiers: map[string]string{}}

	// The bootstrap creates a table the app user owns; a database per test keeps one test's
	// table from belonging to another test's user.
	db := "db_" + user
	su, err := c.Superuser(ctx, c.Primary)
	if err != nil {
		t.Fatal(err)
	}
	_, err = su.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()+" OWNER "+pgx.Identifier{c.AdminUser()}.Sanitize())
	su.Close(context.WithoutCancel(ctx))
	if err != nil {
		t.Fatalf("create database %s: %v", db, err)
	}

	opts.Database = FromCluster(c)
	opts.Database.AppDB = db
	opts.AppUser = user
	opts.Log = slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.RotationTokens = func() (workflow.Password, error) {
		tok, err := newToken()
		if err != nil {
			return workflow.Password{}, err
		}
		tok = "rt-" + tok + tok
		f.mu.Lock()
		f.rotationTokens = append(f.rotationTokens, tok)
		f.mu.Unlock()
		return workflow.NewPassword(tok), nil
	}
	b, err := New(ctx, opts)
	if err != nil {
		t.Fatalf("new backend: %v", err)
	}
	f.b = b
	t.Cleanup(func() { b.Close() })
	// The replica must know the new database and user before anything logs in there.
	if err := c.WaitReplayed(ctx); err != nil {
		t.Fatal(err)
	}
	f.collectVerifiers()
	return f
}

// rotate runs one rotation as Secrets Manager does and records what it saw.
func (f *fixture) rotate() *Rotation {
	f.t.Helper()
	r, err := f.b.Rotate(f.ctx)
	if err != nil {
		f.t.Fatalf("rotate: %v", err)
	}
	f.seen(r)
	return r
}

func (f *fixture) seen(r *Rotation) {
	f.t.Helper()
	f.mu.Lock()
	if r.StepErr != nil {
		f.texts = append(f.texts, r.StepErr.Error())
	}
	f.texts = append(f.texts, r.Error, r.Cause)
	f.mu.Unlock()
	f.collectVerifiers()
}

// mustSucceed fails the test unless r is a clean rotation.
func (f *fixture) mustSucceed(r *Rotation) {
	f.t.Helper()
	if r.StepErr != nil || r.Status != types.ExecutionStatusSucceeded {
		f.t.Fatalf("rotation %s: step error %v, status %s, error %s, cause %s\nhistory:\n%s\nlogs:\n%s",
			r.Token, r.StepErr, r.Status, r.Error, r.Cause, strings.Join(f.trace(r.Token), "\n"), f.logs.String())
	}
}

// collectVerifiers records the SCRAM verifiers of the test's roles and of the admin.
func (f *fixture) collectVerifiers() {
	f.t.Helper()
	su, err := f.c.Superuser(f.ctx, f.c.Primary)
	if err != nil {
		f.t.Fatal(err)
	}
	defer su.Close(context.WithoutCancel(f.ctx))
	rows, err := su.Query(f.ctx, "SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY($1) AND rolpassword IS NOT NULL",
		[]string{f.user, workflow.Alternate(f.user), f.c.AdminUser()})
	if err != nil {
		f.t.Fatalf("read verifiers: %v", err)
	}
	defer rows.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	for rows.Next() {
		var role, verifier string
		if err := rows.Scan(&role, &verifier); err != nil {
			f.t.Fatalf("read verifiers: %v", err)
		}
		f.verifiers[verifier] = role
	}
	if err := rows.Err(); err != nil {
		f.t.Fatalf("read verifiers: %v", err)
	}
}

// secret reads the app secret at stage.
func (f *fixture) secret(stage string) (workflow.AppSecret, string) {
	f.t.Helper()
	s, version, err := f.b.Secret(f.ctx, stage)
	if err != nil {
		f.t.Fatalf("read %s: %v", stage, err)
	}
	return s, version
}

// logsIn checks that the version at stage logs in on the primary and on every replica, and
// returns it.
func (f *fixture) logsIn(stage string) (workflow.AppSecret, string) {
	f.t.Helper()
	s, version := f.secret(stage)
	for _, ep := range append([]workflow.Endpoint{s.Primary()}, s.Replicas...) {
		if _, _, err := postgres.Login(f.ctx, s.At(ep), postgres.Options{CABundle: f.c.CAFile}); err != nil {
			f.t.Fatalf("%s (user %s, version %s) does not log in on %s: %v", stage, s.Username, version, ep, err)
		}
	}
	return s, version
}

// bothLogIn checks invariant 1 and the second valid credential: AWSCURRENT and AWSPREVIOUS
// log in everywhere, as two different users.
func (f *fixture) bothLogIn() (current, previous workflow.AppSecret) {
	f.t.Helper()
	current, _ = f.logsIn(workflow.StageCurrent)
	previous, _ = f.logsIn(workflow.StagePrevious)
	if current.Username == previous.Username {
		f.t.Fatalf("AWSCURRENT and AWSPREVIOUS are both %s", current.Username)
	}
	return current, previous
}

func (f *fixture) arn(token string) string { return executions.ExecutionARN(StateMachineARN, token) }

func (f *fixture) events(token string) []types.HistoryEvent {
	f.t.Helper()
	evs, err := f.b.Machine.Events(f.arn(token))
	if err != nil {
		f.t.Fatalf("history of %s: %v", token, err)
	}
	return evs
}

func (f *fixture) describe(token string) *sfn.DescribeExecutionOutput {
	f.t.Helper()
	d, err := f.b.Machine.DescribeExecution(f.ctx, describe(f.arn(token)))
	if err != nil {
		f.t.Fatalf("describe %s: %v", token, err)
	}
	return d
}

// trace renders a history one line per event: "TaskStateEntered SetPassword",
// "LambdaFunctionFailed CheckReplicas ReplicaNotReady", "ExecutionFailed DeploymentFailed".
// Lambda events name the top-level state they ran in.
func (f *fixture) trace(token string) []string { return trace(f.events(token)) }

func trace(evs []types.HistoryEvent) []string {
	var out []string
	state := ""
	for _, ev := range evs {
		line := string(ev.Type)
		switch {
		case ev.StateEnteredEventDetails != nil:
			state = aws.ToString(ev.StateEnteredEventDetails.Name)
			line += " " + state
		case ev.StateExitedEventDetails != nil:
			line += " " + aws.ToString(ev.StateExitedEventDetails.Name)
		case ev.LambdaFunctionFailedEventDetails != nil:
			line += " " + state + " " + aws.ToString(ev.LambdaFunctionFailedEventDetails.Error)
		case ev.ExecutionFailedEventDetails != nil:
			line += " " + aws.ToString(ev.ExecutionFailedEventDetails.Error)
		case ev.ExecutionAbortedEventDetails != nil:
			line += " " + aws.ToString(ev.ExecutionAbortedEventDetails.Error)
		}
		out = append(out, line)
	}
	return out
}

func count(lines []string, line string) int {
	n := 0
	for _, l := range lines {
		if l == line {
			n++
		}
	}
	return n
}

// topLevelEntered lists the top-level states entered, in order.
func topLevelEntered(lines []string) []string {
	top := map[string]bool{
		"TaskStateEntered " + workflow.StatePreflight: true, "TaskStateEntered " + workflow.StateCloneUser: true,
		"TaskStateEntered " + workflow.StateSetPassword: true, "TaskStateEntered " + workflow.StateTestLogin: true,
		"TaskStateEntered " + workflow.StateCheckReplicas: true, "TaskStateEntered " + workflow.StatePromote: true,
		"MapStateEntered " + workflow.StateRedeploy: true, "TaskStateEntered " + workflow.StateNotifyFailure: true,
	}
	var out []string
	for _, l := range lines {
		if top[l] {
			_, name, _ := strings.Cut(l, " ")
			out = append(out, name)
		}
	}
	return out
}

// output decodes a succeeded execution's output.
func (f *fixture) output(token string) workflow.State {
	f.t.Helper()
	d := f.describe(token)
	var st workflow.State
	if err := json.Unmarshal([]byte(aws.ToString(d.Output)), &st); err != nil {
		f.t.Fatalf("output of %s: %v", token, err)
	}
	return st
}

// enteredInput returns the input of the n-th (from 0) entry into state.
func (f *fixture) enteredInput(token, state string, n int) string {
	f.t.Helper()
	i := 0
	for _, ev := range f.events(token) {
		if d := ev.StateEnteredEventDetails; d != nil && aws.ToString(d.Name) == state {
			if i == n {
				return aws.ToString(d.Input)
			}
			i++
		}
	}
	f.t.Fatalf("execution %s entered %s %d times, want more than %d", token, state, i, n)
	return ""
}

// steady checks that every service runs one COMPLETED deployment created after the
// promotion, whose tasks all launched after it, and returns the deployment ids.
func (f *fixture) steady(services []workflow.Service, promotedAt time.Time) map[workflow.Service]string {
	f.t.Helper()
	ecsSvc := ecsservice.New(f.b.ECS)
	ids := map[workflow.Service]string{}
	for _, svc := range services {
		deps, err := ecsSvc.Deployments(f.ctx, svc)
		if err != nil {
			f.t.Fatal(err)
		}
		if len(deps) != 1 || deps[0].RolloutState != "COMPLETED" || !deps[0].CreatedAt.After(promotedAt) {
			f.t.Fatalf("service %s: deployments %+v, want one COMPLETED created after %s", svc, deps, promotedAt)
		}
		launched, err := ecsSvc.TaskLaunchTimes(f.ctx, svc)
		if err != nil {
			f.t.Fatal(err)
		}
		if len(launched) == 0 {
			f.t.Fatalf("service %s runs no task", svc)
		}
		for _, at := range launched {
			if !at.After(promotedAt) {
				f.t.Fatalf("service %s runs a task launched at %s, before the promotion at %s", svc, at, promotedAt)
			}
		}
		ids[svc] = deps[0].ID
	}
	return ids
}

// holdFirst makes the next call of one handler block until release is called, then run
// the real handler on a context that outlives the execution (as a Lambda invocation keeps
// running after StopExecution) and report its error on done.
type holdFirst struct {
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
	done    chan error
	once    sync.Once
}

func newHold() *holdFirst {
	h := &holdFirst{entered: make(chan struct{}), release: make(chan struct{}), done: make(chan error, 1)}
	h.armed.Store(true)
	return h
}

func (h *holdFirst) Release() { h.once.Do(func() { close(h.release) }) }

func (h *holdFirst) wrap(next sfnlocal.Handler) sfnlocal.Handler {
	return func(ctx context.Context, payload []byte) ([]byte, error) {
		if !h.armed.CompareAndSwap(true, false) {
			return next(ctx, payload)
		}
		close(h.entered)
		<-h.release
		out, err := next(context.WithoutCancel(ctx), payload)
		h.done <- err
		return out, err
	}
}

func (f *fixture) waitClosed(ch <-chan struct{}, what string) {
	f.t.Helper()
	select {
	case <-ch:
	case <-f.ctx.Done():
		f.t.Fatalf("%s: %v", what, f.ctx.Err())
	}
}

// resource is the local ARN of a rotation Lambda function.
func resource(name string) string { return functionPrefix + name }

// injected is a fault a test injects into a handler; Lambda reports its type name.
type injected struct{ what string }

func (e *injected) Error() string { return "injected fault: " + e.what }

// 1. Two rotations in a row with two services: the users alternate, both credentials log in
// on the primary and the replica after each, and every service got a deployment that
// completed with tasks launched after the promotion.
func TestTwoRotationsInARow(t *testing.T) {
	services := []workflow.Service{{Cluster: "prod", Service: "api"}, {Cluster: "prod", Service: "worker"}}
	f := newFixture(t, "exec_pair_user", Options{Services: services})
	_, v0 := f.logsIn(workflow.StageCurrent)

	users := []string{"exec_pair_user_clone", "exec_pair_user"}
	previousVersion := v0
	for i, want := range users {
		r := f.rotate()
		f.mustSucceed(r)
		current, previous := f.bothLogIn()
		_, cv := f.secret(workflow.StageCurrent)
		_, pv := f.secret(workflow.StagePrevious)
		if current.Username != want || cv != r.Token || pv != previousVersion {
			t.Fatalf("rotation %d: AWSCURRENT %s (version %s), AWSPREVIOUS %s (version %s); want %s at %s, previous %s",
				i+1, current.Username, cv, previous.Username, pv, want, r.Token, previousVersion)
		}
		previousVersion = r.Token

		wantStates := []string{workflow.StatePreflight, workflow.StateCloneUser, workflow.StateSetPassword, workflow.StateTestLogin,
			workflow.StateCheckReplicas, workflow.StatePromote, workflow.StateRedeploy}
		if got := topLevelEntered(f.trace(r.Token)); !slices.Equal(got, wantStates) {
			t.Fatalf("rotation %d ran %v, want %v", i+1, got, wantStates)
		}
		out := f.output(r.Token)
		if out.Promotion == nil {
			t.Fatalf("rotation %d: no promotion in the output", i+1)
		}
		ids := f.steady(services, out.Promotion.PromotedAt)
		if len(out.Rollouts) != len(services) {
			t.Fatalf("rotation %d: %d rollouts, want %d", i+1, len(out.Rollouts), len(services))
		}
		for _, ro := range out.Rollouts {
			if !ro.Done || ro.RolloutState != "COMPLETED" || ro.DeploymentID == "" || ids[ro.Service] != ro.DeploymentID {
				t.Fatalf("rotation %d: rollout %+v; the service's deployment is %s", i+1, ro, ids[ro.Service])
			}
		}
	}
	forced := map[string]int{}
	for _, c := range f.b.ECS.CallsOf(localecs.OpUpdateService) {
		if c.ForceNewDeployment && c.Err == nil {
			for _, s := range c.Services {
				forced[s]++
			}
		}
	}
	if forced["api"] != 2 || forced["worker"] != 2 {
		t.Fatalf("forced deployments per service: %v, want 2 each", forced)
	}
	f.noSecrets()
}

// 2. Replay paused on the replica: CheckReplicas retries ReplicaNotReady; resumed in time the
// rotation succeeds; never resumed, the execution fails naming the replica and AWSCURRENT
// stays where it was.
func TestReplicaReplayPaused(t *testing.T) {
	var (
		resumeAfter atomic.Int32 // resume replay after this many ReplicaNotReady; 0: never
		notReady    atomic.Int32
		resumeErr   = make(chan error, 1)
	)
	c := pgtest.Cluster(t)
	f := newFixture(t, "exec_lag_user", Options{
		Services: []workflow.Service{{Cluster: "prod", Service: "api"}},
		// 13 attempts of CheckReplicas take about 2 s instead of minutes.
		RetryIntervalOverrides: map[string]time.Duration{workflow.StateCheckReplicas: 150 * time.Millisecond},
		Intercept: func(res string, next sfnlocal.Handler) sfnlocal.Handler {
			if res != resource("checkreplicas") {
				return next
			}
			return func(ctx context.Context, payload []byte) ([]byte, error) {
				out, err := next(ctx, payload)
				var nr *workflow.ReplicaNotReady
				if errors.As(err, &nr) {
					n := notReady.Add(1)
					if want := resumeAfter.Load(); want > 0 && n == want {
						resumeErr <- c.ResumeReplay(ctx)
					}
				}
				return out, err
			}
		},
	})
	t.Cleanup(func() {
		// Whatever happened, leave the shared replica replaying.
		ctx, cancel := testctx.CleanupContext(t)
		defer cancel()
		if err := c.ResumeReplay(ctx); err != nil {
			t.Errorf("resume replay: %v", err)
		}
		if err := c.WaitReplayed(ctx); err != nil {
			t.Errorf("wait for replay: %v", err)
		}
	})
	replica := workflow.Endpoint{Host: f.c.Replica.Host, Port: f.c.Replica.Port}.String()

	// Resumed in time.
	resumeAfter.Store(2)
	if err := f.c.PauseReplay(f.ctx); err != nil {
		t.Fatal(err)
	}
	r1 := f.rotate()
	f.mustSucceed(r1)
	select {
	case err := <-resumeErr:
		if err != nil {
			t.Fatalf("resume replay: %v", err)
		}
	default:
		t.Fatal("replay was never resumed: CheckReplicas did not see the replica lag")
	}
	tr := f.trace(r1.Token)
	if n := count(tr, "LambdaFunctionFailed CheckReplicas ReplicaNotReady"); n < 2 {
		t.Fatalf("CheckReplicas failed %d times with ReplicaNotReady, want ≥ 2 (retried):\n%s", n, strings.Join(tr, "\n"))
	}
	if current, _ := f.logsIn(workflow.StageCurrent); current.Username != "exec_lag_user_clone" {
		t.Fatalf("AWSCURRENT is %s", current.Username)
	}
	f.bothLogIn()
	t.Logf("resumed in time: %d ReplicaNotReady before success, rotation took %s", notReady.Load(), r1.Ended.Sub(r1.Started).Round(time.Millisecond))

	// Never resumed.
	resumeAfter.Store(0)
	notReady.Store(0)
	if err := f.c.PauseReplay(f.ctx); err != nil {
		t.Fatal(err)
	}
	_, before := f.secret(workflow.StageCurrent)
	r2 := f.rotate()
	if r2.Status != types.ExecutionStatusFailed || r2.Error != "ReplicaNotReady" {
		t.Fatalf("never resumed: status %s, error %s, cause %s\n%s", r2.Status, r2.Error, r2.Cause, strings.Join(f.trace(r2.Token), "\n"))
	}
	if !strings.Contains(r2.Cause, replica) || !strings.Contains(r2.Cause, "not ready") {
		t.Fatalf("cause %q does not name the replica %s", r2.Cause, replica)
	}
	if r2.StepErr == nil || !strings.Contains(r2.StepErr.Error(), workflow.StateCheckReplicas) {
		t.Fatalf("Secrets Manager's step error %v does not name CheckReplicas", r2.StepErr)
	}
	tr = f.trace(r2.Token)
	if n := count(tr, "LambdaFunctionFailed CheckReplicas ReplicaNotReady"); n < 12 {
		t.Fatalf("CheckReplicas failed %d times before giving up, want ≥ 12 (the ASL's MaxAttempts):\n%s", n, strings.Join(tr, "\n"))
	}
	if count(tr, "TaskStateEntered Promote") != 0 {
		t.Fatalf("the failed rotation entered Promote:\n%s", strings.Join(tr, "\n"))
	}
	current, after := f.logsIn(workflow.StageCurrent) // invariant 1, with the replica still paused
	if after != before || current.Username != "exec_lag_user_clone" {
		t.Fatalf("AWSCURRENT moved from %s to %s (%s) although the replica never caught up", before, after, current.Username)
	}
	if !f.notified("ReplicaNotReady", r2.Token) {
		t.Fatalf("no alarm for %s: %q", r2.Token, f.b.Notifications())
	}
	t.Logf("never resumed: failed after %d ReplicaNotReady in %s", notReady.Load(), r2.Ended.Sub(r2.Started).Round(time.Millisecond))
	if err := f.c.ResumeReplay(f.ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.c.WaitReplayed(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.noSecrets()
}

func (f *fixture) notified(errName, token string) bool {
	for _, m := range f.b.Notifications() {
		if strings.Contains(m, errName) && strings.Contains(m, token) {
			return true
		}
	}
	return false
}

// 3. A deployment that fails after Promote (circuit breaker with rollback): the execution
// fails with DeploymentFailed, both users log in, the alarm is published, and the next
// rotation's Preflight refuses with ServiceNotSteady until a deployment completes.
func TestDeploymentFailsAfterPromote(t *testing.T) {
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
	f := newFixture(t, "exec_deploy_user", Options{Services: services, Controller: controller})

	r1 := f.rotate()
	if r1.StepErr != nil {
		t.Fatalf("Secrets Manager steps: %v (the failure is after finishSecret)", r1.StepErr)
	}
	if r1.Status != types.ExecutionStatusFailed || r1.Error != "DeploymentFailed" || !strings.Contains(r1.Cause, "prod/worker") {
		t.Fatalf("status %s, error %s, cause %s\n%s", r1.Status, r1.Error, r1.Cause, strings.Join(f.trace(r1.Token), "\n"))
	}
	current, previous := f.bothLogIn()
	if _, v := f.secret(workflow.StageCurrent); v != r1.Token || current.Username != "exec_deploy_user_clone" || previous.Username != "exec_deploy_user" {
		t.Fatalf("after the failed deployment: AWSCURRENT %s at %s, AWSPREVIOUS %s; want the promoted %s", current.Username, v, previous.Username, r1.Token)
	}
	if !f.notified("DeploymentFailed", r1.Token) {
		t.Fatalf("no alarm for %s: %q", r1.Token, f.b.Notifications())
	}

	r2 := f.rotate()
	if r2.Status != types.ExecutionStatusFailed || r2.Error != "ServiceNotSteady" || !strings.Contains(r2.Cause, "prod/worker") {
		t.Fatalf("next rotation: status %s, error %s, cause %s\n%s", r2.Status, r2.Error, r2.Cause, strings.Join(f.trace(r2.Token), "\n"))
	}
	if got := topLevelEntered(f.trace(r2.Token)); !slices.Equal(got, []string{workflow.StatePreflight, workflow.StateNotifyFailure}) {
		t.Fatalf("the refused rotation ran %v", got)
	}
	if _, v := f.secret(workflow.StageCurrent); v != r1.Token {
		t.Fatalf("AWSCURRENT moved to %s on a refused rotation", v)
	}
	f.bothLogIn()

	// The operator redeploys; this deployment completes.
	if _, err := f.b.ECS.UpdateService(f.ctx, &ecs.UpdateServiceInput{Cluster: aws.String("prod"), Service: aws.String("worker"), ForceNewDeployment: true}); err != nil {
		t.Fatal(err)
	}
	r3 := f.rotate()
	f.mustSucceed(r3)
	current, _ = f.bothLogIn()
	if _, v := f.secret(workflow.StageCurrent); v != r3.Token || current.Username != "exec_deploy_user" {
		t.Fatalf("after recovery: AWSCURRENT %s at %s, want exec_deploy_user at %s", current.Username, v, r3.Token)
	}
	f.steady(services, f.output(r3.Token).Promotion.PromotedAt)
	f.noSecrets()
}

// 4. Re-drive. The first SetPassword invocation fails; the execution fails (through
// NotifyFailure and the alarm) or is stopped there. Re-driven — with RedriveExecution, or by
// Secrets Manager retrying createSecret, which resolves ExecutionAlreadyExists by redriving —
// it resumes at SetPassword with the same state and ends as a clean run: Preflight and
// CloneUser ran once, AWSCURRENT is on the token, the users alternated, the service
// redeployed.
func TestRedriveFromSetPassword(t *testing.T) {
	const (
		fail = iota + 1 // the first invocation returns an error
		stop            // the first invocation hangs until the execution is stopped, then errs
	)
	var (
		mode    atomic.Int32 // armed for the next invocation; 0: pass through
		calls   atomic.Int32
		entered = make(chan struct{}, 1)
		ended   = make(chan struct{}, 1)
	)
	services := []workflow.Service{{Cluster: "prod", Service: "api"}}
	f := newFixture(t, "exec_redrive_user", Options{
		Services: services,
		Intercept: func(res string, next sfnlocal.Handler) sfnlocal.Handler {
			if res != resource("setpassword") {
				return next
			}
			return func(ctx context.Context, payload []byte) ([]byte, error) {
				calls.Add(1)
				switch mode.Swap(0) {
				case fail:
					return nil, &injected{what: "SetPassword"}
				case stop:
					entered <- struct{}{}
					<-ctx.Done() // the runner went away: the execution was stopped
					ended <- struct{}{}
					return nil, &injected{what: "SetPassword interrupted"}
				}
				return next(ctx, payload)
			}
		},
	})
	redriveExecution := func(token string) {
		if _, err := f.b.Machine.RedriveExecution(f.ctx, &sfn.RedriveExecutionInput{ExecutionArn: aws.String(f.arn(token))}); err != nil {
			t.Fatalf("RedriveExecution: %v", err)
		}
	}
	createSecretRetry := func(token string) {
		if err := f.b.Step(f.ctx, rotator.StepCreate, token); err != nil {
			t.Fatalf("createSecret retry: %v", err)
		}
	}
	cases := []struct {
		name    string
		mode    int32
		redrive func(token string)
	}{
		{"failed, RedriveExecution", fail, redriveExecution},
		{"failed, createSecret retry", fail, createSecretRetry},
		{"stopped, createSecret retry", stop, createSecretRetry},
	}
	f.mustSucceed(f.rotate()) // a clean run first, so that AWSPREVIOUS exists
	for _, tc := range cases {
		before, beforeVersion := f.secret(workflow.StageCurrent)
		wantUser := workflow.Alternate(before.Username)
		calls.Store(0)
		mode.Store(tc.mode)
		token, err := newToken()
		if err != nil {
			t.Fatal(err)
		}
		if err := f.b.Step(f.ctx, rotator.StepCreate, token); err != nil {
			t.Fatalf("%s: createSecret: %v", tc.name, err)
		}
		wantStates := []string{workflow.StatePreflight, workflow.StateCloneUser, workflow.StateSetPassword}
		if tc.mode == stop {
			select {
			case <-entered:
			case <-f.ctx.Done():
				t.Fatalf("%s: SetPassword never ran", tc.name)
			}
			if _, err := f.b.Machine.StopExecution(f.ctx, &sfn.StopExecutionInput{ExecutionArn: aws.String(f.arn(token)),
				Error: aws.String("injected"), Cause: aws.String("stopped in SetPassword")}); err != nil {
				t.Fatal(err)
			}
			select {
			case <-ended:
			case <-f.ctx.Done():
				t.Fatalf("%s: the stopped SetPassword invocation never ended", tc.name)
			}
		} else {
			wantStates = append(wantStates, workflow.StateNotifyFailure)
		}
		// Secrets Manager's setSecret sees the failure and names the state.
		if err := f.b.Step(f.ctx, rotator.StepSet, token); err == nil || !strings.Contains(err.Error(), "in state "+workflow.StateSetPassword) {
			t.Fatalf("%s: setSecret: %v, want an error naming SetPassword\n%s", tc.name, err, strings.Join(f.trace(token), "\n"))
		}
		d := f.describe(token)
		wantStatus := types.ExecutionStatusFailed
		if tc.mode == stop {
			wantStatus = types.ExecutionStatusAborted
		}
		if d.Status != wantStatus || aws.ToString(d.Error) != "injected" || d.RedriveStatus != types.ExecutionRedriveStatusRedrivable {
			t.Fatalf("%s: after the failed SetPassword: %s (%s: %s), redrive %s (%s)\n%s", tc.name, d.Status, aws.ToString(d.Error),
				aws.ToString(d.Cause), d.RedriveStatus, aws.ToString(d.RedriveStatusReason), strings.Join(f.trace(token), "\n"))
		}
		if tc.mode == fail && !f.notified("injected", token) {
			t.Fatalf("%s: no alarm for %s: %q", tc.name, token, f.b.Notifications())
		}
		if _, v := f.secret(workflow.StageCurrent); v != beforeVersion {
			t.Fatalf("%s: AWSCURRENT moved to %s", tc.name, v)
		}
		f.bothLogIn()

		tc.redrive(token)
		for _, step := range []string{rotator.StepSet, rotator.StepTest, rotator.StepFinish} {
			if err := f.b.Step(f.ctx, step, token); err != nil {
				t.Fatalf("%s: %s after the redrive: %v\n%s", tc.name, step, err, strings.Join(f.trace(token), "\n"))
			}
		}
		status, err := f.b.Machine.Wait(f.ctx, f.arn(token))
		if err != nil {
			t.Fatal(err)
		}
		tr := f.trace(token)
		if status != types.ExecutionStatusSucceeded {
			t.Fatalf("%s: redriven execution %s:\n%s", tc.name, status, strings.Join(tr, "\n"))
		}
		wantStates = append(wantStates, workflow.StateSetPassword, workflow.StateTestLogin, workflow.StateCheckReplicas,
			workflow.StatePromote, workflow.StateRedeploy)
		if got := topLevelEntered(tr); !slices.Equal(got, wantStates) {
			t.Fatalf("%s: states entered %v, want %v (Preflight and CloneUser once)\n%s", tc.name, got, wantStates, strings.Join(tr, "\n"))
		}
		if count(tr, "ExecutionRedriven") != 1 || calls.Load() != 2 {
			t.Fatalf("%s: %d redrives, %d SetPassword invocations; want 1 and 2", tc.name, count(tr, "ExecutionRedriven"), calls.Load())
		}
		var first, second workflow.State
		if err := json.Unmarshal([]byte(f.enteredInput(token, workflow.StateSetPassword, 0)), &first); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(f.enteredInput(token, workflow.StateSetPassword, 1)), &second); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(first, second) || first.PendingUser != wantUser {
			t.Fatalf("%s: SetPassword ran with %+v, then after the redrive with %+v", tc.name, first, second)
		}
		current, previous := f.bothLogIn()
		if _, v := f.secret(workflow.StageCurrent); v != token || current.Username != wantUser {
			t.Fatalf("%s: AWSCURRENT %s at %s, want %s at %s", tc.name, current.Username, v, wantUser, token)
		}
		if _, pv := f.secret(workflow.StagePrevious); pv != beforeVersion || previous.Username != before.Username {
			t.Fatalf("%s: AWSPREVIOUS %s at %s, want the former AWSCURRENT %s", tc.name, previous.Username, pv, beforeVersion)
		}
		f.steady(services, f.output(token).Promotion.PromotedAt)
		f.collectVerifiers()
	}
	f.noSecrets()
}

// Invariant 8: a rotation held in CloneUser is superseded by a second one. The first
// execution is stopped with RotationSuperseded before it changes anything, its late
// invocations refuse to act, and the second rotation succeeds.
func TestSupersededRotation(t *testing.T) {
	hold := newHold()
	hold.armed.Store(false)
	f := newFixture(t, "exec_super_user", Options{
		Services: []workflow.Service{{Cluster: "prod", Service: "api"}},
		Intercept: func(res string, next sfnlocal.Handler) sfnlocal.Handler {
			if res != resource("cloneuser") {
				return next
			}
			return hold.wrap(next)
		},
	})
	t.Cleanup(hold.Release)
	f.mustSucceed(f.rotate()) // a first rotation, so that both users have a password
	hold.armed.Store(true)
	_, before := f.secret(workflow.StageCurrent)
	verifiersBefore := f.roleVerifiers()

	first, err := newToken()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.b.Step(f.ctx, rotator.StepCreate, first); err != nil {
		t.Fatal(err)
	}
	f.waitClosed(hold.entered, "CloneUser of the first rotation never ran")

	r := f.rotate() // a new token: createSecret stops the first execution
	f.mustSucceed(r)
	d := f.describe(first)
	if d.Status != types.ExecutionStatusAborted || aws.ToString(d.Error) != "RotationSuperseded" {
		t.Fatalf("the superseded execution is %s (%s: %s), want ABORTED by RotationSuperseded", d.Status, aws.ToString(d.Error), aws.ToString(d.Cause))
	}
	tr := f.trace(first)
	if got := topLevelEntered(tr); !slices.Equal(got, []string{workflow.StatePreflight, workflow.StateCloneUser}) {
		t.Fatalf("the superseded execution ran %v", got)
	}

	// The held invocation runs on after the stop, as a Lambda does: it must refuse.
	hold.Release()
	var sup *workflow.RotationSuperseded
	select {
	case err := <-hold.done:
		if !errors.As(err, &sup) {
			t.Fatalf("the late CloneUser returned %v, want RotationSuperseded", err)
		}
	case <-f.ctx.Done():
		t.Fatal("the late CloneUser never returned")
	}
	// So must a late SetPassword with the first execution's state.
	var st workflow.State
	if err := json.Unmarshal([]byte(f.enteredInput(first, workflow.StateCloneUser, 0)), &st); err != nil {
		t.Fatal(err)
	}
	late := tasks.NewSetPassword(f.b.Store, f.b.pg, f.b.log())
	if _, err := late.Handle(f.ctx, st); !errors.As(err, &sup) {
		t.Fatalf("a late SetPassword of the superseded rotation returned %v, want RotationSuperseded", err)
	}

	current, previous := f.bothLogIn()
	if _, v := f.secret(workflow.StageCurrent); v != r.Token || current.Username != "exec_super_user" {
		t.Fatalf("AWSCURRENT %s at %s, want exec_super_user at %s", current.Username, v, r.Token)
	}
	if _, pv := f.secret(workflow.StagePrevious); pv != before {
		t.Fatalf("AWSPREVIOUS is %s, want %s", pv, before)
	}
	// Only the second rotation changed a password, and only its pending user's.
	after := f.roleVerifiers()
	if after[previous.Username] != verifiersBefore[previous.Username] {
		t.Fatalf("the password of %s (AWSPREVIOUS) changed", previous.Username)
	}
	if after[current.Username] == verifiersBefore[current.Username] {
		t.Fatalf("the password of %s (AWSCURRENT) did not change", current.Username)
	}
	f.noSecrets()
}

// roleVerifiers returns role -> current verifier for the test's two users.
func (f *fixture) roleVerifiers() map[string]string {
	f.t.Helper()
	su, err := f.c.Superuser(f.ctx, f.c.Primary)
	if err != nil {
		f.t.Fatal(err)
	}
	defer su.Close(context.WithoutCancel(f.ctx))
	out := map[string]string{}
	for _, role := range []string{f.user, workflow.Alternate(f.user)} {
		var v string
		if err := su.QueryRow(f.ctx, "SELECT coalesce(rolpassword, '') FROM pg_authid WHERE rolname = $1", role).Scan(&v); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			f.t.Fatal(err)
		}
		out[role] = v
	}
	f.collectVerifiers()
	return out
}

// 5. No password, SCRAM verifier or RotationToken in any execution event (inputs and outputs
// included), handler log line, alarm or server log, across rotations. Every other test ends
// with the same scan of its own run.
func TestNoSecretValueAnywhere(t *testing.T) {
	f := newFixture(t, "exec_secret_user", Options{Services: []workflow.Service{{Cluster: "prod", Service: "api"}}})
	for range 3 {
		f.mustSucceed(f.rotate())
	}
	f.bothLogIn()
	secrets := f.noSecrets()
	if secrets.passwords < 4 || secrets.verifiers < 4 || secrets.tokens < 12 {
		t.Fatalf("scanned for %+v; want ≥ 4 passwords (3 rotations + bootstrap), ≥ 4 verifiers, ≥ 12 RotationTokens", secrets)
	}
	// The server log must really hold the rotation's statements, or the scan proves nothing.
	serverLog, err := f.c.ServerLog(f.c.Primary)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(serverLog), "statement: CREATE ROLE "+pgx.Identifier{workflow.Alternate(f.user)}.Sanitize()) {
		t.Fatal("the primary's log has no CREATE ROLE of the clone: log_statement=all is not in effect")
	}
	t.Logf("scanned for %+v", secrets)
}

// scanned counts the secret values a scan looked for.
type scanned struct{ passwords, verifiers, tokens int }

// noSecrets scans every execution of the backend (events with data, inputs, outputs), the
// handler log, the alarms, the errors the test saw and both server logs for every password
// in the secret store, every SCRAM verifier seen and every RotationToken passed.
func (f *fixture) noSecrets() scanned {
	f.t.Helper()
	f.collectVerifiers()
	type needle struct{ value, what string }
	var needles []needle
	var n scanned

	snap, err := f.b.Secrets.Snapshot()
	if err != nil {
		f.t.Fatal(err)
	}
	var store map[string]struct {
		Versions []struct {
			ID    string          `json:"id"`
			Value json.RawMessage `json:"value"`
		} `json:"versions"`
	}
	if err := json.Unmarshal(snap, &store); err != nil {
		f.t.Fatal(err)
	}
	for name, sec := range store {
		for _, v := range sec.Versions {
			var val struct {
				Password string `json:"password"`
			}
			if json.Unmarshal(v.Value, &val) != nil || val.Password == "" {
				f.t.Fatalf("version %s of %s has no password", v.ID, name)
			}
			needles = append(needles, needle{val.Password, fmt.Sprintf("the password of version %s of %s", v.ID, name)})
			n.passwords++
		}
	}
	f.mu.Lock()
	for v, role := range f.verifiers {
		what := "a SCRAM verifier of " + role
		needles = append(needles, needle{v, what})
		// SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>: the keys alone are secret too.
		if _, keys, ok := strings.Cut(strings.TrimPrefix(v, "SCRAM-SHA-256$"), "$"); ok {
			stored, server, _ := strings.Cut(keys, ":")
			needles = append(needles, needle{stored, what + " (StoredKey)"}, needle{server, what + " (ServerKey)"})
		}
		n.verifiers++
	}
	for _, tok := range f.rotationTokens {
		needles = append(needles, needle{tok, "a RotationToken"})
		n.tokens++
	}
	texts := slices.Clone(f.texts)
	f.mu.Unlock()

	haystacks := map[string]string{
		"the handler log":                   f.logs.String(),
		"the alarms":                        strings.Join(f.b.Notifications(), "\n"),
		"the test's step errors and causes": strings.Join(texts, "\n"),
	}
	for _, s := range []*pgcluster.Server{f.c.Primary, f.c.Replica} {
		b, err := f.c.ServerLog(s)
		if err != nil {
			f.t.Fatal(err)
		}
		haystacks["the server log of the "+s.Name] = string(b)
	}
	list, err := f.b.Machine.ListExecutions(f.ctx, &sfn.ListExecutionsInput{StateMachineArn: aws.String(StateMachineARN), MaxResults: 1000})
	if err != nil {
		f.t.Fatal(err)
	}
	if len(list.Executions) == 0 {
		f.t.Fatal("no execution to scan")
	}
	for _, ex := range list.Executions {
		arn := aws.ToString(ex.ExecutionArn)
		d, err := f.b.Machine.DescribeExecution(f.ctx, describe(arn))
		if err != nil {
			f.t.Fatal(err)
		}
		desc, err := json.Marshal(d)
		if err != nil {
			f.t.Fatal(err)
		}
		evs, err := f.b.Machine.Events(arn)
		if err != nil {
			f.t.Fatal(err)
		}
		history, err := json.Marshal(evs)
		if err != nil {
			f.t.Fatal(err)
		}
		haystacks["execution "+aws.ToString(ex.Name)] = string(desc) + "\n" + string(history)
	}

	for where, text := range haystacks {
		for _, nd := range needles {
			if len(nd.value) < 8 {
				f.t.Fatalf("%s is too short to scan for", nd.what)
			}
			escaped, _ := json.Marshal(nd.value) // as it would appear inside JSON
			if strings.Contains(text, nd.value) || strings.Contains(text, strings.Trim(string(escaped), `"`)) {
				// Never print the value itself.
				f.t.Errorf("%s appears in %s", nd.what, where)
			}
		}
	}
	return n
}
