package rotation_test

import (
	"slices"
	"sort"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"

	"github.com/pgrotate/pgrotate/cdk/internal/cdktest"
	"github.com/pgrotate/pgrotate/cdk/rotation"
	"github.com/pgrotate/pgrotate/lambdas/spec"
)

// rightActions is what each registry right may do, written here independently of the
// construct: the least-privilege contract of the rights (lambdas/spec).
func rightActions(withKey bool) map[spec.Right][]string {
	read := []string{"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"}
	write := []string{"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret", "secretsmanager:PutSecretValue",
		"secretsmanager:UpdateSecretVersionStage", "secretsmanager:GetRandomPassword"}
	if withKey {
		read = append(read, "kms:Decrypt")
		write = append(write, "kms:Decrypt", "kms:GenerateDataKey")
	}
	return map[spec.Right][]string{
		spec.ReadAppSecret:   read,
		spec.ReadAdminSecret: read,
		spec.WriteAppSecret:  write,
		spec.Database: {"ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets",
			"ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"},
		spec.RunExecutions: {"states:StartExecution", "states:ListExecutions", "states:DescribeExecution",
			"states:GetExecutionHistory", "states:StopExecution", "states:RedriveExecution", "states:DescribeStateMachine"},
		spec.ReadExecutions:       {"states:DescribeExecution", "states:GetExecutionHistory"},
		spec.ReadExecutionHistory: {"states:GetExecutionHistory"},
		spec.DescribeServices:     {"ecs:DescribeServices"},
		spec.DescribeTasks:        {"ecs:DescribeTasks", "ecs:ListTasks"},
		spec.UpdateServices:       {"ecs:UpdateService"},
		// The construct's own evidence bucket always has a key.
		spec.WriteEvidence: {"s3:PutObject", "kms:GenerateDataKey"},
	}
}

// TestRolesHoldExactlyTheirRights: every function's role, the bootstrap's and the evidence
// function's included, allows exactly the actions of its registry rights, plus its logs and
// traces (and, for the evidence function, sending to its dead-letter queue, which CDK grants
// for the asynchronous invocation's failure destination).
func TestRolesHoldExactlyTheirRights(t *testing.T) {
	base := []string{"logs:CreateLogStream", "logs:PutLogEvents", "xray:PutTraceSegments", "xray:PutTelemetryRecords"}
	extra := map[string][]string{spec.Evidence: {"sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"}}
	for _, withKey := range []bool{true, false} {
		t.Run(map[bool]string{true: "customer managed key", false: "AWS managed key"}[withKey], func(t *testing.T) {
			stack, r := newStack(t, func(p *rotation.Props) {
				p.Bootstrap = true
				if !withKey {
					awsManagedKey(p)
				}
			})
			fns := map[string]awslambda.Function{spec.Bootstrap: r.Bootstrap.Function, spec.Evidence: r.Evidence.Function}
			for name, fn := range r.Functions {
				fns[name] = fn
			}
			got := map[string][]string{} // by role logical id
			for _, s := range cdktest.Statements(cdktest.Template(t, stack)) {
				got[s.Role] = append(got[s.Role], s.Actions...)
			}
			actions := rightActions(withKey)
			for _, f := range spec.Functions() {
				fn, ok := fns[f.Name]
				if !ok {
					t.Errorf("%s: not deployed", f.Name)
					continue
				}
				want := append(slices.Clone(base), extra[f.Name]...)
				for _, right := range f.Rights {
					a, ok := actions[right]
					if !ok {
						t.Fatalf("%s: right %q has no actions in this test", f.Name, right)
					}
					want = append(want, a...)
				}
				if g, w := set(got[cdktest.LogicalID(stack, fn.Role())]), set(want); !slices.Equal(g, w) {
					t.Errorf("%s (rights %v) actions:\n got %v\nwant %v", f.Name, f.Rights, g, w)
				}
			}
			if len(fns) != len(spec.Functions()) {
				t.Errorf("deployed %d functions, the registry lists %d", len(fns), len(spec.Functions()))
			}
		})
	}
}

// awsManagedKey makes the secrets encrypted with the AWS managed key: no key in the props.
func awsManagedKey(p *rotation.Props) {
	p.EncryptionKey = nil
	p.AppSecret = secretFromArn(p, "App2", appSecretArn)
	p.AdminSecret = secretFromArn(p, "Admin2", adminSecretArn)
}

func set(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return slices.Compact(out)
}
