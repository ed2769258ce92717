package backend

// ServeAWS tests: the backend on the wire, with the evidence of real executions (real
// interpreter, real handlers, real PostgreSQL primary and replica) delivered to the real
// evidence handler and read back through the real S3 client from the served bucket.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/smithy-go"

	"github.com/pgrotate/pgrotate/lambdas/spec"
	"github.com/pgrotate/pgrotate/local/sfnlocal"
	"github.com/pgrotate/pgrotate/rotator"
	"github.com/pgrotate/pgrotate/tasks/evidence"
	"github.com/pgrotate/pgrotate/workflow"
)

// A succeeded rotation, then one whose setSecret fails (a FAILED execution and Secrets
// Manager's RotationFailed) and is redriven through the served Step Functions: four
// records, each once, locked, with no secret value in any.
func TestServeAWSEvidence(t *testing.T) {
	var armed atomic.Bool
	services := []workflow.Service{{Cluster: "prod", Service: "api"}}
	f := newFixture(t, "serve_evid_user", Options{
		Services: services,
		Intercept: func(res string, next sfnlocal.Handler) sfnlocal.Handler {
			if res != resource(spec.SetPassword) {
				return next
			}
			return func(ctx context.Context, payload []byte) ([]byte, error) {
				if armed.CompareAndSwap(true, false) {
					return nil, &injected{what: "SetPassword"}
				}
				return next(ctx, payload)
			}
		},
	})
	s, err := f.b.ServeAWS(ServeOptions{Version: "test", Prefix: "evidence/"})
	if err != nil {
		t.Fatalf("ServeAWS: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	cfg := s.Config()
	s3c, sfnc := s3.NewFromConfig(cfg), sfn.NewFromConfig(cfg)

	ok := f.rotate()
	f.mustSucceed(ok)
	armed.Store(true)
	failed := f.rotate()
	if failed.StepErr == nil || failed.Status != types.ExecutionStatusFailed {
		t.Fatalf("second rotation: step error %v, status %s; want setSecret failed, FAILED", failed.StepErr, failed.Status)
	}
	if _, err := sfnc.RedriveExecution(f.ctx, &sfn.RedriveExecutionInput{ExecutionArn: aws.String(f.arn(failed.Token))}); err != nil {
		t.Fatalf("RedriveExecution over the wire: %v", err)
	}
	for _, step := range []string{rotator.StepSet, rotator.StepTest, rotator.StepFinish} {
		if err := f.b.Step(f.ctx, step, failed.Token); err != nil {
			t.Fatalf("%s after the redrive: %v", step, err)
		}
	}
	if status, err := f.b.Machine.Wait(f.ctx, f.arn(failed.Token)); err != nil || status != types.ExecutionStatusSucceeded {
		t.Fatalf("redriven execution: %s %v", status, err)
	}
	f.collectVerifiers()
	if err := s.Settle(f.ctx); err != nil {
		t.Fatalf("Settle: %v", err)
	}

	secretID := strings.SplitN(f.b.AppSecretARN, ":secret:", 2)[1]
	prefix := "evidence/" + secretID + "/"
	records := readRecords(t, f.ctx, s3c, s.Bucket, "evidence/")
	want := []string{prefix + failed.Token + "/run-0.json", prefix + failed.Token + "/run-1.json", prefix + ok.Token + "/run-0.json"}
	var got []string
	var failure *evidence.Record
	for key, body := range records {
		if strings.HasPrefix(key, prefix+"secretsmanager/RotationFailed-") {
			failure = decodeRecord(t, key, body)
			continue
		}
		got = append(got, key)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) || failure == nil || len(records) != 4 {
		t.Fatalf("records %v (rotation failure %v); want %v and one RotationFailed", keys(records), failure != nil, want)
	}

	for _, tc := range []struct {
		token  string
		run    int
		status string
	}{{ok.Token, 0, "SUCCEEDED"}, {failed.Token, 0, "FAILED"}, {failed.Token, 1, "SUCCEEDED"}} {
		key := prefix + tc.token + "/run-" + string(rune('0'+tc.run)) + ".json"
		rec := decodeRecord(t, key, records[key])
		checkRecord(t, *rec, f, tc.token, tc.status)
		if int(rec.Run) != tc.run || rec.StartedBy.Via != "secretsmanager-rotation" {
			t.Errorf("%s: run %d, started by %+v", key, rec.Run, rec.StartedBy)
		}
		if tc.status != "SUCCEEDED" {
			continue
		}
		if len(rec.Deployments) != 1 || rec.Deployments[0].Service != "api" || rec.Deployments[0].RolloutState != workflow.RolloutCompleted ||
			rec.Deployments[0].DesiredCount != 2 || rec.Deployments[0].RunningCount != 2 {
			t.Errorf("%s: deployments %+v; want api COMPLETED with 2 of 2 tasks running", key, rec.Deployments)
		}
	}
	if failure.Kind != evidence.KindRotationFailure || failure.SecretARN != f.b.AppSecretARN || failure.Outcome.Status != "RotationFailed" ||
		!strings.Contains(failure.Outcome.Cause, "setSecret") || failure.StartedBy.InvokedBy != "secretsmanager.amazonaws.com" {
		t.Errorf("rotation failure record %+v", failure)
	}

	// Locked: the default retention is on each version, which cannot be deleted.
	key := want[0]
	head, err := s3c.HeadObject(f.ctx, &s3.HeadObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(key)})
	if err != nil || head.ObjectLockMode != s3types.ObjectLockModeGovernance || head.ObjectLockRetainUntilDate == nil {
		t.Fatalf("HeadObject %s: %v, %v", key, head, err)
	}
	_, err = s3c.DeleteObject(f.ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(key), VersionId: head.VersionId})
	var api smithy.APIError
	if !errors.As(err, &api) || api.ErrorCode() != "AccessDenied" {
		t.Errorf("delete a record version: %v, want AccessDenied", err)
	}

	// A second delivery of every event writes no new version.
	before := s.Deliveries()
	if err := s.Settle(f.ctx); err != nil {
		t.Fatal(err)
	}
	if s.Deliveries() != before+3 {
		t.Errorf("deliveries %d after %d; want 3 more", s.Deliveries(), before)
	}
	versions, err := s3c.ListObjectVersions(f.ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(s.Bucket)})
	if err != nil || len(versions.Versions) != 4 || len(versions.DeleteMarkers) != 0 {
		t.Errorf("ListObjectVersions: %d versions, %v; want 4", len(versions.Versions), err)
	}
	if listed, err := s.RecordKeys(f.ctx); err != nil || !slices.Equal(listed, keys(records)) {
		t.Errorf("RecordKeys: %v, %v; want %v", listed, err, keys(records))
	}

	f.noSecretsInRecords(records)
}

// The endpoint serves the models and the functions the CLI discovers, and refuses other keys.
func TestServeAWSDiscovery(t *testing.T) {
	f := newFixture(t, "serve_disc_user", Options{Services: []workflow.Service{{Cluster: "prod", Service: "api"}}})
	s, err := f.b.ServeAWS(ServeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if again, err := f.b.ServeAWS(ServeOptions{}); err == nil {
		_ = again.Close()
		t.Error("a second ServeAWS on a served backend: no error")
	}
	cfg := s.Config()
	if s.Env.Endpoint != s.URL() || s.Env.SecretARN != f.b.AppSecretARN || s.Env.Region != "local" || s.Env.AccessKeyID == "" || s.Env.SecretAccessKey == "" {
		t.Errorf("Env: endpoint %s, region %s, secret %s", s.Env.Endpoint, s.Env.Region, s.Env.SecretARN)
	}
	desc, err := secretsmanager.NewFromConfig(cfg).DescribeSecret(f.ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(f.b.AppSecretARN)})
	if err != nil || aws.ToString(desc.ARN) != f.b.AppSecretARN || aws.ToString(desc.RotationLambdaARN) != RotationFunctionARN {
		t.Fatalf("DescribeSecret: %v; want the rotation function named", err)
	}
	fn, err := lambda.NewFromConfig(cfg).GetFunction(f.ctx, &lambda.GetFunctionInput{FunctionName: desc.RotationLambdaARN})
	if err != nil {
		t.Fatalf("GetFunction: %v", err)
	}
	wantTags := map[string]string{spec.TagStateMachine: StateMachineARN, spec.TagPreflightFunction: PreflightFunctionARN,
		spec.TagEvidenceBucket: EvidenceBucket, spec.TagEvidencePrefix: ""}
	for k, v := range wantTags {
		if got, ok := fn.Tags[k]; !ok || got != v {
			t.Errorf("tag %s = %q, want %q", k, got, v)
		}
	}
	out, err := lambda.NewFromConfig(cfg).Invoke(f.ctx, &lambda.InvokeInput{FunctionName: aws.String(PreflightFunctionARN),
		Payload: []byte(`{"secretArn":"` + f.b.AppSecretARN + `","token":"not-a-version"}`)})
	if err != nil || out.StatusCode != 200 || len(out.Payload) == 0 {
		t.Fatalf("Invoke Preflight: %v", err)
	}
	lock, err := s3.NewFromConfig(cfg).GetObjectLockConfiguration(f.ctx, &s3.GetObjectLockConfigurationInput{Bucket: aws.String(EvidenceBucket)})
	if err != nil || lock.ObjectLockConfiguration.Rule.DefaultRetention.Mode != s3types.ObjectLockRetentionModeGovernance ||
		aws.ToInt32(lock.ObjectLockConfiguration.Rule.DefaultRetention.Days) != EvidenceRetentionDays {
		t.Errorf("GetObjectLockConfiguration: %v", err)
	}
	other := cfg.Copy()
	other.Credentials = awsserveOtherKey{}
	if _, err := secretsmanager.NewFromConfig(other).DescribeSecret(f.ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(f.b.AppSecretARN)}); err == nil {
		t.Error("a request signed with another access key was served")
	}
}

type awsserveOtherKey struct{}

func (awsserveOtherKey) Retrieve(context.Context) (aws.Credentials, error) {
	return aws.Credentials{AccessKeyID: "AKIAOTHER", SecretAccessKey: "other"}, nil
}

func readRecords(t *testing.T, ctx context.Context, c *s3.Client, bucket, prefix string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatalf("ListObjectsV2: %v", err)
	}
	for _, o := range list.Contents {
		obj, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
		if err != nil {
			t.Fatalf("GetObject %s: %v", aws.ToString(o.Key), err)
		}
		body, err := io.ReadAll(obj.Body)
		obj.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[aws.ToString(o.Key)] = body
	}
	return out
}

func decodeRecord(t *testing.T, key string, body []byte) *evidence.Record {
	t.Helper()
	var rec evidence.Record
	if err := json.Unmarshal(body, &rec); err != nil {
		t.Fatalf("record %s: %v", key, err)
	}
	return &rec
}

// Rotations whose createSecret fails before any execution exists, one run as Secrets
// Manager runs it (Backend.Rotate) and one started over the wire (RotateSecret): Secrets
// Manager's RotationFailed is their only evidence, and it is there, once each.
func TestServeAWSRotationFailedBeforeAnExecution(t *testing.T) {
	f := newFixture(t, "serve_rfail_user", Options{Services: []workflow.Service{{Cluster: "prod", Service: "api"}}})
	s, err := f.b.ServeAWS(ServeOptions{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	cfg := s.Config()
	f.b.Secrets.FailNext("PutSecretValue", errors.New("injected: PutSecretValue refused"))
	if r := f.rotate(); r.StepErr == nil || r.Status != "" {
		t.Fatalf("rotation: step error %v, status %q; want createSecret failed, no execution", r.StepErr, r.Status)
	}
	f.b.Secrets.FailNext("PutSecretValue", errors.New("injected: PutSecretValue refused"))
	out, err := secretsmanager.NewFromConfig(cfg).RotateSecret(f.ctx, &secretsmanager.RotateSecretInput{
		SecretId: aws.String(f.b.AppSecretARN), RotationLambdaARN: aws.String(RotationFunctionARN)})
	if err != nil {
		t.Fatalf("RotateSecret over the wire: %v", err)
	}
	f.b.Secrets.WaitRotations()
	if err := s.Settle(f.ctx); err != nil {
		t.Fatal(err)
	}
	execs, err := sfn.NewFromConfig(cfg).ListExecutions(f.ctx, &sfn.ListExecutionsInput{StateMachineArn: aws.String(StateMachineARN)})
	if err != nil || len(execs.Executions) != 0 {
		t.Fatalf("ListExecutions: %v, %v; want none (createSecret failed)", execs, err)
	}
	records := readRecords(t, f.ctx, s3.NewFromConfig(cfg), s.Bucket, "")
	if len(records) != 2 {
		t.Fatalf("records %v; want two RotationFailed", keys(records))
	}
	for key, body := range records {
		rec := decodeRecord(t, key, body)
		if rec.Kind != evidence.KindRotationFailure || rec.Outcome.Status != "RotationFailed" || rec.SecretARN != f.b.AppSecretARN ||
			!strings.Contains(rec.Outcome.Cause, "createSecret") || !strings.Contains(key, "/secretsmanager/RotationFailed-") {
			t.Errorf("record %s: %+v (version %s)", key, rec, aws.ToString(out.VersionId))
		}
	}
	f.scanRecords(records)
}
