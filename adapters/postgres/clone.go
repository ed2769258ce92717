package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgrotate/pgrotate/workflow"
)

// CloneRole makes pending the twin of active (see the package doc): it creates the clone in
// one transaction, or repairs an existing pending user, then checks parity. Running it again
// changes nothing. Errors: *workflow.ActiveUserMissing, *workflow.PrivilegeMismatch,
// *workflow.InvalidRoleName, *RefusedRole.
func (a *Admin) CloneRole(ctx context.Context, active, pending string) error {
	p, err := pairOf(active, pending)
	if err != nil {
		return fmt.Errorf("clone role %s: %w", active, err)
	}
	act, err := role(ctx, a.conn, active)
	if errors.Is(err, ErrRoleNotFound) {
		return &workflow.ActiveUserMissing{User: active}
	}
	if err != nil {
		return fmt.Errorf("clone role %s: %w", active, err)
	}
	if act.super {
		return &RefusedRole{Role: active, Reason: "the active user is a superuser; pgrotate rotates ordinary login users"}
	}
	if a.isAdmin(active) || a.isAdmin(pending) {
		return &RefusedRole{Role: pending, Reason: "the app users must not be the admin user"}
	}
	pend, err := role(ctx, a.conn, pending)
	switch {
	case errors.Is(err, ErrRoleNotFound):
		if pending == p.base {
			// Creating the base for an active clone would need ALTER ROLE on the active
			// user (membership, role setting) and would change what its sessions run as.
			return fmt.Errorf("clone role %s: pending user %q (the base of %q) does not exist; pgrotate only creates the clone of an active base user", active, pending, active)
		}
		created, err := a.create(ctx, act, p)
		if err != nil {
			return fmt.Errorf("clone role %s into %s: %w", active, pending, err)
		}
		if !created { // created concurrently by someone else: repair it like any other
			return a.CloneRole(ctx, active, pending)
		}
	case err != nil:
		return fmt.Errorf("clone role %s: %w", active, err)
	default:
		if pend.super {
			return &RefusedRole{Role: pending, Reason: "the pending user is a superuser"}
		}
		if err := a.repair(ctx, act, pend, p); err != nil {
			return fmt.Errorf("repair role %s as the twin of %s: %w", pending, active, err)
		}
	}
	return a.CheckParity(ctx, active, pending)
}

func (a *Admin) isAdmin(name string) bool { return name == a.at.User || name == a.session }

// create makes the clone in one transaction; false means it already existed (a concurrent
// run won the race), in which case nothing was changed.
func (a *Admin) create(ctx context.Context, act roleInfo, p pair) (created bool, err error) {
	clone := ident(p.clone)
	opts, err := a.cloneOptions(act)
	if err != nil {
		return false, err
	}
	roleLit, err := literal(a.conn, p.base)
	if err != nil {
		return false, err
	}
	members, err := memberships(ctx, a.conn, []uint32{act.oid})
	if err != nil {
		return false, err
	}
	grants, err := directGrants(ctx, a.conn, []uint32{act.oid})
	if err != nil {
		return false, err
	}

	tx, err := a.conn.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "CREATE ROLE "+clone+" WITH "+strings.Join(opts, " ")); err != nil {
		if sqlState(err) == "42710" { // duplicate_object
			return false, nil
		}
		return false, fmt.Errorf("create role: %w", err)
	}
	// The mark lets a later bootstrap of the pair recognise the clone as pgrotate's own.
	if err := markRole(ctx, a.conn, tx, p.clone, "the clone of "+p.base); err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, "GRANT "+ident(p.base)+" TO "+clone); err != nil {
		return false, fmt.Errorf("grant %s to %s: %w", p.base, p.clone, err)
	}
	if _, err := tx.Exec(ctx, "ALTER ROLE "+clone+" SET role = "+roleLit); err != nil {
		return false, fmt.Errorf("set role of %s: %w", p.clone, err)
	}
	if err := copyGrants(ctx, tx, members[act.oid], grants[act.oid], p.clone); err != nil {
		return false, err
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("commit: %w", err)
	}
	return true, nil
}

// cloneOptions are the CREATE ROLE options that give the clone the active user's attributes.
func (a *Admin) cloneOptions(act roleInfo) ([]string, error) {
	opts := []string{"LOGIN", flag("INHERIT", act.inherit), flag("CREATEDB", act.createDB), flag("CREATEROLE", act.createRole),
		fmt.Sprintf("CONNECTION LIMIT %d", act.connLimit)}
	if act.validUntil.Valid {
		lit, err := literal(a.conn, act.expires())
		if err != nil {
			return nil, err
		}
		opts = append(opts, "VALID UNTIL "+lit)
	}
	return opts, nil
}

// copyGrants gives the role cloneName the active user's memberships and direct grants. Each
// is best effort: the admin may lack the right to give it, and the parity check that
// follows names what is missing.
func copyGrants(ctx context.Context, tx pgx.Tx, members []membership, grants []grant, cloneName string) error {
	clone := ident(cloneName)
	for _, m := range members {
		stmt := "GRANT " + ident(m.role) + " TO " + clone
		if m.adminOption {
			stmt += " WITH ADMIN OPTION"
		}
		if err := tryExec(ctx, tx, stmt); err != nil {
			return fmt.Errorf("grant membership in %s to %s: %w", m.role, cloneName, err)
		}
	}
	for _, g := range grants {
		stmt, err := grantStatement(g, clone)
		if err != nil {
			return err
		}
		if err := tryExec(ctx, tx, stmt); err != nil {
			return fmt.Errorf("grant %s to %s: %w", g.key(), cloneName, err)
		}
	}
	return nil
}

// repair aligns an existing pending user with the active one. Only the pending user is
// altered: the pair link is repaired when the pending user is the clone, and otherwise left
// to the parity check, since it lives on the active clone.
func (a *Admin) repair(ctx context.Context, act, pend roleInfo, p pair) error {
	opts, err := a.attributeRepairs(act, pend)
	if err != nil {
		return err
	}
	var link, setting bool
	if pend.name == p.clone {
		if link, setting, err = a.linkRepairs(ctx, pend, p); err != nil {
			return err
		}
	}
	if len(opts) == 0 && !link && !setting {
		return nil
	}

	tx, err := a.conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if len(opts) > 0 {
		if _, err := tx.Exec(ctx, "ALTER ROLE "+ident(pend.name)+" WITH "+strings.Join(opts, " ")); err != nil {
			return fmt.Errorf("alter attributes: %w", err)
		}
	}
	if link {
		if _, err := tx.Exec(ctx, "GRANT "+ident(p.base)+" TO "+ident(p.clone)); err != nil {
			return fmt.Errorf("grant %s to %s: %w", p.base, p.clone, err)
		}
	}
	if setting {
		if err := a.setCloneRole(ctx, tx, p); err != nil {
			return err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// attributeRepairs are the ALTER ROLE options that give the pending user the active one's
// attributes, and LOGIN.
func (a *Admin) attributeRepairs(act, pend roleInfo) ([]string, error) {
	var opts []string
	if !pend.login {
		opts = append(opts, "LOGIN") // the pending user must log in, whatever the active one does
	}
	for _, x := range []struct {
		name string
		a, p bool
	}{
		{"INHERIT", act.inherit, pend.inherit},
		{"CREATEDB", act.createDB, pend.createDB},
		{"CREATEROLE", act.createRole, pend.createRole},
	} {
		if x.a != x.p {
			opts = append(opts, flag(x.name, x.a))
		}
	}
	if act.connLimit != pend.connLimit {
		opts = append(opts, fmt.Sprintf("CONNECTION LIMIT %d", act.connLimit))
	}
	// VALID UNTIL is left to SetPassword: copying the active user's here would clear a
	// retirement while the pending user still has its old password.
	return opts, nil
}

// linkRepairs reports whether the clone pend lacks membership in the base user (link) or
// its "SET role" to it (setting).
func (a *Admin) linkRepairs(ctx context.Context, pend roleInfo, p pair) (link, setting bool, err error) {
	members, err := memberships(ctx, a.conn, []uint32{pend.oid})
	if err != nil {
		return false, false, err
	}
	settings, err := roleSettings(ctx, a.conn, pend.oid)
	if err != nil {
		return false, false, err
	}
	return !memberOf(members[pend.oid], p.base), settings[""] != p.base, nil
}

// setCloneRole makes the clone's sessions act as the base user.
func (a *Admin) setCloneRole(ctx context.Context, tx pgx.Tx, p pair) error {
	lit, err := literal(a.conn, p.base)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "ALTER ROLE "+ident(p.clone)+" SET role = "+lit); err != nil {
		return fmt.Errorf("set role of %s: %w", p.clone, err)
	}
	return nil
}

// privileges each kind of object accepts in GRANT; anything else read from a catalog is
// refused rather than pasted into SQL.
var grantable = map[string]map[string]bool{
	"table":    set("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"),
	"sequence": set("SELECT", "UPDATE", "USAGE"),
	"column":   set("SELECT", "INSERT", "UPDATE", "REFERENCES"),
	"schema":   set("USAGE", "CREATE"),
	"routine":  set("EXECUTE"),
	"type":     set("USAGE"),
	"database": set("CREATE", "CONNECT", "TEMPORARY"),
}

func set(xs ...string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

// grantStatement renders the GRANT that gives g to the (quoted) grantee.
func grantStatement(g grant, grantee string) (string, error) {
	if !grantable[g.kind][g.priv] {
		return "", fmt.Errorf("unexpected privilege %q on %s", g.priv, g.object())
	}
	var on string
	switch g.kind {
	case "table":
		on = "TABLE " + pgx.Identifier{g.schema, g.name}.Sanitize()
	case "sequence":
		on = "SEQUENCE " + pgx.Identifier{g.schema, g.name}.Sanitize()
	case "column":
		on = "TABLE " + pgx.Identifier{g.schema, g.name}.Sanitize()
	case "schema":
		on = "SCHEMA " + ident(g.name)
	case "routine":
		// The argument list is the server's own rendering (pg_get_function_identity_arguments),
		// made to be pasted into ALTER/GRANT: its identifiers are quoted by the server.
		on = "ROUTINE " + pgx.Identifier{g.schema, g.name}.Sanitize() + "(" + g.args + ")"
	case "type":
		on = "TYPE " + pgx.Identifier{g.schema, g.name}.Sanitize()
	case "database":
		on = "DATABASE " + ident(g.name)
	}
	priv := g.priv
	if g.kind == "column" {
		priv += " (" + ident(g.column) + ")"
	}
	stmt := "GRANT " + priv + " ON " + on + " TO " + grantee
	if g.grantable {
		stmt += " WITH GRANT OPTION"
	}
	return stmt, nil
}

// tryExec runs stmt inside a savepoint; a permission error (42501) is rolled back and
// tolerated, any other error returned.
func tryExec(ctx context.Context, tx pgx.Tx, stmt string) error {
	if _, err := tx.Exec(ctx, "SAVEPOINT pgrotate_try"); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, stmt); err != nil {
		if sqlState(err) != "42501" {
			return err
		}
		if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT pgrotate_try"); err != nil {
			return err
		}
	}
	_, err := tx.Exec(ctx, "RELEASE SAVEPOINT pgrotate_try")
	return err
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}
