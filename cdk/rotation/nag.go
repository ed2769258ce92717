package rotation

import (
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// Reasons for the cdk-nag suppressions, one per unavoidable wildcard.
const (
	reasonXRay = "X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions " +
		"(https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsx-ray.html); active tracing needs them on *."
	reasonENI = "A VPC Lambda's role must manage its network interfaces; ec2:CreateNetworkInterface/DescribeNetworkInterfaces/" +
		"DeleteNetworkInterface etc. need Resource * (the same actions as AWSLambdaVPCAccessExecutionRole)."
	reasonRandomPassword = "secretsmanager:GetRandomPassword has no resource type; the rotation function needs it to generate passwords " +
		"(AWS's rotation function policy grants it on *)."
	reasonExecutions = "Execution ARNs end in the execution name, which is the rotation token chosen at run time; the wildcard " +
		"is scoped to executions of this one state machine."
	reasonTasks = "ECS task ids are not known at deploy time; DescribeTasks is scoped to tasks of the named clusters, and " +
		"ecs:ListTasks (no resource-level permission) is limited by the ecs:cluster condition to those clusters."
	reasonSFNLogs = "Step Functions log delivery (logs:CreateLogDelivery, PutResourcePolicy, DescribeLogGroups and the like) and X-Ray " +
		"sampling APIs support no resource-level permissions; CDK grants them on * for logging level ALL and tracing."
	reasonTopicKey = "The state machine publishes failures to the KMS-encrypted topic; SNS needs kms:GenerateDataKey* " +
		"(all its variants) on that one key, which is the only resource of the statement."
)

var (
	executionsRegex = &cdknag.RegexAppliesTo{Regex: jsii.String(`/^Resource::arn:<AWS::Partition>:states:.+:execution:[^:]+:\*$/g`)}
	tasksRegex      = &cdknag.RegexAppliesTo{Regex: jsii.String(`/^Resource::arn:<AWS::Partition>:ecs:.+:task\/[^/]+\/\*$/g`)}
)

func suppression(rule, reason string, appliesTo ...interface{}) *cdknag.NagPackSuppression {
	s := &cdknag.NagPackSuppression{Id: jsii.String(rule), Reason: jsii.String(reason)}
	if len(appliesTo) > 0 {
		s.AppliesTo = &appliesTo
	}
	return s
}

// suppressNag records why each remaining wildcard is needed, on the role that holds it.
func (r *Rotation) suppressNag() {
	star := "Resource::*"
	byFunction := map[string][]*cdknag.NagPackSuppression{
		Rotator: {
			suppression("AwsSolutions-IAM5", reasonRandomPassword+" "+reasonXRay, star),
			suppression("AwsSolutions-IAM5", reasonExecutions, executionsRegex),
		},
		Preflight: {
			suppression("AwsSolutions-IAM5", reasonENI+" "+reasonXRay+" "+reasonTasks, star),
			suppression("AwsSolutions-IAM5", reasonExecutions, executionsRegex),
			suppression("AwsSolutions-IAM5", reasonTasks, tasksRegex),
		},
		CloneUser:     {suppression("AwsSolutions-IAM5", reasonENI+" "+reasonXRay, star)},
		SetPassword:   {suppression("AwsSolutions-IAM5", reasonENI+" "+reasonXRay, star)},
		TestLogin:     {suppression("AwsSolutions-IAM5", reasonENI+" "+reasonXRay, star)},
		CheckReplicas: {suppression("AwsSolutions-IAM5", reasonENI+" "+reasonXRay, star)},
		Redeploy:      {suppression("AwsSolutions-IAM5", reasonXRay, star)},
		CheckRollout:  {suppression("AwsSolutions-IAM5", reasonXRay, star)},
		Rethrow:       {suppression("AwsSolutions-IAM5", reasonXRay, star)},
	}
	byFunction[RetirePrevious] = []*cdknag.NagPackSuppression{suppression("AwsSolutions-IAM5", reasonENI+" "+reasonXRay, star)}
	for name, sups := range byFunction {
		cdknag.NagSuppressions_AddResourceSuppressions(roleOf(r.Functions[name]), &sups, jsii.Bool(true))
	}
	cdknag.NagSuppressions_AddResourceSuppressions(r.StateMachine.Role(), &[]*cdknag.NagPackSuppression{
		suppression("AwsSolutions-IAM5", reasonSFNLogs, star),
		suppression("AwsSolutions-IAM5", reasonTopicKey, "Action::kms:GenerateDataKey*"),
	}, jsii.Bool(true))
}

func roleOf(f awslambda.Function) interface{} { return f.Role() }
