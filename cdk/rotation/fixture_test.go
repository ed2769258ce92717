package rotation_test

import (
	"os"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/jsii-runtime-go"

	"github.com/pgrotate/pgrotate/cdk/internal/cdktest"
	"github.com/pgrotate/pgrotate/cdk/rotation"
	"github.com/pgrotate/pgrotate/workflow"
)

func TestMain(m *testing.M) {
	code := m.Run()
	jsii.Close()
	os.Exit(code)
}

const (
	account        = "123456789012"
	region         = "eu-west-1"
	appSecretArn   = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:app/db-AbCdEf"
	adminSecretArn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:app/db/admin-GhIjKl"
	keyArn         = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
)

// newStack builds a stack with imported secrets, VPC and security group, and the rotation
// with props changed by mutate.
func newStack(t *testing.T, mutate func(*rotation.Props)) (awscdk.Stack, *rotation.Rotation) {
	t.Helper()
	return newStackIn(t, &awscdk.Environment{Account: jsii.String(account), Region: jsii.String(region)}, mutate)
}

// newStackIn is newStack in env (nil: environment-agnostic, account and region are tokens).
func newStackIn(t *testing.T, env *awscdk.Environment, mutate func(*rotation.Props)) (awscdk.Stack, *rotation.Rotation) {
	t.Helper()
	app := cdktest.NewApp(t)
	stack := awscdk.NewStack(app, jsii.String("Test"), &awscdk.StackProps{Env: env})
	vpc := awsec2.Vpc_FromVpcAttributes(stack, jsii.String("Vpc"), &awsec2.VpcAttributes{
		VpcId:             jsii.String("vpc-0123456789abcdef0"),
		AvailabilityZones: jsii.Strings("eu-west-1a", "eu-west-1b"),
		PrivateSubnetIds:  jsii.Strings("subnet-0aaaaaaaaaaaaaaa1", "subnet-0bbbbbbbbbbbbbbb2"),
	})
	key := awskms.Key_FromKeyArn(stack, jsii.String("Key"), jsii.String(keyArn))
	props := rotation.Props{
		AppSecret: awssecretsmanager.Secret_FromSecretAttributes(stack, jsii.String("App"), &awssecretsmanager.SecretAttributes{
			SecretCompleteArn: jsii.String(appSecretArn), EncryptionKey: key}),
		AdminSecret: awssecretsmanager.Secret_FromSecretAttributes(stack, jsii.String("Admin"), &awssecretsmanager.SecretAttributes{
			SecretCompleteArn: jsii.String(adminSecretArn), EncryptionKey: key}),
		EncryptionKey: key,
		Vpc:           vpc,
		Subnets:       &awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PRIVATE_WITH_EGRESS},
		SecurityGroup: awsec2.SecurityGroup_FromSecurityGroupId(stack, jsii.String("Sg"), jsii.String("sg-0123456789abcdef0"), nil),
		Replicas:      []workflow.Endpoint{{Host: "replica-1.example.eu-west-1.rds.amazonaws.com", Port: 5432}},
		Services: []workflow.Service{
			{Cluster: "prod", Service: "api"},
			{Cluster: "prod", Service: "worker"},
		},
	}
	if mutate != nil {
		mutate(&props)
	}
	r := rotation.New(stack, "Rotation", props)
	return stack, r
}
