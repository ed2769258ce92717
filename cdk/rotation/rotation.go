// Package rotation is the pgrotate CDK construct: it attaches alternating-users rotation to
// an existing app secret. It deploys the rotation function (the only writer of the secret)
// with its Secrets Manager schedule, one Lambda per state machine step, each with its own
// least-privilege role, the Standard state machine inlined from package statemachine, its
// logs and X-Ray tracing, and the alarms of failures (failed or timed-out executions, errors of
// the rotation function outside them, Secrets Manager's RotationFailed events) on a topic
// that CloudWatch and EventBridge may publish to.
//
// The Lambdas are prebuilt provided.al2023 arm64 bootstraps (`make build`), taken from
// Props.AssetDir.
package rotation

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3assets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/pgrotate/pgrotate/lambdas/spec"
	"github.com/pgrotate/pgrotate/statemachine"

	"github.com/pgrotate/pgrotate/internal/modroot"
)

// Function names: the cmd/<name> directories and the <AssetDir>/<name>/bootstrap files
// (package lambdas/spec, the one list).
const (
	Rotator       = spec.Rotator
	Preflight     = spec.Preflight
	CloneUser     = spec.CloneUser
	SetPassword   = spec.SetPassword
	TestLogin     = spec.TestLogin
	CheckReplicas = spec.CheckReplicas
	Redeploy      = spec.Redeploy
	CheckRollout  = spec.CheckRollout
	Rethrow       = spec.Rethrow
	// RetirePrevious runs only when Props.RetirePreviousAfter is set, but is always
	// deployed: the definition names it either way.
	RetirePrevious = spec.RetirePrevious
)

// EnvReplicas is where the replicas are given (package lambdas/spec names every variable).
const EnvReplicas = spec.EnvReplicas

const (
	lambdaServicePrinc      = "lambda.amazonaws.com"
	secretsManagerPrincipal = "secretsmanager.amazonaws.com"
	taskTimeoutSeconds      = 100 // under the state machine's TimeoutSeconds of 120
	rotatorTimeoutMinutes   = 15  // set/test/finishSecret wait for the execution, bounded by this
)

// function describes one Lambda: what it is for, whether it talks to the database, and the
// rights its role is built from.
type function struct {
	name, id, description string
	key                   string // the statemachine substitution key of its ARN ("" for none)
	database              bool
	rights                []spec.Right
}

func fromSpec(f spec.Function) function {
	return function{f.Name, f.ID, f.Description, f.Placeholder, f.Has(spec.Database), f.Rights}
}

// lookup is the registry's function called name.
func lookup(name string) function {
	f, ok := spec.Lookup(name)
	if !ok {
		panic(fmt.Sprintf("rotation: no function %q in lambdas/spec", name))
	}
	return fromSpec(f)
}

// functions are the state machine's functions of the registry, in its order.
var functions = func() []function {
	var out []function
	for _, f := range spec.Steps() {
		out = append(out, fromSpec(f))
	}
	return out
}()

// FunctionNames returns the names of the state machine's functions, in its order.
func FunctionNames() []string { return spec.StepNames() }

// Rotation is the deployed rotation of one app secret.
type Rotation struct {
	// Construct is the scope of every resource below. (Not embedded: jsii cannot pass a Go
	// struct that embeds a construct back to JavaScript.)
	Construct constructs.Construct
	// StateMachine runs one rotation per execution, named after the pending version id.
	StateMachine awsstepfunctions.StateMachine
	// StateMachineArn is formatted from the explicit name (no dependency on the resource).
	StateMachineArn *string
	// ServiceArns are the ARNs of Props.Services, the only services Redeploy may update.
	ServiceArns []*string
	// Functions by name (Rotator, Preflight, …).
	Functions map[string]awslambda.Function
	// Schedule is the app secret's rotation schedule.
	Schedule awssecretsmanager.RotationSchedule
	// Topic receives failure notifications. Alarm fires on failed or timed-out executions;
	// FunctionErrorsAlarm on errors of the rotation function outside the state machine;
	// RotationFailedRule forwards Secrets Manager's RotationFailed events of the app secret.
	Topic               awssns.ITopic
	Alarm               awscloudwatch.Alarm
	FunctionErrorsAlarm awscloudwatch.Alarm
	RotationFailedRule  awsevents.CfnRule
	// StateMachineAlias is the rotation function's alias the state machine invokes.
	StateMachineAlias awslambda.Alias
	// LogGroup holds the state machine's execution logs (without execution data).
	LogGroup awslogs.LogGroup
	// Bootstrap creates the app secret's user at deploy; nil unless Props.Bootstrap.
	Bootstrap *Bootstrap
	// Evidence keeps one record per rotation in an Object Lock bucket.
	Evidence *Evidence

	grants *grants // what each function's rights give it here
}

// New deploys the rotation. It panics on invalid props, with every problem listed (each
// wraps ErrInvalidProps; see Props.Validate), as CDK constructs do at synth.
func New(scope constructs.Construct, id string, props Props) *Rotation {
	if err := props.Validate(); err != nil {
		panic(fmt.Sprintf("rotation %s: %v", id, err))
	}
	p := props.withDefaults()
	names := append(FunctionNames(), EvidenceFunction)
	if p.Bootstrap {
		names = append(names, BootstrapFunction)
	}
	assets, err := assetDir(p.AssetDir, names)
	if err != nil {
		panic(fmt.Sprintf("rotation %s: %v", id, err))
	}

	c := constructs.NewConstruct(scope, jsii.String(id))
	stack := awscdk.Stack_Of(c)
	r := &Rotation{Construct: c, Functions: map[string]awslambda.Function{}}

	name := p.StateMachineName
	if name == "" {
		name = *awscdk.Names_UniqueResourceName(c, &awscdk.UniqueResourceNameOptions{
			MaxLength: jsii.Number(80), Separator: jsii.String("-")})
	}
	// Formatted, not taken from the resource: the state machine depends on the functions'
	// ARNs, so functions that need its ARN would otherwise close a cycle.
	r.StateMachineArn = stack.FormatArn(&awscdk.ArnComponents{
		Service: jsii.String("states"), Resource: jsii.String("stateMachine"), ResourceName: jsii.String(name),
		ArnFormat: awscdk.ArnFormat_COLON_RESOURCE_NAME})
	executionsArn := stack.FormatArn(&awscdk.ArnComponents{
		Service: jsii.String("states"), Resource: jsii.String("execution"), ResourceName: jsii.String(name + ":*"),
		ArnFormat: awscdk.ArnFormat_COLON_RESOURCE_NAME})

	r.Topic = p.AlarmTopic
	if r.Topic == nil {
		r.Topic = newTopic(c)
	}

	var layers []awslambda.ILayerVersion
	dbEnv := map[string]string{}
	if p.CABundleFile != "" {
		layer, path, err := caBundleLayer(c, p.CABundleFile)
		if err != nil {
			panic(fmt.Sprintf("rotation %s: %v", id, err))
		}
		layers = append(layers, layer)
		dbEnv[spec.EnvCABundle] = path
	}
	if p.ConnectTimeout != nil {
		dbEnv[spec.EnvConnectTimeout] = goDuration(p.ConnectTimeout)
	}
	env := functionEnv(stack, p, *r.StateMachineArn)
	r.grants = newGrants(p, stack, r.StateMachineArn, executionsArn)
	r.ServiceArns = r.grants.services

	for _, f := range functions {
		vars := maps.Clone(env[f.name])
		if vars == nil {
			vars = map[string]string{}
		}
		if f.database {
			maps.Copy(vars, dbEnv)
		}
		r.Functions[f.name] = newFunction(c, f, r.grants, filepath.Join(assets, f.name), vars, layers)
	}

	if p.Bootstrap {
		r.Bootstrap = r.newBootstrap(p, filepath.Join(assets, BootstrapFunction), dbEnv, layers)
	}

	schedule, _ := Schedule(p.MaxPasswordAge) // validated above
	r.Schedule = p.AppSecret.AddRotationSchedule(jsii.String("PgrotateSchedule"), &awssecretsmanager.RotationScheduleOptions{
		RotationLambda:            r.Functions[Rotator],
		AutomaticallyAfter:        schedule,
		RotateImmediatelyOnUpdate: jsii.Bool(p.RotateImmediately),
	})
	if r.Bootstrap != nil {
		// No rotation before the user it rotates exists.
		r.Schedule.Node().AddDependency(r.Bootstrap.Resource)
	}

	r.restrictInvoke(p)
	r.newStateMachineAlias()
	r.newStateMachine(p, name)
	r.orderSchedule(p)
	r.newAlarms(p)
	r.Evidence = r.newEvidence(p, filepath.Join(assets, EvidenceFunction))
	r.tagForDiscovery(p)
	r.suppressNag()
	return r
}

// functionEnv is the environment each function is given beyond the database's, by function name.
func functionEnv(stack awscdk.Stack, p Props, stateMachineArn string) map[string]map[string]string {
	services := servicesJSON(stack, p)
	env := map[string]map[string]string{
		Rotator: {
			spec.EnvStateMachineARN:   stateMachineArn,
			spec.EnvServices:          services,
			spec.EnvPasswordLength:    strconv.Itoa(p.PasswordLength),
			spec.EnvExcludeCharacters: p.ExcludeCharacters,
		},
		Preflight:    {spec.EnvStateMachineARN: stateMachineArn},
		CheckRollout: {},
	}
	if len(p.Replicas) > 0 {
		replicas, _ := json.Marshal(p.Replicas) // []workflow.Endpoint always encodes
		env[Preflight][EnvReplicas] = string(replicas)
	}
	if p.RolloutMaxChecks > 0 {
		env[CheckRollout][spec.EnvRolloutMaxChecks] = strconv.Itoa(p.RolloutMaxChecks)
	}
	return env
}

// orderSchedule makes the rotation schedule wait for what the rotation function's
// configuration test reads. With RotateImmediatelyOnUpdate false, creating the schedule
// (RotateSecret with RotateImmediately false) makes Secrets Manager test the rotation
// configuration by running the function's testSecret step, and CloudFormation fails the
// schedule if it fails. That test reads the admin secret (with the function's policy),
// describes the state machine and every service: the schedule's references name only the
// app secret and the function, so CloudFormation would not otherwise wait for them.
// https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_RotateSecret.html
// https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-secretsmanager-rotationschedule.html
func (r *Rotation) orderSchedule(p Props) {
	deps := []constructs.IDependable{r.StateMachine, r.Functions[Rotator].Role()} // the role and its policy
	deps = append(deps, p.ServiceConstructs...)
	r.Schedule.Node().AddDependency(deps...)
}

// assetDir resolves dir and checks that the bootstrap of every named function is there.
func assetDir(dir string, names []string) (string, error) {
	if !filepath.IsAbs(dir) {
		root, err := modroot.Find()
		if err != nil {
			return "", fmt.Errorf("find module root: %w (set AssetDir to an absolute path)", err)
		}
		dir = filepath.Join(root, dir)
	}
	var missing []string
	for _, name := range names {
		if st, err := os.Stat(filepath.Join(dir, name, "bootstrap")); err != nil || !st.Mode().IsRegular() {
			missing = append(missing, filepath.Join(name, "bootstrap"))
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("missing Lambda assets in %s: %v (run `make build`, or set AssetDir)", dir, missing)
	}
	return dir, nil
}

// caBundleLayer packages file alone as a layer; Lambda mounts it under /opt.
func caBundleLayer(scope constructs.Construct, file string) (awslambda.LayerVersion, string, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, "", fmt.Errorf("CA bundle %s: %w", file, err)
	}
	if st, err := os.Stat(abs); err != nil || !st.Mode().IsRegular() {
		return nil, "", fmt.Errorf("CA bundle %s: not a readable file", file)
	}
	base := filepath.Base(abs)
	layer := awslambda.NewLayerVersion(scope, jsii.String("CABundle"), &awslambda.LayerVersionProps{
		Code: awslambda.Code_FromAsset(jsii.String(filepath.Dir(abs)), &awss3assets.AssetOptions{
			Exclude: jsii.Strings("*", "!"+base),
		}),
		CompatibleArchitectures: &[]awslambda.Architecture{awslambda.Architecture_ARM_64()},
		Description:             jsii.String("pgrotate: CA bundle that verifies the database's TLS certificate"),
	})
	return layer, "/opt/" + base, nil
}

// retireAfter is the RetirePreviousAfter substitution: the grace as a Go duration, or
// statemachine.RetireOff. The state machine passes it to RetirePrevious, whose execution
// history thus shows the policy each rotation ran under.
func retireAfter(p Props) string {
	if p.RetirePreviousAfter == nil {
		return statemachine.RetireOff
	}
	ms := *p.RetirePreviousAfter.ToMilliseconds(&awscdk.TimeConversionOptions{Integral: jsii.Bool(false)})
	return (time.Duration(ms) * time.Millisecond).String()
}

// goDuration renders d as a Go duration string (e.g. "5s").
func goDuration(d awscdk.Duration) string {
	ms := *d.ToMilliseconds(&awscdk.TimeConversionOptions{Integral: jsii.Bool(false)})
	return strconv.FormatFloat(ms, 'f', -1, 64) + "ms"
}

// servicesJSON renders the services as the rotator's PGROTATE_SERVICES; names may be tokens.
func servicesJSON(stack awscdk.Stack, p Props) string {
	list := make([]map[string]*string, len(p.Services))
	for i, s := range p.Services {
		list[i] = map[string]*string{"cluster": jsii.String(s.Cluster), "service": jsii.String(s.Service)}
	}
	return *stack.ToJsonString(list, nil)
}

// newTopic creates the alarm topic, encrypted with its own key that CloudWatch alarms and
// EventBridge may use: a service that publishes to an encrypted topic needs kms:Decrypt and
// kms:GenerateDataKey* on its key.
// https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services
func newTopic(scope constructs.Construct) awssns.Topic {
	key := awskms.NewKey(scope, jsii.String("AlarmTopicKey"), &awskms.KeyProps{
		Description:       jsii.String("pgrotate: encrypts the rotation failure topic"),
		EnableKeyRotation: jsii.Bool(true),
	})
	key.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("AllowCloudWatchAlarms"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String(cloudWatchPrincipal), nil)},
		Actions:    jsii.Strings("kms:Decrypt", "kms:GenerateDataKey*"),
		Resources:  jsii.Strings("*"),
		Conditions: &map[string]interface{}{
			"StringEquals": map[string]interface{}{"aws:SourceAccount": awscdk.Stack_Of(scope).Account()},
		},
	}), nil)
	// No source condition: EventBridge's requests to KMS for an SNS target do not carry
	// aws:SourceAccount or aws:SourceArn, so such a condition would drop every event. The
	// key encrypts this topic only, whose policy admits just this account's rule.
	key.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("AllowEventBridgeRotationFailedEvents"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String(eventBridgePrincipal), nil)},
		Actions:    jsii.Strings("kms:Decrypt", "kms:GenerateDataKey*"),
		Resources:  jsii.Strings("*"),
	}), nil)
	return awssns.NewTopic(scope, jsii.String("AlarmTopic"), &awssns.TopicProps{
		DisplayName: jsii.String("pgrotate rotation failures"),
		MasterKey:   key,
		EnforceSSL:  jsii.Bool(true),
	})
}

// newFunction creates one function with its own role and log group; the role holds what
// f's rights map to (grants) and its wildcards' cdk-nag suppressions.
func newFunction(scope constructs.Construct, f function, g *grants, code string, env map[string]string, layers []awslambda.ILayerVersion) awslambda.Function {
	p := g.p
	logs := awslogs.NewLogGroup(scope, jsii.String(f.id+"Logs"), &awslogs.LogGroupProps{
		Retention: p.LogRetention,
	})
	role := awsiam.NewRole(scope, jsii.String(f.id+"Role"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String(lambdaServicePrinc), nil),
		Description: jsii.String("pgrotate " + f.name + " function"),
	})
	logs.GrantWrite(role)

	vars := make(map[string]*string, len(env))
	for k, v := range env {
		vars[k] = jsii.String(v)
	}
	timeout := awscdk.Duration_Seconds(jsii.Number(taskTimeoutSeconds))
	switch f.name {
	case Rotator:
		timeout = awscdk.Duration_Minutes(jsii.Number(rotatorTimeoutMinutes))
	case BootstrapFunction:
		timeout = awscdk.Duration_Minutes(jsii.Number(bootstrapTimeoutMinutes))
	}
	fp := &awslambda.FunctionProps{
		Description:  jsii.String(f.description),
		Runtime:      awslambda.Runtime_PROVIDED_AL2023(),
		Architecture: awslambda.Architecture_ARM_64(),
		Handler:      jsii.String("bootstrap"),
		Code:         awslambda.Code_FromAsset(jsii.String(code), nil),
		Role:         role,
		LogGroup:     logs,
		MemorySize:   jsii.Number(256),
		Timeout:      timeout,
		Tracing:      awslambda.Tracing_ACTIVE,
		Environment:  &vars,
	}
	if f.database {
		fp.Vpc = p.Vpc
		fp.VpcSubnets = p.Subnets
		fp.SecurityGroups = &[]awsec2.ISecurityGroup{p.SecurityGroup}
		fp.Layers = &layers
	}
	fn := awslambda.NewFunction(scope, jsii.String(f.id), fp)
	g.grant(fn, f.rights)
	suppressWildcards(role, f.rights)
	return fn
}

// restrictInvoke narrows the permission the rotation schedule gives Secrets Manager to
// invoke the rotator: only from this account, and only for the app secret when its full
// ARN is known (the confused-deputy guard AWS recommends).
func (r *Rotation) restrictInvoke(p Props) {
	found := false
	for _, child := range *r.Functions[Rotator].Node().Children() {
		perm, ok := child.(awslambda.CfnPermission)
		if !ok || perm.Principal() == nil || *perm.Principal() != secretsManagerPrincipal {
			continue
		}
		found = true
		perm.SetSourceAccount(awscdk.Stack_Of(r.Construct).Account())
		if arn := p.AppSecret.SecretFullArn(); arn != nil {
			perm.SetSourceArn(arn)
		}
	}
	if !found {
		panic("rotation: the rotation schedule created no invoke permission for Secrets Manager")
	}
}
