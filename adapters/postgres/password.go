package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgrotate/pgrotate/workflow"
)

// quietSettings keep the ALTER ROLE out of the server's logs and statistics. Each needs a
// privilege the admin may lack (SET on the parameter, or superuser); without it the change
// still happens, just without that protection: what is sent is a verifier, never the
// plaintext.
var quietSettings = []string{
	"SET LOCAL log_statement = 'none'",
	"SET LOCAL log_min_error_statement = 'panic'",
	"SET LOCAL log_min_duration_statement = -1",
	"SET LOCAL pg_stat_statements.track_utility = off",
}

// SetPassword gives user the password, sent as a SCRAM-SHA-256 verifier, and no expiry
// (VALID UNTIL 'infinity': it clears a retirement), unless it already logs in with it on
// this server (changed is false then, unless an expiry had to be cleared). An expired
// password does not log in, so a retired user always gets the ALTER. It returns the
// primary's WAL position after the change (or now, when nothing changed), which replicas
// must replay. A superuser or the admin itself is a *RefusedRole.
func (a *Admin) SetPassword(ctx context.Context, user string, password workflow.Password) (lsn string, changed bool, err error) {
	if err := workflow.ValidateRoleName(user); err != nil {
		return "", false, err
	}
	if password.IsZero() {
		return "", false, fmt.Errorf("set password of %s: the new password is empty", user)
	}
	if err := checkPrintableASCII(password.Reveal()); err != nil {
		return "", false, fmt.Errorf("set password of %s: %w", user, err)
	}
	r, err := role(ctx, a.conn, user)
	if err != nil {
		return "", false, fmt.Errorf("set password of %s: %w", user, err)
	}
	if r.super {
		return "", false, &RefusedRole{Role: user, Reason: "it is a superuser"}
	}
	if a.isAdmin(user) {
		return "", false, &RefusedRole{Role: user, Reason: "it is the admin user pgrotate connects as"}
	}

	err = a.loginAs(ctx, user, password)
	var rejected *workflow.CredentialRejected
	switch {
	case err == nil:
		// It logs in, so any expiry is in the future: clear it too, as the ALTER below
		// would have (a retirement must never reach a password that is about to be promoted).
		changed := false
		if _, expires := finiteExpiry(r.validUntil); expires {
			if err := a.clearExpiry(ctx, user); err != nil {
				return "", false, fmt.Errorf("set password of %s: %w", user, err)
			}
			changed = true
		}
		lsn, err := a.CurrentLSN(ctx)
		if err != nil {
			return "", changed, fmt.Errorf("set password of %s: %w", user, err)
		}
		return lsn, changed, nil
	case !errors.As(err, &rejected):
		// Neither "it works" nor "it is refused": changing it blind would hide the cause.
		return "", false, fmt.Errorf("set password of %s: try the new password first: %w", user, err)
	}

	verifier, err := scramVerifier(password.Reveal())
	if err != nil {
		return "", false, fmt.Errorf("set password of %s: %w", user, err)
	}
	if err := a.alterPassword(ctx, user, verifier); err != nil {
		return "", false, fmt.Errorf("set password of %s: %w", user, redact(err, verifier, password.Reveal()))
	}
	lsn, err = a.CurrentLSN(ctx)
	if err != nil {
		return "", true, fmt.Errorf("set password of %s: %w", user, err)
	}
	return lsn, true, nil
}

func (a *Admin) alterPassword(ctx context.Context, user, verifier string) error {
	lit, err := literal(a.conn, verifier)
	if err != nil {
		return err
	}
	tx, err := a.conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	for _, s := range quietSettings {
		if err := bestEffort(ctx, tx, s); err != nil {
			return err
		}
	}
	warnIfLogged(ctx, tx, user)
	if err := lockPassword(ctx, tx, user); err != nil {
		return err
	}
	// Simple protocol, one statement, no parameters (utility statements take none). VALID
	// UNTIL 'infinity' clears a retirement (RetirePassword) with the old password, in the
	// same statement as the new password, so the old one never logs in again.
	if _, err := tx.Exec(ctx, "ALTER ROLE "+ident(user)+" PASSWORD "+lit+" VALID UNTIL 'infinity'"); err != nil {
		return fmt.Errorf("alter role: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// clearExpiry removes user's password expiry, under its password lock.
func (a *Admin) clearExpiry(ctx context.Context, user string) error {
	tx, err := a.conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := lockPassword(ctx, tx, user); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "ALTER ROLE "+ident(user)+" VALID UNTIL 'infinity'"); err != nil {
		return fmt.Errorf("clear the password expiry: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// warnIfLogged says so when the server will still write the ALTER ROLE statement (with the
// verifier, never the plaintext) to its log because the admin could not turn statement
// logging off for this transaction.
func warnIfLogged(ctx context.Context, tx pgx.Tx, user string) {
	var logStatement string
	if err := tx.QueryRow(ctx, "SELECT current_setting('log_statement')").Scan(&logStatement); err != nil {
		return
	}
	switch logStatement {
	case "ddl", "mod", "all":
		slog.WarnContext(ctx, "the server will log this password change as a SCRAM verifier (never the password): the admin may not set log_statement; GRANT SET ON PARAMETER log_statement to it (PostgreSQL 15+) or log less DDL",
			"user", user, "log_statement", logStatement)
	}
}

// bestEffort runs a SET LOCAL in a savepoint and rolls back to it when the admin may not set
// that parameter or the server does not know it.
func bestEffort(ctx context.Context, tx pgx.Tx, stmt string) error {
	if _, err := tx.Exec(ctx, "SAVEPOINT pgrotate_quiet"); err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	if _, err := tx.Exec(ctx, stmt); err != nil {
		switch sqlState(err) {
		case "42501", "42704", "42602", "55P02": // no privilege, unknown or unsettable parameter
			if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT pgrotate_quiet"); err != nil {
				return fmt.Errorf("rollback to savepoint: %w", err)
			}
		default:
			return fmt.Errorf("%s: %w", stmt, err)
		}
	}
	if _, err := tx.Exec(ctx, "RELEASE SAVEPOINT pgrotate_quiet"); err != nil {
		return fmt.Errorf("release savepoint: %w", err)
	}
	return nil
}

// redact is a backstop: no server message is known to quote the statement, but if one ever
// does, the secret does not travel on in the error.
func redact(err error, secrets ...string) error {
	msg := err.Error()
	for _, s := range secrets {
		if s != "" && strings.Contains(msg, s) {
			return errors.New("ALTER ROLE failed; the server's message is withheld because it quoted the secret")
		}
	}
	return err
}
