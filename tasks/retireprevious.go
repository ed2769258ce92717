package tasks

import (
	"context"
	"fmt"
	"time"

	"github.com/pgrotate/pgrotate/workflow"
)

// passwordRetirer expires a password.
type passwordRetirer interface {
	// RetirePassword makes user's password expire grace from now on the admin's server
	// while password still logs in there, and returns its expiry afterwards (zero:
	// none) and, when nothing changed, why. An earlier expiry is kept.
	RetirePassword(ctx context.Context, admin workflow.Target, user string, password workflow.Password, grace time.Duration) (validUntil time.Time, skipped string, err error)
}

// retirePrevious expires the previous user's password, after the redeploy completed.
func retirePrevious(ctx context.Context, h *RetirePrevious, st workflow.State) (workflow.State, error) {
	grace, err := st.Retirement.Grace()
	if err != nil {
		return st, err
	}
	if err := rolloutsCompleted(st); err != nil {
		return st, err
	}
	ret := *st.Retirement
	ret.User, ret.Version, ret.ValidUntil, ret.Skipped = "", "", nil, ""
	st.Retirement = &ret
	skip := func(reason string) (workflow.State, error) {
		ret.Skipped = reason
		logger(h.log).WarnContext(ctx, "previous password not retired", "secret", st.SecretARN, "version", st.Token, "reason", reason)
		return st, nil
	}

	// Staging labels: AWSPREVIOUS moves to the version AWSCURRENT left
	// (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_UpdateSecretVersionStage.html).
	v, err := h.secrets.VersionStages(ctx, st.SecretARN)
	if err != nil {
		return st, fmt.Errorf("read versions of %s: %w", st.SecretARN, err)
	}
	previousVersion := v.Previous()
	if reason := notRetirable(v, st, previousVersion); reason != "" {
		return skip(reason)
	}
	current, previous, admin, err := retireSecrets(ctx, h.secrets, st, previousVersion)
	if err != nil {
		return st, err
	}

	until, skipped, err := h.db.RetirePassword(ctx, admin.In(current.DBName), previous.Username, previous.Password, grace)
	if err != nil {
		return st, fmt.Errorf("retire the password of %s: %w", previous.Username, err)
	}
	ret.User, ret.Version = previous.Username, previousVersion
	if !until.IsZero() {
		u := until.UTC()
		ret.ValidUntil = &u
	}
	if skipped != "" {
		return skip(skipped)
	}
	logger(h.log).InfoContext(ctx, "previous password retired", "secret", st.SecretARN, "version", st.Token,
		"user", previous.Username, "previousVersion", previousVersion, "validUntil", ret.ValidUntil, "grace", grace.String())
	return st, nil
}

// notRetirable says why this execution must not retire AWSPREVIOUS, or "" when it may.
func notRetirable(v workflow.Versions, st workflow.State, previousVersion string) string {
	switch pending := v.Pending(); {
	case v.Stage(st.Token) != workflow.TokenCurrent:
		return "this execution's version is no longer AWSCURRENT"
	case pending != "" && pending != st.Token:
		return "a newer rotation has begun (another version is AWSPENDING); its password change takes the previous user over"
	case previousVersion == "" || previousVersion != st.ActiveVersion:
		return "AWSPREVIOUS is not the version this rotation replaced"
	}
	return ""
}

// retireSecrets reads AWSCURRENT, AWSPREVIOUS and the admin secret, and checks they belong together
// and to this execution.
func retireSecrets(ctx context.Context, s secretReader, st workflow.State, previousVersion string) (current, previous workflow.AppSecret, admin workflow.AdminSecret, err error) {
	current, err = s.AppSecret(ctx, st.SecretARN, st.Token)
	if err != nil {
		return current, previous, admin, fmt.Errorf("read AWSCURRENT of %s: %w", st.SecretARN, err)
	}
	previous, err = s.AppSecret(ctx, st.SecretARN, previousVersion)
	if err != nil {
		return current, previous, admin, fmt.Errorf("read AWSPREVIOUS of %s: %w", st.SecretARN, err)
	}
	// Invariant 2: the user named in AWSCURRENT is never altered.
	if previous.Username == current.Username {
		return current, previous, admin, &workflow.InvalidSecret{Secret: "previous", Field: "username", Reason: "AWSPREVIOUS names the AWSCURRENT user"}
	}
	if current.Username != st.PendingUser || previous.Username != st.ActiveUser {
		return current, previous, admin, &workflow.InvalidSecret{Secret: "previous", Field: "username", Reason: "the users differ from the execution's"}
	}
	if err := workflow.ValidatePending(previous, current); err != nil {
		return current, previous, admin, err
	}
	admin, err = s.AdminSecret(ctx, current.MasterARN)
	if err != nil {
		return current, previous, admin, fmt.Errorf("read admin secret: %w", err)
	}
	return current, previous, admin, workflow.ValidatePair(current, admin)
}

// rolloutsCompleted checks what the Redeploy Map left: one COMPLETED rollout per service.
// The state machine reaches RetirePrevious only then; a state that says otherwise is not
// acted on.
func rolloutsCompleted(st workflow.State) error {
	if len(st.Rollouts) != len(st.Services) {
		return &workflow.InvalidSecret{Secret: "state", Field: "rollouts", Reason: fmt.Sprintf("%d rollouts for %d services", len(st.Rollouts), len(st.Services))}
	}
	for _, r := range st.Rollouts {
		if !r.Done || r.RolloutState != "COMPLETED" {
			return &workflow.InvalidSecret{Secret: "state", Field: "rollouts", Reason: fmt.Sprintf("the rollout of %s is %s, not COMPLETED", r.Service, r.RolloutState)}
		}
	}
	return nil
}
