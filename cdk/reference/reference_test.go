package reference_test

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/pgrotate/pgrotate/cdk/internal/cdktest"
	"github.com/pgrotate/pgrotate/cdk/reference"
	"github.com/pgrotate/pgrotate/cdk/rotation"
)

func TestMain(m *testing.M) {
	code := m.Run()
	jsii.Close()
	os.Exit(code)
}

// fixture is one synthesized reference stack, shared by the tests (synthesis takes seconds).
type fixture struct {
	s    *reference.Stack
	tmpl map[string]any
	errs []string
	warn []string
	// synthWarn are all synthesis warnings (CDK's and cdk-nag's).
	synthWarn []string
}

var (
	once   sync.Once
	shared fixture
)

func ref(t *testing.T) fixture {
	t.Helper()
	once.Do(func() {
		app := cdktest.NewApp(t)
		s := reference.NewStack(app, "PgrotateReference", reference.Props{
			StackProps: awscdk.StackProps{Env: &awscdk.Environment{Region: jsii.String("eu-west-1")}},
		})
		shared = fixture{s: s, tmpl: cdktest.Template(t, s.Stack)}
		shared.errs, shared.warn = cdktest.NagFindings(s.Stack)
		for _, m := range *assertions.Annotations_FromStack(s.Stack).FindWarning(jsii.String("*"), assertions.Match_AnyValue()) {
			shared.synthWarn = append(shared.synthWarn, cdktest.Message(m))
		}
	})
	if shared.s == nil {
		t.Fatal("reference stack did not synthesize")
	}
	return shared
}

func (f fixture) props(t *testing.T, typ string, c interface{ Node() constructs.Node }) map[string]any {
	t.Helper()
	id := cdktest.LogicalID(f.s.Stack, c)
	res := cdktest.Resources(f.tmpl, typ)[id]
	if res == nil {
		t.Fatalf("no %s %s", typ, id)
	}
	return cdktest.Props(res)
}

func (f fixture) id(c interface{ Node() constructs.Node }) string {
	return cdktest.LogicalID(f.s.Stack, c)
}

func TestDatabase(t *testing.T) {
	f := ref(t)
	primary := f.props(t, "AWS::RDS::DBInstance", f.s.Primary)
	adminID := f.id(f.s.AdminSecret)

	if primary["ManageMasterUserPassword"] != false {
		t.Errorf("primary ManageMasterUserPassword = %v, want false", primary["ManageMasterUserPassword"])
	}
	wantPw := fmt.Sprintf(`{"Fn::Join":["",["{{resolve:secretsmanager:",{"Ref":"%s"},":SecretString:password::}}"]]}`, adminID)
	if got := cdktest.JSON(primary["MasterUserPassword"]); got != wantPw {
		t.Errorf("MasterUserPassword = %s, want the admin secret's dynamic reference %s", got, wantPw)
	}
	if primary["StorageEncrypted"] != true || !strings.Contains(cdktest.JSON(primary["KmsKeyId"]), f.id(f.s.Key)) {
		t.Errorf("primary storage not encrypted with the stack key: %v %v", primary["StorageEncrypted"], primary["KmsKeyId"])
	}

	replica := f.props(t, "AWS::RDS::DBInstance", f.s.Replica)
	if src := cdktest.JSON(replica["SourceDBInstanceIdentifier"]); !strings.Contains(src, `{"Ref":"`+f.id(f.s.Primary)+`"}`) {
		t.Errorf("replica source = %s, want the primary", src)
	}
	for _, k := range []string{"MasterUserPassword", "MasterUsername", "ManageMasterUserPassword", "StorageEncrypted"} {
		if replica[k] != nil {
			t.Errorf("replica sets %s (inherited from the primary)", k)
		}
	}

	// The admin secret gets host/port from the instance through a target attachment.
	var attached bool
	for _, a := range cdktest.Resources(f.tmpl, "AWS::SecretsManager::SecretTargetAttachment") {
		p := cdktest.Props(a)
		if cdktest.JSON(p["SecretId"]) == `{"Ref":"`+adminID+`"}` && cdktest.JSON(p["TargetId"]) == `{"Ref":"`+f.id(f.s.Primary)+`"}` {
			attached = true
		}
	}
	if !attached {
		t.Error("no SecretTargetAttachment of the admin secret to the primary")
	}
}

func TestSecretsGeneratedByCloudFormation(t *testing.T) {
	f := ref(t)
	secrets := cdktest.Resources(f.tmpl, "AWS::SecretsManager::Secret")
	if len(secrets) != 2 {
		t.Fatalf("secrets: %d, want 2 (admin and app)", len(secrets))
	}
	for id, s := range secrets {
		p := cdktest.Props(s)
		if p["SecretString"] != nil {
			t.Errorf("secret %s has a SecretString in the template", id)
		}
		gen, _ := p["GenerateSecretString"].(map[string]any)
		if gen["GenerateStringKey"] != "password" || gen["SecretStringTemplate"] == nil {
			t.Errorf("secret %s: GenerateSecretString = %s, want a template and generateStringKey password", id, cdktest.JSON(gen))
		}
		if !strings.Contains(cdktest.JSON(p["KmsKeyId"]), f.id(f.s.Key)) {
			t.Errorf("secret %s is not encrypted with the stack key", id)
		}
	}
	app := cdktest.JSON(cdktest.Props(secrets[f.id(f.s.AppSecret)])["GenerateSecretString"])
	for _, want := range []string{
		fmt.Sprintf(`{"Fn::GetAtt":["%s","Endpoint.Address"]}`, f.id(f.s.Primary)),
		fmt.Sprintf(`{"Fn::GetAtt":["%s","Endpoint.Address"]}`, f.id(f.s.Replica)),
		fmt.Sprintf(`{"Ref":"%s"}`, f.id(f.s.AdminSecret)),
		`\"username\":\"app_user\"`, `\"engine\":\"postgres\"`, `\"dbname\":\"app\"`, `\"masterarn\":\"`,
	} {
		if !strings.Contains(app, want) {
			t.Errorf("app secret template lacks %s: %s", want, app)
		}
	}
}

func TestNoLiteralPassword(t *testing.T) {
	f := ref(t)
	if found := cdktest.LiteralPasswords(f.tmpl); len(found) > 0 {
		t.Errorf("literal passwords in the template at: %v", found)
	}
	for id, db := range cdktest.Resources(f.tmpl, "AWS::RDS::DBInstance") {
		if pw, ok := cdktest.Props(db)["MasterUserPassword"]; ok && !strings.HasPrefix(cdktest.JSON(pw), `{"Fn::Join":["",["{{resolve:secretsmanager:`) {
			t.Errorf("%s MasterUserPassword is not a dynamic reference: %s", id, cdktest.JSON(pw))
		}
	}
}

func TestAppService(t *testing.T) {
	f := ref(t)
	svc := f.props(t, "AWS::ECS::Service", f.s.Service)
	dc, _ := svc["DeploymentConfiguration"].(map[string]any)
	if dc["MinimumHealthyPercent"] != 100.0 || dc["MaximumPercent"] != 200.0 {
		t.Errorf("deployment min/max = %v/%v, want 100/200", dc["MinimumHealthyPercent"], dc["MaximumPercent"])
	}
	if cb := cdktest.JSON(dc["DeploymentCircuitBreaker"]); cb != `{"Enable":true,"Rollback":true}` {
		t.Errorf("circuit breaker = %s, want enabled with rollback", cb)
	}

	var task map[string]any
	for _, td := range cdktest.Resources(f.tmpl, "AWS::ECS::TaskDefinition") {
		task = cdktest.Props(td)
	}
	containers, _ := task["ContainerDefinitions"].([]any)
	if len(containers) != 1 {
		t.Fatalf("containers: %d, want 1", len(containers))
	}
	c := containers[0].(map[string]any)
	appSecret := f.id(f.s.AppSecret)
	secrets := map[string]string{}
	for _, s := range c["Secrets"].([]any) {
		m := s.(map[string]any)
		secrets[m["Name"].(string)] = cdktest.JSON(m["ValueFrom"])
	}
	for name, key := range map[string]string{"DB_HOST": "host", "DB_PORT": "port", "DB_NAME": "dbname", "DB_USER": "username", "DB_PASSWORD": "password"} {
		want := fmt.Sprintf(`{"Fn::Join":["",[{"Ref":"%s"},":%s::"]]}`, appSecret, key)
		if secrets[name] != want {
			t.Errorf("secret %s = %s, want %s", name, secrets[name], want)
		}
	}
	env := map[string]string{}
	for _, e := range c["Environment"].([]any) {
		m := e.(map[string]any)
		env[m["Name"].(string)] = cdktest.JSON(m["Value"])
	}
	if want := fmt.Sprintf(`{"Fn::GetAtt":["%s","Endpoint.Address"]}`, f.id(f.s.Replica)); env["DB_REPLICA_HOST"] != want {
		t.Errorf("DB_REPLICA_HOST = %s, want %s", env["DB_REPLICA_HOST"], want)
	}
	for name := range env {
		if strings.Contains(strings.ToUpper(name), "PASSWORD") {
			t.Errorf("plain environment variable %s", name)
		}
	}
	stop, _ := c["StopTimeout"].(float64)
	if env["DRAIN_TIMEOUT"] != `"30s"` || stop <= 30 {
		t.Errorf("stop timeout %vs, drain %s: ECS must wait longer than the app drains", stop, env["DRAIN_TIMEOUT"])
	}

	tg := f.props(t, "AWS::ElasticLoadBalancingV2::TargetGroup", f.s.TargetGroup)
	if tg["HealthCheckPath"] != "/healthz" {
		t.Errorf("health check path = %v, want /healthz", tg["HealthCheckPath"])
	}
	if attrs := cdktest.JSON(tg["TargetGroupAttributes"]); !strings.Contains(attrs, `{"Key":"deregistration_delay.timeout_seconds","Value":"30"}`) {
		t.Errorf("target group attributes %s lack a deregistration delay", attrs)
	}

	var endpoint bool
	for _, ep := range cdktest.Resources(f.tmpl, "AWS::EC2::VPCEndpoint") {
		p := cdktest.Props(ep)
		if strings.Contains(cdktest.JSON(p["ServiceName"]), "secretsmanager") && p["VpcEndpointType"] == "Interface" && p["PrivateDnsEnabled"] == true {
			endpoint = true
		}
	}
	if !endpoint {
		t.Error("no Secrets Manager interface endpoint with private DNS")
	}
}

func TestRotationWiring(t *testing.T) {
	f := ref(t)
	stmts := cdktest.Statements(f.tmpl)
	rotator := f.id(f.s.Rotation.Functions[rotation.Rotator].Role())
	for _, action := range []string{"secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage"} {
		if got := cdktest.RolesWith(stmts, action); !slices.Equal(got, []string{rotator}) {
			t.Errorf("roles allowed %s: %v, want only the rotator's %s", action, got, rotator)
		}
	}
	redeploy := f.id(f.s.Rotation.Functions[rotation.Redeploy].Role())
	if got := cdktest.RolesWith(stmts, "ecs:UpdateService"); !slices.Equal(got, []string{redeploy}) {
		t.Errorf("roles allowed ecs:UpdateService: %v, want only Redeploy's %s", got, redeploy)
	}
	wantService := fmt.Sprintf(`[{"Fn::Join":["",["arn:",{"Ref":"AWS::Partition"},":ecs:eu-west-1:",{"Ref":"AWS::AccountId"},`+
		`":service/",{"Ref":"%s"},"/",{"Fn::GetAtt":["%s","Name"]}]]}]`, f.id(f.s.Cluster), f.id(f.s.Service))
	for _, s := range stmts {
		if s.HasAction("ecs:UpdateService") && cdktest.JSON(s.Resources) != wantService {
			t.Errorf("ecs:UpdateService on %s, want %s", cdktest.JSON(s.Resources), wantService)
		}
	}
	if w := cdktest.SecretWildcards(stmts); len(w) > 0 {
		t.Errorf("secret wildcards: %+v", w)
	}

	var schedules int
	for _, s := range cdktest.Resources(f.tmpl, "AWS::SecretsManager::RotationSchedule") {
		schedules++
		p := cdktest.Props(s)
		if cdktest.JSON(p["SecretId"]) != `{"Ref":"`+f.id(f.s.AppSecret)+`"}` || cdktest.JSON(p["RotationRules"]) != `{"ScheduleExpression":"rate(45 days)"}` {
			t.Errorf("schedule %s, want the app secret every 45 days", cdktest.JSON(p))
		}
	}
	if schedules != 1 {
		t.Errorf("rotation schedules: %d, want 1 (the app secret)", schedules)
	}
	if c := cdktest.Cycle(f.tmpl); c != nil {
		t.Errorf("dependency cycle: %v", c)
	}
}

func TestNag(t *testing.T) {
	f := ref(t)
	for _, e := range f.errs {
		t.Errorf("cdk-nag error: %s", e)
	}
	for _, w := range f.warn {
		t.Errorf("cdk-nag warning: %s", w)
	}
	for _, w := range f.synthWarn {
		t.Errorf("synthesis warning: %s", w)
	}
	sups := cdktest.Suppressions(f.tmpl)
	cdktest.CheckSuppressionReasons(t, sups)
	var rules []string
	for _, s := range sups {
		rules = append(rules, s.Rule)
	}
	// The stack's own departures (the rotation construct adds its IAM5 ones).
	for _, want := range []string{"AwsSolutions-SMG4", "AwsSolutions-RDS11", "AwsSolutions-RDS2", "AwsSolutions-RDS3", "AwsSolutions-ECS2", "AwsSolutions-S1"} {
		if !slices.Contains(rules, want) {
			t.Errorf("expected a suppression of %s (is the scan broken?)", want)
		}
	}
	for _, s := range sups {
		t.Logf("suppressed %s on %s: %s", s.Rule, s.Resource, s.Reason)
	}
}

func TestRegionRequired(t *testing.T) {
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())})
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "region is required") {
			t.Errorf("panic = %v, want a missing-region message", r)
		}
	}()
	reference.NewStack(app, "NoRegion", reference.Props{})
}

func TestBootstrapCreatesTheAppUserBeforeTheApp(t *testing.T) {
	f := ref(t)
	if f.s.Bootstrap == nil || f.s.Bootstrap != f.s.Rotation.Bootstrap {
		t.Fatal("the reference stack has no bootstrap, or not the rotation's")
	}
	crs := cdktest.Resources(f.tmpl, rotation.BootstrapResourceType)
	crID := f.id(f.s.Bootstrap.Resource)
	if len(crs) != 1 || crs[crID] == nil {
		t.Fatalf("custom resources of type %s: %d, want one %s", rotation.BootstrapResourceType, len(crs), crID)
	}
	cr := crs[crID]
	fnID := f.id(f.s.Bootstrap.Function)
	want := `{"AppSecretArn":{"Ref":"` + f.id(f.s.AppSecret) + `"},"ServiceTimeout":"600","ServiceToken":{"Fn::GetAtt":["` + fnID + `","Arn"]}}`
	if got := cdktest.JSON(cdktest.Props(cr)); got != want {
		t.Errorf("custom resource properties:\n got %s\nwant %s", got, want)
	}

	// It runs once the database, the admin secret's host and its function's network paths
	// are there.
	deps := map[string]bool{}
	for _, d := range cdktest.Resources(f.tmpl, "")[crID]["DependsOn"].([]any) {
		deps[d.(string)] = true
	}
	fn := cdktest.Props(cdktest.Resources(f.tmpl, "AWS::Lambda::Function")[fnID])
	vpc, _ := fn["VpcConfig"].(map[string]any)
	lambdaSG := cdktest.JSON(vpc["SecurityGroupIds"])
	needed := map[string]string{f.id(f.s.Primary): "the primary", f.id(f.s.Replica): "the replica"}
	for id, a := range cdktest.Resources(f.tmpl, "AWS::SecretsManager::SecretTargetAttachment") {
		if cdktest.JSON(cdktest.Props(a)["SecretId"]) == `{"Ref":"`+f.id(f.s.AdminSecret)+`"}` {
			needed[id] = "the admin secret's attachment to the primary"
		}
	}
	for id, in := range cdktest.Resources(f.tmpl, "AWS::EC2::SecurityGroupIngress") {
		p := cdktest.Props(in)
		if "["+cdktest.JSON(p["SourceSecurityGroupId"])+"]" == lambdaSG {
			needed[id] = fmt.Sprintf("the ingress rule from the function's security group on port %v", p["FromPort"])
		}
	}
	for id, ep := range cdktest.Resources(f.tmpl, "AWS::EC2::VPCEndpoint") {
		if strings.Contains(cdktest.JSON(cdktest.Props(ep)["ServiceName"]), "secretsmanager") {
			needed[id] = "the Secrets Manager endpoint"
		}
	}
	if len(needed) != 6 {
		t.Errorf("found %d resources the bootstrap needs, want 6 (primary, replica, attachment, 2 ingress rules, endpoint): %v", len(needed), needed)
	}
	for id, what := range needed {
		if !deps[id] {
			t.Errorf("the bootstrap does not depend on %s (%s)", what, id)
		}
	}
	// Its function is in the database-facing functions' network.
	preflight := cdktest.Props(cdktest.Resources(f.tmpl, "AWS::Lambda::Function")[f.id(f.s.Rotation.Functions[rotation.Preflight])])
	if cdktest.JSON(fn["VpcConfig"]) != cdktest.JSON(preflight["VpcConfig"]) || fn["Runtime"] != "provided.al2023" || cdktest.JSON(fn["Architectures"]) != `["arm64"]` {
		t.Errorf("bootstrap function: %s %v %v; want Preflight's network, provided.al2023, arm64", cdktest.JSON(fn["VpcConfig"]), fn["Runtime"], fn["Architectures"])
	}

	// The app's service starts after it, with its tasks; the schedule too.
	svc := cdktest.Resources(f.tmpl, "")[f.id(f.s.Service)]
	if !slices.Contains(svc["DependsOn"].([]any), any(crID)) {
		t.Errorf("the app's service depends on %v, not on the bootstrap %s", svc["DependsOn"], crID)
	}
	if n := cdktest.Props(svc)["DesiredCount"]; n != float64(reference.DefaultAppDesiredCount) || reference.DefaultAppDesiredCount < 2 {
		t.Errorf("app DesiredCount = %v, want %d", n, reference.DefaultAppDesiredCount)
	}
	for id, s := range cdktest.Resources(f.tmpl, "AWS::SecretsManager::RotationSchedule") {
		if !slices.Contains(s["DependsOn"].([]any), any(crID)) {
			t.Errorf("rotation schedule %s does not wait for the bootstrap", id)
		}
	}

	// Its role reads the two secrets and writes none.
	role := f.id(f.s.Bootstrap.Function.Role())
	var read []string
	for _, s := range cdktest.Statements(f.tmpl) {
		if s.Role != role {
			continue
		}
		for _, a := range s.Actions {
			switch {
			case a == "secretsmanager:GetSecretValue" || a == "secretsmanager:DescribeSecret":
				read = append(read, cdktest.JSON(s.Resources))
			case strings.HasPrefix(a, "secretsmanager:"), strings.HasPrefix(a, "kms:") && a != "kms:Decrypt",
				strings.HasPrefix(a, "ecs:"), strings.HasPrefix(a, "states:"), strings.HasPrefix(a, "lambda:"), strings.HasPrefix(a, "iam:"):
				t.Errorf("the bootstrap role may %s on %s", a, cdktest.JSON(s.Resources))
			}
		}
	}
	sort.Strings(read)
	read = slices.Compact(read)
	wantRead := []string{`[{"Ref":"` + f.id(f.s.AdminSecret) + `"}]`, `[{"Ref":"` + f.id(f.s.AppSecret) + `"}]`}
	sort.Strings(wantRead)
	if !slices.Equal(read, wantRead) {
		t.Errorf("the bootstrap role reads %v, want %v", read, wantRead)
	}
	for _, action := range []string{"secretsmanager:PutSecretValue", "secretsmanager:UpdateSecret", "secretsmanager:UpdateSecretVersionStage", "secretsmanager:DeleteSecret"} {
		if slices.Contains(cdktest.RolesWith(cdktest.Statements(f.tmpl), action), role) {
			t.Errorf("the bootstrap role may %s", action)
		}
	}
}

func TestAppDesiredCount(t *testing.T) {
	zero := 0
	s := reference.NewStack(cdktest.NewApp(t), "Scaled", reference.Props{
		StackProps:      awscdk.StackProps{Env: &awscdk.Environment{Region: jsii.String("eu-west-1")}},
		AppDesiredCount: &zero,
	})
	svc := cdktest.Props(cdktest.Resources(cdktest.Template(t, s.Stack), "AWS::ECS::Service")[cdktest.LogicalID(s.Stack, s.Service)])
	if svc["DesiredCount"] != 0.0 {
		t.Errorf("DesiredCount = %v, want the explicit 0", svc["DesiredCount"])
	}
}
