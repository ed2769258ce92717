package rotation

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/pgrotate/pgrotate/lambdas/spec"
)

// tagForDiscovery tags the rotation function with what the pgrotate CLI needs beyond the
// secret: it reads the secret's RotationLambdaARN (DescribeSecret), then these tags
// (lambda:GetFunction returns a function's tags,
// https://docs.aws.amazon.com/lambda/latest/api/API_GetFunction.html). The state machine's
// ARN is the formatted one the functions' environment uses, so no reference to the state
// machine (which references the function) makes a cycle. Only the function resource is
// tagged, not its role.
func (r *Rotation) tagForDiscovery(p Props) {
	tags := map[string]*string{
		spec.TagStateMachine:      r.StateMachineArn,
		spec.TagPreflightFunction: r.Functions[Preflight].FunctionArn(),
	}
	if r.Evidence != nil && r.Evidence.Bucket != nil {
		tags[spec.TagEvidenceBucket] = r.Evidence.Bucket.BucketName()
		if prefix := p.Evidence.Prefix; prefix != "" {
			tags[spec.TagEvidencePrefix] = jsii.String(prefix)
		}
	}
	onlyFunction := &awscdk.TagProps{IncludeResourceTypes: jsii.Strings("AWS::Lambda::Function")}
	for k, v := range tags {
		awscdk.Tags_Of(r.Functions[Rotator]).Add(jsii.String(k), v, onlyFunction)
	}
}
