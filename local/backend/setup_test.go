package backend

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/jackc/pgx/v5"

	"github.com/pgrotate/pgrotate/adapters/postgres"
	"github.com/pgrotate/pgrotate/internal/testctx"
	"github.com/pgrotate/pgrotate/local/pgcluster"
	"github.com/pgrotate/pgrotate/local/pgcluster/pgtest"
	"github.com/pgrotate/pgrotate/workflow"
)

func quietOptions(c *pgcluster.Cluster, user string) Options {
	return Options{Database: FromCluster(c), AppUser: user, Services: []workflow.Service{{Cluster: "prod", Service: "api"}},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// loginWorks fails the test unless user logs in to the primary's app database with pw.
func loginWorks(t *testing.T, ctx context.Context, c *pgcluster.Cluster, user, pw string) {
	t.Helper()
	ep := workflow.Endpoint{Host: c.Primary.Host, Port: c.Primary.Port}
	if _, _, err := postgres.Login(ctx, workflow.Target{Endpoint: ep, DBName: pgcluster.AppDatabase, User: user, Password: workflow.NewPassword(pw), SSLMode: "verify-full"}, postgres.Options{CABundle: c.CAFile}); err != nil {
		t.Errorf("%s no longer logs in with its own password: %v", user, err)
	}
}

// The demo's setup (backend.New, which runs the product's EnsureLogin) takes over nothing
// it did not create: each refusal is a named error and leaves every role, password,
// membership, comment and ACL byte-identical, and the existing roles' passwords still work.
func TestSetupRefusesTakeovers(t *testing.T) {
	c := pgtest.Cluster(t)
	ctx := testctx.Context(t)

	live, livePW := pgtest.NewRole(t, "live_user_", "LOGIN")
	super, superPW := pgtest.NewRole(t, "super_user_", "SUPERUSER LOGIN")
	// A new base name whose alternate is someone's live user.
	other, otherPW := pgtest.NewRole(t, "other_", "LOGIN")
	if err := c.CreateRole(ctx, other+workflow.CloneSuffix, "LOGIN", otherPW); err != nil {
		t.Fatal(err)
	}
	// A free user name whose demo table already belongs to someone else.
	tableUser := "table_user_" + time.Now().Format("150405")
	su, err := c.Superuser(ctx, c.Primary)
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(context.WithoutCancel(ctx))
	cfg := su.Config().Copy()
	cfg.Database = pgcluster.AppDatabase
	app, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(context.WithoutCancel(ctx))
	if _, err := app.Exec(ctx, "CREATE TABLE "+pgx.Identifier{DemoTableFor(tableUser)}.Sanitize()+" (v int); ALTER TABLE "+
		pgx.Identifier{DemoTableFor(tableUser)}.Sanitize()+" OWNER TO "+pgx.Identifier{live}.Sanitize()); err != nil {
		t.Fatal(err)
	}

	refused := func(err error) bool { var r *postgres.RefusedRole; return errors.As(err, &r) }
	unmanaged := func(err error) bool { var u *postgres.UnmanagedRole; return errors.As(err, &u) }
	taken := func(err error) bool { var d *DemoTableTaken; return errors.As(err, &d) }
	tests := []struct {
		name string
		user string
		want func(error) bool
	}{
		{"a live user of the server", live, unmanaged},
		{"a new user whose alternate is a live user", other, unmanaged},
		{"the alternate of a live user", other + workflow.CloneSuffix, refused},
		{"a clone name", "fresh_user" + workflow.CloneSuffix, refused},
		{"the admin", c.AdminUser(), refused},
		{"a name whose alternate is the admin", c.AdminUser() + workflow.CloneSuffix, refused},
		{"postgres", "postgres", refused},
		{"a name whose alternate is postgres", "postgres" + workflow.CloneSuffix, refused},
		{"an rds_ name", "rds_superuser", refused},
		{"a superuser", super, refused},
		{"someone else's demo table", tableUser, taken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := pgtest.Snapshot(t, ctx, c, pgcluster.AppDatabase)
			b, err := New(ctx, quietOptions(c, tt.user))
			if err == nil {
				b.Close()
			}
			if !tt.want(err) {
				t.Errorf("New(app user %s) = %v; want the named refusal", tt.user, err)
			}
			if d := pgtest.SnapshotDiff(before, pgtest.Snapshot(t, ctx, c, pgcluster.AppDatabase)); d != "" {
				t.Errorf("a refused setup changed the server:\n%s", d)
			}
			for _, k := range [][2]string{{live, livePW}, {super, superPW}, {other, otherPW}, {other + workflow.CloneSuffix, otherPW}} {
				loginWorks(t, ctx, c, k[0], k[1])
			}
		})
	}
}

// With AdoptExistingUser the setup takes over a live user, says so, and rotates it.
func TestSetupAdoptsOnRequest(t *testing.T) {
	c := pgtest.Cluster(t)
	ctx := testctx.Context(t)
	user, oldPW := pgtest.NewRole(t, "adopted_", "LOGIN")
	opts := quietOptions(c, user)
	opts.AdoptExistingUser = true
	b, err := New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !slices.Equal(b.Adopted, []string{user}) {
		t.Errorf("Adopted = %v; want [%s]", b.Adopted, user)
	}
	ep := workflow.Endpoint{Host: c.Primary.Host, Port: c.Primary.Port}
	if _, _, err := postgres.Login(ctx, workflow.Target{Endpoint: ep, DBName: pgcluster.AppDatabase, User: user, Password: workflow.NewPassword(oldPW), SSLMode: "verify-full"}, postgres.Options{CABundle: c.CAFile}); err == nil {
		t.Error("the adopted user still logs in with its old password")
	}
	if err := c.WaitReplayed(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := b.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.StepErr != nil || r.Status != types.ExecutionStatusSucceeded {
		t.Fatalf("rotation of the adopted user: step error %v, status %s: %s: %s", r.StepErr, r.Status, r.Error, r.Cause)
	}
}

// A second demo with another app user on the same database sets up and rotates: each app
// user owns its own demo table, so neither needs a grant on the other's.
func TestSecondDemoWithAnotherUserOnTheSameDatabase(t *testing.T) {
	c := pgtest.Cluster(t)
	ctx := testctx.Context(t)
	for _, user := range []string{"first_demo_user", "second_demo_user", "first_demo_user"} {
		b, err := New(ctx, quietOptions(c, user))
		if err != nil {
			t.Fatalf("setup of %s: %v", user, err)
		}
		if len(b.Adopted) > 0 {
			t.Errorf("setup of %s adopted %v; a re-run must recognise pgrotate's own roles", user, b.Adopted)
		}
		if err := c.WaitReplayed(ctx); err != nil {
			t.Fatal(err)
		}
		r, err := b.Rotate(ctx)
		b.Close()
		if err != nil {
			t.Fatal(err)
		}
		if r.StepErr != nil || r.Status != types.ExecutionStatusSucceeded {
			t.Fatalf("rotation of %s: step error %v, status %s: %s: %s", user, r.StepErr, r.Status, r.Error, r.Cause)
		}
	}
	if DemoTableFor("first_demo_user") == DemoTableFor("second_demo_user") {
		t.Error("two users share a demo table")
	}
	long := strings.Repeat("u", 57)
	if n := len(DemoTableFor(long)); n > workflow.MaxRoleNameBytes || DemoTableFor(long) == DemoTableFor(long+"x") {
		t.Errorf("DemoTableFor(%d-byte name) = %d bytes, or not unique", len(long), n)
	}
}
