package pgcluster_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgrotate/pgrotate/internal/testctx"
	"github.com/pgrotate/pgrotate/local/pgcluster"
	"github.com/pgrotate/pgrotate/local/pgcluster/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// login connects with dsn and password, the way the code under test does.
func login(ctx context.Context, dsn, password string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.Password = password
	cfg.ConnectTimeout = 10 * time.Second
	return pgx.ConnectConfig(ctx, cfg)
}

func mustLogin(t *testing.T, ctx context.Context, dsn, password string) *pgx.Conn {
	t.Helper()
	conn, err := login(ctx, dsn, password)
	if err != nil {
		t.Fatalf("login with %q: %v", dsn, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func superuser(t *testing.T, ctx context.Context, c *pgcluster.Cluster, s *pgcluster.Server) *pgx.Conn {
	t.Helper()
	conn, err := c.Superuser(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func roleExists(t *testing.T, ctx context.Context, conn *pgx.Conn, role string) bool {
	t.Helper()
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT exists (SELECT 1 FROM pg_roles WHERE rolname = $1)", role).Scan(&ok); err != nil {
		t.Fatalf("look up role %s: %v", role, err)
	}
	return ok
}

func TestAdminLogsInOverVerifiedTLS(t *testing.T) {
	c := pgtest.Cluster(t)
	ctx := testctx.Context(t)
	tests := []struct {
		server       *pgcluster.Server
		wantRecovery bool
	}{
		{c.Primary, false},
		{c.Replica, true},
	}
	for _, tt := range tests {
		t.Run(tt.server.Name, func(t *testing.T) {
			conn := mustLogin(t, ctx, c.DSN(tt.server, c.AdminUser(), pgcluster.AppDatabase), c.AdminPassword())
			var (
				user, db, owner         string
				ssl, recovery           bool
				super, createRole, mkDB bool
			)
			err := conn.QueryRow(ctx, `
				SELECT current_user, current_database(), s.ssl, pg_is_in_recovery(),
				       r.rolsuper, r.rolcreaterole, r.rolcreatedb,
				       pg_get_userbyid(d.datdba)
				FROM pg_stat_ssl s, pg_roles r, pg_database d
				WHERE s.pid = pg_backend_pid() AND r.rolname = current_user AND d.datname = current_database()`,
			).Scan(&user, &db, &ssl, &recovery, &super, &createRole, &mkDB, &owner)
			if err != nil {
				t.Fatal(err)
			}
			if user != c.AdminUser() || db != pgcluster.AppDatabase || owner != c.AdminUser() {
				t.Errorf("user %q db %q owner %q; want %q, %q owned by it", user, db, owner, c.AdminUser(), pgcluster.AppDatabase)
			}
			if !ssl {
				t.Error("session is not encrypted")
			}
			if recovery != tt.wantRecovery {
				t.Errorf("pg_is_in_recovery() = %v, want %v", recovery, tt.wantRecovery)
			}
			if super || !createRole || !mkDB {
				t.Errorf("admin attributes super=%v createrole=%v createdb=%v; want false, true, true", super, createRole, mkDB)
			}
			// Granted SET ON PARAMETER: a plain role may not change these.
			for _, sql := range []string{"SET log_statement = 'none'", "SET log_min_error_statement = 'panic'"} {
				if _, err := conn.Exec(ctx, sql); err != nil {
					t.Errorf("%s as admin: %v", sql, err)
				}
			}
		})
	}
}

func TestAdminCannotSetOtherSuperuserParameters(t *testing.T) {
	// Proves the SET grants above are what allowed them, not superuser rights.
	c := pgtest.Cluster(t)
	ctx := testctx.Context(t)
	conn := mustLogin(t, ctx, c.DSN(c.Primary, c.AdminUser(), pgcluster.AppDatabase), c.AdminPassword())
	_, err := conn.Exec(ctx, "SET log_min_messages = 'debug1'")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		t.Fatalf("SET log_min_messages as admin: got %v, want insufficient_privilege (42501)", err)
	}
}

func TestRefusedLogins(t *testing.T) {
	c := pgtest.Cluster(t)
	ctx := testctx.Context(t)
	otherCA := pgtest.OtherCA(t)
	for _, s := range []*pgcluster.Server{c.Primary, c.Replica} {
		dsn := c.DSN(s, c.AdminUser(), pgcluster.AppDatabase)
		tests := []struct {
			name     string
			dsn      string
			password string
			check    func(error) bool
			want     string
		}{
			{
				name:     "wrong CA",
				dsn:      strings.Replace(dsn, "sslrootcert="+c.CAFile, "sslrootcert="+otherCA, 1),
				password: c.AdminPassword(),
				check: func(err error) bool {
					var certErr *tls.CertificateVerificationError
					return errors.As(err, &certErr)
				},
				want: "a TLS certificate verification error",
			},
			{
				name:     "plaintext",
				dsn:      strings.Replace(dsn, "sslmode=verify-full", "sslmode=disable", 1),
				password: c.AdminPassword(),
				check: func(err error) bool {
					var pgErr *pgconn.PgError
					return errors.As(err, &pgErr) && pgErr.Code == "28000" &&
						strings.Contains(pgErr.Message, "no pg_hba.conf entry")
				},
				want: "no pg_hba.conf entry (28000)",
			},
			{
				name:     "wrong password",
				dsn:      dsn,
				password: "not-the-password",
				check: func(err error) bool {
					var pgErr *pgconn.PgError
					return errors.As(err, &pgErr) && pgErr.Code == "28P01"
				},
				want: "invalid_password (28P01)",
			},
		}
		for _, tt := range tests {
			t.Run(s.Name+"/"+tt.name, func(t *testing.T) {
				if tt.dsn == dsn && tt.name != "wrong password" {
					t.Fatalf("DSN %q was not rewritten", dsn)
				}
				conn, err := login(ctx, tt.dsn, tt.password)
				if err == nil {
					conn.Close(ctx)
					t.Fatalf("login with %q succeeded; want %s", tt.dsn, tt.want)
				}
				if !tt.check(err) {
					t.Fatalf("login with %q: got %v; want %s", tt.dsn, err, tt.want)
				}
			})
		}
	}
}

func TestDSN(t *testing.T) {
	c := pgtest.Cluster(t)
	got := c.DSN(c.Replica, "app_user", "app")
	want := fmt.Sprintf("host=localhost port=%d dbname=app user=app_user sslmode=verify-full sslrootcert=%s", c.Replica.Port, c.CAFile)
	if got != want {
		t.Errorf("DSN = %q, want %q", got, want)
	}
	if strings.Contains(got, "password") || strings.Contains(got, c.AdminPassword()) {
		t.Errorf("DSN %q carries a password", got)
	}
	if c.Primary.Port == c.Replica.Port {
		t.Errorf("primary and replica share port %d", c.Primary.Port)
	}
}

func TestServerLogHasStatementsAndNoSecrets(t *testing.T) {
	c := pgtest.Cluster(t)
	ctx := testctx.Context(t)
	marker := fmt.Sprintf("pgcluster-marker-%d", time.Now().UnixNano())
	for _, s := range []*pgcluster.Server{c.Primary, c.Replica} {
		conn := mustLogin(t, ctx, c.DSN(s, c.AdminUser(), pgcluster.AppDatabase), c.AdminPassword())
		if _, err := conn.Exec(ctx, "SELECT '"+marker+"'"); err != nil {
			t.Fatal(err)
		}
		log, err := c.ServerLog(s)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(log, []byte(marker)) {
			t.Errorf("%s log lacks the statement with %s (log_statement=all)", s.Name, marker)
		}
		if !bytes.Contains(log, []byte("connection authorized: user="+c.AdminUser())) {
			t.Errorf("%s log lacks the admin's connection (log_connections=on)", s.Name)
		}
		if bytes.Contains(log, []byte(c.AdminPassword())) {
			t.Errorf("%s log contains the admin password", s.Name)
		}
		if bytes.Contains(log, []byte("SCRAM-SHA-256$")) {
			t.Errorf("%s log contains a SCRAM verifier", s.Name)
		}
	}
}

func TestRoleReplicates(t *testing.T) {
	c := pgtest.Cluster(t)
	ctx := testctx.Context(t)
	primary := superuser(t, ctx, c, c.Primary)
	replica := superuser(t, ctx, c, c.Replica)
	role := fmt.Sprintf("replicated_%d", time.Now().UnixNano())
	if _, err := primary.Exec(ctx, "CREATE ROLE "+pgx.Identifier{role}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReplayed(ctx); err != nil {
		t.Fatal(err)
	}
	if !roleExists(t, ctx, replica, role) {
		t.Fatalf("role %s missing on the replica after WaitReplayed", role)
	}
}

func TestPauseReplayHoldsBackChanges(t *testing.T) {
	c := pgtest.Cluster(t)
	ctx := testctx.Context(t)
	primary := superuser(t, ctx, c, c.Primary)
	replica := superuser(t, ctx, c, c.Replica)

	if err := c.PauseReplay(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Leave the shared replica replaying for the next test.
		if err := c.ResumeReplay(context.Background()); err != nil {
			t.Error(err)
		}
	})
	role := fmt.Sprintf("paused_%d", time.Now().UnixNano())
	if _, err := primary.Exec(ctx, "CREATE ROLE "+pgx.Identifier{role}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	var lsn string
	if err := primary.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	// Wait until the replica has received the WAL with the role, so its
	// absence is due to the pause, not to streaming delay.
	for {
		var received bool
		if err := replica.QueryRow(ctx, "SELECT coalesce(pg_last_wal_receive_lsn() >= $1::pg_lsn, false)", lsn).Scan(&received); err != nil {
			t.Fatal(err)
		}
		if received {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("replica did not receive WAL up to %s", lsn)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if roleExists(t, ctx, replica, role) {
		t.Fatalf("role %s visible on the replica while replay is paused", role)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err := c.WaitReplayed(short)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitReplayed while paused: got %v, want deadline exceeded", err)
	}

	if err := c.ResumeReplay(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReplayed(ctx); err != nil {
		t.Fatal(err)
	}
	if !roleExists(t, ctx, replica, role) {
		t.Fatalf("role %s missing on the replica after ResumeReplay", role)
	}
}

// processesIn lists the processes whose working directory or command line
// lies in dir.
func processesIn(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, e := range entries {
		pid := e.Name()
		if pid[0] < '0' || pid[0] > '9' {
			continue
		}
		cwd, _ := os.Readlink(filepath.Join("/proc", pid, "cwd"))
		cmdline, _ := os.ReadFile(filepath.Join("/proc", pid, "cmdline"))
		if cwd == dir || strings.HasPrefix(cwd, dir+"/") || bytes.Contains(cmdline, []byte(dir+"/")) {
			found = append(found, fmt.Sprintf("%s (%s)", pid, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
		}
	}
	return found
}

func TestStartAndClose(t *testing.T) {
	tests := []struct {
		name    string
		dir     func(t *testing.T) string
		removed bool
	}{
		{"kit dir", func(*testing.T) string { return "" }, true},
		{"caller dir", func(t *testing.T) string { return filepath.Join(t.TempDir(), "cluster") }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testctx.Context(t)
			began := time.Now()
			c, err := pgcluster.Start(ctx, pgcluster.Options{Dir: tt.dir(t)})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("Start took %s", time.Since(began).Round(time.Millisecond))
			t.Cleanup(func() { c.Close() })

			if procs := processesIn(t, c.Dir); len(procs) < 2 {
				t.Fatalf("found %d processes in %s before Close (%v); want the primary's and the replica's", len(procs), c.Dir, procs)
			}
			began = time.Now()
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			t.Logf("Close took %s", time.Since(began).Round(time.Millisecond))
			if procs := processesIn(t, c.Dir); len(procs) > 0 {
				t.Errorf("processes left in %s after Close: %v", c.Dir, procs)
			}
			if err := c.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			_, err = os.Stat(c.Dir)
			if removed := errors.Is(err, os.ErrNotExist); removed != tt.removed {
				t.Errorf("dir removed = %v (stat: %v), want %v", removed, err, tt.removed)
			}
		})
	}
}

func TestStartFailureCleansUp(t *testing.T) {
	ctx := testctx.Context(t)
	dir := filepath.Join(t.TempDir(), "cluster")
	// An invalid setting makes the primary exit at startup, after initdb.
	_, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir, LogStatement: "bogus"})
	if err == nil {
		t.Fatal("Start with log_statement=bogus succeeded")
	}
	if !strings.Contains(err.Error(), `invalid value for parameter "log_statement"`) {
		t.Errorf("error lacks the server log's reason: %v", err)
	}
	if procs := processesIn(t, dir); len(procs) > 0 {
		t.Errorf("processes left after failed Start: %v", procs)
	}
}

func TestStartNeedsBinaries(t *testing.T) {
	_, err := pgcluster.Start(testctx.Context(t), pgcluster.Options{BinDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "PostgreSQL binaries not usable") {
		t.Fatalf("Start with empty BinDir: got %v, want a missing-binaries error", err)
	}
}

func TestCloseKillsAServerThatDoesNotStop(t *testing.T) {
	ctx := testctx.Context(t)
	c, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	pidFile, err := os.ReadFile(filepath.Join(c.Primary.DataDir, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.SplitN(string(pidFile), "\n", 2)[0])
	if err != nil {
		t.Fatalf("postmaster.pid: %v", err)
	}
	// A stopped postmaster ignores the fast-shutdown request.
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer pgcluster.SetStopTimeout(time.Second)()
	err = c.Close()
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("Close of a stopped primary: got %v, want an error saying it was killed", err)
	}
	if procs := processesIn(t, c.Dir); len(procs) > 0 {
		t.Errorf("processes left in %s after Close: %v", c.Dir, procs)
	}
}
