package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pgrotate/pgrotate/local/pgcluster"
	"github.com/pgrotate/pgrotate/workflow"
)

func TestSetPassword(t *testing.T) {
	ctx, f := setup(t)
	a := f.admin(t, ctx)
	base, basePW, clone := f.newPair(t, ctx, "pw_")

	// The clone has no password yet.
	p1 := randomPassword(t)
	f.rejected(t, ctx, f.primary, clone, p1)
	lsn, changed, err := a.SetPassword(ctx, clone, p1)
	if err != nil || !changed || !lsnRE.MatchString(lsn) {
		t.Fatalf("SetPassword(clone) = %q, %v, %v; want an LSN, true, nil", lsn, changed, err)
	}
	f.login(t, ctx, f.primary, clone, p1)
	f.login(t, ctx, f.primary, base, basePW) // the other user is untouched

	// Again with the same password: nothing changes, and the LSN is still reported.
	before := f.storedVerifier(t, ctx, clone)
	lsn2, changed, err := a.SetPassword(ctx, clone, p1)
	if err != nil || changed || !lsnRE.MatchString(lsn2) {
		t.Fatalf("repeated SetPassword = %q, %v, %v; want an LSN, false, nil", lsn2, changed, err)
	}
	if f.storedVerifier(t, ctx, clone) != before {
		t.Fatal("the repeated SetPassword altered the role")
	}

	// Changing the base: its old password stops working, the clone's keeps working.
	p2 := randomPassword(t)
	if _, changed, err := a.SetPassword(ctx, base, p2); err != nil || !changed {
		t.Fatalf("SetPassword(base) = %v, %v", changed, err)
	}
	f.rejected(t, ctx, f.primary, base, basePW)
	f.login(t, ctx, f.primary, base, p2)
	f.login(t, ctx, f.primary, clone, p1)

	// The stored verifier is SCRAM with PostgreSQL's default iterations.
	if v := f.storedVerifier(t, ctx, base); !strings.HasPrefix(v, "SCRAM-SHA-256$4096:") {
		t.Errorf("stored verifier has the wrong form (prefix %.20q)", v)
	}

	t.Run("replica", func(t *testing.T) {
		if err := f.c.WaitReplayed(ctx); err != nil {
			t.Fatal(err)
		}
		if err := f.c.PauseReplay(ctx); err != nil {
			t.Fatal(err)
		}
		resumed := false
		t.Cleanup(func() {
			if !resumed {
				_ = f.c.ResumeReplay(context.Background())
			}
		})
		r, err := OpenReplica(ctx, target(f.replica, pgcluster.AppDatabase, f.adminUser, f.adminPW, ""), f.opts)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close(ctx)

		p3 := randomPassword(t)
		lsn, changed, err := a.SetPassword(ctx, clone, p3)
		if err != nil || !changed {
			t.Fatalf("SetPassword = %v, %v", changed, err)
		}
		err = r.CaughtUp(ctx, lsn)
		var nr *workflow.ReplicaNotReady
		if !errors.As(err, &nr) || !strings.Contains(nr.Reason, lsn) || nr.Replica != f.replica.String() {
			t.Fatalf("CaughtUp while paused = %v; want *workflow.ReplicaNotReady naming the target %s", err, lsn)
		}
		replay, err := r.ReplayLSN(ctx)
		if err != nil || !strings.Contains(nr.Reason, replay) {
			t.Fatalf("ReplayLSN = %q, %v; reason %q should name it", replay, err, nr.Reason)
		}
		f.rejected(t, ctx, f.replica, clone, p3)
		f.login(t, ctx, f.replica, clone, p1) // the replica still has the old password

		if err := f.c.ResumeReplay(ctx); err != nil {
			t.Fatal(err)
		}
		resumed = true
		for {
			err := r.CaughtUp(ctx, lsn)
			if err == nil {
				break
			}
			if !errors.As(err, &nr) {
				t.Fatalf("CaughtUp after resume: %v", err)
			}
			select {
			case <-ctx.Done():
				t.Fatalf("CaughtUp after resume: %v", err)
			case <-time.After(100 * time.Millisecond):
			}
		}
		f.login(t, ctx, f.replica, clone, p3)
		f.rejected(t, ctx, f.replica, clone, p1)

		if err := r.CaughtUp(ctx, "not-an-lsn"); err == nil || errors.As(err, &nr) {
			t.Errorf("CaughtUp(garbage) = %v; want a plain error", err)
		}
	})

	t.Run("replica checks on a primary or an unreachable replica are not ReplicaNotReady", func(t *testing.T) {
		p, err := OpenReplica(ctx, target(f.primary, pgcluster.AppDatabase, f.adminUser, f.adminPW, ""), f.opts)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(ctx)
		var nr *workflow.ReplicaNotReady
		if err := p.CaughtUp(ctx, lsn); err == nil || errors.As(err, &nr) {
			t.Errorf("CaughtUp on the primary = %v; want a plain error", err)
		}
		down := workflow.Endpoint{Host: "127.0.0.1", Port: freePort(t)}
		_, err = OpenReplica(ctx, target(down, pgcluster.AppDatabase, f.adminUser, f.adminPW, ""), f.opts)
		if err == nil || errors.As(err, &nr) {
			t.Errorf("OpenReplica(down) = %v; want a plain error", err)
		}
		err = PG{Options: f.opts}.CaughtUp(ctx, target(down, "app", f.adminUser, f.adminPW, ""), lsn)
		if err == nil || errors.As(err, &nr) {
			t.Errorf("PG.CaughtUp(down) = %v; want a plain error", err)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		var refused *RefusedRole
		if _, _, err := a.SetPassword(ctx, f.adminUser, randomPassword(t)); !errors.As(err, &refused) {
			t.Errorf("SetPassword(admin) = %v; want *RefusedRole", err)
		}
		if _, _, err := a.SetPassword(ctx, "postgres", randomPassword(t)); !errors.As(err, &refused) {
			t.Errorf("SetPassword(superuser) = %v; want *RefusedRole", err)
		}
		if _, _, err := a.SetPassword(ctx, uniqueName("pw_missing_"), randomPassword(t)); !errors.Is(err, ErrRoleNotFound) {
			t.Errorf("SetPassword(missing) = %v; want ErrRoleNotFound", err)
		}
		if _, _, err := a.SetPassword(ctx, clone, workflow.Password{}); err == nil {
			t.Error("SetPassword accepted an empty password")
		}
		if _, _, err := a.SetPassword(ctx, clone, workflow.NewPassword("pässwörd")); !errors.Is(err, ErrPasswordNotASCII) {
			t.Errorf("SetPassword(non-ASCII) = %v; want ErrPasswordNotASCII", err)
		}
	})
}

func TestPasswordsStayOutOfTheServerLog(t *testing.T) {
	ctx, f := setup(t)
	primaryStart := logSize(t, f.c.Primary.LogFile)
	replicaStart := logSize(t, f.c.Replica.LogFile)

	// An admin like dbadmin but without SET on log_statement / log_min_error_statement.
	plainAdmin := uniqueName("log_admin_")
	plainPW := randomPassword(t)
	v, err := scramVerifier(plainPW.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	f.exec(t, ctx, fmt.Sprintf("CREATE ROLE %s LOGIN CREATEROLE PASSWORD '%s'", ident(plainAdmin), v))

	var plaintexts, quietVerifiers, loudVerifiers []string
	a := f.admin(t, ctx)
	base, _, clone := f.newPair(t, ctx, "log_")
	for i := 0; i < 3; i++ {
		for _, u := range []string{clone, base} {
			pw := randomPassword(t)
			if _, changed, err := a.SetPassword(ctx, u, pw); err != nil || !changed {
				t.Fatalf("SetPassword: %v, %v", changed, err)
			}
			f.login(t, ctx, f.primary, u, pw)
			plaintexts = append(plaintexts, pw.Reveal())
			quietVerifiers = append(quietVerifiers, f.storedVerifier(t, ctx, u))
		}
	}

	noGrant, err := OpenAdmin(ctx, target(f.primary, pgcluster.AppDatabase, plainAdmin, plainPW, ""), f.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer noGrant.Close(ctx)
	other, _ := f.newUser(t, ctx, "log_nogrant_")
	for i := 0; i < 2; i++ {
		pw := randomPassword(t)
		if _, changed, err := noGrant.SetPassword(ctx, other, pw); err != nil || !changed {
			t.Fatalf("SetPassword without SET privileges: %v, %v", changed, err)
		}
		f.login(t, ctx, f.primary, other, pw)
		plaintexts = append(plaintexts, pw.Reveal())
		loudVerifiers = append(loudVerifiers, f.storedVerifier(t, ctx, other))
	}
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
		for i, v := range quietVerifiers {
			if bytes.Contains(log, []byte(v)) || bytes.Contains(log, []byte(scramKeys(v))) {
				t.Errorf("%s log contains verifier #%d set by an admin allowed to silence the log", name, i)
			}
		}
	}
	// Controls: statement logging is on and sees what the admin without the grant sends,
	// so the absences above are meaningful; and its permission errors were tolerated.
	if !bytes.Contains(primaryLog, []byte("statement: SET LOCAL log_statement = 'none'")) {
		t.Error("primary log lacks the SET LOCAL statements: log_statement=all is not in effect")
	}
	for i, v := range loudVerifiers {
		if !bytes.Contains(primaryLog, []byte(scramKeys(v))) {
			t.Errorf("primary log lacks verifier #%d of the admin without SET privileges: the check above proves nothing", i)
		}
	}
	if !bytes.Contains(primaryLog, []byte(`permission denied to set parameter "log_statement"`)) {
		t.Error("no tolerated permission error in the log")
	}
}

// scramKeys is the verifier without its salt part, which PostgreSQL logs as is.
func scramKeys(v string) string {
	if i := strings.LastIndex(v, "$"); i >= 0 {
		return v[i+1:]
	}
	return v
}

func logSize(t *testing.T, path string) int {
	t.Helper()
	return len(readLog(t, path))
}

func logSince(t *testing.T, path string, offset int) []byte {
	t.Helper()
	return readLog(t, path)[offset:]
}

func readLog(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// freePort returns a TCP port nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}
