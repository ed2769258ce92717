package postgres

import (
	"context"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5"

	"github.com/pgrotate/pgrotate/workflow"
)

// Replica is a connection to a streaming replica (as any user: it only reads).
type Replica struct {
	conn *pgx.Conn
	ep   workflow.Endpoint
}

// OpenReplica connects to a replica. A failure here is a plain error (or
// *workflow.CredentialRejected, *TLSError), never *workflow.ReplicaNotReady: an unreachable
// replica is not a lagging one.
func OpenReplica(ctx context.Context, t workflow.Target, opts Options) (*Replica, error) {
	conn, err := Connect(ctx, t, opts)
	if err != nil {
		return nil, err
	}
	return &Replica{conn: conn, ep: t.Endpoint}, nil
}

// Close closes the connection.
func (r *Replica) Close(ctx context.Context) error { return r.conn.Close(ctx) }

// SessionCount counts the sessions of user on the replica, not counting this one.
func (r *Replica) SessionCount(ctx context.Context, user string) (int, error) {
	return sessionCount(ctx, r.conn, r.ep, user)
}

// ReplayLSN returns the last WAL position the replica has replayed.
func (r *Replica) ReplayLSN(ctx context.Context) (string, error) {
	st, err := r.status(ctx, "0/0")
	if err != nil {
		return "", err
	}
	if st.replay == nil {
		return "", fmt.Errorf("read replay position of %s: none yet", r.ep)
	}
	return *st.replay, nil
}

// CaughtUp returns nil once the replica has replayed lsn (from SetPassword), and a
// *workflow.ReplicaNotReady naming both positions until then.
func (r *Replica) CaughtUp(ctx context.Context, lsn string) error {
	if !lsnRE.MatchString(lsn) {
		return fmt.Errorf("check replay on %s: %q is not a WAL position", r.ep, lsn)
	}
	st, err := r.status(ctx, lsn)
	if err != nil {
		return err
	}
	switch {
	case st.replay == nil:
		return &workflow.ReplicaNotReady{Replica: r.ep.String(), Reason: fmt.Sprintf("no WAL replayed yet, target %s", lsn)}
	case !st.caughtUp:
		return &workflow.ReplicaNotReady{Replica: r.ep.String(), Reason: fmt.Sprintf("replayed up to %s, target %s", *st.replay, lsn)}
	}
	return nil
}

var lsnRE = regexp.MustCompile(`^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$`)

type replayStatus struct {
	replay   *string
	caughtUp bool
}

func (r *Replica) status(ctx context.Context, lsn string) (replayStatus, error) {
	var st replayStatus
	var recovering bool
	err := r.conn.QueryRow(ctx, `SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,
		COALESCE(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)`, lsn).Scan(&recovering, &st.replay, &st.caughtUp)
	if err != nil {
		return st, fmt.Errorf("check replay on %s: %w", r.ep, err)
	}
	if !recovering {
		return st, fmt.Errorf("check replay on %s: the server is not a replica (not in recovery)", r.ep)
	}
	return st, nil
}
