package statemachine_test

import (
	"slices"
	"testing"

	"github.com/pgrotate/pgrotate/statemachine"
	"github.com/pgrotate/pgrotate/workflow"
)

// successors lists the states a top-level state can go to: Next, Default, each Choice's
// Next and each Catch's Next.
func successors(s map[string]any) []string {
	var out []string
	for _, k := range []string{"Next", "Default"} {
		if n, ok := s[k].(string); ok {
			out = append(out, n)
		}
	}
	for _, k := range []string{"Choices", "Catch"} {
		for _, c := range asSlice(s[k]) {
			if n, ok := c.(map[string]any)["Next"].(string); ok {
				out = append(out, n)
			}
		}
	}
	return out
}

// The retirement path: Redeploy succeeds into RetirementPolicy (the grace from the
// definition) and RetireOrDone, which goes to Done when retirement is off and to
// RetirePrevious otherwise. Nothing else leads to RetirePrevious but ResumeAt (a redrive of
// RetirePrevious itself), so a failed or rolled-back Redeploy, which its Catch sends to
// CaughtRedeploy, never retires anything.
func TestRetirementPath(t *testing.T) {
	if statemachine.RetireOff != workflow.RetireOff {
		t.Fatalf("statemachine.RetireOff %q, workflow.RetireOff %q", statemachine.RetireOff, workflow.RetireOff)
	}
	states := render(t)["States"].(map[string]any)
	redeploy := states[workflow.StateRedeploy].(map[string]any)
	if redeploy["Next"] != "RetirementPolicy" {
		t.Fatalf("Redeploy.Next = %v, want RetirementPolicy", redeploy["Next"])
	}
	for _, c := range asSlice(redeploy["Catch"]) {
		if c.(map[string]any)["Next"] != "CaughtRedeploy" {
			t.Fatalf("Redeploy catches to %v", c)
		}
	}
	policy := states["RetirementPolicy"].(map[string]any)
	result, _ := policy["Result"].(map[string]any)
	if policy["Type"] != "Pass" || policy["ResultPath"] != "$.retirement" || policy["Next"] != "RetireOrDone" ||
		result["after"] != testValues()[statemachine.RetirePreviousAfter] || len(result) != 1 {
		t.Fatalf("RetirementPolicy = %v, want a Pass putting {after: <RetirePreviousAfter>} in $.retirement, then RetireOrDone", policy)
	}
	choice := states["RetireOrDone"].(map[string]any)
	choices := asSlice(choice["Choices"])
	if choice["Type"] != "Choice" || choice["Default"] != workflow.StateRetirePrevious || len(choices) != 1 {
		t.Fatalf("RetireOrDone = %v", choice)
	}
	c := choices[0].(map[string]any)
	if c["Variable"] != "$.retirement.after" || c["StringEquals"] != statemachine.RetireOff || c["Next"] != "Done" {
		t.Fatalf("RetireOrDone choice %v, want $.retirement.after == %q → Done", c, statemachine.RetireOff)
	}
	retire := states[workflow.StateRetirePrevious].(map[string]any)
	if retire["Type"] != "Task" || retire["Resource"] != testValues()[statemachine.RetirePreviousFunctionArn] || retire["Next"] != "Done" {
		t.Fatalf("RetirePrevious = %v", retire)
	}
	if retire["ResultPath"] != nil || retire["Parameters"] != nil || retire["InputPath"] != nil {
		t.Fatalf("RetirePrevious must take and return the whole state: %v", retire)
	}

	var into []string
	for name, s := range states {
		if slices.Contains(successors(s.(map[string]any)), workflow.StateRetirePrevious) {
			into = append(into, name)
		}
	}
	slices.Sort(into)
	if want := []string{"ResumeAt", "RetireOrDone"}; !slices.Equal(into, want) {
		t.Fatalf("states leading to RetirePrevious: %v, want %v", into, want)
	}
}
