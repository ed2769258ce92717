package backend

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/jackc/pgx/v5"

	"github.com/pgrotate/pgrotate/adapters/postgres"
	"github.com/pgrotate/pgrotate/workflow"
)

// DemoTable starts the name of the table each app user owns; the sample app reads it. Each
// user has its own (DemoTableFor), created by the app user itself, so a second demo with
// another --app-user on the same database never needs a grant on the first one's table.
const DemoTable = "rotation_demo"

// DemoTableFor is user's demo table: DemoTable_user, or, when that exceeds PostgreSQL's
// 63-byte names, a cut of it made unique by a hash of user.
func DemoTableFor(user string) string {
	name := DemoTable + "_" + user
	if len(name) <= workflow.MaxRoleNameBytes {
		return name
	}
	sum := sha256.Sum256([]byte(user))
	suffix := "_" + hex.EncodeToString(sum[:4])
	return name[:workflow.MaxRoleNameBytes-len(suffix)] + suffix
}

// DemoTableTaken reports that the app user's demo table exists and belongs to another role:
// the demo neither writes into nor grants on a table it did not create.
type DemoTableTaken struct {
	Table, Owner, User string
}

func (e *DemoTableTaken) Error() string {
	return fmt.Sprintf("refusing to use table %s for the demo: it belongs to %q, not to the app user %q", e.Table, e.Owner, e.User)
}

// bootstrap is what a platform team does once before pgrotate takes over: the admin secret
// for the self-managed master user, the app user with a first password through the
// product's own bootstrap (postgres.PG.EnsureLogin, as the CloudFormation custom resource
// runs it), and the app's own table. Every refusal comes before any change to the server.
func (b *Backend) bootstrap(ctx context.Context) error {
	db := b.opts.Database
	admin := workflow.AdminSecret{Engine: "postgres", Host: db.Primary.Host, Port: db.Primary.Port, DBName: db.AdminDB,
		Username: db.AdminUser, Password: db.AdminPassword, SSLMode: db.SSLMode}
	if err := admin.Validate(); err != nil {
		return err
	}
	b.DemoTable = DemoTableFor(b.opts.AppUser)
	if err := b.checkSetup(ctx, admin); err != nil {
		return err
	}
	adminJSON, err := admin.SecretString()
	if err != nil {
		return err
	}
	out, err := b.Secrets.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("pgrotate/admin"), SecretString: aws.String(adminJSON)})
	if err != nil {
		return fmt.Errorf("create the admin secret: %w", err)
	}
	b.AdminSecretARN = aws.ToString(out.ARN)

	pw, err := b.Store.RandomPassword(ctx, 32, ":/@\"'\\ ")
	if err != nil {
		return err
	}
	if err := b.createAppUser(ctx, admin, pw); err != nil {
		return err
	}
	app := workflow.AppSecret{Engine: "postgres", Host: db.Primary.Host, Port: db.Primary.Port, DBName: db.AppDB,
		Username: b.opts.AppUser, Password: pw, MasterARN: b.AdminSecretARN, Replicas: db.Replicas, SSLMode: db.SSLMode}
	if err := app.Validate(); err != nil {
		return err
	}
	appJSON, err := app.SecretString()
	if err != nil {
		return err
	}
	out, err = b.Secrets.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("pgrotate/app"), SecretString: aws.String(appJSON)})
	if err != nil {
		return fmt.Errorf("create the app secret: %w", err)
	}
	b.AppSecretARN = aws.ToString(out.ARN)
	return nil
}

// checkSetup refuses, before EnsureLogin changes anything, what only the demo forbids: a
// clone name as the first user (the demo starts a pair from its base user; EnsureLogin
// accepts an existing clone of pgrotate's for a CloudFormation update after a rotation), and
// a demo table that belongs to someone else. It only reads.
func (b *Backend) checkSetup(ctx context.Context, admin workflow.AdminSecret) error {
	user := b.opts.AppUser
	if base := workflow.Alternate(user); base+workflow.CloneSuffix == user {
		return &postgres.RefusedRole{Role: user, Reason: fmt.Sprintf("it is the alternate (clone) of %q: give the base user's name; pgrotate makes the clone", base)}
	}
	db := b.opts.Database
	conn, err := postgres.Connect(ctx, admin.In(db.AppDB), b.pg.Options)
	if err != nil {
		return fmt.Errorf("connect as admin: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var owner string
	err = conn.QueryRow(ctx, "SELECT tableowner::text FROM pg_tables WHERE schemaname = 'public' AND tablename = $1", b.DemoTable).Scan(&owner)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("look up table %s: %w", b.DemoTable, err)
	case owner != user:
		return &DemoTableTaken{Table: b.DemoTable, Owner: owner, User: user}
	}
	return nil
}

// createAppUser makes the first app user log in with pw through the product's bootstrap,
// then, as that user, runs the app's own migration: a table it owns.
func (b *Backend) createAppUser(ctx context.Context, admin workflow.AdminSecret, pw workflow.Password) error {
	db := b.opts.Database
	inApp := admin.In(db.AppDB) // object grants live in the app's database
	_, adopted, err := b.pg.EnsureLogin(ctx, inApp, b.opts.AppUser, pw, b.opts.AdoptExistingUser)
	if err != nil {
		return fmt.Errorf("set up the app user %s: %w", b.opts.AppUser, err)
	}
	b.Adopted = adopted
	appConn, err := postgres.Connect(ctx, inApp.As(b.opts.AppUser, pw), b.pg.Options)
	if err != nil {
		return fmt.Errorf("connect as %s: %w", b.opts.AppUser, err)
	}
	defer appConn.Close(context.WithoutCancel(ctx))
	table := pgx.Identifier{b.DemoTable}.Sanitize()
	if _, err := appConn.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+table+" (id bigserial PRIMARY KEY, note text NOT NULL, at timestamptz NOT NULL DEFAULT now())"); err != nil {
		return fmt.Errorf("create table %s: %w", b.DemoTable, err)
	}
	if _, err := appConn.Exec(ctx, "INSERT INTO "+table+" (note) VALUES ('bootstrap')"); err != nil {
		return fmt.Errorf("seed table %s: %w", b.DemoTable, err)
	}
	return nil
}
