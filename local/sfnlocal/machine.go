package sfnlocal

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

//go:embed runner.mjs
var runnerScript []byte

// DefaultStateMachineArn is used when Options.StateMachineArn is empty.
const DefaultStateMachineArn = "arn:aws:states:local:000000000000:stateMachine:local"

// stopGrace is how long an aborted or closed run may take to exit before it is killed.
const stopGrace = 5 * time.Second

// Options configure a Machine.
type Options struct {
	// Definition is the state machine in the Amazon States Language (JSONPath), already
	// rendered: every Resource a real ARN.
	Definition string
	// StateMachineArn names the machine; execution ARNs are derived from it as Step
	// Functions does. Default DefaultStateMachineArn.
	StateMachineArn string
	// Handlers run the Task states, keyed by Resource ARN: Lambda function ARNs and service
	// integrations such as "arn:aws:states:::sns:publish". Every Task's Resource needs one.
	Handlers map[string]Handler
	// WaitOverrides replace the duration of the named Wait states; the key "*" applies to
	// every Wait state without an entry of its own.
	WaitOverrides map[string]time.Duration
	// RetryIntervalOverrides replace the pause before each retry of the named states (all
	// their retriers): a fixed pause instead of IntervalSeconds×BackoffRate^n with jitter.
	// The key "*" applies to every state with a Retry field and no entry of its own.
	RetryIntervalOverrides map[string]time.Duration
	// TimeScale multiplies every Wait state's Seconds and every retrier's IntervalSeconds
	// and MaxDelaySeconds: 0.1 runs the waits ten times faster with the same backoff shape
	// and jitter. Zero means 1. The overrides above win over it.
	TimeScale float64
	// OnEvent, if set, is called with each history event as it is recorded, in order per
	// execution, outside the Machine's lock (it may call the Machine). For live timelines.
	OnEvent func(executionArn string, event types.HistoryEvent)
	// Node and NodeModules locate the tooling; see FindTools for the defaults.
	Node, NodeModules string
	// Now is the clock of the Step Functions API: start, stop and redrive dates, the
	// 14-day redrive window and the 90-day retention of closed executions. Default
	// time.Now; tests move it forward to age executions.
	Now func() time.Time
}

// Machine runs executions of one state machine definition locally. Its methods have the
// signatures of *sfn.Client's, so it can stand in for Step Functions behind a consumer's
// interface. Create it with New and release it with Close.
type Machine struct {
	arn      string
	def      *definition
	handlers map[string]Handler
	tools    Tools
	waits    map[string]int64
	retries  map[string]int64
	scale    float64
	onEvent  func(string, types.HistoryEvent)
	now      func() time.Time
	created  time.Time
	dir      string // holds runner.mjs
	url      string
	token    string
	srv      *http.Server

	ctx    context.Context // cancelled by Close: ends handler calls and runs
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	execs  map[string]*execution // by ARN
	order  []*execution          // by start time
}

// New checks the options, writes the runner script to a temporary directory and starts
// the task server on 127.0.0.1.
func New(opts Options) (*Machine, error) {
	def, err := parseDefinition(opts.Definition)
	if err != nil {
		return nil, fmt.Errorf("sfnlocal: %w", err)
	}
	if err := def.checkHandled(opts.Handlers); err != nil {
		return nil, fmt.Errorf("sfnlocal: %w", err)
	}
	waits, err := overrides(opts.WaitOverrides, def.waits)
	if err != nil {
		return nil, fmt.Errorf("sfnlocal: wait %w", err)
	}
	retries, err := overrides(opts.RetryIntervalOverrides, def.retryable)
	if err != nil {
		return nil, fmt.Errorf("sfnlocal: retry interval %w", err)
	}
	for resource, h := range opts.Handlers {
		if h == nil {
			return nil, fmt.Errorf("sfnlocal: nil handler for %s", resource)
		}
	}
	scale, err := timeScale(opts.TimeScale)
	if err != nil {
		return nil, fmt.Errorf("sfnlocal: %w", err)
	}
	arn, err := stateMachineArn(opts.StateMachineArn)
	if err != nil {
		return nil, fmt.Errorf("sfnlocal: %w", err)
	}
	tools, err := FindTools(opts.Node, opts.NodeModules)
	if err != nil {
		return nil, fmt.Errorf("sfnlocal: %w", err)
	}

	dir, err := os.MkdirTemp("", "sfnlocal-")
	if err != nil {
		return nil, fmt.Errorf("sfnlocal: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "runner.mjs"), runnerScript, 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("sfnlocal: write runner: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("sfnlocal: listen: %w", err)
	}
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)

	ctx, cancel := context.WithCancel(context.Background())
	m := &Machine{
		arn:      arn,
		def:      def,
		handlers: maps.Clone(opts.Handlers),
		tools:    tools,
		waits:    waits,
		retries:  retries,
		scale:    scale,
		onEvent:  opts.OnEvent,
		now:      opts.Now,
		created:  time.Now().UTC(),
		dir:      dir,
		url:      "http://" + ln.Addr().String() + "/task",
		token:    hex.EncodeToString(tok),
		ctx:      ctx,
		cancel:   cancel,
		execs:    map[string]*execution{},
	}
	m.srv = &http.Server{
		Handler:           http.HandlerFunc(m.serveTask),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		_ = m.srv.Serve(ln) // returns when Close shuts the server
	}()
	if err := m.validate(); err != nil {
		m.Close()
		return nil, fmt.Errorf("sfnlocal: %w", err)
	}
	return m, nil
}

// validate has aws-local-stepfunctions check the definition as written (the schema,
// JSONPaths, ARNs, reachability), so a bad definition fails New rather than every run.
func (m *Machine) validate() error {
	cfg := runConfig{NodeModules: m.tools.NodeModules, Definition: m.def.raw, ValidateOnly: true}
	if err := m.runNode(cfg, make(chan struct{}), func(runnerLine) {}); err != nil {
		return fmt.Errorf("validate definition: %w", err)
	}
	return nil
}

// StateMachineArn is the ARN executions of this machine belong to.
func (m *Machine) StateMachineArn() string { return m.arn }

// Close aborts every running execution, stops the task server and removes the runner's
// temporary directory. Executions still running are left ABORTED.
func (m *Machine) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()

	m.cancel() // kills the Node processes (see run) and ends handler contexts
	err := m.srv.Close()
	m.wg.Wait()
	if rmErr := os.RemoveAll(m.dir); err == nil {
		err = rmErr
	}
	return err
}

// taskRequest is what the runner POSTs for each Task invocation.
type taskRequest struct {
	Execution      string          `json:"execution"`
	Resource       string          `json:"resource"`
	State          string          `json:"state"`
	Input          json.RawMessage `json:"input"`
	TimeoutSeconds int             `json:"timeoutSeconds"`
}

func (m *Machine) serveTask(w http.ResponseWriter, r *http.Request) {
	auth := []byte(r.Header.Get("Authorization"))
	if r.Method != http.MethodPost || subtle.ConstantTimeCompare(auth, []byte("Bearer "+m.token)) != 1 {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	var req taskRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return
	}
	h, ok := m.handlers[req.Resource]
	var res invokeResult
	if !ok {
		// New checked every Task; this is a runner bug, reported as AWS would.
		res = failure(req.Resource, "Lambda.ResourceNotFoundException", "no handler for "+req.Resource)
	} else {
		ctx := r.Context() // ends when the runner goes away or the Machine closes
		if req.TimeoutSeconds > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutSeconds)*time.Second)
			defer cancel()
		}
		input := []byte(req.Input)
		if len(input) == 0 {
			input = []byte("null")
		}
		res = invoke(ctx, h, req.Resource, input)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(res)
}

// runConfig is the runner's first line of input.
type runConfig struct {
	NodeModules            string              `json:"nodeModules"`
	URL                    string              `json:"url"`
	Token                  string              `json:"token"`
	ExecutionArn           string              `json:"executionArn"`
	Definition             map[string]any      `json:"definition"`
	NoValidate             bool                `json:"noValidate"`
	ValidateOnly           bool                `json:"validateOnly,omitempty"`
	Input                  json.RawMessage     `json:"input"`
	Context                map[string]any      `json:"context"`
	Tasks                  map[string]taskSpec `json:"tasks"`
	WaitTimeOverrides      map[string]int64    `json:"waitTimeOverrides"`
	RetryIntervalOverrides map[string]int64    `json:"retryIntervalOverrides"`
}

// runnerLine is one line of the runner's output.
type runnerLine struct {
	Kind    string          `json:"kind"`
	Event   json.RawMessage `json:"event"`
	Message string          `json:"message"`
	// kind "task"
	Phase          string          `json:"phase"`
	State          string          `json:"state"`
	Resource       string          `json:"resource"`
	Input          json.RawMessage `json:"input"`
	Output         json.RawMessage `json:"output"`
	Error          string          `json:"error"`
	Cause          string          `json:"cause"`
	TimeoutSeconds int64           `json:"timeoutSeconds"`
	Timestamp      int64           `json:"timestamp"`
}

// start launches one run of e (its first, or a redrive) in a Node process. The caller
// holds m.mu and has set e RUNNING.
func (m *Machine) start(e *execution, startAt string, input json.RawMessage, redrive bool) {
	cfg := runConfig{
		NodeModules:  m.tools.NodeModules,
		URL:          m.url,
		Token:        m.token,
		ExecutionArn: e.arn,
		Definition:   m.def.startingAt(startAt, m.scale),
		// New validated the definition as written. A redrive starts mid-definition,
		// where the validator would call the states before it unreachable, and a scaled
		// definition may have fractional seconds, which it refuses.
		NoValidate: true,
		Input:      input,
		Context: map[string]any{
			"Execution":    map[string]any{"Id": e.arn, "Name": e.name, "RedriveCount": e.redriveCount},
			"StateMachine": map[string]any{"Id": m.arn, "Name": m.name()},
		},
		Tasks:                  m.def.tasks,
		WaitTimeOverrides:      m.waits,
		RetryIntervalOverrides: m.retries,
	}
	stop := make(chan struct{})
	e.stopRun = sync.OnceFunc(func() { close(stop) })
	conv := newConverter(m, e, redrive)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		conv.finish(m.runNode(cfg, stop, conv.line))
	}()
}

// runNode runs the runner until it exits, passing each output line to onLine. Closing
// stop asks the runner to abort; Close kills it.
func (m *Machine) runNode(cfg runConfig, stop <-chan struct{}, onLine func(runnerLine)) error {
	first, err := json.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("encode run configuration: %w", err)
	}
	cmd := exec.Command(m.tools.Node, filepath.Join(m.dir, "runner.mjs"))
	cmd.Dir = m.dir
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr tailBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start node: %w", err)
	}

	exited := make(chan struct{})
	var watch sync.WaitGroup
	watch.Add(1)
	go func() {
		defer watch.Done()
		m.feedRunner(cmd, stdin, first, stop, exited)
	}()

	fatal := readRunnerLines(stdout, onLine)
	_, _ = io.Copy(io.Discard, stdout)
	waitErr := cmd.Wait()
	close(exited)
	watch.Wait()
	switch {
	case fatal != "":
		return errors.New(fatal)
	case waitErr != nil:
		return fmt.Errorf("node: %w: %s", waitErr, stderr.String())
	}
	return nil
}

// feedRunner sends the runner its configuration line, then "abort" when stop closes, and
// kills it when it outstays stopGrace after that, or when the machine closes; it returns
// once the runner has exited.
func (m *Machine) feedRunner(cmd *exec.Cmd, stdin io.WriteCloser, first []byte, stop <-chan struct{}, exited <-chan struct{}) {
	_, _ = stdin.Write(append(first, '\n'))
	select {
	case <-stop:
		_, _ = io.WriteString(stdin, "abort\n")
		select {
		case <-exited:
		case <-time.After(stopGrace):
			_ = cmd.Process.Kill()
		case <-m.ctx.Done():
			_ = cmd.Process.Kill()
		}
	case <-m.ctx.Done():
		_ = cmd.Process.Kill()
	case <-exited:
	}
	_ = stdin.Close()
}

// readRunnerLines passes each JSON line of the runner's output to onLine, up to the end of
// the output or a read error; it returns the message of the runner's fatal line, if any.
func readRunnerLines(stdout io.Reader, onLine func(runnerLine)) (fatal string) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 0, 64*1024), 256<<20)
	for sc.Scan() {
		var l runnerLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			continue // not ours; the runner writes JSON only
		}
		if l.Kind == "fatal" {
			fatal = l.Message
			continue
		}
		onLine(l)
	}
	return fatal
}

// checkHandled refuses a Task resource that handlers lacks, naming each one.
func (d *definition) checkHandled(handlers map[string]Handler) error {
	var missing []string
	for name, spec := range d.tasks {
		if _, ok := handlers[spec.Resource]; !ok {
			missing = append(missing, fmt.Sprintf("%s (%s)", spec.Resource, name))
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("no handler for Task resource %s", strings.Join(missing, ", "))
	}
	return nil
}

// timeScale is Options.TimeScale with its default, 1.
func timeScale(scale float64) (float64, error) {
	switch {
	case scale == 0:
		return 1, nil
	case scale < 0:
		return 0, fmt.Errorf("negative TimeScale %v", scale)
	}
	return scale, nil
}

// stateMachineArn is Options.StateMachineArn with its default, checked.
func stateMachineArn(arn string) (string, error) {
	if arn == "" {
		arn = DefaultStateMachineArn
	}
	if _, _, err := splitStateMachineArn(arn); err != nil {
		return "", err
	}
	return arn, nil
}

func (m *Machine) name() string {
	_, name, _ := splitStateMachineArn(m.arn)
	return name
}

// splitStateMachineArn splits arn:PARTITION:states:REGION:ACCOUNT:stateMachine:NAME.
func splitStateMachineArn(arn string) (prefix, name string, err error) {
	parts := strings.Split(arn, ":")
	if len(parts) != 7 || parts[0] != "arn" || parts[2] != "states" || parts[5] != "stateMachine" || parts[6] == "" {
		return "", "", fmt.Errorf("state machine ARN %q is not arn:PARTITION:states:REGION:ACCOUNT:stateMachine:NAME", arn)
	}
	return strings.Join(parts[:5], ":"), parts[6], nil
}

// executionArn is the ARN Step Functions gives execution name of this machine.
func (m *Machine) executionArn(name string) string {
	prefix, sm, _ := splitStateMachineArn(m.arn)
	return prefix + ":execution:" + sm + ":" + name
}

// tailBuffer keeps the last 8 KiB written to it, for error messages.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - 8<<10; over > 0 {
		b.buf = b.buf[over:]
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.TrimSpace(string(b.buf))
}

// publish passes events to OnEvent. Each execution has one converter at a time, so its
// events arrive in order.
func (m *Machine) publish(executionArn string, events []types.HistoryEvent) {
	if m.onEvent == nil {
		return
	}
	for _, ev := range events {
		m.onEvent(executionArn, ev)
	}
}

// terminal reports whether an execution with status s has ended.
func terminal(s types.ExecutionStatus) bool { return s != types.ExecutionStatusRunning && s != "" }
