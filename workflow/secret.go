package workflow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
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

	form secretForm
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

	form secretForm
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

// ParseAppSecret decodes and validates an app secret. Unknown keys are refused: a typo
// such as "hostname" must not leave a field silently empty.
func ParseAppSecret(data []byte) (AppSecret, error) {
	return parseSecret("app", data, readApp)
}

// ParseAdminSecret decodes and validates an admin secret.
func ParseAdminSecret(data []byte) (AdminSecret, error) {
	return parseSecret("admin", data, readAdmin)
}

// parseSecret reads data with read and validates the result; which names the secret in errors.
func parseSecret[S interface{ Validate() error }](which string, data []byte, read func([]byte) (S, *badField)) (S, error) {
	var zero S
	s, bad := read(data)
	if bad != nil {
		return zero, &InvalidSecret{Secret: which, Field: bad.field, Reason: bad.reason}
	}
	if err := s.Validate(); err != nil {
		return zero, err
	}
	return s, nil
}

func readAdmin(data []byte) (AdminSecret, *badField) {
	_, c, bad := readSecret(data, adminKeys)
	if bad != nil {
		return AdminSecret{}, bad
	}
	return AdminSecret{Engine: c.engine, Host: c.host, Port: c.port, DBName: c.dbname, Username: c.username,
		Password: c.password, SSLMode: c.sslmode, DBInstanceIdentifier: c.instance, DBClusterIdentifier: c.cluster,
		SSL: c.ssl, form: c.form}, nil
}

func readApp(data []byte) (AppSecret, *badField) {
	m, c, bad := readSecret(data, appKeys)
	if bad != nil {
		return AppSecret{}, bad
	}
	s := AppSecret{Engine: c.engine, Host: c.host, Port: c.port, DBName: c.dbname, Username: c.username,
		Password: c.password, SSLMode: c.sslmode, DBInstanceIdentifier: c.instance, DBClusterIdentifier: c.cluster,
		SSL: c.ssl, form: c.form}
	if bad := readString(m, "", "masterarn", &s.MasterARN); bad != nil {
		return AppSecret{}, bad
	}
	if s.Replicas, bad = readReplicas(m); bad != nil {
		return AppSecret{}, bad
	}
	return s, nil
}

// Validate checks every field of an app secret.
func (s AppSecret) Validate() error {
	if err := validateCommon("app", s.Engine, s.Host, s.Port, s.DBName, s.Username, s.Password, s.SSLMode); err != nil {
		return err
	}
	if err := ValidateRoleName(s.Username); err != nil {
		return &InvalidSecret{Secret: "app", Field: "username", Reason: roleReason(err, s.Username)}
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
			return &InvalidSecret{Secret: "app", Field: fmt.Sprintf("replicas[%d].port", i), Reason: portRange}
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
		return &InvalidSecret{Secret: "admin", Field: "username", Reason: roleReason(err, s.Username)}
	}
	return nil
}

func validateCommon(which, engine, host string, port int, dbname, username string, password Password, sslmode string) error {
	switch {
	case engine == "":
		return &InvalidSecret{Secret: which, Field: "engine", Reason: "missing"}
	case !engines[engine]:
		return &InvalidSecret{Secret: which, Field: "engine", Reason: "not postgres or aurora-postgresql"}
	case host == "":
		return &InvalidSecret{Secret: which, Field: "host", Reason: "missing"}
	case port < 1 || port > 65535:
		return &InvalidSecret{Secret: which, Field: "port", Reason: portRange}
	case dbname == "":
		return &InvalidSecret{Secret: which, Field: "dbname", Reason: "empty"}
	case username == "":
		return &InvalidSecret{Secret: which, Field: "username", Reason: "missing"}
	case password.IsZero():
		return &InvalidSecret{Secret: which, Field: "password", Reason: "missing"}
	case sslmode != "" && !sslModes[sslmode]:
		return &InvalidSecret{Secret: which, Field: "sslmode", Reason: "not one of verify-full, verify-ca, require, disable"}
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
	return marshalWithPassword(plain(s), s.Password, s.form, s.Port, s.DBName)
}

// SecretString serialises the secret with its clear-text password, for Secrets Manager only.
func (s AdminSecret) SecretString() (string, error) {
	type plain AdminSecret
	return marshalWithPassword(plain(s), s.Password, s.form, s.Port, s.DBName)
}

// marshalWithPassword marshals v (whose Password field redacts), puts the clear text back
// into the "password" key, and writes port and dbname in the form they were read in.
func marshalWithPassword(v any, p Password, form secretForm, port int, dbname string) (string, error) {
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
	switch {
	case form.portOmitted && port == defaultPort:
		delete(m, "port")
	case form.portText:
		m["port"], _ = json.Marshal(strconv.Itoa(port)) // a string always encodes
	}
	if form.dbnameOmitted && dbname == defaultDBName {
		delete(m, "dbname")
	}
	out, err := json.Marshal(m)
	return string(out), err
}

// The secret's JSON has one reading. encoding/json matches keys case-insensitively and lets
// the last duplicate win, so {"username":"app_user","UserName":"other"} would rotate
// "other" while Python readers (AWS's rotation templates among them) see "app_user".
// Secrets are therefore read by a token walk that accepts only exact keys, each once, and
// then applies the defaults of AWS's PostgreSQL rotation templates
// (aws-samples/aws-secrets-manager-rotation-lambdas,
// SecretsManagerRDSPostgreSQLRotationSingleUser/lambda_function.py and
// SecretsManagerRDSPostgreSQLRotationMultiUser/lambda_function.py, get_connection and
// get_secret_dict): engine, host, username and password required (masterarn too for the
// multi-user scheme); engine "postgres" or "aurora-postgresql"; port optional, default
// 5432, read with int() so 5432 and "5432" both work; dbname optional, default "postgres".
// No error quotes a value: the input holds a password.

var (
	commonKeys   = []string{"engine", "host", "port", "dbname", "username", "password", "sslmode", "dbInstanceIdentifier", "dbClusterIdentifier", "ssl"}
	appKeys      = append([]string{"masterarn", "replicas"}, commonKeys...)
	adminKeys    = commonKeys
	endpointKeys = []string{"host", "port"}
)

// The defaults of AWS's templates for a key that is absent.
const (
	defaultPort   = 5432
	defaultDBName = "postgres"
)

// secretForm records how the stored JSON wrote what pgrotate reads as a plain value, so
// that a rotation writes the pending version in the same form: an app that reads "port"
// as a string, or relies on the defaults, sees no change of shape.
type secretForm struct {
	portText      bool // "port":"5432"
	portOmitted   bool // no "port": 5432 by default
	dbnameOmitted bool // no "dbname": "postgres" by default
}

// badField is a parse error before it is named for a secret.
type badField struct{ field, reason string }

// common holds the fields both secrets share, as read from the JSON.
type common struct {
	engine, host, dbname, username, sslmode string
	port                                    int
	password                                Password
	instance, cluster                       string
	ssl                                     json.RawMessage
	form                                    secretForm
}

// readSecret reads a secret's object, which may hold only keys, and the fields both secrets
// share.
func readSecret(data []byte, keys []string) (map[string]json.RawMessage, common, *badField) {
	m, bad := readObject(data, keys, "")
	if bad != nil {
		return nil, common{}, bad
	}
	c, bad := readCommon(m)
	return m, c, bad
}

// readCommon reads the fields both secrets share from m, applying the templates' defaults.
func readCommon(m map[string]json.RawMessage) (common, *badField) {
	var c common
	for _, f := range []struct {
		key string
		dst *string
	}{
		{"engine", &c.engine}, {"host", &c.host}, {"username", &c.username}, {"sslmode", &c.sslmode},
		{"dbInstanceIdentifier", &c.instance}, {"dbClusterIdentifier", &c.cluster},
	} {
		if err := readString(m, "", f.key, f.dst); err != nil {
			return common{}, err
		}
	}
	var pw string
	if err := readString(m, "", "password", &pw); err != nil {
		return common{}, err
	}
	c.password = NewPassword(pw)
	if _, ok := m["port"]; !ok {
		c.port, c.form.portOmitted = defaultPort, true
	} else {
		var err *badField
		if c.port, c.form.portText, err = readPort(m["port"], "port", true); err != nil {
			return common{}, err
		}
	}
	if _, ok := m["dbname"]; !ok {
		c.dbname, c.form.dbnameOmitted = defaultDBName, true
	} else if err := readString(m, "", "dbname", &c.dbname); err != nil {
		return common{}, err
	}
	// "ssl" is the templates' TLS flag; pgrotate reads sslmode and keeps ssl as given.
	c.ssl = m["ssl"]
	return c, nil
}

// readObject walks one JSON object and returns its members. It refuses anything but an
// object, a key not in allowed (keys are case-sensitive), a key given twice, a null value
// and data after the object. path prefixes field names ("replicas[0].").
func readObject(data []byte, allowed []string, path string) (map[string]json.RawMessage, *badField) {
	where := strings.TrimSuffix(path, ".")
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, &badField{where, syntaxReason(err)}
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, &badField{where, "must be a JSON object"}
	}
	m := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, &badField{where, syntaxReason(err)}
		}
		key, ok := tok.(string)
		if !ok { // the decoder allows only string keys; kept so that nothing can panic
			return nil, &badField{where, "not a JSON object of string keys"}
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, &badField{where, syntaxReason(err)}
		}
		if !slices.Contains(allowed, key) {
			return nil, &badField{where, unknownKey(key, allowed)}
		}
		if _, dup := m[key]; dup {
			return nil, &badField{path + key, "duplicate key"}
		}
		if string(raw) == "null" {
			return nil, &badField{path + key, "must not be null"}
		}
		m[key] = raw
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, &badField{where, syntaxReason(err)}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &badField{where, "trailing data after the JSON object"}
	}
	return m, nil
}

// unknownKey names the key (never a value) and the key it differs from only by case.
func unknownKey(key string, allowed []string) string {
	for _, a := range allowed {
		if strings.EqualFold(key, a) {
			return fmt.Sprintf("unknown key %s (keys are case-sensitive: %q)", quote(key), a)
		}
	}
	return "unknown key " + quote(key)
}

// syntaxReason describes a decoder error by offset: its message can quote the input.
func syntaxReason(err error) string {
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("not valid JSON (offset %d)", syn.Offset)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "not valid JSON (truncated)"
	}
	return "not valid JSON"
}

// readString sets *dst to the string at key, if present.
func readString(m map[string]json.RawMessage, path, key string, dst *string) *badField {
	raw, ok := m[key]
	if !ok {
		return nil
	}
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, dst) != nil {
		return &badField{path + key, "must be a JSON string"}
	}
	return nil
}

// readPort reads a port written as a JSON integer or, where textOK (as the templates'
// int() allows), a string of decimal digits.
func readPort(raw json.RawMessage, field string, textOK bool) (port int, text bool, _ *badField) {
	want := "must be an integer"
	if textOK {
		want = "must be an integer or a string of digits"
	}
	digits := string(raw)
	if textOK && len(raw) > 0 && raw[0] == '"' {
		if json.Unmarshal(raw, &digits) != nil {
			return 0, false, &badField{field, want}
		}
		text = true
	}
	body, neg := strings.CutPrefix(digits, "-")
	if body == "" || strings.Trim(body, "0123456789") != "" || (neg && text) {
		return 0, false, &badField{field, want}
	}
	if n, err := strconv.Atoi(body); err == nil && !neg && n >= 1 && n <= 65535 {
		return n, text, nil
	}
	return 0, false, &badField{field, portRange}
}

const portRange = "not a TCP port (1-65535)"

// readReplicas reads the optional array of replica endpoints, each an object of exactly
// host and port with the same rules as the secret itself.
func readReplicas(m map[string]json.RawMessage) ([]Endpoint, *badField) {
	raw, ok := m["replicas"]
	if !ok {
		return nil, nil
	}
	var elems []json.RawMessage
	if len(raw) == 0 || raw[0] != '[' || json.Unmarshal(raw, &elems) != nil {
		return nil, &badField{"replicas", "must be a JSON array"}
	}
	out := make([]Endpoint, 0, len(elems))
	for i, e := range elems {
		path := fmt.Sprintf("replicas[%d].", i)
		em, err := readObject(e, endpointKeys, path)
		if err != nil {
			return nil, err
		}
		var ep Endpoint
		if err := readString(em, path, "host", &ep.Host); err != nil {
			return nil, err
		}
		if raw, ok := em["port"]; ok {
			if ep.Port, _, err = readPort(raw, path+"port", false); err != nil {
				return nil, err
			}
		}
		out = append(out, ep)
	}
	return out, nil
}

// roleReason is a role-name error's reason with the name itself taken out.
func roleReason(err error, name string) string {
	var rn *InvalidRoleName
	if !errors.As(err, &rn) {
		return "not a usable role name"
	}
	reason := rn.Reason
	// Longest first: the alternate contains the name, or the name the alternate. Names
	// shorter than 4 bytes cannot carry a password and would mangle the text.
	names := []string{name, Alternate(name), Alternate(Alternate(name))}
	slices.SortFunc(names, func(a, b string) int { return len(b) - len(a) })
	for _, v := range names {
		if len(v) >= 4 {
			reason = strings.ReplaceAll(reason, v, "<username>")
		}
	}
	return reason
}

func jsonUnmarshalString(b []byte, s *string) error {
	if err := json.Unmarshal(b, s); err != nil {
		return errors.New("password must be a JSON string")
	}
	return nil
}
