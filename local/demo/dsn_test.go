package demo

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgrotate/pgrotate/workflow"
)

const dsnPassword = `s3cr3t 'pw\x`

func TestParseDSN(t *testing.T) {
	t.Setenv("PGSSLMODE", "")
	t.Setenv("PGSSLROOTCERT", "")
	t.Setenv("PGPASSWORD", "")
	ca := writeTestCA(t)
	quoted := quote(dsnPassword)
	tests := []struct {
		name    string
		dsn     string
		want    Server
		wantErr string
	}{
		{
			name: "keyword form with quotes",
			dsn:  "host=db.example port=6543 user=dbadmin dbname='my db' password=" + quoted + " sslmode=verify-ca sslrootcert='" + ca + "'",
			want: Server{Endpoint: workflow.Endpoint{Host: "db.example", Port: 6543}, User: "dbadmin", DBName: "my db", SSLMode: "verify-ca", SSLRootCert: ca},
		},
		{
			name: "URL form with an escaped password",
			dsn:  "postgres://dbadmin:s3cr3t%20%27pw%5Cx@db.example:6543/app?sslmode=require",
			want: Server{Endpoint: workflow.Endpoint{Host: "db.example", Port: 6543}, User: "dbadmin", DBName: "app", SSLMode: "require"},
		},
		{
			name: "defaults: port 5432, dbname = user, verify-full",
			dsn:  "postgresql://dbadmin:" + "s3cr3t%20%27pw%5Cx" + "@db.example",
			want: Server{Endpoint: workflow.Endpoint{Host: "db.example", Port: 5432}, User: "dbadmin", DBName: "dbadmin", SSLMode: "verify-full"},
		},
		{name: "no password", dsn: "host=db.example user=dbadmin sslmode=disable", wantErr: "no password"},
		{name: "prefer refused", dsn: "host=db.example user=dbadmin password=" + quoted + " sslmode=prefer", wantErr: `sslmode "prefer"`},
		{name: "unix socket refused", dsn: "host=/var/run/postgresql user=dbadmin password=" + quoted + " sslmode=disable", wantErr: "TCP host"},
		{name: "unterminated quote", dsn: "host=db.example password='" + "s3cr3t", wantErr: "unterminated"},
		{name: "not keyword=value", dsn: "host db.example password=" + quoted, wantErr: "keyword=value"},
		{name: "bad port", dsn: "host=db.example port=http user=dbadmin password=" + quoted, wantErr: "invalid port"},
		{name: "bad URL", dsn: "postgres://dbadmin:" + "s3cr3t%zz@db.example/app", wantErr: "URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDSN(tt.dsn)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tt.wantErr)
				}
				for _, secret := range []string{dsnPassword, "s3cr3t"} {
					if strings.Contains(err.Error(), secret) {
						t.Fatalf("error reveals the password: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Password.Reveal() != dsnPassword {
				t.Errorf("password not read right (length %d)", len(got.Password.Reveal()))
			}
			got.Password = workflow.Password{}
			if got != tt.want {
				t.Errorf("ParseDSN = %+v\nwant      %+v", got, tt.want)
			}
		})
	}
}

func TestDatabase(t *testing.T) {
	pw := workflow.NewPassword("pw")
	primary := Server{Endpoint: workflow.Endpoint{Host: "p", Port: 5432}, User: "dbadmin", Password: pw, DBName: "app", SSLMode: "verify-full", SSLRootCert: "/ca.pem"}
	replica := primary
	replica.Endpoint = workflow.Endpoint{Host: "r", Port: 5432}
	db, err := Database(primary, replica, "")
	if err != nil {
		t.Fatal(err)
	}
	if db.AppDB != "app" || db.AdminDB != "app" || db.Replicas[0].Host != "r" || db.CAFile != "/ca.pem" || db.SSLMode != "verify-full" || db.AdminUser != "dbadmin" {
		t.Errorf("Database = %+v", db)
	}
	if db, _ := Database(primary, replica, "shop"); db.AppDB != "shop" {
		t.Errorf("--app-db ignored: %s", db.AppDB)
	}
	other := replica
	other.SSLMode = "require"
	if _, err := Database(primary, other, ""); err == nil {
		t.Error("different sslmodes accepted")
	}
	other = replica
	other.SSLRootCert = "/other.pem"
	if _, err := Database(primary, other, ""); err == nil {
		t.Error("different sslrootcerts accepted")
	}
	if _, err := Database(primary, primary, ""); err == nil {
		t.Error("the same server as primary and replica accepted")
	}
}

func TestKeywordDSNRoundTrip(t *testing.T) {
	dsn := keywordDSN(workflow.Endpoint{Host: "h", Port: 1}, `it's a\db`, "verify-full", "/dir with space/ca.pem")
	params, err := keywordParams(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if params["dbname"] != `it's a\db` || params["sslrootcert"] != "/dir with space/ca.pem" || params["port"] != "1" {
		t.Errorf("round trip of %s: %v", dsn, params)
	}
}

// writeTestCA writes a self-signed CA certificate, so pgconn can load the root file.
func writeTestCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
