package tasks

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pgrotate/pgrotate/workflow"
)

// SetPassword gives the pending user the password of the AWSPENDING version, on the primary
// only (replicas follow by WAL), and records the primary's LSN after the change.
type SetPassword struct {
	Secrets secretReader
	DB      passwordSetter
	Log     *slog.Logger
}

// Handle runs the step.
func (h *SetPassword) Handle(ctx context.Context, st workflow.State) (workflow.State, error) {
	if err := st.CheckPreflighted(); err != nil {
		return fail(ctx, h.Log, workflow.StateSetPassword, st, err)
	}
	// loadRotation proves the token is still AWSPENDING and AWSCURRENT still names the
	// other user: the user in AWSCURRENT is never altered (invariant 2).
	r, err := loadAdmin(ctx, h.Secrets, st)
	if err != nil {
		return fail(ctx, h.Log, workflow.StateSetPassword, st, err)
	}
	if r.pending.Username == r.current.Username {
		return fail(ctx, h.Log, workflow.StateSetPassword, st, &workflow.InvalidSecret{Secret: "pending", Field: "username", Reason: "equals the AWSCURRENT user"})
	}
	// Invariant 3 again, right before the change: a redrive may come long after Preflight.
	if err := pendingSessions(ctx, h.DB, r, r.current.Replicas); err != nil {
		return fail(ctx, h.Log, workflow.StateSetPassword, st, err)
	}
	admin := adminAt(r.admin, r.current)
	lsn, changed, err := h.DB.SetPassword(ctx, admin, r.pending.Username, r.pending.Password)
	if err != nil {
		return fail(ctx, h.Log, workflow.StateSetPassword, st, fmt.Errorf("set the password of %s: %w", r.pending.Username, err))
	}
	st.LSN = lsn
	logger(h.Log).InfoContext(ctx, "password set", "secret", st.SecretARN, "version", st.Token, "user", r.pending.Username, "changed", changed, "lsn", lsn)
	return st, nil
}
