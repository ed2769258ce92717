package cdktest

import (
	"encoding/json"
	"slices"
	"testing"
)

func parse(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("parse %s: %v", s, err)
	}
	return m
}

func TestLiteralPasswords(t *testing.T) {
	for _, tc := range []struct {
		name, tmpl string
		want       int
	}{
		{"master password literal", `{"Resources":{"Db":{"Properties":{"MasterUserPassword":"hunter22"}}}}`, 1},
		{"master password dynamic", `{"Resources":{"Db":{"Properties":{"MasterUserPassword":{"Fn::Join":["",["{{resolve:secretsmanager:",{"Ref":"S"},":SecretString:password::}}"]]}}}}}`, 0},
		{"master password ref", `{"Resources":{"Db":{"Properties":{"MasterUserPassword":{"Ref":"Param"}}}}}`, 1},
		{"secret string JSON", `{"Resources":{"S":{"Properties":{"SecretString":"{\"username\":\"u\",\"password\":\"hunter22\"}"}}}}`, 1},
		{"secret template in Fn::Join", `{"Resources":{"S":{"Properties":{"T":{"Fn::Join":["",["{\"host\":\"",{"Ref":"H"},"\",\"password\":\"hunter22\"}"]]}}}}}`, 1},
		{"token in Fn::Join", `{"Resources":{"S":{"Properties":{"T":{"Fn::Join":["",["{\"password\":\"",{"Ref":"H"},"\"}"]]}}}}}`, 0},
		{"ECS environment pair", `{"Resources":{"T":{"Properties":{"Environment":[{"Name":"DB_PASSWORD","Value":"hunter22"}]}}}}`, 1},
		{"ECS secret pair", `{"Resources":{"T":{"Properties":{"Secrets":[{"Name":"DB_PASSWORD","ValueFrom":{"Ref":"S"}}]}}}}`, 0},
		{"generator settings", `{"Resources":{"S":{"Properties":{"GenerateSecretString":{"GenerateStringKey":"password","PasswordLength":32},"Parameters":{"password_encryption":"scram-sha-256"},"PGROTATE_PASSWORD_LENGTH":"32"}}}}`, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := LiteralPasswords(parse(t, tc.tmpl)); len(got) != tc.want {
				t.Errorf("found %v, want %d finding(s)", got, tc.want)
			}
		})
	}
}

func TestCycle(t *testing.T) {
	acyclic := parse(t, `{"Resources":{
		"Fn":{"Properties":{"Env":{"Fn::Join":["",["arn:",{"Ref":"AWS::Partition"},":states:::stateMachine:x"]]}}},
		"Sm":{"Properties":{"Subs":{"A":{"Fn::GetAtt":["Fn","Arn"]}}}}}}`)
	if c := Cycle(acyclic); c != nil {
		t.Errorf("Cycle = %v, want none", c)
	}
	cyclic := parse(t, `{"Resources":{
		"Fn":{"Properties":{"Env":{"Ref":"Sm"}}},
		"Sm":{"Properties":{"Subs":{"A":{"Fn::Sub":"${Fn.Arn}"}}}}}}`)
	if c := Cycle(cyclic); len(c) < 3 || c[0] != c[len(c)-1] {
		t.Errorf("Cycle = %v, want a closed path through Fn and Sm", c)
	}
	dependsOn := parse(t, `{"Resources":{"A":{"DependsOn":["B"]},"B":{"DependsOn":"A"}}}`)
	if c := Cycle(dependsOn); c == nil {
		t.Error("DependsOn cycle not found")
	}
}

func TestStatements(t *testing.T) {
	tmpl := parse(t, `{"Resources":{
		"R1":{"Type":"AWS::IAM::Role","Properties":{}},
		"R2":{"Type":"AWS::IAM::Role","Properties":{"Policies":[{"PolicyDocument":{"Statement":[{"Effect":"Allow","Action":"secretsmanager:*","Resource":"arn"}]}}]}},
		"P":{"Type":"AWS::IAM::Policy","Properties":{"Roles":[{"Ref":"R1"}],"PolicyDocument":{"Statement":[
			{"Effect":"Allow","Action":["secretsmanager:GetRandomPassword"],"Resource":"*"},
			{"Effect":"Allow","Action":["secretsmanager:GetSecretValue"],"Resource":"*"},
			{"Effect":"Allow","Action":["ecs:Update*"],"Resource":"arn"},
			{"Effect":"Deny","Action":["ecs:UpdateService"],"Resource":"*"}]}}}}}`)
	stmts := Statements(tmpl)
	if got := RolesWith(stmts, "ecs:UpdateService"); !slices.Equal(got, []string{"R1"}) {
		t.Errorf("RolesWith(ecs:UpdateService) = %v, want [R1] (wildcard matched, Deny ignored)", got)
	}
	if got := RolesWith(stmts, "secretsmanager:PutSecretValue"); !slices.Equal(got, []string{"R2"}) {
		t.Errorf("RolesWith(PutSecretValue) = %v, want [R2] via secretsmanager:*", got)
	}
	w := SecretWildcards(stmts)
	if len(w) != 2 {
		t.Errorf("SecretWildcards = %+v, want GetSecretValue on * and secretsmanager:* (not GetRandomPassword)", w)
	}
}

func TestCheckSuppressionReasons(t *testing.T) {
	ft := &fakeT{}
	CheckSuppressionReasons(ft, []Suppression{
		{Resource: "A", Rule: "AwsSolutions-IAM5", Reason: "TODO: explain this before release please ok"},
		{Resource: "B", Rule: "AwsSolutions-IAM5", Reason: "short"},
		{Resource: "C", Rule: "AwsSolutions-IAM5", Reason: "X-Ray PutTraceSegments supports no resource-level permissions at all."},
	})
	if ft.errors != 2 {
		t.Errorf("CheckSuppressionReasons flagged %d, want 2 (placeholder and short)", ft.errors)
	}
}

type fakeT struct {
	testing.TB
	errors int
}

func (f *fakeT) Helper()               {}
func (f *fakeT) Errorf(string, ...any) { f.errors++ }
