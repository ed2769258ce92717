package tasks

import (
	"context"
	"fmt"

	"github.com/pgrotate/pgrotate/workflow"
)

// cloneUser clones the active user into the pending one.
func cloneUser(ctx context.Context, h *CloneUser, r rotation, st workflow.State) (workflow.State, error) {
	admin := r.adminLogin()
	if err := h.db.CloneUser(ctx, admin, st.ActiveUser, st.PendingUser); err != nil {
		return st, fmt.Errorf("clone %s into %s: %w", st.ActiveUser, st.PendingUser, err)
	}
	if err := h.db.CheckParity(ctx, admin, st.ActiveUser, st.PendingUser); err != nil {
		return st, fmt.Errorf("check privileges of %s and %s: %w", st.ActiveUser, st.PendingUser, err)
	}
	logger(h.log).InfoContext(ctx, "users are twins", "secret", st.SecretARN, "version", st.Token, "active_user", st.ActiveUser, "pending_user", st.PendingUser)
	return st, nil
}
