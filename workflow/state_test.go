package workflow

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
	"time"
)

func TestStateGoldenRoundTrip(t *testing.T) {
	golden, err := os.ReadFile("testdata/state.json")
	if err != nil {
		t.Fatal(err)
	}
	var s State
	dec := json.NewDecoder(bytes.NewReader(golden))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("decode golden state: %v", err)
	}
	if s.PendingUser != Alternate(s.ActiveUser) || len(s.Services) != 2 || s.Promotion == nil || len(s.Rollouts) != 1 {
		t.Fatalf("golden state decoded wrongly: %+v", s)
	}
	if want := time.Date(2026, 11, 26, 19, 40, 0, 0, time.UTC); !s.Promotion.PromotedAt.Equal(want) {
		t.Fatalf("promotedAt = %v, want %v", s.Promotion.PromotedAt, want)
	}
	out, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if !jsonEqual(t, out, golden) {
		t.Fatalf("round trip differs:\n got %s\nwant %s", out, golden)
	}
	if err := s.CheckPreflighted(); err != nil {
		t.Fatalf("golden state should pass CheckPreflighted: %v", err)
	}
}

func TestStateCarriesNoSecretField(t *testing.T) {
	// The State must never grow a field that could hold a secret value.
	for _, forbidden := range []string{"password", "Password", "rotationToken", "RotationToken", "verifier", "secretString"} {
		golden, _ := json.Marshal(State{Services: []Service{{}}, Rollouts: []Rollout{{}}, Primary: &Endpoint{}, Promotion: &PromoteResult{}})
		if bytes.Contains(golden, []byte(forbidden)) {
			t.Errorf("State JSON has a field named like %q", forbidden)
		}
	}
}

func TestCheckPreflighted(t *testing.T) {
	ok := State{SecretARN: "arn:x", Token: "t", ActiveVersion: "v", ActiveUser: "app_user", PendingUser: "app_user_clone", Primary: &Endpoint{Host: "h", Port: 5432}}
	tests := []struct {
		name   string
		mutate func(*State)
		field  string
	}{
		{"ok", func(*State) {}, ""},
		{"no arn", func(s *State) { s.SecretARN = "" }, "secretArn"},
		{"no token", func(s *State) { s.Token = "" }, "token"},
		{"not preflighted", func(s *State) { s.ActiveVersion = "" }, "-"},
		{"pending not alternate", func(s *State) { s.PendingUser = "other" }, "pendingUser"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := ok
			tc.mutate(&s)
			err := s.CheckPreflighted()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			var inv *InvalidSecret
			if !asInvalid(err, &inv) {
				t.Fatalf("want *InvalidSecret, got %T %v", err, err)
			}
			if tc.field != "-" && inv.Field != tc.field {
				t.Fatalf("field = %q, want %q", inv.Field, tc.field)
			}
		})
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

func TestVersions(t *testing.T) {
	v := Versions{"a": {StageCurrent}, "b": {StagePending, "custom"}, "c": nil}
	if v.With(StageCurrent) != "a" || v.With(StagePending) != "b" || v.With(StagePrevious) != "" {
		t.Fatalf("With: %q %q %q", v.With(StageCurrent), v.With(StagePending), v.With(StagePrevious))
	}
	if !v.Has("b", "custom") || v.Has("c", StageCurrent) || v.Has("missing", StageCurrent) {
		t.Fatal("Has answers wrongly")
	}
}
