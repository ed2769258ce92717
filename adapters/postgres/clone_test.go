package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgrotate/pgrotate/local/pgcluster"
	"github.com/pgrotate/pgrotate/workflow"
)

func TestCloneRole(t *testing.T) {
	ctx, f := setup(t)
	a := f.admin(t, ctx)
	base, basePW := f.newUser(t, ctx, "cl_")
	clone := workflow.Alternate(base)
	readers := uniqueName("cl_readers_")
	tbl, col, seq, sch, fn, typ := base+"_t", base+"_c", base+"_s", base+"_schema", base+"_f", base+"_ty"
	b := ident(base)
	// Direct grants of every kind the clone must copy, on objects the admin owns.
	f.exec(t, ctx,
		"CREATE ROLE "+ident(readers),
		"GRANT "+ident(readers)+" TO "+b,
		"ALTER ROLE "+b+" CONNECTION LIMIT 7 VALID UNTIL '2099-06-01 12:00:00+00'",
		"CREATE TABLE "+ident(tbl)+" (id int, secretish text)",
		"GRANT SELECT, INSERT ON "+ident(tbl)+" TO "+b+" WITH GRANT OPTION",
		"CREATE TABLE "+ident(col)+" (id int, visible text, hidden text)",
		"GRANT SELECT (id, visible) ON "+ident(col)+" TO "+b,
		"CREATE SEQUENCE "+ident(seq),
		"GRANT USAGE ON SEQUENCE "+ident(seq)+" TO "+b,
		"CREATE SCHEMA "+ident(sch),
		"GRANT USAGE ON SCHEMA "+ident(sch)+" TO "+b,
		"CREATE FUNCTION "+ident(sch)+"."+ident(fn)+"(a int, b text) RETURNS int LANGUAGE sql AS 'SELECT a'",
		"REVOKE EXECUTE ON FUNCTION "+ident(sch)+"."+ident(fn)+"(int, text) FROM PUBLIC",
		"GRANT EXECUTE ON FUNCTION "+ident(sch)+"."+ident(fn)+"(int, text) TO "+b,
		"CREATE TYPE "+ident(typ)+" AS ENUM ('a')",
		"REVOKE USAGE ON TYPE "+ident(typ)+" FROM PUBLIC",
		"GRANT USAGE ON TYPE "+ident(typ)+" TO "+b,
		"GRANT TEMPORARY ON DATABASE "+ident(pgcluster.AppDatabase)+" TO "+b,
	)

	if err := a.CloneRole(ctx, base, clone); err != nil {
		t.Fatalf("first CloneRole: %v", err)
	}
	if err := a.CloneRole(ctx, base, clone); err != nil {
		t.Fatalf("second CloneRole: %v", err)
	}
	for _, dir := range [][2]string{{base, clone}, {clone, base}} {
		if diffs, err := a.Differences(ctx, dir[0], dir[1]); err != nil || len(diffs) != 0 {
			t.Fatalf("Differences(%s, %s) = %q, %v; want none", dir[0], dir[1], diffs, err)
		}
	}
	// The reverse direction (after the first rotation) is also a no-op.
	if err := a.CloneRole(ctx, clone, base); err != nil {
		t.Fatalf("CloneRole(clone, base): %v", err)
	}

	// The copied grants are really the clone's own, not only inherited through the base.
	su, err := f.c.Superuser(ctx, f.c.Primary)
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(ctx)
	var login, member bool
	var connLimit int
	var until string
	if err := su.QueryRow(ctx, `SELECT r.rolcanlogin, r.rolconnlimit, r.rolvaliduntil::text, pg_has_role(r.oid, $2::text, 'MEMBER')
		FROM pg_roles r WHERE r.rolname = $1`, clone, base).Scan(&login, &connLimit, &until, &member); err != nil {
		t.Fatal(err)
	}
	if !login || connLimit != 7 || !strings.HasPrefix(until, "2099-06-01") || !member {
		t.Errorf("clone: login=%v connlimit=%d until=%s member=%v", login, connLimit, until, member)
	}

	// Both users act as one owner.
	clonePW := randomPassword(t)
	if _, _, err := a.SetPassword(ctx, clone, clonePW); err != nil {
		t.Fatal(err)
	}
	asClone := f.conn(t, ctx, f.primary, clone, clonePW)
	asBase := f.conn(t, ctx, f.primary, base, basePW)
	byClone, byBase := base+"_by_clone", base+"_by_base"
	mustExec(t, ctx, asClone, "CREATE TABLE "+ident(byClone)+" (v int)", "INSERT INTO "+ident(byClone)+" VALUES (1)")
	mustExec(t, ctx, asBase, "CREATE TABLE "+ident(byBase)+" (v int)", "INSERT INTO "+ident(byBase)+" VALUES (2)")
	mustExec(t, ctx, asBase, "INSERT INTO "+ident(byClone)+" VALUES (3)", "UPDATE "+ident(byClone)+" SET v = v + 1", "DELETE FROM "+ident(byClone)+" WHERE v = 4")
	mustExec(t, ctx, asClone, "INSERT INTO "+ident(byBase)+" VALUES (5)", "ALTER TABLE "+ident(byBase)+" ADD COLUMN w int")
	for _, q := range []string{
		"SELECT count(*) FROM " + ident(byClone),
		"SELECT count(*) FROM " + ident(byBase),
		"SELECT count(*) FROM " + ident(tbl),
		"SELECT count(visible) FROM " + ident(col),
		"SELECT nextval('" + seq + "')",
		"SELECT " + ident(sch) + "." + ident(fn) + "(1, 'x')",
	} {
		for _, c := range []struct {
			who string
			err error
		}{
			{clone, execErr(ctx, asClone, q)},
			{base, execErr(ctx, asBase, q)},
		} {
			if c.err != nil {
				t.Errorf("as %s: %s: %v", c.who, q, c.err)
			}
		}
	}
	var owner string
	if err := asBase.QueryRow(ctx, "SELECT tableowner::text FROM pg_tables WHERE tablename = $1", byClone).Scan(&owner); err != nil || owner != base {
		t.Errorf("owner of the clone's table = %q, %v; want %q", owner, err, base)
	}
	// A fresh pair stays in parity after both used it.
	if err := a.CheckParity(ctx, base, clone); err != nil {
		t.Errorf("CheckParity after use: %v", err)
	}

	t.Run("active user missing", func(t *testing.T) {
		missing := uniqueName("cl_missing_")
		err := a.CloneRole(ctx, missing, workflow.Alternate(missing))
		var m *workflow.ActiveUserMissing
		if !errors.As(err, &m) || m.User != missing {
			t.Fatalf("got %v, want *workflow.ActiveUserMissing", err)
		}
		if exists, err := a.RoleExists(ctx, workflow.Alternate(missing)); err != nil || exists {
			t.Fatalf("clone of a missing user exists=%v, %v", exists, err)
		}
		if err := a.CheckParity(ctx, missing, workflow.Alternate(missing)); !errors.As(err, &m) {
			t.Fatalf("CheckParity: got %v, want *workflow.ActiveUserMissing", err)
		}
	})

	t.Run("active clone without its base", func(t *testing.T) {
		lone := uniqueName("cl_lone_") + workflow.CloneSuffix
		f.exec(t, ctx, "CREATE ROLE "+ident(lone)+" LOGIN")
		if err := a.CloneRole(ctx, lone, workflow.Alternate(lone)); err == nil {
			t.Fatal("created the base of an active clone")
		}
		if exists, _ := a.RoleExists(ctx, workflow.Alternate(lone)); exists {
			t.Fatal("base role was created")
		}
	})

	t.Run("repairs only the pending user", func(t *testing.T) {
		base2, _, clone2 := f.newPair(t, ctx, "cl_rep_")
		f.exec(t, ctx,
			"REVOKE "+ident(base2)+" FROM "+ident(clone2),
			"ALTER ROLE "+ident(clone2)+" RESET role",
			"ALTER ROLE "+ident(clone2)+" CONNECTION LIMIT 2",
		)
		// Active clone, pending base: the base takes the clone's attributes, but the pair
		// link lives on the active clone, so it is reported, not repaired.
		var pm *workflow.PrivilegeMismatch
		err := a.CloneRole(ctx, clone2, base2)
		if !errors.As(err, &pm) {
			t.Fatalf("CloneRole(active clone) = %v; want *workflow.PrivilegeMismatch", err)
		}
		got := strings.Join(pm.Differences, "\n")
		if len(pm.Differences) != 2 || !strings.Contains(got, "membership:") || !strings.Contains(got, "role setting:") {
			t.Fatalf("differences:\n%s\nwant exactly the membership and the role setting", got)
		}
		// Active base, pending clone: the link is repaired.
		if err := a.CloneRole(ctx, base2, clone2); err != nil {
			t.Fatalf("CloneRole(base, clone) after drift: %v", err)
		}
	})

	t.Run("pending keeps LOGIN", func(t *testing.T) {
		base3, _, clone3 := f.newPair(t, ctx, "cl_login_")
		f.exec(t, ctx, "ALTER ROLE "+ident(clone3)+" NOLOGIN")
		if err := a.CloneRole(ctx, base3, clone3); err != nil {
			t.Fatalf("CloneRole: %v", err)
		}
		var login bool
		if err := su.QueryRow(ctx, "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1", clone3).Scan(&login); err != nil || !login {
			t.Fatalf("clone LOGIN = %v, %v", login, err)
		}
	})
}

func execErr(ctx context.Context, conn *pgx.Conn, q string) error {
	_, err := conn.Exec(ctx, q)
	return err
}
