package postgres

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgrotate/pgrotate/local/pgcluster"
	"github.com/pgrotate/pgrotate/local/pgcluster/pgtest"
	"github.com/pgrotate/pgrotate/workflow"
)

func TestUnavailableClassifies(t *testing.T) {
	ep := workflow.Endpoint{Host: "db.example.internal", Port: 5432}
	pg := func(code string) error { return fmt.Errorf("query: %w", &pgconn.PgError{Code: code, Message: "m"}) }
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{"connection reset", fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"i/o timeout", &net.OpError{Op: "dial", Net: "tcp", Err: timeoutErr{}}, true},
		{"deadline", fmt.Errorf("connect: %w", context.DeadlineExceeded), true},
		{"server closed the connection", fmt.Errorf("receive: %w", io.ErrUnexpectedEOF), true},
		{"conn closed", fmt.Errorf("exec: %w", pgconn.ErrConnClosed), true},
		{"DNS timeout", &net.DNSError{Name: "db", Err: "timeout", IsTimeout: true}, true},
		{"SQLSTATE 08006 connection failure", pg("08006"), true},
		{"SQLSTATE 57P01 admin shutdown", pg("57P01"), true},
		{"SQLSTATE 57P02 crash shutdown", pg("57P02"), true},
		{"SQLSTATE 57P03 cannot connect now", pg("57P03"), true},
		{"SQLSTATE 53300 too many connections", pg("53300"), true},
		{"TLS handshake cut short", &TLSError{Endpoint: ep.String(), Err: io.EOF}, true},

		{"nil", nil, false},
		{"password rejected 28P01", pg("28P01"), false},
		{"permission denied 42501", pg("42501"), false},
		{"query canceled 57014", pg("57014"), false},
		{"unknown CA", &TLSError{Endpoint: ep.String(), Err: x509.UnknownAuthorityError{}}, false},
		{"server refused TLS", &TLSError{Endpoint: ep.String(), Err: errTLSRefused}, false},
		{"cancelled invocation", fmt.Errorf("exec: %w", context.Canceled), false},
		{"no such host", &net.DNSError{Name: "db", Err: "no such host", IsNotFound: true}, false},
		{"plain error", errors.New("something else"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := Unavailable(ep, tc.err)
			if (u != nil) != tc.want {
				t.Fatalf("Unavailable(%v) = %v, want unavailable %v", tc.err, u, tc.want)
			}
			if u == nil {
				if got := classify(ep, tc.err); got != tc.err {
					t.Fatalf("classify changed a non-transient error: %v", got)
				}
				return
			}
			if u.Endpoint != "db.example.internal:5432" || !errors.Is(u, tc.err) || !strings.Contains(u.Error(), "db.example.internal:5432") {
				t.Fatalf("%+v: want it to name the endpoint and wrap the cause", u)
			}
			var du *workflow.DatabaseUnavailable
			if c := classify(ep, tc.err); !errors.As(c, &du) || !errors.Is(c, tc.err) {
				t.Fatalf("classify = %v, want a DatabaseUnavailable in front of the cause", c)
			}
		})
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// Against real servers: a port nobody listens on, a server that accepts TCP and never answers,
// and a session the server terminates are DatabaseUnavailable naming host:port; a refused
// password and an untrusted certificate are not.
func TestConnectClassifiesRealFailures(t *testing.T) {
	ctx, f := setup(t)
	closed := closedPort(t)
	silent := silentServer(t)
	fast := f.opts
	fast.ConnectTimeout = 300 * time.Millisecond
	user, pw := f.newUser(t, ctx, "unavail_")
	tests := []struct {
		name  string
		ep    workflow.Endpoint
		pw    workflow.Password
		opts  Options
		avail string // the expected reason, "" for not DatabaseUnavailable
	}{
		{"nothing listens", closed, pw, f.opts, "connection refused"},
		{"no answer", silent, pw, fast, "timed out"},
		{"wrong password", f.primary, randomPassword(t), f.opts, ""},
		{"untrusted CA", f.primary, pw, Options{CABundle: pgtest.OtherCA(t), ConnectTimeout: 10 * time.Second}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := Connect(ctx, target(tc.ep, pgcluster.AppDatabase, user, tc.pw, ""), tc.opts)
			if err == nil {
				conn.Close(ctx)
				t.Fatal("connected")
			}
			var du *workflow.DatabaseUnavailable
			if got := errors.As(err, &du); got != (tc.avail != "") {
				t.Fatalf("%v: DatabaseUnavailable %v, want %v", err, got, tc.avail != "")
			}
			if du != nil && (du.Endpoint != tc.ep.String() || !strings.Contains(du.Reason, tc.avail)) {
				t.Fatalf("%+v: want endpoint %s and reason %q", du, tc.ep, tc.avail)
			}
		})
	}

	t.Run("session terminated", func(t *testing.T) {
		conn := f.conn(t, ctx, f.primary, user, pw)
		su, err := f.c.Superuser(ctx, f.c.Primary)
		if err != nil {
			t.Fatal(err)
		}
		defer su.Close(ctx)
		if _, err := su.Exec(ctx, "SELECT pg_terminate_backend($1)", conn.PgConn().PID()); err != nil {
			t.Fatal(err)
		}
		_, err = conn.Exec(ctx, "SELECT 1")
		u := Unavailable(f.primary, err)
		if u == nil {
			t.Fatalf("a query on a terminated session: %v, want DatabaseUnavailable", err)
		}
		t.Logf("%v", u)
	})
}

// closedPort returns an endpoint on which nothing listens.
func closedPort(t *testing.T) workflow.Endpoint {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return workflow.Endpoint{Host: "127.0.0.1", Port: port}
}

// silentServer accepts connections and never answers, like a host that is going away.
func silentServer(t *testing.T) workflow.Endpoint {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return workflow.Endpoint{Host: "127.0.0.1", Port: l.Addr().(*net.TCPAddr).Port}
}
