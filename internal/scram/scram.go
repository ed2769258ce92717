// Package scram computes the SCRAM-SHA-256 verifier PostgreSQL stores for a password, so
// that callers send the verifier, never the plaintext, in CREATE/ALTER ROLE … PASSWORD.
// The product's adapter (tasks/postgres) and the local test kit (local/pgcluster) share it.
package scram

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
)

// Iterations is PostgreSQL's default scram_iterations.
const Iterations = 4096

// Verifier returns the SCRAM-SHA-256 verifier for password with a random 16-byte salt
// (RFC 5802/7677): SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>, base64.
// The password must not need SASLprep: callers keep to printable ASCII.
func Verifier(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("scram salt: %w", err)
	}
	return VerifierWith(password, salt, Iterations)
}

// VerifierWith is Verifier with a given salt and iteration count.
func VerifierWith(password string, salt []byte, iterations int) (string, error) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", fmt.Errorf("scram key derivation: %w", err)
	}
	clientKey := hmacSHA256(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	serverKey := hmacSHA256(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(storedKey[:]), b64(serverKey)), nil
}

func hmacSHA256(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}
