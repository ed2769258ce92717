package workflow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const goldenPassword = "s3cr3t-Value-Never-Printed"

func loadApp(t *testing.T) (AppSecret, map[string]any) {
	t.Helper()
	raw, err := os.ReadFile("testdata/app-secret.json")
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseAppSecret(raw)
	if err != nil {
		t.Fatalf("parse golden app secret: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return s, m
}

func asInvalid(err error, target **InvalidSecret) bool { return errors.As(err, target) }

func TestParseAppSecretInvalid(t *testing.T) {
	_, base := loadApp(t)
	tests := []struct {
		name   string
		mutate func(m map[string]any)
		field  string
	}{
		{"missing engine", func(m map[string]any) { delete(m, "engine") }, "engine"},
		{"wrong engine", func(m map[string]any) { m["engine"] = "mysql" }, "engine"},
		{"missing host", func(m map[string]any) { delete(m, "host") }, "host"},
		{"port null", func(m map[string]any) { m["port"] = nil }, "port"},
		{"port zero", func(m map[string]any) { m["port"] = 0 }, "port"},
		{"port too big", func(m map[string]any) { m["port"] = 70000 }, "port"},
		{"port negative", func(m map[string]any) { m["port"] = -1 }, "port"},
		{"port as a non-numeric string", func(m map[string]any) { m["port"] = "5432x" }, "port"},
		{"empty dbname", func(m map[string]any) { m["dbname"] = "" }, "dbname"},
		{"missing username", func(m map[string]any) { delete(m, "username") }, "username"},
		{"hostile username", func(m map[string]any) { m["username"] = `app"; DROP ROLE x; --` }, "username"},
		{"username too long for clone", func(m map[string]any) { m["username"] = strings.Repeat("a", 58) }, "username"},
		{"missing password", func(m map[string]any) { delete(m, "password") }, "password"},
		{"empty password", func(m map[string]any) { m["password"] = "" }, "password"},
		{"missing masterarn", func(m map[string]any) { delete(m, "masterarn") }, "masterarn"},
		{"masterarn not an arn", func(m map[string]any) { m["masterarn"] = "admin" }, "masterarn"},
		{"sslmode prefer", func(m map[string]any) { m["sslmode"] = "prefer" }, "sslmode"},
		{"replica without host", func(m map[string]any) { m["replicas"] = []any{map[string]any{"port": 5432}} }, "replicas[0].host"},
		{"replica bad port", func(m map[string]any) { m["replicas"] = []any{map[string]any{"host": "r", "port": 0}} }, "replicas[0].port"},
		{"unknown field", func(m map[string]any) { m["hostname"] = "x" }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := map[string]any{}
			for k, v := range base {
				m[k] = v
			}
			tc.mutate(m)
			raw, _ := json.Marshal(m)
			_, err := ParseAppSecret(raw)
			var inv *InvalidSecret
			if !errors.As(err, &inv) {
				t.Fatalf("want *InvalidSecret, got %T %v", err, err)
			}
			if inv.Field != tc.field {
				t.Fatalf("field = %q, want %q (%v)", inv.Field, tc.field, err)
			}
			if strings.Contains(err.Error(), goldenPassword) {
				t.Fatal("error message contains the password")
			}
		})
	}
}

func TestParseInvalidJSONDoesNotEcho(t *testing.T) {
	for _, raw := range []string{`{"password":"` + goldenPassword + `"`, `not json ` + goldenPassword, `{"password":"` + goldenPassword + `"} trailing`} {
		_, err := ParseAppSecret([]byte(raw))
		var inv *InvalidSecret
		if !errors.As(err, &inv) {
			t.Fatalf("want *InvalidSecret, got %T", err)
		}
		if strings.Contains(err.Error(), goldenPassword) {
			t.Fatal("parse error echoes the input")
		}
	}
}

func TestParseAdminSecret(t *testing.T) {
	good := `{"engine":"postgres","host":"db","port":5432,"dbname":"postgres","username":"dbadmin","password":"pw"}`
	if _, err := ParseAdminSecret([]byte(good)); err != nil {
		t.Fatalf("valid admin secret rejected: %v", err)
	}
	for name, raw := range map[string]string{
		"missing password": `{"engine":"postgres","host":"db","port":5432,"dbname":"postgres","username":"dbadmin"}`,
		"wrong engine":     `{"engine":"oracle","host":"db","port":5432,"dbname":"postgres","username":"dbadmin","password":"pw"}`,
		"bad port":         `{"engine":"postgres","host":"db","port":99999,"dbname":"postgres","username":"dbadmin","password":"pw"}`,
		"hostile user":     `{"engine":"postgres","host":"db","port":5432,"dbname":"postgres","username":"a b","password":"pw"}`,
	} {
		t.Run(name, func(t *testing.T) {
			var inv *InvalidSecret
			if _, err := ParseAdminSecret([]byte(raw)); !errors.As(err, &inv) || inv.Secret != "admin" {
				t.Fatalf("want admin *InvalidSecret, got %v", err)
			}
		})
	}
}

func TestValidatePairAndPending(t *testing.T) {
	app, _ := loadApp(t)
	admin := AdminSecret{Engine: "postgres", Host: strings.ToUpper(app.Host), Port: app.Port, DBName: "postgres", Username: "dbadmin", Password: NewPassword("x")}
	if err := ValidatePair(app, admin); err != nil {
		t.Fatalf("matching pair rejected: %v", err)
	}
	other := admin
	other.Host = "evil.example.com"
	var inv *InvalidSecret
	if err := ValidatePair(app, other); !errors.As(err, &inv) || inv.Field != "host" {
		t.Fatalf("host mismatch: got %v", err)
	}
	other = admin
	other.Port = 5433
	if err := ValidatePair(app, other); !errors.As(err, &inv) || inv.Field != "host" {
		t.Fatalf("port mismatch: got %v", err)
	}
	other = admin
	other.Username = "app_user_clone"
	if err := ValidatePair(app, other); !errors.As(err, &inv) || inv.Field != "username" {
		t.Fatalf("admin is an app user: got %v", err)
	}

	pending := app.Pending(NewPassword("new-one"))
	if err := ValidatePending(app, pending); err != nil {
		t.Fatalf("derived pending rejected: %v", err)
	}
	tests := map[string]func(*AppSecret){
		"same user":     func(p *AppSecret) { p.Username = app.Username },
		"other user":    func(p *AppSecret) { p.Username = "someone_else" },
		"other host":    func(p *AppSecret) { p.Host = "elsewhere" },
		"other db":      func(p *AppSecret) { p.DBName = "other" },
		"other admin":   func(p *AppSecret) { p.MasterARN = "arn:aws:secretsmanager:x" },
		"same password": func(p *AppSecret) { p.Password = app.Password },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			p := pending
			mutate(&p)
			var inv *InvalidSecret
			if err := ValidatePending(app, p); !errors.As(err, &inv) || inv.Secret != "pending" {
				t.Fatalf("want pending *InvalidSecret, got %v", err)
			}
		})
	}
}

func TestSecretStringKeepsEverything(t *testing.T) {
	app, orig := loadApp(t)
	s, err := app.SecretString()
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(s), &got); err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(got)
	b, _ := json.Marshal(orig)
	if !bytes.Equal(a, b) {
		t.Fatal("SecretString does not reproduce the secret JSON (values not shown)")
	}
	again, err := ParseAppSecret([]byte(s))
	if err != nil || !again.Password.Equal(app.Password) {
		t.Fatalf("SecretString does not parse back: %v", err)
	}
}

func TestSecretsRedactEverywhere(t *testing.T) {
	app, _ := loadApp(t)
	admin := AdminSecret{Engine: "postgres", Host: "h", Port: 1, DBName: "d", Username: "u", Password: NewPassword(goldenPassword)}
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	logger.Info("app", "secret", app, "pw", app.Password)
	logger.Info("admin", "secret", admin)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("text", "secret", app, "admin", admin, "pw", admin.Password)
	js, _ := json.Marshal(app)
	js2, _ := json.Marshal(admin)
	outputs := map[string]string{
		"%v":     fmt.Sprintf("%v", app),
		"%+v":    fmt.Sprintf("%+v", app),
		"%#v":    fmt.Sprintf("%#v", app),
		"%s":     fmt.Sprintf("%s", app.Password),
		"%q":     fmt.Sprintf("%q", app.Password),
		"%x":     fmt.Sprintf("%x", app.Password),
		"admin":  fmt.Sprintf("%v %+v %#v", admin, admin, admin),
		"String": app.Password.String() + app.Password.GoString(),
		"json":   string(js) + string(js2),
		"slog":   buf.String(),
		"ptr":    fmt.Sprintf("%+v %#v", &app, &admin),
	}
	for name, out := range outputs {
		if strings.Contains(out, goldenPassword) {
			t.Errorf("%s leaks the password", name)
		}
		if !strings.Contains(out, Redacted) {
			t.Errorf("%s does not show %s", name, Redacted)
		}
	}
	if app.Password.Reveal() != goldenPassword {
		t.Fatal("Reveal lost the value")
	}
}

// Secrets written for AWS's rotation templates carry "ssl"; they must parse, and the field
// must survive a rotation.
func TestAWSTemplateFieldsAreKept(t *testing.T) {
	raw := `{"engine":"postgres","host":"db","port":5432,"dbname":"app","username":"app_user","password":"pw","masterarn":"arn:aws:secretsmanager:x","ssl":true,"dbInstanceIdentifier":"db-1"}`
	s, err := ParseAppSecret([]byte(raw))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	out, err := s.Pending(NewPassword("new")).SecretString()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"ssl":true`) || !strings.Contains(out, `"dbInstanceIdentifier":"db-1"`) {
		t.Fatalf("fields lost: %s", strings.ReplaceAll(out, "new", "[REDACTED]"))
	}
}

// planted stands for a secret value in hostile secrets: no error may contain it.
const planted = "Pl4nted-V4lue-9fK3"

// appJSON is a valid app secret with the given members left out and extra appended.
func appJSON(extra string, drop ...string) string {
	members := [][2]string{
		{"engine", `"postgres"`}, {"host", `"db"`}, {"port", `5432`}, {"dbname", `"app"`},
		{"username", `"app_user"`}, {"password", `"` + planted + `"`}, {"masterarn", `"arn:aws:secretsmanager:x"`},
	}
	var parts []string
	for _, m := range members {
		if !slices.Contains(drop, m[0]) {
			parts = append(parts, fmt.Sprintf("%q:%s", m[0], m[1]))
		}
	}
	if extra != "" {
		parts = append(parts, extra)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func adminJSON(extra string) string {
	return `{"engine":"postgres","host":"db","username":"dbadmin","password":"` + planted + `"` + extra + `}`
}

// One reading: keys are exact and unique, values have one type, and every refusal names
// the key or field without echoing a value.
func TestParseSecretOneReading(t *testing.T) {
	tests := []struct {
		name   string
		admin  bool
		raw    string
		field  string
		reason string // a part of the reason, e.g. the key it names
	}{
		{name: "duplicate username", raw: appJSON(`"username":"` + planted + `"`), field: "username", reason: "duplicate key"},
		{name: "duplicate by escape", raw: appJSON(`"user\u006eame":"other"`), field: "username", reason: "duplicate key"},
		{name: "duplicate password", raw: appJSON(`"password":"other"`), field: "password", reason: "duplicate key"},
		{name: "key in another case", raw: appJSON(`"UserName":"` + planted + `"`), reason: `unknown key "UserName" (keys are case-sensitive: "username")`},
		{name: "PORT", raw: appJSON(`"PORT":5433`, "port"), reason: `unknown key "PORT"`},
		{name: "unknown key", raw: appJSON(`"hostname":"` + planted + `"`), reason: `unknown key "hostname"`},
		{name: "null username", raw: appJSON(`"username":null`, "username"), field: "username", reason: "must not be null"},
		{name: "null dbname", raw: appJSON(`"dbname":null`, "dbname"), field: "dbname", reason: "must not be null"},
		{name: "password a number", raw: appJSON(`"password":12345678`, "password"), field: "password", reason: "must be a JSON string"},
		{name: "password true", raw: appJSON(`"password":true`, "password"), field: "password", reason: "must be a JSON string"},
		{name: "password an object", raw: appJSON(`"password":{"value":"`+planted+`"}`, "password"), field: "password", reason: "must be a JSON string"},
		{name: "password an array", raw: appJSON(`"password":["`+planted+`"]`, "password"), field: "password", reason: "must be a JSON string"},
		{name: "admin password a number", admin: true, raw: `{"engine":"postgres","host":"db","username":"dbadmin","password":4711}`, field: "password", reason: "must be a JSON string"},
		{name: "engine a planted value", raw: appJSON(`"engine":"`+planted+`"`, "engine"), field: "engine", reason: "not postgres"},
		{name: "sslmode a planted value", raw: appJSON(`"sslmode":"` + planted + `"`), field: "sslmode", reason: "not one of"},
		{name: "username a planted value", raw: appJSON(`"username":"`+planted+`"`, "username"), field: "username", reason: "not allowed"},
		{name: "long username", raw: appJSON(`"username":"`+planted[:4]+strings.Repeat("x", 60)+`"`, "username"), field: "username", reason: "bytes"},
		{name: "port a planted string", raw: appJSON(`"port":"`+planted+`"`, "port"), field: "port", reason: "must be an integer or a string of digits"},
		{name: "port with a sign", raw: appJSON(`"port":"+5432"`, "port"), field: "port", reason: "string of digits"},
		{name: "port with spaces", raw: appJSON(`"port":" 5432"`, "port"), field: "port", reason: "string of digits"},
		{name: "port negative string", raw: appJSON(`"port":"-5432"`, "port"), field: "port", reason: "string of digits"},
		{name: "port a fraction", raw: appJSON(`"port":5432.5`, "port"), field: "port", reason: "must be an integer"},
		{name: "port an exponent", raw: appJSON(`"port":5e3`, "port"), field: "port", reason: "must be an integer"},
		{name: "port a bool", raw: appJSON(`"port":true`, "port"), field: "port", reason: "must be an integer"},
		{name: "port huge", raw: appJSON(`"port":123456789012345678901234567890`, "port"), field: "port", reason: "not a TCP port"},
		{name: "port string out of range", raw: appJSON(`"port":"65536"`, "port"), field: "port", reason: "not a TCP port"},
		{name: "replicas an object", raw: appJSON(`"replicas":{"host":"r","port":5432}`), field: "replicas", reason: "must be a JSON array"},
		{name: "replica null", raw: appJSON(`"replicas":[null]`), field: "replicas[0]", reason: "must be a JSON object"},
		{name: "replica duplicate host", raw: appJSON(`"replicas":[{"host":"r","port":5432},{"host":"r","port":5432,"host":"` + planted + `"}]`), field: "replicas[1].host", reason: "duplicate key"},
		{name: "replica key in another case", raw: appJSON(`"replicas":[{"Host":"r","port":5432}]`), field: "replicas[0]", reason: `unknown key "Host"`},
		{name: "replica port a string", raw: appJSON(`"replicas":[{"host":"r","port":"5432"}]`), field: "replicas[0].port", reason: "must be an integer"},
		{name: "replica without port", raw: appJSON(`"replicas":[{"host":"r"}]`), field: "replicas[0].port", reason: "not a TCP port"},
		{name: "admin with masterarn", admin: true, raw: adminJSON(`,"masterarn":"arn:x"`), reason: `unknown key "masterarn"`},
		{name: "admin duplicate user", admin: true, raw: adminJSON(`,"username":"` + planted + `"`), field: "username", reason: "duplicate key"},
		{name: "admin key in another case", admin: true, raw: adminJSON(`,"Password":"` + planted + `"`), reason: `"Password" (keys are case-sensitive: "password")`},
		{name: "not an object", raw: `["` + planted + `"]`, reason: "must be a JSON object"},
		{name: "a string", raw: `"` + planted + `"`, reason: "must be a JSON object"},
		{name: "empty", raw: ``, reason: "not valid JSON"},
		{name: "truncated", raw: `{"password":"` + planted + `"`, reason: "not valid JSON"},
		{name: "bad syntax", raw: `{"password":` + planted + `}`, reason: "not valid JSON (offset"},
		{name: "two objects", raw: appJSON("") + `{"username":"` + planted + `"}`, reason: "trailing data"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			which := "app"
			if tc.admin {
				which = "admin"
				_, err = ParseAdminSecret([]byte(tc.raw))
			} else {
				_, err = ParseAppSecret([]byte(tc.raw))
			}
			var inv *InvalidSecret
			if !errors.As(err, &inv) {
				t.Fatalf("want *InvalidSecret, got %T", err)
			}
			if strings.Contains(err.Error(), planted) || strings.Contains(err.Error(), planted[:8]) {
				t.Fatalf("error for field %q echoes a value", inv.Field)
			}
			if inv.Secret != which || inv.Field != tc.field || !strings.Contains(inv.Reason, tc.reason) {
				t.Fatalf("got %v; want %s secret, field %q, reason containing %q", err, which, tc.field, tc.reason)
			}
		})
	}
}

// What AWS's PostgreSQL rotation templates accept parses to the same connection, and a
// rotation writes the pending version in the form the current one was stored in.
func TestParseSecretAWSTemplateForms(t *testing.T) {
	tests := []struct {
		name     string
		raw      string
		port     int
		dbname   string
		portJSON any // the port in the pending version's JSON; nil: absent
		hasDB    bool
	}{
		{name: "port a number", raw: appJSON(`"port":5433`, "port"), port: 5433, dbname: "app", portJSON: 5433.0, hasDB: true},
		{name: "port a string", raw: appJSON(`"port":"5433"`, "port"), port: 5433, dbname: "app", portJSON: "5433", hasDB: true},
		{name: "port with a leading zero", raw: appJSON(`"port":"05432"`, "port"), port: 5432, dbname: "app", portJSON: "5432", hasDB: true},
		{name: "port absent", raw: appJSON("", "port"), port: 5432, dbname: "app", portJSON: nil, hasDB: true},
		{name: "dbname absent", raw: appJSON("", "dbname"), port: 5432, dbname: "postgres", portJSON: 5432.0},
		{name: "both absent", raw: appJSON("", "port", "dbname"), port: 5432, dbname: "postgres"},
		{name: "aurora", raw: appJSON(`"engine":"aurora-postgresql"`, "engine"), port: 5432, dbname: "app", portJSON: 5432.0, hasDB: true},
		{name: "ssl a string", raw: appJSON(`"ssl":"true"`), port: 5432, dbname: "app", portJSON: 5432.0, hasDB: true},
		{name: "ssl false", raw: appJSON(`"ssl":false`), port: 5432, dbname: "app", portJSON: 5432.0, hasDB: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseAppSecret([]byte(tc.raw))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if s.Port != tc.port || s.DBName != tc.dbname {
				t.Fatalf("port %d dbname %q, want %d %q", s.Port, s.DBName, tc.port, tc.dbname)
			}
			out, err := s.Pending(NewPassword("next-password")).SecretString()
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(out), &m); err != nil {
				t.Fatal(err)
			}
			if port, ok := m["port"]; port != tc.portJSON || ok != (tc.portJSON != nil) {
				t.Errorf("pending port = %#v (present %v), want %#v", port, ok, tc.portJSON)
			}
			if _, ok := m["dbname"]; ok != tc.hasDB {
				t.Errorf("pending has dbname = %v, want %v", ok, tc.hasDB)
			}
			var orig map[string]any
			_ = json.Unmarshal([]byte(tc.raw), &orig)
			if m["ssl"] != orig["ssl"] {
				t.Errorf("ssl = %#v, want %#v", m["ssl"], orig["ssl"])
			}
			again, err := ParseAppSecret([]byte(out))
			if err != nil || again.Port != tc.port || again.DBName != tc.dbname || again.Username != "app_user_clone" {
				t.Fatalf("pending version does not parse back: %v", err)
			}
		})
	}

	admin, err := ParseAdminSecret([]byte(adminJSON(`,"port":"5433"`)))
	if err != nil || admin.Port != 5433 || admin.DBName != "postgres" {
		t.Fatalf("admin secret in the templates' form: %+v, %v", admin, err)
	}
}

// FuzzParseSecret: whatever the input, the parsers do not panic, refuse only with
// InvalidSecret, never echo a password-like string value, and what they accept
// serialises back to the same secret. The seed corpus (testdata/fuzz/FuzzParseSecret)
// holds hostile secrets that plant such a value everywhere; it runs with every go test.
func FuzzParseSecret(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, values := jsonStrings(data)
		app, appErr := ParseAppSecret(data)
		admin, adminErr := ParseAdminSecret(data)
		for _, err := range []error{appErr, adminErr} {
			if err == nil {
				continue
			}
			var inv *InvalidSecret
			if !errors.As(err, &inv) {
				t.Fatalf("want *InvalidSecret, got %T", err)
			}
			for _, v := range values {
				if passwordLike(v) && strings.Contains(err.Error(), v) && !inAnyKey(v, keys) {
					t.Fatalf("error (field %q) echoes a string value of the input", inv.Field)
				}
			}
		}
		if appErr == nil {
			out, err := app.SecretString()
			if err != nil {
				t.Fatal(err)
			}
			again, err := ParseAppSecret([]byte(out))
			if err != nil {
				t.Fatalf("SecretString does not parse back (field %q)", fieldOf(err))
			}
			if !sameApp(app, again) {
				t.Fatal("SecretString does not parse back to the same secret")
			}
		}
		if adminErr == nil {
			out, err := admin.SecretString()
			if err != nil {
				t.Fatal(err)
			}
			again, err := ParseAdminSecret([]byte(out))
			if err != nil || !again.Password.Equal(admin.Password) || again.Port != admin.Port || again.form != admin.form ||
				again.Host != admin.Host || again.DBName != admin.DBName || again.Username != admin.Username {
				t.Fatalf("admin SecretString does not parse back to the same secret (field %q)", fieldOf(err))
			}
		}
	})
}

func fieldOf(err error) string {
	var inv *InvalidSecret
	if errors.As(err, &inv) {
		return inv.Field
	}
	return ""
}

// sameApp compares two app secrets, ssl as JSON values: encoding/json writes "&" as "\u0026".
func sameApp(a, b AppSecret) bool {
	var sa, sb any
	_ = json.Unmarshal(a.SSL, &sa)
	_ = json.Unmarshal(b.SSL, &sb)
	a.SSL, b.SSL = nil, nil
	return reflect.DeepEqual(a, b) && reflect.DeepEqual(sa, sb)
}

// passwordLike reports whether v could be a generated password: long enough, with upper
// and lower case letters and digits. No error template, field path or key suggestion is.
func passwordLike(v string) bool {
	return len(v) >= 8 && strings.ContainsAny(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") &&
		strings.ContainsAny(v, "abcdefghijklmnopqrstuvwxyz") && strings.ContainsAny(v, "0123456789")
}

// inAnyKey: an unknown key is named in the error, and a value may repeat (part of) it.
func inAnyKey(v string, keys []string) bool {
	for _, k := range keys {
		if strings.Contains(k, v) {
			return true
		}
	}
	return false
}

// jsonStrings returns the keys and the string values of data's JSON, at every depth and
// including repeated keys, as far as data is valid JSON.
func jsonStrings(data []byte) (keys, values []string) {
	dec := json.NewDecoder(bytes.NewReader(data))
	type frame struct{ object, wantKey bool }
	var stack []frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return keys, values
		}
		inObject := len(stack) > 0 && stack[len(stack)-1].object
		if s, ok := tok.(string); ok && inObject && stack[len(stack)-1].wantKey {
			keys = append(keys, s)
			stack[len(stack)-1].wantKey = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, frame{object: true, wantKey: true})
			continue
		case json.Delim('['):
			stack = append(stack, frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		default:
			if s, ok := tok.(string); ok {
				values = append(values, s)
			}
		}
		if len(stack) > 0 && stack[len(stack)-1].object { // a value ended: a key follows
			stack[len(stack)-1].wantKey = true
		}
	}
}
