package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pgrotate/pgrotate/workflow"
)

// Retired is what RetirePassword found or did.
type Retired struct {
	// ValidUntil is the password's expiry after the call (zero when it has none).
	ValidUntil time.Time
	// Changed is true when this call set it.
	Changed bool
	// Skipped says why nothing changed, when nothing did.
	Skipped string
}

// RetirePassword makes user's password expire grace from now, by this server's clock: ALTER
// ROLE … VALID UNTIL. PostgreSQL compares a role's VALID UNTIL with the server's clock when
// the role authenticates with a password, so an expired password is refused from then on
// on the primary and, by WAL replay of pg_authid, on every replica; sessions already open
// are not ended ("VALID UNTIL 'timestamp': sets a date and time after which the role's
// password is no longer valid", https://www.postgresql.org/docs/15/sql-createrole.html).
//
// password is the value it should retire (the AWSPREVIOUS version's): only while it still
// logs in is anything changed. If it no longer does, the password already expired or was
// changed since (a newer rotation's SetPassword), and RetirePassword changes nothing. The
// check and the change hold the user's password lock (see lockPassword), so a concurrent
// SetPassword either runs first (the check then fails) or after (it clears the expiry with
// its new password). An earlier expiry is kept: running it again never extends it. A
// superuser or the admin itself is a *RefusedRole, an invalid name a
// *workflow.InvalidRoleName, before anything changes.
func (a *Admin) RetirePassword(ctx context.Context, user string, password workflow.Password, grace time.Duration) (Retired, error) {
	if err := a.checkRetire(user, password, grace); err != nil {
		return Retired{}, err
	}
	tx, err := a.conn.Begin(ctx)
	if err != nil {
		return Retired{}, fmt.Errorf("retire password of %s: begin: %w", user, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := lockPassword(ctx, tx, user); err != nil {
		return Retired{}, fmt.Errorf("retire password of %s: %w", user, err)
	}
	r, err := role(ctx, tx, user)
	if err != nil {
		return Retired{}, fmt.Errorf("retire password of %s: %w", user, err)
	}
	if r.super {
		return Retired{}, &RefusedRole{Role: user, Reason: "it is a superuser"}
	}
	expiry, hasExpiry := finiteExpiry(r.validUntil)
	if skipped, err := a.notLoggingIn(ctx, user, password, expiry, hasExpiry); skipped != nil || err != nil {
		return *skipped, err
	}

	var until time.Time
	if err := tx.QueryRow(ctx, "SELECT now() + make_interval(secs => $1)", grace.Seconds()).Scan(&until); err != nil {
		return Retired{}, fmt.Errorf("retire password of %s: read the server's clock: %w", user, err)
	}
	if hasExpiry && !expiry.After(until) {
		return Retired{ValidUntil: expiry, Skipped: "the password already expires by then"}, nil
	}
	lit, err := literal(a.conn, until.UTC().Format("2006-01-02 15:04:05.999999Z07:00"))
	if err != nil {
		return Retired{}, fmt.Errorf("retire password of %s: %w", user, err)
	}
	if _, err := tx.Exec(ctx, "ALTER ROLE "+ident(user)+" VALID UNTIL "+lit); err != nil {
		return Retired{}, fmt.Errorf("retire password of %s: alter role: %w", user, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return Retired{}, fmt.Errorf("retire password of %s: commit: %w", user, err)
	}
	return Retired{ValidUntil: until, Changed: true}, nil
}

// checkRetire refuses bad input and the admin user before anything is read or changed.
func (a *Admin) checkRetire(user string, password workflow.Password, grace time.Duration) error {
	if err := workflow.ValidateRoleName(user); err != nil {
		return err
	}
	if grace <= 0 {
		return fmt.Errorf("retire password of %s: grace %s is not positive", user, grace)
	}
	if password.IsZero() {
		return fmt.Errorf("retire password of %s: the password to retire is empty", user)
	}
	if a.isAdmin(user) {
		return &RefusedRole{Role: user, Reason: "it is the admin user pgrotate connects as"}
	}
	return nil
}

// notLoggingIn logs in with the password: when it is refused there is nothing to retire,
// and the result says why; nil when it still logs in.
func (a *Admin) notLoggingIn(ctx context.Context, user string, password workflow.Password, expiry time.Time, hasExpiry bool) (*Retired, error) {
	err := a.loginAs(ctx, user, password)
	var rejected *workflow.CredentialRejected
	switch {
	case errors.As(err, &rejected) && hasExpiry:
		return &Retired{ValidUntil: expiry, Skipped: "the password is already expired"}, nil
	case errors.As(err, &rejected):
		return &Retired{Skipped: "the password no longer logs in: it was changed since"}, nil
	case err != nil:
		return &Retired{}, fmt.Errorf("retire password of %s: check it still logs in: %w", user, err)
	}
	return nil, nil
}

// lockPassword takes, for the rest of tx, the lock that serialises changes of user's
// password and its expiry (SetPassword, RetirePassword), across sessions: a transaction-level
// advisory lock on a key derived from the name.
func lockPassword(ctx context.Context, tx pgx.Tx, user string) error {
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended('pgrotate.password:' || $1::text, 0))", user); err != nil {
		return fmt.Errorf("lock the password of %s: %w", user, err)
	}
	return nil
}

// finiteExpiry returns a role's VALID UNTIL when it is a time; NULL and infinity mean never
// (-infinity, always expired, is the zero time).
func finiteExpiry(t pgtype.Timestamptz) (time.Time, bool) {
	switch {
	case !t.Valid || t.InfinityModifier == pgtype.Infinity:
		return time.Time{}, false
	case t.InfinityModifier == pgtype.NegativeInfinity:
		return time.Time{}, true
	}
	return t.Time, true
}

// RetirePassword makes user's password expire grace from now on the admin's server (the
// primary) while password still logs in; see Admin.RetirePassword. It returns the
// password's expiry afterwards (zero when it has none) and, when nothing changed, why.
func (p PG) RetirePassword(ctx context.Context, admin workflow.Target, user string, password workflow.Password, grace time.Duration) (validUntil time.Time, skipped string, err error) {
	var r Retired
	err = p.withAdmin(ctx, admin, func(a *Admin) (err error) {
		r, err = a.RetirePassword(ctx, user, password, grace)
		// As in the other database steps: a server lost mid-step is DatabaseUnavailable,
		// which the RetirePrevious state retries.
		return classify(admin.Endpoint, err)
	})
	return r.ValidUntil, r.Skipped, err
}
