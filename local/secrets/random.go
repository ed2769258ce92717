package localsecrets

import (
	"context"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/pgrotate/pgrotate/local/internal/apirec"
)

// Character classes of GetRandomPassword, as the API reference lists them.
const (
	upperChars       = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	lowerChars       = "abcdefghijklmnopqrstuvwxyz"
	digitChars       = "0123456789"
	punctuationChars = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
)

// GetRandomPassword returns a password drawn with crypto/rand, following the service's
// rules: PasswordLength 1 to 4096 (default 32); upper case, lower case, digits and
// punctuation unless excluded; space only with IncludeSpace; never a character of
// ExcludeCharacters; and, unless RequireEachIncludedType is false, at least one character
// of every included class.
func (s *Store) GetRandomPassword(ctx context.Context, in *secretsmanager.GetRandomPasswordInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetRandomPasswordOutput, error) {
	c := Call{Op: OpGetRandomPassword}
	return apirec.Do(ctx, s.api, c, in, s.getRandomPassword, nil)
}

func (s *Store) getRandomPassword(ctx context.Context, in *secretsmanager.GetRandomPasswordInput) (*secretsmanager.GetRandomPasswordOutput, error) {
	pw, err := randomPassword(in)
	if err != nil {
		return nil, err
	}
	return &secretsmanager.GetRandomPasswordOutput{RandomPassword: aws.String(pw)}, nil
}

func randomPassword(in *secretsmanager.GetRandomPasswordInput) (string, error) {
	length := int64(32)
	if in.PasswordLength != nil {
		length = *in.PasswordLength
	}
	if length < 1 || length > 4096 {
		return "", invalidParameter("PasswordLength must be between 1 and 4096.")
	}
	classes, pool := characterPool(in)
	if pool == "" {
		return "", invalidParameter("The password can't be generated: every character is excluded.")
	}
	require := in.RequireEachIncludedType == nil || *in.RequireEachIncludedType
	out := make([]byte, 0, length)
	if require {
		if int64(len(classes)) > length {
			return "", invalidParameter("PasswordLength is too short to include every required character type.")
		}
		for _, cl := range classes {
			out = append(out, cl[randIndex(len(cl))])
		}
	}
	for int64(len(out)) < length {
		out = append(out, pool[randIndex(len(pool))])
	}
	shuffle(out)
	return string(out), nil
}

// characterPool returns the included, non-empty character classes (one character of each
// is required unless RequireEachIncludedType is false) and every character a password may
// hold.
func characterPool(in *secretsmanager.GetRandomPasswordInput) (classes []string, pool string) {
	exclude := aws.ToString(in.ExcludeCharacters)
	for _, cl := range []struct {
		chars    string
		excluded bool
	}{
		{upperChars, aws.ToBool(in.ExcludeUppercase)},
		{lowerChars, aws.ToBool(in.ExcludeLowercase)},
		{digitChars, aws.ToBool(in.ExcludeNumbers)},
		{punctuationChars, aws.ToBool(in.ExcludePunctuation)},
	} {
		if cl.excluded {
			continue
		}
		if k := without(cl.chars, exclude); k != "" {
			classes = append(classes, k)
		}
	}
	pool = strings.Join(classes, "")
	if aws.ToBool(in.IncludeSpace) {
		pool += without(" ", exclude)
	}
	return classes, pool
}

// without returns set less the characters in exclude.
func without(set, exclude string) string {
	var b strings.Builder
	for _, r := range set {
		if !strings.ContainsRune(exclude, r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// shuffle permutes b (Fisher-Yates) so the required characters are not always first.
func shuffle(b []byte) {
	for i := len(b) - 1; i > 0; i-- {
		j := randIndex(i + 1)
		b[i], b[j] = b[j], b[i]
	}
}
