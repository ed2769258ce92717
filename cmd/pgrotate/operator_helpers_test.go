package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/jackc/pgx/v5"

	"github.com/pgrotate/pgrotate/internal/lambdaenv"
	"github.com/pgrotate/pgrotate/internal/testctx"
	"github.com/pgrotate/pgrotate/lambdas"
	"github.com/pgrotate/pgrotate/lambdas/spec"
	"github.com/pgrotate/pgrotate/local/awsserve"
	"github.com/pgrotate/pgrotate/local/backend"
	"github.com/pgrotate/pgrotate/local/pgcluster"
	"github.com/pgrotate/pgrotate/local/pgcluster/pgtest"
	"github.com/pgrotate/pgrotate/local/sfnlocal"
	"github.com/pgrotate/pgrotate/workflow"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const (
	opRegion = "eu-west-1"
	opAKID   = "AKIAOPERATORTEST0001"
	// opSecretKey is the local server's access key secret: not a secret value of pgrotate.
	opSecretKey   = "operator-test-secret-access-key"
	rotatorName   = "pgrotate-" + spec.Rotator
	preflightName = "pgrotate-" + spec.Preflight
)

// deployment is a local pgrotate deployment (local/backend on the real PostgreSQL
// primary+replica) served over the AWS wire protocols on a loopback endpoint, with the
// environment set so that the CLI's SDK clients reach it through AWS_ENDPOINT_URL.
type deployment struct {
	t       *testing.T
	c       *pgcluster.Cluster
	b       *backend.Backend
	srv     *awsserve.Server
	mu      sync.Mutex
	tokens  []string // RotationTokens the backend handed out
	outputs []string // every stdout and stderr of the CLI in this test
}

// newDeployment builds the deployment for app user user; failSetPassword, if set, is
// asked before each SetPassword invocation whether it fails with an unnamed error.
func newDeployment(t *testing.T, user string, failSetPassword func() bool) *deployment {
	t.Helper()
	d := &deployment{t: t, c: pgtest.Cluster(t)}
	ctx := testctx.Context(t)
	opts := backend.Options{
		Database: backend.FromCluster(d.c), AppUser: user,
		Services: []workflow.Service{{Cluster: "prod", Service: "api"}},
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		RotationTokens: func() (workflow.Password, error) {
			tok := fmt.Sprintf("rotation-token-%d-%s", time.Now().UnixNano(), strings.Repeat("x", 40))
			d.mu.Lock()
			d.tokens = append(d.tokens, tok)
			d.mu.Unlock()
			return workflow.NewPassword(tok), nil
		},
	}
	if failSetPassword != nil {
		opts.Intercept = func(res string, next sfnlocal.Handler) sfnlocal.Handler {
			if !strings.HasSuffix(res, ":function:pgrotate-"+spec.SetPassword) {
				return next
			}
			return func(ctx context.Context, payload []byte) ([]byte, error) {
				if failSetPassword() {
					return nil, &injectedFailure{}
				}
				return next(ctx, payload)
			}
		}
	}
	b, err := backend.New(ctx, opts)
	if err != nil {
		t.Fatalf("backend: %v", err)
	}
	d.b = b
	t.Cleanup(func() {
		b.Secrets.WaitRotations()
		if err := b.Close(); err != nil {
			t.Errorf("close the backend: %v", err)
		}
	})
	// The rotation schedule, as the deployment sets it (RotateSecret, RotateImmediately false).
	if res, err := b.TestConfiguration(ctx); err != nil || !res.Passed {
		t.Fatalf("rotation configuration test: %+v, %v", res, err)
	}
	d.serve()
	return d
}

// serve starts the endpoint: Secrets Manager, ECS, Step Functions, and the rotation and
// Preflight functions (built through the registry, as the Lambdas are), the rotation
// function tagged as cdk/rotation tags it.
func (d *deployment) serve() {
	d.t.Helper()
	replicas, err := json.Marshal(backend.FromCluster(d.c).Replicas)
	if err != nil {
		d.t.Fatal(err)
	}
	env := map[string]string{spec.EnvStateMachineARN: backend.StateMachineARN, spec.EnvReplicas: string(replicas), spec.EnvCABundle: d.c.CAFile}
	preflight, err := lambdas.Handler(spec.Preflight, lambdas.Deps{
		Env:     &lambdaenv.Env{Lookup: func(k string) (string, bool) { v, ok := env[k]; return v, ok }},
		Clients: lambdas.Clients{SecretsManager: d.b.Secrets, StepFunctions: d.b.Machine, ECS: d.b.ECS},
		Log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		d.t.Fatal(err)
	}
	srv, err := awsserve.Start(awsserve.Options{
		SecretsManager: d.b.Secrets, ECS: d.b.ECS, StepFunctions: d.b.Machine,
		Lambda: map[string]awsserve.LambdaHandler{
			rotatorName:   awsserve.LambdaFunc(sfnlocal.LambdaFunc(d.b.Rotator.Handle)),
			preflightName: awsserve.LambdaFunc(sfnlocal.LambdaFunc(preflight)),
		},
		LambdaTags: map[string]map[string]string{rotatorName: {
			spec.TagStateMachine:      backend.StateMachineARN,
			spec.TagPreflightFunction: "arn:aws:lambda:" + opRegion + ":000000000000:function:" + preflightName,
		}},
		Region: opRegion, AccessKeyID: opAKID,
	})
	if err != nil {
		d.t.Fatal(err)
	}
	d.srv = srv
	d.t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			d.t.Errorf("close the server: %v", err)
		}
	})
	none := filepath.Join(d.t.TempDir(), "none")
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL": srv.URL(), "AWS_REGION": opRegion, "AWS_ACCESS_KEY_ID": opAKID, "AWS_SECRET_ACCESS_KEY": opSecretKey,
		"AWS_CONFIG_FILE": none, "AWS_SHARED_CREDENTIALS_FILE": none, "AWS_PROFILE": "", "AWS_SESSION_TOKEN": "",
	} {
		d.t.Setenv(k, v)
	}
}

type injectedFailure struct{}

func (*injectedFailure) Error() string { return "injected failure" }

// cli runs pgrotate with args and returns its exit status, stdout and stderr. Every output
// is kept for the secret scan.
func (d *deployment) cli(args ...string) (int, string, string) {
	d.t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(testctx.Context(d.t), args, &stdout, &stderr)
	d.mu.Lock()
	d.outputs = append(d.outputs, stdout.String(), stderr.String())
	d.mu.Unlock()
	return code, stdout.String(), stderr.String()
}

// secret is the app secret's name, as an operator would give it.
func (d *deployment) secret() string {
	d.t.Helper()
	out, err := d.b.Secrets.DescribeSecret(testctx.Context(d.t), &secretsmanager.DescribeSecretInput{SecretId: aws.String(d.b.AppSecretARN)})
	if err != nil {
		d.t.Fatal(err)
	}
	return aws.ToString(out.Name)
}

// rotate rotates once through the backend (as Secrets Manager would) and wants success.
func (d *deployment) rotate() {
	d.t.Helper()
	r, err := d.b.Rotate(testctx.Context(d.t))
	if err != nil || r.StepErr != nil || r.Status != "SUCCEEDED" {
		d.t.Fatalf("rotation: %v, step %v, status %s", err, r.StepErr, r.Status)
	}
}

// scan fails the test if any output of the CLI holds a password of any version of the app
// secret, the admin password, or a RotationToken.
func (d *deployment) scan() {
	d.t.Helper()
	ctx, cancel := testctx.CleanupContext(d.t) // scan runs as a cleanup: not t.Context()
	defer cancel()
	values := []string{d.c.AdminPassword()}
	d.mu.Lock()
	values = append(values, d.tokens...)
	outputs := strings.Join(d.outputs, "\n")
	d.mu.Unlock()
	ids, err := d.b.Secrets.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(d.b.AppSecretARN), IncludeDeprecated: aws.Bool(true)})
	if err != nil {
		d.t.Fatal(err)
	}
	for _, v := range ids.Versions {
		s, err := d.b.Store.AppSecret(ctx, d.b.AppSecretARN, aws.ToString(v.VersionId))
		if err != nil {
			continue // a deprecated version's value may be gone
		}
		values = append(values, s.Password.Reveal())
	}
	if len(values) < 2 {
		d.t.Fatalf("the scan found %d values to look for", len(values))
	}
	for _, v := range values {
		if v != "" && strings.Contains(outputs, v) {
			d.t.Errorf("a secret value (%d characters) appears in the CLI's output", len(v))
		}
	}
}

// holdAlternate opens a session of the alternate user (the AWSPREVIOUS version's) on the
// primary, closed at the end of the test.
func (d *deployment) holdAlternate() string {
	d.t.Helper()
	ctx := testctx.Context(d.t)
	prev, _, err := d.b.Secret(ctx, workflow.StagePrevious)
	if err != nil {
		d.t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d dbname=%s user=%s sslmode=verify-full sslrootcert=%s",
		d.c.Primary.Host, d.c.Primary.Port, pgcluster.AppDatabase, prev.Username, d.c.CAFile))
	if err != nil {
		d.t.Fatal(err)
	}
	cfg.Password = prev.Password.Reveal()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		d.t.Fatalf("hold a session of %s: %v", prev.Username, err)
	}
	d.t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return prev.Username
}
