package pgtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgrotate/pgrotate/local/pgcluster"
)

// snapshotQueries read, as text, everything a role change can touch: roles and their
// attributes (passwords as a hash of the stored verifier, so no secret reaches test output),
// memberships, per-role settings, role comments, database ACLs. Schema ACLs are per
// database and read in the database Snapshot is given.
var snapshotQueries = []string{
	`SELECT 'role ' || rolname || ' super=' || rolsuper || ' inherit=' || rolinherit || ' createrole=' || rolcreaterole ||
		' createdb=' || rolcreatedb || ' login=' || rolcanlogin || ' replication=' || rolreplication ||
		' bypassrls=' || rolbypassrls || ' connlimit=' || rolconnlimit || ' validuntil=' || coalesce(rolvaliduntil::text, '-') ||
		' password=' || coalesce(encode(sha256(convert_to(rolpassword, 'UTF8')), 'hex'), '-')
	 FROM pg_authid ORDER BY 1`,
	`SELECT 'member ' || r.rolname || ' in ' || g.rolname || ' admin=' || m.admin_option
	 FROM pg_auth_members m JOIN pg_authid r ON r.oid = m.member JOIN pg_authid g ON g.oid = m.roleid ORDER BY 1`,
	`SELECT 'setting ' || coalesce(r.rolname, '-') || ' ' || coalesce(d.datname, '-') || ' ' || array_to_string(s.setconfig, ',')
	 FROM pg_db_role_setting s LEFT JOIN pg_authid r ON r.oid = s.setrole LEFT JOIN pg_database d ON d.oid = s.setdatabase ORDER BY 1`,
	`SELECT 'comment ' || r.rolname || ' ' || d.description
	 FROM pg_shdescription d JOIN pg_authid r ON r.oid = d.objoid WHERE d.classoid = 'pg_authid'::regclass ORDER BY 1`,
	`SELECT 'database ' || datname || ' acl=' || coalesce(datacl::text, '-') FROM pg_database ORDER BY 1`,
	`SELECT 'schema ' || nspname || ' acl=' || coalesce(nspacl::text, '-') FROM pg_namespace ORDER BY 1`,
	`SELECT 'table ' || c.oid::regclass::text || ' owner=' || pg_get_userbyid(c.relowner) || ' acl=' || coalesce(c.relacl::text, '-')
	 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') ORDER BY 1`,
}

// Snapshot returns the primary's roles, passwords (hashed), memberships, role settings and
// comments, database ACLs, and the schema and table ACLs of dbname, one line each, read as
// the superuser. Two equal snapshots mean no role, grant, ACL or password changed.
func Snapshot(t testing.TB, ctx context.Context, c *pgcluster.Cluster, dbname string) []string {
	t.Helper()
	su, err := c.Superuser(ctx, c.Primary)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	defer su.Close(context.WithoutCancel(ctx))
	cfg := su.Config().Copy()
	cfg.Database = dbname
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("snapshot: connect to %s: %v", dbname, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var lines []string
	for _, q := range snapshotQueries {
		rows, err := conn.Query(ctx, q)
		if err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		lines = append(lines, got...)
	}
	return lines
}

// SnapshotDiff describes how after differs from before ("" when equal): the lines only in
// one of them.
func SnapshotDiff(before, after []string) string {
	var b strings.Builder
	for _, l := range before {
		if !slices.Contains(after, l) {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	for _, l := range after {
		if !slices.Contains(before, l) {
			fmt.Fprintf(&b, "+ %s\n", l)
		}
	}
	return b.String()
}
