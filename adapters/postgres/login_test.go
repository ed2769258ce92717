package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgrotate/pgrotate/local/pgcluster"
	"github.com/pgrotate/pgrotate/local/pgcluster/pgtest"
	"github.com/pgrotate/pgrotate/workflow"
)

func TestEnsureLogin(t *testing.T) {
	ctx, f := setup(t)
	primaryStart := logSize(t, f.c.Primary.LogFile)
	replicaStart := logSize(t, f.c.Replica.LogFile)
	a := f.admin(t, ctx)
	user := uniqueName("boot_")
	pw := randomPassword(t)
	var plaintexts, verifiers []string

	f.rejected(t, ctx, f.primary, user, pw)
	res, err := a.EnsureLogin(ctx, user, pw, LoginOptions{})
	lsn := res.LSN
	if err != nil || !lsnRE.MatchString(lsn) {
		t.Fatalf("EnsureLogin = %q, %v; want an LSN, nil", lsn, err)
	}
	plaintexts = append(plaintexts, pw.Reveal())
	verifiers = append(verifiers, f.storedVerifier(t, ctx, user))
	if cur, sess := f.login(t, ctx, f.primary, user, pw); cur != user || sess != user {
		t.Fatalf("login as %s: current_user %q, session_user %q", user, cur, sess)
	}
	r, err := role(ctx, a.conn, user)
	if err != nil {
		t.Fatal(err)
	}
	if !r.login || r.super || r.createRole || r.createDB || r.repl || r.bypassRLS {
		t.Errorf("created role %+v; want LOGIN and no other privilege", r)
	}

	// The replica has the user once it has replayed the returned position.
	waitCaughtUp(t, ctx, f, lsn)
	f.login(t, ctx, f.replica, user, pw)

	// The user can create and use a table; the replica serves it.
	app := f.conn(t, ctx, f.primary, user, pw)
	table := ident(uniqueName("boot_table_"))
	mustExec(t, ctx, app, "CREATE TABLE "+table+" (id int PRIMARY KEY, note text)", "INSERT INTO "+table+" VALUES (1, 'first')")
	var owner string
	if err := app.QueryRow(ctx, "SELECT tableowner::text FROM pg_tables WHERE schemaname = 'public' AND tablename = $1", strings.Trim(table, `"`)).Scan(&owner); err != nil || owner != user {
		t.Fatalf("owner of %s = %q, %v; want %s", table, owner, err, user)
	}
	if err := f.c.WaitReplayed(ctx); err != nil {
		t.Fatal(err)
	}
	var note string
	if err := f.conn(t, ctx, f.replica, user, pw).QueryRow(ctx, "SELECT note FROM "+table+" WHERE id = 1").Scan(&note); err != nil || note != "first" {
		t.Fatalf("read %s on the replica: %q, %v", table, note, err)
	}

	t.Run("twice changes nothing", func(t *testing.T) {
		before := f.storedVerifier(t, ctx, user)
		snap := pgtest.Snapshot(t, ctx, f.c, pgcluster.AppDatabase)
		res2, err := a.EnsureLogin(ctx, user, pw, LoginOptions{})
		lsn2 := res2.LSN
		if d := pgtest.SnapshotDiff(snap, pgtest.Snapshot(t, ctx, f.c, pgcluster.AppDatabase)); d != "" {
			t.Errorf("the second EnsureLogin changed roles or ACLs:\n%s", d)
		}
		if res2.Created || len(res2.Adopted) > 0 {
			t.Errorf("the second EnsureLogin: created %v, adopted %v; want its own role recognised", res2.Created, res2.Adopted)
		}
		if err != nil || !lsnRE.MatchString(lsn2) {
			t.Fatalf("second EnsureLogin = %q, %v", lsn2, err)
		}
		if f.storedVerifier(t, ctx, user) != before {
			t.Error("the second EnsureLogin changed the password")
		}
		f.login(t, ctx, f.primary, user, pw)
	})

	t.Run("a new password replaces the old one", func(t *testing.T) {
		pw2 := randomPassword(t)
		res, err := a.EnsureLogin(ctx, user, pw2, LoginOptions{})
		lsn := res.LSN
		if err != nil {
			t.Fatal(err)
		}
		plaintexts = append(plaintexts, pw2.Reveal())
		verifiers = append(verifiers, f.storedVerifier(t, ctx, user))
		f.rejected(t, ctx, f.primary, user, pw)
		f.login(t, ctx, f.primary, user, pw2)
		waitCaughtUp(t, ctx, f, lsn)
		f.login(t, ctx, f.replica, user, pw2)
		f.rejected(t, ctx, f.replica, user, pw)
	})

	t.Run("an adopted role without LOGIN or grants is repaired", func(t *testing.T) {
		nologin := uniqueName("boot_nologin_")
		f.exec(t, ctx, "CREATE ROLE "+ident(nologin)+" NOLOGIN")
		pw := randomPassword(t)
		res, err := a.EnsureLogin(ctx, nologin, pw, LoginOptions{Adopt: true})
		if err != nil {
			t.Fatal(err)
		}
		if res.Created || len(res.Adopted) != 1 || res.Adopted[0] != nologin {
			t.Errorf("EnsureLogin(adopt) = created %v, adopted %v; want adopted [%s]", res.Created, res.Adopted, nologin)
		}
		plaintexts = append(plaintexts, pw.Reveal())
		verifiers = append(verifiers, f.storedVerifier(t, ctx, nologin))
		conn := f.conn(t, ctx, f.primary, nologin, pw)
		mustExec(t, ctx, conn, "CREATE TABLE "+ident(uniqueName("boot_t_"))+" (v int)")
	})

	t.Run("the alternate gets the same grants", func(t *testing.T) {
		base := uniqueName("boot_pair_")
		basePW := randomPassword(t)
		if _, err := a.EnsureLogin(ctx, base, basePW, LoginOptions{}); err != nil {
			t.Fatal(err)
		}
		clone := workflow.Alternate(base)
		if err := a.CloneRole(ctx, base, clone); err != nil {
			t.Fatal(err)
		}
		// An operator took a grant from the clone; the bootstrap of the base puts it back,
		// so the next rotation does not stop on a PrivilegeMismatch.
		f.exec(t, ctx, "REVOKE CREATE ON SCHEMA public FROM "+ident(clone))
		var pm *workflow.PrivilegeMismatch
		if err := a.CheckParity(ctx, base, clone); !errors.As(err, &pm) {
			t.Fatalf("CheckParity after the REVOKE = %v; want a mismatch (is the setup right?)", err)
		}
		if _, err := a.EnsureLogin(ctx, base, basePW, LoginOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := a.CheckParity(ctx, base, clone); err != nil {
			t.Fatalf("CheckParity after EnsureLogin: %v", err)
		}
		// After a rotation AWSCURRENT names the clone: EnsureLogin on it works too.
		clonePW := randomPassword(t)
		if _, err := a.EnsureLogin(ctx, clone, clonePW, LoginOptions{}); err != nil {
			t.Fatal(err)
		}
		plaintexts = append(plaintexts, basePW.Reveal(), clonePW.Reveal())
		verifiers = append(verifiers, f.storedVerifier(t, ctx, base), f.storedVerifier(t, ctx, clone))
		if cur, sess := f.login(t, ctx, f.primary, clone, clonePW); cur != base || sess != clone {
			t.Errorf("clone login: current_user %q, session_user %q; want %s, %s", cur, sess, base, clone)
		}
		if err := a.CheckParity(ctx, base, clone); err != nil {
			t.Fatalf("CheckParity after EnsureLogin of the clone: %v", err)
		}
	})

	t.Run("refusals change nothing", func(t *testing.T) {
		var refused *RefusedRole
		for _, name := range []string{f.adminUser, "postgres", f.adminUser + workflow.CloneSuffix} {
			if _, err := a.EnsureLogin(ctx, name, randomPassword(t), LoginOptions{}); !errors.As(err, &refused) {
				t.Errorf("EnsureLogin(%s) = %v; want *RefusedRole", name, err)
			}
		}
		// A missing clone is not created: it would lack the pair link.
		orphan := uniqueName("boot_orphan_") + workflow.CloneSuffix
		if _, err := a.EnsureLogin(ctx, orphan, randomPassword(t), LoginOptions{}); err == nil || !strings.Contains(err.Error(), "clone") {
			t.Errorf("EnsureLogin(missing clone) = %v; want an error naming the clone", err)
		}
		// A base user whose alternate is a superuser is refused before it is created.
		super := uniqueName("boot_super_")
		su, err := f.c.Superuser(ctx, f.c.Primary)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = su.Close(context.Background()) }) // after the DROP below (cleanups run last-in first-out)
		mustExec(t, ctx, su, "CREATE ROLE "+ident(workflow.Alternate(super))+" SUPERUSER NOLOGIN")
		t.Cleanup(func() { _, _ = su.Exec(context.Background(), "DROP ROLE "+ident(workflow.Alternate(super))) })
		if _, err := a.EnsureLogin(ctx, super, randomPassword(t), LoginOptions{}); !errors.As(err, &refused) {
			t.Errorf("EnsureLogin(base of a superuser) = %v; want *RefusedRole", err)
		}
		for _, name := range []string{orphan, super} {
			if ok, err := a.RoleExists(ctx, name); err != nil || ok {
				t.Errorf("role %s exists=%v, %v; want not created", name, ok, err)
			}
		}
		if _, err := a.EnsureLogin(ctx, uniqueName("boot_"), workflow.Password{}, LoginOptions{}); err == nil {
			t.Error("EnsureLogin accepted an empty password")
		}
		if _, err := a.EnsureLogin(ctx, uniqueName("boot_"), workflow.NewPassword("pässwörd"), LoginOptions{}); !errors.Is(err, ErrPasswordNotASCII) {
			t.Errorf("EnsureLogin(non-ASCII) = %v; want ErrPasswordNotASCII", err)
		}
	})

	t.Run("hostile names are refused before any SQL", func(t *testing.T) {
		canary := uniqueName("boot_canary_")
		f.exec(t, ctx, "CREATE TABLE "+ident(canary)+" (v int)")
		for _, name := range []string{
			`x"; DROP TABLE ` + canary + `; --`, `x'; DROP TABLE ` + canary + `; --`, `a"b`, "a b", "a\x00b",
			"héllo", "", "pg_monitor", "1abc", strings.Repeat("a", 58),
		} {
			var inv *workflow.InvalidRoleName
			if _, err := a.EnsureLogin(ctx, name, randomPassword(t), LoginOptions{}); !errors.As(err, &inv) {
				t.Errorf("EnsureLogin(%q) = %v; want *workflow.InvalidRoleName", name, err)
			}
		}
		var n int
		if err := a.conn.QueryRow(ctx, "SELECT count(*) FROM "+ident(canary)).Scan(&n); err != nil {
			t.Fatalf("canary table: %v", err)
		}
		if err := a.conn.QueryRow(ctx, `SELECT count(*) FROM pg_roles WHERE rolname ~ '[^A-Za-z0-9_]' OR rolname ~ '^a{58}'`).Scan(&n); err != nil || n != 0 {
			t.Fatalf("%d roles made from hostile names, %v", n, err)
		}
	})

	t.Run("an admin that cannot grant fails and creates nothing", func(t *testing.T) {
		// A CREATEROLE admin that does not own the app database's public schema: its GRANT
		// only warns, and the check must turn that into an error.
		weak := uniqueName("boot_weak_admin_")
		weakPW := randomPassword(t)
		v, err := scramVerifier(weakPW.Reveal())
		if err != nil {
			t.Fatal(err)
		}
		f.exec(t, ctx, fmt.Sprintf("CREATE ROLE %s LOGIN CREATEROLE PASSWORD '%s'", ident(weak), v))
		wa, err := OpenAdmin(ctx, target(f.primary, pgcluster.AppDatabase, weak, weakPW, ""), f.opts)
		if err != nil {
			t.Fatal(err)
		}
		defer wa.Close(ctx)
		name := uniqueName("boot_ungranted_")
		_, err = wa.EnsureLogin(ctx, name, randomPassword(t), LoginOptions{})
		if err == nil || !strings.Contains(err.Error(), "could not grant CREATE on schema public") {
			t.Fatalf("EnsureLogin by an admin without grant rights = %v; want the check to name CREATE on schema public", err)
		}
		if ok, err := a.RoleExists(ctx, name); err != nil || ok {
			t.Errorf("role %s exists=%v, %v; want rolled back", name, ok, err)
		}
	})

	t.Run("no password in the server logs", func(t *testing.T) {
		if err := f.c.WaitReplayed(ctx); err != nil {
			t.Fatal(err)
		}
		primaryLog := logSince(t, f.c.Primary.LogFile, primaryStart)
		replicaLog := logSince(t, f.c.Replica.LogFile, replicaStart)
		for name, log := range map[string][]byte{"primary": primaryLog, "replica": replicaLog} {
			for i, p := range plaintexts {
				if bytes.Contains(log, []byte(p)) {
					t.Errorf("%s log contains plaintext password #%d", name, i)
				}
			}
			for i, v := range verifiers {
				if bytes.Contains(log, []byte(scramKeys(v))) {
					t.Errorf("%s log contains verifier #%d", name, i)
				}
			}
		}
		// Control: statement logging is on, so the absences above mean something.
		if want := "statement: CREATE ROLE " + ident(user) + " WITH LOGIN"; !bytes.Contains(primaryLog, []byte(want)) {
			t.Errorf("primary log lacks %q: log_statement=all is not in effect", want)
		}
		if len(plaintexts) < 5 || len(verifiers) != len(plaintexts) {
			t.Errorf("scanned %d passwords and %d verifiers; the subtests above did not all run", len(plaintexts), len(verifiers))
		}
	})
}

// waitCaughtUp waits until the replica has replayed lsn.
func waitCaughtUp(t *testing.T, ctx context.Context, f fixture, lsn string) {
	t.Helper()
	r, err := OpenReplica(ctx, target(f.replica, pgcluster.AppDatabase, f.adminUser, f.adminPW, ""), f.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(context.Background())
	for {
		err := r.CaughtUp(ctx, lsn)
		if err == nil {
			return
		}
		var nr *workflow.ReplicaNotReady
		if !errors.As(err, &nr) {
			t.Fatalf("replica replay of %s: %v", lsn, err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("replica replay of %s: %v", lsn, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
