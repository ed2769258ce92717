package cause

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestOf(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		want     Cause
		sqlstate string
	}{
		{"wrong password", fmt.Errorf("connect: %w", &pgconn.PgError{Code: "28P01"}), AuthRefused, "28P01"},
		{"no such role", &pgconn.PgError{Code: "28000"}, AuthRefused, "28000"},
		{"too many connections", &pgconn.PgError{Code: "53300"}, ServerUnavailable, "53300"},
		{"shutting down", &pgconn.PgError{Code: "57P01"}, ServerUnavailable, "57P01"},
		{"starting up", &pgconn.PgError{Code: "57P03"}, ServerUnavailable, "57P03"},
		{"connection failure", &pgconn.PgError{Code: "08006"}, ServerUnavailable, "08006"},
		{"query error", &pgconn.PgError{Code: "42P01"}, Other, "42P01"},
		{"connection refused", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, ServerUnavailable, ""},
		{"closed mid-handshake", fmt.Errorf("read: %w", io.EOF), ServerUnavailable, ""},
		{"anything else", errors.New("tls: bad certificate"), Other, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, code := Of(tt.err)
			if got != tt.want || code != tt.sqlstate {
				t.Errorf("Of = %q, %q; want %q, %q", got, code, tt.want, tt.sqlstate)
			}
		})
	}
	if got, code := Of(nil); got != "" || code != "" {
		t.Errorf("Of(nil) = %q, %q; want nothing", got, code)
	}
}

func TestCountsListEveryCause(t *testing.T) {
	b, err := json.Marshal(NewCounts())
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"auth_refused":0,"cut_by_shutdown":0,"other":0,"server_unavailable":0}`; string(b) != want {
		t.Errorf("JSON = %s, want %s", b, want)
	}
	for _, c := range All {
		if c.Describe() == "other" && c != Other {
			t.Errorf("%q has no description", c)
		}
	}
}
