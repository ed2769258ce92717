package postgres

import (
	"errors"
	"strings"
	"testing"

	"github.com/pgrotate/pgrotate/workflow"
)

func TestHostileRoleNames(t *testing.T) {
	ctx, f := setup(t)
	a := f.admin(t, ctx)
	canary := uniqueName("canary_")
	f.exec(t, ctx, "CREATE TABLE "+ident(canary)+" (v int)", "INSERT INTO "+ident(canary)+" VALUES (1)")

	hostile := []string{
		`x"; DROP TABLE ` + canary + `; --`,
		`x'; DROP TABLE ` + canary + `; --`,
		`a"b`,
		`a'b`,
		`a;b`,
		`a\b`,
		`a b`,
		"a\nb",
		"a\x00b",
		"héllo",
		"日本",
		"",
		"pg_signal_backend",
		"1abc",
		strings.Repeat("a", 58), // its clone would be 64 bytes
		strings.Repeat("a", 64),
		strings.Repeat("é", 20),
	}
	pw := randomPassword(t)
	for _, name := range hostile {
		calls := map[string]func() error{
			"RoleExists":           func() error { _, err := a.RoleExists(ctx, name); return err },
			"CloneRole as active":  func() error { return a.CloneRole(ctx, name, workflow.Alternate(name)) },
			"CloneRole as pending": func() error { return a.CloneRole(ctx, "someone", name) },
			"CheckParity":          func() error { return a.CheckParity(ctx, name, workflow.Alternate(name)) },
			"SetPassword":          func() error { _, _, err := a.SetPassword(ctx, name, pw); return err },
			"SessionCount":         func() error { _, err := a.SessionCount(ctx, name); return err },
		}
		for call, fn := range calls {
			err := fn()
			var inv *workflow.InvalidRoleName
			if !errors.As(err, &inv) {
				t.Errorf("%s(%q) = %v; want *workflow.InvalidRoleName", call, name, err)
			}
		}
	}

	// Nothing ran: the canary is intact and no role was created from those names.
	var n int
	if err := a.conn.QueryRow(ctx, "SELECT count(*) FROM "+ident(canary)).Scan(&n); err != nil || n != 1 {
		t.Fatalf("canary: %d rows, %v", n, err)
	}
	var roles int
	if err := a.conn.QueryRow(ctx, `SELECT count(*) FROM pg_roles WHERE rolname ~ '[^A-Za-z0-9_]'`).Scan(&roles); err != nil || roles != 0 {
		t.Fatalf("%d roles with unusual characters exist, %v", roles, err)
	}

	// Valid but unusual names are quoted, not mangled: mixed case and the 63-byte edge.
	edge := uniqueName("edge")
	edge += strings.Repeat("z", 57-len(edge)) // its clone is exactly 63 bytes
	for _, name := range []string{uniqueName("MixedCase_"), edge} {
		f.exec(t, ctx, "CREATE ROLE "+ident(name)+" LOGIN")
		clone := workflow.Alternate(name)
		if err := a.CloneRole(ctx, name, clone); err != nil {
			t.Fatalf("CloneRole(%q): %v", name, err)
		}
		if ok, err := a.RoleExists(ctx, clone); err != nil || !ok {
			t.Fatalf("clone %q (%d bytes) exists=%v, %v", clone, len(clone), ok, err)
		}
		if _, _, err := a.SetPassword(ctx, clone, randomPassword(t)); err != nil {
			t.Fatalf("SetPassword(%q): %v", clone, err)
		}
	}
}
