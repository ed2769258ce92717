package probe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgrotate/pgrotate/local/cause"
	"github.com/pgrotate/pgrotate/workflow"
)

func TestNew(t *testing.T) {
	creds := func() []Credential { return nil }
	tests := []struct {
		name    string
		targets []Target
		opts    Options
		wantErr string
	}{
		{name: "ok", targets: []Target{{TargetPrimary, "host=h"}, {TargetReplica, "host=r"}, {TargetReplica, "host=r2"}}, opts: Options{Credentials: creds}},
		{name: "no credentials callback", targets: []Target{{TargetPrimary, "host=h"}}, wantErr: "Credentials"},
		{name: "no target", opts: Options{Credentials: creds}, wantErr: "no target"},
		{name: "unknown target name", targets: []Target{{"standby", "host=h"}}, opts: Options{Credentials: creds}, wantErr: `"standby"`},
		{name: "bad DSN", targets: []Target{{TargetPrimary, "host=h sslmode=sometimes"}}, opts: Options{Credentials: creds}, wantErr: "parse primary DSN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.targets, tt.opts)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error = %v, want one naming %q", err, tt.wantErr)
			}
		})
	}
}

func TestReason(t *testing.T) {
	pw := workflow.NewPassword("hunter2-secret")
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"server refusal", fmt.Errorf("connect: %w", &pgconn.PgError{Severity: "FATAL", Code: "28P01", Message: `password authentication failed for user "u"`}),
			`SQLSTATE 28P01: password authentication failed for user "u"`},
		{"client error", errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), "dial tcp 127.0.0.1:1: connect: connection refused"},
		{"password scrubbed", &pgconn.PgError{Code: "XX000", Message: "echoes hunter2-secret"}, "SQLSTATE XX000: echoes [REDACTED]"},
		{"password scrubbed from client error", errors.New("oops hunter2-secret"), "oops [REDACTED]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := reason(tt.err, pw); got != tt.want {
				t.Errorf("reason = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestRoundCountsDistinctCredentials needs no server: a closed port refuses every login.
func TestRoundCountsDistinctCredentials(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dsn := fmt.Sprintf("host=127.0.0.1 port=%d sslmode=disable connect_timeout=5", port)
	a := Credential{User: "a", Password: workflow.NewPassword("pa")}
	b := Credential{User: "b", Password: workflow.NewPassword("pb")}
	at := time.Date(2026, 6, 4, 12, 0, 0, 0, time.UTC)
	p, err := New([]Target{{TargetPrimary, dsn}, {TargetReplica, dsn}}, Options{
		Credentials: func() []Credential { return []Credential{a, b, a, a} },
		Now:         func() time.Time { return at },
		MaxFailures: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	p.round(context.Background())
	got := p.Report()
	want := Report{Attempts: 4, Failed: 4, Primary: Counts{2, 2}, Replica: Counts{2, 2}}
	if got.Attempts != want.Attempts || got.Failed != want.Failed || got.Primary != want.Primary || got.Replica != want.Replica {
		t.Errorf("report counts = %+v, want %+v", got, want)
	}
	if len(got.Failures) != 3 {
		t.Fatalf("kept %d failures, want MaxFailures = 3", len(got.Failures))
	}
	js, err := json.Marshal(got.Failures[0])
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"target":"` + got.Failures[0].Target + `","user":"` + got.Failures[0].User + `","reason":`; !strings.HasPrefix(string(js), want) ||
		!strings.HasSuffix(string(js), `"cause":"server_unavailable","at":"2026-06-04T12:00:00Z"}`) {
		t.Errorf("failure JSON = %s, want target, user, reason, cause, at", js)
	}
	for _, f := range got.Failures {
		if !f.At.Equal(at) || (f.User != "a" && f.User != "b") || !strings.Contains(f.Reason, "refused") || f.Cause != cause.ServerUnavailable {
			t.Errorf("failure = %+v, want a refused connection (server unavailable) at %s", f, at)
		}
	}
	if got.ByCause[cause.ServerUnavailable] != 4 {
		t.Errorf("by cause = %v, want all 4 server_unavailable (the count is exact beyond MaxFailures)", got.ByCause)
	}
}

func TestEmptyReportJSON(t *testing.T) {
	p, err := New([]Target{{TargetPrimary, "host=h"}}, Options{Credentials: func() []Credential { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(p.Report())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"attempts":0,"failed":0,"primary":{"attempts":0,"failed":0},"replica":{"attempts":0,"failed":0},` +
		`"by_cause":{"auth_refused":0,"cut_by_shutdown":0,"other":0,"server_unavailable":0},"failures":[]}`
	if string(b) != want {
		t.Errorf("JSON = %s\nwant   %s", b, want)
	}
}

func TestRunTwice(t *testing.T) {
	p, err := New([]Target{{TargetPrimary, "host=h"}}, Options{Credentials: func() []Credential { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	for !p.running.Load() {
		time.Sleep(time.Millisecond)
	}
	if err := p.Run(ctx); err == nil {
		t.Error("second concurrent Run succeeded, want an error")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil after cancel", err)
	}
}
