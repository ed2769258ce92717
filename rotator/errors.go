package rotator

import (
	"fmt"
	"strings"
)

// The rotation function's own error names. Secrets Manager, not Step Functions, receives
// them (as the Lambda errorType: the Go type name), so they are not in workflow.ErrorNames.

// RotationMisconfigured is the outcome of a failed rotation-configuration test (testSecret
// of a version that no rotation execution belongs to, see Rotator.CheckConfiguration): each
// problem names what is misconfigured. Nothing was changed.
type RotationMisconfigured struct {
	Secret   string
	Problems []string
}

func (e *RotationMisconfigured) Error() string {
	return fmt.Sprintf("rotation of %s is misconfigured: %s", e.Secret, strings.Join(e.Problems, "; "))
}

// RotationStuck reports a rotation that can neither be resumed nor restarted: its executions
// can no longer be redriven and no successor may be started. Removing AWSPENDING from the
// version ends it; the next rotation then starts afresh.
type RotationStuck struct {
	Secret  string
	Version string
	Reason  string
}

func (e *RotationStuck) Error() string {
	return fmt.Sprintf("rotation of %s to version %s is stuck: %s; clear it with: %s", e.Secret, e.Version, e.Reason, e.Command())
}

// Command is the one command that clears the stuck rotation.
func (e *RotationStuck) Command() string {
	return fmt.Sprintf("aws secretsmanager update-secret-version-stage --secret-id %s --version-stage AWSPENDING --remove-from-version-id %s",
		shellQuote(e.Secret), shellQuote(e.Version))
}

// shellQuote quotes s for a POSIX shell when it holds anything but safe characters.
func shellQuote(s string) string {
	safe := s != ""
	for _, r := range s {
		if !(('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9') || strings.ContainsRune("-_.:/@+=", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
