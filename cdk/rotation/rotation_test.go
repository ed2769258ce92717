package rotation_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/pgrotate/pgrotate/cdk/internal/cdktest"
	"github.com/pgrotate/pgrotate/cdk/rotation"
	"github.com/pgrotate/pgrotate/lambdas/spec"
	"github.com/pgrotate/pgrotate/statemachine"
	"github.com/pgrotate/pgrotate/workflow"
)

func stateMachine(t *testing.T, tmpl map[string]any) map[string]any {
	t.Helper()
	sms := cdktest.Resources(tmpl, "AWS::StepFunctions::StateMachine")
	if len(sms) != 1 {
		t.Fatalf("state machines: got %d, want 1", len(sms))
	}
	for _, sm := range sms {
		return cdktest.Props(sm)
	}
	return nil
}

func TestStateMachine(t *testing.T) {
	stack, r := newStack(t, nil)
	tmpl := cdktest.Template(t, stack)
	sm := stateMachine(t, tmpl)

	if got := sm["StateMachineType"]; got != "STANDARD" {
		t.Errorf("StateMachineType = %v, want STANDARD", got)
	}
	if got := sm["DefinitionString"]; got != statemachine.Definition {
		t.Errorf("DefinitionString is not statemachine.Definition verbatim")
	}
	logging, _ := sm["LoggingConfiguration"].(map[string]any)
	if logging["Level"] != "ALL" || logging["IncludeExecutionData"] != false {
		t.Errorf("LoggingConfiguration = %s, want level ALL without execution data", cdktest.JSON(logging))
	}
	if tr, _ := sm["TracingConfiguration"].(map[string]any); tr["Enabled"] != true {
		t.Errorf("TracingConfiguration = %s, want enabled", cdktest.JSON(sm["TracingConfiguration"]))
	}
	if sm["StateMachineName"] == nil {
		t.Errorf("StateMachineName is not explicit: the functions' ARN would need the resource")
	}

	// The destination log group keeps a year or more.
	dest := cdktest.JSON(logging["Destinations"])
	lgID := cdktest.LogicalID(stack, r.LogGroup)
	if !strings.Contains(dest, `"`+lgID+`"`) {
		t.Errorf("log destination %s is not the construct's log group %s", dest, lgID)
	}
	days, _ := cdktest.Props(cdktest.Resources(tmpl, "AWS::Logs::LogGroup")[lgID])["RetentionInDays"].(float64)
	if days < 365 {
		t.Errorf("state machine log retention = %v days, want >= 365", days)
	}

	// Every substitution key is set, to the function (or topic) it names.
	subs, _ := sm["DefinitionSubstitutions"].(map[string]any)
	var keys []string
	for k := range subs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	want := slices.Clone(statemachine.Keys())
	sort.Strings(want)
	if !slices.Equal(keys, want) {
		t.Fatalf("substitution keys = %v, want %v", keys, want)
	}
	byKey := map[string]string{
		statemachine.RotationFunctionArn:      rotation.Rotator,
		statemachine.PreflightFunctionArn:     rotation.Preflight,
		statemachine.CloneUserFunctionArn:     rotation.CloneUser,
		statemachine.SetPasswordFunctionArn:   rotation.SetPassword,
		statemachine.TestLoginFunctionArn:     rotation.TestLogin,
		statemachine.CheckReplicasFunctionArn: rotation.CheckReplicas,
		statemachine.RedeployFunctionArn:      rotation.Redeploy,
		statemachine.CheckRolloutFunctionArn:  rotation.CheckRollout,
		statemachine.RethrowFunctionArn:       rotation.Rethrow,
	}
	byKey[statemachine.RetirePreviousFunctionArn] = rotation.RetirePrevious
	for key, name := range byKey {
		wantRef := fmt.Sprintf(`{"Fn::GetAtt":["%s","Arn"]}`, cdktest.LogicalID(stack, r.Functions[name]))
		if name == rotation.Rotator {
			// Through its alias (see TestRotationFunctionErrorsAlarm).
			wantRef = `{"Ref":"` + cdktest.LogicalID(stack, r.StateMachineAlias) + `"}`
		}
		if got := cdktest.JSON(subs[key]); got != wantRef {
			t.Errorf("%s = %s, want %s", key, got, wantRef)
		}
	}
	if got, want := cdktest.JSON(subs[statemachine.AlarmTopicArn]), cdktest.JSON(stack.Resolve(r.Topic.TopicArn())); got != want {
		t.Errorf("AlarmTopicArn = %s, want %s", got, want)
	}
	if got := subs[statemachine.RetirePreviousAfter]; got != statemachine.RetireOff {
		t.Errorf("RetirePreviousAfter = %v, want %q by default", got, statemachine.RetireOff)
	}
}

func TestNoDependencyCycle(t *testing.T) {
	stack, r := newStack(t, nil)
	tmpl := cdktest.Template(t, stack)
	if c := cdktest.Cycle(tmpl); c != nil {
		t.Fatalf("dependency cycle: %v", c)
	}
	// The functions that need the state machine's ARN get the formatted one.
	smID := cdktest.LogicalID(stack, r.StateMachine)
	for _, name := range []string{rotation.Rotator, rotation.Preflight} {
		fn := cdktest.Resources(tmpl, "AWS::Lambda::Function")[cdktest.LogicalID(stack, r.Functions[name])]
		env := cdktest.Props(fn)["Environment"].(map[string]any)["Variables"].(map[string]any)
		arn := cdktest.JSON(env[spec.EnvStateMachineARN])
		if want := cdktest.JSON(stack.Resolve(r.StateMachineArn)); arn != want || !strings.Contains(arn, ":stateMachine:") {
			t.Errorf("%s %s = %s, want the formatted ARN %s", name, spec.EnvStateMachineARN, arn, want)
		}
		smName := cdktest.Props(cdktest.Resources(tmpl, "AWS::StepFunctions::StateMachine")[smID])["StateMachineName"]
		if s, _ := smName.(string); s == "" || !strings.Contains(arn, `:stateMachine:`+s+`"`) {
			t.Errorf("%s %s = %s does not end in the state machine's name %v", name, spec.EnvStateMachineARN, arn, smName)
		}
		if strings.Contains(arn, smID) {
			t.Errorf("%s %s references the state machine resource %s: a cycle", name, spec.EnvStateMachineARN, smID)
		}
	}
}

// wantActions is each function's complete set of allowed actions: its role holds only what
// its step needs (CONTRACT.md).
func wantActions(withKey bool) map[string][]string {
	base := []string{"logs:CreateLogStream", "logs:PutLogEvents", "xray:PutTraceSegments", "xray:PutTelemetryRecords"}
	eni := []string{"ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets",
		"ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"}
	read := []string{"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"}
	decrypt := []string{}
	rotatorKMS := []string{}
	if withKey {
		decrypt = []string{"kms:Decrypt"}
		rotatorKMS = []string{"kms:Decrypt", "kms:GenerateDataKey"}
	}
	cat := func(lists ...[]string) []string {
		var out []string
		for _, l := range lists {
			out = append(out, l...)
		}
		sort.Strings(out)
		return slices.Compact(out)
	}
	db := cat(base, eni, read, decrypt)
	return map[string][]string{
		rotation.Rotator: cat(base, rotatorKMS, []string{
			"secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue",
			"secretsmanager:UpdateSecretVersionStage", "secretsmanager:GetRandomPassword",
			"states:StartExecution", "states:ListExecutions", "states:DescribeExecution", "states:GetExecutionHistory",
			"states:StopExecution", "states:RedriveExecution",
			// The rotation configuration test.
			"states:DescribeStateMachine", "ecs:DescribeServices"}),
		rotation.Preflight: cat(db, []string{"states:DescribeExecution", "states:GetExecutionHistory",
			"ecs:DescribeServices", "ecs:DescribeTasks", "ecs:ListTasks"}),
		rotation.CloneUser:     db,
		rotation.SetPassword:   db,
		rotation.TestLogin:     db,
		rotation.CheckReplicas: db,
		rotation.Redeploy:      cat(base, []string{"ecs:UpdateService", "ecs:DescribeServices"}),
		rotation.CheckRollout:  cat(base, []string{"ecs:DescribeServices"}),
		// RetirePrevious reads both secrets and reaches the database, nothing more.
		rotation.RetirePrevious: db,
		// RotationFailed's rethrow: its logs and traces, nothing on the secrets.
		rotation.Rethrow: cat(base),
	}
}

// wantSecrets is the sorted JSON of the secrets each function reads.
func wantSecrets() map[string][]string {
	app, admin := cdktest.JSON(appSecretArn), cdktest.JSON(adminSecretArn)
	both := []string{app, admin}
	sort.Strings(both)
	return map[string][]string{
		rotation.Rotator:        both,
		rotation.Preflight:      both,
		rotation.CloneUser:      both,
		rotation.SetPassword:    both,
		rotation.TestLogin:      {app},
		rotation.CheckReplicas:  both,
		rotation.Redeploy:       nil,
		rotation.CheckRollout:   nil,
		rotation.RetirePrevious: both,
		rotation.Rethrow:        nil,
	}
}

func TestLeastPrivilege(t *testing.T) {
	for _, tc := range []struct {
		name    string
		withKey bool
	}{{"customer managed key", true}, {"AWS managed key", false}} {
		t.Run(tc.name, func(t *testing.T) {
			stack, r := newStack(t, func(p *rotation.Props) {
				if !tc.withKey {
					p.EncryptionKey = nil
					p.AppSecret = secretFromArn(p, "App2", appSecretArn)
					p.AdminSecret = secretFromArn(p, "Admin2", adminSecretArn)
				}
			})
			tmpl := cdktest.Template(t, stack)
			stmts := cdktest.Statements(tmpl)
			roles := map[string]string{}
			for name, fn := range r.Functions {
				role := cdktest.LogicalID(stack, fn.Role())
				if other, dup := roles[role]; dup {
					t.Errorf("%s and %s share role %s", name, other, role)
				}
				roles[role] = name
			}
			if want := len(rotation.FunctionNames()); len(roles) != want {
				t.Fatalf("functions: got %d roles, want %d", len(roles), want)
			}
			got := map[string][]string{}
			for _, s := range stmts {
				if name, ok := roles[s.Role]; ok {
					got[name] = append(got[name], s.Actions...)
				}
			}
			for name, want := range wantActions(tc.withKey) {
				g := got[name]
				sort.Strings(g)
				g = slices.Compact(g)
				if !slices.Equal(g, want) {
					t.Errorf("%s actions:\n got %v\nwant %v", name, g, want)
				}
			}
			// Which secrets each role may read, and decrypt through Secrets Manager: exactly
			// these (the rotator reads the admin secret to test the rotation configuration).
			gotRead, gotDecrypt := map[string][]string{}, map[string][]string{}
			for _, s := range stmts {
				name, ok := roles[s.Role]
				if !ok {
					continue
				}
				if s.HasAction("secretsmanager:GetSecretValue") {
					for _, res := range s.Resources {
						gotRead[name] = append(gotRead[name], cdktest.JSON(res))
					}
				}
				if s.HasAction("kms:Decrypt") {
					cond, _ := s.Condition.(map[string]any)
					eq, _ := cond["StringEquals"].(map[string]any)
					if len(cond) != 1 || eq["kms:ViaService"] != "secretsmanager."+region+".amazonaws.com" {
						t.Errorf("%s kms:Decrypt condition %s, want via Secrets Manager only", name, cdktest.JSON(s.Condition))
					}
					arns, _ := eq["kms:EncryptionContext:SecretARN"].([]any)
					for _, a := range arns {
						gotDecrypt[name] = append(gotDecrypt[name], cdktest.JSON(a))
					}
				}
			}
			for name, want := range wantSecrets() {
				for _, c := range []struct {
					what string
					got  []string
					want []string
				}{{"reads", gotRead[name], want}, {"decrypts", gotDecrypt[name], want}} {
					if c.what == "decrypts" && !tc.withKey {
						c.want = nil
					}
					sort.Strings(c.got)
					if c.got = slices.Compact(c.got); !slices.Equal(c.got, c.want) {
						t.Errorf("%s %s %v, want %v", name, c.what, c.got, c.want)
					}
				}
			}
			// Roles carry no managed policy (they would grant more than the step needs).
			for id := range roles {
				if mp := cdktest.Props(cdktest.Resources(tmpl, "AWS::IAM::Role")[id])["ManagedPolicyArns"]; mp != nil {
					t.Errorf("role %s of %s has managed policies %s", id, roles[id], cdktest.JSON(mp))
				}
			}
		})
	}
}

func secretFromArn(p *rotation.Props, id, arn string) awssecretsmanager.ISecret {
	return awssecretsmanager.Secret_FromSecretCompleteArn(p.Vpc.Stack(), jsii.String(id), jsii.String(arn))
}

func TestOnlyRotatorWritesAppSecret(t *testing.T) {
	stack, r := newStack(t, nil)
	stmts := cdktest.Statements(cdktest.Template(t, stack))
	rotator := cdktest.LogicalID(stack, r.Functions[rotation.Rotator].Role())
	for _, action := range []string{"secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage"} {
		if got := cdktest.RolesWith(stmts, action); !slices.Equal(got, []string{rotator}) {
			t.Errorf("roles allowed %s: %v, want only the rotator's %s", action, got, rotator)
		}
	}
	for _, s := range stmts {
		if s.HasAction("secretsmanager:PutSecretValue") && cdktest.JSON(s.Resources) != `["`+appSecretArn+`"]` {
			t.Errorf("rotator writes %s, want only the app secret", cdktest.JSON(s.Resources))
		}
	}
	if w := cdktest.SecretWildcards(stmts); len(w) > 0 {
		t.Errorf("secret wildcards: %+v", w)
	}
}

func TestRedeployScopedToServices(t *testing.T) {
	stack, r := newStack(t, nil)
	stmts := cdktest.Statements(cdktest.Template(t, stack))
	redeploy := cdktest.LogicalID(stack, r.Functions[rotation.Redeploy].Role())
	if got := cdktest.RolesWith(stmts, "ecs:UpdateService"); !slices.Equal(got, []string{redeploy}) {
		t.Fatalf("roles allowed ecs:UpdateService: %v, want only Redeploy's %s", got, redeploy)
	}
	want := fmt.Sprintf(`[{"Fn::Join":["",["arn:",{"Ref":"AWS::Partition"},":ecs:%[1]s:%[2]s:service/prod/api"]]},`+
		`{"Fn::Join":["",["arn:",{"Ref":"AWS::Partition"},":ecs:%[1]s:%[2]s:service/prod/worker"]]}]`, region, account)
	for _, s := range stmts {
		if s.HasAction("ecs:UpdateService") && cdktest.JSON(s.Resources) != want {
			t.Errorf("ecs:UpdateService on %s, want %s", cdktest.JSON(s.Resources), want)
		}
	}
}

// TestConfigurationTestGrants: the rotator's checks when Secrets Manager tests the rotation
// configuration read only this state machine and the named services.
func TestConfigurationTestGrants(t *testing.T) {
	stack, r := newStack(t, nil)
	stmts := cdktest.Statements(cdktest.Template(t, stack))
	rotator := cdktest.LogicalID(stack, r.Functions[rotation.Rotator].Role())
	services := fmt.Sprintf(`[{"Fn::Join":["",["arn:",{"Ref":"AWS::Partition"},":ecs:%[1]s:%[2]s:service/prod/api"]]},`+
		`{"Fn::Join":["",["arn:",{"Ref":"AWS::Partition"},":ecs:%[1]s:%[2]s:service/prod/worker"]]}]`, region, account)
	want := map[string]string{
		"states:DescribeStateMachine": cdktest.JSON([]any{stack.Resolve(r.StateMachineArn)}),
		"ecs:DescribeServices":        services,
	}
	for action, resources := range want {
		n := 0
		for _, s := range stmts {
			if s.Role != rotator || !s.HasAction(action) {
				continue
			}
			n++
			if got := cdktest.JSON(s.Resources); got != resources {
				t.Errorf("rotator %s on %s, want %s", action, got, resources)
			}
		}
		if n != 1 {
			t.Errorf("rotator statements allowing %s: %d, want 1", action, n)
		}
	}
}

// TestScheduleWaitsForConfiguration: creating the schedule makes Secrets Manager run the
// rotation function's configuration test, which reads the admin secret (with the function's
// policy) and describes the state machine and the services; the schedule must wait for them.
func TestScheduleWaitsForConfiguration(t *testing.T) {
	for _, tc := range []struct {
		name     string
		services bool // the services' constructs are in the app
	}{{"service names only", false}, {"service constructs", true}} {
		t.Run(tc.name, func(t *testing.T) {
			var svc awscdk.CfnResource
			stack, r := newStack(t, func(p *rotation.Props) {
				if tc.services {
					svc = awscdk.NewCfnResource(p.Vpc.Stack(), jsii.String("AppService"), &awscdk.CfnResourceProps{
						Type: jsii.String("AWS::ECS::Service")})
					p.ServiceConstructs = []constructs.IDependable{svc}
				}
			})
			tmpl := cdktest.Template(t, stack)
			policy := ""
			for _, s := range cdktest.Statements(tmpl) {
				if s.Role == cdktest.LogicalID(stack, r.Functions[rotation.Rotator].Role()) && s.Policy != "" {
					policy = s.Policy
				}
			}
			if policy == "" {
				t.Fatal("the rotation function's role has no policy")
			}
			want := []string{cdktest.LogicalID(stack, r.StateMachine), policy}
			if tc.services {
				want = append(want, *stack.GetLogicalId(svc))
			}
			sched := cdktest.Resources(tmpl, "AWS::SecretsManager::RotationSchedule")
			if len(sched) != 1 {
				t.Fatalf("rotation schedules: %d, want 1", len(sched))
			}
			for id, s := range sched {
				deps, _ := s["DependsOn"].([]any)
				for _, w := range want {
					if !slices.Contains(deps, any(w)) {
						t.Errorf("rotation schedule %s DependsOn %s, missing %s", id, cdktest.JSON(deps), w)
					}
				}
			}
			if c := cdktest.Cycle(tmpl); c != nil {
				t.Errorf("dependency cycle: %v", c)
			}
		})
	}
}

func TestSchedule(t *testing.T) {
	for _, tc := range []struct {
		age  awscdk.Duration
		want string // "" means rejected
	}{
		{awscdk.Duration_Days(jsii.Number(90)), "rate(45 days)"},
		{awscdk.Duration_Days(jsii.Number(60)), "rate(30 days)"},
		{awscdk.Duration_Days(jsii.Number(2)), "rate(1 day)"},
		{awscdk.Duration_Hours(jsii.Number(48)), "rate(1 day)"},
		{awscdk.Duration_Days(jsii.Number(2000)), "rate(1000 days)"},
		{awscdk.Duration_Days(jsii.Number(91)), ""},
		{awscdk.Duration_Days(jsii.Number(1)), ""},
		{awscdk.Duration_Hours(jsii.Number(36)), ""},
		{awscdk.Duration_Days(jsii.Number(2002)), ""},
		{awscdk.Duration_Days(jsii.Number(0)), ""},
	} {
		name := *tc.age.ToHumanString()
		t.Run(name, func(t *testing.T) {
			_, err := rotation.Schedule(tc.age)
			if tc.want == "" {
				if !errors.Is(err, rotation.ErrInvalidMaxPasswordAge) {
					t.Fatalf("Schedule(%s) error = %v, want ErrInvalidMaxPasswordAge", name, err)
				}
				msg := panicMessage(t, func() { newStack(t, func(p *rotation.Props) { p.MaxPasswordAge = tc.age }) })
				if !strings.Contains(msg, "invalid MaxPasswordAge") || !strings.Contains(msg, "cannot be halved") {
					t.Errorf("panic %q does not name the invalid MaxPasswordAge", msg)
				}
				return
			}
			if err != nil {
				t.Fatalf("Schedule(%s): %v", name, err)
			}
			stack, _ := newStack(t, func(p *rotation.Props) { p.MaxPasswordAge = tc.age })
			sched := cdktest.Resources(cdktest.Template(t, stack), "AWS::SecretsManager::RotationSchedule")
			if len(sched) != 1 {
				t.Fatalf("rotation schedules: %d, want 1", len(sched))
			}
			for _, s := range sched {
				p := cdktest.Props(s)
				if got := cdktest.JSON(p["RotationRules"]); got != `{"ScheduleExpression":"`+tc.want+`"}` {
					t.Errorf("RotationRules = %s, want %s", got, tc.want)
				}
				if p["SecretId"] != appSecretArn {
					t.Errorf("schedule on %v, want the app secret", p["SecretId"])
				}
				if p["RotateImmediatelyOnUpdate"] != false {
					t.Errorf("RotateImmediatelyOnUpdate = %v, want false by default", p["RotateImmediatelyOnUpdate"])
				}
			}
		})
	}
	t.Run("default is 45 days", func(t *testing.T) {
		stack, _ := newStack(t, func(p *rotation.Props) { p.MaxPasswordAge = nil })
		tmpl := cdktest.Template(t, stack)
		if got := cdktest.JSON(tmpl); !strings.Contains(got, `"ScheduleExpression":"rate(45 days)"`) {
			t.Errorf("default schedule is not rate(45 days)")
		}
	})
}

func panicMessage(t *testing.T, f func()) (msg string) {
	t.Helper()
	defer func() {
		r := recover()
		if r == nil {
			t.Fatal("did not panic")
		}
		msg = fmt.Sprint(r)
	}()
	f()
	return ""
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*rotation.Props)
		want   string
	}{
		{"no app secret", func(p *rotation.Props) { p.AppSecret = nil }, "AppSecret is required"},
		{"no admin secret", func(p *rotation.Props) { p.AdminSecret = nil }, "AdminSecret is required"},
		{"no vpc", func(p *rotation.Props) { p.Vpc = nil }, "Vpc is required"},
		{"no subnets", func(p *rotation.Props) { p.Subnets = nil }, "Subnets is required"},
		{"no security group", func(p *rotation.Props) { p.SecurityGroup = nil }, "SecurityGroup is required"},
		{"no services", func(p *rotation.Props) { p.Services = nil }, "at least one ECS service"},
		{"service ARN", func(p *rotation.Props) {
			p.Services = []workflow.Service{{Cluster: "arn:aws:ecs:eu-west-1:123456789012:cluster/prod", Service: "api"}}
		}, "not ARNs"},
		{"replica without port", func(p *rotation.Props) { p.Replicas = []workflow.Endpoint{{Host: "r"}} }, "Replicas[0]"},
		{"short password", func(p *rotation.Props) { p.PasswordLength = 8 }, "PasswordLength 8"},
		{"short retention", func(p *rotation.Props) { p.LogRetention = awslogs.RetentionDays_THREE_MONTHS }, "shorter than a year"},
		{"bad name", func(p *rotation.Props) { p.StateMachineName = "has space" }, "StateMachineName"},
		{"adopt without bootstrap", func(p *rotation.Props) { p.BootstrapAdoptExistingUser = true }, "BootstrapAdoptExistingUser requires Bootstrap"},
		{"odd age", func(p *rotation.Props) { p.MaxPasswordAge = awscdk.Duration_Days(jsii.Number(45)) }, "invalid MaxPasswordAge"},
		{"retirement under a second", func(p *rotation.Props) { p.RetirePreviousAfter = awscdk.Duration_Millis(jsii.Number(500)) }, "RetirePreviousAfter must be at least one second"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := panicMessage(t, func() { newStack(t, tc.mutate) })
			if !strings.Contains(msg, tc.want) {
				t.Errorf("panic %q does not contain %q", msg, tc.want)
			}
		})
	}
}

func TestFunctions(t *testing.T) {
	stack, r := newStack(t, func(p *rotation.Props) {
		p.ConnectTimeout = awscdk.Duration_Seconds(jsii.Number(7))
		p.RolloutMaxChecks = 80
		p.PasswordLength = 40
		p.ExcludeCharacters = `:/@"'\ %`
	})
	tmpl := cdktest.Template(t, stack)
	fns := cdktest.Resources(tmpl, "AWS::Lambda::Function")
	if want := len(rotation.FunctionNames()) + 1; len(fns) != want {
		t.Fatalf("functions: got %d, want %d (the steps and evidence)", len(fns), want)
	}
	database := map[string]bool{rotation.Preflight: true, rotation.CloneUser: true, rotation.SetPassword: true,
		rotation.TestLogin: true, rotation.CheckReplicas: true, rotation.RetirePrevious: true}
	for _, name := range rotation.FunctionNames() {
		p := cdktest.Props(fns[cdktest.LogicalID(stack, r.Functions[name])])
		if p["Runtime"] != "provided.al2023" || cdktest.JSON(p["Architectures"]) != `["arm64"]` || p["Handler"] != "bootstrap" {
			t.Errorf("%s: runtime %v %v handler %v, want provided.al2023 arm64 bootstrap", name, p["Runtime"], p["Architectures"], p["Handler"])
		}
		if tr, _ := p["TracingConfig"].(map[string]any); tr["Mode"] != "Active" {
			t.Errorf("%s: tracing %v, want Active", name, p["TracingConfig"])
		}
		vpc, inVPC := p["VpcConfig"].(map[string]any)
		if inVPC != database[name] {
			t.Errorf("%s: in VPC = %v, want %v", name, inVPC, database[name])
		}
		if inVPC && cdktest.JSON(vpc["SecurityGroupIds"]) != `["sg-0123456789abcdef0"]` {
			t.Errorf("%s: security groups %s", name, cdktest.JSON(vpc["SecurityGroupIds"]))
		}
		env := map[string]any{}
		if e, ok := p["Environment"].(map[string]any); ok {
			env, _ = e["Variables"].(map[string]any)
		}
		want := map[string]string{}
		switch name {
		case rotation.Rotator:
			want = map[string]string{
				spec.EnvServices:          `[{"cluster":"prod","service":"api"},{"cluster":"prod","service":"worker"}]`,
				spec.EnvPasswordLength:    "40",
				spec.EnvExcludeCharacters: `:/@"'\ %`,
			}
		case rotation.CheckRollout:
			want = map[string]string{spec.EnvRolloutMaxChecks: "80"}
		}
		if database[name] {
			want[spec.EnvConnectTimeout] = "7000ms"
		}
		if name == rotation.Preflight {
			want[rotation.EnvReplicas] = `[{"host":"replica-1.example.eu-west-1.rds.amazonaws.com","port":5432}]`
		}
		if name == rotation.Rotator || name == rotation.Preflight {
			if _, ok := env[spec.EnvStateMachineARN]; !ok {
				t.Errorf("%s: %s missing", name, spec.EnvStateMachineARN)
			}
			delete(env, spec.EnvStateMachineARN)
		}
		if got, w := cdktest.JSON(env), cdktest.JSON(want); got != w {
			t.Errorf("%s env:\n got %s\nwant %s", name, got, w)
		}
		f, _ := spec.Lookup(name)
		for k := range env {
			if !f.Reads(k) {
				t.Errorf("%s is given %s, which the registry (lambdas/spec) says it does not read", name, k)
			}
		}
	}
}

func TestCABundle(t *testing.T) {
	dir := t.TempDir()
	pem := filepath.Join(dir, "rds-ca.pem")
	if err := os.WriteFile(pem, []byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "other.txt"), []byte("not shipped"), 0o644); err != nil {
		t.Fatal(err)
	}
	stack, r := newStack(t, func(p *rotation.Props) { p.CABundleFile = pem })
	tmpl := cdktest.Template(t, stack)
	layers := cdktest.Resources(tmpl, "AWS::Lambda::LayerVersion")
	if len(layers) != 1 {
		t.Fatalf("layers: got %d, want 1", len(layers))
	}
	for _, name := range rotation.FunctionNames() {
		p := cdktest.Props(cdktest.Resources(tmpl, "AWS::Lambda::Function")[cdktest.LogicalID(stack, r.Functions[name])])
		env := cdktest.JSON(p["Environment"])
		has := strings.Contains(env, `"`+spec.EnvCABundle+`":"/opt/rds-ca.pem"`)
		db := p["VpcConfig"] != nil
		if has != db || (p["Layers"] != nil) != db {
			t.Errorf("%s: CA bundle env %v layers %v, want both %v", name, has, p["Layers"] != nil, db)
		}
	}
	// The layer's asset holds the PEM alone.
	var staged []string
	asm := awscdk.Stage_Of(stack).Synth(nil)
	for _, layer := range layers {
		key, _ := cdktest.Props(layer)["Content"].(map[string]any)["S3Key"].(string)
		entries, err := os.ReadDir(filepath.Join(*asm.Directory(), "asset."+strings.TrimSuffix(key, ".zip")))
		if err != nil {
			t.Fatalf("read layer asset: %v", err)
		}
		for _, e := range entries {
			staged = append(staged, e.Name())
		}
	}
	if !slices.Equal(staged, []string{"rds-ca.pem"}) {
		t.Errorf("layer asset holds %v, want only rds-ca.pem", staged)
	}
	msg := panicMessage(t, func() { newStack(t, func(p *rotation.Props) { p.CABundleFile = filepath.Join(dir, "missing.pem") }) })
	if !strings.Contains(msg, "missing.pem") {
		t.Errorf("panic %q does not name the missing CA bundle", msg)
	}
}

func TestMissingAssets(t *testing.T) {
	msg := panicMessage(t, func() { newStack(t, func(p *rotation.Props) { p.AssetDir = t.TempDir() }) })
	if !strings.Contains(msg, "make build") || !strings.Contains(msg, "rotator/bootstrap") {
		t.Errorf("panic %q does not say which bootstraps are missing and how to build them", msg)
	}
}

func TestAlarmAndTopic(t *testing.T) {
	t.Run("created topic", func(t *testing.T) {
		stack, r := newStack(t, nil)
		tmpl := cdktest.Template(t, stack)
		topics := cdktest.Resources(tmpl, "AWS::SNS::Topic")
		if len(topics) != 1 {
			t.Fatalf("topics: %d, want 1", len(topics))
		}
		topicID := cdktest.LogicalID(stack, r.Topic.(awssns.Topic))
		if p := cdktest.Props(topics[topicID]); p["KmsMasterKeyId"] == nil {
			t.Errorf("created topic is not encrypted")
		}
		alarms := cdktest.Resources(tmpl, "AWS::CloudWatch::Alarm")
		if len(alarms) != 2 {
			t.Fatalf("alarms: %d, want 2 (failed executions, rotation function errors)", len(alarms))
		}
		for _, a := range []map[string]any{alarms[cdktest.LogicalID(stack, r.Alarm)]} {
			p := cdktest.Props(a)
			if got := cdktest.JSON(p["AlarmActions"]); got != `[{"Ref":"`+topicID+`"}]` {
				t.Errorf("alarm actions %s, want the topic", got)
			}
			metrics := cdktest.JSON(p["Metrics"])
			for _, m := range []string{`"MetricName":"ExecutionsFailed"`, `"MetricName":"ExecutionsTimedOut"`,
				`"Ref":"` + cdktest.LogicalID(stack, r.StateMachine) + `"`} {
				if !strings.Contains(metrics, m) {
					t.Errorf("alarm metrics lack %s: %s", m, metrics)
				}
			}
			if p["Threshold"] != 1.0 || p["ComparisonOperator"] != "GreaterThanOrEqualToThreshold" {
				t.Errorf("alarm fires on %v %v, want >= 1", p["ComparisonOperator"], p["Threshold"])
			}
		}
	})
	t.Run("given topic", func(t *testing.T) {
		const topicArn = "arn:aws:sns:eu-west-1:123456789012:ops"
		stack, r := newStack(t, func(p *rotation.Props) {
			p.AlarmTopic = awssns.Topic_FromTopicArn(p.Vpc.Stack(), jsii.String("Ops"), jsii.String(topicArn))
		})
		tmpl := cdktest.Template(t, stack)
		if n := len(cdktest.Resources(tmpl, "AWS::SNS::Topic")); n != 0 {
			t.Errorf("topics created: %d, want 0", n)
		}
		// A given topic's policy is its owner's (see Props.AlarmTopic); every alarm reaches it.
		if n := len(cdktest.Resources(tmpl, "AWS::SNS::TopicPolicy")); n != 0 {
			t.Errorf("topic policies created: %d, want 0", n)
		}
		for id, a := range cdktest.Resources(tmpl, "AWS::CloudWatch::Alarm") {
			if got := cdktest.JSON(cdktest.Props(a)["AlarmActions"]); got != `["`+topicArn+`"]` {
				t.Errorf("alarm %s actions %s, want the given topic", id, got)
			}
		}
		rules := cdktest.Resources(tmpl, "AWS::Events::Rule")
		// The evidence function's rules target the function, not the topic (evidence_test.go).
		delete(rules, cdktest.LogicalID(stack, r.Evidence.ExecutionRule))
		delete(rules, cdktest.LogicalID(stack, r.Evidence.FailureRule))
		for id, rule := range rules {
			if got := cdktest.JSON(cdktest.Props(rule)["Targets"]); !strings.Contains(got, `"Arn":"`+topicArn+`"`) {
				t.Errorf("rule %s targets %s, want the given topic", id, got)
			}
		}
		if got := cdktest.JSON(stateMachine(t, tmpl)["DefinitionSubstitutions"].(map[string]any)[statemachine.AlarmTopicArn]); got != `"`+topicArn+`"` {
			t.Errorf("AlarmTopicArn = %s, want %s", got, topicArn)
		}
	})
}

func TestRotatorInvokePermission(t *testing.T) {
	stack, r := newStack(t, nil)
	tmpl := cdktest.Template(t, stack)
	rotator := cdktest.LogicalID(stack, r.Functions[rotation.Rotator])
	var found int
	for _, perm := range cdktest.Resources(tmpl, "AWS::Lambda::Permission") {
		p := cdktest.Props(perm)
		if p["Principal"] != "secretsmanager.amazonaws.com" {
			continue
		}
		found++
		if !strings.Contains(cdktest.JSON(p["FunctionName"]), rotator) {
			t.Errorf("Secrets Manager may invoke %s, want only the rotator", cdktest.JSON(p["FunctionName"]))
		}
		if p["SourceAccount"] != account || p["SourceArn"] != appSecretArn {
			t.Errorf("permission source %v %v, want %s and the app secret", p["SourceAccount"], p["SourceArn"], account)
		}
	}
	if found != 1 {
		t.Errorf("Secrets Manager invoke permissions: %d, want 1", found)
	}
}

func TestNag(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  *awscdk.Environment
	}{
		{"account and region", &awscdk.Environment{Account: jsii.String(account), Region: jsii.String(region)}},
		{"environment-agnostic", nil},
	} {
		t.Run(tc.name, func(t *testing.T) { checkNag(t, tc.env) })
	}
}

func checkNag(t *testing.T, env *awscdk.Environment) {
	stack, _ := newStackIn(t, env, nil)
	errs, warnings := cdktest.NagFindings(stack)
	for _, e := range errs {
		t.Errorf("cdk-nag error: %s", e)
	}
	for _, w := range warnings {
		t.Errorf("cdk-nag warning: %s", w)
	}
	sups := cdktest.Suppressions(cdktest.Template(t, stack))
	if len(sups) == 0 {
		t.Fatal("no suppressions found: the metadata scan is broken")
	}
	cdktest.CheckSuppressionReasons(t, sups)
	for _, s := range sups {
		if (s.Rule != "AwsSolutions-IAM5" || len(s.AppliesTo) == 0) && !evidenceDeparture(s) {
			t.Errorf("suppression %s on %s is not a scoped IAM5 wildcard: %+v", s.Rule, s.Resource, s)
		}
	}
}
