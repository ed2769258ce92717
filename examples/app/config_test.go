package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

const testPassword = "s3cr3t-Pa55word"

func lookupFrom(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

func TestLoadConfig(t *testing.T) {
	base := map[string]string{"DB_HOST": "db.example", "DB_NAME": "app", "DB_USER": "app_user", "DB_PASSWORD": testPassword}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	secretJSON := `{"engine":"postgres","host":"primary.example","port":6543,"dbname":"shop","username":"app_user_clone",` +
		`"password":"` + testPassword + `","masterarn":"arn:aws:secretsmanager:eu-west-1:1:secret:admin",` +
		`"replicas":[{"host":"replica.example","port":6544}],"sslmode":"verify-ca"}`
	tests := []struct {
		name    string
		env     map[string]string
		want    config
		wantErr string
	}{
		{
			name: "env vars with defaults",
			env:  base,
			want: config{Primary: endpoint{"db.example", 5432}, DBName: "app", User: "app_user", Password: secret{testPassword},
				SSLMode: "verify-full", ListenAddr: ":8080", DrainTimeout: 30 * time.Second},
		},
		{
			name: "env vars with replica",
			env: with("DB_PORT", "5433", "DB_REPLICA_HOST", "ro.example", "DB_SSLROOTCERT", "/ca.pem",
				"LISTEN_ADDR", "127.0.0.1:0", "DRAIN_TIMEOUT", "5s", "WORK_TABLE", "items"),
			want: config{Primary: endpoint{"db.example", 5433}, Replica: endpoint{"ro.example", 5433}, DBName: "app", User: "app_user",
				Password: secret{testPassword}, SSLMode: "verify-full", SSLRootCert: "/ca.pem", ListenAddr: "127.0.0.1:0",
				DrainTimeout: 5 * time.Second, WorkTable: "items"},
		},
		{
			name: "whole secret",
			env:  map[string]string{"DB_SECRET": secretJSON},
			want: config{Primary: endpoint{"primary.example", 6543}, Replica: endpoint{"replica.example", 6544}, DBName: "shop",
				User: "app_user_clone", Password: secret{testPassword}, SSLMode: "verify-ca", ListenAddr: ":8080", DrainTimeout: 30 * time.Second},
		},
		{
			name: "env var overrides the secret",
			env:  map[string]string{"DB_SECRET": secretJSON, "DB_REPLICA_HOST": "other.example", "DB_SSLROOTCERT": "/ca.pem"},
			want: config{Primary: endpoint{"primary.example", 6543}, Replica: endpoint{"other.example", 6544}, DBName: "shop",
				User: "app_user_clone", Password: secret{testPassword}, SSLMode: "verify-ca", SSLRootCert: "/ca.pem",
				ListenAddr: ":8080", DrainTimeout: 30 * time.Second},
		},
		{name: "missing password", env: with("DB_PASSWORD", ""), wantErr: "DB_PASSWORD: missing"},
		{name: "missing host", env: with("DB_HOST", ""), wantErr: "DB_HOST: missing"},
		{name: "bad port", env: with("DB_PORT", "70000"), wantErr: "DB_PORT"},
		{name: "replica port without host", env: with("DB_REPLICA_PORT", "5433"), wantErr: "DB_REPLICA_PORT"},
		{name: "plaintext fallback refused", env: with("DB_SSLMODE", "prefer"), wantErr: "DB_SSLMODE"},
		{name: "bad drain timeout", env: with("DRAIN_TIMEOUT", "soon"), wantErr: "DRAIN_TIMEOUT"},
		{name: "secret not JSON", env: map[string]string{"DB_SECRET": `{"password":"` + testPassword + `"`}, wantErr: "DB_SECRET"},
		{name: "secret password not a string", env: map[string]string{"DB_SECRET": `{"password":12345}`}, wantErr: "DB_SECRET"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := loadConfig(lookupFrom(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("loadConfig error = %v, want one naming %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), testPassword) || strings.Contains(err.Error(), "12345") {
					t.Fatalf("loadConfig error reveals the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("loadConfig: %v", err)
			}
			if got != tt.want {
				t.Fatalf("loadConfig = %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

// TestConfigRedacts prints the config every way a log line or an error could.
func TestConfigRedacts(t *testing.T) {
	c, err := loadConfig(lookupFrom(map[string]string{"DB_HOST": "h", "DB_NAME": "d", "DB_USER": "u", "DB_PASSWORD": testPassword}))
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("start", "config", c, "password", c.Password)
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{
		fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprintf("%s", c.Password),
		fmt.Sprintf("%q", c.Password), fmt.Sprintf("%x", c.Password), logged.String(), string(js), c.dsn(c.Primary),
	} {
		if strings.Contains(out, testPassword) {
			t.Errorf("password revealed in %q", out)
		}
	}
	if !strings.Contains(logged.String(), `"user":"u"`) {
		t.Errorf("log line lacks the config's safe fields: %s", logged.String())
	}
}

func TestDSNQuotes(t *testing.T) {
	c := config{DBName: `it's`, User: `a\b`, SSLMode: "verify-full", SSLRootCert: "/dir with space/ca.pem"}
	got := c.dsn(endpoint{"h", 5432})
	want := `host='h' port=5432 dbname='it\'s' user='a\\b' sslmode=verify-full application_name=pgrotate-example-app sslrootcert='/dir with space/ca.pem'`
	if got != want {
		t.Fatalf("dsn = %s\nwant  %s", got, want)
	}
}
