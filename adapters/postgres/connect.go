package postgres

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgrotate/pgrotate/workflow"
)

// DefaultConnectTimeout bounds a connection attempt when Options.ConnectTimeout is zero.
const DefaultConnectTimeout = 5 * time.Second

// Options are the deployment-wide connection settings.
type Options struct {
	// CABundle is the path of a PEM file with the CA certificates that sign the servers'
	// certificates (for RDS, the region's bundle). Empty means the system roots.
	CABundle string
	// ConnectTimeout bounds each connection attempt. Zero means DefaultConnectTimeout.
	ConnectTimeout time.Duration
}

func (o Options) timeout() time.Duration {
	if o.ConnectTimeout <= 0 {
		return DefaultConnectTimeout
	}
	return o.ConnectTimeout
}

func (o Options) caName() string {
	if o.CABundle == "" {
		return "system roots"
	}
	return "CA bundle " + o.CABundle
}

// TLSError reports a TLS failure: the server refused TLS, the handshake failed, or its
// certificate did not verify. pgrotate never retries such a connection in plaintext.
type TLSError struct {
	Endpoint string
	SSLMode  string
	CA       string // "CA bundle <path>" or "system roots"
	Err      error
}

func (e *TLSError) Error() string {
	what := "TLS handshake failed"
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(e.Err, &cv), errors.As(e.Err, &ua), errors.As(e.Err, &he), errors.As(e.Err, &ci):
		what = "server certificate not accepted"
	case errors.Is(e.Err, errTLSRefused):
		what = "server refused TLS"
	}
	return fmt.Sprintf("TLS to %s (sslmode=%s, %s): %s: %v", e.Endpoint, e.SSLMode, e.CA, what, e.Err)
}

func (e *TLSError) Unwrap() error { return e.Err }

var errTLSRefused = errors.New("server refused TLS connection")

// Connect opens one connection to the target, with TLS per its sslmode ("" means
// verify-full; verify-ca, require or an explicit disable; prefer and allow are refused
// because they fall back to plaintext). A refused login is a *workflow.CredentialRejected, a
// TLS failure a *TLSError. Never attach a tracer to the result: it would log statements and
// arguments.
func Connect(ctx context.Context, t workflow.Target, opts Options) (*pgx.Conn, error) {
	cfg, err := connConfig(t, opts)
	if err != nil {
		return nil, fmt.Errorf("connect to %s as %q: %w", t.Endpoint, t.User, err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, classifyConnectError(t, opts, err)
	}
	return conn, nil
}

// connConfig builds the pinned configuration described in the package doc: the one place a
// pgx configuration is made (ParseConfig of a DSN without the password, then Password set).
func connConfig(t workflow.Target, opts Options) (*pgx.ConnConfig, error) {
	ep, dbname, user, password, sslmode := t.Endpoint, t.DBName, t.User, t.Password, t.TLSMode()
	if err := checkEndpoint(ep); err != nil {
		return nil, err
	}
	switch {
	case dbname == "":
		return nil, errors.New("database name is empty")
	case user == "":
		return nil, errors.New("user name is empty")
	case password.IsZero():
		return nil, errors.New("password is empty")
	}
	tlsCfg, err := tlsConfig(ep.Host, sslmode, opts)
	if err != nil {
		return nil, err
	}
	// sslmode=disable and an empty sslrootcert keep pgx's own TLS setup (which reads
	// PGSSLROOTCERT, ~/.postgresql/*) out of it; TLSConfig is set below.
	dsn := strings.Join([]string{
		"host=" + dsnQuote(ep.Host),
		"port=" + strconv.Itoa(ep.Port),
		"dbname=" + dsnQuote(dbname),
		"user=" + dsnQuote(user),
		"sslmode=disable",
		"sslrootcert=''",
	}, " ")
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// The DSN holds no secret, but keep the message short anyway.
		return nil, fmt.Errorf("build connection config: %w", err)
	}
	if cfg.Host != ep.Host || int(cfg.Port) != ep.Port || cfg.Database != dbname || cfg.User != user {
		return nil, errors.New("build connection config: parsed host, port, database or user differ from the requested ones")
	}
	cfg.Password = password.Reveal()
	cfg.TLSConfig = tlsCfg
	cfg.SSLNegotiation = "postgres" // the classic SSLRequest first, whatever PGSSLNEGOTIATION says
	cfg.SSLCertMode = "disable"     // no client certificate is configured or wanted
	cfg.Fallbacks = nil             // no second attempt, above all none in plaintext
	// A server (or an impostor with a valid certificate) that asks for the password in
	// clear text does not get it: SCRAM or md5 prove it without sending it.
	cfg.RequireAuth = "!password"
	cfg.ConnectTimeout = opts.timeout()
	cfg.RuntimeParams = map[string]string{"application_name": "pgrotate"}
	cfg.ValidateConnect = nil
	cfg.AfterConnect = nil
	cfg.KerberosSrvName, cfg.KerberosSpn = "", ""
	cfg.Tracer = nil
	if tlsCfg != nil {
		// Force the handshake now, so a certificate problem is reported as such and not
		// as a failure to write the startup message.
		cfg.AfterNetConnect = func(ctx context.Context, _ *pgconn.Config, c net.Conn) (net.Conn, error) {
			// On error pgx closes the conn it gets back, so hand it back.
			tc, ok := c.(*tls.Conn)
			if !ok {
				return c, errors.New("connection is not TLS")
			}
			if err := tc.HandshakeContext(ctx); err != nil {
				return c, &TLSError{Endpoint: ep.String(), SSLMode: sslmode, CA: opts.caName(), Err: err}
			}
			return c, nil
		}
	}
	return cfg, nil
}

func checkEndpoint(ep workflow.Endpoint) error {
	h := ep.Host
	switch {
	case h == "":
		return errors.New("host is empty")
	case strings.HasPrefix(h, "/"):
		// A Unix socket has no TLS.
		return fmt.Errorf("host %q is a Unix socket path; pgrotate connects over TCP with TLS", h)
	case strings.ContainsAny(h, ", \t\r\n'\"\\\x00"):
		// A comma would make libpq-style parsing see several hosts, i.e. fallbacks.
		return fmt.Errorf("host %q is not a single host name or address", h)
	case ep.Port < 1 || ep.Port > 65535:
		return fmt.Errorf("port %d is not a TCP port", ep.Port)
	}
	return nil
}

// dsnQuote quotes a keyword/value DSN value: single quotes, with backslash and quote escaped.
func dsnQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(s) + "'"
}

// tlsConfig returns the client TLS configuration for sslmode, or nil for disable.
func tlsConfig(host, sslmode string, opts Options) (*tls.Config, error) {
	var roots *x509.CertPool
	if opts.CABundle != "" {
		pem, err := os.ReadFile(opts.CABundle)
		if err != nil {
			return nil, fmt.Errorf("read CA bundle: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA bundle %s holds no PEM certificate", opts.CABundle)
		}
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	if net.ParseIP(host) == nil {
		cfg.ServerName = host // SNI, and the name verify-full checks
	}
	switch sslmode {
	case "verify-full":
		// crypto/tls checks the chain and the name; an IP literal is matched against the
		// certificate's IP SANs.
		cfg.ServerName = host
	case "verify-ca":
		verifyChainOnly(cfg, roots)
	case "require":
		if opts.CABundle != "" {
			verifyChainOnly(cfg, roots)
		} else {
			cfg.InsecureSkipVerify = true
		}
	case "disable":
		return nil, nil
	case "prefer", "allow":
		return nil, fmt.Errorf("sslmode=%s is refused: it falls back to plaintext without telling", sslmode)
	default:
		return nil, fmt.Errorf("sslmode %q is not one of verify-full, verify-ca, require, disable", sslmode)
	}
	return cfg, nil
}

// verifyChainOnly checks the certificate chain against roots (nil: system roots) but not
// the host name, as libpq's verify-ca does. VerifyConnection also runs on resumed sessions.
func verifyChainOnly(cfg *tls.Config, roots *x509.CertPool) {
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("server sent no certificate")
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
		return err
	}
}

// classifyConnectError turns a pgx connect error into a named error where one applies: a
// refused login is a *workflow.CredentialRejected, a server that is down, restarting or
// failing over a *workflow.DatabaseUnavailable (see Unavailable).
func classifyConnectError(t workflow.Target, opts Options, err error) error {
	ep, user, sslmode := t.Endpoint, t.User, t.TLSMode()
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "28P01" || pgErr.Code == "28000") {
		return &workflow.CredentialRejected{User: user, Host: ep.String(), Reason: fmt.Sprintf("%s (SQLSTATE %s)", pgErr.Message, pgErr.Code)}
	}
	// Before the TLS cases: a handshake cut short by a server going down is transient.
	if u := Unavailable(ep, err); u != nil {
		return fmt.Errorf("connect to %s as %q: %w", ep, user, u)
	}
	var tlsErr *TLSError
	if errors.As(err, &tlsErr) {
		return fmt.Errorf("connect to %s as %q: %w", ep, user, tlsErr)
	}
	if strings.Contains(err.Error(), errTLSRefused.Error()) {
		return fmt.Errorf("connect to %s as %q: %w", ep, user, &TLSError{Endpoint: ep.String(), SSLMode: sslmode, CA: opts.caName(), Err: fmt.Errorf("%w: %v", errTLSRefused, err)})
	}
	return fmt.Errorf("connect to %s as %q: %w", ep, user, err)
}

// Login logs in as the target's user and returns current_user and session_user: for the
// clone, current_user is the base role (its role setting) and session_user the clone.
func Login(ctx context.Context, t workflow.Target, opts Options) (currentUser, sessionUser string, err error) {
	conn, err := Connect(ctx, t, opts)
	if err != nil {
		return "", "", err // already names the endpoint and user
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := conn.QueryRow(ctx, "SELECT current_user::text, session_user::text").Scan(&currentUser, &sessionUser); err != nil {
		return "", "", fmt.Errorf("login as %q on %s: probe query: %w", t.User, t.Endpoint, err)
	}
	return currentUser, sessionUser, nil
}
