package rotation_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/jsii-runtime-go"

	"github.com/pgrotate/pgrotate/cdk/internal/cdktest"
	"github.com/pgrotate/pgrotate/cdk/rotation"
	"github.com/pgrotate/pgrotate/statemachine"
)

// servicePolicyStatement returns the one Allow statement of doc whose principal is the
// service, failing t unless there is exactly one.
func servicePolicyStatement(t *testing.T, what string, doc any, service string) map[string]any {
	t.Helper()
	d, _ := doc.(map[string]any)
	sts, _ := d["Statement"].([]any)
	var found []map[string]any
	for _, st := range sts {
		m, _ := st.(map[string]any)
		if m["Effect"] != "Allow" {
			continue
		}
		if p, _ := m["Principal"].(map[string]any); cdktest.JSON(p["Service"]) == `"`+service+`"` {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s: %d Allow statements for %s, want 1: %s", what, len(found), service, cdktest.JSON(doc))
	}
	return found[0]
}

func secretFromPartialArn(p *rotation.Props, id, arn string) awssecretsmanager.ISecret {
	return awssecretsmanager.Secret_FromSecretPartialArn(p.Vpc.Stack(), jsii.String(id), jsii.String(arn))
}

func getAttArn(id string) string { return fmt.Sprintf(`{"Fn::GetAtt":["%s","Arn"]}`, id) }

// TestTopicPolicyLetsServicesPublish: the topic policy CDK writes for EnforceSSL replaces
// SNS's default policy, so without these statements CloudWatch and EventBridge cannot
// publish and the alarms reach no one.
func TestTopicPolicyLetsServicesPublish(t *testing.T) {
	stack, r := newStack(t, nil)
	tmpl := cdktest.Template(t, stack)
	topicID := cdktest.LogicalID(stack, r.Topic.(awssns.Topic))

	policies := cdktest.Resources(tmpl, "AWS::SNS::TopicPolicy")
	if len(policies) != 1 {
		t.Fatalf("topic policies: %d, want 1", len(policies))
	}
	var doc any
	for _, pol := range policies {
		p := cdktest.Props(pol)
		if got := cdktest.JSON(p["Topics"]); got != `[{"Ref":"`+topicID+`"}]` {
			t.Fatalf("topic policy applies to %s, want the alarm topic %s", got, topicID)
		}
		doc = p["PolicyDocument"]
	}

	alarms := []string{cdktest.LogicalID(stack, r.Alarm), cdktest.LogicalID(stack, r.FunctionErrorsAlarm)}
	rule := cdktest.LogicalID(stack, r.RotationFailedRule)
	for _, tc := range []struct {
		service    string
		sourceArns []string // want aws:SourceArn to be exactly these
	}{
		{"cloudwatch.amazonaws.com", []string{getAttArn(alarms[0]), getAttArn(alarms[1])}},
		{"events.amazonaws.com", []string{getAttArn(rule)}},
	} {
		t.Run(tc.service, func(t *testing.T) {
			st := servicePolicyStatement(t, "topic policy", doc, tc.service)
			if got := cdktest.JSON(st["Action"]); got != `"sns:Publish"` {
				t.Errorf("actions %s, want only sns:Publish", got)
			}
			if got := cdktest.JSON(st["Resource"]); got != `{"Ref":"`+topicID+`"}` {
				t.Errorf("resource %s, want the topic", got)
			}
			cond, _ := st["Condition"].(map[string]any)
			if got := cdktest.JSON(cond["StringEquals"]); got != `{"aws:SourceAccount":"`+account+`"}` {
				t.Errorf("StringEquals %s, want aws:SourceAccount %s", got, account)
			}
			arnEq, _ := cond["ArnEquals"].(map[string]any)
			got := arnEq["aws:SourceArn"]
			list, ok := got.([]any)
			if !ok {
				list = []any{got}
			}
			var gotArns []string
			for _, a := range list {
				gotArns = append(gotArns, cdktest.JSON(a))
			}
			if !slices.Equal(gotArns, tc.sourceArns) {
				t.Errorf("aws:SourceArn %v, want %v", gotArns, tc.sourceArns)
			}
		})
	}

	// The topic is encrypted: both services must be able to use its key.
	keyID := ""
	if p := cdktest.Props(cdktest.Resources(tmpl, "AWS::SNS::Topic")[topicID]); p != nil {
		keyID = strings.TrimSuffix(strings.TrimPrefix(cdktest.JSON(p["KmsMasterKeyId"]), `{"Fn::GetAtt":["`), `","Arn"]}`)
	}
	key := cdktest.Resources(tmpl, "AWS::KMS::Key")[keyID]
	if key == nil {
		t.Fatalf("topic key %q not found", keyID)
	}
	for _, service := range []string{"cloudwatch.amazonaws.com", "events.amazonaws.com"} {
		st := servicePolicyStatement(t, "topic key policy", cdktest.Props(key)["KeyPolicy"], service)
		if got := cdktest.JSON(st["Action"]); got != `["kms:Decrypt","kms:GenerateDataKey*"]` {
			t.Errorf("key policy for %s allows %s, want kms:Decrypt and kms:GenerateDataKey*", service, got)
		}
	}
}

// alarmMetrics returns the metric stats of an alarm's Metrics by id.
func alarmMetrics(t *testing.T, alarm map[string]any) (expression string, stats map[string]map[string]any) {
	t.Helper()
	metrics, _ := cdktest.Props(alarm)["Metrics"].([]any)
	stats = map[string]map[string]any{}
	for _, m := range metrics {
		mm, _ := m.(map[string]any)
		if e, ok := mm["Expression"].(string); ok {
			expression = e
			continue
		}
		stat, _ := mm["MetricStat"].(map[string]any)
		metric, _ := stat["Metric"].(map[string]any)
		id, _ := mm["Id"].(string)
		stats[id] = metric
	}
	return expression, stats
}

// dims renders a metric's dimensions as name=value, sorted.
func dims(metric map[string]any) []string {
	var out []string
	list, _ := metric["Dimensions"].([]any)
	for _, d := range list {
		m, _ := d.(map[string]any)
		out = append(out, fmt.Sprintf("%v=%s", m["Name"], cdktest.JSON(m["Value"])))
	}
	slices.Sort(out)
	return out
}

// TestRotationFunctionErrorsAlarm: errors of the rotation function alarm the topic unless
// they come through the state machine's alias, whose failures (a failed Promote)
// FailedRotations already reports.
func TestRotationFunctionErrorsAlarm(t *testing.T) {
	stack, r := newStack(t, nil)
	tmpl := cdktest.Template(t, stack)
	alarms := cdktest.Resources(tmpl, "AWS::CloudWatch::Alarm")
	alarm := alarms[cdktest.LogicalID(stack, r.FunctionErrorsAlarm)]
	if alarm == nil {
		t.Fatalf("no rotation function errors alarm among %d alarms", len(alarms))
	}
	p := cdktest.Props(alarm)
	topicID := cdktest.LogicalID(stack, r.Topic.(awssns.Topic))
	if got := cdktest.JSON(p["AlarmActions"]); got != `[{"Ref":"`+topicID+`"}]` {
		t.Errorf("alarm actions %s, want the topic", got)
	}
	if p["Threshold"] != 1.0 || p["ComparisonOperator"] != "GreaterThanOrEqualToThreshold" || p["TreatMissingData"] != "notBreaching" {
		t.Errorf("alarm fires on %v %v (missing data %v), want >= 1, missing data not breaching",
			p["ComparisonOperator"], p["Threshold"], p["TreatMissingData"])
	}

	expr, stats := alarmMetrics(t, alarm)
	if expr != "FILL(all, 0) - FILL(viaStateMachine, 0)" {
		t.Errorf("expression %q, want all errors minus those through the state machine's alias", expr)
	}
	rotator := `{"Ref":"` + cdktest.LogicalID(stack, r.Functions[rotation.Rotator]) + `"}`
	want := map[string][]string{
		"all": {"FunctionName=" + rotator},
		"viaStateMachine": {"FunctionName=" + rotator,
			fmt.Sprintf(`Resource={"Fn::Join":["",[%s,":%s"]]}`, rotator, rotation.StateMachineAlias)},
	}
	for id, wantDims := range want {
		m := stats[id]
		if m["Namespace"] != "AWS/Lambda" || m["MetricName"] != "Errors" {
			t.Errorf("%s: %v %v, want AWS/Lambda Errors", id, m["Namespace"], m["MetricName"])
		}
		if got := dims(m); !slices.Equal(got, wantDims) {
			t.Errorf("%s dimensions %v, want %v", id, got, wantDims)
		}
	}

	// The subtraction holds only if the state machine reaches the rotation function through
	// the alias alone: its definition names the alias, and its role may invoke only that.
	aliasID := cdktest.LogicalID(stack, r.StateMachineAlias)
	aliasRef := `{"Ref":"` + aliasID + `"}`
	if a := cdktest.Props(cdktest.Resources(tmpl, "AWS::Lambda::Alias")[aliasID]); a["FunctionVersion"] != "$LATEST" ||
		a["Name"] != rotation.StateMachineAlias || cdktest.JSON(a["FunctionName"]) != rotator {
		t.Errorf("alias %s, want %s of the rotation function at $LATEST", cdktest.JSON(a), rotation.StateMachineAlias)
	}
	subs, _ := stateMachine(t, tmpl)["DefinitionSubstitutions"].(map[string]any)
	if got := cdktest.JSON(subs[statemachine.RotationFunctionArn]); got != aliasRef {
		t.Errorf("%s = %s, want the alias %s", statemachine.RotationFunctionArn, got, aliasRef)
	}
	smRole := cdktest.LogicalID(stack, r.StateMachine.Role())
	rotatorArn := getAttArn(cdktest.LogicalID(stack, r.Functions[rotation.Rotator]))
	invokesAlias := false
	for _, s := range cdktest.Statements(tmpl) {
		if s.Role != smRole || !s.HasAction("lambda:InvokeFunction") {
			continue
		}
		for _, res := range s.Resources {
			switch cdktest.JSON(res) {
			case rotatorArn:
				t.Errorf("the state machine may invoke the unqualified rotation function: its errors would count as Secrets Manager's")
			case aliasRef:
				invokesAlias = true
			}
		}
	}
	if !invokesAlias {
		t.Errorf("the state machine may not invoke the rotation function's alias")
	}
}

// TestRotationFailedEvents: Secrets Manager's RotationFailed events of the app secret reach
// the topic.
func TestRotationFailedEvents(t *testing.T) {
	for _, tc := range []struct {
		name     string
		mutate   func(*rotation.Props)
		secretID string
	}{
		{"complete ARN", nil, `["` + appSecretArn + `"]`},
		{"partial ARN", func(p *rotation.Props) {
			p.AppSecret = secretFromPartialArn(p, "AppPartial", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:app/db")
		}, `[{"prefix":"arn:aws:secretsmanager:eu-west-1:123456789012:secret:app/db"}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stack, r := newStack(t, tc.mutate)
			tmpl := cdktest.Template(t, stack)
			rules := cdktest.Resources(tmpl, "AWS::Events::Rule")
			// The evidence function's two rules are its own (evidence_test.go).
			delete(rules, cdktest.LogicalID(stack, r.Evidence.ExecutionRule))
			delete(rules, cdktest.LogicalID(stack, r.Evidence.FailureRule))
			if len(rules) != 1 {
				t.Fatalf("event rules besides the evidence function's: %d, want 1", len(rules))
			}
			p := cdktest.Props(rules[cdktest.LogicalID(stack, r.RotationFailedRule)])
			want := `{"detail":{"additionalEventData":{"SecretId":` + tc.secretID + `},"eventName":["RotationFailed"],` +
				`"eventSource":["secretsmanager.amazonaws.com"]},"detail-type":["AWS Service Event via CloudTrail"],` +
				`"source":["aws.secretsmanager"]}`
			if got := cdktest.JSON(p["EventPattern"]); got != want {
				t.Errorf("event pattern\n got %s\nwant %s", got, want)
			}
			if p["State"] != "ENABLED" {
				t.Errorf("rule state %v, want ENABLED", p["State"])
			}
			targets, _ := p["Targets"].([]any)
			if len(targets) != 1 {
				t.Fatalf("targets: %s, want the topic alone", cdktest.JSON(targets))
			}
			target, _ := targets[0].(map[string]any)
			topicID := cdktest.LogicalID(stack, r.Topic.(awssns.Topic))
			if got := cdktest.JSON(target["Arn"]); got != `{"Ref":"`+topicID+`"}` {
				t.Errorf("target %s, want the topic", got)
			}
			if tr := cdktest.JSON(target["InputTransformer"]); !strings.Contains(tr, "$.detail.errorMessage") {
				t.Errorf("input transformer %s does not forward the error message", tr)
			}
		})
	}
}
