package operator

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/pgrotate/pgrotate/adapters/executions"
	"github.com/pgrotate/pgrotate/tasks/evidence"
)

// listingSFN is fakeSFN with ListExecutions: the executions in order, newest first, one per
// page.
type listingSFN struct {
	fakeSFN
	order []string // execution ARNs, newest first
}

func (f *listingSFN) ListExecutions(_ context.Context, in *sfn.ListExecutionsInput, _ ...func(*sfn.Options)) (*sfn.ListExecutionsOutput, error) {
	i := 0
	if in.NextToken != nil {
		fmt.Sscan(*in.NextToken, &i)
	}
	if i >= len(f.order) {
		return &sfn.ListExecutionsOutput{}, nil
	}
	d := f.execs[f.order[i]]
	out := &sfn.ListExecutionsOutput{Executions: []types.ExecutionListItem{{ExecutionArn: aws.String(f.order[i]), Name: d.Name, Status: d.Status, StartDate: d.StartDate}}}
	if i+1 < len(f.order) {
		out.NextToken = aws.String(fmt.Sprint(i + 1))
	}
	return out, nil
}

type records []evidence.Record

func (r records) Records(context.Context, string) ([]evidence.Record, error) { return r, nil }

// History lists the secret's executions newest first (another secret's are left out), adds
// the evidence of executions Step Functions no longer keeps (the last run of each) and of
// Secrets Manager's rotation failures, and stops at --since.
func TestHistory(t *testing.T) {
	f := &listingSFN{fakeSFN: fakeSFN{execs: map[string]*sfn.DescribeExecutionOutput{}}}
	add := func(name, secretARN, token string, status types.ExecutionStatus, started time.Time) {
		arn := executions.ExecutionARN(machine, name)
		f.execs[arn] = &sfn.DescribeExecutionOutput{ExecutionArn: aws.String(arn), Name: aws.String(name), Status: status,
			StartDate: aws.Time(started), StopDate: aws.Time(started.Add(time.Minute)),
			Input:  aws.String(fmt.Sprintf(`{"secretArn":%q,"token":%q}`, secretARN, token)),
			Output: aws.String(`{"activeUser":"app_user","pendingUser":"app_user_clone"}`)}
		f.order = append(f.order, arn)
	}
	add(pending+"_2", secret, pending, types.ExecutionStatusSucceeded, now.Add(-time.Hour))
	add("other-secret-version-0000000000000000", secret+"-other", "x", types.ExecutionStatusSucceeded, now.Add(-2*time.Hour))
	add(pending, secret, pending, types.ExecutionStatusFailed, now.Add(-3*time.Hour))

	old := now.Add(-200 * 24 * time.Hour)
	oldARN := executions.ExecutionARN(machine, current)
	ev := records{
		{Kind: evidence.KindExecution, ExecutionARN: oldARN, ExecutionName: current, SecretVersion: current, Run: 0, StartedAt: &old, Outcome: evidence.Outcome{Status: "FAILED"}},
		{Kind: evidence.KindExecution, ExecutionARN: oldARN, ExecutionName: current, SecretVersion: current, Run: 1, StartedAt: &old, Outcome: evidence.Outcome{Status: "SUCCEEDED"}},
		// Still in Step Functions: not listed twice.
		{Kind: evidence.KindExecution, ExecutionARN: executions.ExecutionARN(machine, pending), ExecutionName: pending, SecretVersion: pending, StartedAt: aws.Time(now.Add(-3 * time.Hour)), Outcome: evidence.Outcome{Status: "FAILED"}},
		{Kind: evidence.KindRotationFailure, SecretVersion: "v-failed", StartedAt: aws.Time(now.Add(-100 * 24 * time.Hour)), Outcome: evidence.Outcome{Status: "RotationFailed", Error: "AccessDenied"}},
	}
	d := &Deployment{SecretARN: secret, StateMachine: machine}

	rs, err := History(context.Background(), f, d, ev, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		version, status, source string
		attempt                 int
		redrives                int32
	}
	want := []row{
		{pending, "SUCCEEDED", SourceExecutions, 2, 0},
		{pending, "FAILED", SourceExecutions, 1, 0},
		{"v-failed", "RotationFailed", SourceEvidence, 1, 0},
		{current, "SUCCEEDED", SourceEvidence, 1, 1},
	}
	if len(rs) != len(want) {
		t.Fatalf("history: %+v\nwant %d rows", rs, len(want))
	}
	for i, r := range rs {
		if got := (row{r.Version, r.Status, r.Source, r.Attempt, r.Redrives}); got != want[i] {
			t.Errorf("row %d = %+v, want %+v", i, got, want[i])
		}
	}
	if rs[0].FromUser != "app_user" || rs[1].FailedState != "SetPassword" {
		t.Errorf("users %q → %q, failed state %q", rs[0].FromUser, rs[0].ToUser, rs[1].FailedState)
	}

	rs, err = History(context.Background(), f, d, ev, now.Add(-150*time.Minute))
	if err != nil || len(rs) != 1 || rs[0].Attempt != 2 {
		t.Errorf("history since 2h30m ago: %+v, %v; want the newest execution only", rs, err)
	}
}

func TestParseAttempt(t *testing.T) {
	for name, want := range map[string]int{pending: 1, pending + "_2": 2, pending + "_x": 1, "other_3": 1} {
		if got := attempt(name, pending); got != want {
			t.Errorf("attempt(%s) = %d, want %d", name, got, want)
		}
	}
}
