package postgres

import (
	"errors"
	"testing"

	"github.com/pgrotate/pgrotate/local/pgcluster"
	"github.com/pgrotate/pgrotate/workflow"
)

// TestPG runs the adapter the steps use through one rotation's database calls.
func TestPG(t *testing.T) {
	ctx, f := setup(t)
	pg := PG{Options: f.opts}
	base, basePW := f.newUser(t, ctx, "adapt_")
	clone := workflow.Alternate(base)
	admin := workflow.AdminSecret{Engine: "postgres", Host: f.primary.Host, Port: f.primary.Port,
		DBName: pgcluster.AppDatabase, Username: f.adminUser, Password: f.adminPW}.In(pgcluster.AppDatabase)
	app := workflow.AppSecret{Engine: "postgres", Host: f.primary.Host, Port: f.primary.Port,
		DBName: pgcluster.AppDatabase, Username: base, Password: basePW, MasterARN: "arn:x"}

	if err := pg.Login(ctx, app.At(f.primary)); err != nil {
		t.Fatalf("Login(current): %v", err)
	}
	if err := pg.CloneUser(ctx, admin, base, clone); err != nil {
		t.Fatalf("CloneUser: %v", err)
	}
	if err := pg.CheckParity(ctx, admin, base, clone); err != nil {
		t.Fatalf("CheckParity: %v", err)
	}
	pending := app.Pending(randomPassword(t))
	var rejected *workflow.CredentialRejected
	if err := pg.Login(ctx, pending.At(f.primary)); !errors.As(err, &rejected) {
		t.Fatalf("Login(pending) before SetPassword = %v; want *workflow.CredentialRejected", err)
	}
	lsn, changed, err := pg.SetPassword(ctx, admin, pending.Username, pending.Password)
	if err != nil || !changed {
		t.Fatalf("SetPassword = %v, %v", changed, err)
	}
	if err := pg.Login(ctx, pending.At(f.primary)); err != nil {
		t.Fatalf("Login(pending): %v", err)
	}
	onReplica := admin
	onReplica.Endpoint = f.replica
	if err := f.c.WaitReplayed(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pg.CaughtUp(ctx, onReplica, lsn); err != nil {
		t.Fatalf("CaughtUp: %v", err)
	}
	if err := pg.Login(ctx, pending.At(f.replica)); err != nil {
		t.Fatalf("Login(pending) on the replica: %v", err)
	}
	if _, _, err := pg.SetPassword(ctx, admin, pending.Username, pending.Password); err != nil {
		t.Fatalf("repeated SetPassword: %v", err)
	}
	bad := admin
	bad.Password = workflow.NewPassword("wrong")
	if err := pg.CheckParity(ctx, bad, base, clone); !errors.As(err, &rejected) {
		t.Fatalf("CheckParity with a wrong admin password = %v; want *workflow.CredentialRejected", err)
	}
}
