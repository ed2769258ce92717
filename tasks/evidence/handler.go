package evidence

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/smithy-go"
)

// EventBridge detail types the handler accepts.
const (
	// DetailTypeStatusChange is sent by Step Functions directly to EventBridge for every
	// status change of a Standard execution (best effort).
	// https://docs.aws.amazon.com/eventbridge/latest/ref/events-ref-states.html
	// https://docs.aws.amazon.com/step-functions/latest/dg/eventbridge-integration.html
	DetailTypeStatusChange = "Step Functions Execution Status Change"
	// DetailTypeServiceEvent carries Secrets Manager's rotation events (RotationFailed,
	// RotationAbandoned), delivered via CloudTrail; detail.additionalEventData.SecretId is
	// the secret's ARN, and no version id is given.
	// https://docs.aws.amazon.com/secretsmanager/latest/userguide/cloudtrail_log_entries.html
	// https://docs.aws.amazon.com/eventbridge/latest/ref/events-ref-secretsmanager.html
	DetailTypeServiceEvent = "AWS Service Event via CloudTrail"

	SourceStates         = "aws.states"
	SourceSecretsManager = "aws.secretsmanager"
)

// TerminalStatuses are the execution statuses a record is written for.
var TerminalStatuses = []string{
	string(types.ExecutionStatusSucceeded), string(types.ExecutionStatusFailed),
	string(types.ExecutionStatusTimedOut), string(types.ExecutionStatusAborted),
}

// RotationFailureEvents are the Secrets Manager CloudTrail events a record is written for.
var RotationFailureEvents = []string{"RotationFailed", "RotationAbandoned"}

// Executions reads an execution's history; *sfn.Client and local/sfnlocal satisfy it.
type Executions interface {
	GetExecutionHistory(ctx context.Context, in *sfn.GetExecutionHistoryInput, optFns ...func(*sfn.Options)) (*sfn.GetExecutionHistoryOutput, error)
}

// Objects writes records; *s3.Client satisfies it.
type Objects interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// Handler writes one record per EventBridge event it is given.
type Handler struct {
	Executions Executions
	Objects    Objects
	// Bucket receives the records, under Prefix (default "", else it should end in "/").
	Bucket string
	Prefix string
	// StateMachineARN is the rotation state machine: events of any other are refused.
	StateMachineARN string
	// Version is pgrotate's version, written into every record.
	Version string
	Log     *slog.Logger
}

// The handler's error names (the Lambda errorType).
type (
	// InvalidEvent reports an event the handler cannot write a record for (malformed, of
	// another source or state machine, or a status that is not an end). Nothing is written.
	InvalidEvent struct {
		ID     string
		Reason string
	}

	// HistoryIncomplete reports that the execution's history does not show the end of the
	// run the event announces yet; the invocation fails so that Lambda retries it.
	HistoryIncomplete struct {
		Execution string
		Run       int32
	}
)

func (e *InvalidEvent) Error() string {
	return fmt.Sprintf("invalid evidence event %q: %s", e.ID, e.Reason)
}

func (e *HistoryIncomplete) Error() string {
	return fmt.Sprintf("history of execution %s does not show the end of run %d yet", e.Execution, e.Run)
}

// envelope is the EventBridge event.
type envelope struct {
	ID         string          `json:"id"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Time       time.Time       `json:"time"`
	Detail     json.RawMessage `json:"detail"`
}

// statusChange is the detail of a Step Functions Execution Status Change. The execution's
// input and output are left out on purpose: the record is built from the history.
type statusChange struct {
	ExecutionArn    string `json:"executionArn"`
	StateMachineArn string `json:"stateMachineArn"`
	Name            string `json:"name"`
	Status          string `json:"status"`
	StartDate       *int64 `json:"startDate"` // epoch milliseconds
	StopDate        *int64 `json:"stopDate"`
	RedriveCount    int32  `json:"redriveCount"`
}

// trailEvent is the CloudTrail record of a Secrets Manager service event.
type trailEvent struct {
	EventID      string `json:"eventID"`
	EventName    string `json:"eventName"`
	EventSource  string `json:"eventSource"`
	EventTime    string `json:"eventTime"`
	ErrorMessage string `json:"errorMessage"`
	UserIdentity struct {
		ARN       string `json:"arn"`
		InvokedBy string `json:"invokedBy"`
	} `json:"userIdentity"`
	AdditionalEventData struct {
		SecretID string `json:"SecretId"`
	} `json:"additionalEventData"`
}

// Handle writes the record of one event. A repeated event writes nothing new.
func (h *Handler) Handle(ctx context.Context, raw json.RawMessage) error {
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return h.invalid(&InvalidEvent{Reason: "not an EventBridge event"})
	}
	switch {
	case env.Source == SourceStates && env.DetailType == DetailTypeStatusChange:
		return h.statusChange(ctx, env)
	case env.Source == SourceSecretsManager && env.DetailType == DetailTypeServiceEvent:
		return h.rotationFailure(ctx, env)
	}
	return h.invalid(&InvalidEvent{ID: env.ID, Reason: fmt.Sprintf("source %q, detail-type %q", env.Source, env.DetailType)})
}

func (h *Handler) invalid(err *InvalidEvent) error {
	h.log().Error("evidence not written", "error", err.Error())
	return err
}

func (h *Handler) log() *slog.Logger {
	if h.Log == nil {
		return slog.Default()
	}
	return h.Log
}

func (h *Handler) statusChange(ctx context.Context, env envelope) error {
	var d statusChange
	if err := json.Unmarshal(env.Detail, &d); err != nil || d.ExecutionArn == "" || d.Name == "" {
		return h.invalid(&InvalidEvent{ID: env.ID, Reason: "detail has no executionArn or name"})
	}
	if d.StateMachineArn != h.StateMachineARN {
		return h.invalid(&InvalidEvent{ID: env.ID, Reason: fmt.Sprintf("state machine %s is not the rotation state machine", d.StateMachineArn)})
	}
	if !slices.Contains(TerminalStatuses, d.Status) {
		return h.invalid(&InvalidEvent{ID: env.ID, Reason: fmt.Sprintf("status %q is not an end", d.Status)})
	}

	history, err := h.history(ctx, d.ExecutionArn)
	if err != nil {
		return err
	}
	events, ended := runEvents(history, d.RedriveCount)
	if !ended {
		return &HistoryIncomplete{Execution: d.Name, Run: d.RedriveCount}
	}
	rec := &Record{
		Schema: Schema, Kind: KindExecution, PgrotateVersion: h.Version,
		ExecutionARN: d.ExecutionArn, ExecutionName: d.Name, Run: d.RedriveCount,
		StartedBy: StartedBy{Via: "secretsmanager-rotation", ClientRequestToken: d.Name},
		Outcome:   Outcome{Status: d.Status},
		Event:     EventRef{ID: env.ID, DetailType: env.DetailType, Time: env.Time.UTC()},
	}
	build(rec, events)
	end := events[len(events)-1]
	for _, ev := range events {
		if isEnd(ev.Type) {
			end = ev
		}
	}
	at := aws.ToTime(end.Timestamp).UTC()
	rec.EndedAt = &at
	rec.Outcome.Error, rec.Outcome.Cause = endError(end)
	if rec.SecretARN == "" {
		return h.invalid(&InvalidEvent{ID: env.ID, Reason: fmt.Sprintf("execution %s has no secretArn in its input", d.Name)})
	}
	key := h.Prefix + secretID(rec.SecretARN) + "/" + d.Name + "/run-" + strconv.Itoa(int(d.RedriveCount)) + ".json"
	return h.put(ctx, key, rec)
}

func (h *Handler) rotationFailure(ctx context.Context, env envelope) error {
	var d trailEvent
	if err := json.Unmarshal(env.Detail, &d); err != nil {
		return h.invalid(&InvalidEvent{ID: env.ID, Reason: "detail is not a CloudTrail record"})
	}
	if !slices.Contains(RotationFailureEvents, d.EventName) || d.AdditionalEventData.SecretID == "" || d.EventID == "" {
		return h.invalid(&InvalidEvent{ID: env.ID, Reason: fmt.Sprintf("event %q without a secret or an event id", d.EventName)})
	}
	rec := &Record{
		Schema: Schema, Kind: KindRotationFailure, PgrotateVersion: h.Version,
		SecretARN: d.AdditionalEventData.SecretID,
		StartedBy: StartedBy{Via: "secretsmanager", Principal: d.UserIdentity.ARN, InvokedBy: d.UserIdentity.InvokedBy},
		Outcome:   Outcome{Status: d.EventName, Cause: d.ErrorMessage},
		Event:     EventRef{ID: env.ID, DetailType: env.DetailType, Time: env.Time.UTC()},
	}
	if t, err := time.Parse(time.RFC3339, d.EventTime); err == nil {
		t = t.UTC()
		rec.EndedAt = &t
	}
	key := h.Prefix + secretID(rec.SecretARN) + "/secretsmanager/" + d.EventName + "-" + d.EventID + ".json"
	return h.put(ctx, key, rec)
}

// history reads the whole history with execution data: the LSN, the replicas and the
// deployment ids are in the states' outputs. Only the references of workflow.State are kept.
// https://docs.aws.amazon.com/step-functions/latest/apireference/API_GetExecutionHistory.html
func (h *Handler) history(ctx context.Context, arn string) ([]types.HistoryEvent, error) {
	var out []types.HistoryEvent
	var token *string
	for {
		page, err := h.Executions.GetExecutionHistory(ctx, &sfn.GetExecutionHistoryInput{
			ExecutionArn: aws.String(arn), IncludeExecutionData: aws.Bool(true), MaxResults: 1000, NextToken: token,
		})
		if err != nil {
			return nil, fmt.Errorf("read history of execution %s: %w", arn, err)
		}
		out = append(out, page.Events...)
		if page.NextToken == nil {
			return out, nil
		}
		token = page.NextToken
	}
}

// put writes the record once. If-None-Match: * makes S3 refuse a second object under the
// key (412), so a repeated event, or a retried invocation, leaves the first record alone;
// a concurrent write of the same key answers 409, and the retry then sees 412.
// https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
// Object Lock needs Content-MD5 or a checksum on every PutObject; the SDK sends the SHA-256.
// https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html
func (h *Handler) put(ctx context.Context, key string, rec *Record) error {
	body, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("encode record %s: %w", key, err)
	}
	_, err = h.Objects.PutObject(ctx, &s3.PutObjectInput{
		Bucket:            aws.String(h.Bucket),
		Key:               aws.String(key),
		Body:              bytes.NewReader(body),
		ContentLength:     aws.Int64(int64(len(body))),
		ContentType:       aws.String("application/json"),
		IfNoneMatch:       aws.String("*"),
		ChecksumAlgorithm: s3types.ChecksumAlgorithmSha256,
	})
	if alreadyWritten(err) {
		h.log().Info("evidence already written", "key", key)
		return nil
	}
	if err != nil {
		return fmt.Errorf("write record %s: %w", key, err)
	}
	h.log().Info("evidence written", "key", key, "kind", rec.Kind, "status", rec.Outcome.Status)
	return nil
}

// alreadyWritten reports S3's answer to If-None-Match when the key exists.
func alreadyWritten(err error) bool {
	if err == nil {
		return false
	}
	var api smithy.APIError
	if errors.As(err, &api) && api.ErrorCode() == "PreconditionFailed" {
		return true
	}
	var resp *awshttp.ResponseError
	return errors.As(err, &resp) && resp.HTTPStatusCode() == http.StatusPreconditionFailed
}

// secretID is the part of a secret ARN after "secret:" (name and random suffix).
func secretID(arn string) string {
	if _, id, ok := strings.Cut(arn, ":secret:"); ok && id != "" {
		return id
	}
	return "unknown-secret"
}

func isEnd(t types.HistoryEventType) bool {
	switch t {
	case types.HistoryEventTypeExecutionSucceeded, types.HistoryEventTypeExecutionFailed,
		types.HistoryEventTypeExecutionAborted, types.HistoryEventTypeExecutionTimedOut:
		return true
	}
	return false
}

func endError(ev types.HistoryEvent) (string, string) {
	switch {
	case ev.ExecutionFailedEventDetails != nil:
		return aws.ToString(ev.ExecutionFailedEventDetails.Error), aws.ToString(ev.ExecutionFailedEventDetails.Cause)
	case ev.ExecutionAbortedEventDetails != nil:
		return aws.ToString(ev.ExecutionAbortedEventDetails.Error), aws.ToString(ev.ExecutionAbortedEventDetails.Cause)
	case ev.ExecutionTimedOutEventDetails != nil:
		return aws.ToString(ev.ExecutionTimedOutEventDetails.Error), aws.ToString(ev.ExecutionTimedOutEventDetails.Cause)
	}
	return "", ""
}
