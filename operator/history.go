package operator

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/pgrotate/pgrotate/adapters/executions"
	"github.com/pgrotate/pgrotate/tasks/evidence"
	"github.com/pgrotate/pgrotate/workflow"
)

// ExecutionReader lists and reads the rotation state machine's executions.
type ExecutionReader interface {
	executions.API
	ListExecutions(ctx context.Context, in *sfn.ListExecutionsInput, optFns ...func(*sfn.Options)) (*sfn.ListExecutionsOutput, error)
}

// EvidenceSource gives the evidence records of a secret (any order), for the rotations
// older than Step Functions' 90-day history.
type EvidenceSource interface {
	Records(ctx context.Context, secretARN string) ([]evidence.Record, error)
}

// Sources of a Rotation.
const (
	SourceExecutions = "step-functions"
	SourceEvidence   = "evidence"
)

// Rotation is one execution of the rotation state machine for the secret (a rotation whose
// execution could not be redriven has a successor, Attempt 2…), or an evidence record of one.
type Rotation struct {
	Version      string     `json:"version"`
	Execution    string     `json:"execution,omitempty"`
	ExecutionARN string     `json:"executionArn,omitempty"`
	Attempt      int        `json:"attempt,omitempty"`
	Status       string     `json:"status"`
	StartedAt    *time.Time `json:"startedAt,omitempty"`
	StoppedAt    *time.Time `json:"stoppedAt,omitempty"`
	Redrives     int32      `json:"redrives"`
	FromUser     string     `json:"fromUser,omitempty"`
	ToUser       string     `json:"toUser,omitempty"`
	// FailedState and Error say where and how a failed execution failed.
	FailedState string `json:"failedState,omitempty"`
	Error       string `json:"error,omitempty"`
	Source      string `json:"source"`

	services []workflow.Service
}

// History lists every rotation of the secret since since (zero: all), newest first: the
// state machine's executions (ListExecutions, DescribeExecution, and the history for the
// state a failed one failed in,
// https://docs.aws.amazon.com/step-functions/latest/apireference/API_ListExecutions.html),
// then, from ev (nil: none), the evidence records of executions Step Functions no longer
// keeps (their history is removed 90 days after they close).
func History(ctx context.Context, api ExecutionReader, d *Deployment, ev EvidenceSource, since time.Time) ([]Rotation, error) {
	out, err := rotations(ctx, api, d, since, 0)
	if err != nil {
		return nil, err
	}
	if ev == nil {
		return out, nil
	}
	recs, err := ev.Records(ctx, d.SecretARN)
	if err != nil {
		return nil, fmt.Errorf("read the evidence of %s: %w", d.SecretARN, err)
	}
	known := map[string]bool{}
	for _, r := range out {
		known[r.ExecutionARN] = true
	}
	for _, r := range fromEvidence(recs) {
		if (r.ExecutionARN == "" || !known[r.ExecutionARN]) && (since.IsZero() || !aws.ToTime(r.StartedAt).Before(since)) {
			out = append(out, r)
		}
	}
	slices.SortStableFunc(out, func(a, b Rotation) int { return aws.ToTime(b.StartedAt).Compare(aws.ToTime(a.StartedAt)) })
	return out, nil
}

// rotations reads the secret's executions, newest first, down to since, at most limit (0: no
// limit).
func rotations(ctx context.Context, api ExecutionReader, d *Deployment, since time.Time, limit int) ([]Rotation, error) {
	var out []Rotation
	in := &sfn.ListExecutionsInput{StateMachineArn: aws.String(d.StateMachine), MaxResults: 100}
	for {
		page, err := api.ListExecutions(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list the executions of %s: %w", d.StateMachine, err)
		}
		for _, item := range page.Executions {
			if !since.IsZero() && aws.ToTime(item.StartDate).Before(since) {
				return out, nil // newest first: the rest are older
			}
			r, mine, err := rotation(ctx, api, d, item)
			if err != nil {
				return nil, err
			}
			if mine {
				out = append(out, r)
			}
			if limit > 0 && len(out) == limit {
				return out, nil
			}
		}
		if page.NextToken == nil {
			return out, nil
		}
		in.NextToken = page.NextToken
	}
}

// rotation describes one execution; mine is false when it rotates another secret.
func rotation(ctx context.Context, api ExecutionReader, d *Deployment, item types.ExecutionListItem) (Rotation, bool, error) {
	desc, err := api.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: item.ExecutionArn})
	if err != nil {
		return Rotation{}, false, fmt.Errorf("describe execution %s: %w", aws.ToString(item.Name), err)
	}
	var in workflow.State
	if err := json.Unmarshal([]byte(aws.ToString(desc.Input)), &in); err != nil || in.SecretARN != d.SecretARN {
		return Rotation{}, false, nil
	}
	r := Rotation{
		Version: in.Token, Execution: aws.ToString(desc.Name), ExecutionARN: aws.ToString(desc.ExecutionArn),
		Attempt: attempt(aws.ToString(desc.Name), in.Token), Status: string(desc.Status),
		StartedAt: desc.StartDate, StoppedAt: desc.StopDate, Redrives: aws.ToInt32(desc.RedriveCount),
		Error: aws.ToString(desc.Error), Source: SourceExecutions, services: in.Services,
	}
	switch desc.Status {
	case types.ExecutionStatusSucceeded:
		var outState workflow.State
		if json.Unmarshal([]byte(aws.ToString(desc.Output)), &outState) == nil {
			r.FromUser, r.ToUser = outState.ActiveUser, outState.PendingUser
		}
	case types.ExecutionStatusFailed, types.ExecutionStatusTimedOut, types.ExecutionStatusAborted:
		p, err := (&executions.Reader{API: api, StateMachineARN: d.StateMachine}).Progress(ctx, r.Execution)
		if err != nil {
			return Rotation{}, false, err
		}
		r.FailedState = p.FailedState
	}
	return r, true, nil
}

// attempt is the attempt number of the execution called name of the rotation to token.
func attempt(name, token string) int {
	if n, err := strconv.Atoi(strings.TrimPrefix(name, executions.Name(token)+"_")); err == nil && executions.IsAttemptOf(name, token) {
		return n
	}
	return 1
}

// fromEvidence turns records into rotations: one per execution (its last run's record) and
// one per Secrets Manager rotation failure.
func fromEvidence(recs []evidence.Record) []Rotation {
	last := map[string]evidence.Record{}
	var out []Rotation
	for _, rec := range recs {
		if rec.Kind != evidence.KindExecution {
			out = append(out, evidenceRotation(rec))
			continue
		}
		if prev, ok := last[rec.ExecutionARN]; !ok || rec.Run >= prev.Run {
			last[rec.ExecutionARN] = rec
		}
	}
	for _, rec := range last {
		out = append(out, evidenceRotation(rec))
	}
	return out
}

func evidenceRotation(rec evidence.Record) Rotation {
	return Rotation{
		Version: rec.SecretVersion, Execution: rec.ExecutionName, ExecutionARN: rec.ExecutionARN,
		Attempt: attempt(rec.ExecutionName, rec.SecretVersion), Status: rec.Outcome.Status,
		StartedAt: rec.StartedAt, StoppedAt: rec.EndedAt, Redrives: rec.Run, FromUser: rec.FromUser, ToUser: rec.ToUser,
		FailedState: rec.Outcome.FailedState, Error: rec.Outcome.Error, Source: SourceEvidence,
	}
}
