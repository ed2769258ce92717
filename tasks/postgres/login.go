package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgrotate/pgrotate/workflow"
)

// EnsureLogin makes user a login user of the connected database with password: the first
// app user of a new deployment (the bootstrap), before pgrotate takes over. It creates the
// role WITH LOGIN when it is missing (no password in the CREATE), gives LOGIN back to an
// existing role that lacks it, grants CONNECT on the connected database and USAGE, CREATE
// on its public schema, and then sets the password through SetPassword (a SCRAM verifier,
// only when the password does not already log in). It returns the primary's WAL position
// after the last change, which replicas must replay before the login works there.
//
// Running it again changes nothing. When the alternate user of the pair exists (a rotation
// already ran), it gets the same grants, so the two users stay alike (CheckParity). It only
// creates a base user: a missing clone is an error, since a clone made here would lack the
// pair link CloneRole gives it. A superuser, the admin itself or an admin alternate is a
// *RefusedRole, an invalid name a *workflow.InvalidRoleName; both before any SQL changes
// anything.
func (a *Admin) EnsureLogin(ctx context.Context, user string, password workflow.Password) (lsn string, err error) {
	if err := workflow.ValidateRoleName(user); err != nil {
		return "", err
	}
	if password.IsZero() {
		return "", fmt.Errorf("ensure login %s: the password is empty", user)
	}
	if err := checkPrintableASCII(password.Reveal()); err != nil {
		return "", fmt.Errorf("ensure login %s: %w", user, err)
	}
	alt := workflow.Alternate(user)
	if a.isAdmin(user) || a.isAdmin(alt) {
		return "", &RefusedRole{Role: user, Reason: "the app users must not be the admin user pgrotate connects as"}
	}
	if err := a.prepareLogin(ctx, user, alt, true); err != nil {
		return "", fmt.Errorf("ensure login %s: %w", user, err)
	}
	lsn, _, err = a.SetPassword(ctx, user, password)
	if err != nil {
		return "", fmt.Errorf("ensure login %s: %w", user, err)
	}
	return lsn, nil
}

// prepareLogin creates or repairs user and grants it (and its alternate, when that exists)
// the database and schema privileges, in one transaction. retry allows one more attempt
// when a concurrent run created the role first.
func (a *Admin) prepareLogin(ctx context.Context, user, alt string, retry bool) error {
	u, err := role(ctx, a.conn, user)
	missing := errors.Is(err, ErrRoleNotFound)
	if err != nil && !missing {
		return err
	}
	if !missing && u.super {
		return &RefusedRole{Role: user, Reason: "it is a superuser; pgrotate rotates ordinary login users"}
	}
	if missing && alt != user+workflow.CloneSuffix {
		return fmt.Errorf("role %s does not exist and is the clone of %s: only the base user is created here, and CloneUser makes its clone", user, alt)
	}
	grantees := []string{ident(user)}
	a2, err := role(ctx, a.conn, alt)
	switch {
	case errors.Is(err, ErrRoleNotFound):
	case err != nil:
		return err
	case a2.super:
		return &RefusedRole{Role: alt, Reason: "the alternate of the app user is a superuser"}
	default:
		grantees = append(grantees, ident(alt))
	}

	var db string
	if err := a.conn.QueryRow(ctx, "SELECT current_database()::text").Scan(&db); err != nil {
		return fmt.Errorf("read the current database: %w", err)
	}
	tx, err := a.conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	switch {
	case missing:
		// Every other attribute keeps its default (NOSUPERUSER, NOCREATEDB, NOCREATEROLE,
		// NOREPLICATION, NOBYPASSRLS); the password follows as a verifier.
		if _, err := tx.Exec(ctx, "CREATE ROLE "+ident(user)+" WITH LOGIN"); err != nil {
			if sqlState(err) == "42710" && retry { // created concurrently: start over once
				_ = tx.Rollback(ctx)
				return a.prepareLogin(ctx, user, alt, false)
			}
			return fmt.Errorf("create role: %w", err)
		}
	case !u.login:
		if _, err := tx.Exec(ctx, "ALTER ROLE "+ident(user)+" WITH LOGIN"); err != nil {
			return fmt.Errorf("give LOGIN: %w", err)
		}
	}
	to := strings.Join(grantees, ", ")
	if _, err := tx.Exec(ctx, "GRANT CONNECT ON DATABASE "+ident(db)+" TO "+to); err != nil {
		return fmt.Errorf("grant CONNECT on database %s: %w", db, err)
	}
	if _, err := tx.Exec(ctx, "GRANT USAGE, CREATE ON SCHEMA public TO "+to); err != nil {
		return fmt.Errorf("grant USAGE, CREATE on schema public: %w", err)
	}
	// A GRANT the admin may not give only warns ("no privileges were granted"): check.
	if err := checkLoginPrivileges(ctx, tx, db, user); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
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
