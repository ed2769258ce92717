package postgres

import (
	"errors"
	"fmt"

	"github.com/pgrotate/pgrotate/internal/scram"
)

// scramVerifier returns the SCRAM-SHA-256 verifier PostgreSQL stores for password
// (RFC 5802/7677): SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>, base64.
// Sending it in ALTER ROLE … PASSWORD keeps the plaintext off the server entirely.
func scramVerifier(password string) (string, error) {
	if err := checkPrintableASCII(password); err != nil {
		return "", err
	}
	return scram.Verifier(password)
}

func scramVerifierWith(password string, salt []byte, iterations int) (string, error) {
	if err := checkPrintableASCII(password); err != nil {
		return "", err
	}
	return scram.VerifierWith(password, salt, iterations)
}

// ErrPasswordNotASCII reports a password with a character outside printable ASCII.
var ErrPasswordNotASCII = errors.New("the password holds a character outside printable ASCII")

// checkPrintableASCII refuses passwords SCRAM clients may normalise differently: PostgreSQL
// and libpq apply SASLprep (NFKC), pgx applies PRECIS OpaqueString (NFC), so a password
// with, say, a ligature would log in through one client and not the other. Printable ASCII
// is the same under every one of them. Secrets Manager's GetRandomPassword produces it.
func checkPrintableASCII(password string) error {
	for i := 0; i < len(password); i++ {
		if c := password[i]; c < 0x20 || c > 0x7e {
			return fmt.Errorf("%w (at byte %d)", ErrPasswordNotASCII, i)
		}
	}
	return nil
}
