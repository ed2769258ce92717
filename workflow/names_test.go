package workflow

import (
	"errors"
	"strings"
	"testing"
)

func TestAlternate(t *testing.T) {
	tests := map[string]string{
		"app_user":       "app_user_clone",
		"app_user_clone": "app_user",
		"x":              "x_clone",
		"_clone":         "_clone_clone",
		"a_clone_clone":  "a_clone",
	}
	for in, want := range tests {
		if got := Alternate(in); got != want {
			t.Errorf("Alternate(%q) = %q, want %q", in, got, want)
		}
		if ValidateRoleName(in) == nil && Alternate(Alternate(in)) != in {
			t.Errorf("Alternate is not an involution on the valid name %q", in)
		}
	}
}

func TestValidateRoleName(t *testing.T) {
	ok := []string{"app_user", "app_user_clone", "A", "_x", "user1", strings.Repeat("a", 57), strings.Repeat("a", 57) + "_clone"}
	for _, name := range ok {
		if err := ValidateRoleName(name); err != nil {
			t.Errorf("ValidateRoleName(%q) = %v, want nil", name, err)
		}
	}
	bad := map[string]string{
		"empty":              "",
		"double quote":       `app"user`,
		"single quote":       "app'user",
		"semicolon":          "app;DROP ROLE x",
		"backslash":          `app\user`,
		"space":              "app user",
		"non-ASCII":          "appé",
		"emoji":              "app🙂",
		"leading digit":      "1app",
		"dash":               "app-user",
		"nul":                "app\x00user",
		"newline":            "app\nuser",
		"reserved pg_":       "pg_monitor",
		"clone does not fit": strings.Repeat("a", 58),
		"63 bytes":           strings.Repeat("a", 63),
		"64 bytes":           strings.Repeat("a", 64),
		"clone 64 bytes":     strings.Repeat("a", 58) + "_clone",
		"injection":          `x"; DROP TABLE canary; --`,
		"double clone":       "a_clone_clone",
	}
	for name, role := range bad {
		t.Run(name, func(t *testing.T) {
			err := ValidateRoleName(role)
			var inv *InvalidRoleName
			if !errors.As(err, &inv) {
				t.Fatalf("want *InvalidRoleName, got %v", err)
			}
			if strings.ContainsAny(inv.Quoted, "\n\x00") {
				t.Fatalf("error renders control characters raw: %q", inv.Quoted)
			}
		})
	}
}

func TestErrorNamesAreTypeNames(t *testing.T) {
	errs := []error{&InvalidSecret{}, &InvalidRoleName{}, &ActiveUserMissing{}, &PrivilegeMismatch{}, &CredentialRejected{},
		&ReplicaNotReady{}, &PendingUserInUse{}, &RotationSuperseded{}, &ServiceNotSteady{}, &DeploymentFailed{}, &RolloutTimedOut{},
		&DatabaseUnavailable{}, &StepFailed{}}
	if len(errs) != len(ErrorNames) {
		t.Fatalf("%d error types, %d names", len(errs), len(ErrorNames))
	}
	for i, err := range errs {
		if got := typeName(err); got != ErrorNames[i] {
			t.Errorf("error %d is %s, ErrorNames says %s", i, got, ErrorNames[i])
		}
		if err.Error() == "" {
			t.Errorf("%s has an empty message", ErrorNames[i])
		}
	}
}
