package rotation

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"

	"github.com/pgrotate/pgrotate/lambdas/spec"
)

// BootstrapFunction is the bootstrap function's name: cmd/bootstrap, built to
// <AssetDir>/bootstrap/bootstrap.
const BootstrapFunction = spec.Bootstrap

// BootstrapResourceType is the custom resource's type; PropAppSecretArn its property naming
// the app secret (tasks.PropAppSecretARN, which the handler reads), PropAdoptExistingUser
// its optional "true" that lets the handler take over an existing user pgrotate did not
// create (tasks.PropAdoptExistingUser; see Props.BootstrapAdoptExistingUser).
const (
	BootstrapResourceType = "Custom::PgrotateBootstrap"
	PropAppSecretArn      = "AppSecretArn"
	PropAdoptExistingUser = "AdoptExistingUser"
)

const (
	// The handler waits up to 3 minutes for the replicas and keeps 15 seconds to answer.
	bootstrapTimeoutMinutes = 5
	// CloudFormation gives up on an unanswered request after this, not after an hour.
	bootstrapServiceTimeoutMinutes = 10
)

// Bootstrap is the custom resource that creates the app secret's user in the database when
// the stack is created (and makes sure of it on an update), so the app can log in before any
// rotation. Deleting it leaves the user: it may own the app's data.
type Bootstrap struct {
	// Function is the handler (tasks.Bootstrap): database-facing like the steps, with its own
	// role that reads the two secrets and nothing else.
	Function awslambda.Function
	// Resource is the custom resource. Make whatever logs in as the app user (the app's ECS
	// service) depend on it, and it on whatever the secrets' values need (the database
	// instances, the admin secret's attachment to the primary).
	Resource awscdk.CustomResource
}

// newBootstrap deploys the bootstrap function and its custom resource, CloudFormation
// invoking the function directly (it answers the response URL itself: cfn.LambdaWrap).
func (r *Rotation) newBootstrap(p Props, code string, env map[string]string, layers []awslambda.ILayerVersion) *Bootstrap {
	fn := newFunction(r.Construct, lookup(spec.Bootstrap), r.grants, code, env, layers)
	props := map[string]interface{}{PropAppSecretArn: p.AppSecret.SecretArn()}
	if p.BootstrapAdoptExistingUser {
		// Only when set: an unchanged property list does not rerun the bootstrap of
		// stacks deployed before the property existed.
		props[PropAdoptExistingUser] = "true"
	}
	res := awscdk.NewCustomResource(r.Construct, jsii.String("BootstrapUser"), &awscdk.CustomResourceProps{
		ServiceToken:   fn.FunctionArn(),
		ResourceType:   jsii.String(BootstrapResourceType),
		Properties:     &props,
		ServiceTimeout: awscdk.Duration_Minutes(jsii.Number(bootstrapServiceTimeoutMinutes)),
	})
	return &Bootstrap{Function: fn, Resource: res}
}
