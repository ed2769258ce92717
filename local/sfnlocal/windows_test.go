package sfnlocal_test

import (
	"errors"
	"github.com/pgrotate/pgrotate/internal/testctx"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/pgrotate/pgrotate/local/sfnlocal"
)

// fakeClock is time.Now plus an offset the test moves forward.
type fakeClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// TestRedriveWindowAndNameReuse: a failed execution can be redriven for 14 days after it
// closed, not later; its name cannot be reused while its history is kept (90 days), and can
// be after.
func TestRedriveWindowAndNameReuse(t *testing.T) {
	a := &recorder{}
	b := &recorder{answer: func(int, []byte) ([]byte, error) { return nil, &MyError{"down"} }}
	clock := &fakeClock{}
	m := newMachine(t, sfnlocal.Options{Definition: chainDef, Handlers: map[string]sfnlocal.Handler{fnArn("a"): a.handle, fnArn("b"): b.handle}, Now: clock.now})
	ctx := testctx.Context(t)
	startIn := func(name string) error {
		_, err := m.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(m.StateMachineArn()), Name: aws.String(name), Input: aws.String(`{}`)})
		return err
	}
	arn := start(t, m, "old", `{}`)
	waitFor(t, m, arn, types.ExecutionStatusFailed)

	steps := []struct {
		name      string
		advance   time.Duration
		redrive   types.ExecutionRedriveStatus
		nameTaken bool
		visible   bool
	}{
		{"just failed", 0, types.ExecutionRedriveStatusRedrivable, true, true},
		{"13 days later", 13 * 24 * time.Hour, types.ExecutionRedriveStatusRedrivable, true, true},
		{"15 days later", 2 * 24 * time.Hour, types.ExecutionRedriveStatusNotRedrivable, true, true},
		{"89 days later", 74 * 24 * time.Hour, types.ExecutionRedriveStatusNotRedrivable, true, true},
		{"91 days later", 2 * 24 * time.Hour, "", false, false},
	}
	for _, st := range steps {
		clock.advance(st.advance)
		d, err := m.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
		var gone *types.ExecutionDoesNotExist
		if !st.visible {
			if !errors.As(err, &gone) {
				t.Errorf("%s: DescribeExecution error %v, want ExecutionDoesNotExist", st.name, err)
			}
			list, err := m.ListExecutions(ctx, &sfn.ListExecutionsInput{StateMachineArn: aws.String(m.StateMachineArn())})
			if err != nil || len(list.Executions) != 0 {
				t.Errorf("%s: ListExecutions = %v, %v; want none", st.name, list, err)
			}
		} else if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		} else if d.RedriveStatus != st.redrive {
			t.Errorf("%s: RedriveStatus %s (%s), want %s", st.name, d.RedriveStatus, aws.ToString(d.RedriveStatusReason), st.redrive)
		}
		if st.visible && st.redrive == types.ExecutionRedriveStatusNotRedrivable {
			var notRedrivable *types.ExecutionNotRedrivable
			if _, err := m.RedriveExecution(ctx, &sfn.RedriveExecutionInput{ExecutionArn: aws.String(arn)}); !errors.As(err, &notRedrivable) {
				t.Errorf("%s: RedriveExecution error %v, want ExecutionNotRedrivable", st.name, err)
			}
		}
		var exists *types.ExecutionAlreadyExists
		err = startIn("old")
		switch {
		case st.nameTaken && !errors.As(err, &exists):
			t.Errorf("%s: StartExecution with the old name: %v, want ExecutionAlreadyExists", st.name, err)
		case !st.nameTaken && err != nil:
			t.Errorf("%s: StartExecution with a name whose history is gone: %v", st.name, err)
		}
	}
	// The name now belongs to a new execution, which ran from the start.
	waitFor(t, m, arn, types.ExecutionStatusFailed)
	if a.calls() != 2 {
		t.Errorf("A ran %d times, want 2 (once per execution)", a.calls())
	}
}

// TestRedriveWithinTheWindow: 13 days after the failure the redrive still works.
func TestRedriveWithinTheWindow(t *testing.T) {
	b := &recorder{answer: func(call int, _ []byte) ([]byte, error) {
		if call == 1 {
			return nil, &MyError{"transient"}
		}
		return []byte(`"ok"`), nil
	}}
	clock := &fakeClock{}
	m := newMachine(t, sfnlocal.Options{Definition: chainDef, Handlers: map[string]sfnlocal.Handler{fnArn("a"): (&recorder{}).handle, fnArn("b"): b.handle}, Now: clock.now})
	arn := start(t, m, "late", `{}`)
	waitFor(t, m, arn, types.ExecutionStatusFailed)
	clock.advance(13 * 24 * time.Hour)
	if _, err := m.RedriveExecution(testctx.Context(t), &sfn.RedriveExecutionInput{ExecutionArn: aws.String(arn)}); err != nil {
		t.Fatalf("RedriveExecution 13 days later: %v", err)
	}
	waitFor(t, m, arn, types.ExecutionStatusSucceeded)
}

func TestDescribeStateMachine(t *testing.T) {
	m := newMachine(t, sfnlocal.Options{Definition: chainDef, Handlers: map[string]sfnlocal.Handler{fnArn("a"): (&recorder{}).handle, fnArn("b"): (&recorder{}).handle}})
	ctx := testctx.Context(t)
	d, err := m.DescribeStateMachine(ctx, &sfn.DescribeStateMachineInput{StateMachineArn: aws.String(m.StateMachineArn())})
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != types.StateMachineStatusActive || d.Type != types.StateMachineTypeStandard || aws.ToString(d.Name) != "local" || aws.ToString(d.Definition) == "" {
		t.Errorf("DescribeStateMachine = %+v", d)
	}
	var missing *types.StateMachineDoesNotExist
	if _, err := m.DescribeStateMachine(ctx, &sfn.DescribeStateMachineInput{StateMachineArn: aws.String("arn:aws:states:local:000000000000:stateMachine:other")}); !errors.As(err, &missing) {
		t.Errorf("other ARN: error %v, want StateMachineDoesNotExist", err)
	}
}
