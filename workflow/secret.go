package workflow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Engines pgrotate accepts in a secret's "engine" field.
var engines = map[string]bool{"postgres": true, "aurora-postgresql": true}

// SSL modes a secret may name. "prefer" and "allow" are refused: they fall back to
// plaintext silently. "disable" is an explicit, visible choice.
var sslModes = map[string]bool{"verify-full": true, "verify-ca": true, "require": true, "disable": true}

// DefaultSSLMode is used when a secret names none.
const DefaultSSLMode = "verify-full"

// Endpoint is a PostgreSQL server address.
type Endpoint struct {
	Host string `json:"host"`
	Port int    `json:"port"`
}

func (e Endpoint) String() string { return fmt.Sprintf("%s:%d", e.Host, e.Port) }

// AppSecret is the application's secret, in AWS's RDS secret JSON plus optional replicas
// and sslmode. Its username alternates between the two login users.
type AppSecret struct {
	Engine    string     `json:"engine"`
	Host      string     `json:"host"`
	Port      int        `json:"port"`
	DBName    string     `json:"dbname"`
	Username  string     `json:"username"`
	Password  Password   `json:"password"`
	MasterARN string     `json:"masterarn"`
	Replicas  []Endpoint `json:"replicas,omitempty"`
	SSLMode   string     `json:"sslmode,omitempty"`
	// Kept as given so a rotation does not drop what RDS or the user stored. SSL is the
	// AWS templates' "ssl" flag; pgrotate reads sslmode instead.
	DBInstanceIdentifier string          `json:"dbInstanceIdentifier,omitempty"`
	DBClusterIdentifier  string          `json:"dbClusterIdentifier,omitempty"`
	SSL                  json.RawMessage `json:"ssl,omitempty"`
}

// AdminSecret is the self-managed admin (master) user's secret, used only by pgrotate.
type AdminSecret struct {
	Engine   string   `json:"engine"`
	Host     string   `json:"host"`
	Port     int      `json:"port"`
	DBName   string   `json:"dbname"`
	Username string   `json:"username"`
	Password Password `json:"password"`
	SSLMode  string   `json:"sslmode,omitempty"`

	DBInstanceIdentifier string          `json:"dbInstanceIdentifier,omitempty"`
	DBClusterIdentifier  string          `json:"dbClusterIdentifier,omitempty"`
	SSL                  json.RawMessage `json:"ssl,omitempty"`
}

// Primary returns the primary's endpoint.
func (s AppSecret) Primary() Endpoint { return Endpoint{Host: s.Host, Port: s.Port} }

// Primary returns the primary's endpoint.
func (s AdminSecret) Primary() Endpoint { return Endpoint{Host: s.Host, Port: s.Port} }

// TLSMode returns the secret's sslmode or the default.
func (s AppSecret) TLSMode() string { return orDefault(s.SSLMode) }

// TLSMode returns the secret's sslmode or the default.
func (s AdminSecret) TLSMode() string { return orDefault(s.SSLMode) }

func orDefault(mode string) string {
	if mode == "" {
		return DefaultSSLMode
	}
	return mode
}

// LogValue shows what is safe to log.
func (s AppSecret) LogValue() slog.Value {
	return slog.GroupValue(slog.String("host", s.Host), slog.Int("port", s.Port), slog.String("dbname", s.DBName),
		slog.String("username", s.Username), slog.String("password", Redacted), slog.Int("replicas", len(s.Replicas)))
}

// LogValue shows what is safe to log.
func (s AdminSecret) LogValue() slog.Value {
	return slog.GroupValue(slog.String("host", s.Host), slog.Int("port", s.Port), slog.String("dbname", s.DBName),
		slog.String("username", s.Username), slog.String("password", Redacted))
}

// ParseAppSecret decodes and validates an app secret. Unknown fields are refused: a typo
// such as "hostname" must not leave a field silently empty.
func ParseAppSecret(data []byte) (AppSecret, error) {
	var s AppSecret
	if field, err := decodeStrict(data, &s); err != nil {
		return AppSecret{}, &InvalidSecret{Secret: "app", Field: field, Reason: err.Error()}
	}
	if err := s.Validate(); err != nil {
		return AppSecret{}, err
	}
	return s, nil
}

// ParseAdminSecret decodes and validates an admin secret.
func ParseAdminSecret(data []byte) (AdminSecret, error) {
	var s AdminSecret
	if field, err := decodeStrict(data, &s); err != nil {
		return AdminSecret{}, &InvalidSecret{Secret: "admin", Field: field, Reason: err.Error()}
	}
	if err := s.Validate(); err != nil {
		return AdminSecret{}, err
	}
	return s, nil
}

// Validate checks every field of an app secret.
func (s AppSecret) Validate() error {
	if err := validateCommon("app", s.Engine, s.Host, s.Port, s.DBName, s.Username, s.Password, s.SSLMode); err != nil {
		return err
	}
	if err := ValidateRoleName(s.Username); err != nil {
		return &InvalidSecret{Secret: "app", Field: "username", Reason: err.Error()}
	}
	if s.MasterARN == "" {
		return &InvalidSecret{Secret: "app", Field: "masterarn", Reason: "missing (the admin secret's ARN)"}
	}
	if !strings.HasPrefix(s.MasterARN, "arn:") {
		return &InvalidSecret{Secret: "app", Field: "masterarn", Reason: "not an ARN"}
	}
	for i, r := range s.Replicas {
		if r.Host == "" {
			return &InvalidSecret{Secret: "app", Field: fmt.Sprintf("replicas[%d].host", i), Reason: "missing"}
		}
		if r.Port < 1 || r.Port > 65535 {
			return &InvalidSecret{Secret: "app", Field: fmt.Sprintf("replicas[%d].port", i), Reason: fmt.Sprintf("%d is not a TCP port", r.Port)}
		}
	}
	return nil
}

// Validate checks every field of an admin secret.
func (s AdminSecret) Validate() error {
	if err := validateCommon("admin", s.Engine, s.Host, s.Port, s.DBName, s.Username, s.Password, s.SSLMode); err != nil {
		return err
	}
	if err := validateOne(s.Username); err != nil {
		return &InvalidSecret{Secret: "admin", Field: "username", Reason: err.Error()}
	}
	return nil
}

func validateCommon(which, engine, host string, port int, dbname, username string, password Password, sslmode string) error {
	switch {
	case engine == "":
		return &InvalidSecret{Secret: which, Field: "engine", Reason: "missing"}
	case !engines[engine]:
		return &InvalidSecret{Secret: which, Field: "engine", Reason: fmt.Sprintf("%q is not a PostgreSQL engine", engine)}
	case host == "":
		return &InvalidSecret{Secret: which, Field: "host", Reason: "missing"}
	case port == 0:
		return &InvalidSecret{Secret: which, Field: "port", Reason: "missing"}
	case port < 1 || port > 65535:
		return &InvalidSecret{Secret: which, Field: "port", Reason: fmt.Sprintf("%d is not a TCP port", port)}
	case dbname == "":
		return &InvalidSecret{Secret: which, Field: "dbname", Reason: "missing"}
	case username == "":
		return &InvalidSecret{Secret: which, Field: "username", Reason: "missing"}
	case password.IsZero():
		return &InvalidSecret{Secret: which, Field: "password", Reason: "missing"}
	case sslmode != "" && !sslModes[sslmode]:
		return &InvalidSecret{Secret: which, Field: "sslmode", Reason: fmt.Sprintf("%q is not one of verify-full, verify-ca, require, disable", sslmode)}
	}
	return nil
}

// ValidatePair checks that the app secret and the admin secret name the same primary, so
// the admin credentials are never sent to a host the app secret chose (confused deputy).
func ValidatePair(app AppSecret, admin AdminSecret) error {
	if !strings.EqualFold(app.Host, admin.Host) || app.Port != admin.Port {
		return &InvalidSecret{Secret: "app", Field: "host", Reason: fmt.Sprintf("primary %s differs from the admin secret's %s", app.Primary(), admin.Primary())}
	}
	if app.Username == admin.Username || Alternate(app.Username) == admin.Username {
		return &InvalidSecret{Secret: "app", Field: "username", Reason: "the app users must not be the admin user"}
	}
	return nil
}

// ValidatePending checks that a pending version is the alternate of the current one and
// points at the same database.
func ValidatePending(current, pending AppSecret) error {
	if pending.Username != Alternate(current.Username) {
		return &InvalidSecret{Secret: "pending", Field: "username", Reason: fmt.Sprintf("%q is not the alternate of the current user %q", pending.Username, current.Username)}
	}
	if !strings.EqualFold(pending.Host, current.Host) || pending.Port != current.Port || pending.DBName != current.DBName {
		return &InvalidSecret{Secret: "pending", Field: "host", Reason: "pending version names another database than the current one"}
	}
	if pending.MasterARN != current.MasterARN {
		return &InvalidSecret{Secret: "pending", Field: "masterarn", Reason: "pending version names another admin secret than the current one"}
	}
	if pending.Password.Equal(current.Password) {
		return &InvalidSecret{Secret: "pending", Field: "password", Reason: "pending password equals the current one"}
	}
	return nil
}

// Pending derives the pending version from the current one: the alternate user with a new
// password, everything else unchanged.
func (s AppSecret) Pending(password Password) AppSecret {
	p := s
	p.Username = Alternate(s.Username)
	p.Password = password
	p.Replicas = append([]Endpoint(nil), s.Replicas...)
	return p
}

// SecretString serialises the secret with its clear-text password, for Secrets Manager only.
func (s AppSecret) SecretString() (string, error) {
	type plain AppSecret
	return marshalWithPassword(plain(s), s.Password)
}

// SecretString serialises the secret with its clear-text password, for Secrets Manager only.
func (s AdminSecret) SecretString() (string, error) {
	type plain AdminSecret
	return marshalWithPassword(plain(s), s.Password)
}

// marshalWithPassword marshals v (whose Password field redacts) and puts the clear text
// back into the "password" key.
func marshalWithPassword(v any, p Password) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return "", err
	}
	pw, err := json.Marshal(p.Reveal())
	if err != nil {
		return "", err
	}
	m["password"] = pw
	out, err := json.Marshal(m)
	return string(out), err
}

// decodeStrict decodes one JSON object, refusing unknown fields and trailing data. Its
// errors never quote the input, which holds a password.
func decodeStrict(data []byte, v any) (field string, err error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return "", fmt.Errorf("not valid JSON (offset %d)", syn.Offset)
		case errors.As(err, &typ):
			return typ.Field, fmt.Errorf("must be a JSON %s", jsonKind(typ.Type.Kind().String()))
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return "", fmt.Errorf("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return "", errors.New("not valid JSON (truncated)")
		}
		return "", errors.New("not a JSON object of the expected shape")
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", errors.New("trailing data after the JSON object")
	}
	return "", nil
}

func jsonKind(goKind string) string {
	switch goKind {
	case "int", "int64":
		return "number"
	case "slice":
		return "array"
	case "struct":
		return "object"
	}
	return goKind
}

func jsonUnmarshalString(b []byte, s *string) error {
	if err := json.Unmarshal(b, s); err != nil {
		return errors.New("password must be a JSON string")
	}
	return nil
}
