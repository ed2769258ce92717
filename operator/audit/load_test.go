package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/pgrotate/pgrotate/internal/testctx"
	"github.com/pgrotate/pgrotate/local/awsserve"
	"github.com/pgrotate/pgrotate/tasks/evidence"
)

const bucket = "evidence"

// s3Client starts the local AWS endpoint with the bucket and returns a real SDK client of it.
func s3Client(t *testing.T) *s3.Client {
	t.Helper()
	srv, err := awsserve.Start(awsserve.Options{Buckets: []string{bucket}, Region: "eu-west-1"})
	if err != nil {
		t.Fatalf("awsserve.Start: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s3.NewFromConfig(aws.Config{
		Region:       "eu-west-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIALOCALTEST0000001", "local-test-secret-access-key", ""),
		BaseEndpoint: aws.String(srv.URL()),
	}, func(o *s3.Options) { o.UsePathStyle = true })
}

func put(t *testing.T, c *s3.Client, key string, body []byte) {
	t.Helper()
	if _, err := c.PutObject(testctx.Context(t), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
		t.Fatalf("PutObject %s: %v", key, err)
	}
}

func putRecord(t *testing.T, c *s3.Client, key string, rec evidence.Record) {
	t.Helper()
	body, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	put(t, c, key, body)
}

// history serves the history of one succeeded execution of version v9.
type history struct{}

func (history) GetExecutionHistory(context.Context, *sfn.GetExecutionHistoryInput, ...func(*sfn.Options)) (*sfn.GetExecutionHistoryOutput, error) {
	input := `{"secretArn":"` + testSecretARN + `","token":"v9","services":[]}`
	return &sfn.GetExecutionHistoryOutput{Events: []sfntypes.HistoryEvent{
		{Type: sfntypes.HistoryEventTypeExecutionStarted, Timestamp: ptr(at(200 * day)), ExecutionStartedEventDetails: &sfntypes.ExecutionStartedEventDetails{Input: aws.String(input)}},
		{Type: sfntypes.HistoryEventTypeExecutionSucceeded, Timestamp: ptr(at(200*day + time.Minute))},
	}}, nil
}

// writeThroughHandler writes, through the evidence function's own handler, a record of an
// execution run (v9) and of a Secrets Manager RotationFailed event, under prefix.
func writeThroughHandler(t *testing.T, c *s3.Client, prefix string) {
	t.Helper()
	h := &evidence.Handler{Executions: history{}, Objects: c, Bucket: bucket, Prefix: prefix, StateMachineARN: machineARN, Version: "test"}
	status, _ := json.Marshal(map[string]any{
		"id": "ev-v9", "detail-type": evidence.DetailTypeStatusChange, "source": evidence.SourceStates, "time": at(200*day + time.Minute),
		"detail": map[string]any{"executionArn": "arn:aws:states:eu-west-1:123456789012:execution:rotation:v9",
			"stateMachineArn": machineARN, "name": "v9", "status": "SUCCEEDED", "redriveCount": 0},
	})
	failed, _ := json.Marshal(map[string]any{
		"id": "ev-sm", "detail-type": evidence.DetailTypeServiceEvent, "source": evidence.SourceSecretsManager, "time": at(150 * day),
		"detail": map[string]any{"eventName": "RotationFailed", "eventID": "ct-1", "eventTime": at(150 * day).Format(time.RFC3339),
			"errorMessage":        "Error when executing lambda during setSecret step",
			"userIdentity":        map[string]any{"invokedBy": "secretsmanager.amazonaws.com"},
			"additionalEventData": map[string]any{"SecretId": testSecretARN}},
	})
	for _, ev := range [][]byte{status, failed} {
		if err := h.Handle(testctx.Context(t), ev); err != nil {
			t.Fatalf("evidence handler: %v", err)
		}
	}
}

// pagedObjects asks for two keys a page, so that Load must follow the continuation tokens.
type pagedObjects struct {
	*s3.Client
	pages atomic.Int32
}

func (p *pagedObjects) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	p.pages.Add(1)
	in.MaxKeys = aws.Int32(2)
	return p.Client.ListObjectsV2(ctx, in, optFns...)
}

func TestLoad(t *testing.T) {
	c := s3Client(t)
	const prefix = "audit/"
	writeThroughHandler(t, c, prefix)
	for i := range 5 {
		exec := fmt.Sprintf("v%d", i)
		putRecord(t, c, prefix+"app/db-AbCdEf/"+exec+"/run-0.json", ok(exec, time.Duration(i)*30*day))
	}
	putRecord(t, c, prefix+"app/db-AbCdEf/v5/run-0.json", run("v5", 0, "FAILED", at(160*day), at(160*day+time.Hour), failedIn("CloneUser", "PrivilegeMismatch")))
	putRecord(t, c, prefix+"app/db-AbCdEf/v5/run-1.json", run("v5", 1, "SUCCEEDED", at(160*day), at(161*day)))
	// Not this secret's: a secret whose name continues this one's, another secret, another prefix.
	other := ok("w1", 10*day)
	other.SecretARN = testSecretARN + "/x-123456"
	putRecord(t, c, prefix+"app/db-AbCdEf/x-123456/w1/run-0.json", other)
	putRecord(t, c, prefix+"app/db2-AbCdEf/w2/run-0.json", ok("w2", 10*day))
	putRecord(t, c, "app/db-AbCdEf/w3/run-0.json", ok("w3", 10*day))
	put(t, c, prefix+"app/db-AbCdEf/README.txt", []byte("not a record"))

	objs := &pagedObjects{Client: c}
	recs, err := Load(testctx.Context(t), objs, bucket, prefix, testSecretARN)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, fmt.Sprintf("%s/%d/%s", r.ExecutionName, r.Run, r.Outcome.Status))
	}
	want := []string{"v0/0/SUCCEEDED", "v1/0/SUCCEEDED", "v2/0/SUCCEEDED", "v3/0/SUCCEEDED", "v4/0/SUCCEEDED",
		"/0/RotationFailed", "v5/0/FAILED", "v5/1/SUCCEEDED", "v9/0/SUCCEEDED"}
	if !slices.Equal(got, want) {
		t.Errorf("records %q\nwant %q", got, want)
	}
	if n := objs.pages.Load(); n < 6 {
		t.Errorf("%d list pages: Load did not follow the continuation tokens", n)
	}

	r := Build(recs, Options{Now: at(220 * day)})
	var rots []string
	for _, rot := range r.Rotations {
		rots = append(rots, rot.Version+":"+rot.Outcome)
	}
	if want := []string{"v0:succeeded", "v1:succeeded", "v2:succeeded", "v3:succeeded", "v4:succeeded", "v5:redriven", "v9:succeeded"}; !slices.Equal(rots, want) {
		t.Errorf("rotations %q, want %q", rots, want)
	}
	if len(r.Failures) != 2 || r.Failures[0].Status != "RotationFailed" || r.Failures[0].Resolution != ResolvedSuperseded || r.Failures[0].ResolvedBy != "v5" {
		t.Errorf("failures %+v", r.Failures)
	}
}

func TestLoadRefuses(t *testing.T) {
	c := s3Client(t)
	v2 := ok("v1", 0)
	v2.Schema = "pgrotate.evidence/v2"
	putRecord(t, c, "v2/app/db-AbCdEf/v1/run-0.json", v2)
	put(t, c, "bad/app/db-AbCdEf/v1/run-0.json", []byte("{not json"))
	putRecord(t, c, "good/app/db-AbCdEf/v1/run-0.json", ok("v1", 0))

	tests := []struct {
		name, bucket, prefix, secret string
		check                        func(error) bool
	}{
		{"another schema", bucket, "v2/", testSecretARN, func(err error) bool {
			var e *UnknownSchema
			return errors.As(err, &e) && e.Schema == "pgrotate.evidence/v2" && e.Key == "v2/app/db-AbCdEf/v1/run-0.json"
		}},
		{"not JSON", bucket, "bad/", testSecretARN, func(err error) bool { var e *InvalidRecord; return errors.As(err, &e) }},
		{"a secret name, not an ARN", bucket, "good/", "app/db", func(err error) bool { var e *InvalidSecretARN; return errors.As(err, &e) }},
		{"no such bucket", "missing", "good/", testSecretARN, func(err error) bool {
			var e *InvalidSecretARN
			return err != nil && !errors.As(err, &e)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := Load(testctx.Context(t), c, tc.bucket, tc.prefix, tc.secret)
			if !tc.check(err) || recs != nil {
				t.Errorf("Load: %d records, error %v (%T)", len(recs), err, err)
			}
		})
	}
	if recs, err := Load(testctx.Context(t), c, bucket, "good/", testSecretARN); err != nil || len(recs) != 1 {
		t.Errorf("Load good/: %d records, %v", len(recs), err)
	}
}
