package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pgrotate/pgrotate/workflow"
)

// ErrRoleNotFound reports a role that does not exist on the server.
var ErrRoleNotFound = errors.New("role does not exist")

// RefusedRole reports a role pgrotate will not change: a superuser, or the admin itself.
type RefusedRole struct {
	Role   string
	Reason string
}

func (e *RefusedRole) Error() string {
	return fmt.Sprintf("refusing to change role %q: %s", e.Role, e.Reason)
}

// Admin is a connection to a server with the admin secret's credentials. Connect it to the
// app's database: object grants live in each database.
type Admin struct {
	conn    *pgx.Conn
	ep      workflow.Endpoint
	at      workflow.Target // the admin's login as given, without its password
	session string          // the server's session_user for this connection
	opts    Options
}

// OpenAdmin connects as the admin user.
func OpenAdmin(ctx context.Context, t workflow.Target, opts Options) (*Admin, error) {
	conn, err := Connect(ctx, t, opts)
	if err != nil {
		return nil, err
	}
	a := &Admin{conn: conn, ep: t.Endpoint, at: t.As(t.User, workflow.Password{}), opts: opts}
	if err := conn.QueryRow(ctx, "SELECT session_user::text").Scan(&a.session); err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("connect to %s as %q: read session user: %w", t.Endpoint, t.User, err)
	}
	return a, nil
}

// loginAs logs in as user with password on the admin's server and database.
func (a *Admin) loginAs(ctx context.Context, user string, password workflow.Password) error {
	_, _, err := Login(ctx, a.at.As(user, password), a.opts)
	return err
}

// Close closes the connection.
func (a *Admin) Close(ctx context.Context) error { return a.conn.Close(ctx) }

// Endpoint is the server the admin is connected to.
func (a *Admin) Endpoint() workflow.Endpoint { return a.ep }

// RoleExists reports whether a role of that name exists.
func (a *Admin) RoleExists(ctx context.Context, name string) (bool, error) {
	if err := workflow.ValidateRoleName(name); err != nil {
		return false, err
	}
	var ok bool
	if err := a.conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", name).Scan(&ok); err != nil {
		return false, fmt.Errorf("check role %s exists: %w", name, err)
	}
	return ok, nil
}

// SessionCount counts the sessions of user on this server, not counting this one.
func (a *Admin) SessionCount(ctx context.Context, user string) (int, error) {
	return sessionCount(ctx, a.conn, a.ep, user)
}

// CurrentLSN returns the primary's current WAL position.
func (a *Admin) CurrentLSN(ctx context.Context) (string, error) {
	var lsn string
	if err := a.conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
		return "", fmt.Errorf("read WAL position of %s: %w", a.ep, err)
	}
	return lsn, nil
}

func sessionCount(ctx context.Context, conn *pgx.Conn, ep workflow.Endpoint, user string) (int, error) {
	if err := workflow.ValidateRoleName(user); err != nil {
		return 0, err
	}
	var n int
	err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()", user).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count sessions of %s on %s: %w", user, ep, err)
	}
	return n, nil
}

// roleInfo is a role's row of pg_roles, without the password column.
type roleInfo struct {
	oid        uint32
	name       string
	super      bool
	inherit    bool
	createRole bool
	createDB   bool
	login      bool
	repl       bool
	bypassRLS  bool
	connLimit  int32
	validUntil pgtype.Timestamptz // NULL and infinity both mean "never expires"
}

// queryer is what the role queries need: a connection or a transaction.
type queryer interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// role reads a role; a missing role is ErrRoleNotFound.
func role(ctx context.Context, q queryer, name string) (roleInfo, error) {
	r := roleInfo{name: name}
	err := q.QueryRow(ctx, `SELECT oid, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin,
		rolreplication, rolbypassrls, rolconnlimit, rolvaliduntil FROM pg_roles WHERE rolname = $1`, name).
		Scan(&r.oid, &r.super, &r.inherit, &r.createRole, &r.createDB, &r.login, &r.repl, &r.bypassRLS, &r.connLimit, &r.validUntil)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("role %s: %w", name, ErrRoleNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("read role %s: %w", name, err)
	}
	return r, nil
}

// expires renders VALID UNTIL for messages and for ALTER ROLE; "infinity" when it never does.
func (r roleInfo) expires() string {
	if !r.validUntil.Valid || r.validUntil.InfinityModifier == pgtype.Infinity {
		return "infinity"
	}
	if r.validUntil.InfinityModifier == pgtype.NegativeInfinity {
		return "-infinity"
	}
	return r.validUntil.Time.UTC().Format("2006-01-02 15:04:05.999999Z07:00")
}

// ident quotes one identifier.
func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// literal quotes a string constant, refusing a connection where quote-doubling would not
// be safe (standard_conforming_strings off or a non-UTF8 client encoding).
func literal(conn *pgx.Conn, s string) (string, error) {
	esc, err := conn.PgConn().EscapeString(s)
	if err != nil {
		return "", err
	}
	return "'" + esc + "'", nil
}

// pair names the base user and its clone, whichever is active.
type pair struct{ base, clone string }

// pairOf validates the two names and orders them.
func pairOf(active, pending string) (pair, error) {
	if err := workflow.ValidateRoleName(active); err != nil {
		return pair{}, err
	}
	if err := workflow.ValidateRoleName(pending); err != nil {
		return pair{}, err
	}
	if pending != workflow.Alternate(active) {
		return pair{}, fmt.Errorf("%q is not the alternate of %q", pending, active)
	}
	if workflow.Alternate(active) == active+workflow.CloneSuffix {
		return pair{base: active, clone: pending}, nil
	}
	return pair{base: pending, clone: active}, nil
}
