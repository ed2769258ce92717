package tasks

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pgrotate/pgrotate/workflow"
)

// TestLogin logs in on the primary with the AWSPENDING version.
type TestLogin struct {
	Secrets appSecrets
	DB      loginChecker
	Log     *slog.Logger
}

// Handle tries the pending version's login once, after Preflight.
func (h *TestLogin) Handle(ctx context.Context, st workflow.State) (workflow.State, error) {
	return run(ctx, h.Log, workflow.StateTestLogin, st, workflow.State.CheckPreflighted, h.login)
}

func (h *TestLogin) login(ctx context.Context, st workflow.State) (workflow.State, error) {
	pending, err := h.Secrets.AppSecret(ctx, st.SecretARN, st.Token)
	if err != nil {
		return st, fmt.Errorf("read AWSPENDING of %s: %w", st.SecretARN, err)
	}
	if pending.Username != st.PendingUser {
		return st, &workflow.InvalidSecret{Secret: "pending", Field: "username", Reason: "differs from the execution's pending user"}
	}
	if err := h.DB.Login(ctx, pending.At(pending.Primary())); err != nil {
		return st, fmt.Errorf("log in as %s on the primary: %w", pending.Username, err)
	}
	logger(h.Log).InfoContext(ctx, "pending user logs in on the primary", "secret", st.SecretARN, "version", st.Token, "user", pending.Username)
	return st, nil
}
