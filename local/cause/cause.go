// Package cause names why a login or an app request failed, for the demo's reports: the
// server refused the credentials, a server could not be reached, a stopping task cut the
// request, or something else. The demo's proof is zero failures of every cause; the baseline
// (single-user rotation) shows its gap as refused credentials.
package cause

import (
	"errors"
	"io"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Cause is one of the constants below; its JSON form is the string.
type Cause string

// Causes, from the most to the least specific.
const (
	// AuthRefused: PostgreSQL refused the login (SQLSTATE class 28: 28P01 wrong password,
	// 28000 no such role or not permitted).
	AuthRefused Cause = "auth_refused"
	// ServerUnavailable: a server could not be reached or would not take the connection
	// (connection refused, SQLSTATE class 08, 53300 too many connections, 57P01–57P03
	// shutting down or starting up).
	ServerUnavailable Cause = "server_unavailable"
	// CutByShutdown: an HTTP request that a task being stopped closed without an answer.
	CutByShutdown Cause = "cut_by_shutdown"
	// Other: anything else (a timeout, an unexpected status).
	Other Cause = "other"
)

// Failure is one failed login (local/probe) or app request (local/fleet): whose, why, and
// when.
type Failure struct {
	User string `json:"user"`
	// Reason is what the client saw: PostgreSQL's SQLSTATE and message, or the app's HTTP
	// status and answer (an SQLSTATE or the kind of failure), or the client's error; never
	// a secret (the probe scrubs the password, the app never puts one in its answer).
	Reason string `json:"reason"`
	// Cause classifies the failure; SQLState is PostgreSQL's code when there was one.
	Cause    Cause     `json:"cause"`
	SQLState string    `json:"sqlstate,omitempty"`
	At       time.Time `json:"at"`
}

// All lists the causes in report order.
var All = []Cause{AuthRefused, ServerUnavailable, CutByShutdown, Other}

// Describe says what c means, for a human report.
func (c Cause) Describe() string {
	switch c {
	case AuthRefused:
		return "authentication refused"
	case ServerUnavailable:
		return "server unavailable"
	case CutByShutdown:
		return "request cut by the task's shutdown"
	default:
		return "other"
	}
}

// OfSQLState classifies a PostgreSQL error code.
func OfSQLState(code string) Cause {
	switch {
	case strings.HasPrefix(code, "28"):
		return AuthRefused
	case strings.HasPrefix(code, "08"), code == "53300", code == "57P01", code == "57P02", code == "57P03":
		return ServerUnavailable
	default:
		return Other
	}
}

// Of classifies a login's or a query's error and returns the SQLSTATE, if the server sent one.
func Of(err error) (Cause, string) {
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return "", ""
	case errors.As(err, &pgErr):
		return OfSQLState(pgErr.Code), pgErr.Code
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.EPIPE):
		return ServerUnavailable, ""
	default:
		return Other, ""
	}
}

// Counts are failures by cause. Its JSON form lists every cause, zeros included, so a report
// shows that each was counted.
type Counts map[Cause]int

// NewCounts returns counts with every cause at zero.
func NewCounts() Counts {
	c := Counts{}
	for _, k := range All {
		c[k] = 0
	}
	return c
}
