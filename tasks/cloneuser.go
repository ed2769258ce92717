package tasks

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pgrotate/pgrotate/workflow"
)

// CloneUser makes sure the pending user exists as the twin of the active user (created on
// the first rotation) and that the two have the same privileges.
type CloneUser struct {
	Secrets secretReader
	DB      userCloner
	Log     *slog.Logger
}

// Handle clones the active user into the pending one, after Preflight.
func (h *CloneUser) Handle(ctx context.Context, st workflow.State) (workflow.State, error) {
	return run(ctx, h.Log, workflow.StateCloneUser, st, workflow.State.CheckPreflighted, h.clone)
}

func (h *CloneUser) clone(ctx context.Context, st workflow.State) (workflow.State, error) {
	r, err := loadAdmin(ctx, h.Secrets, st)
	if err != nil {
		return st, err
	}
	admin := r.adminLogin()
	if err := h.DB.CloneUser(ctx, admin, st.ActiveUser, st.PendingUser); err != nil {
		return st, fmt.Errorf("clone %s into %s: %w", st.ActiveUser, st.PendingUser, err)
	}
	if err := h.DB.CheckParity(ctx, admin, st.ActiveUser, st.PendingUser); err != nil {
		return st, fmt.Errorf("check privileges of %s and %s: %w", st.ActiveUser, st.PendingUser, err)
	}
	logger(h.Log).InfoContext(ctx, "users are twins", "secret", st.SecretARN, "version", st.Token, "active_user", st.ActiveUser, "pending_user", st.PendingUser)
	return st, nil
}
