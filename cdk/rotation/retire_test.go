package rotation_test

import (
	"testing"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/pgrotate/pgrotate/cdk/internal/cdktest"
	"github.com/pgrotate/pgrotate/cdk/rotation"
	"github.com/pgrotate/pgrotate/statemachine"
)

// RetirePreviousAfter reaches the state machine as its substitution, a Go duration the
// definition's RetirementPolicy hands to RetirePrevious; unset, retirement is off.
func TestRetirePreviousAfter(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after awscdk.Duration
		want  string
	}{
		{"off by default", nil, statemachine.RetireOff},
		{"a day", awscdk.Duration_Days(jsii.Number(1)), "24h0m0s"},
		{"ninety minutes", awscdk.Duration_Minutes(jsii.Number(90)), "1h30m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stack, r := newStack(t, func(p *rotation.Props) { p.RetirePreviousAfter = tc.after })
			tmpl := cdktest.Template(t, stack)
			sm := cdktest.Props(cdktest.Resources(tmpl, "AWS::StepFunctions::StateMachine")[cdktest.LogicalID(stack, r.StateMachine)])
			subs, _ := sm["DefinitionSubstitutions"].(map[string]any)
			got, _ := subs[statemachine.RetirePreviousAfter].(string)
			if got != tc.want {
				t.Fatalf("RetirePreviousAfter substitution = %v, want %q", subs[statemachine.RetirePreviousAfter], tc.want)
			}
			if got != statemachine.RetireOff {
				if d, err := time.ParseDuration(got); err != nil || d <= 0 {
					t.Fatalf("%q is not a Go duration the handler accepts: %v", got, err)
				}
			}
			// Render accepts what the construct substitutes.
			values := map[string]string{}
			for _, k := range statemachine.Keys() {
				values[k] = "arn:aws:lambda:eu-west-1:123456789012:function:x"
			}
			values[statemachine.RetirePreviousAfter] = got
			if _, err := statemachine.Render(values); err != nil {
				t.Fatalf("Render with %q: %v", got, err)
			}
		})
	}
}
