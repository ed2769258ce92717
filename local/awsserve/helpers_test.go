package awsserve

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

const (
	testRegion = "eu-west-1"
	testAKID   = "AKIALOCALTEST0000001"
	testSecret = "local-test-secret-access-key"
)

func startServer(t *testing.T, opts Options) *Server {
	t.Helper()
	if opts.Region == "" {
		opts.Region = testRegion
	}
	s, err := Start(opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// sdkConfig is what a real client needs to reach the server: the endpoint override,
// static credentials and a region. The SDK's standard retryer stays: it retries the
// client-side "use of closed network connection" race of aws-sdk-go-v2 with larger request
// bodies (https://github.com/aws/aws-sdk-go-v2/issues/2737), as it does against AWS; no
// modelled error used here is retryable.
func sdkConfig(url, akid string) aws.Config {
	return aws.Config{
		Region:       testRegion,
		Credentials:  credentials.NewStaticCredentialsProvider(akid, testSecret, ""),
		BaseEndpoint: aws.String(url),
	}
}

// diff lists the paths at which got and want differ, ignoring ResultMetadata. Timestamps
// match within a millisecond either way: the wire carries epoch seconds to the millisecond,
// which the SDK truncates (smithytime.FormatEpochSeconds) and parses back through a float,
// which can lose one more. It names paths only, never
// values, so a secret value cannot reach the test output.
func diff(got, want any) []string {
	var out []string
	var walk func(path string, a, b reflect.Value)
	walk = func(path string, a, b reflect.Value) {
		if a.IsValid() != b.IsValid() {
			out = append(out, path)
			return
		}
		if !a.IsValid() {
			return
		}
		if a.Type() != b.Type() {
			out = append(out, path+" (type)")
			return
		}
		if a.Type() == timeType {
			ta, tb := a.Interface().(time.Time), b.Interface().(time.Time)
			if d := ta.Sub(tb); d <= -2*time.Millisecond || d >= 2*time.Millisecond {
				out = append(out, path)
			}
			return
		}
		switch a.Kind() {
		case reflect.Pointer, reflect.Interface:
			if a.IsNil() != b.IsNil() {
				out = append(out, path+" (nil)")
				return
			}
			if !a.IsNil() {
				walk(path, a.Elem(), b.Elem())
			}
		case reflect.Struct:
			for i := range a.NumField() {
				f := a.Type().Field(i)
				if !f.IsExported() || f.Type == metadataType {
					continue
				}
				walk(path+"."+f.Name, a.Field(i), b.Field(i))
			}
		case reflect.Slice:
			if a.Len() != b.Len() || a.IsNil() != b.IsNil() {
				out = append(out, path+" (len)")
				return
			}
			for i := range a.Len() {
				walk(fmt.Sprintf("%s[%d]", path, i), a.Index(i), b.Index(i))
			}
		case reflect.Map:
			if a.Len() != b.Len() || a.IsNil() != b.IsNil() {
				out = append(out, path+" (len)")
				return
			}
			for _, k := range a.MapKeys() {
				walk(fmt.Sprintf("%s[%v]", path, k), a.MapIndex(k), b.MapIndex(k))
			}
		default:
			if !reflect.DeepEqual(a.Interface(), b.Interface()) {
				out = append(out, path)
			}
		}
	}
	walk("", reflect.ValueOf(got), reflect.ValueOf(want))
	return out
}

// sameOutput fails the test if the output through the wire differs from the model's own.
func sameOutput(t *testing.T, op string, wire, direct any) {
	t.Helper()
	if d := diff(wire, direct); len(d) > 0 {
		t.Errorf("%s: the output through the wire differs from the model's at %v", op, d)
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("not JSON: %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("not JSON: %s: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}
