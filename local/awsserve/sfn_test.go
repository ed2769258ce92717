package awsserve

import (
	"encoding/json"
	"errors"
	"github.com/pgrotate/pgrotate/internal/testctx"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/pgrotate/pgrotate/local/sfnlocal"
)

func TestStepFunctionsOverTheWire(t *testing.T) {
	m, err := sfnlocal.New(sfnlocal.Options{Definition: `{"StartAt":"P","States":{"P":{"Type":"Pass","Result":{"done":true},"End":true}}}`})
	if err != nil {
		t.Fatalf("sfnlocal.New: %v", err)
	}
	t.Cleanup(func() { _ = m.Close() })
	s := startServer(t, Options{StepFunctions: m})
	c := sfn.NewFromConfig(sdkConfig(s.URL(), testAKID))
	ctx := testctx.Context(t)

	started, err := c.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(m.StateMachineArn()), Name: aws.String("one"), Input: aws.String(`{"a":1}`)})
	if err != nil {
		t.Fatalf("StartExecution: %v", err)
	}
	if status, err := m.Wait(ctx, aws.ToString(started.ExecutionArn)); err != nil || status != sfntypes.ExecutionStatusSucceeded {
		t.Fatalf("Wait = %s, %v; want SUCCEEDED", status, err)
	}

	descIn := &sfn.DescribeExecutionInput{ExecutionArn: started.ExecutionArn}
	wire, err := c.DescribeExecution(ctx, descIn)
	if err != nil {
		t.Fatalf("DescribeExecution: %v", err)
	}
	direct, _ := m.DescribeExecution(ctx, descIn)
	sameOutput(t, "DescribeExecution", wire, direct)
	if wire.Status != sfntypes.ExecutionStatusSucceeded || aws.ToString(wire.Output) != `{"done":true}` || !aws.ToTime(wire.StartDate).Equal(aws.ToTime(started.StartDate)) {
		t.Errorf("DescribeExecution: status %s, output %s; want SUCCEEDED, {\"done\":true}, the start date StartExecution gave", wire.Status, aws.ToString(wire.Output))
	}

	// History, one event a page: the nextToken round-trips and the pages add up to the
	// model's history.
	all, _ := m.GetExecutionHistory(ctx, &sfn.GetExecutionHistoryInput{ExecutionArn: started.ExecutionArn, MaxResults: 1000})
	var events []sfntypes.HistoryEvent
	p := sfn.NewGetExecutionHistoryPaginator(c, &sfn.GetExecutionHistoryInput{ExecutionArn: started.ExecutionArn, MaxResults: 1})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("GetExecutionHistory: %v", err)
		}
		events = append(events, page.Events...)
	}
	if len(events) < 3 {
		t.Fatalf("GetExecutionHistory: %d events, want at least ExecutionStarted, the Pass state, ExecutionSucceeded", len(events))
	}
	sameOutput(t, "GetExecutionHistory", events, all.Events)

	list, err := c.ListExecutions(ctx, &sfn.ListExecutionsInput{StateMachineArn: aws.String(m.StateMachineArn()), StatusFilter: sfntypes.ExecutionStatusSucceeded})
	if err != nil {
		t.Fatalf("ListExecutions: %v", err)
	}
	if len(list.Executions) != 1 || aws.ToString(list.Executions[0].Name) != "one" {
		t.Errorf("ListExecutions: want the one execution")
	}

	sm, err := c.DescribeStateMachine(ctx, &sfn.DescribeStateMachineInput{StateMachineArn: aws.String(m.StateMachineArn())})
	if err != nil {
		t.Fatalf("DescribeStateMachine: %v", err)
	}
	var def struct{ StartAt string }
	if err := json.Unmarshal([]byte(aws.ToString(sm.Definition)), &def); err != nil || def.StartAt != "P" ||
		aws.ToString(sm.Name) != "local" || sm.Status != sfntypes.StateMachineStatusActive {
		t.Errorf("DescribeStateMachine: name %q, status %s, StartAt %q (%v)", aws.ToString(sm.Name), sm.Status, def.StartAt, err)
	}
	machines, err := c.ListStateMachines(ctx, &sfn.ListStateMachinesInput{})
	if err != nil || len(machines.StateMachines) != 1 || aws.ToString(machines.StateMachines[0].StateMachineArn) != m.StateMachineArn() {
		t.Errorf("ListStateMachines = %v, %v; want the one machine", machines, err)
	}

	errTests := []struct {
		name  string
		err   error
		check func(error) bool
	}{
		{"ExecutionAlreadyExists", func() error {
			_, err := c.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(m.StateMachineArn()), Name: aws.String("one"), Input: aws.String(`{"a":2}`)})
			return err
		}(), func(err error) bool { var e *sfntypes.ExecutionAlreadyExists; return errors.As(err, &e) }},
		{"ExecutionDoesNotExist", func() error {
			_, err := c.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(m.StateMachineArn() + ":nope")})
			return err
		}(), func(err error) bool { var e *sfntypes.ExecutionDoesNotExist; return errors.As(err, &e) }},
		{"StateMachineDoesNotExist", func() error {
			_, err := c.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String("arn:aws:states:eu-west-1:000000000000:stateMachine:other")})
			return err
		}(), func(err error) bool { var e *sfntypes.StateMachineDoesNotExist; return errors.As(err, &e) }},
		{"StateMachineDoesNotExist from DescribeStateMachine", func() error {
			_, err := c.DescribeStateMachine(ctx, &sfn.DescribeStateMachineInput{StateMachineArn: aws.String(m.StateMachineArn() + "x")})
			return err
		}(), func(err error) bool { var e *sfntypes.StateMachineDoesNotExist; return errors.As(err, &e) }},
		{"ExecutionNotRedrivable", func() error {
			_, err := c.RedriveExecution(ctx, &sfn.RedriveExecutionInput{ExecutionArn: started.ExecutionArn})
			return err
		}(), func(err error) bool { var e *sfntypes.ExecutionNotRedrivable; return errors.As(err, &e) }},
	}
	for _, tc := range errTests {
		if !tc.check(tc.err) {
			t.Errorf("%s: got %v", tc.name, tc.err)
		}
	}
}
