package fleet

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pgrotate/pgrotate/local/cause"
	"github.com/pgrotate/pgrotate/workflow"
)

// task is one process of the app.
type task struct {
	arn, id  string
	user     string
	password workflow.Password
	cmd      *exec.Cmd
	addr     string // host:port of its HTTP server, once READY

	ready    chan struct{} // closed once addr is known
	exited   chan struct{} // closed once the process has been reaped
	stopping atomic.Bool   // told to stop: its exit is expected
	signaled atomic.Bool   // sent SIGTERM: a request it closes without an answer was cut by its shutdown
	stopOnce sync.Once

	mu       sync.Mutex // guards the load loop's handles
	loadStop context.CancelFunc
	loadDone chan struct{}

	log *logTail
}

// launch starts the process of task arn with the current secret in its environment and
// waits until it listens.
func (f *Fleet) launch(ctx context.Context, arn string) (*task, error) {
	f.mu.Lock()
	closed, secret := f.closed, f.secret
	f.mu.Unlock()
	if closed {
		return nil, errors.New("launch task: the fleet is closed")
	}
	s, err := secret(ctx)
	if err != nil {
		return nil, fmt.Errorf("launch task: read the app secret: %w", err)
	}
	t := &task{
		arn: arn, id: arn[strings.LastIndex(arn, "/")+1:], user: s.Username, password: s.Password,
		ready: make(chan struct{}), exited: make(chan struct{}), loadDone: make(chan struct{}),
		log: &logTail{},
	}
	close(t.loadDone) // no load loop yet
	t.cmd = exec.Command(f.opts.Binary)
	t.cmd.Env = f.env(s)
	// Its own process group, so a Ctrl-C in the terminal reaches only pgrotate, which stops
	// the tasks in order; and told to stop if pgrotate dies.
	t.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	t.cmd.Stderr = t.log
	stdout, err := t.cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("launch task %s: %w", t.id, err)
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil, errors.New("launch task: the fleet is closed")
	}
	if err := t.cmd.Start(); err != nil {
		f.mu.Unlock()
		return nil, fmt.Errorf("launch task %s: %w", t.id, err)
	}
	f.tasks[arn] = t
	f.mu.Unlock()
	f.wg.Go(func() { f.reap(t, stdout) })
	f.event(Event{Task: t.id, Kind: EventLaunched, User: t.user, Detail: "pid " + strconv.Itoa(t.cmd.Process.Pid)})

	timer := time.NewTimer(f.opts.HealthTimeout)
	defer timer.Stop()
	select {
	case <-t.ready:
		return t, nil
	case <-t.exited:
		err = fmt.Errorf("task %s exited before listening: %s", t.id, t.log.tail())
	case <-timer.C:
		err = fmt.Errorf("task %s did not listen within %s", t.id, f.opts.HealthTimeout)
	case <-ctx.Done():
		err = fmt.Errorf("launch task %s: %w", t.id, ctx.Err())
	}
	// It never served: no drain to wait for.
	t.stopLoad()
	select {
	case <-t.exited:
	default:
		_ = syscall.Kill(-t.cmd.Process.Pid, syscall.SIGKILL)
	}
	return nil, err
}

// env is the task's environment: what ECS injects from the secret, and nothing of
// pgrotate's own environment (no PG* variable can redirect the app).
func (f *Fleet) env(s workflow.AppSecret) []string {
	env := []string{
		"DB_HOST=" + s.Host,
		"DB_PORT=" + strconv.Itoa(s.Port),
		"DB_NAME=" + s.DBName,
		"DB_USER=" + s.Username,
		"DB_PASSWORD=" + s.Password.Reveal(),
		"DB_SSLMODE=" + s.TLSMode(),
		"LISTEN_ADDR=127.0.0.1:0",
		"DRAIN_TIMEOUT=" + f.opts.Drain.String(),
	}
	if f.opts.SSLRootCert != "" {
		env = append(env, "DB_SSLROOTCERT="+f.opts.SSLRootCert)
	}
	if len(s.Replicas) > 0 {
		env = append(env, "DB_REPLICA_HOST="+s.Replicas[0].Host, "DB_REPLICA_PORT="+strconv.Itoa(s.Replicas[0].Port))
	}
	if f.opts.WorkTable != "" {
		env = append(env, "WORK_TABLE="+f.opts.WorkTable)
	}
	return env
}

// reap reads the READY line, then waits for the process to exit and forgets the task.
func (f *Fleet) reap(t *task, stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	announced := false
	for sc.Scan() {
		if addr, ok := strings.CutPrefix(sc.Text(), "READY "); ok && !announced {
			t.addr, announced = strings.TrimSpace(addr), true
			close(t.ready)
		}
	}
	_, _ = io.Copy(io.Discard, stdout)
	err := t.cmd.Wait()
	f.mu.Lock()
	delete(f.tasks, t.arn)
	e, svc := f.ecs, f.svc
	f.mu.Unlock()
	close(t.exited)
	if t.stopping.Load() {
		f.event(Event{Task: t.id, Kind: EventStopped, User: t.user, Detail: exitDetail(err)})
		return
	}
	f.stats.crash()
	f.event(Event{Task: t.id, Kind: EventCrashed, User: t.user, Detail: exitDetail(err) + ": " + t.log.tail()})
	t.stopLoad()
	if e != nil {
		// ECS notices a task that stopped on its own.
		if r, rerr := e.Rollout(svc.Cluster, svc.Service); rerr == nil {
			_ = r.Stopped(t.arn)
		}
	}
}

func exitDetail(err error) string {
	if err == nil {
		return "exit 0"
	}
	return err.Error()
}

// waitHealthy polls /healthz until it answers 200, then starts the task's load.
func (f *Fleet) waitHealthy(ctx context.Context, t *task) error {
	deadline := time.Now().Add(f.opts.HealthTimeout)
	last := "no answer"
	for {
		select {
		case <-t.ready:
		case <-t.exited:
			return fmt.Errorf("task %s exited: %s", t.id, t.log.tail())
		case <-ctx.Done():
			return ctx.Err()
		}
		code, body, err := f.get(ctx, t, "/healthz")
		switch {
		case err == nil && code == http.StatusOK:
			f.event(Event{Task: t.id, Kind: EventHealthy, User: t.user})
			f.startLoad(t)
			return nil
		case err != nil:
			last = err.Error()
		default:
			last = fmt.Sprintf("HTTP %d %s", code, body)
		}
		if time.Now().After(deadline) {
			f.event(Event{Task: t.id, Kind: EventUnhealthy, User: t.user, Detail: last})
			return fmt.Errorf("task %s not healthy within %s: %s", t.id, f.opts.HealthTimeout, last)
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-t.exited:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// get sends one GET to the task and returns the status and the (short) body.
func (f *Fleet) get(ctx context.Context, t *task, path string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+t.addr+path, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return resp.StatusCode, strings.TrimSpace(string(body)), nil
}

// startLoad sends /work to the task, one request at a time, until stopLoad.
func (f *Fleet) startLoad(t *task) {
	if f.opts.WorkInterval < 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopping.Load() {
		cancel()
		return
	}
	t.loadStop, t.loadDone = cancel, done
	f.wg.Go(func() {
		defer close(done)
		for {
			// ctx ends the loop between requests; the request itself runs to its end
			// (the HTTP client's timeout bounds it), so one in flight when the task is
			// stopped is still counted, success or failure.
			f.work(context.WithoutCancel(ctx), t, "/work", false)
			select {
			case <-ctx.Done():
				return
			case <-t.exited:
				return
			case <-time.After(f.opts.WorkInterval):
			}
		}
	})
}

// stopLoad marks the task stopping, ends its load loop and returns a channel closed once
// the loop has returned.
func (t *task) stopLoad() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopping.Store(true)
	if t.loadStop != nil {
		t.loadStop()
	}
	return t.loadDone
}

// work sends one /work request and records its outcome. A request cut short by the
// fleet's own cancellation is not counted.
func (f *Fleet) work(ctx context.Context, t *task, path string, draining bool) {
	at := time.Now()
	code, body, err := f.get(ctx, t, path)
	if ctx.Err() != nil {
		return
	}
	fail := RequestFailure{Task: t.id, Draining: draining, Failure: cause.Failure{User: t.user, At: at}}
	switch {
	case err != nil:
		fail.Reason = "request: " + err.Error()
		fail.Cause = requestCause(err, t.signaled.Load())
	case code != http.StatusOK:
		fail.Reason = fmt.Sprintf("HTTP %d %s", code, body)
		fail.Cause, fail.SQLState = answerCause(body)
	}
	f.stats.record(fail, fail.Reason == "")
}

// requestCause classifies a request that got no answer. A task that was sent SIGTERM and
// closed the connection cut the request; otherwise the task was not there to answer.
func requestCause(err error, signaled bool) cause.Cause {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return cause.ServerUnavailable
	case signaled:
		return cause.CutByShutdown
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return cause.ServerUnavailable
	default:
		return cause.Other // a timeout, a malformed answer
	}
}

// answerCause classifies the app's error answer, {"error": "SQLSTATE 28P01"} or
// {"error": "connection error"} (see examples/app's failureReason).
func answerCause(body string) (cause.Cause, string) {
	var ans struct {
		Error string `json:"error"`
	}
	if json.Unmarshal([]byte(body), &ans) != nil {
		return cause.Other, ""
	}
	if code, ok := strings.CutPrefix(ans.Error, "SQLSTATE "); ok {
		return cause.OfSQLState(code), code
	}
	if ans.Error == "connection error" {
		return cause.ServerUnavailable, ""
	}
	return cause.Other, ""
}

// stop stops a task as ECS does behind a load balancer: no more load, and the request in
// flight may finish (for up to the deregistration delay); then (with burst) a few requests
// left in flight, SIGTERM, and SIGKILL to its process group if it has not exited within the
// stop timeout. It returns once the process has exited.
func (f *Fleet) stop(t *task, reason string, burst bool) {
	t.stopOnce.Do(func() {
		dereg := time.NewTimer(f.opts.DeregistrationDelay)
		select {
		case <-t.stopLoad():
		case <-dereg.C:
		}
		dereg.Stop()
		var inflight sync.WaitGroup
		if burst && f.opts.Burst > 0 && t.addr != "" {
			f.burst(t, &inflight)
		}
		f.event(Event{Task: t.id, Kind: EventDraining, User: t.user, Detail: reason})
		t.signaled.Store(true)
		_ = t.cmd.Process.Signal(syscall.SIGTERM)
		timer := time.NewTimer(f.opts.StopTimeout)
		select {
		case <-t.exited:
			timer.Stop()
		case <-timer.C:
			_ = syscall.Kill(-t.cmd.Process.Pid, syscall.SIGKILL)
		}
		inflight.Wait()
	})
	<-t.exited
}

// burst sends f.opts.Burst requests that sleep BurstHold before querying, and
// returns once the task is handling all of them (it logs "work started" with that sleep for
// each), so they are in flight when SIGTERM arrives. No clock of ours bounds the wait, as a
// busy machine may take long to accept them: it ends when they started, ended (an answer,
// an error, or the client's timeout) or the process exited. Only held starts count: the
// load loop's last "work started" may still be in the log pipe when the burst begins, and
// counting it would send SIGTERM before the last burst request was accepted.
func (f *Fleet) burst(t *task, inflight *sync.WaitGroup) {
	before := t.log.heldStarted()
	path := "/work?sleep=" + f.opts.BurstHold.String()
	var sent sync.WaitGroup
	for range f.opts.Burst {
		sent.Add(1)
		inflight.Go(func() {
			defer sent.Done()
			f.work(context.Background(), t, path, true)
		})
	}
	ended := make(chan struct{})
	go func() { sent.Wait(); close(ended) }()
	for t.log.heldStarted() < before+f.opts.Burst {
		select {
		case <-t.exited:
			return
		case <-ended:
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// logTail keeps the last lines of a task's log (JSON lines that never hold the password)
// and counts the held requests (?sleep= more than 0) it started.
type logTail struct {
	mu      sync.Mutex
	partial []byte
	lines   []string
	held    int
}

const tailLines = 20

func (l *logTail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		line := string(l.partial[:i])
		l.partial = l.partial[i+1:]
		if heldStart(line) {
			l.held++
		}
		l.lines = append(l.lines, line)
		if len(l.lines) > tailLines {
			l.lines = l.lines[len(l.lines)-tailLines:]
		}
	}
	return len(p), nil
}

func (l *logTail) heldStarted() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held
}

// heldStart reports whether line is the app's "work started" for a request with a sleep:
// slog's JSON handler writes the duration in nanoseconds (examples/app's work).
func heldStart(line string) bool {
	if !strings.Contains(line, `"msg":"work started"`) {
		return false
	}
	var rec struct {
		Msg   string `json:"msg"`
		Sleep int64  `json:"sleep"`
	}
	return json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "work started" && rec.Sleep > 0
}

func (l *logTail) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := min(len(l.lines), 5)
	return strings.Join(l.lines[len(l.lines)-n:], "\n")
}
