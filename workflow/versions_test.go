package workflow

import (
	"errors"
	"testing"
)

func TestVersionsStage(t *testing.T) {
	v := Versions{
		"cur":      {StageCurrent},
		"promoted": {StageCurrent, StagePending}, // AWSPENDING stays on a promoted version
		"pend":     {StagePending},
		"prev":     {StagePrevious},
	}
	tests := []struct {
		token      string
		want       TokenStage
		superseded string // NotPending's reason, "" for nil
	}{
		{"cur", TokenCurrent, "the version is already AWSCURRENT"},
		{"promoted", TokenCurrent, "the version is already AWSCURRENT"},
		{"pend", TokenPending, ""},
		{"prev", TokenGone, "the version is no longer AWSPENDING"},
		{"missing", TokenGone, "the version is no longer AWSPENDING"},
	}
	for _, tc := range tests {
		t.Run(tc.token, func(t *testing.T) {
			if got := v.Stage(tc.token); got != tc.want {
				t.Errorf("Stage(%s) = %d, want %d", tc.token, got, tc.want)
			}
			err := v.NotPending(tc.token)
			var rs *RotationSuperseded
			switch {
			case tc.superseded == "" && err != nil:
				t.Errorf("NotPending(%s) = %v, want nil", tc.token, err)
			case tc.superseded != "" && (!errors.As(err, &rs) || rs.Reason != tc.superseded || rs.Version != tc.token):
				t.Errorf("NotPending(%s) = %v, want *RotationSuperseded %q", tc.token, err, tc.superseded)
			}
		})
	}
	if v := (Versions{"a": {StageCurrent}, "b": {StagePending}, "c": {StagePrevious}}); v.Current() != "a" || v.Pending() != "b" || v.Previous() != "c" {
		t.Errorf("Current, Pending, Previous = %q %q %q", v.Current(), v.Pending(), v.Previous())
	}
}
