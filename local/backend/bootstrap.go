package backend

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/jackc/pgx/v5"

	"github.com/pgrotate/pgrotate/tasks/postgres"
	"github.com/pgrotate/pgrotate/workflow"
)

// DemoTable is the table the first app user owns; the sample app reads it.
const DemoTable = "rotation_demo"

// bootstrap is what a platform team does once before pgrotate takes over: the admin secret
// for the self-managed master user, the app user with a first password, and a table the app
// user owns. The password is set as a SCRAM verifier, like every password pgrotate sets.
func (b *Backend) bootstrap(ctx context.Context) error {
	db := b.opts.Database
	admin := workflow.AdminSecret{Engine: "postgres", Host: db.Primary.Host, Port: db.Primary.Port, DBName: db.AdminDB,
		Username: db.AdminUser, Password: db.AdminPassword, SSLMode: db.SSLMode}
	if err := admin.Validate(); err != nil {
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
	if err := b.createAppUser(ctx, pw); err != nil {
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

// createAppUser creates the first app user if needed, sets its password and lets it own a
// table in the app database.
func (b *Backend) createAppUser(ctx context.Context, pw workflow.Password) error {
	db := b.opts.Database
	opts := b.pg.Options
	conn, err := postgres.Connect(ctx, db.Primary, db.AppDB, db.AdminUser, db.AdminPassword, sslmode(db), opts)
	if err != nil {
		return fmt.Errorf("connect as admin: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	user := pgx.Identifier{b.opts.AppUser}.Sanitize()
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", b.opts.AppUser).Scan(&exists); err != nil {
		return fmt.Errorf("look up %s: %w", b.opts.AppUser, err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE ROLE "+user+" LOGIN"); err != nil {
			return fmt.Errorf("create role %s: %w", b.opts.AppUser, err)
		}
	}
	// The grants go to both users of the pair when the alternate exists (an earlier
	// deployment's rotation made it): the clone must keep the active user's privileges, or
	// the next CloneUser finds them different (PrivilegeMismatch).
	grantees := user
	alt := workflow.Alternate(b.opts.AppUser)
	var altExists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", alt).Scan(&altExists); err != nil {
		return fmt.Errorf("look up %s: %w", alt, err)
	}
	if altExists {
		grantees += ", " + pgx.Identifier{alt}.Sanitize()
	}
	if _, err := conn.Exec(ctx, "GRANT CONNECT, CREATE ON DATABASE "+pgx.Identifier{db.AppDB}.Sanitize()+" TO "+grantees); err != nil {
		return fmt.Errorf("grant database to %s: %w", b.opts.AppUser, err)
	}
	if _, err := conn.Exec(ctx, "GRANT USAGE, CREATE ON SCHEMA public TO "+grantees); err != nil {
		return fmt.Errorf("grant schema to %s: %w", b.opts.AppUser, err)
	}
	admin, err := postgres.OpenAdmin(ctx, db.Primary, db.AppDB, db.AdminUser, db.AdminPassword, sslmode(db), opts)
	if err != nil {
		return err
	}
	defer admin.Close(context.WithoutCancel(ctx))
	if _, _, err := admin.SetPassword(ctx, b.opts.AppUser, pw); err != nil {
		return fmt.Errorf("set the first password of %s: %w", b.opts.AppUser, err)
	}
	// The app's own migration: the table belongs to the app user.
	appConn, err := postgres.Connect(ctx, db.Primary, db.AppDB, b.opts.AppUser, pw, sslmode(db), opts)
	if err != nil {
		return fmt.Errorf("connect as %s: %w", b.opts.AppUser, err)
	}
	defer appConn.Close(context.WithoutCancel(ctx))
	table := pgx.Identifier{DemoTable}.Sanitize()
	if _, err := appConn.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+table+" (id bigserial PRIMARY KEY, note text NOT NULL, at timestamptz NOT NULL DEFAULT now())"); err != nil {
		return fmt.Errorf("create table %s: %w", DemoTable, err)
	}
	if _, err := appConn.Exec(ctx, "INSERT INTO "+table+" (note) VALUES ('bootstrap')"); err != nil {
		return fmt.Errorf("seed table %s: %w", DemoTable, err)
	}
	return nil
}

func sslmode(db Database) string {
	if db.SSLMode == "" {
		return workflow.DefaultSSLMode
	}
	return db.SSLMode
}
