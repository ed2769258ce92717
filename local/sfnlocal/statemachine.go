package sfnlocal

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

// DescribeStateMachine describes the Machine's one state machine: ARN, name, ACTIVE,
// STANDARD and the definition (re-encoded, so key order and spacing may differ from the
// text given to New). CreationDate and RoleArn, which Step Functions always returns, are
// absent: a local machine has neither.
// https://docs.aws.amazon.com/step-functions/latest/apireference/API_DescribeStateMachine.html
func (m *Machine) DescribeStateMachine(ctx context.Context, in *sfn.DescribeStateMachineInput, _ ...func(*sfn.Options)) (*sfn.DescribeStateMachineOutput, error) {
	const op = "DescribeStateMachine"
	if aws.ToString(in.StateMachineArn) != m.arn {
		return nil, apiError(op, &types.StateMachineDoesNotExist{Message: aws.String("State Machine Does Not Exist: '" + aws.ToString(in.StateMachineArn) + "'")})
	}
	def, err := json.Marshal(m.def.raw)
	if err != nil {
		return nil, fmt.Errorf("sfnlocal: %s: %w", op, err)
	}
	return &sfn.DescribeStateMachineOutput{
		StateMachineArn: aws.String(m.arn),
		Name:            aws.String(m.name()),
		Status:          types.StateMachineStatusActive,
		Type:            types.StateMachineTypeStandard,
		Definition:      aws.String(string(def)),
	}, nil
}

// ListStateMachines lists the Machine's one state machine.
// https://docs.aws.amazon.com/step-functions/latest/apireference/API_ListStateMachines.html
func (m *Machine) ListStateMachines(ctx context.Context, in *sfn.ListStateMachinesInput, _ ...func(*sfn.Options)) (*sfn.ListStateMachinesOutput, error) {
	return &sfn.ListStateMachinesOutput{StateMachines: []types.StateMachineListItem{{
		StateMachineArn: aws.String(m.arn),
		Name:            aws.String(m.name()),
		Type:            types.StateMachineTypeStandard,
	}}}, nil
}
