package rotation

import (
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/pgrotate/pgrotate/lambdas/spec"
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
	// The evidence bucket's objects: its own (a token) or a brought one's.
	evidenceObjectsRegex = &cdknag.RegexAppliesTo{Regex: jsii.String(`/^Resource::.*Evidence.*\.Arn>\/.*\*$|^Resource::arn:<AWS::Partition>:s3:::.*\*$/g`)}
)

func suppression(rule, reason string, appliesTo ...interface{}) *cdknag.NagPackSuppression {
	s := &cdknag.NagPackSuppression{Id: jsii.String(rule), Reason: jsii.String(reason)}
	if len(appliesTo) > 0 {
		s.AppliesTo = &appliesTo
	}
	return s
}

// rightWildcards are the wildcards each right's statements hold (rightStatements), with why:
// a reason for Resource::* (joined with the X-Ray one every role has) or a suppression.
var rightWildcards = map[spec.Right]struct {
	star   string
	others []*cdknag.NagPackSuppression
}{
	spec.Database:       {star: reasonENI},
	spec.WriteAppSecret: {star: reasonRandomPassword},
	spec.RunExecutions:  {others: []*cdknag.NagPackSuppression{suppression("AwsSolutions-IAM5", reasonExecutions, executionsRegex)}},
	spec.ReadExecutions: {others: []*cdknag.NagPackSuppression{suppression("AwsSolutions-IAM5", reasonExecutions, executionsRegex)}},
	spec.ReadExecutionHistory: {
		others: []*cdknag.NagPackSuppression{suppression("AwsSolutions-IAM5", reasonExecutions, executionsRegex)}},
	spec.DescribeTasks: {star: reasonTasks, others: []*cdknag.NagPackSuppression{suppression("AwsSolutions-IAM5", reasonTasks, tasksRegex)}},
	spec.WriteEvidence: {others: []*cdknag.NagPackSuppression{suppression("AwsSolutions-IAM5", reasonEvidenceObjects, evidenceObjectsRegex)}},
}

// suppressWildcards records on role why each wildcard its rights need is there.
func suppressWildcards(role awsiam.IRole, rights []spec.Right) {
	star := reasonXRay
	var sups []*cdknag.NagPackSuppression
	for _, r := range rights {
		w := rightWildcards[r]
		if w.star != "" {
			star += " " + w.star
		}
		sups = append(sups, w.others...)
	}
	sups = append([]*cdknag.NagPackSuppression{suppression("AwsSolutions-IAM5", star, "Resource::*")}, sups...)
	cdknag.NagSuppressions_AddResourceSuppressions(role, &sups, jsii.Bool(true))
}

// suppressNag records why the state machine role's wildcards are needed.
func (r *Rotation) suppressNag() {
	cdknag.NagSuppressions_AddResourceSuppressions(r.StateMachine.Role(), &[]*cdknag.NagPackSuppression{
		suppression("AwsSolutions-IAM5", reasonSFNLogs, "Resource::*"),
		suppression("AwsSolutions-IAM5", reasonTopicKey, "Action::kms:GenerateDataKey*"),
	}, jsii.Bool(true))
}
