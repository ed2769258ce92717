package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgrotate/pgrotate/internal/testctx"
	"github.com/pgrotate/pgrotate/local/pgcluster"
	"github.com/pgrotate/pgrotate/local/pgcluster/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// adminExec runs statements as the kit's admin user (CREATEROLE, like an RDS master user).
func adminExec(t *testing.T, c *pgcluster.Cluster, sqls ...string) {
	t.Helper()
	ctx, cancel := testctx.CleanupContext(t) // a cleanup calls it too: not t.Context()
	defer cancel()
	cfg, err := pgx.ParseConfig(c.DSN(c.Primary, c.AdminUser(), pgcluster.AppDatabase))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = c.AdminPassword()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect as admin: %v", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, sql := range sqls {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("admin: %s: %v", sql, err)
		}
	}
}

// newRole creates a role with a random name and password and the given attributes (LOGIN
// or NOLOGIN); the kit sends the password as a SCRAM verifier.
func newRole(t *testing.T, _ *pgcluster.Cluster, attrs string) (name, password string) {
	t.Helper()
	return pgtest.NewRole(t, "app_test_", attrs)
}

// clusterConfig is the service's configuration against the test cluster.
func clusterConfig(c *pgcluster.Cluster, user, password string) config {
	return config{
		Primary: endpoint{c.Primary.Host, c.Primary.Port}, Replica: endpoint{c.Replica.Host, c.Replica.Port},
		DBName: pgcluster.AppDatabase, User: user, Password: secret{password},
		SSLMode: "verify-full", SSLRootCert: c.CAFile, ListenAddr: "127.0.0.1:0", DrainTimeout: 30 * time.Second,
	}
}

func openTestDB(t *testing.T, cfg config) *database {
	t.Helper()
	db, err := openDatabase(cfg, nil)
	if err != nil {
		t.Fatalf("open database: %v", err)
	}
	t.Cleanup(db.close)
	return db
}

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func TestHealthz(t *testing.T) {
	c := pgtest.Cluster(t)
	user, password := newRole(t, c, "LOGIN")
	noLogin, noLoginPassword := newRole(t, c, "NOLOGIN")
	if err := c.WaitReplayed(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadReplica := clusterConfig(c, user, password)
	deadReplica.Replica.Port = closedPort(t)
	noReplica := clusterConfig(c, user, password)
	noReplica.Replica = endpoint{}

	tests := []struct {
		name     string
		cfg      config
		wantCode int
		wantBody map[string]string
	}{
		{"accepted", clusterConfig(c, user, password), http.StatusOK,
			map[string]string{"status": "ok", "primary": "ok", "replica": "ok"}},
		{"no replica configured", noReplica, http.StatusOK,
			map[string]string{"status": "ok", "primary": "ok", "replica": "ok"}},
		{"wrong password", clusterConfig(c, user, "wrong-"+password), http.StatusServiceUnavailable,
			map[string]string{"status": "unavailable", "primary": "failed: SQLSTATE 28P01", "replica": "failed: SQLSTATE 28P01"}},
		{"role without login", clusterConfig(c, noLogin, noLoginPassword), http.StatusServiceUnavailable,
			map[string]string{"status": "unavailable", "primary": "failed: SQLSTATE 28000", "replica": "failed: SQLSTATE 28000"}},
		{"replica down", deadReplica, http.StatusServiceUnavailable,
			map[string]string{"status": "unavailable", "primary": "ok", "replica": "failed: connection error"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logged strings.Builder
			s := &server{db: openTestDB(t, tt.cfg), log: slog.New(slog.NewJSONHandler(&logged, nil)), password: tt.cfg.Password}
			code, body := get(t, s.routes(), "/healthz")
			if code != tt.wantCode {
				t.Errorf("GET /healthz = %d %s, want %d", code, body, tt.wantCode)
			}
			var got map[string]string
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			for k, v := range tt.wantBody {
				if got[k] != v {
					t.Errorf("body[%q] = %q, want %q (body %s)", k, got[k], v, body)
				}
			}
			for _, out := range []string{body, logged.String()} {
				if strings.Contains(out, tt.cfg.Password.reveal()) {
					t.Errorf("password revealed in %s", out)
				}
			}
		})
	}
}

// closedPort returns a local TCP port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestWorkAndWhoami(t *testing.T) {
	c := pgtest.Cluster(t)
	user, password := newRole(t, c, "LOGIN")
	table := "work_items_" + randomHex(t, 4)
	adminExec(t, c,
		"CREATE TABLE "+table+" (id int)",
		"INSERT INTO "+table+" SELECT generate_series(1, 3)",
		"GRANT SELECT ON "+table+" TO "+pgx.Identifier{user}.Sanitize())
	t.Cleanup(func() { adminExec(t, c, "DROP TABLE "+table) })
	if err := c.WaitReplayed(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg := clusterConfig(c, user, password)
	tests := []struct {
		name, table string
		wantRows    *int64
	}{
		{"without a table", "", nil},
		{"with a missing table", "no_such_table", nil},
		{"with a table", table, ptr(int64(3))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &server{db: openTestDB(t, cfg), log: slog.New(slog.DiscardHandler), workTable: tt.table}
			code, body := get(t, s.routes(), "/work?sleep=10ms")
			if code != http.StatusOK {
				t.Fatalf("GET /work = %d %s", code, body)
			}
			var got struct{ Primary, Replica sideResult }
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatal(err)
			}
			for side, r := range map[string]sideResult{"primary": got.Primary, "replica": got.Replica} {
				if r.User != user || r.Standby != (side == "replica") || r.Now.IsZero() {
					t.Errorf("%s = %+v, want user %s, standby %v", side, r, user, side == "replica")
				}
				if (r.Rows == nil) != (tt.wantRows == nil) || (r.Rows != nil && *r.Rows != *tt.wantRows) {
					t.Errorf("%s rows = %v, want %v", side, r.Rows, tt.wantRows)
				}
			}
		})
	}
	t.Run("bad sleep", func(t *testing.T) {
		s := &server{db: openTestDB(t, cfg), log: slog.New(slog.DiscardHandler)}
		if code, body := get(t, s.routes(), "/work?sleep=forever"); code != http.StatusBadRequest {
			t.Errorf("GET /work?sleep=forever = %d %s, want 400", code, body)
		}
	})
	t.Run("whoami", func(t *testing.T) {
		s := &server{db: openTestDB(t, cfg), log: slog.New(slog.DiscardHandler)}
		code, body := get(t, s.routes(), "/whoami")
		want := `{"current_user":"` + user + `","session_user":"` + user + `"}`
		if code != http.StatusOK || strings.TrimSpace(body) != want {
			t.Errorf("GET /whoami = %d %s, want 200 %s", code, body, want)
		}
	})
}

func ptr[T any](v T) *T { return &v }

// TestReplicaAuthRetry makes real replica lag: the role is created on the primary while the
// replica does not replay, so the replica refuses it until replay resumes.
func TestReplicaAuthRetry(t *testing.T) {
	c := pgtest.Cluster(t)
	ctx := testctx.Context(t)
	if err := c.PauseReplay(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.ResumeReplay(context.Background()); err != nil {
			t.Errorf("resume replay: %v", err)
		}
	})
	user, password := newRole(t, c, "LOGIN")
	db := openTestDB(t, clusterConfig(c, user, password))
	selectOne := func(conn *pgxpool.Conn) error { _, err := conn.Exec(ctx, "SELECT 1"); return err }

	// Control: the primary accepts the role, the lagging replica refuses it.
	if err := db.withPrimary(ctx, selectOne); err != nil {
		t.Fatalf("primary: %v", err)
	}
	db.replicaRetry = nil
	if err := db.withReplica(ctx, selectOne); !isAuthFailure(err) {
		t.Fatalf("replica without retry: err = %v, want an authentication failure", err)
	}

	// With the backoff, the connection waits out the lag.
	db.replicaRetry = replicaBackoff
	var retries atomic.Int32
	firstRetry := make(chan struct{})
	db.onRetry = func(attempt int, _ time.Duration, err error) {
		if !isAuthFailure(err) {
			t.Errorf("retry %d after %v, want an authentication failure", attempt, err)
		}
		if retries.Add(1) == 1 {
			close(firstRetry)
		}
	}
	done := make(chan error, 1)
	go func() { done <- db.withReplica(ctx, selectOne) }()
	select {
	case <-firstRetry:
	case err := <-done:
		t.Fatalf("replica connection ended before any retry: %v", err)
	}
	if err := c.ResumeReplay(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("replica with backoff after %d retries: %v", retries.Load(), err)
	}
	t.Logf("replica accepted the role after %d retries", retries.Load())
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
