package workflow

import (
	"fmt"
	"log/slog"
)

// Redacted is what every printing path shows instead of a secret value.
const Redacted = "[REDACTED]"

// DefaultExcludeCharacters are left out of generated passwords: they break URLs, DSNs and
// shell quoting. The rotation function, the CDK construct and the local demo all use it.
const DefaultExcludeCharacters = ":/@\"'\\ "

// Password holds a secret value (a password or a token). It redacts itself in fmt (%v, %+v,
// %#v, %s, %q), in encoding/json and in log/slog; Reveal is the one way to the clear text,
// so every use of the value is visible in review.
type Password struct {
	value string
}

// NewPassword wraps a clear-text secret value.
func NewPassword(s string) Password { return Password{value: s} }

// Reveal returns the clear text. Call it only where the value leaves for its destination
// (a PostgreSQL login, a SCRAM verifier, Secrets Manager).
func (p Password) Reveal() string { return p.value }

// IsZero reports whether the password is empty.
func (p Password) IsZero() bool { return p.value == "" }

// Equal compares two passwords without revealing them.
func (p Password) Equal(o Password) bool { return p.value == o.value }

func (Password) String() string   { return Redacted }
func (Password) GoString() string { return Redacted }

// Format covers every verb, including %#v and %x, which would otherwise bypass String.
func (Password) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(Redacted)) }

// LogValue redacts the value in slog, whatever the handler.
func (Password) LogValue() slog.Value { return slog.StringValue(Redacted) }

// MarshalJSON redacts the value: a Password marshalled by accident (a log line, a state
// payload) never carries the secret. Secrets are serialised for Secrets Manager only
// through AppSecret.SecretString / AdminSecret.SecretString.
func (Password) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// UnmarshalJSON reads a clear-text value.
func (p *Password) UnmarshalJSON(b []byte) error {
	var s string
	if err := jsonUnmarshalString(b, &s); err != nil {
		return err
	}
	p.value = s
	return nil
}
