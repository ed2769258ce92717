package postgres

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgrotate/pgrotate/workflow"
)

// unavailableStates are the SQLSTATEs of a server that cannot serve now but will: class 08
// (connection exception) and, of class 57 (operator intervention), admin_shutdown (57P01,
// the fast shutdown of a restart or failover), crash_shutdown (57P02) and cannot_connect_now
// (57P03: starting up, shutting down, in recovery), and too_many_connections (53300).
// https://www.postgresql.org/docs/15/errcodes-appendix.html
var unavailableStates = map[string]bool{"57P01": true, "57P02": true, "57P03": true, "53300": true}

// transientErrnos are the socket errors of a server that went away or is not listening
// (yet): a stopped primary refuses, a failing-over one resets or times out.
var transientErrnos = []syscall.Errno{
	syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE,
	syscall.ETIMEDOUT, syscall.EHOSTUNREACH, syscall.ENETUNREACH,
}

// Unavailable returns err as a *workflow.DatabaseUnavailable naming ep when err says that the
// server cannot be reached or cannot serve now, and nil otherwise. A refused login, a
// certificate that does not verify, a server that refuses TLS or an SQL error are not
// transient and stay what they are.
func Unavailable(ep workflow.Endpoint, err error) *workflow.DatabaseUnavailable {
	if err == nil {
		return nil
	}
	var du *workflow.DatabaseUnavailable
	if errors.As(err, &du) {
		return du
	}
	reason, ok := unavailableReason(err)
	if !ok {
		return nil
	}
	return &workflow.DatabaseUnavailable{Endpoint: ep.String(), Reason: reason, Err: err}
}

// classify returns err with a *workflow.DatabaseUnavailable for ep in front when Unavailable
// says so, keeping err's message for the log; otherwise err itself.
func classify(ep workflow.Endpoint, err error) error {
	u := Unavailable(ep, err)
	if u == nil || errors.Is(err, u) {
		return err
	}
	return fmt.Errorf("%w (%v)", u, err)
}

func unavailableReason(err error) (string, bool) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		if strings.HasPrefix(pgErr.Code, "08") || unavailableStates[pgErr.Code] {
			return fmt.Sprintf("%s (SQLSTATE %s)", pgErr.Message, pgErr.Code), true
		}
		return "", false
	}
	if badCertificate(err) || errors.Is(err, errTLSRefused) {
		return "", false
	}
	if errors.Is(err, context.Canceled) && !pgconn.Timeout(err) {
		// The invocation itself was cancelled (the execution was stopped): not the server.
		return "", false
	}
	for _, errno := range transientErrnos {
		if errors.Is(err, errno) {
			return errno.Error(), true
		}
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		// A failover changes the endpoint's DNS record; a name that does not exist at all is
		// a configuration error.
		if dnsErr.IsTimeout || dnsErr.IsTemporary {
			return "DNS lookup of " + dnsErr.Name + ": " + dnsErr.Err, true
		}
		return "", false
	}
	return connectionLost(err)
}

// connectionLost names a timeout or a connection the server or network closed.
func connectionLost(err error) (string, bool) {
	var netErr net.Error
	switch {
	case pgconn.Timeout(err), errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "timed out", true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the server closed the connection", true
	case errors.Is(err, pgconn.ErrConnClosed), errors.Is(err, net.ErrClosed):
		return "the connection is closed", true
	}
	return "", false
}

// badCertificate reports a certificate that did not verify: retrying cannot fix it.
func badCertificate(err error) bool {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci)
}
