package tasks

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pgrotate/pgrotate/workflow"
)

// The PostgreSQL operations the steps use, each declared where it is needed and satisfied by
// PG (adapters/postgres). Each takes the login it makes as a workflow.Target built from a
// secret: the admin on the primary (rotation.adminLogin) or an app login (AppSecret.At).

type loginChecker interface {
	// Login logs in as the target's user; a refused login is a *workflow.CredentialRejected.
	Login(ctx context.Context, login workflow.Target) error
}

type sessionCounter interface {
	// Sessions counts the sessions of user on the login's server.
	Sessions(ctx context.Context, login workflow.Target, user string) (int, error)
}

type userCloner interface {
	// CloneUser creates pending as the twin of active, or repairs it (idempotent).
	CloneUser(ctx context.Context, admin workflow.Target, active, pending string) error
	// CheckParity returns a *workflow.PrivilegeMismatch listing every difference.
	CheckParity(ctx context.Context, admin workflow.Target, active, pending string) error
}

type passwordSetter interface {
	loginChecker
	sessionCounter
	// SetPassword sets user's password (as a SCRAM verifier) unless it already logs in, and
	// returns the primary's WAL LSN after the change.
	SetPassword(ctx context.Context, admin workflow.Target, user string, password workflow.Password) (lsn string, changed bool, err error)
}

type replicaChecker interface {
	loginChecker
	// CaughtUp returns a *workflow.ReplicaNotReady until the login's server has replayed
	// lsn.
	CaughtUp(ctx context.Context, login workflow.Target, lsn string) error
}

// pendingSessions refuses while anyone holds the pending user: on the primary (checked as
// the admin) and on every replica (as AWSCURRENT, which logs in everywhere: replicas are
// named by the app secret, so the admin password never goes there). Invariant 3.
func pendingSessions(ctx context.Context, db sessionCounter, r rotation, replicas []workflow.Endpoint) error {
	count := func(where workflow.Endpoint, login workflow.Target) error {
		n, err := db.Sessions(ctx, login, r.pending.Username)
		if err != nil {
			return fmt.Errorf("count sessions of %s on %s: %w", r.pending.Username, where, err)
		}
		if n > 0 {
			return &workflow.PendingUserInUse{User: r.pending.Username, Sessions: n, Where: where.String()}
		}
		return nil
	}
	if err := count(r.current.Primary(), r.adminLogin()); err != nil {
		return err
	}
	for _, ep := range replicas {
		if err := count(ep, r.current.At(ep)); err != nil {
			return err
		}
	}
	return nil
}

// logger returns l or the default logger.
func logger(l *slog.Logger) *slog.Logger {
	if l != nil {
		return l
	}
	return slog.Default()
}

// run is the frame of every step on the State: it checks the input (check), does the work
// (do), and on failure logs and returns the named error (see fail).
func run(ctx context.Context, l *slog.Logger, step string, st workflow.State, check func(workflow.State) error,
	do func(context.Context, workflow.State) (workflow.State, error)) (workflow.State, error) {
	if err := check(st); err != nil {
		return fail(ctx, l, step, st, err)
	}
	out, err := do(ctx, st)
	if err != nil {
		return fail(ctx, l, step, out, err)
	}
	return out, nil
}

// fail logs the full error chain (it never holds a secret value) and returns the named
// error unwrapped for the Lambda runtime.
func fail(ctx context.Context, l *slog.Logger, step string, st workflow.State, err error) (workflow.State, error) {
	logger(l).ErrorContext(ctx, "step failed", "step", step, "secret", st.SecretARN, "version", st.Token, "error", err.Error())
	return st, named(step, err)
}
