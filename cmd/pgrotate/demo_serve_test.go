package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/pgrotate/pgrotate/internal/testctx"
	"github.com/pgrotate/pgrotate/lambdas/spec"
	"github.com/pgrotate/pgrotate/local/backend"
	"github.com/pgrotate/pgrotate/local/demo"
	"github.com/pgrotate/pgrotate/local/fleet"
)

// notifyBuffer collects output written from several goroutines and signals when want
// appears in it.
type notifyBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
}

func (b *notifyBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	if b.seen != nil && strings.Contains(b.buf.String(), b.want) {
		close(b.seen)
		b.seen = nil
	}
	return n, err
}

func (b *notifyBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestDemoServeAWSRefusedWithSingleUser(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"demo", "--strategy", "single-user", "--serve-aws", filepath.Join(t.TempDir(), "env")}, &stdout, &stderr)
	if code != exitUsage || !strings.Contains(stderr.String(), "--serve-aws needs the alternating strategy") || stdout.Len() > 0 {
		t.Errorf("exit %d, stderr %q, stdout %q; want a usage error", code, stderr.String(), stdout.String())
	}
}

// `pgrotate demo --serve-aws FILE`: once the report is printed, FILE (mode 0600) holds the
// environment that reaches the demo's AWS APIs through the real SDK's default configuration,
// the evidence bucket holds one record per execution run, and an interrupt ends the serving
// cleanly with the demo's verdict.
func TestDemoServeAWS(t *testing.T) {
	ctx := testctx.Context(t)
	bin, err := fleet.Build(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	envFile := filepath.Join(t.TempDir(), "demo.env")
	auditFile := filepath.Join(t.TempDir(), "audit.html")
	serveCtx, stop := context.WithCancel(ctx)
	defer stop()
	stdout := &notifyBuffer{}
	stderr := &notifyBuffer{want: "pgrotate status", seen: make(chan struct{})}
	serving := stderr.seen
	done := make(chan int, 1)
	go func() {
		done <- run(serveCtx, []string{"demo", "--serve-aws", envFile, "--audit-report", auditFile, "--rotations", "2", "--tasks", "1", "--app-binary", bin,
			"--json"}, stdout, stderr)
	}()
	select {
	case <-serving:
	case code := <-done:
		t.Fatalf("the demo ended (exit %d) before serving:\n%s", code, stderr)
	case <-ctx.Done():
		t.Fatalf("no serving line:\n%s", stderr)
	}

	info, err := os.Stat(envFile)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("env file: %v, mode %v; want 0600", err, info)
	}
	body, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(string(body)), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || v == "" {
			t.Fatalf("env file line %q", line)
		}
		env[k] = v
		names = append(names, k)
	}
	wantNames := []string{"AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "PGROTATE_SECRET"}
	if !slices.Equal(names, wantNames) || !strings.HasPrefix(env["AWS_ENDPOINT_URL"], "http://127.0.0.1:") {
		t.Fatalf("env file names %v, endpoint %s; want %v", names, env["AWS_ENDPOINT_URL"], wantNames)
	}
	if !strings.Contains(stderr.String(), "set -a; . "+envFile+"; set +a; pgrotate status \"$PGROTATE_SECRET\"") {
		t.Errorf("no usage hint:\n%s", stderr)
	}
	var rep demo.Report
	if err := json.Unmarshal([]byte(stdout.String()), &rep); err != nil {
		t.Fatalf("the JSON report was not printed before serving: %v\n%s", err, stdout)
	}
	// The report printed before serving is complete: the probe's and the app's counts too.
	if !rep.OK() || rep.Connections.Attempts == 0 || rep.Requests.Attempts == 0 || rep.Interrupted {
		t.Errorf("report printed before serving: ok %v, connections %+v, requests %d; want a complete, passing report\n%s",
			rep.OK(), rep.Connections.Primary, rep.Requests.Attempts, stderr)
	}

	// The SDK's default configuration, from the file's variables alone.
	for k, v := range env {
		t.Setenv(k, v)
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	secret := env["PGROTATE_SECRET"]
	desc, err := secretsmanager.NewFromConfig(cfg).DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(secret)})
	if err != nil || aws.ToString(desc.ARN) != secret || len(desc.VersionIdsToStages) < 2 || aws.ToString(desc.RotationLambdaARN) != backend.RotationFunctionARN {
		t.Fatalf("DescribeSecret: %v", err)
	}
	// Discovery as the CLI does it: the secret's rotation function, then its tags.
	fn, err := lambda.NewFromConfig(cfg).GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: desc.RotationLambdaARN})
	if err != nil {
		t.Fatalf("GetFunction: %v", err)
	}
	machine, bucket := fn.Tags[spec.TagStateMachine], fn.Tags[spec.TagEvidenceBucket]
	execs, err := sfn.NewFromConfig(cfg).ListExecutions(ctx, &sfn.ListExecutionsInput{StateMachineArn: aws.String(machine)})
	if err != nil || len(execs.Executions) != 2 {
		t.Fatalf("ListExecutions of %s: %v, %v; want the 2 rotations", machine, execs, err)
	}
	objs, err := s3.NewFromConfig(cfg).ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatalf("ListObjectsV2 %s: %v", bucket, err)
	}
	var keys []string
	for _, o := range objs.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	for _, e := range execs.Executions {
		want := "/" + aws.ToString(e.Name) + "/run-0.json"
		if !slices.ContainsFunc(keys, func(k string) bool { return strings.HasSuffix(k, want) }) {
			t.Errorf("no record of %s in %v", aws.ToString(e.Name), keys)
		}
	}
	if len(keys) != 2 || rep.Evidence == nil || rep.Evidence.Records != 2 || rep.Evidence.ExecutionRuns != 2 {
		t.Errorf("records %v, report evidence %+v; want one per execution run", keys, rep.Evidence)
	}

	checkOperatorAgrees(t, secret, rep, auditFile)

	stop() // Ctrl-C
	if code := <-done; code != exitOK || !strings.Contains(stderr.String(), "stopped serving") || strings.Contains(stderr.String(), "interrupted") {
		t.Errorf("exit %d, want %d (the report's verdict):\n%s", code, exitOK, stderr)
	}
	if _, err := os.Stat(envFile); !os.IsNotExist(err) {
		t.Errorf("the env file outlives the endpoint: %v", err)
	}
	if strings.Count(stderr.String(), "\nsummary:") != 1 {
		t.Errorf("the summary was not printed once:\n%s", stderr)
	}
}

// checkOperatorAgrees runs pgrotate status and pgrotate audit --format json against the
// served demo (the environment is set) and checks that they, and the demo's HTML audit
// report, agree with the demo's own report.
func checkOperatorAgrees(t *testing.T, secret string, rep demo.Report, auditFile string) {
	t.Helper()
	ctx := testctx.Context(t)
	if len(rep.PerRotation) != 2 {
		t.Fatalf("the demo reported %d rotations, want 2", len(rep.PerRotation))
	}
	last := rep.PerRotation[len(rep.PerRotation)-1]

	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"status", secret, "--json"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("pgrotate status: exit %d\n%s", code, stderr.String())
	}
	var st struct {
		LiveUser     string
		MayRotate    bool
		LastRotation struct{ Version, Status string }
	}
	if err := json.Unmarshal(stdout.Bytes(), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, stdout.String())
	}
	if st.LiveUser != last.To || !st.MayRotate || st.LastRotation.Version != last.Version || st.LastRotation.Status != "SUCCEEDED" {
		t.Errorf("status: live user %q, may rotate %v, last rotation %+v; the demo's last rotation made %s live with version %s",
			st.LiveUser, st.MayRotate, st.LastRotation, last.To, last.Version)
	}

	// history reads the executions and the evidence bucket; a rotation both know is listed once.
	stdout.Reset()
	stderr.Reset()
	if code := run(ctx, []string{"history", secret, "--json"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("pgrotate history: exit %d\n%s", code, stderr.String())
	}
	var hist []struct{ Version, Status, Source string }
	if err := json.Unmarshal(stdout.Bytes(), &hist); err != nil {
		t.Fatalf("history --json: %v\n%s", err, stdout.String())
	}
	if len(hist) != len(rep.PerRotation) {
		t.Errorf("history lists %d rotations, the demo made %d: %+v", len(hist), len(rep.PerRotation), hist)
	}
	for i, h := range hist {
		// Newest first.
		want := rep.PerRotation[len(rep.PerRotation)-1-i]
		if i < len(rep.PerRotation) && (h.Version != want.Version || h.Status != "SUCCEEDED") {
			t.Errorf("history[%d] = %+v, want version %s SUCCEEDED", i, h, want.Version)
		}
	}

	stdout.Reset()
	stderr.Reset()
	if code := run(ctx, []string{"audit", secret, "--format", "json"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("pgrotate audit: exit %d\n%s", code, stderr.String())
	}
	var au struct {
		Compliant bool
		Rotations []struct{ Version, FromUser, ToUser, Outcome string }
	}
	if err := json.Unmarshal(stdout.Bytes(), &au); err != nil {
		t.Fatalf("audit --format json: %v\n%s", err, stdout.String())
	}
	html, err := os.ReadFile(auditFile)
	if err != nil {
		t.Fatalf("--audit-report: %v", err)
	}
	if !au.Compliant || len(au.Rotations) != len(rep.PerRotation) {
		t.Fatalf("audit: compliant %v, %d rotations; the demo made %d", au.Compliant, len(au.Rotations), len(rep.PerRotation))
	}
	for _, r := range rep.PerRotation {
		i := slices.IndexFunc(au.Rotations, func(a struct{ Version, FromUser, ToUser, Outcome string }) bool { return a.Version == r.Version })
		if i < 0 || au.Rotations[i].Outcome != "succeeded" || au.Rotations[i].FromUser != r.From || au.Rotations[i].ToUser != r.To {
			t.Errorf("the demo's rotation %d (version %s, %s → %s) is not in the audit as a success: %+v", r.Rotation, r.Version, r.From, r.To, au.Rotations)
		}
		if !bytes.Contains(html, []byte(r.Version)) {
			t.Errorf("the HTML audit report does not name version %s", r.Version)
		}
	}
}
