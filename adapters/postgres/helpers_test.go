package postgres

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgrotate/pgrotate/internal/testctx"
	"github.com/pgrotate/pgrotate/local/pgcluster"
	"github.com/pgrotate/pgrotate/local/pgcluster/pgtest"
	"github.com/pgrotate/pgrotate/workflow"
)

// One primary and streaming replica for the whole package run; every test uses its own
// role names.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

type fixture struct {
	c                *pgcluster.Cluster
	opts             Options
	primary, replica workflow.Endpoint
	adminUser        string
	adminPW          workflow.Password
}

func setup(t *testing.T) (context.Context, fixture) {
	t.Helper()
	c := pgtest.Cluster(t)
	return testctx.Context(t), fixture{
		c:         c,
		opts:      Options{CABundle: c.CAFile, ConnectTimeout: 10 * time.Second},
		primary:   workflow.Endpoint{Host: c.Primary.Host, Port: c.Primary.Port},
		replica:   workflow.Endpoint{Host: c.Replica.Host, Port: c.Replica.Port},
		adminUser: c.AdminUser(),
		adminPW:   workflow.NewPassword(c.AdminPassword()),
	}
}

// admin opens the code under test's admin handle on the app database of the primary.
func (f fixture) admin(t *testing.T, ctx context.Context) *Admin {
	t.Helper()
	a, err := OpenAdmin(ctx, target(f.primary, pgcluster.AppDatabase, f.adminUser, f.adminPW, ""), f.opts)
	if err != nil {
		t.Fatalf("open admin: %v", err)
	}
	t.Cleanup(func() { _ = a.Close(context.Background()) })
	return a
}

// conn logs in as user on ep (app database) for test setup and probes.
func (f fixture) conn(t *testing.T, ctx context.Context, ep workflow.Endpoint, user string, pw workflow.Password) *pgx.Conn {
	t.Helper()
	conn, err := Connect(ctx, target(ep, pgcluster.AppDatabase, user, pw, "verify-full"), f.opts)
	if err != nil {
		t.Fatalf("connect as %s to %s: %v", user, ep, err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// exec runs setup statements as the admin user on the app database, with statement
// logging off (the admin may set it) so that setup never writes a secret to the log.
func (f fixture) exec(t *testing.T, ctx context.Context, stmts ...string) {
	t.Helper()
	conn, err := Connect(ctx, target(f.primary, pgcluster.AppDatabase, f.adminUser, f.adminPW, "verify-full"), f.opts)
	if err != nil {
		t.Fatalf("connect as the admin: %v", err)
	}
	defer conn.Close(context.Background()) // now: tests count the admin's sessions
	mustExec(t, ctx, conn, append([]string{"SET log_statement = 'none'"}, stmts...)...)
}

func mustExec(t *testing.T, ctx context.Context, conn *pgx.Conn, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("exec %q: %v", redactStatement(s), err)
		}
	}
}

// redactStatement cuts a statement at PASSWORD, so a failing setup step never prints a
// verifier or a password.
func redactStatement(s string) string {
	if i := strings.Index(strings.ToUpper(s), "PASSWORD"); i >= 0 {
		return s[:i] + "PASSWORD " + workflow.Redacted
	}
	return s
}

var roleSeq atomic.Int64

// uniqueName returns a fresh role name with the prefix.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s%d", prefix, roleSeq.Add(1))
}

// newUser creates a base login user with a random password and CREATE, USAGE on the public
// schema of the app database, as an app user would have.
func (f fixture) newUser(t *testing.T, ctx context.Context, prefix string) (string, workflow.Password) {
	t.Helper()
	name := uniqueName(prefix)
	pw := randomPassword(t)
	v, err := scramVerifier(pw.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	f.exec(t, ctx,
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", ident(name), v),
		fmt.Sprintf("GRANT USAGE, CREATE ON SCHEMA public TO %s", ident(name)),
	)
	return name, pw
}

// newPair creates a base user and clones it with the code under test.
func (f fixture) newPair(t *testing.T, ctx context.Context, prefix string) (base string, basePW workflow.Password, clone string) {
	t.Helper()
	base, basePW = f.newUser(t, ctx, prefix)
	clone = workflow.Alternate(base)
	if err := f.admin(t, ctx).CloneRole(ctx, base, clone); err != nil {
		t.Fatalf("CloneRole(%s, %s): %v", base, clone, err)
	}
	return base, basePW, clone
}

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func randomPassword(t *testing.T) workflow.Password {
	t.Helper()
	b := make([]byte, 28)
	for i := range b {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(alnum))))
		if err != nil {
			t.Fatal(err)
		}
		b[i] = alnum[n.Int64()]
	}
	return workflow.NewPassword(string(b))
}

// login logs in and returns current_user and session_user, failing the test otherwise.
func (f fixture) login(t *testing.T, ctx context.Context, ep workflow.Endpoint, user string, pw workflow.Password) (string, string) {
	t.Helper()
	cur, sess, err := Login(ctx, target(ep, pgcluster.AppDatabase, user, pw, ""), f.opts)
	if err != nil {
		t.Fatalf("login as %s on %s: %v", user, ep, err)
	}
	return cur, sess
}

// rejected asserts that the login is refused as a credential problem.
func (f fixture) rejected(t *testing.T, ctx context.Context, ep workflow.Endpoint, user string, pw workflow.Password) {
	t.Helper()
	_, _, err := Login(ctx, target(ep, pgcluster.AppDatabase, user, pw, ""), f.opts)
	var cr *workflow.CredentialRejected
	if !errors.As(err, &cr) {
		t.Fatalf("login as %s on %s: got %v, want *workflow.CredentialRejected", user, ep, err)
	}
}

// storedVerifier reads the verifier the server stores for user (superuser only).
func (f fixture) storedVerifier(t *testing.T, ctx context.Context, user string) string {
	t.Helper()
	conn, err := f.c.Superuser(ctx, f.c.Primary)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var v *string
	if err := conn.QueryRow(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", user).Scan(&v); err != nil {
		t.Fatalf("read stored verifier of %s: %v", user, err)
	}
	if v == nil {
		t.Fatalf("%s has no password", user)
	}
	return *v
}

// target is the login of user with pw on ep, in database db, with sslmode.
func target(ep workflow.Endpoint, db, user string, pw workflow.Password, sslmode string) workflow.Target {
	return workflow.Target{Endpoint: ep, DBName: db, User: user, Password: pw, SSLMode: sslmode}
}
