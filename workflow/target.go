package workflow

import "log/slog"

// Target is one login on one server: where to connect and as whom. The postgres adapter
// connects to nothing else. Build it from a secret (AppSecret.At, AdminSecret.In), so the
// credentials are always a secret's own and travel only to the servers that secret names.
type Target struct {
	Endpoint Endpoint
	DBName   string
	User     string
	Password Password
	// SSLMode is verify-full, verify-ca, require or disable; "" means DefaultSSLMode.
	SSLMode string
}

// At is the app login of s on ep: its primary or one of its replicas.
func (s AppSecret) At(ep Endpoint) Target {
	return Target{Endpoint: ep, DBName: s.DBName, User: s.Username, Password: s.Password, SSLMode: s.SSLMode}
}

// In is the admin login of s on its own primary, in database dbname (the app's, where the
// grants live). The admin's own sslmode applies: an app secret never weakens how the admin
// password travels.
func (s AdminSecret) In(dbname string) Target {
	return Target{Endpoint: s.Primary(), DBName: dbname, User: s.Username, Password: s.Password, SSLMode: s.SSLMode}
}

// As is the login of user with password on t's server and database, with t's sslmode.
func (t Target) As(user string, password Password) Target {
	t.User, t.Password = user, password
	return t
}

// TLSMode returns the target's sslmode or the default.
func (t Target) TLSMode() string { return orDefault(t.SSLMode) }

// LogValue shows what is safe to log.
func (t Target) LogValue() slog.Value {
	return slog.GroupValue(slog.String("endpoint", t.Endpoint.String()), slog.String("dbname", t.DBName),
		slog.String("user", t.User), slog.String("password", Redacted), slog.String("sslmode", t.TLSMode()))
}
