package backend

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/jackc/pgx/v5"

	"github.com/pgrotate/pgrotate/internal/testctx"
	"github.com/pgrotate/pgrotate/local/pgcluster/pgtest"
	"github.com/pgrotate/pgrotate/workflow"
)

// A second deployment of the same user pair in another database (a second `pgrotate demo`
// on the same servers, with another --app-db) bootstraps grants the clone must share: its
// first rotation must not stop at CloneUser with PrivilegeMismatch.
func TestBootstrapAgainWhenTheCloneExists(t *testing.T) {
	c := pgtest.Cluster(t)
	ctx := testctx.Context(t)
	const user = "again_user"
	for _, db := range []string{"db_again_first", "db_again_second"} {
		su, err := c.Superuser(ctx, c.Primary)
		if err != nil {
			t.Fatal(err)
		}
		_, err = su.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()+" OWNER "+pgx.Identifier{c.AdminUser()}.Sanitize())
		su.Close(context.WithoutCancel(ctx))
		if err != nil {
			t.Fatal(err)
		}
		dbOpts := FromCluster(c)
		dbOpts.AppDB = db
		b, err := New(ctx, Options{Database: dbOpts, AppUser: user, Services: []workflow.Service{{Cluster: "prod", Service: "api"}},
			Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
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
			t.Fatalf("rotation in %s: step error %v, status %s: %s: %s", db, r.StepErr, r.Status, r.Error, r.Cause)
		}
	}
}
