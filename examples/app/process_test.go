package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pgrotate/pgrotate/internal/testctx"
	"github.com/pgrotate/pgrotate/local/pgcluster"
	"github.com/pgrotate/pgrotate/local/pgcluster/pgtest"
)

// buildApp builds this command into a temp dir, to run it as ECS would: a real process.
func buildApp(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "app")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// stderrLines collects the process's log lines and lets a test wait for one.
type stderrLines struct {
	mu    sync.Mutex
	lines []string
	added chan struct{}
}

func (l *stderrLines) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		l.mu.Lock()
		l.lines = append(l.lines, sc.Text())
		l.mu.Unlock()
		select {
		case l.added <- struct{}{}:
		default:
		}
	}
}

func (l *stderrLines) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// waitMsg waits for a JSON log line whose msg is msg.
func (l *stderrLines) waitMsg(t *testing.T, msg string) {
	t.Helper()
	deadline := testctx.Context(t).Done()
	for !strings.Contains(l.all(), `"msg":"`+msg+`"`) {
		select {
		case <-l.added:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no log line %q; stderr:\n%s", msg, l.all())
		}
	}
}

// TestGracefulShutdown sends SIGTERM while a request is in flight: the listener closes, the
// request still completes (opening its database connections during the drain) and the
// process exits 0.
func TestGracefulShutdown(t *testing.T) {
	c := pgtest.Cluster(t)
	bin := buildApp(t)
	user, password := newRole(t, c, "LOGIN")
	if err := c.WaitReplayed(context.Background()); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"DB_HOST="+c.Primary.Host, "DB_PORT="+strconv.Itoa(c.Primary.Port),
		"DB_REPLICA_HOST="+c.Replica.Host, "DB_REPLICA_PORT="+strconv.Itoa(c.Replica.Port),
		"DB_NAME="+pgcluster.AppDatabase, "DB_USER="+user, "DB_PASSWORD="+password,
		"DB_SSLROOTCERT="+c.CAFile, "LISTEN_ADDR=127.0.0.1:0", "DRAIN_TIMEOUT=20s")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	logs := &stderrLines{added: make(chan struct{}, 1)}
	logsDone := make(chan struct{})
	go func() { logs.read(stderr); close(logsDone) }()

	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	if err != nil {
		t.Fatalf("read READY: %v; stderr:\n%s", err, logs.all())
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "READY ")
	if !ok {
		t.Fatalf("first stdout line = %q, want READY <addr>", line)
	}
	base := "http://" + addr

	// No request has run yet, so the pools are empty: the request in flight at SIGTERM
	// opens its database connections during the drain.
	type result struct {
		code int
		body string
		err  error
	}
	inFlight := make(chan result, 1)
	go func() {
		resp, err := freshClient().Get(base + "/work?sleep=2s")
		if err != nil {
			inFlight <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		inFlight <- result{resp.StatusCode, string(b), err}
	}()
	logs.waitMsg(t, "work started")
	sentAt := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	logs.waitMsg(t, "draining")
	drainingAt := time.Now()

	// Draining: the listener closes (right after the log line), new requests are refused.
	// Eventually, bounded by the test's deadline; how soon is logged, not asserted.
	testDone := testctx.Context(t).Done()
	for {
		resp, err := freshClient().Get(base + "/healthz")
		if err != nil {
			t.Logf("connection refused %s after the draining line", time.Since(drainingAt).Round(time.Millisecond))
			break
		}
		resp.Body.Close()
		select {
		case <-testDone:
			t.Fatalf("GET /healthz while draining = %d, want the connection refused", resp.StatusCode)
		case <-time.After(10 * time.Millisecond):
		}
	}

	r := <-inFlight
	if r.err != nil || r.code != http.StatusOK {
		t.Fatalf("in-flight /work = %d %q, %v; stderr:\n%s", r.code, r.body, r.err, logs.all())
	}
	var work struct{ Primary, Replica sideResult }
	if err := json.Unmarshal([]byte(r.body), &work); err != nil {
		t.Fatal(err)
	}
	if work.Primary.User != user || work.Replica.User != user || !work.Replica.Standby {
		t.Errorf("in-flight /work = %s, want both sides read as %s", r.body, user)
	}

	<-logsDone // the process closed stderr: it is exiting
	if err := cmd.Wait(); err != nil {
		t.Fatalf("process exit: %v, want exit status 0; stderr:\n%s", err, logs.all())
	}
	t.Logf("exited 0, %s after SIGTERM", time.Since(sentAt).Round(time.Millisecond))
	all := logs.all()
	for _, msg := range []string{"start", "ready", "draining", "work done", "exited"} {
		if !strings.Contains(all, `"msg":"`+msg+`"`) {
			t.Errorf("stderr lacks the %q line:\n%s", msg, all)
		}
	}
	if strings.Contains(all, password) || strings.Contains(line, password) {
		t.Errorf("the password reached the process output:\n%s", all)
	}
}

// freshClient opens a new TCP connection per request, as a new client would.
func freshClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
}
