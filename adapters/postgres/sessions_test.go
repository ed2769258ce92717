package postgres

import (
	"testing"
	"time"

	"github.com/pgrotate/pgrotate/local/pgcluster"
)

func TestSessionCount(t *testing.T) {
	ctx, f := setup(t)
	a := f.admin(t, ctx)
	user, pw := f.newUser(t, ctx, "sess_")

	count := func(want int, get func() (int, error)) {
		t.Helper()
		// A closed session's backend exits asynchronously: wait for it, bounded by the
		// test's deadline.
		for {
			n, err := get()
			if err != nil {
				t.Fatal(err)
			}
			if n == want {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%d sessions; want %d", n, want)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	onPrimary := func() (int, error) { return a.SessionCount(ctx, user) }

	count(0, onPrimary)
	conn, err := Connect(ctx, target(f.primary, pgcluster.AppDatabase, user, pw, ""), f.opts)
	if err != nil {
		t.Fatal(err)
	}
	count(1, onPrimary)
	conn.Close(ctx)
	count(0, onPrimary)

	// The admin's own backend is not counted; another admin session is.
	self := func() (int, error) { return a.SessionCount(ctx, f.adminUser) }
	count(0, self)
	other := f.admin(t, ctx)
	count(1, self)
	other.Close(ctx)
	count(0, self)

	// On the replica, through the adapter the steps use.
	if err := f.c.WaitReplayed(ctx); err != nil {
		t.Fatal(err)
	}
	adminOnReplica := target(f.replica, pgcluster.AppDatabase, f.adminUser, f.adminPW, "")
	pg := PG{Options: f.opts}
	onReplica := func() (int, error) { return pg.Sessions(ctx, adminOnReplica, user) }
	count(0, onReplica)
	rconn, err := Connect(ctx, target(f.replica, pgcluster.AppDatabase, user, pw, ""), f.opts)
	if err != nil {
		t.Fatal(err)
	}
	count(1, onReplica)
	rconn.Close(ctx)
	count(0, onReplica)
}
