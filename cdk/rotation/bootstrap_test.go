package rotation_test

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/pgrotate/pgrotate/cdk/internal/cdktest"
	"github.com/pgrotate/pgrotate/cdk/rotation"
	"github.com/pgrotate/pgrotate/tasks"
)

func TestBootstrap(t *testing.T) {
	if rotation.PropAppSecretArn != tasks.PropAppSecretARN {
		t.Fatalf("the construct sets %q, the handler reads %q", rotation.PropAppSecretArn, tasks.PropAppSecretARN)
	}
	if rotation.PropAdoptExistingUser != tasks.PropAdoptExistingUser {
		t.Fatalf("the construct sets %q, the handler reads %q", rotation.PropAdoptExistingUser, tasks.PropAdoptExistingUser)
	}
	pem := filepath.Join(t.TempDir(), "rds-ca.pem")
	if err := os.WriteFile(pem, []byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		withKey bool
	}{{"customer managed key", true}, {"AWS managed key", false}} {
		t.Run(tc.name, func(t *testing.T) {
			stack, r := newStack(t, func(p *rotation.Props) {
				p.Bootstrap = true
				p.ConnectTimeout = awscdk.Duration_Seconds(jsii.Number(7))
				p.CABundleFile = pem
				if !tc.withKey {
					p.EncryptionKey = nil
					p.AppSecret = secretFromArn(p, "App2", appSecretArn)
					p.AdminSecret = secretFromArn(p, "Admin2", adminSecretArn)
				}
			})
			tmpl := cdktest.Template(t, stack)
			if r.Bootstrap == nil {
				t.Fatal("Rotation.Bootstrap is nil with Props.Bootstrap set")
			}
			fns := cdktest.Resources(tmpl, "AWS::Lambda::Function")
			if want := len(rotation.FunctionNames()) + 2; len(fns) != want {
				t.Errorf("functions: %d, want the %d steps, evidence and the bootstrap", len(fns), want-2)
			}
			fnID := cdktest.LogicalID(stack, r.Bootstrap.Function)
			fn := cdktest.Props(fns[fnID])
			if fn["Runtime"] != "provided.al2023" || cdktest.JSON(fn["Architectures"]) != `["arm64"]` || fn["Handler"] != "bootstrap" {
				t.Errorf("bootstrap: runtime %v %v handler %v", fn["Runtime"], fn["Architectures"], fn["Handler"])
			}
			// The network, layers and database settings of the database-facing steps.
			preflight := cdktest.Props(fns[cdktest.LogicalID(stack, r.Functions[rotation.Preflight])])
			for _, k := range []string{"VpcConfig", "Layers"} {
				if fn[k] == nil || cdktest.JSON(fn[k]) != cdktest.JSON(preflight[k]) {
					t.Errorf("bootstrap %s = %s, want Preflight's %s", k, cdktest.JSON(fn[k]), cdktest.JSON(preflight[k]))
				}
			}
			want := `{"Variables":{"PGROTATE_CA_BUNDLE":"/opt/rds-ca.pem","PGROTATE_CONNECT_TIMEOUT":"7000ms"}}`
			if got := cdktest.JSON(fn["Environment"]); got != want {
				t.Errorf("bootstrap environment = %s, want %s", got, want)
			}
			timeout, _ := fn["Timeout"].(float64)

			// Its role: read the two secrets (and decrypt them through Secrets Manager), and
			// the ENI, log and trace actions every VPC function has. Nothing else.
			role := cdktest.LogicalID(stack, r.Bootstrap.Function.Role())
			for name, f := range r.Functions {
				if cdktest.LogicalID(stack, f.Role()) == role {
					t.Errorf("the bootstrap shares %s's role", name)
				}
			}
			var actions []string
			var secrets []string
			for _, s := range cdktest.Statements(tmpl) {
				if s.Role != role {
					continue
				}
				actions = append(actions, s.Actions...)
				if s.HasAction("secretsmanager:GetSecretValue") {
					for _, r := range s.Resources {
						secrets = append(secrets, cdktest.JSON(r))
					}
				}
				if s.HasAction("kms:Decrypt") {
					cond := cdktest.JSON(s.Condition)
					if !strings.Contains(cond, `"kms:ViaService":"secretsmanager.eu-west-1.amazonaws.com"`) ||
						!strings.Contains(cond, `"kms:EncryptionContext:SecretARN":["`+appSecretArn+`","`+adminSecretArn+`"]`) {
						t.Errorf("kms:Decrypt condition %s, want via Secrets Manager for the two secrets", cond)
					}
				}
			}
			sort.Strings(actions)
			actions = slices.Compact(actions)
			if w := wantActions(tc.withKey)[rotation.CloneUser]; !slices.Equal(actions, w) {
				t.Errorf("bootstrap actions:\n got %v\nwant %v", actions, w)
			}
			sort.Strings(secrets)
			if w := []string{`"` + appSecretArn + `"`, `"` + adminSecretArn + `"`}; !slices.Equal(secrets, w) {
				t.Errorf("bootstrap reads %v, want %v", secrets, w)
			}
			if mp := cdktest.Props(cdktest.Resources(tmpl, "AWS::IAM::Role")[role])["ManagedPolicyArns"]; mp != nil {
				t.Errorf("bootstrap role has managed policies %s", cdktest.JSON(mp))
			}

			// The custom resource: CloudFormation invokes the function with the app secret's
			// ARN, and gives up long before an hour.
			crs := cdktest.Resources(tmpl, rotation.BootstrapResourceType)
			crID := cdktest.LogicalID(stack, r.Bootstrap.Resource)
			if len(crs) != 1 || crs[crID] == nil {
				t.Fatalf("custom resources %v, want one %s", crs, crID)
			}
			p := cdktest.Props(crs[crID])
			wantCR := `{"AppSecretArn":"` + appSecretArn + `","ServiceTimeout":"600","ServiceToken":{"Fn::GetAtt":["` + fnID + `","Arn"]}}`
			if got := cdktest.JSON(p); got != wantCR {
				t.Errorf("custom resource properties:\n got %s\nwant %s", got, wantCR)
			}
			if timeout < 60 || timeout >= 600 {
				t.Errorf("bootstrap timeout %vs: want at least a minute and under the 600s service timeout", timeout)
			}
			// No rotation before the user exists.
			for id, s := range cdktest.Resources(tmpl, "AWS::SecretsManager::RotationSchedule") {
				if deps := cdktest.JSON(s["DependsOn"]); !strings.Contains(deps, `"`+crID+`"`) {
					t.Errorf("rotation schedule %s depends on %s, not on the bootstrap %s", id, deps, crID)
				}
			}
			if c := cdktest.Cycle(tmpl); c != nil {
				t.Errorf("dependency cycle: %v", c)
			}
			if w := cdktest.SecretWildcards(cdktest.Statements(tmpl)); len(w) > 0 {
				t.Errorf("secret wildcards: %+v", w)
			}
		})
	}
}

// TestBootstrapAdoptExistingUser: taking over an existing user is asked for explicitly; the
// property is sent only then, so stacks that do not ask keep their properties unchanged.
func TestBootstrapAdoptExistingUser(t *testing.T) {
	for _, tc := range []struct {
		adopt bool
		want  string
	}{
		{false, `{"AppSecretArn":"` + appSecretArn + `"}`},
		{true, `{"AdoptExistingUser":"true","AppSecretArn":"` + appSecretArn + `"}`},
	} {
		stack, r := newStack(t, func(p *rotation.Props) { p.Bootstrap = true; p.BootstrapAdoptExistingUser = tc.adopt })
		p := cdktest.Props(cdktest.Resources(cdktest.Template(t, stack), rotation.BootstrapResourceType)[cdktest.LogicalID(stack, r.Bootstrap.Resource)])
		delete(p, "ServiceToken")
		delete(p, "ServiceTimeout")
		if got := cdktest.JSON(p); got != tc.want {
			t.Errorf("adopt %v: custom resource properties %s, want %s", tc.adopt, got, tc.want)
		}
	}
}

func TestBootstrapOffByDefault(t *testing.T) {
	// The steps' bootstraps alone are enough without it, and required with it.
	dir := t.TempDir()
	for _, name := range append(rotation.FunctionNames(), rotation.EvidenceFunction) {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "bootstrap"), []byte("#!/bin/true\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	stack, r := newStack(t, func(p *rotation.Props) { p.AssetDir = dir })
	tmpl := cdktest.Template(t, stack)
	if r.Bootstrap != nil || len(cdktest.Resources(tmpl, rotation.BootstrapResourceType)) != 0 {
		t.Error("a bootstrap custom resource without Props.Bootstrap")
	}
	msg := panicMessage(t, func() {
		newStack(t, func(p *rotation.Props) { p.AssetDir = dir; p.Bootstrap = true })
	})
	if !strings.Contains(msg, "bootstrap/bootstrap") || strings.Contains(msg, "rotator/bootstrap") {
		t.Errorf("panic %q should name only bootstrap/bootstrap as missing", msg)
	}
}

func TestBootstrapNag(t *testing.T) {
	for _, env := range []*awscdk.Environment{{Account: jsii.String(account), Region: jsii.String(region)}, nil} {
		stack, r := newStackIn(t, env, func(p *rotation.Props) { p.Bootstrap = true })
		errs, warnings := cdktest.NagFindings(stack)
		for _, e := range append(errs, warnings...) {
			t.Errorf("cdk-nag finding: %s", e)
		}
		tmpl := cdktest.Template(t, stack)
		sups := cdktest.Suppressions(tmpl)
		cdktest.CheckSuppressionReasons(t, sups)
		role := cdktest.LogicalID(stack, r.Bootstrap.Function.Role())
		ofRole := map[string]bool{role: true} // the role and its policies
		for _, st := range cdktest.Statements(tmpl) {
			if st.Role == role && st.Policy != "" {
				ofRole[st.Policy] = true
			}
		}
		var onRole int
		for _, s := range sups {
			if (s.Rule != "AwsSolutions-IAM5" || len(s.AppliesTo) == 0) && !evidenceDeparture(s) {
				t.Errorf("suppression %s on %s is not a scoped IAM5 wildcard: %+v", s.Rule, s.Resource, s)
			}
			if ofRole[s.Resource] {
				onRole++
				if !slices.Equal(s.AppliesTo, []string{"Resource::*"}) {
					t.Errorf("bootstrap role suppression applies to %v, want only Resource::*", s.AppliesTo)
				}
			}
		}
		if onRole == 0 {
			t.Error("no suppression recorded on the bootstrap role (is the scan broken?)")
		}
	}
}
