package awsserve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/pgrotate/pgrotate/internal/testctx"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"

	localsecrets "github.com/pgrotate/pgrotate/local/secrets"
	"github.com/pgrotate/pgrotate/local/sfnlocal"
)

// PreflightFailed is a handler error; its type name is the Lambda errorType.
type PreflightFailed struct{ Reason string }

func (e *PreflightFailed) Error() string { return "preflight: " + e.Reason }

func TestLambdaInvoke(t *testing.T) {
	events := make(chan json.RawMessage, 1)
	s := startServer(t, Options{Lambda: map[string]LambdaHandler{
		"echo": func(_ context.Context, p json.RawMessage) (any, error) {
			return map[string]json.RawMessage{"got": p}, nil
		},
		"fails": func(context.Context, json.RawMessage) (any, error) {
			return nil, &PreflightFailed{Reason: "replica lag"}
		},
		"event": func(_ context.Context, p json.RawMessage) (any, error) {
			events <- p
			return nil, nil
		},
		"wrapped": LambdaFunc(sfnlocal.LambdaFunc(func(_ context.Context, in struct{ N int }) (int, error) { return in.N * 2, nil })),
	}})
	c := lambda.NewFromConfig(sdkConfig(s.URL(), testAKID))
	ctx := testctx.Context(t)

	tests := []struct {
		name, function, invocationType, payload string
		wantStatus                              int32
		wantFunctionError, wantPayload          string
	}{
		{"by name", "echo", "", `{"dryRun":true}`, 200, "", `{"got":{"dryRun":true}}`},
		{"by ARN with qualifier", "arn:aws:lambda:eu-west-1:000000000000:function:echo:$LATEST", "", `[1]`, 200, "", `{"got":[1]}`},
		{"aws-lambda-go handler", "wrapped", "", `{"N":21}`, 200, "", `42`},
		{"function error", "fails", "", `{}`, 200, "Unhandled", `{"errorType":"PreflightFailed","errorMessage":"preflight: replica lag"}`},
		{"dry run", "echo", "DryRun", `{}`, 204, "", ``},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := c.Invoke(ctx, &lambda.InvokeInput{
				FunctionName: aws.String(tc.function), Payload: []byte(tc.payload), InvocationType: lambdatypes.InvocationType(tc.invocationType),
			})
			if err != nil {
				t.Fatalf("Invoke: %v", err)
			}
			if out.StatusCode != tc.wantStatus || aws.ToString(out.FunctionError) != tc.wantFunctionError {
				t.Errorf("Invoke: status %d, FunctionError %q; want %d, %q", out.StatusCode, aws.ToString(out.FunctionError), tc.wantStatus, tc.wantFunctionError)
			}
			if tc.wantPayload == "" {
				if len(out.Payload) != 0 {
					t.Errorf("Invoke: payload %s, want none", out.Payload)
				}
				return
			}
			if !jsonEqual(t, out.Payload, []byte(tc.wantPayload)) {
				t.Errorf("Invoke: payload %s, want %s", out.Payload, tc.wantPayload)
			}
		})
	}

	t.Run("Event runs in the background", func(t *testing.T) {
		out, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("event"), Payload: []byte(`{"n":1}`), InvocationType: lambdatypes.InvocationTypeEvent})
		if err != nil || out.StatusCode != 202 {
			t.Fatalf("Invoke Event = %v, %v; want 202", out, err)
		}
		select {
		case p := <-events:
			if !jsonEqual(t, p, []byte(`{"n":1}`)) {
				t.Errorf("the function got %s", p)
			}
		case <-ctx.Done():
			t.Fatal("the Event invocation never ran")
		}
	})
	t.Run("unknown function", func(t *testing.T) {
		_, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("nope")})
		var e *lambdatypes.ResourceNotFoundException
		if !errors.As(err, &e) || !strings.Contains(e.ErrorMessage(), "function:nope") {
			t.Errorf("Invoke(nope) = %v, want a ResourceNotFoundException naming the function", err)
		}
	})
	t.Run("payload not JSON", func(t *testing.T) {
		_, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("echo"), Payload: []byte(`{`)})
		var e *lambdatypes.InvalidRequestContentException
		if !errors.As(err, &e) {
			t.Errorf("Invoke({) = %v, want an InvalidRequestContentException", err)
		}
	})
}

func TestLambdaGetFunction(t *testing.T) {
	noop := func(context.Context, json.RawMessage) (any, error) { return nil, nil }
	tags := map[string]string{"pgrotate:state-machine": "arn:aws:states:us-east-1:000000000000:stateMachine:m"}
	s := startServer(t, Options{
		Lambda:     map[string]LambdaHandler{"rotator": noop, "untagged": noop},
		LambdaTags: map[string]map[string]string{"rotator": tags},
	})
	c := lambda.NewFromConfig(sdkConfig(s.URL(), testAKID))
	ctx := testctx.Context(t)
	tests := []struct {
		name, ref string
		wantTags  map[string]string
	}{
		{"tagged, by ARN", "arn:aws:lambda:us-east-1:000000000000:function:rotator", tags},
		{"untagged, by name", "untagged", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String(tc.ref)})
			if err != nil {
				t.Fatalf("GetFunction(%s): %v", tc.ref, err)
			}
			name := functionName(tc.ref)
			if got, want := aws.ToString(out.Configuration.FunctionArn), s.functionARN(name); got != want {
				t.Errorf("FunctionArn = %s, want %s", got, want)
			}
			if len(out.Tags) != len(tc.wantTags) {
				t.Errorf("Tags = %v, want %v", out.Tags, tc.wantTags)
			}
			for k, v := range tc.wantTags {
				if out.Tags[k] != v {
					t.Errorf("Tags[%s] = %q, want %q", k, out.Tags[k], v)
				}
			}
		})
	}
	t.Run("unknown function", func(t *testing.T) {
		_, err := c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("nope")})
		var e *lambdatypes.ResourceNotFoundException
		if !errors.As(err, &e) {
			t.Errorf("GetFunction(nope) = %v, want a ResourceNotFoundException", err)
		}
	})
	t.Run("tags of an unserved function are refused", func(t *testing.T) {
		if _, err := newServer(Options{LambdaTags: map[string]map[string]string{"ghost": tags}}); err == nil {
			t.Error("newServer accepted tags for a function it does not serve")
		}
	})
}

func TestS3(t *testing.T) {
	s := startServer(t, Options{Buckets: []string{"evidence"}})
	ctx := testctx.Context(t)
	for _, pathStyle := range []bool{false, true} {
		c := s3.NewFromConfig(sdkConfig(s.URL(), testAKID), func(o *s3.Options) { o.UsePathStyle = pathStyle })
		key := "executions/one.json"
		if pathStyle {
			key = "executions/two.json"
		}
		retain := time.Date(2027, 12, 31, 0, 0, 0, 0, time.UTC)
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String("evidence"), Key: aws.String(key), Body: strings.NewReader(`{"schema":"pgrotate.evidence/v1"}`),
			ContentType:    aws.String("application/json"),
			ObjectLockMode: s3types.ObjectLockModeCompliance, ObjectLockRetainUntilDate: aws.Time(retain),
		}); err != nil {
			t.Fatalf("PutObject (path style %v): %v", pathStyle, err)
		}
		got, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("evidence"), Key: aws.String(key)})
		if err != nil {
			t.Fatalf("GetObject: %v", err)
		}
		body, _ := io.ReadAll(got.Body)
		got.Body.Close()
		if string(body) != `{"schema":"pgrotate.evidence/v1"}` || aws.ToString(got.ContentType) != "application/json" {
			t.Errorf("GetObject: body %s, content type %s", body, aws.ToString(got.ContentType))
		}
		// gofakes3 keeps the Object Lock headers as metadata and returns them; it does not
		// enforce retention (see the package doc).
		if got.ObjectLockMode != s3types.ObjectLockModeCompliance || !aws.ToTime(got.ObjectLockRetainUntilDate).Equal(retain) {
			t.Errorf("GetObject: Object Lock %q until %v, want COMPLIANCE until %v", got.ObjectLockMode, got.ObjectLockRetainUntilDate, retain)
		}
	}
	c := s3.NewFromConfig(sdkConfig(s.URL(), testAKID))
	list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("evidence"), Prefix: aws.String("executions/")})
	if err != nil {
		t.Fatalf("ListObjectsV2: %v", err)
	}
	if len(list.Contents) != 2 {
		t.Errorf("ListObjectsV2: %d objects, want 2", len(list.Contents))
	}
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("evidence"), Key: aws.String("missing")})
	var noKey *s3types.NoSuchKey
	if !errors.As(err, &noKey) {
		t.Errorf("GetObject(missing) = %v, want NoSuchKey", err)
	}
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("nobucket"), Key: aws.String("k"), Body: bytes.NewReader(nil)})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "NoSuchBucket" {
		t.Errorf("PutObject(nobucket) = %v, want NoSuchBucket", err)
	}
}

func TestAccessKeyChecked(t *testing.T) {
	store := localsecrets.New()
	s := startServer(t, Options{SecretsManager: store, AccessKeyID: testAKID, Buckets: []string{"b"}})
	ctx := testctx.Context(t)
	wrong := sdkConfig(s.URL(), "AKIASOMEONEELSE00000")

	_, err := secretsmanager.NewFromConfig(wrong).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("app")})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "UnrecognizedClientException" {
		t.Errorf("Secrets Manager with another key = %v, want UnrecognizedClientException", err)
	}
	_, err = s3.NewFromConfig(wrong).ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("b")})
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "InvalidAccessKeyId" {
		t.Errorf("S3 with another key = %v, want InvalidAccessKeyId", err)
	}
	_, err = secretsmanager.NewFromConfig(sdkConfig(s.URL(), testAKID)).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("app")})
	var notFound interface{ ErrorCode() string }
	if !errors.As(err, &notFound) || notFound.ErrorCode() != "ResourceNotFoundException" {
		t.Errorf("with the right key = %v, want the model's ResourceNotFoundException", err)
	}
}

// TestEnvFile writes the env file and uses it as a user would: the SDK's default
// configuration, from those variables alone, reaches the server and the secret.
func TestEnvFile(t *testing.T) {
	store := localsecrets.New()
	s := startServer(t, Options{SecretsManager: store, AccessKeyID: testAKID})
	ctx := testctx.Context(t)
	created, err := store.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("app"), SecretString: aws.String("{}")})
	if err != nil {
		t.Fatalf("CreateSecret: %v", err)
	}
	path := filepath.Join(t.TempDir(), "aws.env")
	if err := os.WriteFile(path, []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := Env{Endpoint: s.URL(), Region: testRegion, AccessKeyID: testAKID, SecretAccessKey: testSecret, SecretARN: aws.ToString(created.ARN)}
	if err := WriteEnvFile(path, env); err != nil {
		t.Fatalf("WriteEnvFile: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	wantKeys := []string{"AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "PGROTATE_SECRET"}
	if len(lines) != len(wantKeys) {
		t.Fatalf("%d lines, want %d", len(lines), len(wantKeys))
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_PROFILE", "")
	vars := map[string]string{}
	for i, l := range lines {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k != wantKeys[i] {
			t.Fatalf("line %d is not %s=…", i+1, wantKeys[i])
		}
		vars[k] = v
		t.Setenv(k, v)
	}
	if vars["AWS_ENDPOINT_URL"] != s.URL() || vars["PGROTATE_SECRET"] != aws.ToString(created.ARN) || vars["AWS_REGION"] != testRegion {
		t.Errorf("env file values: endpoint %s, region %s, secret %s", vars["AWS_ENDPOINT_URL"], vars["AWS_REGION"], vars["PGROTATE_SECRET"])
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatalf("LoadDefaultConfig: %v", err)
	}
	out, err := secretsmanager.NewFromConfig(cfg).DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(os.Getenv("PGROTATE_SECRET"))})
	if err != nil {
		t.Fatalf("DescribeSecret with the env file's configuration: %v", err)
	}
	if aws.ToString(out.Name) != "app" {
		t.Errorf("DescribeSecret: name %q, want app", aws.ToString(out.Name))
	}

	for name, mutate := range map[string]func(*Env){
		"empty secret ARN":    func(e *Env) { e.SecretARN = "" },
		"newline in endpoint": func(e *Env) { e.Endpoint += "\nEVIL=1" },
		"space in key":        func(e *Env) { e.SecretAccessKey = "a b" },
	} {
		t.Run(name, func(t *testing.T) {
			bad := env
			mutate(&bad)
			p := filepath.Join(t.TempDir(), "bad.env")
			if err := WriteEnvFile(p, bad); err == nil {
				t.Errorf("WriteEnvFile accepted it")
			}
			if _, err := os.Stat(p); !os.IsNotExist(err) {
				t.Errorf("WriteEnvFile left a file: %v", err)
			}
		})
	}
}
