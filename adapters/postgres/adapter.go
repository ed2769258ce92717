package postgres

import (
	"context"

	"github.com/pgrotate/pgrotate/workflow"
)

// PG adapts this package to the steps in package tasks: each call opens one connection
// from a secret (the admin secret already pointed at the right server and database) and
// closes it. Named errors come back unwrapped; an error that says the server cannot serve
// now (down, restarting, failing over) carries a *workflow.DatabaseUnavailable naming it.
type PG struct {
	Options Options
}

// Login logs in on ep with the secret's own user, password, database and sslmode.
func (p PG) Login(ctx context.Context, ep workflow.Endpoint, s workflow.AppSecret) error {
	_, _, err := Login(ctx, ep, s.DBName, s.Username, s.Password, s.TLSMode(), p.Options)
	return classify(ep, err)
}

// Sessions counts the sessions of user on the admin secret's server.
func (p PG) Sessions(ctx context.Context, admin workflow.AdminSecret, user string) (int, error) {
	conn, err := Connect(ctx, admin.Primary(), admin.DBName, admin.Username, admin.Password, admin.TLSMode(), p.Options)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	n, err := sessionCount(ctx, conn, admin.Primary(), user)
	return n, classify(admin.Primary(), err)
}

// CloneUser creates or repairs pending as the twin of active, then checks parity.
func (p PG) CloneUser(ctx context.Context, admin workflow.AdminSecret, active, pending string) error {
	a, err := p.admin(ctx, admin)
	if err != nil {
		return err
	}
	defer a.Close(context.WithoutCancel(ctx))
	return classify(admin.Primary(), a.CloneRole(ctx, active, pending))
}

// CheckParity returns a *workflow.PrivilegeMismatch listing every difference.
func (p PG) CheckParity(ctx context.Context, admin workflow.AdminSecret, active, pending string) error {
	a, err := p.admin(ctx, admin)
	if err != nil {
		return err
	}
	defer a.Close(context.WithoutCancel(ctx))
	return classify(admin.Primary(), a.CheckParity(ctx, active, pending))
}

// SetPassword sets user's password unless it already logs in; see Admin.SetPassword.
func (p PG) SetPassword(ctx context.Context, admin workflow.AdminSecret, user string, password workflow.Password) (string, bool, error) {
	a, err := p.admin(ctx, admin)
	if err != nil {
		return "", false, err
	}
	defer a.Close(context.WithoutCancel(ctx))
	lsn, changed, err := a.SetPassword(ctx, user, password)
	return lsn, changed, classify(admin.Primary(), err)
}

// EnsureLogin creates or repairs user as a login user of the admin secret's database and
// gives it password, refusing any takeover before it changes anything (adopt allows taking
// over existing roles pgrotate did not create); see Admin.EnsureLogin. It returns the
// primary's WAL position after it and the roles it adopted.
func (p PG) EnsureLogin(ctx context.Context, admin workflow.AdminSecret, user string, password workflow.Password, adopt bool) (lsn string, adopted []string, err error) {
	a, err := p.admin(ctx, admin)
	if err != nil {
		return "", nil, err
	}
	defer a.Close(context.WithoutCancel(ctx))
	res, err := a.EnsureLogin(ctx, user, password, LoginOptions{Adopt: adopt})
	return res.LSN, res.Adopted, classify(admin.Primary(), err)
}

// CaughtUp returns a *workflow.ReplicaNotReady until the admin secret's server (a replica)
// has replayed lsn.
func (p PG) CaughtUp(ctx context.Context, admin workflow.AdminSecret, lsn string) error {
	r, err := OpenReplica(ctx, admin.Primary(), admin.DBName, admin.Username, admin.Password, admin.TLSMode(), p.Options)
	if err != nil {
		return err
	}
	defer r.Close(context.WithoutCancel(ctx))
	return classify(admin.Primary(), r.CaughtUp(ctx, lsn))
}

func (p PG) admin(ctx context.Context, s workflow.AdminSecret) (*Admin, error) {
	return OpenAdmin(ctx, s.Primary(), s.DBName, s.Username, s.Password, s.TLSMode(), p.Options)
}
