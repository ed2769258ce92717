package tasks

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pgrotate/pgrotate/workflow"
)

// The PostgreSQL operations the steps use, each declared where it is needed and satisfied by
// PG (adapters/postgres). Admin operations take the admin secret already pointed at the right
// server and database (see adminAt).

type loginChecker interface {
	// Login logs in with the secret's own user and password on ep; a refused login is a
	// *workflow.CredentialRejected.
	Login(ctx context.Context, ep workflow.Endpoint, s workflow.AppSecret) error
}

type sessionCounter interface {
	// Sessions counts the sessions of user on the admin secret's server.
	Sessions(ctx context.Context, admin workflow.AdminSecret, user string) (int, error)
}

type userCloner interface {
	// CloneUser creates pending as the twin of active, or repairs it (idempotent).
	CloneUser(ctx context.Context, admin workflow.AdminSecret, active, pending string) error
	// CheckParity returns a *workflow.PrivilegeMismatch listing every difference.
	CheckParity(ctx context.Context, admin workflow.AdminSecret, active, pending string) error
}

type passwordSetter interface {
	loginChecker
	sessionCounter
	// SetPassword sets user's password (as a SCRAM verifier) unless it already logs in, and
	// returns the primary's WAL LSN after the change.
	SetPassword(ctx context.Context, admin workflow.AdminSecret, user string, password workflow.Password) (lsn string, changed bool, err error)
}

type replicaChecker interface {
	loginChecker
	// CaughtUp returns a *workflow.ReplicaNotReady until the login's server has replayed
	// lsn.
	CaughtUp(ctx context.Context, login workflow.AdminSecret, lsn string) error
}

// adminAt points the admin credentials at the app's database on the primary, where the
// grants live. The admin's own sslmode applies (verify-full unless the admin secret says
// otherwise): the app secret never weakens how the admin password travels, and the admin
// password goes only to the primary, which ValidatePair proved is the admin secret's.
func adminAt(admin workflow.AdminSecret, app workflow.AppSecret) workflow.AdminSecret {
	a := admin
	a.DBName = app.DBName
	return a
}

// currentAt is the AWSCURRENT app login on a replica, for the read-only checks there (replay
// position, sessions), which need no privilege. Replicas are named by the app secret, so
// the admin password is never sent to them; AWSCURRENT logs in everywhere (invariant 1).
func currentAt(current workflow.AppSecret, ep workflow.Endpoint) workflow.AdminSecret {
	return workflow.AdminSecret{Engine: current.Engine, Host: ep.Host, Port: ep.Port, DBName: current.DBName,
		Username: current.Username, Password: current.Password, SSLMode: current.SSLMode}
}

// pendingSessions refuses while anyone holds the pending user: on the primary (checked as
// the admin) and on every replica (as AWSCURRENT). Invariant 3.
func pendingSessions(ctx context.Context, db sessionCounter, r rotation, replicas []workflow.Endpoint) error {
	primary := r.current.Primary()
	n, err := db.Sessions(ctx, adminAt(r.admin, r.current), r.pending.Username)
	if err != nil {
		return fmt.Errorf("count sessions of %s on %s: %w", r.pending.Username, primary, err)
	}
	if n > 0 {
		return &workflow.PendingUserInUse{User: r.pending.Username, Sessions: n, Where: primary.String()}
	}
	for _, ep := range replicas {
		n, err := db.Sessions(ctx, currentAt(r.current, ep), r.pending.Username)
		if err != nil {
			return fmt.Errorf("count sessions of %s on %s: %w", r.pending.Username, ep, err)
		}
		if n > 0 {
			return &workflow.PendingUserInUse{User: r.pending.Username, Sessions: n, Where: ep.String()}
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

// fail logs the full error chain (it never holds a secret value) and returns the named
// error unwrapped for the Lambda runtime.
func fail(ctx context.Context, l *slog.Logger, step string, st workflow.State, err error) (workflow.State, error) {
	logger(l).ErrorContext(ctx, "step failed", "step", step, "secret", st.SecretARN, "version", st.Token, "error", err.Error())
	return st, named(step, err)
}
