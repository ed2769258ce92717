package awsserve

import (
	"context"
	"github.com/pgrotate/pgrotate/internal/testctx"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/smithy-go"
)

var t0 = time.Date(2026, 11, 30, 12, 34, 56, 789_000_000, time.UTC)

func TestDecodeInput(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		into    any
		want    any
		wantErr string
	}{
		{
			name: "PascalCase members, null and unknown members",
			body: `{"SecretId":"app","VersionStage":null,"Bogus":1}`,
			into: &secretsmanager.GetSecretValueInput{},
			want: &secretsmanager.GetSecretValueInput{SecretId: aws.String("app")},
		},
		{
			name: "camelCase members, bool and int",
			body: `{"executionArn":"arn:x","maxResults":2,"reverseOrder":true,"includeExecutionData":false}`,
			into: &sfn.GetExecutionHistoryInput{},
			want: &sfn.GetExecutionHistoryInput{ExecutionArn: aws.String("arn:x"), MaxResults: 2, ReverseOrder: true, IncludeExecutionData: aws.Bool(false)},
		},
		{
			name: "blob is base64, list of strings",
			body: `{"SecretId":"app","SecretBinary":"AAEC/w==","VersionStages":["AWSPENDING"]}`,
			into: &secretsmanager.PutSecretValueInput{},
			want: &secretsmanager.PutSecretValueInput{SecretId: aws.String("app"), SecretBinary: []byte{0, 1, 2, 255}, VersionStages: []string{"AWSPENDING"}},
		},
		{
			name: "enum lists and nested structures",
			body: `{"cluster":"c","services":["s"],"include":["TAGS"]}`,
			into: &ecs.DescribeServicesInput{},
			want: &ecs.DescribeServicesInput{Cluster: aws.String("c"), Services: []string{"s"}, Include: []ecstypes.ServiceField{ecstypes.ServiceFieldTags}},
		},
		{
			name: "nested structure and int32 pointer",
			body: `{"service":"s","desiredCount":3,"deploymentConfiguration":{"maximumPercent":200,"minimumHealthyPercent":100}}`,
			into: &ecs.UpdateServiceInput{},
			want: &ecs.UpdateServiceInput{Service: aws.String("s"), DesiredCount: aws.Int32(3),
				DeploymentConfiguration: &ecstypes.DeploymentConfiguration{MaximumPercent: aws.Int32(200), MinimumHealthyPercent: aws.Int32(100)}},
		},
		{
			name: "map of strings",
			body: `{"Name":"app","Tags":[{"Key":"k","Value":"v"}]}`,
			into: &secretsmanager.CreateSecretInput{},
			want: &secretsmanager.CreateSecretInput{Name: aws.String("app"), Tags: []smtypes.Tag{{Key: aws.String("k"), Value: aws.String("v")}}},
		},
		{name: "empty body", body: ``, into: &sfn.ListExecutionsInput{}, want: &sfn.ListExecutionsInput{}},
		{name: "not JSON", body: `{"SecretId":`, into: &secretsmanager.GetSecretValueInput{}, wantErr: "not JSON"},
		{name: "not an object", body: `[1]`, into: &secretsmanager.GetSecretValueInput{}, wantErr: "not a JSON object"},
		{name: "trailing data", body: `{} {}`, into: &secretsmanager.GetSecretValueInput{}, wantErr: "after the JSON document"},
		{name: "string for int", body: `{"maxResults":"2"}`, into: &sfn.GetExecutionHistoryInput{}, wantErr: "member maxResults: expected an integer"},
		{name: "int out of range", body: `{"maxResults":4294967296}`, into: &sfn.GetExecutionHistoryInput{}, wantErr: "integer in range"},
		{name: "bad base64", body: `{"SecretBinary":"***"}`, into: &secretsmanager.PutSecretValueInput{}, wantErr: "member SecretBinary"},
		{name: "object for list", body: `{"services":{}}`, into: &ecs.DescribeServicesInput{}, wantErr: "member services: expected an array"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := decodeInput([]byte(tc.body), tc.into)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("decodeInput error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("decodeInput: %v", err)
			}
			if !reflect.DeepEqual(tc.into, tc.want) {
				t.Errorf("decodeInput = %+v, want %+v", tc.into, tc.want)
			}
		})
	}
}

func TestDecodeTimestamps(t *testing.T) {
	type in struct{ At, Then *time.Time }
	var got in
	if err := decodeInput([]byte(`{"At":1796042096.789,"Then":"2026-11-30T12:34:56.789Z"}`), &got); err != nil {
		t.Fatalf("decodeInput: %v", err)
	}
	for name, at := range map[string]*time.Time{"epoch seconds": got.At, "date-time": got.Then} {
		if at == nil || !at.Equal(t0) {
			t.Errorf("%s: got %v, want %v", name, at, t0)
		}
	}
}

func TestEncodeShape(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
	}{
		{
			name: "timestamps are epoch seconds with the fraction, enums strings, nil members absent",
			in: &sfn.DescribeExecutionOutput{
				ExecutionArn: aws.String("arn:e"), StartDate: aws.Time(t0), Status: sfntypes.ExecutionStatusFailed,
				RedriveCount: aws.Int32(0),
			},
			want: `{"executionArn":"arn:e","redriveCount":0,"startDate":1796042096.789,"status":"FAILED"}`,
		},
		{
			name: "blobs are base64; PascalCase members",
			in:   &secretsmanager.GetSecretValueOutput{Name: aws.String("app"), SecretBinary: []byte{0, 1, 2, 255}, VersionStages: []string{"AWSCURRENT", "AWSPENDING"}},
			want: `{"Name":"app","SecretBinary":"AAEC/w==","VersionStages":["AWSCURRENT","AWSPENDING"]}`,
		},
		{
			name: "maps and escaping",
			in: &secretsmanager.DescribeSecretOutput{
				Name:               aws.String(`a"b<c`),
				VersionIdsToStages: map[string][]string{"v1": {"AWSCURRENT"}},
			},
			want: `{"Name":"a\"b\u003cc","VersionIdsToStages":{"v1":["AWSCURRENT"]}}`,
		},
		{
			name: "nested structures in lists",
			in:   &ecs.ListTasksOutput{TaskArns: []string{"t1", "t2"}, NextToken: aws.String("2")},
			want: `{"nextToken":"2","taskArns":["t1","t2"]}`,
		},
		{
			name: "empty output",
			in:   &sfn.StopExecutionOutput{},
			want: `{}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := encodeOutput(tc.in, lowerFirst)
			if err != nil {
				t.Fatalf("encodeOutput: %v", err)
			}
			if !jsonEqual(t, got, []byte(tc.want)) {
				t.Errorf("encodeOutput = %s, want %s", got, tc.want)
			}
		})
	}
}

// TestEveryMemberRoundTrips fills every member of each served operation's output (every
// nested structure, list and map too), serves it, and reads it back through the real SDK
// client, and likewise every member of its input the other way: any member whose wire name, type or timestamp format the SDK would read
// differently shows up as a difference.
func TestEveryMemberRoundTrips(t *testing.T) {
	services := []struct {
		target, version string
		client          any
		ops             []string
	}{
		{TargetSecretsManager, "1.1", secretsmanager.NewFromConfig(aws.Config{}), []string{
			"CreateSecret", "DescribeSecret", "GetRandomPassword", "GetSecretValue", "ListSecretVersionIds",
			"PutSecretValue", "RotateSecret", "UpdateSecretVersionStage"}},
		{TargetECS, "1.1", ecs.NewFromConfig(aws.Config{}), []string{"DescribeServices", "DescribeTasks", "ListTasks", "UpdateService"}},
		{TargetStepFunctions, "1.0", sfn.NewFromConfig(aws.Config{}), []string{
			"DescribeExecution", "DescribeStateMachine", "GetExecutionHistory", "ListExecutions", "ListStateMachines",
			"RedriveExecution", "StartExecution", "StopExecution"}},
	}
	s := &Server{json: map[string]*jsonService{}}
	want := map[string]any{}
	var mu sync.Mutex
	received := map[string]any{}
	for _, svc := range services {
		js := &jsonService{target: svc.target, version: svc.version, name: lowerFirst, ops: map[string]reflect.Value{}}
		for _, op := range svc.ops {
			m := reflect.ValueOf(svc.client).MethodByName(op)
			if !m.IsValid() {
				t.Fatalf("%s has no method %s", reflect.TypeOf(svc.client), op)
			}
			out := reflect.New(m.Type().Out(0).Elem())
			fill(out.Elem(), 0)
			want[svc.target+"."+op] = out.Interface()
			js.ops[op] = reflect.MakeFunc(m.Type(), func(args []reflect.Value) []reflect.Value {
				mu.Lock()
				received[op] = args[1].Interface()
				mu.Unlock()
				return []reflect.Value{out, reflect.Zero(errorType)}
			})
		}
		s.json[svc.target] = js
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	cfg := sdkConfig(ts.URL, testAKID)
	clients := []any{secretsmanager.NewFromConfig(cfg), ecs.NewFromConfig(cfg), sfn.NewFromConfig(cfg)}
	ctx := testctx.Context(t)
	for i, svc := range services {
		for _, op := range svc.ops {
			t.Run(svc.target+"."+op, func(t *testing.T) {
				m := reflect.ValueOf(clients[i]).MethodByName(op)
				in := reflect.New(m.Type().In(1).Elem())
				fill(in.Elem(), 0)
				res := m.Call([]reflect.Value{reflect.ValueOf(ctx), in})
				if err, _ := res[1].Interface().(error); err != nil {
					t.Fatalf("%s: %v", op, err)
				}
				sameOutput(t, op, res[0].Interface(), want[svc.target+"."+op])
				mu.Lock()
				got := received[op]
				mu.Unlock()
				if d := diff(got, in.Interface()); len(d) > 0 {
					t.Errorf("%s: the input the backend received differs from the client's at %v", op, d)
				}
			})
		}
	}
}

// fill sets every exported member of v to a value that is not the zero value. Unions and
// documents (interface members) stay unset: the served operations have none.
func fill(v reflect.Value, depth int) {
	t := v.Type()
	if t == timeType {
		v.Set(reflect.ValueOf(t0.Add(time.Duration(depth) * time.Second)))
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		if depth > 40 {
			return
		}
		p := reflect.New(t.Elem())
		fill(p.Elem(), depth+1)
		v.Set(p)
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if f.IsExported() && f.Type != metadataType {
				fill(v.Field(i), depth+1)
			}
		}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			v.SetBytes([]byte{0, 1, 2, 0xfe, 0xff})
			return
		}
		if depth > 40 || t.Elem().Kind() == reflect.Interface {
			return
		}
		n := 1 // two elements near the top, one deeper down, to keep the document small
		if depth < fillWide {
			n = 2
		}
		s := reflect.MakeSlice(t, n, n)
		for i := range n {
			fill(s.Index(i), depth+1+i)
		}
		v.Set(s)
	case reflect.Map:
		if depth > 40 {
			return
		}
		m := reflect.MakeMap(t)
		val := reflect.New(t.Elem()).Elem()
		fill(val, depth+1)
		m.SetMapIndex(reflect.ValueOf("k-é\"").Convert(t.Key()), val)
		v.Set(m)
	case reflect.String:
		v.SetString("v-" + t.Name() + "-\u00e9\n\"")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(40 + depth))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1.5)
	}
}

func TestErrorShape(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantCode   string
	}{
		{"modelled client error", &smtypes.ResourceNotFoundException{Message: aws.String("m")}, 400, "ResourceNotFoundException"},
		{"wrapped in OperationError", &smithy.OperationError{ServiceID: "SFN", OperationName: "StartExecution", Err: &sfntypes.ExecutionAlreadyExists{Message: aws.String("m")}}, 400, "ExecutionAlreadyExists"},
		{"server fault", &ecstypes.ServerException{Message: aws.String("m")}, 500, "ServerException"},
		{"generic API error", &smithy.GenericAPIError{Code: "ThrottlingException", Message: "m"}, 400, "ThrottlingException"},
		{"plain error", context.Canceled, 500, "InternalFailure"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, code, _ := errorShape(tc.err)
			if status != tc.wantStatus || code != tc.wantCode {
				t.Errorf("errorShape = %d %s, want %d %s", status, code, tc.wantStatus, tc.wantCode)
			}
		})
	}
}

// fillWide is the depth above which fill puts one element, not two, in each list.
var fillWide = 6
