package rotation

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctions"
	"github.com/aws/jsii-runtime-go"

	"github.com/pgrotate/pgrotate/lambdas/spec"
	"github.com/pgrotate/pgrotate/statemachine"
)

// executionTimeout bounds one rotation; a redrive restarts the clock.
const executionTimeoutHours = 12

// grants scopes the registry's rights (lambdas/spec) to this rotation's resources: every
// function's role is built from its spec.Function.Rights by grant, and by nothing else.
type grants struct {
	p     Props
	stack awscdk.Stack
	// stateMachine is the formatted state machine ARN, executions matches its executions.
	stateMachine, executions *string
	// services are Props.Services; clusters and tasks those of their clusters.
	services, clusters, tasks []*string
	// evidenceObjects and evidenceKey are the evidence bucket's objects (under the prefix)
	// and its key (nil for a brought bucket without one); newEvidence sets them.
	evidenceObjects *string
	evidenceKey     awskms.IKey
}

func newGrants(p Props, stack awscdk.Stack, stateMachine, executions *string) *grants {
	g := &grants{p: p, stack: stack, stateMachine: stateMachine, executions: executions}
	seen := map[string]bool{}
	for _, s := range p.Services {
		g.services = append(g.services, g.ecsArn("service", s.Cluster+"/"+s.Service))
		if seen[s.Cluster] {
			continue
		}
		seen[s.Cluster] = true
		g.clusters = append(g.clusters, g.ecsArn("cluster", s.Cluster))
		g.tasks = append(g.tasks, g.ecsArn("task", s.Cluster+"/*"))
	}
	return g
}

func (g *grants) ecsArn(resource, name string) *string {
	return g.stack.FormatArn(&awscdk.ArnComponents{
		Service: jsii.String("ecs"), Resource: jsii.String(resource), ResourceName: jsii.String(name)})
}

// rightStatements maps each right to the statements it adds to a role. The two secret reads
// add none here: grant gives them through the secrets' own grants (grantReadSecrets).
var rightStatements = map[spec.Right]func(g *grants) []awsiam.PolicyStatement{
	spec.ReadAppSecret:   func(*grants) []awsiam.PolicyStatement { return nil },
	spec.ReadAdminSecret: func(*grants) []awsiam.PolicyStatement { return nil },
	// The rotation schedule grants the reads and writes of the app secret (which makes the
	// rotator its only writer); a customer managed key must also encrypt new versions.
	spec.WriteAppSecret: func(g *grants) []awsiam.PolicyStatement {
		if g.p.EncryptionKey == nil {
			return nil
		}
		return []awsiam.PolicyStatement{statement("EncryptAppSecret", []string{"kms:Decrypt", "kms:GenerateDataKey"},
			[]*string{g.p.EncryptionKey.KeyArn()}, viaSecretsManager(g.stack, g.p.AppSecret))}
	},
	// Lambda manages a VPC function's network interfaces with its role; these EC2 actions have
	// no resource-level scope for this use.
	spec.Database: func(*grants) []awsiam.PolicyStatement {
		return []awsiam.PolicyStatement{statement("VpcNetworkInterfaces",
			[]string{"ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets",
				"ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"},
			[]*string{jsii.String("*")}, nil)}
	},
	// The rotator starts, follows, redrives and stops this state machine's executions. When
	// Secrets Manager tests the rotation configuration (testSecret on a version that no
	// createSecret made), it checks that the state machine exists.
	// https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_RotateSecret.html
	spec.RunExecutions: func(g *grants) []awsiam.PolicyStatement {
		return []awsiam.PolicyStatement{
			statement("StartRotation", []string{"states:StartExecution", "states:ListExecutions"}, []*string{g.stateMachine}, nil),
			statement("FollowRotation", []string{"states:DescribeExecution", "states:GetExecutionHistory", "states:StopExecution",
				"states:RedriveExecution"}, []*string{g.executions}, nil),
			statement("TestConfiguration", []string{"states:DescribeStateMachine"}, []*string{g.stateMachine}, nil),
		}
	},
	// Preflight reads the promotion time from the execution that set AWSCURRENT.
	spec.ReadExecutions: func(g *grants) []awsiam.PolicyStatement {
		return []awsiam.PolicyStatement{statement("ReadExecutions",
			[]string{"states:DescribeExecution", "states:GetExecutionHistory"}, []*string{g.executions}, nil)}
	},
	spec.ReadExecutionHistory: func(g *grants) []awsiam.PolicyStatement {
		return []awsiam.PolicyStatement{statement("ReadExecutionHistory",
			[]string{"states:GetExecutionHistory"}, []*string{g.executions}, nil)}
	},
	spec.DescribeServices: func(g *grants) []awsiam.PolicyStatement {
		return []awsiam.PolicyStatement{statement("DescribeServices", []string{"ecs:DescribeServices"}, g.services, nil)}
	},
	// Preflight checks every service runs only tasks launched after the last promotion.
	spec.DescribeTasks: func(g *grants) []awsiam.PolicyStatement {
		return []awsiam.PolicyStatement{
			statement("DescribeTasks", []string{"ecs:DescribeTasks"}, g.tasks, nil),
			statement("ListTasks", []string{"ecs:ListTasks"}, []*string{jsii.String("*")},
				map[string]interface{}{"ArnEquals": map[string]interface{}{"ecs:cluster": g.clusters}}),
		}
	},
	// Only the named services, and only Redeploy changes one.
	spec.UpdateServices: func(g *grants) []awsiam.PolicyStatement {
		return []awsiam.PolicyStatement{statement("UpdateServices", []string{"ecs:UpdateService"}, g.services, nil)}
	},
	// Create objects in the bucket, encrypted with its key: no read, no delete, no bypass.
	// SSE-KMS PutObject needs kms:GenerateDataKey on the bucket's key.
	// https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html
	spec.WriteEvidence: func(g *grants) []awsiam.PolicyStatement {
		out := []awsiam.PolicyStatement{statement("WriteEvidence", []string{"s3:PutObject"}, []*string{g.evidenceObjects}, nil)}
		if g.evidenceKey != nil {
			out = append(out, statement("EncryptEvidence", []string{"kms:GenerateDataKey"}, []*string{g.evidenceKey.KeyArn()},
				map[string]interface{}{"StringEquals": map[string]interface{}{
					"kms:ViaService": fmt.Sprintf("s3.%s.amazonaws.com", *g.stack.Region()),
				}}))
		}
		return out
	},
}

// statements are the IAM statements right r maps to.
func (g *grants) statements(r spec.Right) []awsiam.PolicyStatement {
	build, ok := rightStatements[r]
	if !ok {
		panic(fmt.Sprintf("rotation: no IAM statements for right %q", r))
	}
	return build(g)
}

// grant gives fn's role what rights map to, in their order (the template is deterministic),
// and nothing else.
func (g *grants) grant(fn awslambda.Function, rights []spec.Right) {
	var secrets []awssecretsmanager.ISecret
	for _, r := range rights {
		switch r {
		case spec.ReadAppSecret:
			secrets = append(secrets, g.p.AppSecret)
		case spec.ReadAdminSecret:
			secrets = append(secrets, g.p.AdminSecret)
		}
		for _, s := range g.statements(r) {
			fn.AddToRolePolicy(s)
		}
	}
	if len(secrets) > 0 {
		grantReadSecrets(fn, g.p, secrets...)
	}
}

func statement(sid string, actions []string, resources []*string, conditions map[string]interface{}) awsiam.PolicyStatement {
	props := &awsiam.PolicyStatementProps{Sid: jsii.String(sid), Actions: jsii.Strings(actions...), Resources: &resources}
	if conditions != nil {
		props.Conditions = &conditions
	}
	return awsiam.NewPolicyStatement(props)
}

// grantReadSecrets lets fn read secrets (GetSecretValue, DescribeSecret) and, when a customer
// managed key encrypts them, decrypt them with it through Secrets Manager only, for exactly
// these secrets. Every read of a secret is granted here, but the rotator's of the app secret
// (the rotation schedule grants it, with the writes).
func grantReadSecrets(fn awslambda.Function, p Props, secrets ...awssecretsmanager.ISecret) {
	for _, s := range secrets {
		s.GrantRead(fn, nil)
	}
	if p.EncryptionKey != nil {
		fn.AddToRolePolicy(statement("DecryptSecrets", []string{"kms:Decrypt"}, []*string{p.EncryptionKey.KeyArn()},
			viaSecretsManager(awscdk.Stack_Of(fn), secrets...)))
	}
}

// viaSecretsManager is the condition of a kms:Decrypt grant for reading secrets: only
// through Secrets Manager, and only for these secrets when their full ARNs are known
// (Secrets Manager puts the SecretARN in the encryption context).
func viaSecretsManager(stack awscdk.Stack, secrets ...awssecretsmanager.ISecret) map[string]interface{} {
	cond := map[string]interface{}{"kms:ViaService": fmt.Sprintf("secretsmanager.%s.amazonaws.com", *stack.Region())}
	var arns []*string
	for _, s := range secrets {
		if s.SecretFullArn() == nil {
			return map[string]interface{}{"StringEquals": cond}
		}
		arns = append(arns, s.SecretFullArn())
	}
	cond["kms:EncryptionContext:SecretARN"] = arns
	return map[string]interface{}{"StringEquals": cond}
}

// newStateMachine deploys statemachine.Definition with its substitutions.
func (r *Rotation) newStateMachine(p Props, name string) {
	// DefinitionSubstitutions replace ${Key} in the definition string
	// (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-stepfunctions-statemachine.html).
	subs := map[string]*string{statemachine.AlarmTopicArn: r.Topic.TopicArn(), statemachine.RetirePreviousAfter: jsii.String(retireAfter(p))}
	var invoke []*string
	for _, f := range functions {
		arn := r.Functions[f.name].FunctionArn()
		if f.name == Rotator {
			// Through its alias, so that its errors here are told apart from Secrets Manager's calls.
			arn = r.StateMachineAlias.FunctionArn()
		}
		subs[f.key] = arn
		invoke = append(invoke, arn)
	}
	for _, k := range statemachine.Keys() {
		if subs[k] == nil {
			panic(fmt.Sprintf("rotation: no value for state machine substitution %s", k))
		}
	}
	if len(subs) != len(statemachine.Keys()) {
		panic(fmt.Sprintf("rotation: %d substitutions for %d state machine keys", len(subs), len(statemachine.Keys())))
	}

	r.LogGroup = awslogs.NewLogGroup(r.Construct, jsii.String("StateMachineLogs"), &awslogs.LogGroupProps{
		// The vendedlogs prefix keeps CloudWatch Logs' resource policy small.
		LogGroupName: jsii.String("/aws/vendedlogs/states/" + name),
		Retention:    p.LogRetention,
	})
	r.StateMachine = awsstepfunctions.NewStateMachine(r.Construct, jsii.String("StateMachine"), &awsstepfunctions.StateMachineProps{
		StateMachineName:        jsii.String(name),
		StateMachineType:        awsstepfunctions.StateMachineType_STANDARD,
		Comment:                 jsii.String("pgrotate: alternating-users rotation of one app secret"),
		DefinitionBody:          awsstepfunctions.DefinitionBody_FromString(jsii.String(statemachine.Definition)),
		DefinitionSubstitutions: &subs,
		Timeout:                 awscdk.Duration_Hours(jsii.Number(executionTimeoutHours)),
		TracingEnabled:          jsii.Bool(true),
		Logs: &awsstepfunctions.LogOptions{
			Destination: r.LogGroup,
			Level:       awsstepfunctions.LogLevel_ALL,
			// Execution data stays out of the logs: history already holds it, for 90 days.
			IncludeExecutionData: jsii.Bool(false),
		},
	})
	// The ASL names each function's unqualified ARN (the rotation function's alias ARN), so no
	// version wildcard is granted.
	r.StateMachine.AddToRolePolicy(statement("InvokeSteps", []string{"lambda:InvokeFunction"}, invoke, nil))
	r.Topic.GrantPublish(r.StateMachine)
}
