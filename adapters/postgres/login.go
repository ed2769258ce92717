package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgrotate/pgrotate/workflow"
)

// ManagedMark starts the comment (COMMENT ON ROLE) of every role pgrotate creates: the base
// user EnsureLogin makes and the clone CloneRole makes. A later EnsureLogin recognises its
// own roles by it; any other existing role is someone else's. Setting a role's comment needs
// CREATEROLE (or, from PostgreSQL 16, ADMIN OPTION on it), so an app user cannot mark itself.
const ManagedMark = "pgrotate:managed"

// UnmanagedRole reports an existing role pgrotate did not create (it lacks ManagedMark):
// EnsureLogin will not take it over (change its password, LOGIN or grants) unless asked to
// adopt it (LoginOptions.Adopt).
type UnmanagedRole struct {
	Role string
}

func (e *UnmanagedRole) Error() string {
	return fmt.Sprintf("refusing to take over role %q: it exists and pgrotate did not create it (its comment lacks %q); adopting an existing role must be asked for explicitly", e.Role, ManagedMark)
}

// LoginOptions tune EnsureLogin.
type LoginOptions struct {
	// Adopt lets EnsureLogin take over an existing user, or an existing alternate, that
	// pgrotate did not create: its password is replaced and it gets the grants. The role
	// keeps its comment, so adopting it again must be asked for again.
	Adopt bool
}

// LoginResult is what EnsureLogin did.
type LoginResult struct {
	// LSN is the primary's WAL position after the last change, which replicas must replay
	// before the login works there.
	LSN string
	// Created is true when the user did not exist and was created (and marked).
	Created bool
	// Adopted lists the existing roles, not created by pgrotate, that were taken over.
	Adopted []string
}

// rdsReserved are the roles RDS creates and manages itself (the rds_ prefix is reserved
// too): https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/Appendix.PostgreSQL.CommonDBATasks.Roles.rds_superuser.html
// PostgreSQL reserves public, none and the current_/session_user keywords as role names, and
// postgres is the bootstrap superuser of a self-managed server (RDS's default master user).
var reservedRoles = []string{"postgres", "public", "none", "current_user", "current_role", "session_user",
	"rdsadmin", "rdsrepladmin", "rdstopmgr"}

// reservedRole says why name may not be an app user, or "".
func reservedRole(name string) string {
	lower := strings.ToLower(name)
	switch {
	case slices.Contains(reservedRoles, lower):
		return "the name is reserved for the server's own roles"
	case strings.HasPrefix(lower, "pg_"), strings.HasPrefix(lower, "rds_"):
		return "the prefix is reserved for the server's own roles"
	}
	return ""
}

// EnsureLogin makes user a login user of the connected database with password: the first
// app user of a new deployment (the bootstrap), before pgrotate takes over. It works in two
// phases. The plan only reads, and refuses, before anything changes:
//
//   - an invalid name (*workflow.InvalidRoleName);
//   - a reserved name (postgres, pg_*, rds_*, …), the admin itself, or a superuser or
//     rds_superuser member (*RefusedRole) — for user and for its alternate alike;
//   - a clone name (x_clone) unless that clone exists: only the base user is created here,
//     since a clone made here would lack the pair link CloneRole gives it (*RefusedRole);
//   - an existing user or alternate that pgrotate did not create (*UnmanagedRole), unless
//     opts.Adopt.
//
// Then, in one transaction, it creates the user WITH LOGIN and marks it (ManagedMark) when
// it is missing, gives LOGIN back to an existing user that lacks it, and grants CONNECT on
// the connected database and USAGE, CREATE on its public schema to the user and to its
// alternate (when a rotation already made it, so the two stay alike for CheckParity) where
// they lack them. It then sets the password through SetPassword (a SCRAM verifier, only when
// the password does not already log in). Running it again changes nothing.
func (a *Admin) EnsureLogin(ctx context.Context, user string, password workflow.Password, opts LoginOptions) (LoginResult, error) {
	if err := workflow.ValidateRoleName(user); err != nil {
		return LoginResult{}, err
	}
	if password.IsZero() {
		return LoginResult{}, fmt.Errorf("ensure login %s: the password is empty", user)
	}
	if err := checkPrintableASCII(password.Reveal()); err != nil {
		return LoginResult{}, fmt.Errorf("ensure login %s: %w", user, err)
	}
	res, err := a.ensureLogin(ctx, user, opts, true)
	if err != nil {
		return LoginResult{}, fmt.Errorf("ensure login %s: %w", user, err)
	}
	res.LSN, _, err = a.SetPassword(ctx, user, password)
	if err != nil {
		return LoginResult{}, fmt.Errorf("ensure login %s: %w", user, err)
	}
	return res, nil
}

// loginPlan is what EnsureLogin will change, decided before any change.
type loginPlan struct {
	db        string
	create    bool
	giveLogin bool
	grants    []privilegeGrant
	adopted   []string
}

// privilegeGrant is one GRANT the plan needs: what, on which object, to whom.
type privilegeGrant struct{ privilege, object, role string }

func (g privilegeGrant) sql() string {
	return "GRANT " + g.privilege + " ON " + g.object + " TO " + ident(g.role)
}

// ensureLogin plans, then applies the plan in one transaction. retry allows one more
// attempt when a concurrent run created the role between the plan and the CREATE.
func (a *Admin) ensureLogin(ctx context.Context, user string, opts LoginOptions, retry bool) (LoginResult, error) {
	p, err := a.planLogin(ctx, user, opts)
	if err != nil {
		return LoginResult{}, err
	}
	tx, err := a.conn.Begin(ctx)
	if err != nil {
		return LoginResult{}, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	switch {
	case p.create:
		// Every other attribute keeps its default (NOSUPERUSER, NOCREATEDB, NOCREATEROLE,
		// NOREPLICATION, NOBYPASSRLS); the password follows as a verifier.
		if _, err := tx.Exec(ctx, "CREATE ROLE "+ident(user)+" WITH LOGIN"); err != nil {
			if sqlState(err) == "42710" && retry { // created concurrently: plan again, once
				_ = tx.Rollback(ctx)
				return a.ensureLogin(ctx, user, opts, false)
			}
			return LoginResult{}, fmt.Errorf("create role: %w", err)
		}
		if err := markRole(ctx, a.conn, tx, user, "the base user of the pair "+user+" / "+workflow.Alternate(user)); err != nil {
			return LoginResult{}, err
		}
	case p.giveLogin:
		if _, err := tx.Exec(ctx, "ALTER ROLE "+ident(user)+" WITH LOGIN"); err != nil {
			return LoginResult{}, fmt.Errorf("give LOGIN: %w", err)
		}
	}
	for _, g := range p.grants {
		if _, err := tx.Exec(ctx, g.sql()); err != nil {
			return LoginResult{}, fmt.Errorf("grant %s on %s to %s: %w", g.privilege, g.object, g.role, err)
		}
	}
	// A GRANT the admin may not give only warns ("no privileges were granted"): check.
	if err := checkLoginPrivileges(ctx, tx, p.db, user); err != nil {
		return LoginResult{}, err
	}
	if err := tx.Commit(ctx); err != nil {
		return LoginResult{}, fmt.Errorf("commit: %w", err)
	}
	return LoginResult{Created: p.create, Adopted: p.adopted}, nil
}

// planLogin reads what EnsureLogin needs and refuses any takeover; it changes nothing.
func (a *Admin) planLogin(ctx context.Context, user string, opts LoginOptions) (loginPlan, error) {
	alt := workflow.Alternate(user)
	isClone := alt+workflow.CloneSuffix == user
	if err := a.refuseReserved(user, alt); err != nil {
		return loginPlan{}, err
	}
	var p loginPlan
	if err := a.conn.QueryRow(ctx, "SELECT current_database()::text").Scan(&p.db); err != nil {
		return p, fmt.Errorf("read the current database: %w", err)
	}
	u, err := role(ctx, a.conn, user)
	missing := errors.Is(err, ErrRoleNotFound)
	if err != nil && !missing {
		return p, err
	}
	if missing && isClone {
		return p, &RefusedRole{Role: user, Reason: fmt.Sprintf("it is the clone of %q and does not exist: only the base user is created here, and CloneUser makes its clone", alt)}
	}
	a2, err := role(ctx, a.conn, alt)
	altMissing := errors.Is(err, ErrRoleNotFound)
	if err != nil && !altMissing {
		return p, err
	}
	grantees := []string{user}
	check := []roleInfo{}
	if !missing {
		check = append(check, u)
	}
	if !altMissing {
		check = append(check, a2)
		grantees = append(grantees, alt)
	}
	for _, r := range check {
		if err := a.checkTakeover(ctx, user, r, opts, &p); err != nil {
			return p, err
		}
	}
	p.create = missing
	p.giveLogin = !missing && !u.login
	p.grants, err = a.plannedGrants(ctx, p.db, grantees, user, missing)
	return p, err
}

// refuseReserved refuses the pair of user and its alternate alt when either is a reserved
// role or the admin pgrotate connects as.
func (a *Admin) refuseReserved(user, alt string) error {
	for _, name := range []string{user, alt} {
		if why := reservedRole(name); why != "" {
			return &RefusedRole{Role: user, Reason: fmt.Sprintf("%q: %s", name, why)}
		}
		if a.isAdmin(name) {
			return &RefusedRole{Role: user, Reason: fmt.Sprintf("%q is the admin user pgrotate connects as; the app users must not be", name)}
		}
	}
	return nil
}

// plannedGrants are the privileges on db that the grantees lack; user is about to be created
// when missing.
func (a *Admin) plannedGrants(ctx context.Context, db string, grantees []string, user string, missing bool) ([]privilegeGrant, error) {
	var grants []privilegeGrant
	for _, g := range grantees {
		need, err := missingPrivileges(ctx, a.conn, db, g, g == user && missing)
		if err != nil {
			return grants, err
		}
		grants = append(grants, need...)
	}
	return grants, nil
}

// checkTakeover refuses an existing role of the pair that pgrotate must not change: a
// superuser, an rds_superuser member, or (without opts.Adopt) a role it did not create.
func (a *Admin) checkTakeover(ctx context.Context, user string, r roleInfo, opts LoginOptions, p *loginPlan) error {
	which := "it"
	if r.name != user {
		which = fmt.Sprintf("its alternate %q", r.name)
	}
	if r.super {
		return &RefusedRole{Role: user, Reason: which + " is a superuser; pgrotate rotates ordinary login users"}
	}
	var rdsSuper bool
	err := a.conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles s
		WHERE s.rolname = 'rds_superuser' AND pg_has_role($1::oid, s.oid, 'MEMBER'))`, r.oid).Scan(&rdsSuper)
	if err != nil {
		return fmt.Errorf("check the memberships of %s: %w", r.name, err)
	}
	if rdsSuper {
		return &RefusedRole{Role: user, Reason: which + " is a member of rds_superuser; pgrotate rotates ordinary login users"}
	}
	managed, err := isManaged(ctx, a.conn, r.oid)
	if err != nil {
		return fmt.Errorf("read the comment of %s: %w", r.name, err)
	}
	if managed {
		return nil
	}
	if !opts.Adopt {
		return &UnmanagedRole{Role: r.name}
	}
	p.adopted = append(p.adopted, r.name)
	return nil
}

// isManaged reports whether the role's comment carries ManagedMark.
func isManaged(ctx context.Context, q queryer, oid uint32) (bool, error) {
	var comment *string
	if err := q.QueryRow(ctx, "SELECT shobj_description($1::oid, 'pg_authid')", oid).Scan(&comment); err != nil {
		return false, err
	}
	return comment != nil && strings.HasPrefix(*comment, ManagedMark), nil
}

// markRole sets ManagedMark as the comment of a role pgrotate just created.
func markRole(ctx context.Context, conn *pgx.Conn, tx pgx.Tx, name, what string) error {
	lit, err := literal(conn, ManagedMark+": created by pgrotate as "+what)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "COMMENT ON ROLE "+ident(name)+" IS "+lit); err != nil {
		return fmt.Errorf("mark role %s as pgrotate's: %w", name, err)
	}
	return nil
}

// missingPrivileges lists the grants role lacks among CONNECT on db and USAGE, CREATE on
// the public schema, held directly (in the ACL, from any grantor): CheckParity compares the
// pair's direct grants, so a privilege the clone inherits from the base does not count. A
// role about to be created (create) lacks them all.
func missingPrivileges(ctx context.Context, q queryer, db, role string, create bool) ([]privilegeGrant, error) {
	connect, usage, createOn := false, false, false
	if !create {
		err := q.QueryRow(ctx, `WITH r AS (SELECT oid FROM pg_roles WHERE rolname = $1)
			SELECT EXISTS (SELECT 1 FROM pg_database d, aclexplode(d.datacl) x, r
					WHERE d.datname = $2 AND x.grantee = r.oid AND x.privilege_type = 'CONNECT'),
				EXISTS (SELECT 1 FROM pg_namespace n, aclexplode(n.nspacl) x, r
					WHERE n.nspname = 'public' AND x.grantee = r.oid AND x.privilege_type = 'USAGE'),
				EXISTS (SELECT 1 FROM pg_namespace n, aclexplode(n.nspacl) x, r
					WHERE n.nspname = 'public' AND x.grantee = r.oid AND x.privilege_type = 'CREATE')`, role, db).
			Scan(&connect, &usage, &createOn)
		if err != nil {
			return nil, fmt.Errorf("read the grants of %s: %w", role, err)
		}
	}
	var out []privilegeGrant
	if !connect {
		out = append(out, privilegeGrant{"CONNECT", "DATABASE " + ident(db), role})
	}
	switch {
	case !usage && !createOn:
		out = append(out, privilegeGrant{"USAGE, CREATE", "SCHEMA public", role})
	case !usage:
		out = append(out, privilegeGrant{"USAGE", "SCHEMA public", role})
	case !createOn:
		out = append(out, privilegeGrant{"CREATE", "SCHEMA public", role})
	}
	return out, nil
}

// checkLoginPrivileges fails unless user can connect to db and use and create in its public
// schema, whether by these grants, earlier ones or PUBLIC's.
func checkLoginPrivileges(ctx context.Context, tx pgx.Tx, db, user string) error {
	var connect, usage, create bool
	err := tx.QueryRow(ctx, `SELECT has_database_privilege($1, $2, 'CONNECT'),
		has_schema_privilege($1, 'public', 'USAGE'), has_schema_privilege($1, 'public', 'CREATE')`, user, db).
		Scan(&connect, &usage, &create)
	if err != nil {
		return fmt.Errorf("check the privileges of %s: %w", user, err)
	}
	var missing []string
	if !connect {
		missing = append(missing, "CONNECT on database "+db)
	}
	if !usage {
		missing = append(missing, "USAGE on schema public")
	}
	if !create {
		missing = append(missing, "CREATE on schema public")
	}
	if len(missing) > 0 {
		return fmt.Errorf("the admin could not grant %s to %s (it needs to own them or hold them WITH GRANT OPTION)", strings.Join(missing, ", "), user)
	}
	return nil
}
