package fleet

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/jackc/pgx/v5"

	"github.com/pgrotate/pgrotate/adapters/postgres"
	"github.com/pgrotate/pgrotate/internal/testctx"
	"github.com/pgrotate/pgrotate/local/backend"
	"github.com/pgrotate/pgrotate/local/cause"
	"github.com/pgrotate/pgrotate/local/pgcluster"
	"github.com/pgrotate/pgrotate/local/pgcluster/pgtest"
	"github.com/pgrotate/pgrotate/workflow"
)

var appBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fleet-test-")
	if err != nil {
		panic(err)
	}
	ctx, cancel := testctx.MainContext() // a build can take minutes on a busy machine
	appBinary, err = Build(ctx, dir)
	cancel()
	if err != nil {
		os.RemoveAll(dir)
		panic(err)
	}
	code := pgtest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

var svc = workflow.Service{Cluster: "demo", Service: "app"}

// harness is a local deployment (secrets, ECS, PostgreSQL) whose service runs on a fleet.
type harness struct {
	c      *pgcluster.Cluster
	b      *backend.Backend
	f      *Fleet
	events *eventLog
	// wrong, when set, makes the secret source hand new tasks a wrong password.
	wrong atomic.Bool
}

type eventLog struct {
	mu  sync.Mutex
	evs []Event
}

func (l *eventLog) add(ev Event) { l.mu.Lock(); l.evs = append(l.evs, ev); l.mu.Unlock() }

func (l *eventLog) count(kind string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, ev := range l.evs {
		if ev.Kind == kind {
			n++
		}
	}
	return n
}

// newHarness bootstraps user in a database of its own and starts tasks processes for it.
func newHarness(t *testing.T, ctx context.Context, user string, tasks int, opts Options) *harness {
	t.Helper()
	c := pgtest.Cluster(t)
	// A fresh name each run, so -count=N reruns on the package's cluster.
	db := createDatabase(t, ctx, c, user+"_"+strconv.FormatInt(time.Now().UnixNano()%1e9, 36))
	h := &harness{c: c, events: &eventLog{}}
	// The stop timings are the reference stack's (the defaults): a drain ends as soon as
	// the in-flight requests are done, so they cost nothing here.
	opts.Binary, opts.SSLRootCert, opts.Events = appBinary, c.CAFile, h.events.add
	opts.WorkTable = backend.DemoTableFor(user)
	f, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h.f = f
	dbOpts := backend.FromCluster(c)
	dbOpts.AppDB = db
	b, err := backend.New(ctx, backend.Options{
		Database: dbOpts, AppUser: user, Services: []workflow.Service{svc}, TasksPerService: tasks,
		Controller: f, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	h.b = b
	t.Cleanup(func() {
		_ = b.Close()
		if err := f.Close(); err != nil {
			t.Errorf("close fleet: %v", err)
		}
	})
	source := func(ctx context.Context) (workflow.AppSecret, error) {
		s, _, err := b.Secret(ctx, workflow.StageCurrent)
		if h.wrong.Load() {
			s.Password = workflow.NewPassword("not-the-password")
		}
		return s, err
	}
	if err := f.Start(ctx, b.ECS, svc, source); err != nil {
		t.Fatal(err)
	}
	return h
}

// createDatabase creates a database the kit's admin owns, so each test has its own table.
func createDatabase(t *testing.T, ctx context.Context, c *pgcluster.Cluster, name string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(c.DSN(c.Primary, c.AdminUser(), pgcluster.AppDatabase))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = c.AdminPassword()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	return name
}

// redeploy forces a new deployment and waits until it leaves IN_PROGRESS.
func (h *harness) redeploy(t *testing.T, ctx context.Context) (id, state string) {
	t.Helper()
	out, err := h.b.ECS.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: aws.String(svc.Cluster), Service: aws.String(svc.Service), ForceNewDeployment: true})
	if err != nil {
		t.Fatal(err)
	}
	id = aws.ToString(out.Service.Deployments[0].Id)
	for {
		d, err := h.b.ECS.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String(svc.Cluster), Services: []string{svc.Service}})
		if err != nil {
			t.Fatal(err)
		}
		for _, dep := range d.Services[0].Deployments {
			if aws.ToString(dep.Id) == id && dep.RolloutState != "IN_PROGRESS" {
				return id, string(dep.RolloutState)
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("deployment %s still in progress: %v", id, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (h *harness) runningTasks(t *testing.T, ctx context.Context) []string {
	t.Helper()
	out, err := h.b.ECS.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String(svc.Cluster), ServiceName: aws.String(svc.Service)})
	if err != nil {
		t.Fatal(err)
	}
	return out.TaskArns
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// A rolling deployment replaces every task: new ones healthy first, old ones drained, and
// the requests in flight at SIGTERM succeed (the password did not change).
func TestRollingDeployment(t *testing.T) {
	ctx := testctx.Context(t)
	h := newHarness(t, ctx, "fleet_roll", 2, Options{})
	before := h.f.PIDs()
	if len(before) != 2 {
		t.Fatalf("PIDs after Start = %v, want 2", before)
	}
	time.Sleep(300 * time.Millisecond) // some load on the first tasks
	if _, state := h.redeploy(t, ctx); state != "COMPLETED" {
		t.Fatalf("deployment %s, want COMPLETED", state)
	}
	for _, pid := range before {
		if alive(pid) {
			t.Errorf("old task pid %d still alive after the deployment completed", pid)
		}
	}
	after := h.f.PIDs()
	if len(after) != 2 || len(h.runningTasks(t, ctx)) != 2 {
		t.Fatalf("after: %d processes, %d RUNNING tasks, want 2 and 2", len(after), len(h.runningTasks(t, ctx)))
	}
	st := h.f.Stats()
	if st.Draining.Attempts != 2*DefaultBurst || st.Draining.Failed != 0 {
		t.Errorf("draining requests = %+v, want %d attempts and no failure: %+v", st.Draining, 2*DefaultBurst, st.Failures)
	}
	if st.Attempts <= st.Draining.Attempts || st.Failed != 0 || st.Crashed != 0 {
		t.Errorf("stats = %+v, want load beyond the bursts and no failure", st)
	}
	if got := h.events.count(EventStopped); got != 2 {
		t.Errorf("%d stopped events, want 2", got)
	}
	for _, c := range h.f.Credentials() {
		if c.User != "fleet_roll" {
			t.Errorf("a live task holds user %s", c.User)
		}
	}
}

// When the password changes under the running tasks (single-user rotation), the requests in
// flight at SIGTERM fail: proof that a draining task opens new database connections.
func TestDrainingTasksOpenNewConnections(t *testing.T) {
	ctx := testctx.Context(t)
	h := newHarness(t, ctx, "fleet_drain", 2, Options{})
	time.Sleep(300 * time.Millisecond)
	cur, curID, err := h.b.Secret(ctx, workflow.StageCurrent)
	if err != nil {
		t.Fatal(err)
	}
	pw, err := h.b.Store.RandomPassword(ctx, 32, ":/@\"'\\ ")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := postgres.OpenAdmin(ctx, workflow.Target{Endpoint: cur.Primary(), DBName: cur.DBName, User: h.c.AdminUser(), Password: workflow.NewPassword(h.c.AdminPassword())}, postgres.Options{CABundle: h.c.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.WithoutCancel(ctx))
	if _, _, err := admin.SetPassword(ctx, cur.Username, pw); err != nil {
		t.Fatal(err)
	}
	if err := h.c.WaitReplayed(ctx); err != nil {
		t.Fatal(err)
	}
	next := cur
	next.Password = pw
	const token = "00000000-0000-4000-8000-000000000001"
	if err := h.b.Store.PutPending(ctx, h.b.AppSecretARN, token, next, workflow.Password{}); err != nil {
		t.Fatal(err)
	}
	if err := h.b.Store.MoveCurrent(ctx, h.b.AppSecretARN, token, curID); err != nil {
		t.Fatal(err)
	}
	if _, state := h.redeploy(t, ctx); state != "COMPLETED" {
		t.Fatalf("deployment %s, want COMPLETED", state)
	}
	st := h.f.Stats()
	if st.Draining.Failed == 0 {
		t.Fatalf("no draining request failed after the password changed: %+v", st)
	}
	for _, f := range st.Failures {
		if !f.Draining || !strings.Contains(f.Reason, "28P01") || strings.Contains(f.Reason, pw.Reveal()) ||
			f.Cause != cause.AuthRefused || f.SQLState != "28P01" {
			t.Errorf("failure %+v, want a draining request refused with SQLSTATE 28P01 (auth_refused)", f)
		}
	}
	if st.ByCause[cause.AuthRefused] != st.Failed {
		t.Errorf("by cause = %v, want all %d auth_refused", st.ByCause, st.Failed)
	}
	for _, c := range h.f.Credentials() {
		if !c.Password.Equal(pw) {
			t.Errorf("a live task holds a stale password")
		}
	}
}

// A drain timeout shorter than a request cuts it: the app's shutdown gives up and closes
// the connection, and the report says so. (The defaults, the reference stack's, cut nothing:
// TestRollingDeployment.)
func TestShortDrainCutsRequests(t *testing.T) {
	ctx := testctx.Context(t)
	h := newHarness(t, ctx, "fleet_cut", 1, Options{Drain: 100 * time.Millisecond, BurstHold: 3 * time.Second})
	if _, state := h.redeploy(t, ctx); state != "COMPLETED" {
		t.Fatalf("deployment %s, want COMPLETED", state)
	}
	st := h.f.Stats()
	if st.Draining.Failed != DefaultBurst || st.ByCause[cause.CutByShutdown] != DefaultBurst {
		t.Fatalf("draining %+v, by cause %v: want all %d cut by shutdown; failures %+v", st.Draining, st.ByCause, DefaultBurst, st.Failures)
	}
	for _, f := range st.Failures {
		if !f.Draining || f.Cause != cause.CutByShutdown {
			t.Errorf("failure %+v, want a draining request cut by shutdown", f)
		}
	}
}

func TestRequestCauses(t *testing.T) {
	refused := &url.Error{Op: "Get", URL: "http://127.0.0.1:1/work", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}
	eof := &url.Error{Op: "Get", URL: "http://127.0.0.1:1/work", Err: io.EOF}
	tests := []struct {
		name     string
		err      error
		signaled bool
		body     string
		want     cause.Cause
		sqlstate string
	}{
		{"closed by a task told to stop", eof, true, "", cause.CutByShutdown, ""},
		{"closed by a task not told to stop", eof, false, "", cause.ServerUnavailable, ""},
		{"nobody listening", refused, true, "", cause.ServerUnavailable, ""},
		{"client timeout", &url.Error{Op: "Get", Err: context.DeadlineExceeded}, false, "", cause.Other, ""},
		{"credentials refused", nil, false, `{"error":"SQLSTATE 28P01"}`, cause.AuthRefused, "28P01"},
		{"database unreachable", nil, false, `{"error":"connection error"}`, cause.ServerUnavailable, ""},
		{"too many connections", nil, false, `{"error":"SQLSTATE 53300"}`, cause.ServerUnavailable, "53300"},
		{"query timeout", nil, false, `{"error":"timeout"}`, cause.Other, ""},
		{"not JSON", nil, false, `oops`, cause.Other, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got cause.Cause
			var code string
			if tt.err != nil {
				got = requestCause(tt.err, tt.signaled)
			} else {
				got, code = answerCause(tt.body)
			}
			if got != tt.want || code != tt.sqlstate {
				t.Errorf("cause %q, sqlstate %q; want %q, %q", got, code, tt.want, tt.sqlstate)
			}
		})
	}
}

// TestLogCountsHeldStarts feeds the lines the app's own slog JSON handler writes, split
// across writes as a pipe may deliver them: only a "work started" with a sleep counts, so
// the load loop's last line arriving late cannot stand in for a burst request.
func TestLogCountsHeldStarts(t *testing.T) {
	var out strings.Builder
	app := slog.New(slog.NewJSONHandler(&out, nil))
	app.Info("ready", "addr", "127.0.0.1:1")
	app.Info("work started", "sleep", time.Duration(0))
	app.Info("work done", "sleep", time.Second)
	app.Info("work started", "sleep", time.Second)
	app.Info("work started", "sleep", 10*time.Millisecond)
	app.Info("other", "note", `"msg":"work started"`)
	tests := []struct {
		name  string
		chunk int
	}{{"whole", len(out.String())}, {"byte by byte", 1}, {"seven bytes", 7}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &logTail{}
			b := []byte(out.String())
			for i := 0; i < len(b); i += tt.chunk {
				if _, err := l.Write(b[i:min(i+tt.chunk, len(b))]); err != nil {
					t.Fatal(err)
				}
			}
			if got := l.heldStarted(); got != 2 {
				t.Errorf("held starts = %d, want 2 (the two with a sleep)", got)
			}
			if !strings.Contains(l.tail(), `"msg":"other"`) {
				t.Errorf("tail %q lacks the last line", l.tail())
			}
		})
	}
}

func TestNewRefusesDrainBeyondStopTimeout(t *testing.T) {
	if _, err := New(Options{Binary: appBinary, Drain: time.Minute, StopTimeout: time.Minute}); err == nil || !strings.Contains(err.Error(), "shorter than the stop timeout") {
		t.Errorf("New = %v, want a drain/stop timeout error", err)
	}
}

// A new task that never becomes healthy fails the deployment, which rolls back: the old
// tasks keep running, the new processes are gone.
func TestUnhealthyDeploymentRollsBack(t *testing.T) {
	ctx := testctx.Context(t)
	h := newHarness(t, ctx, "fleet_fail", 2, Options{HealthTimeout: 2 * time.Second})
	before := h.f.PIDs()
	h.wrong.Store(true)
	if _, state := h.redeploy(t, ctx); state != "FAILED" {
		t.Fatalf("deployment %s, want FAILED", state)
	}
	after := h.f.PIDs()
	if len(after) != 2 {
		t.Fatalf("%d processes after the rollback, want the 2 old ones", len(after))
	}
	for _, pid := range before {
		if !alive(pid) {
			t.Errorf("old task pid %d died in a failed deployment", pid)
		}
	}
	if got := len(h.runningTasks(t, ctx)); got != 2 {
		t.Errorf("%d RUNNING tasks after the rollback, want 2", got)
	}
	if h.events.count(EventUnhealthy) != 2 {
		t.Errorf("%d unhealthy events, want 2", h.events.count(EventUnhealthy))
	}
}

// A task that dies on its own is STOPPED in ECS and counted; Close stops the rest and
// leaves no process behind.
func TestCrashAndClose(t *testing.T) {
	ctx := testctx.Context(t)
	h := newHarness(t, ctx, "fleet_crash", 2, Options{})
	pids := h.f.PIDs()
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for len(h.runningTasks(t, ctx)) != 1 {
		select {
		case <-ctx.Done():
			t.Fatalf("crashed task still RUNNING in ECS")
		case <-time.After(20 * time.Millisecond):
		}
	}
	if st := h.f.Stats(); st.Crashed != 1 {
		t.Errorf("crashed = %d, want 1", st.Crashed)
	}
	if err := h.f.Close(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("pid %d alive after Close", pid)
		}
	}
	if len(h.f.Credentials()) != 0 {
		t.Errorf("credentials after Close: %d", len(h.f.Credentials()))
	}
	// A deployment after Close fails instead of launching anything.
	if _, state := h.redeploy(t, ctx); state != "FAILED" {
		t.Errorf("deployment after Close: %s, want FAILED", state)
	}
}

func TestNewNeedsBinary(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("New without a binary succeeded")
	}
	if _, err := New(Options{Binary: "/nonexistent/app"}); err == nil {
		t.Error("New with a missing binary succeeded")
	}
}
