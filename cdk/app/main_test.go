package main

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/pgrotate/pgrotate/cdk/byo"
	"github.com/pgrotate/pgrotate/cdk/internal/cdktest"
	"github.com/pgrotate/pgrotate/internal/testctx"
)

func TestMain(m *testing.M) {
	code := m.Run()
	jsii.Close()
	os.Exit(code)
}

// byoContext is a complete bring-your-own configuration.
var byoContext = map[string]string{
	byo.KeyAppSecretArn:      "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/app-AbCdEf",
	byo.KeyAdminSecretArn:    "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/admin-GhIjKl",
	byo.KeyVpcID:             "vpc-0123456789abcdef0",
	byo.KeyAvailabilityZones: "eu-west-1a,eu-west-1b",
	byo.KeySubnetIDs:         "subnet-0aaaaaaaaaaaaaaa1,subnet-0bbbbbbbbbbbbbbb2",
	byo.KeySecurityGroupID:   "sg-0123456789abcdef0",
	byo.KeyServices:          "prod/api",
	byo.KeyReplicas:          "replica-1.example.com",
}

func newApp(t *testing.T, ctx map[string]string) awscdk.App {
	t.Helper()
	c := map[string]interface{}{}
	for k, v := range ctx {
		c[k] = v
	}
	return awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir()), Context: &c})
}

func noEnv(string) string { return "" }

func TestBuildMissingContext(t *testing.T) {
	app := newApp(t, map[string]string{KeyRegion: "eu-west-1", byo.KeyVpcID: "vpc-0123456789abcdef0", byo.KeyServices: "prod/api"})
	err := build(app, noEnv)
	if !errors.Is(err, byo.ErrMissingContext) {
		t.Fatalf("build error = %v, want ErrMissingContext", err)
	}
	for _, k := range []string{"appSecretArn", "adminSecretArn", "availabilityZones", "subnetIds", "securityGroupId"} {
		if !strings.Contains(err.Error(), k) {
			t.Errorf("error %q does not name %s", err, k)
		}
	}
}

func TestBuildNeedsRegion(t *testing.T) {
	err := build(newApp(t, nil), noEnv)
	if err == nil || !strings.Contains(err.Error(), "region") {
		t.Fatalf("build error = %v, want one asking for a region", err)
	}
	if err := build(newApp(t, nil), func(k string) string {
		return map[string]string{"CDK_DEFAULT_REGION": "eu-west-1"}[k]
	}); err != nil {
		t.Fatalf("build with CDK_DEFAULT_REGION: %v", err)
	}
}

func TestBuildInvalidContext(t *testing.T) {
	for _, tc := range []struct{ key, value string }{
		{KeyAppDesiredCount, "two"},
		{KeyDeletionProtection, "maybe"},
	} {
		err := build(newApp(t, map[string]string{KeyRegion: "eu-west-1", tc.key: tc.value}), noEnv)
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s=%s: error = %v, want one naming the key", tc.key, tc.value, err)
		}
	}
}

// TestCDKSynth runs the CDK CLI as a user would, offline and without AWS credentials, and
// checks that both stacks synthesize (cdk-nag errors would fail the synthesis).
func TestCDKSynth(t *testing.T) {
	root := cdktest.RepoRoot(t)
	cli := filepath.Join(root, "node_modules", ".bin", "cdk")
	if _, err := os.Stat(cli); err != nil {
		t.Fatalf("CDK CLI missing at %s: run npm ci (%v)", cli, err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node not on PATH: the CDK CLI needs it (%v)", err)
	}
	out := t.TempDir()
	args := []string{"synth", "--quiet", "--no-notices", "--no-version-reporting", "-o", out}
	for k, v := range byoContext {
		args = append(args, "-c", k+"="+v)
	}
	// cdk synth compiles the app with go run: minutes on a busy machine. Only a hang
	// should fail this, bounded by go test's -timeout.
	cmd := exec.CommandContext(testctx.Context(t), cli, args...)
	cmd.Dir = root
	cmd.Env = offlineEnv(t)
	output, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cdk synth: %v\n%s", err, output)
	}

	for _, stack := range []string{ReferenceStackName, byo.DefaultStackName} {
		b, err := os.ReadFile(filepath.Join(out, stack+".template.json"))
		if err != nil {
			t.Errorf("template of %s: %v\n%s", stack, err, output)
			continue
		}
		var tmpl map[string]any
		if err := json.Unmarshal(b, &tmpl); err != nil {
			t.Errorf("template of %s: %v", stack, err)
			continue
		}
		if n := len(cdktest.Resources(tmpl, "AWS::StepFunctions::StateMachine")); n != 1 {
			t.Errorf("%s: %d state machines, want 1", stack, n)
		}
		if found := cdktest.LiteralPasswords(tmpl); len(found) > 0 {
			t.Errorf("%s: literal passwords at %v", stack, found)
		}
		checkAlarmsReachTopic(t, stack, tmpl)
		checkNagReport(t, out, stack)
	}
}

// checkAlarmsReachTopic checks what the synthesized template must show: a topic policy
// that lets CloudWatch publish (the policy CDK writes for the topic replaces SNS's default
// one), an alarm on the rotation function's errors, and a rule on Secrets Manager's
// RotationFailed events.
func checkAlarmsReachTopic(t *testing.T, stack string, tmpl map[string]any) {
	t.Helper()
	cloudWatchMayPublish := false
	for _, pol := range cdktest.Resources(tmpl, "AWS::SNS::TopicPolicy") {
		doc, _ := cdktest.Props(pol)["PolicyDocument"].(map[string]any)
		sts, _ := doc["Statement"].([]any)
		for _, st := range sts {
			m, _ := st.(map[string]any)
			principal, _ := m["Principal"].(map[string]any)
			if m["Effect"] == "Allow" && principal["Service"] == "cloudwatch.amazonaws.com" &&
				strings.Contains(cdktest.JSON(m["Action"]), `"sns:Publish"`) && m["Condition"] != nil {
				cloudWatchMayPublish = true
			}
		}
	}
	if !cloudWatchMayPublish {
		t.Errorf("%s: no topic policy lets cloudwatch.amazonaws.com publish (scoped): the alarms reach no one", stack)
	}
	functionErrors := false
	for _, a := range cdktest.Resources(tmpl, "AWS::CloudWatch::Alarm") {
		metrics := cdktest.JSON(cdktest.Props(a)["Metrics"])
		if strings.Contains(metrics, `"Namespace":"AWS/Lambda"`) && strings.Contains(metrics, `"MetricName":"Errors"`) {
			functionErrors = true
		}
	}
	if !functionErrors {
		t.Errorf("%s: no alarm on the rotation function's errors", stack)
	}
	rotationFailed := false
	for _, r := range cdktest.Resources(tmpl, "AWS::Events::Rule") {
		if strings.Contains(cdktest.JSON(cdktest.Props(r)["EventPattern"]), `"eventName":["RotationFailed"]`) {
			rotationFailed = true
		}
	}
	if !rotationFailed {
		t.Errorf("%s: no rule on Secrets Manager's RotationFailed events", stack)
	}
}

// offlineEnv is the test's environment without AWS credentials or configuration, with the
// CLI's network calls (version check, notices, telemetry, instance metadata) off.
func offlineEnv(t *testing.T) []string {
	t.Helper()
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_") || strings.HasPrefix(k, "CDK_") {
			continue
		}
		env = append(env, kv)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return append(env,
		"AWS_CONFIG_FILE="+empty,
		"AWS_SHARED_CREDENTIALS_FILE="+empty,
		"AWS_EC2_METADATA_DISABLED=true",
		"CDK_DISABLE_VERSION_CHECK=1",
		"CDK_DISABLE_CLI_TELEMETRY=true",
		"CI=true",
	)
}

// checkNagReport reads cdk-nag's CSV report of stack: it must exist (the pack ran) and hold
// no non-compliant row.
func checkNagReport(t *testing.T, dir, stack string) {
	t.Helper()
	reports, _ := filepath.Glob(filepath.Join(dir, "AwsSolutions-*"+stack+"-NagReport.csv"))
	if len(reports) != 1 {
		t.Errorf("%s: %d cdk-nag reports, want 1 (was the AwsSolutions pack applied?)", stack, len(reports))
		return
	}
	f, err := os.Open(reports[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("read %s: %v", reports[0], err)
	}
	if len(rows) < 2 {
		t.Errorf("%s: empty cdk-nag report", stack)
	}
	for _, row := range rows[1:] {
		if len(row) < 3 || (row[2] != "Compliant" && row[2] != "Suppressed") {
			t.Errorf("%s: cdk-nag finding %v", stack, row)
		}
	}
}
