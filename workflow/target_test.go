package workflow

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestTargets(t *testing.T) {
	const appPW, adminPW = "app-secret-pw", "admin-secret-pw"
	app := AppSecret{Host: "primary", Port: 5432, DBName: "app", Username: "app_user", Password: NewPassword(appPW),
		Replicas: []Endpoint{{Host: "replica", Port: 5433}}, SSLMode: "require"}
	admin := AdminSecret{Host: "primary", Port: 5432, DBName: "postgres", Username: "dbadmin", Password: NewPassword(adminPW)}
	replica := app.Replicas[0]
	tests := []struct {
		name string
		got  Target
		want Target
		mode string
	}{
		{"app on a replica", app.At(replica),
			Target{Endpoint: replica, DBName: "app", User: "app_user", Password: NewPassword(appPW), SSLMode: "require"}, "require"},
		{"admin in the app's database, with its own sslmode", admin.In(app.DBName),
			Target{Endpoint: Endpoint{Host: "primary", Port: 5432}, DBName: "app", User: "dbadmin", Password: NewPassword(adminPW)}, DefaultSSLMode},
		{"another user on the admin's server", admin.In("app").As("app_user_clone", NewPassword(appPW)),
			Target{Endpoint: Endpoint{Host: "primary", Port: 5432}, DBName: "app", User: "app_user_clone", Password: NewPassword(appPW)}, DefaultSSLMode},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, w := tc.got, tc.want
			if g.Endpoint != w.Endpoint || g.DBName != w.DBName || g.User != w.User || !g.Password.Equal(w.Password) || g.SSLMode != w.SSLMode {
				t.Errorf("got %+v, want %+v", g, w)
			}
			if g.TLSMode() != tc.mode {
				t.Errorf("TLSMode() = %q, want %q", g.TLSMode(), tc.mode)
			}
			var buf bytes.Buffer
			slog.New(slog.NewJSONHandler(&buf, nil)).Info("target", "t", g)
			for _, out := range []string{buf.String(), fmt.Sprintf("%v %+v %#v", g, g, g)} {
				if strings.Contains(out, appPW) || strings.Contains(out, adminPW) {
					t.Errorf("a password (%d characters) is printed", len(g.Password.Reveal()))
				}
			}
			if !strings.Contains(buf.String(), g.Endpoint.String()) || !strings.Contains(buf.String(), g.User) {
				t.Errorf("log line %s lacks the endpoint or user", buf.String())
			}
		})
	}
}
