package demo

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgrotate/pgrotate/local/backend"
	"github.com/pgrotate/pgrotate/workflow"
)

// Server is an admin connection string given to the demo (--primary-dsn, --replica-dsn):
// where the server is, who the admin is, and the TLS settings every connection to it uses.
type Server struct {
	Endpoint workflow.Endpoint
	User     string
	Password workflow.Password
	// DBName is the DSN's dbname; without one, the user name (as libpq does).
	DBName string
	// SSLMode is the DSN's sslmode (else PGSSLMODE, else verify-full): one of verify-full,
	// verify-ca, require, disable. prefer and allow are refused: they fall back to plaintext
	// without a word.
	SSLMode string
	// SSLRootCert is the DSN's sslrootcert (else PGSSLROOTCERT), made absolute; empty means
	// the system roots.
	SSLRootCert string
}

// ParseDSN reads a keyword/value ("host=… port=… user=…") or URL ("postgres://…")
// connection string. Host, port, user, password and dbname are libpq's (environment
// defaults and the password file included, through pgconn); sslmode and sslrootcert are
// read here. No error it returns contains the password.
func ParseDSN(dsn string) (Server, error) {
	params, err := dsnParams(dsn)
	if err != nil {
		return Server{}, err
	}
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return Server{}, parseError(err, params)
	}
	s := Server{
		Endpoint: workflow.Endpoint{Host: cfg.Host, Port: int(cfg.Port)},
		User:     cfg.User,
		Password: workflow.NewPassword(cfg.Password),
		DBName:   cfg.Database,
		SSLMode:  firstOf(params["sslmode"], os.Getenv("PGSSLMODE"), workflow.DefaultSSLMode),
	}
	if s.DBName == "" {
		s.DBName = s.User
	}
	switch {
	case s.Endpoint.Host == "" || strings.HasPrefix(s.Endpoint.Host, "/"):
		return Server{}, fmt.Errorf("host %q: need a TCP host name or address (the tasks and the probe connect over TCP)", s.Endpoint.Host)
	case s.User == "":
		return Server{}, errors.New("no user")
	case s.Password.IsZero():
		return Server{}, errors.New("no password (put it in the connection string, PGPASSWORD or the password file)")
	}
	switch s.SSLMode {
	case "verify-full", "verify-ca", "require", "disable":
	default:
		return Server{}, fmt.Errorf("sslmode %q: use verify-full, verify-ca, require or disable (prefer and allow fall back to plaintext silently)", s.SSLMode)
	}
	if root := firstOf(params["sslrootcert"], os.Getenv("PGSSLROOTCERT")); root != "" && s.SSLMode != "disable" {
		if s.SSLRootCert, err = filepath.Abs(root); err != nil {
			return Server{}, fmt.Errorf("sslrootcert: %w", err)
		}
	}
	return s, nil
}

// Database describes the servers for the local backend: primary is the admin login, replica
// the read replica (its user and password are not used: roles replicate). The app database
// is appDB, or else the primary DSN's dbname. Both DSNs must use the same TLS settings:
// the app secret has one sslmode and the tasks one CA bundle.
func Database(primary, replica Server, appDB string) (backend.Database, error) {
	if primary.SSLMode != replica.SSLMode {
		return backend.Database{}, fmt.Errorf("the primary DSN's sslmode %s differs from the replica DSN's %s", primary.SSLMode, replica.SSLMode)
	}
	if primary.SSLRootCert != replica.SSLRootCert {
		return backend.Database{}, fmt.Errorf("the primary DSN's sslrootcert %q differs from the replica DSN's %q", primary.SSLRootCert, replica.SSLRootCert)
	}
	if primary.Endpoint == replica.Endpoint {
		return backend.Database{}, fmt.Errorf("the primary and the replica DSNs both name %s", primary.Endpoint)
	}
	if appDB == "" {
		appDB = primary.DBName
	}
	return backend.Database{
		Primary:       primary.Endpoint,
		Replicas:      []workflow.Endpoint{replica.Endpoint},
		AdminUser:     primary.User,
		AdminPassword: primary.Password,
		AdminDB:       primary.DBName,
		AppDB:         appDB,
		SSLMode:       primary.SSLMode,
		CAFile:        primary.SSLRootCert,
	}, nil
}

// dsnParams splits a connection string into its parameters, the password included (only
// to scrub it from errors). Its own errors never quote the input.
func dsnParams(dsn string) (map[string]string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return nil, errors.New("not a valid postgres:// URL")
		}
		params := map[string]string{}
		for k, v := range u.Query() {
			if len(v) > 0 {
				params[k] = v[len(v)-1]
			}
		}
		if pw, ok := u.User.Password(); ok {
			params["password"] = pw
			_, params[rawPasswordKey], _ = strings.Cut(u.User.String(), ":")
		}
		return params, nil
	}
	return keywordParams(dsn)
}

// keywordParams parses libpq's keyword/value form: key = value pairs separated by
// whitespace, a value either single-quoted (with \' and \\) or bare (with backslash escapes).
func keywordParams(s string) (map[string]string, error) {
	params := map[string]string{}
	sc := &keywordScanner{s: s}
	for {
		sc.skipSpace()
		if sc.done() {
			return params, nil
		}
		key, err := sc.key()
		if err != nil {
			return nil, err
		}
		sc.skipSpace()
		val, err := sc.value(key)
		if err != nil {
			return nil, err
		}
		params[key] = val
	}
}

// keywordScanner reads a keyword/value connection string from byte i on.
type keywordScanner struct {
	s string
	i int
}

func (k *keywordScanner) done() bool { return k.i >= len(k.s) }

func (k *keywordScanner) skipSpace() {
	for !k.done() && unicode.IsSpace(rune(k.s[k.i])) {
		k.i++
	}
}

// key reads a keyword and the = after it.
func (k *keywordScanner) key() (string, error) {
	start := k.i
	for !k.done() && k.s[k.i] != '=' && !unicode.IsSpace(rune(k.s[k.i])) {
		k.i++
	}
	key := k.s[start:k.i]
	k.skipSpace()
	if k.done() || k.s[k.i] != '=' || key == "" {
		return "", fmt.Errorf("not a keyword=value connection string (at byte %d)", start)
	}
	k.i++
	return key, nil
}

// value reads the value of key: single-quoted, or bare.
func (k *keywordScanner) value(key string) (string, error) {
	if k.done() || k.s[k.i] != '\'' {
		return k.bare(), nil
	}
	k.i++
	val, closed := k.quoted()
	if !closed {
		return "", fmt.Errorf("unterminated quoted value of %s", strconv.Quote(key))
	}
	return val, nil
}

// quoted reads a quoted value after its opening quote, with \' and \\; closed is false when
// the string ends first.
func (k *keywordScanner) quoted() (val string, closed bool) {
	var b strings.Builder
	for !k.done() {
		switch c := k.s[k.i]; {
		case c == '\\' && k.i+1 < len(k.s):
			b.WriteByte(k.s[k.i+1])
			k.i += 2
		case c == '\'':
			k.i++
			return b.String(), true
		default:
			b.WriteByte(c)
			k.i++
		}
	}
	return b.String(), false
}

// bare reads an unquoted value up to whitespace, a backslash escaping the next byte.
func (k *keywordScanner) bare() string {
	var b strings.Builder
	for !k.done() && !unicode.IsSpace(rune(k.s[k.i])) {
		if k.s[k.i] == '\\' && k.i+1 < len(k.s) {
			k.i++
		}
		b.WriteByte(k.s[k.i])
		k.i++
	}
	return b.String()
}

// parseError keeps what pgconn says is wrong and drops the connection string it quotes:
// its password redaction is best effort (a quoted password with an escaped quote in it
// leaks in part). The password is scrubbed from what is left, as a backstop.
func parseError(err error, params map[string]string) error {
	msg := err.Error()
	var pce *pgconn.ParseConfigError
	if errors.As(err, &pce) {
		if i := strings.LastIndex(msg, "`: "); i >= 0 {
			msg = "invalid connection string: " + msg[i+len("`: "):]
		} else {
			msg = "invalid connection string"
		}
	}
	for _, k := range []string{"password", rawPasswordKey} {
		msg = scrub(msg, params[k])
	}
	return errors.New(msg)
}

// rawPasswordKey holds a URL's password as written (percent-encoded), to scrub it too.
const rawPasswordKey = "\x00raw-password"

// scrub replaces secret in msg.
func scrub(msg, secret string) string {
	if secret == "" {
		return msg
	}
	return strings.ReplaceAll(msg, secret, workflow.Redacted)
}

func firstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// keywordDSN builds a keyword/value connection string without user or password.
func keywordDSN(ep workflow.Endpoint, dbname, sslmode, sslrootcert string) string {
	kv := []string{"host=" + quote(ep.Host), "port=" + strconv.Itoa(ep.Port), "dbname=" + quote(dbname), "sslmode=" + sslmode}
	if sslrootcert != "" {
		kv = append(kv, "sslrootcert="+quote(sslrootcert))
	}
	return strings.Join(kv, " ")
}

// quote quotes a keyword/value connection string value as libpq reads it.
func quote(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}
