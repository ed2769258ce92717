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

// Handle sets the pending user's password, after Preflight.
func (h *SetPassword) Handle(ctx context.Context, st workflow.State) (workflow.State, error) {
	return run(ctx, h.Log, workflow.StateSetPassword, st, workflow.State.CheckPreflighted, h.set)
}

func (h *SetPassword) set(ctx context.Context, st workflow.State) (workflow.State, error) {
	// loadRotation proves the token is still AWSPENDING and AWSCURRENT still names the
	// other user: the user in AWSCURRENT is never altered (invariant 2).
	r, err := loadAdmin(ctx, h.Secrets, st)
	if err != nil {
		return st, err
	}
	if r.pending.Username == r.current.Username {
		return st, &workflow.InvalidSecret{Secret: "pending", Field: "username", Reason: "equals the AWSCURRENT user"}
	}
	// Invariant 3 again, right before the change: a redrive may come long after Preflight.
	if err := pendingSessions(ctx, h.DB, r, r.current.Replicas); err != nil {
		return st, err
	}
	lsn, changed, err := h.DB.SetPassword(ctx, r.adminLogin(), r.pending.Username, r.pending.Password)
	if err != nil {
		return st, fmt.Errorf("set the password of %s: %w", r.pending.Username, err)
	}
	st.LSN = lsn
	logger(h.Log).InfoContext(ctx, "password set", "secret", st.SecretARN, "version", st.Token, "user", r.pending.Username, "changed", changed, "lsn", lsn)
	return st, nil
}
