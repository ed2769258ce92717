package demo

import (
	"errors"
	"github.com/pgrotate/pgrotate/internal/testctx"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgrotate/pgrotate/adapters/postgres"
	"github.com/pgrotate/pgrotate/internal/modroot"
	"github.com/pgrotate/pgrotate/local/pgcluster/pgtest"
	"github.com/pgrotate/pgrotate/local/sfnlocal"
	"github.com/pgrotate/pgrotate/workflow"
)

// `pgrotate demo --app-user NAME` on given servers refuses every takeover before it
// changes anything (IsRefusal, which the command maps to exit 2), and the live user keeps
// its password.
func TestDemoRefusesTakeovers(t *testing.T) {
	ctx := testctx.Context(t)
	c, dbname, primaryDSN, replicaDSN := givenServers(t, ctx, "demo_refuse")
	live, livePW := pgtest.NewRole(t, "demo_live_", "LOGIN")
	for _, user := range []string{live, live + workflow.CloneSuffix, c.AdminUser(), c.AdminUser() + workflow.CloneSuffix, "postgres"} {
		t.Run(user, func(t *testing.T) {
			before := pgtest.Snapshot(t, ctx, c, dbname)
			out := &syncBuffer{}
			_, err := Run(ctx, Options{PrimaryDSN: primaryDSN, ReplicaDSN: replicaDSN, AppUser: user, Rotations: 1, Tasks: 1,
				Settle: 100 * time.Millisecond, AppBinary: appBinary, Out: out})
			if !IsRefusal(err) {
				t.Fatalf("Run(--app-user %s) = %v; want a refusal\n%s", user, err, out)
			}
			if d := pgtest.SnapshotDiff(before, pgtest.Snapshot(t, ctx, c, dbname)); d != "" {
				t.Errorf("a refused demo changed the server:\n%s", d)
			}
			ep := workflow.Endpoint{Host: c.Primary.Host, Port: c.Primary.Port}
			if _, _, err := postgres.Login(ctx, workflow.Target{Endpoint: ep, DBName: dbname, User: live, Password: workflow.NewPassword(livePW), SSLMode: "verify-full"}, postgres.Options{CABundle: c.CAFile}); err != nil {
				t.Errorf("the live user no longer logs in with its password: %v", err)
			}
		})
	}
}

// With AdoptExistingUser the demo takes the live user over, rotates it, and the report and
// the human output say it was adopted.
func TestDemoAdoptsOnRequest(t *testing.T) {
	ctx := testctx.Context(t)
	_, _, primaryDSN, replicaDSN := givenServers(t, ctx, "demo_adopt")
	live, _ := pgtest.NewRole(t, "demo_adopt_", "LOGIN")
	out := &syncBuffer{}
	rep, err := Run(ctx, Options{PrimaryDSN: primaryDSN, ReplicaDSN: replicaDSN, AppUser: live, AdoptExistingUser: true,
		Rotations: 1, Tasks: 1, Drain: time.Second, Settle: 200 * time.Millisecond, AppBinary: appBinary, Out: out})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, out)
	}
	rep.WriteSummary(out)
	// The adopted pair rotates with no failed login (the drain of in-flight requests is
	// TestAlternatingOnGivenServers' concern).
	if rep.Rotations != (RotationCounts{Requested: 1, Succeeded: 1}) || rep.Connections.Failed != 0 || rep.Connections.Attempts == 0 {
		t.Errorf("rotations %+v, connections %+v; want 1 succeeded and no failed login\n%s", rep.Rotations, rep.Connections, out)
	}
	if !slices.Equal(rep.AdoptedRoles, []string{live}) {
		t.Errorf("report adopted %v; want [%s]", rep.AdoptedRoles, live)
	}
	if !strings.Contains(out.String(), "adopted existing roles not created by pgrotate (--adopt-existing-user): "+live) {
		t.Errorf("the human output does not say %s was adopted:\n%s", live, out)
	}
}

// Outside the pgrotate module, the demo fails at once with an error that says so, before it
// starts PostgreSQL or anything else.
func TestDemoOutsideTheModuleFailsFast(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv(sfnlocal.EnvNode, "")
	t.Setenv(sfnlocal.EnvNodeModules, "")
	out := &syncBuffer{}
	_, err := Run(testctx.Context(t), Options{Rotations: 1, Tasks: 1, Out: out})
	if !errors.Is(err, modroot.ErrNotFound) {
		t.Fatalf("Run outside the module: %v; want %v", err, modroot.ErrNotFound)
	}
	if strings.Contains(out.String(), "PostgreSQL") || strings.Contains(out.String(), "building") {
		t.Errorf("the demo started something before failing:\n%s", out)
	}
}
