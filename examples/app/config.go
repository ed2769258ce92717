package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"
)

// secret holds a password. It redacts itself wherever it could be printed, so a config
// logged or formatted by mistake never shows the value; reveal is the one way to it.
type secret struct{ value string }

func (s secret) reveal() string             { return s.value }
func (secret) String() string               { return redacted }
func (secret) GoString() string             { return redacted }
func (secret) Format(f fmt.State, _ rune)   { _, _ = f.Write([]byte(redacted)) }
func (secret) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// scrub replaces the secret's value in msg, a backstop for error text on its way to a log.
func scrub(msg string, s secret) string {
	if s.value == "" {
		return msg
	}
	return strings.ReplaceAll(msg, s.value, redacted)
}

const redacted = "[REDACTED]"

// endpoint is a PostgreSQL server address.
type endpoint struct {
	Host string
	Port int
}

func (e endpoint) String() string { return net.JoinHostPort(e.Host, strconv.Itoa(e.Port)) }

// config is what the service reads at start. ECS injects it as environment variables, either
// one variable per key of the Secrets Manager secret or the whole secret JSON in DB_SECRET.
type config struct {
	Primary endpoint
	// Replica is the read endpoint; the zero value means "use the primary".
	Replica     endpoint
	DBName      string
	User        string
	Password    secret
	SSLMode     string // verify-full when unset
	SSLRootCert string // CA bundle; empty means the system roots
	ListenAddr  string // :8080 when unset
	// DrainTimeout bounds how long in-flight requests may run after SIGTERM (30s when
	// unset). Keep it below the ECS task's stopTimeout, or ECS kills the task mid-drain.
	DrainTimeout time.Duration
	// WorkTable, when set and present in the database, is the table /work counts rows of.
	WorkTable string
}

func (c config) hasReplica() bool { return c.Replica != (endpoint{}) }

// LogValue shows what is safe to log: everything but the password.
func (c config) LogValue() slog.Value {
	replica := "primary"
	if c.hasReplica() {
		replica = c.Replica.String()
	}
	return slog.GroupValue(
		slog.String("primary", c.Primary.String()), slog.String("replica", replica),
		slog.String("dbname", c.DBName), slog.String("user", c.User), slog.String("sslmode", c.SSLMode),
		slog.String("listen", c.ListenAddr), slog.Duration("drain_timeout", c.DrainTimeout))
}

// secretJSON is the app secret's JSON as Secrets Manager stores it (AWS's RDS secret format
// plus replicas and sslmode). Unknown keys (engine, masterarn, …) are ignored: the app needs
// only how to connect.
type secretJSON struct {
	Host     string      `json:"host"`
	Port     json.Number `json:"port"`
	DBName   string      `json:"dbname"`
	Username string      `json:"username"`
	Password string      `json:"password"`
	SSLMode  string      `json:"sslmode"`
	Replicas []struct {
		Host string      `json:"host"`
		Port json.Number `json:"port"`
	} `json:"replicas"`
}

// loadConfig reads the configuration through lookup (os.LookupEnv in main). DB_SECRET, when
// set, supplies the connection fields; a DB_* variable that is also set overrides its field.
func loadConfig(lookup func(string) (string, bool)) (config, error) {
	var (
		c                    config
		primaryPort, rplPort string
	)
	if raw, ok := lookup("DB_SECRET"); ok && raw != "" {
		var s secretJSON
		if err := json.Unmarshal([]byte(raw), &s); err != nil {
			return config{}, secretError(err)
		}
		c.Primary.Host, primaryPort = s.Host, s.Port.String()
		c.DBName, c.User, c.Password, c.SSLMode = s.DBName, s.Username, secret{s.Password}, s.SSLMode
		if len(s.Replicas) > 0 {
			c.Replica.Host, rplPort = s.Replicas[0].Host, s.Replicas[0].Port.String()
		}
	}
	set := func(dst *string, key string) {
		if v, ok := lookup(key); ok && v != "" {
			*dst = v
		}
	}
	set(&c.Primary.Host, "DB_HOST")
	set(&primaryPort, "DB_PORT")
	set(&c.DBName, "DB_NAME")
	set(&c.User, "DB_USER")
	set(&c.Password.value, "DB_PASSWORD")
	set(&c.SSLMode, "DB_SSLMODE")
	set(&c.SSLRootCert, "DB_SSLROOTCERT")
	set(&c.Replica.Host, "DB_REPLICA_HOST")
	set(&rplPort, "DB_REPLICA_PORT")
	set(&c.ListenAddr, "LISTEN_ADDR")
	set(&c.WorkTable, "WORK_TABLE")
	drain := "30s"
	set(&drain, "DRAIN_TIMEOUT")

	c.SSLMode = cmp.Or(c.SSLMode, "verify-full")
	c.ListenAddr = cmp.Or(c.ListenAddr, ":8080")
	var err error
	if c.DrainTimeout, err = time.ParseDuration(drain); err != nil || c.DrainTimeout <= 0 {
		return config{}, fmt.Errorf("read DRAIN_TIMEOUT: %q is not a positive duration", drain)
	}
	if err := c.ports(primaryPort, rplPort); err != nil {
		return config{}, err
	}
	if err := c.check(); err != nil {
		return config{}, err
	}
	return c, nil
}

// secretError describes why DB_SECRET did not decode without quoting it: a syntax
// error can echo a character of the input, which may be the password.
func secretError(err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Errorf("read DB_SECRET: not valid JSON (offset %d)", syn.Offset)
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		return fmt.Errorf("read DB_SECRET: field %q has the wrong type", typ.Field)
	}
	return errors.New("read DB_SECRET: not a JSON object")
}

// ports reads the primary's port and, when there is a replica, the replica's (the primary's by default).
func (c *config) ports(primaryPort, rplPort string) error {
	var err error
	if c.Primary.Port, err = parsePort("DB_PORT", primaryPort, 5432); err != nil {
		return err
	}
	switch {
	case c.Replica.Host == "" && rplPort != "":
		return errors.New("read DB_REPLICA_PORT: set without DB_REPLICA_HOST")
	case c.Replica.Host != "":
		if c.Replica.Port, err = parsePort("DB_REPLICA_PORT", rplPort, c.Primary.Port); err != nil {
			return err
		}
	}
	return nil
}

// check requires the connection fields and a TLS mode that cannot fall back to plaintext.
func (c config) check() error {
	for _, f := range []struct{ key, value string }{
		{"DB_HOST", c.Primary.Host}, {"DB_NAME", c.DBName}, {"DB_USER", c.User}, {"DB_PASSWORD", c.Password.value},
	} {
		if f.value == "" {
			return fmt.Errorf("read %s: missing (set it or DB_SECRET)", f.key)
		}
	}
	switch c.SSLMode {
	case "verify-full", "verify-ca", "require", "disable":
	default:
		// prefer and allow fall back to plaintext without a word; a TLS failure must be an error.
		return fmt.Errorf("read DB_SSLMODE: %q is not one of verify-full, verify-ca, require, disable", c.SSLMode)
	}
	return nil
}

func parsePort(key, v string, def int) (int, error) {
	if v == "" {
		return def, nil
	}
	p, err := strconv.Atoi(v)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("read %s: %q is not a TCP port", key, v)
	}
	return p, nil
}

// dsn returns the keyword/value connection string for e, without the password: pgx configs
// are parsed from it and get the password set as a field, so no parse error can echo it.
func (c config) dsn(e endpoint) string {
	kv := []string{
		"host=" + quoteConninfo(e.Host),
		"port=" + strconv.Itoa(e.Port),
		"dbname=" + quoteConninfo(c.DBName),
		"user=" + quoteConninfo(c.User),
		"sslmode=" + c.SSLMode,
		"application_name=pgrotate-example-app",
	}
	if c.SSLRootCert != "" {
		kv = append(kv, "sslrootcert="+quoteConninfo(c.SSLRootCert))
	}
	return strings.Join(kv, " ")
}

// quoteConninfo quotes a conninfo value as libpq does: single quotes, with \ and ' escaped.
func quoteConninfo(v string) string {
	var b bytes.Buffer
	b.WriteByte('\'')
	for _, r := range v {
		if r == '\'' || r == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('\'')
	return b.String()
}
