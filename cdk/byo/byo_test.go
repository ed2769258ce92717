package byo_test

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/pgrotate/pgrotate/cdk/byo"
	"github.com/pgrotate/pgrotate/cdk/internal/cdktest"
	"github.com/pgrotate/pgrotate/workflow"
)

func TestMain(m *testing.M) {
	code := m.Run()
	jsii.Close()
	os.Exit(code)
}

// fullContext sets every required key, as `-c key=value` would (strings).
func fullContext() map[string]any {
	return map[string]any{
		byo.KeyAppSecretArn:      "arn:aws:secretsmanager:eu-central-1:210987654321:secret:prod/app-AbCdEf",
		byo.KeyAdminSecretArn:    "arn:aws:secretsmanager:eu-central-1:210987654321:secret:prod/admin-GhIjKl",
		byo.KeyVpcID:             "vpc-0123456789abcdef0",
		byo.KeyAvailabilityZones: "eu-central-1a,eu-central-1b",
		byo.KeySubnetIDs:         "subnet-0aaaaaaaaaaaaaaa1, subnet-0bbbbbbbbbbbbbbb2",
		byo.KeySecurityGroupID:   "sg-0123456789abcdef0",
		byo.KeyServices:          "prod/api,prod/worker",
	}
}

func lookupIn(ctx map[string]any) func(string) any {
	return func(k string) any { return ctx[k] }
}

func TestConfigFromContext(t *testing.T) {
	ctx := fullContext()
	ctx[byo.KeyReplicas] = []any{"replica-1.example.com", "replica-2.example.com:5433"}
	ctx[byo.KeyMaxPasswordAgeDays] = float64(60) // a number in cdk.json
	ctx[byo.KeyPasswordLength] = "40"
	ctx[byo.KeyKMSKeyArn] = "arn:aws:kms:eu-central-1:210987654321:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	c, err := byo.ConfigFromContext(lookupIn(ctx))
	if err != nil {
		t.Fatalf("ConfigFromContext: %v", err)
	}
	if c.Account != "210987654321" || c.Region != "eu-central-1" {
		t.Errorf("env = %s/%s, want the app secret's account and region", c.Account, c.Region)
	}
	if !slices.Equal(c.SubnetIDs, []string{"subnet-0aaaaaaaaaaaaaaa1", "subnet-0bbbbbbbbbbbbbbb2"}) {
		t.Errorf("SubnetIDs = %v", c.SubnetIDs)
	}
	if want := []workflow.Service{{Cluster: "prod", Service: "api"}, {Cluster: "prod", Service: "worker"}}; !slices.Equal(c.Services, want) {
		t.Errorf("Services = %v, want %v", c.Services, want)
	}
	if want := []workflow.Endpoint{{Host: "replica-1.example.com", Port: 5432}, {Host: "replica-2.example.com", Port: 5433}}; !slices.Equal(c.Replicas, want) {
		t.Errorf("Replicas = %v, want %v", c.Replicas, want)
	}
	if c.MaxPasswordAgeDays != 60 || c.PasswordLength != 40 || c.StackName != byo.DefaultStackName {
		t.Errorf("age %d length %d stack %s", c.MaxPasswordAgeDays, c.PasswordLength, c.StackName)
	}
}

func TestMissingContext(t *testing.T) {
	for _, tc := range []struct {
		name    string
		drop    []string
		missing []string
	}{
		{"nothing set", []string{byo.KeyAppSecretArn, byo.KeyAdminSecretArn, byo.KeyVpcID, byo.KeyAvailabilityZones,
			byo.KeySubnetIDs, byo.KeySecurityGroupID, byo.KeyServices},
			[]string{"appSecretArn", "adminSecretArn", "vpcId", "availabilityZones", "subnetIds", "securityGroupId", "services"}},
		{"two missing", []string{byo.KeyVpcID, byo.KeyServices}, []string{"vpcId", "services"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := fullContext()
			for _, k := range tc.drop {
				delete(ctx, k)
			}
			_, err := byo.ConfigFromContext(lookupIn(ctx))
			if !errors.Is(err, byo.ErrMissingContext) {
				t.Fatalf("error = %v, want ErrMissingContext", err)
			}
			msg := err.Error()
			head, _, _ := strings.Cut(msg, "(required:")
			for _, k := range tc.missing {
				if !strings.Contains(head, k) {
					t.Errorf("error %q does not name missing key %s", msg, k)
				}
			}
			if !strings.Contains(msg, "cdk/README.md") {
				t.Errorf("error %q does not point at the documentation", msg)
			}
		})
	}
}

func TestInvalidContext(t *testing.T) {
	for _, tc := range []struct {
		key, value, want string
	}{
		{byo.KeyAppSecretArn, "arn:aws:secretsmanager:eu-central-1:210987654321:secret:prod/app", "complete Secrets Manager secret ARN"},
		{byo.KeyAdminSecretArn, "arn:aws:secretsmanager:us-east-1:210987654321:secret:prod/admin-GhIjKl", "account and region"},
		{byo.KeyVpcID, "my-vpc", "not a VPC id"},
		{byo.KeySubnetIDs, "subnet-0aaaaaaaaaaaaaaa1", "1 subnets for 2 availability zones"},
		{byo.KeySecurityGroupID, "default", "not a security group id"},
		{byo.KeyServices, "prod", "not cluster/service"},
		{byo.KeyReplicas, "replica:notaport", "not host[:port]"},
		{byo.KeyMaxPasswordAgeDays, "ninety", "not a positive whole number"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			ctx := fullContext()
			ctx[tc.key] = tc.value
			_, err := byo.ConfigFromContext(lookupIn(ctx))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.key) {
				t.Errorf("error = %v, want one naming %s: %s", err, tc.key, tc.want)
			}
		})
	}
}

func TestRequested(t *testing.T) {
	if byo.Requested(lookupIn(map[string]any{byo.KeyStackName: "X", byo.KeyCABundle: "ca.pem", "region": "eu-west-1"})) {
		t.Error("Requested without any of the stack's keys")
	}
	if !byo.Requested(lookupIn(map[string]any{byo.KeyVpcID: "vpc-1"})) {
		t.Error("not Requested with vpcId set")
	}
}

func TestStack(t *testing.T) {
	ctx := fullContext()
	ctx[byo.KeyAlarmTopicArn] = "arn:aws:sns:eu-central-1:210987654321:ops"
	ctx[byo.KeyMaxPasswordAgeDays] = "30"
	ctx[byo.KeyKMSKeyArn] = "arn:aws:kms:eu-central-1:210987654321:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	cfg, err := byo.ConfigFromContext(lookupIn(ctx))
	if err != nil {
		t.Fatal(err)
	}
	app := cdktest.NewApp(t)
	stack := byo.NewStack(app, cfg)
	if *stack.Account() != "210987654321" || *stack.Region() != "eu-central-1" {
		t.Errorf("stack env %s/%s, want the app secret's", *stack.Account(), *stack.Region())
	}
	tmpl := cdktest.Template(t, stack)
	got := cdktest.JSON(tmpl)
	for _, want := range []string{
		`"ScheduleExpression":"rate(15 days)"`,
		`"SecretId":"` + ctx[byo.KeyAppSecretArn].(string) + `"`,
		`"AlarmTopicArn":"arn:aws:sns:eu-central-1:210987654321:ops"`,
		`"SubnetIds":["subnet-0aaaaaaaaaaaaaaa1","subnet-0bbbbbbbbbbbbbbb2"]`,
		`"SecurityGroupIds":["sg-0123456789abcdef0"]`,
		`:ecs:eu-central-1:210987654321:service/prod/worker"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("template lacks %s", want)
		}
	}
	if n := len(cdktest.Resources(tmpl, "AWS::SNS::Topic")); n != 0 {
		t.Errorf("created %d topics, want none (alarmTopicArn given)", n)
	}
	if w := assertions.Annotations_FromStack(stack).FindWarning(jsii.String("*"), assertions.Match_AnyValue()); len(*w) > 0 {
		for _, m := range *w {
			t.Errorf("synthesis warning on %s", cdktest.Message(m))
		}
	}
	errs, warns := cdktest.NagFindings(stack)
	for _, e := range append(errs, warns...) {
		t.Errorf("cdk-nag: %s", e)
	}
	cdktest.CheckSuppressionReasons(t, cdktest.Suppressions(tmpl))
	if w := cdktest.SecretWildcards(cdktest.Statements(tmpl)); len(w) > 0 {
		t.Errorf("secret wildcards: %+v", w)
	}
	if found := cdktest.LiteralPasswords(tmpl); len(found) > 0 {
		t.Errorf("literal passwords: %v", found)
	}
}
