package lambdatest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pgrotate/pgrotate/internal/testctx"
)

// Dummy credentials: the SDK configuration loads offline. The secret key is a value no output
// may contain.
const (
	dummyAccessKeyID = "AKIDLAMBDATEST000000"
	dummySecretKey   = "lambdatestDummySecretKey0000000000000000"
)

// emulator is one aws-lambda-rie process serving one function.
type emulator struct {
	name string
	addr string // the invocation endpoint's host:port
	url  string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{} // closed when the process has exited
	once sync.Once
}

// startEmulator runs the named main under the emulator with env (on top of a minimal
// offline AWS environment) and waits until it accepts invocations. Any AWS request a main
// makes goes to aws, which the caller checks stays unused.
func startEmulator(t *testing.T, name string, env map[string]string, aws string) *emulator {
	t.Helper()
	var lastErr error
	// A free port can be taken between choosing it and the emulator binding it; try again.
	for attempt := 0; attempt < 3; attempt++ {
		e, err := tryStart(t, name, env, aws)
		if err == nil {
			return e
		}
		lastErr = err
	}
	t.Fatalf("start the emulator for %s: %v", name, lastErr)
	return nil
}

func tryStart(t *testing.T, name string, env map[string]string, aws string) (*emulator, error) {
	t.Helper()
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	invokeAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	home := t.TempDir()
	vars := map[string]string{
		"PATH":                        os.Getenv("PATH"),
		"HOME":                        home,
		"AWS_REGION":                  "us-east-1",
		"AWS_ACCESS_KEY_ID":           dummyAccessKeyID,
		"AWS_SECRET_ACCESS_KEY":       dummySecretKey,
		"AWS_CONFIG_FILE":             filepath.Join(home, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(home, "no-aws-credentials"),
		"AWS_EC2_METADATA_DISABLED":   "true",
		// Every AWS client of the mains would call this local server, never the network.
		"AWS_ENDPOINT_URL":            aws,
		"AWS_LAMBDA_FUNCTION_NAME":    name,
		"AWS_LAMBDA_FUNCTION_TIMEOUT": "20",
		"LOG_LEVEL":                   "info",
	}
	for k, v := range env {
		vars[k] = v
	}
	e := &emulator{
		name: name,
		addr: invokeAddr,
		url:  "http://" + invokeAddr + "/2015-03-31/functions/function/invocations",
		out:  &syncBuffer{},
		done: make(chan struct{}),
	}
	e.cmd = exec.Command(filepath.Join(binDir, "aws-lambda-rie"),
		"--runtime-interface-emulator-address", invokeAddr,
		"--runtime-api-address", fmt.Sprintf("127.0.0.1:%d", ports[1]),
		filepath.Join(binDir, name, "bootstrap"))
	e.cmd.Dir = filepath.Join(binDir, name)
	e.cmd.Env = nil
	for k, v := range vars {
		e.cmd.Env = append(e.cmd.Env, k+"="+v)
	}
	e.cmd.Stdout, e.cmd.Stderr = e.out, e.out
	// The function inherits the emulator's output pipe; don't wait for it forever.
	e.cmd.WaitDelay = 2 * time.Second
	if err := e.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = e.cmd.Wait(); close(e.done) }()
	t.Cleanup(e.stop)
	if err := e.waitReady(testctx.Context(t)); err != nil {
		e.stop()
		return nil, fmt.Errorf("%w; output:\n%s", err, e.out.String())
	}
	return e, nil
}

// waitReady waits until the invocation port accepts connections, or ctx ends.
func (e *emulator) waitReady(ctx context.Context) error {
	for {
		c, err := net.DialTimeout("tcp", e.addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-e.done:
			return errors.New("the emulator exited at start")
		case <-ctx.Done():
			return fmt.Errorf("the emulator did not listen on %s: %w", e.addr, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop ends the emulator: SIGTERM lets it kill the function (which runs in its own process
// group), then SIGKILL if it lingers. Idempotent; output is complete afterwards.
func (e *emulator) stop() {
	e.once.Do(func() {
		select {
		case <-e.done:
			return
		default:
		}
		_ = e.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-e.done:
		case <-time.After(5 * time.Second):
			_ = e.cmd.Process.Kill()
			<-e.done
		}
	})
}

// invoke posts payload to the function and returns the HTTP status and body.
func (e *emulator) invoke(t *testing.T, payload string) (int, string) {
	t.Helper()
	// Bounded by the test's deadline; the function's own is AWS_LAMBDA_FUNCTION_TIMEOUT.
	req, err := http.NewRequestWithContext(testctx.Context(t), http.MethodPost, e.url, bytes.NewBufferString(payload))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("invoke %s: %v; emulator output:\n%s", e.name, err, e.out.String())
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read the answer of %s: %v", e.name, err)
	}
	return resp.StatusCode, string(body)
}

// freePorts returns n distinct TCP ports that were free on 127.0.0.1 a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// syncBuffer collects the emulator's stdout and stderr (written from two goroutines).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
