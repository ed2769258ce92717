package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/pgrotate/pgrotate/local/pgcluster"
	"github.com/pgrotate/pgrotate/local/pgcluster/pgtest"
	"github.com/pgrotate/pgrotate/workflow"
)

// Every takeover EnsureLogin refuses leaves roles, passwords, memberships, comments and
// ACLs byte-identical on the real primary, and an existing role's known password still logs
// in afterwards. Adopt lifts only the "pgrotate did not create it" refusal.
func TestEnsureLoginRefusesTakeovers(t *testing.T) {
	ctx, f := setup(t)
	a := f.admin(t, ctx)

	// Someone else's roles on the shared server, each with a password it must keep.
	live, livePW := f.newUser(t, ctx, "takeover_live_")
	liveClone, liveClonePW := f.newUser(t, ctx, "takeover_has_clone_")
	altOnly := uniqueName("takeover_alt_only_") // missing; its clone is someone else's
	altOnlyClone, altOnlyPW := workflow.Alternate(altOnly), randomPassword(t)
	v, err := scramVerifier(altOnlyPW.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	f.exec(t, ctx, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", ident(altOnlyClone), v))
	// A marked base whose clone is someone else's: still a takeover of the clone.
	ownBase := uniqueName("takeover_own_")
	ownPW := randomPassword(t)
	if _, err := a.EnsureLogin(ctx, ownBase, ownPW, LoginOptions{}); err != nil {
		t.Fatal(err)
	}
	ownCloneName, ownClonePW := workflow.Alternate(ownBase), randomPassword(t)
	if v, err = scramVerifier(ownClonePW.Reveal()); err != nil {
		t.Fatal(err)
	}
	f.exec(t, ctx, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", ident(ownCloneName), v))

	su, err := f.c.Superuser(ctx, f.c.Primary)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = su.Close(context.Background()) })
	super := uniqueName("takeover_super_")
	superPW := randomPassword(t)
	if v, err = scramVerifier(superPW.Reveal()); err != nil {
		t.Fatal(err)
	}
	mustExec(t, ctx, su, "SET log_statement = 'none'", fmt.Sprintf("CREATE ROLE %s SUPERUSER LOGIN PASSWORD '%s'", ident(super), v))
	t.Cleanup(func() { _, _ = su.Exec(context.Background(), "DROP ROLE "+ident(super)) })
	// RDS's rds_superuser, played by a plain role here; a member of it is no app user.
	rdsMember, rdsMemberPW := f.newUser(t, ctx, "takeover_rds_member_")
	mustExec(t, ctx, su, "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rds_superuser') THEN CREATE ROLE rds_superuser NOLOGIN; END IF; END $$",
		"GRANT rds_superuser TO "+ident(rdsMember))

	type known struct {
		user string
		pw   workflow.Password
	}
	keep := []known{{live, livePW}, {liveClone, liveClonePW}, {altOnlyClone, altOnlyPW}, {ownBase, ownPW},
		{ownCloneName, ownClonePW}, {super, superPW}, {rdsMember, rdsMemberPW}, {f.adminUser, f.adminPW}}

	refused := func(err error) bool { var r *RefusedRole; return errors.As(err, &r) }
	unmanaged := func(err error) bool { var u *UnmanagedRole; return errors.As(err, &u) }
	invalid := func(err error) bool { var i *workflow.InvalidRoleName; return errors.As(err, &i) }
	tests := []struct {
		name  string
		user  string
		adopt bool
		want  func(error) bool
	}{
		{"an existing role pgrotate did not create", live, false, unmanaged},
		{"the alternate of a new user exists, not pgrotate's", altOnly, false, unmanaged},
		{"pgrotate's base whose clone is someone else's", ownBase, false, unmanaged},
		{"a clone name that exists, not pgrotate's", altOnlyClone, false, unmanaged},
		{"a missing clone name", uniqueName("takeover_new_") + workflow.CloneSuffix, false, refused},
		{"a missing clone name, adopt", uniqueName("takeover_new_") + workflow.CloneSuffix, true, refused},
		{"the admin", f.adminUser, false, refused},
		{"the admin, adopt", f.adminUser, true, refused},
		{"a name whose alternate is the admin", f.adminUser + workflow.CloneSuffix, true, refused},
		{"postgres", "postgres", true, refused},
		{"a name whose alternate is postgres", "postgres" + workflow.CloneSuffix, true, refused},
		{"an rds_ name", "rds_superuser", true, refused},
		{"rdsadmin", "rdsadmin", true, refused},
		{"a pg_ name", "pg_monitor", true, invalid},
		{"a superuser", super, false, refused},
		{"a superuser, adopt", super, true, refused},
		{"a name whose alternate is a superuser", super + workflow.CloneSuffix, true, refused},
		{"an rds_superuser member, adopt", rdsMember, true, refused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := pgtest.Snapshot(t, ctx, f.c, pgcluster.AppDatabase)
			_, err := a.EnsureLogin(ctx, tt.user, randomPassword(t), LoginOptions{Adopt: tt.adopt})
			if !tt.want(err) {
				t.Errorf("EnsureLogin(%s, adopt=%v) = %v; want the named refusal", tt.user, tt.adopt, err)
			}
			if d := pgtest.SnapshotDiff(before, pgtest.Snapshot(t, ctx, f.c, pgcluster.AppDatabase)); d != "" {
				t.Errorf("a refusal changed the server:\n%s", d)
			}
			for _, k := range keep {
				f.login(t, ctx, f.primary, k.user, k.pw)
			}
		})
	}
	// The refused new users were not created.
	for _, name := range []string{altOnly} {
		if ok, err := a.RoleExists(ctx, name); err != nil || ok {
			t.Errorf("role %s exists=%v, %v; want not created", name, ok, err)
		}
	}
	if !strings.Contains((&UnmanagedRole{Role: live}).Error(), live) {
		t.Error("UnmanagedRole does not name the role")
	}
}

// Adopt takes over an existing role pgrotate did not create, and its alternate, says so,
// and leaves their comments alone: adopting again must be asked for again.
func TestEnsureLoginAdopt(t *testing.T) {
	ctx, f := setup(t)
	a := f.admin(t, ctx)
	base, oldPW := f.newUser(t, ctx, "adopt_")
	clone := workflow.Alternate(base)
	f.exec(t, ctx, "CREATE ROLE "+ident(clone)+" NOLOGIN", "COMMENT ON ROLE "+ident(base)+" IS 'the billing service'")

	pw := randomPassword(t)
	res, err := a.EnsureLogin(ctx, base, pw, LoginOptions{Adopt: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Created || strings.Join(res.Adopted, ",") != base+","+clone {
		t.Errorf("adopt: created %v, adopted %v; want adopted [%s %s]", res.Created, res.Adopted, base, clone)
	}
	f.login(t, ctx, f.primary, base, pw)
	f.rejected(t, ctx, f.primary, base, oldPW)
	waitCaughtUp(t, ctx, f, res.LSN)
	f.login(t, ctx, f.replica, base, pw)
	var comment string
	if err := a.conn.QueryRow(ctx, "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1", base).Scan(&comment); err != nil || comment != "the billing service" {
		t.Errorf("comment of the adopted role = %q, %v; want it kept", comment, err)
	}
	// The adopted pair rotates: the clone gets the same grants (parity after repair).
	if err := a.CloneRole(ctx, base, clone); err != nil {
		t.Fatalf("CloneRole after adopt: %v", err)
	}
	// Not marked, so a run without adopt still refuses it, changing nothing.
	before := pgtest.Snapshot(t, ctx, f.c, pgcluster.AppDatabase)
	var u *UnmanagedRole
	if _, err := a.EnsureLogin(ctx, base, randomPassword(t), LoginOptions{}); !errors.As(err, &u) || u.Role != base {
		t.Errorf("EnsureLogin without adopt after adopting = %v; want *UnmanagedRole for %s", err, base)
	}
	if d := pgtest.SnapshotDiff(before, pgtest.Snapshot(t, ctx, f.c, pgcluster.AppDatabase)); d != "" {
		t.Errorf("the refusal changed the server:\n%s", d)
	}
	f.login(t, ctx, f.primary, base, pw)
}

// The roles pgrotate creates carry its mark, the clone too, and a re-run of the bootstrap
// for the pair (after a rotation, AWSCURRENT may name the clone) proceeds.
func TestEnsureLoginRecognisesItsOwnRoles(t *testing.T) {
	ctx, f := setup(t)
	a := f.admin(t, ctx)
	base := uniqueName("own_")
	pw := randomPassword(t)
	res, err := a.EnsureLogin(ctx, base, pw, LoginOptions{})
	if err != nil || !res.Created {
		t.Fatalf("EnsureLogin = created %v, %v", res.Created, err)
	}
	clone := workflow.Alternate(base)
	if err := a.CloneRole(ctx, base, clone); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{base, clone} {
		var comment string
		if err := a.conn.QueryRow(ctx, "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1", name).Scan(&comment); err != nil || !strings.HasPrefix(comment, ManagedMark) {
			t.Errorf("comment of %s = %q, %v; want the pgrotate mark", name, comment, err)
		}
	}
	for _, name := range []string{base, clone} {
		pw := randomPassword(t)
		res, err := a.EnsureLogin(ctx, name, pw, LoginOptions{})
		if err != nil || res.Created || len(res.Adopted) > 0 {
			t.Fatalf("EnsureLogin(%s) again = created %v, adopted %v, %v; want its own role recognised", name, res.Created, res.Adopted, err)
		}
		f.login(t, ctx, f.primary, name, pw)
	}
}
