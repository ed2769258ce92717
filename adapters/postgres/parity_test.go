package postgres

import (
	"errors"
	"strings"
	"testing"

	"github.com/pgrotate/pgrotate/workflow"
)

func TestCheckParity(t *testing.T) {
	ctx, f := setup(t)
	a := f.admin(t, ctx)

	type drift struct {
		// setup returns the statements (run as the admin) that introduce the drift.
		setup func(base, clone, table, other string) []string
		// asClone, if set, runs as the clone (logged in with a password) instead.
		asClone func(base, clone, table string) []string
		want    string // substring of the single reported difference
	}
	cases := map[string]drift{
		"missing membership": {
			setup: func(b, c, _, _ string) []string { return []string{"REVOKE " + ident(b) + " FROM " + ident(c)} },
			want:  "membership:",
		},
		"missing role setting": {
			setup: func(_, c, _, _ string) []string { return []string{"ALTER ROLE " + ident(c) + " RESET role"} },
			want:  "role setting:",
		},
		"role setting overridden in a database": {
			setup: func(b, c, _, _ string) []string {
				return []string{"ALTER ROLE " + ident(c) + " IN DATABASE app SET role = 'none'"}
			},
			want: "in database",
		},
		"LOGIN": {
			setup: func(_, c, _, _ string) []string { return []string{"ALTER ROLE " + ident(c) + " NOLOGIN"} },
			want:  "LOGIN:",
		},
		"connection limit": {
			setup: func(_, c, _, _ string) []string { return []string{"ALTER ROLE " + ident(c) + " CONNECTION LIMIT 3"} },
			want:  "CONNECTION LIMIT:",
		},
		"privilege granted to the active user only": {
			setup: func(b, _, tbl, _ string) []string {
				return []string{"GRANT UPDATE ON " + ident(tbl) + " TO " + ident(b)}
			},
			want: `privilege UPDATE on table "public"."`,
		},
		"privilege granted to the pending user only": {
			setup: func(_, c, tbl, _ string) []string {
				return []string{"GRANT DELETE ON " + ident(tbl) + " TO " + ident(c)}
			},
			want: `privilege DELETE on table "public"."`,
		},
		"grant option on one side": {
			setup: func(b, c, tbl, _ string) []string {
				return []string{"GRANT SELECT ON " + ident(tbl) + " TO " + ident(b) + " WITH GRANT OPTION"}
			},
			want: "WITH GRANT OPTION",
		},
		"membership in another role": {
			setup: func(_, c, _, other string) []string { return []string{"GRANT " + ident(other) + " TO " + ident(c)} },
			want:  "membership in role",
		},
		"object owned by the clone": {
			asClone: func(_, _, tbl string) []string {
				return []string{"SET ROLE NONE", "CREATE TABLE " + ident(tbl+"_own") + " (v int)"}
			},
			want: "ownership:",
		},
	}

	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			base, _, clone := f.newPair(t, ctx, "par_")
			tbl, other := base+"_t", uniqueName("par_other_")
			f.exec(t, ctx,
				"CREATE TABLE "+ident(tbl)+" (v int)",
				"GRANT SELECT ON "+ident(tbl)+" TO "+ident(base)+", "+ident(clone),
				"CREATE ROLE "+ident(other),
			)
			for _, dir := range [][2]string{{base, clone}, {clone, base}} {
				if err := a.CheckParity(ctx, dir[0], dir[1]); err != nil {
					t.Fatalf("clean pair: CheckParity(%s, %s) = %v", dir[0], dir[1], err)
				}
			}
			if tc.setup != nil {
				f.exec(t, ctx, tc.setup(base, clone, tbl, other)...)
			}
			if tc.asClone != nil {
				pw := randomPassword(t)
				if _, _, err := a.SetPassword(ctx, clone, pw); err != nil {
					t.Fatal(err)
				}
				mustExec(t, ctx, f.conn(t, ctx, f.primary, clone, pw), tc.asClone(base, clone, tbl)...)
			}
			// Both directions see it: the pair relation does not depend on which is active.
			for _, dir := range [][2]string{{base, clone}, {clone, base}} {
				err := a.CheckParity(ctx, dir[0], dir[1])
				var pm *workflow.PrivilegeMismatch
				if !errors.As(err, &pm) {
					t.Fatalf("CheckParity(%s, %s) = %v; want *workflow.PrivilegeMismatch", dir[0], dir[1], err)
				}
				if len(pm.Differences) != 1 || !strings.Contains(pm.Differences[0], tc.want) {
					t.Errorf("CheckParity(%s, %s) differences:\n%s\nwant exactly one containing %q", dir[0], dir[1], strings.Join(pm.Differences, "\n"), tc.want)
				}
				if pm.Active != dir[0] || pm.Pending != dir[1] {
					t.Errorf("mismatch names %q/%q", pm.Active, pm.Pending)
				}
			}
		})
	}

	t.Run("pending user missing", func(t *testing.T) {
		base, _ := f.newUser(t, ctx, "par_nopend_")
		err := a.CheckParity(ctx, base, workflow.Alternate(base))
		var pm *workflow.PrivilegeMismatch
		if !errors.As(err, &pm) || !strings.Contains(pm.Error(), "does not exist") {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("names that do not alternate", func(t *testing.T) {
		if err := a.CheckParity(ctx, "alpha", "beta"); err == nil {
			t.Fatal("accepted two unrelated users")
		}
	})
}
