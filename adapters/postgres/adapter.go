package postgres

import (
	"context"

	"github.com/pgrotate/pgrotate/workflow"
)

// PG adapts this package to the steps in package tasks: each call opens one connection to
// the target it is given (a login built from a secret: the admin on the primary, or an app
// login) and closes it. Named errors come back unwrapped; an error that says the server
// cannot serve now (down, restarting, failing over) carries a *workflow.DatabaseUnavailable
// naming it.
type PG struct {
	Options Options
}

// Login logs in as the target's user, with its password, database and sslmode.
func (p PG) Login(ctx context.Context, t workflow.Target) error {
	_, _, err := Login(ctx, t, p.Options)
	return classify(t.Endpoint, err)
}

// Sessions counts the sessions of user on the login's server.
func (p PG) Sessions(ctx context.Context, login workflow.Target, user string) (int, error) {
	conn, err := Connect(ctx, login, p.Options)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	n, err := sessionCount(ctx, conn, login.Endpoint, user)
	return n, classify(login.Endpoint, err)
}

// CloneUser creates or repairs pending as the twin of active, then checks parity.
func (p PG) CloneUser(ctx context.Context, admin workflow.Target, active, pending string) error {
	return p.withAdmin(ctx, admin, func(a *Admin) error { return classify(admin.Endpoint, a.CloneRole(ctx, active, pending)) })
}

// CheckParity returns a *workflow.PrivilegeMismatch listing every difference.
func (p PG) CheckParity(ctx context.Context, admin workflow.Target, active, pending string) error {
	return p.withAdmin(ctx, admin, func(a *Admin) error { return classify(admin.Endpoint, a.CheckParity(ctx, active, pending)) })
}

// SetPassword sets user's password unless it already logs in; see Admin.SetPassword.
func (p PG) SetPassword(ctx context.Context, admin workflow.Target, user string, password workflow.Password) (lsn string, changed bool, err error) {
	err = p.withAdmin(ctx, admin, func(a *Admin) (err error) {
		lsn, changed, err = a.SetPassword(ctx, user, password)
		return classify(admin.Endpoint, err)
	})
	return lsn, changed, err
}

// EnsureLogin creates or repairs user as a login user of the admin's database and gives it
// password, refusing any takeover before it changes anything (adopt allows taking over
// existing roles pgrotate did not create); see Admin.EnsureLogin. It returns the primary's
// WAL position after it and the roles it adopted.
func (p PG) EnsureLogin(ctx context.Context, admin workflow.Target, user string, password workflow.Password, adopt bool) (lsn string, adopted []string, err error) {
	var res LoginResult
	err = p.withAdmin(ctx, admin, func(a *Admin) (err error) {
		res, err = a.EnsureLogin(ctx, user, password, LoginOptions{Adopt: adopt})
		return classify(admin.Endpoint, err)
	})
	return res.LSN, res.Adopted, err
}

// CaughtUp returns a *workflow.ReplicaNotReady until the login's server (a replica) has
// replayed lsn.
func (p PG) CaughtUp(ctx context.Context, login workflow.Target, lsn string) error {
	r, err := OpenReplica(ctx, login, p.Options)
	if err != nil {
		return err
	}
	defer r.Close(context.WithoutCancel(ctx))
	return classify(login.Endpoint, r.CaughtUp(ctx, lsn))
}

// withAdmin runs do on an admin connection to admin, opened for it and closed after. An
// error of the connection comes back as OpenAdmin returned it; do classifies its own.
func (p PG) withAdmin(ctx context.Context, admin workflow.Target, do func(*Admin) error) error {
	a, err := OpenAdmin(ctx, admin, p.Options)
	if err != nil {
		return err
	}
	defer a.Close(context.WithoutCancel(ctx))
	return do(a)
}
