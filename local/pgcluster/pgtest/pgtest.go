// Package pgtest gives each package's test binary one PostgreSQL primary and
// streaming replica (see pgcluster), started in TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// Tests get it with Cluster(t). A missing PostgreSQL installation fails the
// run; it is never a skip.
package pgtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgrotate/pgrotate/internal/testctx"
	"github.com/pgrotate/pgrotate/local/pgcluster"
)

var (
	mu      sync.Mutex
	cluster *pgcluster.Cluster
	users   = map[string]bool{} // names of tests that called Cluster
)

// Main starts the cluster, runs the tests, stops the cluster and reports how
// many tests used it. It returns the exit code for os.Exit: non-zero if the
// cluster cannot start or stop cleanly, or a test failed.
func Main(m *testing.M) int {
	ctx, cancel := testctx.MainContext()
	began := time.Now()
	c, err := pgcluster.Start(ctx, pgcluster.Options{})
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: start PostgreSQL primary+replica: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "pgtest: PostgreSQL primary+replica started in %s\n", time.Since(began).Round(time.Millisecond))
	mu.Lock()
	cluster = c
	mu.Unlock()

	code := m.Run()

	mu.Lock()
	cluster = nil
	n := len(users)
	mu.Unlock()
	if err := c.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: stop PostgreSQL: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	fmt.Printf("pgtest: %d tests used the PostgreSQL primary+replica\n", n)
	if err := appendCount(n); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Cluster returns the cluster that Main started. It fails the test if the
// package's TestMain does not call Main.
func Cluster(t testing.TB) *pgcluster.Cluster {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if cluster == nil {
		t.Fatal("pgtest: no cluster: TestMain must call os.Exit(pgtest.Main(m))")
	}
	users[t.Name()] = true
	return cluster
}

// CountFileEnv names a file to which Main appends how many tests used the cluster, one
// line per package, so `make test` can print the total: go test hides the output of
// passing packages.
const CountFileEnv = "PGTEST_COUNT_FILE"

func appendCount(n int) error {
	path := os.Getenv(CountFileEnv)
	if path == "" {
		return nil
	}
	pkg, _ := os.Getwd()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("record the test count: %w", err)
	}
	if _, err := fmt.Fprintf(f, "%d %s\n", n, pkg); err != nil {
		f.Close()
		return fmt.Errorf("record the test count: %w", err)
	}
	return f.Close()
}

// NewRole creates a role with attrs ("LOGIN", "NOLOGIN", …), a random name starting with
// prefix and a random password (sent as a SCRAM verifier, so never in the server log) on
// the primary, and drops it when the test ends. It does not wait for the replica (a test
// may have paused replay): call WaitReplayed when the replica must know the role.
func NewRole(t *testing.T, prefix, attrs string) (name, password string) {
	t.Helper()
	c := Cluster(t)
	name, password = prefix+randomHex(t, 4), randomHex(t, 16)
	if err := c.CreateRole(testctx.Context(t), name, attrs, password); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := testctx.CleanupContext(t)
		defer cancel()
		conn, err := c.Superuser(ctx, c.Primary)
		if err != nil {
			t.Logf("drop role %s: %v", name, err)
			return
		}
		defer conn.Close(context.WithoutCancel(ctx))
		// A role that still owns objects stays; the cluster goes away with the package run.
		if _, err := conn.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{name}.Sanitize()); err != nil {
			t.Logf("drop role %s: %v", name, err)
		}
	})
	return name, password
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// OtherCA writes a CA certificate that did not sign the servers' certificates, for tests
// that a wrong CA is refused, and returns its path.
func OtherCA(t testing.TB) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(42),
		Subject:               pkix.Name{CommonName: "some other CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "other-ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
