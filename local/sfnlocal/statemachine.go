package sfnlocal

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

// ListStateMachines lists the Machine's one state machine.
// https://docs.aws.amazon.com/step-functions/latest/apireference/API_ListStateMachines.html
func (m *Machine) ListStateMachines(ctx context.Context, in *sfn.ListStateMachinesInput, _ ...func(*sfn.Options)) (*sfn.ListStateMachinesOutput, error) {
	return &sfn.ListStateMachinesOutput{StateMachines: []types.StateMachineListItem{{
		StateMachineArn: aws.String(m.arn),
		Name:            aws.String(m.name()),
		Type:            types.StateMachineTypeStandard,
	}}}, nil
}
