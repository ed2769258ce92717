package rotation

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
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

// Which functions read which secret (CONTRACT.md). The rotator's access to the app secret
// comes with the rotation schedule, which also makes it the only writer; it reads the admin
// secret only when Secrets Manager tests the rotation configuration (workflow/rotator's
// CheckConfiguration: the admin secret the app secret names must parse and name the same
// primary).
var (
	appSecretReaders   = stepsWith(spec.ReadAppSecret)
	adminSecretReaders = stepsWith(spec.ReadAdminSecret)
)

// stepsWith names the state machine's functions that need right r (package lambdas/spec).
func stepsWith(r spec.Right) []string {
	var out []string
	for _, f := range spec.Steps() {
		if f.Has(r) {
			out = append(out, f.Name)
		}
	}
	return out
}

func statement(sid string, actions []string, resources []*string, conditions map[string]interface{}) awsiam.PolicyStatement {
	props := &awsiam.PolicyStatementProps{Sid: jsii.String(sid), Actions: jsii.Strings(actions...), Resources: &resources}
	if conditions != nil {
		props.Conditions = &conditions
	}
	return awsiam.NewPolicyStatement(props)
}

// grant gives each function's role what its step needs, and nothing else.
func (r *Rotation) grant(p Props, executionsArn *string) {
	stack := awscdk.Stack_Of(r.Construct)
	fn := r.Functions

	reads := map[string][]awssecretsmanager.ISecret{}
	for _, name := range appSecretReaders {
		reads[name] = append(reads[name], p.AppSecret)
	}
	for _, name := range adminSecretReaders {
		reads[name] = append(reads[name], p.AdminSecret)
	}
	for _, f := range functions { // in a fixed order: the template is deterministic
		if secrets := reads[f.name]; len(secrets) > 0 {
			grantReadSecrets(fn[f.name], p, secrets...)
		}
	}
	if p.EncryptionKey != nil {
		fn[Rotator].AddToRolePolicy(statement("EncryptAppSecret",
			[]string{"kms:Decrypt", "kms:GenerateDataKey"}, []*string{p.EncryptionKey.KeyArn()}, viaSecretsManager(stack, p.AppSecret)))
	}

	// The rotator starts, follows, redrives and stops this state machine's executions.
	fn[Rotator].AddToRolePolicy(statement("StartRotation",
		[]string{"states:StartExecution", "states:ListExecutions"}, []*string{r.StateMachineArn}, nil))
	fn[Rotator].AddToRolePolicy(statement("FollowRotation",
		[]string{"states:DescribeExecution", "states:GetExecutionHistory", "states:StopExecution", "states:RedriveExecution"},
		[]*string{executionsArn}, nil))
	// Preflight reads the promotion time from the execution that set AWSCURRENT.
	fn[Preflight].AddToRolePolicy(statement("ReadPromotion",
		[]string{"states:DescribeExecution", "states:GetExecutionHistory"}, []*string{executionsArn}, nil))

	var serviceArns, clusterArns, taskArns []*string
	seen := map[string]bool{}
	for _, s := range p.Services {
		serviceArns = append(serviceArns, stack.FormatArn(&awscdk.ArnComponents{
			Service: jsii.String("ecs"), Resource: jsii.String("service"), ResourceName: jsii.String(s.Cluster + "/" + s.Service)}))
		if seen[s.Cluster] {
			continue
		}
		seen[s.Cluster] = true
		clusterArns = append(clusterArns, stack.FormatArn(&awscdk.ArnComponents{
			Service: jsii.String("ecs"), Resource: jsii.String("cluster"), ResourceName: jsii.String(s.Cluster)}))
		taskArns = append(taskArns, stack.FormatArn(&awscdk.ArnComponents{
			Service: jsii.String("ecs"), Resource: jsii.String("task"), ResourceName: jsii.String(s.Cluster + "/*")}))
	}
	r.ServiceArns = serviceArns
	// Only Redeploy changes a service, and only the named ones.
	fn[Redeploy].AddToRolePolicy(statement("RedeployServices",
		[]string{"ecs:UpdateService", "ecs:DescribeServices"}, serviceArns, nil))
	fn[CheckRollout].AddToRolePolicy(statement("FollowRollouts", []string{"ecs:DescribeServices"}, serviceArns, nil))
	// When Secrets Manager tests the rotation configuration (testSecret on a version that no
	// createSecret made), the rotator checks that the state machine and the services exist.
	// https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_RotateSecret.html
	fn[Rotator].AddToRolePolicy(statement("TestConfiguration", []string{"states:DescribeStateMachine"}, []*string{r.StateMachineArn}, nil))
	fn[Rotator].AddToRolePolicy(statement("TestServices", []string{"ecs:DescribeServices"}, serviceArns, nil))
	// Preflight checks every service runs only tasks launched after the last promotion.
	fn[Preflight].AddToRolePolicy(statement("DescribeServices", []string{"ecs:DescribeServices"}, serviceArns, nil))
	fn[Preflight].AddToRolePolicy(statement("DescribeTasks", []string{"ecs:DescribeTasks"}, taskArns, nil))
	fn[Preflight].AddToRolePolicy(statement("ListTasks", []string{"ecs:ListTasks"}, []*string{jsii.String("*")},
		map[string]interface{}{"ArnEquals": map[string]interface{}{"ecs:cluster": clusterArns}}))
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
