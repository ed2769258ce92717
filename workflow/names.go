package workflow

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// CloneSuffix is appended to the base user name to form its alternate.
const CloneSuffix = "_clone"

// MaxRoleNameBytes is PostgreSQL's NAMEDATALEN-1: longer names are silently truncated by the
// server, which would make the two users collide.
const MaxRoleNameBytes = 63

// Alternate returns the other login user of the pair: x <-> x_clone.
func Alternate(user string) string {
	if base, ok := strings.CutSuffix(user, CloneSuffix); ok && base != "" {
		return base
	}
	return user + CloneSuffix
}

// ValidateRoleName accepts a login user name for the pair only if it and its alternate are
// usable PostgreSQL role names: ASCII letters, digits and underscores, starting with a
// letter or underscore, not reserved, and short enough that the clone name fits 63 bytes.
// Anything else (quotes, semicolons, spaces, backslashes, non-ASCII) is refused rather than
// quoted, because such a name is far more likely an injection attempt than a real user.
func ValidateRoleName(name string) error {
	if err := validateOne(name); err != nil {
		return err
	}
	alt := Alternate(name)
	if Alternate(alt) != name {
		return &InvalidRoleName{Quoted: quote(name), Reason: fmt.Sprintf("it does not alternate: %q <-> %q <-> %q", name, alt, Alternate(alt))}
	}
	if len(alt) > MaxRoleNameBytes {
		return &InvalidRoleName{Quoted: quote(name), Reason: fmt.Sprintf("its alternate %q is %d bytes, more than %d", alt, len(alt), MaxRoleNameBytes)}
	}
	return validateOne(alt)
}

func validateOne(name string) error {
	switch {
	case name == "":
		return &InvalidRoleName{Quoted: `""`, Reason: "empty"}
	case len(name) > MaxRoleNameBytes:
		return &InvalidRoleName{Quoted: quote(name), Reason: fmt.Sprintf("%d bytes, more than %d", len(name), MaxRoleNameBytes)}
	case strings.HasPrefix(strings.ToLower(name), "pg_"):
		return &InvalidRoleName{Quoted: quote(name), Reason: `the "pg_" prefix is reserved`}
	}
	for i, r := range name {
		ok := r == '_' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || (i > 0 && '0' <= r && r <= '9')
		if !ok {
			return &InvalidRoleName{Quoted: quote(name), Reason: fmt.Sprintf("character %q at byte %d is not allowed (letters, digits, underscore)", r, i)}
		}
	}
	return nil
}

// quote renders a possibly hostile name for an error message: Go-quoted (so control
// characters and quotes are escaped) and cut to a readable length.
func quote(name string) string {
	const max = 80
	if len(name) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(name[cut]) {
			cut--
		}
		return fmt.Sprintf("%q…", name[:cut])
	}
	return fmt.Sprintf("%q", name)
}
