package pgcluster_test

import (
	"errors"
	"net"
	"strconv"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgrotate/pgrotate/internal/testctx"
	"github.com/pgrotate/pgrotate/local/pgcluster/pgtest"
)

// Stop ends the primary's sessions and refuses new ones while the replica keeps serving;
// Restart brings it back on the same port with its data, and the replica streams again.
func TestStopAndRestartThePrimary(t *testing.T) {
	ctx := testctx.Context(t)
	c := pgtest.Cluster(t)
	role, _ := pgtest.NewRole(t, "restart_", "NOLOGIN")
	// Registered after NewRole, so it runs before the role is dropped.
	t.Cleanup(func() {
		// Leave the shared cluster running whatever happened.
		ctx, cancel := testctx.CleanupContext(t)
		defer cancel()
		if err := c.Restart(ctx, c.Primary); err != nil {
			t.Errorf("restart: %v", err)
		}
	})
	port := c.Primary.Port
	session := superuser(t, ctx, c, c.Primary)

	if err := c.Stop(c.Primary); err != nil {
		t.Fatal(err)
	}
	// The open session was terminated by the fast shutdown.
	_, err := session.Exec(ctx, "SELECT 1")
	var pgErr *pgconn.PgError
	if err == nil || (errors.As(err, &pgErr) && pgErr.Code != "57P01") {
		t.Fatalf("a session across the stop: %v, want it terminated (57P01 or a closed connection)", err)
	}
	var d net.Dialer
	if conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(c.Primary.Host, strconv.Itoa(port))); !errors.Is(err, syscall.ECONNREFUSED) {
		if conn != nil {
			conn.Close()
		}
		t.Fatalf("TCP connect to the stopped primary: %v, want connection refused", err)
	}
	superuser(t, ctx, c, c.Replica) // the replica still serves

	if err := c.Restart(ctx, c.Primary); err != nil {
		t.Fatal(err)
	}
	if c.Primary.Port != port {
		t.Fatalf("restarted on port %d, want %d", c.Primary.Port, port)
	}
	if err := c.Restart(ctx, c.Primary); err != nil {
		t.Fatalf("Restart of a running server: %v", err)
	}
	conn := superuser(t, ctx, c, c.Primary)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1", role).Scan(&n); err != nil || n != 1 {
		t.Fatalf("role %s after the restart: count %d, %v", role, n, err)
	}
	// Streaming resumes: a change made after the restart reaches the replica.
	pgtest.NewRole(t, "restart_after_", "NOLOGIN")
	if err := c.WaitReplayed(ctx); err != nil {
		t.Fatalf("replica after the primary's restart: %v", err)
	}
}
