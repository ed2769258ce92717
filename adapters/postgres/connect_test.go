package postgres

import (
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgrotate/pgrotate/local/pgcluster"
	"github.com/pgrotate/pgrotate/local/pgcluster/pgtest"
	"github.com/pgrotate/pgrotate/workflow"
)

func TestConnectTLS(t *testing.T) {
	ctx, f := setup(t)
	wrongCA := pgtest.OtherCA(t)
	ip := workflow.Endpoint{Host: "127.0.0.1", Port: f.primary.Port}

	ok := []struct {
		name    string
		ep      workflow.Endpoint
		sslmode string
		opts    Options
	}{
		{"verify-full by default, kit CA", f.primary, "", f.opts},
		{"verify-full, IP address in the certificate", ip, "verify-full", f.opts},
		{"verify-ca, kit CA", f.primary, "verify-ca", f.opts},
		{"require without a CA bundle", f.primary, "require", Options{}},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := Connect(ctx, target(tc.ep, pgcluster.AppDatabase, f.adminUser, f.adminPW, tc.sslmode), tc.opts)
			if err != nil {
				t.Fatalf("Connect: %v", err)
			}
			defer conn.Close(ctx)
			var ssl bool
			if err := conn.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil {
				t.Fatal(err)
			}
			if !ssl {
				t.Fatal("session is not encrypted")
			}
		})
	}

	tlsFail := []struct {
		name    string
		sslmode string
		opts    Options
	}{
		{"verify-full, wrong CA", "verify-full", Options{CABundle: wrongCA}},
		{"verify-full, system roots", "", Options{}},
		{"verify-ca, wrong CA", "verify-ca", Options{CABundle: wrongCA}},
		{"require with a wrong CA bundle checks the chain", "require", Options{CABundle: wrongCA}},
	}
	for _, tc := range tlsFail {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := Connect(ctx, target(f.primary, pgcluster.AppDatabase, f.adminUser, f.adminPW, tc.sslmode), tc.opts)
			if err == nil {
				conn.Close(ctx)
				t.Fatal("connected; want a TLS error")
			}
			var tlsErr *TLSError
			if !errors.As(err, &tlsErr) {
				t.Fatalf("got %T %v, want *TLSError", err, err)
			}
			msg := err.Error()
			for _, want := range []string{"TLS", "certificate", f.primary.String()} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not mention %q", msg, want)
				}
			}
		})
	}

	t.Run("verify-full, name not in the certificate", func(t *testing.T) {
		// The certificate names localhost, 127.0.0.1 and ::1; reach the same server through
		// a forwarder on 127.0.0.2.
		ep := forwarder(t, f.primary)
		_, _, err := Login(ctx, target(ep, pgcluster.AppDatabase, f.adminUser, f.adminPW, "verify-full"), f.opts)
		var tlsErr *TLSError
		if !errors.As(err, &tlsErr) || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("got %v, want a *TLSError about the certificate", err)
		}
		// verify-ca does not check the name: the same path works.
		if _, _, err := Login(ctx, target(ep, pgcluster.AppDatabase, f.adminUser, f.adminPW, "verify-ca"), f.opts); err != nil {
			t.Fatalf("verify-ca through the forwarder: %v", err)
		}
	})

	for _, mode := range []string{"prefer", "allow"} {
		t.Run("sslmode="+mode+" is refused before dialling", func(t *testing.T) {
			// Port 1 on a TEST-NET address: if anything were dialled, it would time out.
			ep := workflow.Endpoint{Host: "192.0.2.1", Port: 1}
			start := time.Now()
			const connectTimeout = 5 * time.Second
			_, err := Connect(ctx, target(ep, "app", "u", workflow.NewPassword("p"), mode), Options{ConnectTimeout: connectTimeout})
			if err == nil || !strings.Contains(err.Error(), "plaintext") {
				t.Fatalf("got %v, want a refusal naming the plaintext fallback", err)
			}
			if d := time.Since(start); d >= connectTimeout { // a dial lasts the connect timeout
				t.Fatalf("something was dialled: refused after %s", d)
			}
		})
	}

	t.Run("sslmode=disable is refused by the server", func(t *testing.T) {
		conn, err := Connect(ctx, target(f.primary, pgcluster.AppDatabase, f.adminUser, f.adminPW, "disable"), f.opts)
		if err == nil {
			conn.Close(ctx)
			t.Fatal("a plaintext session was opened")
		}
		if !strings.Contains(err.Error(), "no encryption") {
			t.Fatalf("got %v, want pg_hba's refusal of an unencrypted connection", err)
		}
	})

	t.Run("wrong password is CredentialRejected", func(t *testing.T) {
		f.rejected(t, ctx, f.primary, f.adminUser, workflow.NewPassword("not-the-password"))
	})

	t.Run("connect timeout", func(t *testing.T) {
		// A listener that accepts and never answers.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
			}
		}()
		ep := workflow.Endpoint{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port}
		start := time.Now()
		_, err = Connect(ctx, target(ep, "app", "u", workflow.NewPassword("p"), ""), Options{CABundle: f.c.CAFile, ConnectTimeout: 300 * time.Millisecond})
		if err == nil {
			t.Fatal("connected to a silent server")
		}
		// Without the connect timeout, only the test's deadline would end the wait.
		if ctx.Err() != nil {
			t.Fatalf("gave up at the test's deadline (%s), not after the 300ms connect timeout: %v", time.Since(start).Round(time.Millisecond), err)
		}
		t.Logf("gave up after %s (connect timeout 300ms)", time.Since(start).Round(time.Millisecond))
	})
}

// forwarder relays TCP connections from 127.0.0.2 to target, so the server is reached by
// an address its certificate does not name.
func forwarder(t *testing.T, target workflow.Endpoint) workflow.Endpoint {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatalf("listen on 127.0.0.2: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				s, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(target.Port)))
				if err != nil {
					return
				}
				defer s.Close()
				go io.Copy(s, c)
				io.Copy(c, s)
			}()
		}
	}()
	return workflow.Endpoint{Host: "127.0.0.2", Port: ln.Addr().(*net.TCPAddr).Port}
}

func TestConnConfig(t *testing.T) {
	pw := workflow.NewPassword("s3cret-Value")
	ep := workflow.Endpoint{Host: "db.example.com", Port: 5432}
	for _, mode := range []string{"", "verify-full", "verify-ca", "require", "disable"} {
		t.Run("sslmode="+mode, func(t *testing.T) {
			cfg, err := connConfig(target(ep, "app db", "o'brien", pw, mode), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.Fallbacks) != 0 {
				t.Errorf("%d fallbacks; want none", len(cfg.Fallbacks))
			}
			if (cfg.TLSConfig == nil) != (mode == "disable") {
				t.Errorf("TLSConfig set = %v for sslmode %q", cfg.TLSConfig != nil, mode)
			}
			if mode == "" || mode == "verify-full" {
				if cfg.TLSConfig.InsecureSkipVerify || cfg.TLSConfig.ServerName != ep.Host {
					t.Error("verify-full does not verify the host name")
				}
			}
			if strings.Contains(cfg.ConnString(), pw.Reveal()) {
				t.Error("the password is in the connection string")
			}
			if cfg.Password != pw.Reveal() || cfg.Database != "app db" || cfg.User != "o'brien" || cfg.Tracer != nil {
				t.Error("config does not hold the requested database, user and password, or has a tracer")
			}
		})
	}
	bad := []struct {
		name    string
		ep      workflow.Endpoint
		sslmode string
		opts    Options
	}{
		{"prefer", ep, "prefer", Options{}},
		{"allow", ep, "allow", Options{}},
		{"unknown mode", ep, "verify", Options{}},
		{"two hosts", workflow.Endpoint{Host: "a,b", Port: 5432}, "", Options{}},
		{"unix socket", workflow.Endpoint{Host: "/tmp", Port: 5432}, "", Options{}},
		{"port", workflow.Endpoint{Host: "a", Port: 0}, "", Options{}},
		{"missing CA bundle", ep, "", Options{CABundle: "/nonexistent/ca.pem"}},
	}
	for _, tc := range bad {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			if _, err := connConfig(target(tc.ep, "app", "u", pw, tc.sslmode), tc.opts); err == nil {
				t.Fatal("accepted")
			} else if strings.Contains(err.Error(), pw.Reveal()) {
				t.Fatal("error holds the password")
			}
		})
	}
	t.Run("timeout default", func(t *testing.T) {
		cfg, err := connConfig(target(ep, "app", "u", pw, ""), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if cfg.ConnectTimeout != DefaultConnectTimeout {
			t.Errorf("ConnectTimeout = %s", cfg.ConnectTimeout)
		}
	})
}

func TestLoginReportsUsers(t *testing.T) {
	ctx, f := setup(t)
	base, basePW, clone := f.newPair(t, ctx, "login_")
	clonePW := randomPassword(t)
	if _, _, err := f.admin(t, ctx).SetPassword(ctx, clone, clonePW); err != nil {
		t.Fatal(err)
	}
	if cur, sess := f.login(t, ctx, f.primary, clone, clonePW); cur != base || sess != clone {
		t.Errorf("as the clone: current_user %q, session_user %q; want %q, %q", cur, sess, base, clone)
	}
	if cur, sess := f.login(t, ctx, f.primary, base, basePW); cur != base || sess != base {
		t.Errorf("as the base: current_user %q, session_user %q; want %q twice", cur, sess, base)
	}
}
