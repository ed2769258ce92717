package tasks

import (
	"context"
	"fmt"

	"github.com/pgrotate/pgrotate/workflow"
)

// testLogin tries the pending version's login once.
func testLogin(ctx context.Context, h *TestLogin, st workflow.State) (workflow.State, error) {
	pending, err := h.secrets.AppSecret(ctx, st.SecretARN, st.Token)
	if err != nil {
		return st, fmt.Errorf("read AWSPENDING of %s: %w", st.SecretARN, err)
	}
	if pending.Username != st.PendingUser {
		return st, &workflow.InvalidSecret{Secret: "pending", Field: "username", Reason: "differs from the execution's pending user"}
	}
	if err := h.db.Login(ctx, pending.At(pending.Primary())); err != nil {
		return st, fmt.Errorf("log in as %s on the primary: %w", pending.Username, err)
	}
	logger(h.log).InfoContext(ctx, "pending user logs in on the primary", "secret", st.SecretARN, "version", st.Token, "user", pending.Username)
	return st, nil
}
