package tasks

import (
	"context"
	"fmt"

	"github.com/pgrotate/pgrotate/workflow"
)

// setPassword sets the pending user's password.
func setPassword(ctx context.Context, h *SetPassword, r rotation, st workflow.State) (workflow.State, error) {
	// asAdmin's loadRotation proved the token is still AWSPENDING and AWSCURRENT still names
	// the other user: the user in AWSCURRENT is never altered (invariant 2).
	if r.pending.Username == r.current.Username {
		return st, &workflow.InvalidSecret{Secret: "pending", Field: "username", Reason: "equals the AWSCURRENT user"}
	}
	// Invariant 3 again, right before the change: a redrive may come long after Preflight.
	if err := pendingSessions(ctx, h.db, r, r.current.Replicas); err != nil {
		return st, err
	}
	lsn, changed, err := h.db.SetPassword(ctx, r.adminLogin(), r.pending.Username, r.pending.Password)
	if err != nil {
		return st, fmt.Errorf("set the password of %s: %w", r.pending.Username, err)
	}
	st.LSN = lsn
	logger(h.log).InfoContext(ctx, "password set", "secret", st.SecretARN, "version", st.Token, "user", r.pending.Username, "changed", changed, "lsn", lsn)
	return st, nil
}
