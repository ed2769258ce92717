package tasks

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pgrotate/pgrotate/workflow"
)

// CheckReplicas makes one check per invocation: every replica has replayed the password
// change (its replay LSN reached State.LSN) and the pending user logs in there. The state
// machine retries ReplicaNotReady with backoff; this handler never sleeps.
type CheckReplicas struct {
	Secrets appSecrets
	DB      replicaChecker
	Log     *slog.Logger
}

// Handle checks every replica once, after SetPassword.
func (h *CheckReplicas) Handle(ctx context.Context, st workflow.State) (workflow.State, error) {
	return run(ctx, h.Log, workflow.StateCheckReplicas, st, passwordSet, h.check)
}

// passwordSet requires a preflighted state whose SetPassword recorded an LSN (when there
// are replicas to compare it with).
func passwordSet(st workflow.State) error {
	if err := st.CheckPreflighted(); err != nil {
		return err
	}
	if st.LSN == "" && len(st.Replicas) > 0 {
		return &workflow.InvalidSecret{Secret: "state", Field: "lsn", Reason: "SetPassword has not run for this execution"}
	}
	return nil
}

func (h *CheckReplicas) check(ctx context.Context, st workflow.State) (workflow.State, error) {
	// The replay position is read as AWSCURRENT, which logs in everywhere: the admin
	// password never goes to the hosts the app secret lists as replicas.
	r, err := loadRotation(ctx, h.Secrets, st)
	if err != nil {
		return st, err
	}
	for _, ep := range st.Replicas {
		if err := h.DB.CaughtUp(ctx, r.current.At(ep), st.LSN); err != nil {
			return st, fmt.Errorf("replica %s: %w", ep, err)
		}
		if err := h.DB.Login(ctx, r.pending.At(ep)); err != nil {
			return st, fmt.Errorf("log in as %s on replica %s: %w", r.pending.Username, ep, err)
		}
	}
	logger(h.Log).InfoContext(ctx, "replicas caught up", "secret", st.SecretARN, "version", st.Token, "replicas", len(st.Replicas), "lsn", st.LSN)
	return st, nil
}
