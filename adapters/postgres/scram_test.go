package postgres

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/pgrotate/pgrotate/workflow"
)

// TestSCRAMVerifierMatchesServer lets PostgreSQL hash a password itself, then recomputes the
// verifier here with the server's salt: they must be identical, byte for byte.
func TestSCRAMVerifierMatchesServer(t *testing.T) {
	ctx, f := setup(t)
	su, err := f.c.Superuser(ctx, f.c.Primary)
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(ctx)
	// Plaintext is sent below on purpose (it is the reference); keep it out of the log.
	mustExec(t, ctx, su, "SET log_statement = 'none'", "SET log_min_error_statement = 'panic'", "SET password_encryption = 'scram-sha-256'")
	for i, pw := range []string{
		randomPassword(t).Reveal(),
		"with spaces and symbols !#%&()*+,-.;<=>?[]^_`{|}~\\'\"@/:",
	} {
		name := uniqueName("scram_")
		lit, err := literal(su, pw)
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, ctx, su, "CREATE ROLE "+ident(name)+" LOGIN PASSWORD "+lit)
		server := f.storedVerifier(t, ctx, name)
		iter, salt := parseVerifier(t, server)
		ours, err := scramVerifierWith(pw, salt, iter)
		if err != nil {
			t.Fatal(err)
		}
		if ours != server {
			t.Errorf("password #%d: verifier differs from the server's", i)
		}
		// And a random-salt verifier set by SetPassword logs in through pgx.
		if _, _, err := f.admin(t, ctx).SetPassword(ctx, name, workflow.NewPassword(pw+"2")); err != nil {
			t.Fatal(err)
		}
		f.login(t, ctx, f.primary, name, workflow.NewPassword(pw+"2"))
	}
}

func parseVerifier(t *testing.T, v string) (int, []byte) {
	t.Helper()
	rest, ok := strings.CutPrefix(v, "SCRAM-SHA-256$")
	if !ok {
		t.Fatal("stored password is not a SCRAM verifier")
	}
	params, _, _ := strings.Cut(rest, "$")
	iterText, saltText, _ := strings.Cut(params, ":")
	iter, err := strconv.Atoi(iterText)
	if err != nil {
		t.Fatal(err)
	}
	salt, err := base64.StdEncoding.DecodeString(saltText)
	if err != nil {
		t.Fatal(err)
	}
	return iter, salt
}

func TestSCRAMRefusesNonASCII(t *testing.T) {
	for _, pw := range []string{"pässwörd", "ﬁ-ligature", "tab\there", "nul\x00"} {
		if v, err := scramVerifier(pw); !errors.Is(err, ErrPasswordNotASCII) || v != "" {
			t.Errorf("password #%d accepted", len(pw))
		} else if strings.Contains(err.Error(), pw) {
			t.Error("error holds the password")
		}
	}
}

func TestSCRAMVerifierShape(t *testing.T) {
	a, err := scramVerifier("same")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := scramVerifier("same")
	if a == b {
		t.Error("two verifiers of one password are equal: the salt is not random")
	}
	if strings.Contains(a, "same") || !strings.HasPrefix(a, "SCRAM-SHA-256$4096:") {
		t.Error("unexpected verifier form")
	}
	for _, r := range a {
		if !strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=$:-", r) {
			t.Errorf("verifier holds %q, outside base64 and $:", r)
		}
	}
}
