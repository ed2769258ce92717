package rotator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/pgrotate/pgrotate/adapters/secretstore"
	"github.com/pgrotate/pgrotate/internal/testctx"
	localsecrets "github.com/pgrotate/pgrotate/local/secrets"
	"github.com/pgrotate/pgrotate/local/sfnlocal"
	"github.com/pgrotate/pgrotate/workflow"
)

const (
	machineARN = "arn:aws:states:local:000000000000:stateMachine:pgrotate-rotation"
	// Version ids (ClientRequestTokens): local/secrets wants 32 to 64 characters.
	v1   = "00000000-0000-4000-8000-000000000001"
	tok  = "11111111-1111-4111-8111-111111111111"
	tok2 = "22222222-2222-4222-8222-222222222222"
	// Executions of an older rotation of the same secret, and of another secret (listed
	// first, so the superseded one is on a later page).
	oldTok   = "33333333-3333-4333-8333-333333333333"
	otherTok = "04444444-4444-4444-8444-444444444444"
	// rotationToken is what Secrets Manager sends; it must reach PutSecretValue and nothing
	// else (36 to 256 letters, digits and hyphens).
	rotationToken   = "RotTok-7f3c9a1e-5b2d-4c8e-9f0a-1d2e3f4a5b6c"
	currentPassword = "Cur-Pw-6b1f0e8c7d9a2b3c4d5e6f7a"
)

var promotedAt = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// syncBuffer is a log sink shared by the handler and the goroutines that drive the fakes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type fixture struct {
	t        *testing.T
	sm       *localsecrets.Store
	store    *secretstore.Store
	sfn      *fakeSFN
	ecs      *fakeECS
	r        *Rotator
	arn      string
	adminARN string
	services []workflow.Service
	logs     *syncBuffer
	// seen collects every error text a handler returned, for the secret scan.
	seenMu sync.Mutex
	seen   []string
}

// newFixture builds an app secret with one AWSCURRENT version (v1, user app_user), its
// admin secret, a fake Step Functions and a Rotator on top. Every log line and every error
// is scanned for secret values when the test ends.
func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	f := &fixture{t: t, sm: localsecrets.New(), logs: &syncBuffer{}}
	f.store = secretstore.New(f.sm)
	f.sfn = newFakeSFN(machineARN)
	f.services = []workflow.Service{{Cluster: "prod", Service: "web"}, {Cluster: "prod", Service: "worker"}}
	ctx := context.Background()

	admin := `{"engine":"postgres","host":"db.example.internal","port":5432,"dbname":"postgres","username":"dbadmin","password":"Adm-Pw-2c4e6a8b0d1f3e5a7c9b"}`
	out, err := f.sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("pgrotate-admin"), SecretString: aws.String(admin)})
	if err != nil {
		t.Fatalf("create admin secret: %v", err)
	}
	f.adminARN = aws.ToString(out.ARN)
	app := workflow.AppSecret{
		Engine: "postgres", Host: "db.example.internal", Port: 5432, DBName: "app", Username: "app_user",
		Password: workflow.NewPassword(currentPassword), MasterARN: f.adminARN,
		Replicas: []workflow.Endpoint{{Host: "replica-1.example.internal", Port: 5432}},
	}
	str, err := app.SecretString()
	if err != nil {
		t.Fatal(err)
	}
	out, err = f.sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("pgrotate-app"), SecretString: aws.String(str), ClientRequestToken: aws.String(v1)})
	if err != nil {
		t.Fatalf("create app secret: %v", err)
	}
	f.arn = aws.ToString(out.ARN)

	cfg.StateMachineARN = machineARN
	cfg.Services = f.services
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 5 * time.Millisecond
	}
	if cfg.DeadlineMargin == 0 {
		cfg.DeadlineMargin = 20 * time.Millisecond
	}
	f.ecs = &fakeECS{missing: map[string]bool{}}
	f.r = &Rotator{
		Secrets: f.store,
		SFN:     f.sfn,
		ECS:     f.ecs,
		Config:  cfg,
		Log:     slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:     func() time.Time { return promotedAt },
	}
	t.Cleanup(f.scanForSecrets)
	return f
}

// scanForSecrets fails the test if a password or the RotationToken appears in the logs, in
// an error, in an execution's input or in a stop cause (invariant 5).
func (f *fixture) scanForSecrets() {
	t := f.t
	t.Helper()
	secrets := []string{rotationToken, currentPassword, "Adm-Pw-2c4e6a8b0d1f3e5a7c9b"}
	for _, id := range []string{tok, tok2} {
		if s, err := f.store.AppSecret(context.Background(), f.arn, id); err == nil {
			secrets = append(secrets, s.Password.Reveal())
		}
	}
	f.seenMu.Lock()
	texts := append([]string{f.logs.String()}, f.seen...)
	f.seenMu.Unlock()
	for _, name := range []string{tok, tok2, oldTok, otherTok} {
		if in, _, cause, ok := f.sfn.execution(name); ok {
			texts = append(texts, in, cause)
		}
	}
	for _, text := range texts {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("a secret value (%d characters) leaked into %q", len(s), text)
			}
		}
	}
}

func (f *fixture) event(step, token string) Event {
	return Event{Step: step, SecretID: f.arn, ClientRequestToken: token, RotationToken: workflow.NewPassword(rotationToken)}
}

// handle runs the Lambda handler and keeps the error text for the secret scan.
func (f *fixture) handle(ctx context.Context, ev Event) (*workflow.PromoteResult, error) {
	res, err := f.r.Handle(ctx, ev)
	if err != nil {
		f.seenMu.Lock()
		f.seen = append(f.seen, err.Error())
		f.seenMu.Unlock()
	}
	return res, err
}

func (f *fixture) mustHandle(ev Event) {
	f.t.Helper()
	if _, err := f.handle(testctx.Context(f.t), ev); err != nil {
		f.t.Fatalf("%s %s: %v", ev.Step, ev.ClientRequestToken, err)
	}
}

// createPending runs createSecret for token, which puts AWSPENDING and starts the execution.
func (f *fixture) createPending(token string) {
	f.t.Helper()
	f.mustHandle(f.event(StepCreate, token))
}

// stages returns the staging labels of every labelled version.
func (f *fixture) stages() workflow.Versions {
	f.t.Helper()
	v, err := f.store.VersionStages(context.Background(), f.arn)
	if err != nil {
		f.t.Fatal(err)
	}
	return workflow.Versions(v)
}

func (f *fixture) appSecret(version string) workflow.AppSecret {
	f.t.Helper()
	s, err := f.store.AppSecret(context.Background(), f.arn, version)
	if err != nil {
		f.t.Fatalf("read version %s: %v", version, err)
	}
	return s
}

// putVersion writes a version straight into the store (another writer than the rotation
// function: a person, or a rotation that took over).
func (f *fixture) putVersion(id string, s workflow.AppSecret, stages ...string) {
	f.t.Helper()
	str, err := s.SecretString()
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.sm.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{
		SecretId: aws.String(f.arn), ClientRequestToken: aws.String(id), SecretString: aws.String(str), VersionStages: stages,
	}); err != nil {
		f.t.Fatalf("put version %s: %v", id, err)
	}
}

func (f *fixture) input(token string) string {
	f.t.Helper()
	b, err := json.Marshal(workflow.State{SecretARN: f.arn, Token: token, Services: f.services})
	if err != nil {
		f.t.Fatal(err)
	}
	return string(b)
}

// waitForPolls blocks until the handler has read the history of name at least n times, so
// a test knows the handler is waiting before it moves the execution on.
func (f *fixture) waitForPolls(name string, n int) {
	done := testctx.Context(f.t).Done()
	for len(f.sfn.callsWith("GetExecutionHistory "+name)) < n {
		select {
		case <-done: // the test is out of time; its own wait reports the hang
			return
		case <-time.After(time.Millisecond):
		}
	}
}

// wantErrContains fails unless err is non-nil and its text holds every part.
func wantErrContains(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want an error containing %q, got nil", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}

// errorName is the errorType the Lambda runtime reports for err, checked to be one the
// state machine matches.
func errorName(t *testing.T, err error) string {
	t.Helper()
	name := sfnlocal.ErrorName(err)
	if !slices.Contains(workflow.ErrorNames, name) {
		t.Errorf("the Lambda runtime would report %q for %v, which is not in workflow.ErrorNames", name, err)
	}
	return name
}

// fakeECS knows every service but those marked missing.
type fakeECS struct {
	mu      sync.Mutex
	missing map[string]bool
	checked []string
}

func (e *fakeECS) CheckService(_ context.Context, svc workflow.Service) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.checked = append(e.checked, svc.String())
	if e.missing[svc.String()] {
		return errors.New("ECS service " + svc.String() + " is missing: MISSING")
	}
	return nil
}

var errThrottled = errors.New("ThrottlingException: Rate exceeded")
