package evidence

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/smithy-go"
)

const (
	machineARN   = "arn:aws:states:eu-west-1:123456789012:stateMachine:rotation"
	executionARN = "arn:aws:states:eu-west-1:123456789012:execution:rotation:0f1e2d3c"
	secretARN    = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:app/db-AbCdEf"
)

// fakeHistory serves a fixed history, in pages of two events.
type fakeHistory struct {
	events []types.HistoryEvent
	err    error
	calls  int
}

func (f *fakeHistory) GetExecutionHistory(_ context.Context, in *sfn.GetExecutionHistoryInput, _ ...func(*sfn.Options)) (*sfn.GetExecutionHistoryOutput, error) {
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	if aws.ToString(in.ExecutionArn) != executionARN || !aws.ToBool(in.IncludeExecutionData) {
		return nil, errors.New("unexpected request")
	}
	start := 0
	if in.NextToken != nil {
		start = int((*in.NextToken)[0] - '0')
	}
	end := min(start+2, len(f.events))
	out := &sfn.GetExecutionHistoryOutput{Events: f.events[start:end]}
	if end < len(f.events) {
		out.NextToken = aws.String(string(rune('0' + end)))
	}
	return out, nil
}

// fakeObjects records PUTs; err answers every PUT.
type fakeObjects struct {
	puts map[string]string
	err  error
}

func (f *fakeObjects) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if f.err != nil {
		return nil, f.err
	}
	if aws.ToString(in.IfNoneMatch) != "*" || in.ChecksumAlgorithm == "" {
		return nil, errors.New("PUT without If-None-Match or checksum")
	}
	b, _ := io.ReadAll(in.Body)
	if f.puts == nil {
		f.puts = map[string]string{}
	}
	f.puts[aws.ToString(in.Key)] = string(b)
	return &s3.PutObjectOutput{}, nil
}

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func at(s int) *time.Time { t := t0.Add(time.Duration(s) * time.Second); return &t }

// A failed run: the input carries a field that is not a reference (as a hostile or future
// input could); the record keeps only workflow.State's references.
func failedHistory() []types.HistoryEvent {
	input := `{"secretArn":"` + secretARN + `","token":"0f1e2d3c","services":[],"password":"hunter2-never-copied"}`
	pre := `{"secretArn":"` + secretARN + `","token":"0f1e2d3c","activeVersion":"v1","activeUser":"app_user","pendingUser":"app_user_clone","primary":{"host":"db","port":5432},"password":"hunter2-never-copied"}`
	return []types.HistoryEvent{
		{Type: types.HistoryEventTypeExecutionStarted, Timestamp: at(0), ExecutionStartedEventDetails: &types.ExecutionStartedEventDetails{Input: aws.String(input)}},
		{Type: types.HistoryEventTypeTaskStateEntered, Timestamp: at(1), StateEnteredEventDetails: &types.StateEnteredEventDetails{Name: aws.String("Preflight"), Input: aws.String(input)}},
		{Type: types.HistoryEventTypeLambdaFunctionFailed, Timestamp: at(2), LambdaFunctionFailedEventDetails: &types.LambdaFunctionFailedEventDetails{Error: aws.String("PendingUserInUse")}},
		{Type: types.HistoryEventTypeLambdaFunctionSucceeded, Timestamp: at(3)},
		{Type: types.HistoryEventTypeTaskStateExited, Timestamp: at(4), StateExitedEventDetails: &types.StateExitedEventDetails{Name: aws.String("Preflight"), Output: aws.String(pre)}},
		{Type: types.HistoryEventTypeTaskStateEntered, Timestamp: at(5), StateEnteredEventDetails: &types.StateEnteredEventDetails{Name: aws.String("CloneUser"), Input: aws.String(pre)}},
		{Type: types.HistoryEventTypeLambdaFunctionFailed, Timestamp: at(6), LambdaFunctionFailedEventDetails: &types.LambdaFunctionFailedEventDetails{Error: aws.String("PrivilegeMismatch")}},
		{Type: types.HistoryEventTypeExecutionFailed, Timestamp: at(7), ExecutionFailedEventDetails: &types.ExecutionFailedEventDetails{Error: aws.String("PrivilegeMismatch"), Cause: aws.String("privileges differ")}},
	}
}

func statusEvent(status string, run int) []byte {
	b, _ := json.Marshal(map[string]any{
		"id": "e1", "detail-type": DetailTypeStatusChange, "source": SourceStates, "time": "2026-12-01T10:00:07Z",
		"detail": map[string]any{"executionArn": executionARN, "stateMachineArn": machineARN, "name": "0f1e2d3c",
			"status": status, "redriveCount": run, "input": "{\"password\":\"hunter2-never-copied\"}"},
	})
	return b
}

func TestExecutionRecord(t *testing.T) {
	hist := &fakeHistory{events: failedHistory()}
	objs := &fakeObjects{}
	h := &Handler{Executions: hist, Objects: objs, Bucket: "b", Prefix: "p/", StateMachineARN: machineARN, Version: "v9"}
	if err := h.Handle(context.Background(), statusEvent("FAILED", 0)); err != nil {
		t.Fatal(err)
	}
	body, ok := objs.puts["p/app/db-AbCdEf/0f1e2d3c/run-0.json"]
	if !ok {
		t.Fatalf("keys %v", objs.puts)
	}
	if strings.Contains(body, "hunter2") {
		t.Fatal("the record copied a field that is not a reference")
	}
	var rec Record
	if err := json.Unmarshal([]byte(body), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.FromUser != "app_user" || rec.ToUser != "app_user_clone" || rec.FromVersion != "v1" || rec.SecretVersion != "0f1e2d3c" ||
		rec.PgrotateVersion != "v9" || rec.Outcome.Error != "PrivilegeMismatch" || rec.Outcome.FailedState != "CloneUser" ||
		!rec.EndedAt.Equal(*at(7)) || !rec.StartedAt.Equal(t0) {
		t.Errorf("record %s", body)
	}
	want := []State{
		{Name: "Preflight", Type: "Task", Entered: *at(1), Exited: at(4), Result: ResultSucceeded, Retries: 1},
		{Name: "CloneUser", Type: "Task", Entered: *at(5), Result: ResultFailed, Error: "PrivilegeMismatch"},
	}
	got, _ := json.Marshal(rec.States)
	wantJSON, _ := json.Marshal(want)
	if string(got) != string(wantJSON) {
		t.Errorf("states\n got %s\nwant %s", got, wantJSON)
	}
}

func TestExecutionRecordErrors(t *testing.T) {
	transient := &smithy.GenericAPIError{Code: "SlowDown"}
	tests := []struct {
		name     string
		history  *fakeHistory
		objects  *fakeObjects
		event    []byte
		check    func(error) bool
		wantPuts int
	}{
		{"history not closed yet", &fakeHistory{events: failedHistory()[:6]}, &fakeObjects{}, statusEvent("FAILED", 0),
			func(err error) bool { var e *HistoryIncomplete; return errors.As(err, &e) }, 0},
		{"redrive not ended yet", &fakeHistory{events: failedHistory()}, &fakeObjects{}, statusEvent("SUCCEEDED", 1),
			func(err error) bool { var e *HistoryIncomplete; return errors.As(err, &e) }, 0},
		{"history unreadable", &fakeHistory{err: transient}, &fakeObjects{}, statusEvent("FAILED", 0),
			func(err error) bool {
				return errors.Is(err, transient) && strings.Contains(err.Error(), "read history")
			}, 0},
		{"S3 throttles", &fakeHistory{events: failedHistory()}, &fakeObjects{err: transient}, statusEvent("FAILED", 0),
			func(err error) bool {
				return errors.Is(err, transient) && strings.Contains(err.Error(), "write record")
			}, 0},
		{"already written", &fakeHistory{events: failedHistory()}, &fakeObjects{err: &smithy.GenericAPIError{Code: "PreconditionFailed"}}, statusEvent("FAILED", 0),
			func(err error) bool { return err == nil }, 0},
		{"not an end", &fakeHistory{events: failedHistory()}, &fakeObjects{}, statusEvent("RUNNING", 0),
			func(err error) bool { var e *InvalidEvent; return errors.As(err, &e) }, 0},
		{"unknown source", &fakeHistory{}, &fakeObjects{}, []byte(`{"id":"x","source":"aws.ec2","detail-type":"EC2 Instance State-change Notification","detail":{}}`),
			func(err error) bool { var e *InvalidEvent; return errors.As(err, &e) }, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &Handler{Executions: tc.history, Objects: tc.objects, Bucket: "b", StateMachineARN: machineARN}
			err := h.Handle(context.Background(), tc.event)
			if !tc.check(err) {
				t.Errorf("error %v (%T)", err, err)
			}
			if len(tc.objects.puts) != tc.wantPuts {
				t.Errorf("%d records written", len(tc.objects.puts))
			}
		})
	}
}

// A Secrets Manager rotation failure (CloudTrail service event) before any execution.
func TestRotationFailureRecord(t *testing.T) {
	ev := `{"version":"0","id":"e2","detail-type":"AWS Service Event via CloudTrail","source":"aws.secretsmanager","time":"2026-12-01T10:00:00Z",
	"detail":{"eventVersion":"1.08","userIdentity":{"accountId":"123456789012","invokedBy":"secretsmanager.amazonaws.com"},
	"eventTime":"2026-12-01T10:00:00Z","eventSource":"secretsmanager.amazonaws.com","eventName":"RotationFailed",
	"errorMessage":"Error when executing lambda during createSecret step","requestParameters":null,"responseElements":null,
	"additionalEventData":{"SecretId":"` + secretARN + `"},"eventID":"abc-123","eventType":"AwsServiceEvent"}}`
	objs := &fakeObjects{}
	hist := &fakeHistory{}
	h := &Handler{Executions: hist, Objects: objs, Bucket: "b", StateMachineARN: machineARN, Version: "v9"}
	if err := h.Handle(context.Background(), []byte(ev)); err != nil {
		t.Fatal(err)
	}
	body := objs.puts["app/db-AbCdEf/secretsmanager/RotationFailed-abc-123.json"]
	var rec Record
	if err := json.Unmarshal([]byte(body), &rec); err != nil {
		t.Fatalf("keys %v: %v", objs.puts, err)
	}
	if rec.Kind != KindRotationFailure || rec.SecretARN != secretARN || rec.Outcome.Status != "RotationFailed" ||
		rec.StartedBy.InvokedBy != "secretsmanager.amazonaws.com" || rec.EndedAt == nil || hist.calls != 0 {
		t.Errorf("record %s", body)
	}
	bad := strings.Replace(ev, `"additionalEventData":{"SecretId":"`+secretARN+`"},`, "", 1)
	var invalid *InvalidEvent
	if err := h.Handle(context.Background(), []byte(bad)); !errors.As(err, &invalid) {
		t.Errorf("event without a secret: %v, want InvalidEvent", err)
	}
}
