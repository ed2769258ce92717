package workflow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
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
		{"missing port", func(m map[string]any) { delete(m, "port") }, "port"},
		{"port zero", func(m map[string]any) { m["port"] = 0 }, "port"},
		{"port too big", func(m map[string]any) { m["port"] = 70000 }, "port"},
		{"port negative", func(m map[string]any) { m["port"] = -1 }, "port"},
		{"port as string", func(m map[string]any) { m["port"] = "5432" }, "port"},
		{"missing dbname", func(m map[string]any) { delete(m, "dbname") }, "dbname"},
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
