package rotation_test

import (
	"strings"
	"testing"

	"github.com/pgrotate/pgrotate/cdk/internal/cdktest"
	"github.com/pgrotate/pgrotate/cdk/rotation"
	"github.com/pgrotate/pgrotate/lambdas/spec"
)

// The rotation function carries the discovery tags the pgrotate CLI reads (GetFunction):
// the state machine's formatted ARN (the value of its PGROTATE_STATE_MACHINE_ARN), the
// Preflight function's ARN, and the evidence bucket and prefix; no other function is tagged
// with them, and no cycle comes of it.
func TestDiscoveryTags(t *testing.T) {
	tests := []struct {
		name   string
		prefix string
	}{
		{"no evidence prefix", ""},
		{"an evidence prefix", "pgrotate/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stack, r := newStack(t, func(p *rotation.Props) { p.Evidence.Prefix = tc.prefix })
			tmpl := cdktest.Template(t, stack)
			if c := cdktest.Cycle(tmpl); len(c) > 0 {
				t.Fatalf("dependency cycle: %v", c)
			}
			fns := cdktest.Resources(tmpl, "AWS::Lambda::Function")
			rotator := cdktest.Props(fns[cdktest.LogicalID(stack, r.Functions[rotation.Rotator])])
			tags := map[string]string{}
			for _, tag := range rotator["Tags"].([]any) {
				kv := tag.(map[string]any)
				tags[kv["Key"].(string)] = cdktest.JSON(kv["Value"])
			}
			env := rotator["Environment"].(map[string]any)["Variables"].(map[string]any)
			preflightID := cdktest.LogicalID(stack, r.Functions[rotation.Preflight])
			bucketID := cdktest.LogicalID(stack, r.Evidence.Bucket)
			want := map[string]string{
				spec.TagStateMachine:      cdktest.JSON(env[spec.EnvStateMachineARN]),
				spec.TagPreflightFunction: `{"Fn::GetAtt":["` + preflightID + `","Arn"]}`,
				spec.TagEvidenceBucket:    `{"Ref":"` + bucketID + `"}`,
			}
			if tc.prefix != "" {
				want[spec.TagEvidencePrefix] = `"` + tc.prefix + `"`
			}
			for k, v := range want {
				if tags[k] != v {
					t.Errorf("tag %s = %s, want %s", k, tags[k], v)
				}
			}
			if _, ok := tags[spec.TagEvidencePrefix]; ok && tc.prefix == "" {
				t.Errorf("tag %s set without a prefix", spec.TagEvidencePrefix)
			}
			for id, fn := range fns {
				if id == cdktest.LogicalID(stack, r.Functions[rotation.Rotator]) {
					continue
				}
				if tagsOf := cdktest.JSON(cdktest.Props(fn)["Tags"]); tagsOf != "null" && strings.Contains(tagsOf, spec.TagStateMachine) {
					t.Errorf("function %s carries the discovery tags", id)
				}
			}
			for id, role := range cdktest.Resources(tmpl, "AWS::IAM::Role") {
				if strings.Contains(cdktest.JSON(cdktest.Props(role)["Tags"]), spec.TagStateMachine) {
					t.Errorf("role %s carries the discovery tags", id)
				}
			}
		})
	}
}
