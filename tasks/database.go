package tasks

import (
	"context"
	"log/slog"

	"github.com/pgrotate/pgrotate/workflow"
)

// The PostgreSQL operations the steps use, each declared where it is needed and satisfied by
// PG (tasks/postgres). Admin operations take the admin secret already pointed at the right
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
	// SetPassword sets user's password (as a SCRAM verifier) unless it already logs in, and
	// returns the primary's WAL LSN after the change.
	SetPassword(ctx context.Context, admin workflow.AdminSecret, user string, password workflow.Password) (lsn string, changed bool, err error)
}

type replicaChecker interface {
	loginChecker
	// CaughtUp returns a *workflow.ReplicaNotReady until the admin secret's server has
	// replayed lsn.
	CaughtUp(ctx context.Context, admin workflow.AdminSecret, lsn string) error
}

// adminAt points the admin credentials at ep and at the app's database: grants live in the
// app database, and replicas are reached by their own endpoints.
func adminAt(admin workflow.AdminSecret, app workflow.AppSecret, ep workflow.Endpoint) workflow.AdminSecret {
	a := admin
	a.Host, a.Port = ep.Host, ep.Port
	a.DBName = app.DBName
	if a.SSLMode == "" {
		a.SSLMode = app.SSLMode
	}
	return a
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
	return st, named(err)
}
