package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgrotate/pgrotate/workflow"
)

// maxDifferences caps the list in a PrivilegeMismatch: it ends up in a Step Functions cause
// and an SNS message, where a thousand lines help nobody.
const maxDifferences = 50

// CheckParity returns a *workflow.PrivilegeMismatch listing every difference between the two
// login users (see the package doc), *workflow.ActiveUserMissing when the active user does
// not exist, or nil when they act as one.
func (a *Admin) CheckParity(ctx context.Context, active, pending string) error {
	diffs, err := a.Differences(ctx, active, pending)
	if err != nil {
		return err
	}
	if len(diffs) > 0 {
		return &workflow.PrivilegeMismatch{Active: active, Pending: pending, Differences: diffs}
	}
	return nil
}

// Differences lists every difference between the two login users; empty means parity.
func (a *Admin) Differences(ctx context.Context, active, pending string) ([]string, error) {
	diffs, err := differences(ctx, a.conn, active, pending)
	if err != nil {
		return nil, err
	}
	if len(diffs) > maxDifferences {
		n := len(diffs) - maxDifferences
		diffs = append(diffs[:maxDifferences:maxDifferences], fmt.Sprintf("… and %d more", n))
	}
	return diffs, nil
}

func differences(ctx context.Context, q queryer, active, pending string) ([]string, error) {
	p, err := pairOf(active, pending)
	if err != nil {
		return nil, fmt.Errorf("check parity: %w", err)
	}
	act, err := role(ctx, q, active)
	if errors.Is(err, ErrRoleNotFound) {
		return nil, &workflow.ActiveUserMissing{User: active}
	}
	if err != nil {
		return nil, fmt.Errorf("check parity: %w", err)
	}
	pend, err := role(ctx, q, pending)
	if errors.Is(err, ErrRoleNotFound) {
		return []string{fmt.Sprintf("pending user %q does not exist", pending)}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("check parity: %w", err)
	}
	base, clone := act, pend
	if p.base == pending {
		base, clone = pend, act
	}

	var diffs []string
	diffs = append(diffs, attributeDiffs(act, pend)...)

	// The pair relation: the clone is a member of the base and runs as it.
	members, err := memberships(ctx, q, []uint32{base.oid, clone.oid})
	if err != nil {
		return nil, fmt.Errorf("check parity of %s and %s: %w", active, pending, err)
	}
	if !memberOf(members[clone.oid], base.name) {
		diffs = append(diffs, fmt.Sprintf("membership: %q is not a member of %q (GRANT %s TO %s)", clone.name, base.name, ident(base.name), ident(clone.name)))
	}
	settingDiffs, err := roleSettingDiffs(ctx, q, base, clone)
	if err != nil {
		return nil, fmt.Errorf("check parity of %s and %s: %w", active, pending, err)
	}
	diffs = append(diffs, settingDiffs...)

	// Memberships in other roles.
	diffs = append(diffs, setDiffs("membership in role", "WITH ADMIN OPTION", act.name, pend.name,
		membershipSet(members[act.oid], base.name), membershipSet(members[pend.oid], base.name))...)

	// Privileges granted directly to one and not the other.
	grants, err := directGrants(ctx, q, []uint32{act.oid, pend.oid})
	if err != nil {
		return nil, fmt.Errorf("check parity of %s and %s: %w", active, pending, err)
	}
	diffs = append(diffs, setDiffs("privilege", "WITH GRANT OPTION", act.name, pend.name, grantSet(grants[act.oid]), grantSet(grants[pend.oid]))...)

	// Objects the base user could not use.
	owned, err := ownedObjects(ctx, q, clone.oid)
	if err != nil {
		return nil, fmt.Errorf("check parity of %s and %s: %w", active, pending, err)
	}
	for _, o := range owned {
		diffs = append(diffs, fmt.Sprintf("ownership: %s is owned by %q, not %q, so %q cannot use it (ALTER … OWNER TO %s)", o, clone.name, base.name, base.name, ident(base.name)))
	}
	return diffs, nil
}

// roleSettingDiffs checks that the clone runs as the base user: role = base in every
// database, and no per-database setting overriding it.
func roleSettingDiffs(ctx context.Context, q queryer, base, clone roleInfo) ([]string, error) {
	settings, err := roleSettings(ctx, q, clone.oid)
	if err != nil {
		return nil, err
	}
	var diffs []string
	if got, ok := settings[""]; !ok || got != base.name {
		have := "none"
		if ok {
			have = fmt.Sprintf("%q", got)
		}
		diffs = append(diffs, fmt.Sprintf("role setting: %q must have role = %q (ALTER ROLE %s SET role = '%s'), has %s", clone.name, base.name, ident(clone.name), base.name, have))
	}
	for _, db := range sortedKeys(settings) {
		if got := settings[db]; db != "" && got != base.name {
			diffs = append(diffs, fmt.Sprintf("role setting: %q has role = %q in database %q, overriding role = %q", clone.name, got, db, base.name))
		}
	}
	return diffs, nil
}

// attributeDiffs compares the role attributes that decide how a login behaves.
func attributeDiffs(act, pend roleInfo) []string {
	type attr struct {
		name string
		a, p bool
	}
	var diffs []string
	for _, x := range []attr{
		{"LOGIN", act.login, pend.login},
		{"SUPERUSER", act.super, pend.super},
		{"INHERIT", act.inherit, pend.inherit},
		{"CREATEROLE", act.createRole, pend.createRole},
		{"CREATEDB", act.createDB, pend.createDB},
		{"REPLICATION", act.repl, pend.repl},
		{"BYPASSRLS", act.bypassRLS, pend.bypassRLS},
	} {
		if x.a != x.p {
			diffs = append(diffs, fmt.Sprintf("%s: %q has %s, %q has %s", x.name, act.name, flag(x.name, x.a), pend.name, flag(x.name, x.p)))
		}
	}
	if act.connLimit != pend.connLimit {
		diffs = append(diffs, fmt.Sprintf("CONNECTION LIMIT: %q has %d, %q has %d", act.name, act.connLimit, pend.name, pend.connLimit))
	}
	// VALID UNTIL is not compared: it is the password's lifetime, not a privilege, and
	// pgrotate sets it with the password (SetPassword clears it, RetirePassword sets it on
	// the previous user), so the pending user's differs while it is retired.
	return diffs
}

func flag(name string, on bool) string {
	if on {
		return name
	}
	return "NO" + name
}

// setDiffs reports the keys one side has and the other has not, in a stable order, and
// for keys both have, a difference in their option (WITH GRANT/ADMIN OPTION).
func setDiffs(what, option, aName, pName string, a, p map[string]bool) []string {
	var diffs []string
	for _, k := range sortedKeys(a) {
		pOpt, ok := p[k]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%s %s: granted to %q, not to %q", what, k, aName, pName))
		case a[k] && !pOpt:
			diffs = append(diffs, fmt.Sprintf("%s %s: %q has it %s, %q without", what, k, aName, option, pName))
		case !a[k] && pOpt:
			diffs = append(diffs, fmt.Sprintf("%s %s: %q has it %s, %q without", what, k, pName, option, aName))
		}
	}
	for _, k := range sortedKeys(p) {
		if _, ok := a[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s %s: granted to %q, not to %q", what, k, pName, aName))
		}
	}
	return diffs
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// membership is one role a login user is a member of.
type membership struct {
	role        string
	adminOption bool
}

// memberships returns, per member oid, the roles it belongs to.
func memberships(ctx context.Context, q queryer, oids []uint32) (map[uint32][]membership, error) {
	rows, err := q.Query(ctx, `SELECT m.member, r.rolname::text, m.admin_option
		FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid WHERE m.member = ANY($1::oid[])`, oids)
	if err != nil {
		return nil, fmt.Errorf("read memberships: %w", err)
	}
	out := make(map[uint32][]membership)
	var member uint32
	var m membership
	_, err = pgx.ForEachRow(rows, []any{&member, &m.role, &m.adminOption}, func() error {
		out[member] = append(out[member], m)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read memberships: %w", err)
	}
	return out, nil
}

// membershipSet maps each role (quoted) to its admin option, leaving out the pair link (a
// membership in skip).
func membershipSet(ms []membership, skip string) map[string]bool {
	out := make(map[string]bool, len(ms))
	for _, m := range ms {
		if m.role != skip {
			out[ident(m.role)] = m.adminOption
		}
	}
	return out
}

func memberOf(ms []membership, role string) bool {
	for _, m := range ms {
		if m.role == role {
			return true
		}
	}
	return false
}

// roleSettings returns the clone's role setting per database name ("" = all databases).
func roleSettings(ctx context.Context, q queryer, oid uint32) (map[string]string, error) {
	rows, err := q.Query(ctx, `SELECT COALESCE(d.datname::text, ''), s.setconfig
		FROM pg_db_role_setting s LEFT JOIN pg_database d ON d.oid = s.setdatabase WHERE s.setrole = $1`, oid)
	if err != nil {
		return nil, fmt.Errorf("read role settings: %w", err)
	}
	out := make(map[string]string)
	var db string
	var config []string
	_, err = pgx.ForEachRow(rows, []any{&db, &config}, func() error {
		for _, kv := range config {
			if v, ok := strings.CutPrefix(kv, "role="); ok {
				out[db] = v
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read role settings: %w", err)
	}
	return out, nil
}

// grant is one privilege granted directly to a role on one object.
type grant struct {
	kind      string // table, sequence, column, schema, routine, type, database
	schema    string
	name      string
	column    string
	args      string // a routine's identity arguments, as the server renders them
	priv      string
	grantable bool
}

// object renders the object for messages (identifiers quoted, so names are unambiguous).
func (g grant) object() string {
	switch g.kind {
	case "column":
		return fmt.Sprintf("column %s of table %s", ident(g.column), pgx.Identifier{g.schema, g.name}.Sanitize())
	case "schema", "database":
		return g.kind + " " + ident(g.name)
	case "routine":
		return fmt.Sprintf("routine %s(%s)", pgx.Identifier{g.schema, g.name}.Sanitize(), g.args)
	default:
		return g.kind + " " + pgx.Identifier{g.schema, g.name}.Sanitize()
	}
}

func (g grant) key() string { return g.priv + " on " + g.object() }

// grantSet maps each privilege to its grant option.
func grantSet(gs []grant) map[string]bool {
	m := make(map[string]bool, len(gs))
	for _, g := range gs {
		m[g.key()] = g.grantable
	}
	return m
}

// directGrantsSQL lists the privileges granted to the given roles, in the connected database
// and on every database. An owner's own entry in an ACL is ownership, not a grant.
const directGrantsSQL = `
SELECT o.kind, o.schema, o.name, o.col, o.args, a.privilege_type, a.is_grantable, a.grantee
FROM (
	SELECT CASE c.relkind WHEN 'S' THEN 'sequence' ELSE 'table' END AS kind, n.nspname::text AS schema,
		c.relname::text AS name, ''::text AS col, ''::text AS args, c.relacl AS acl, c.relowner AS owner
	FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE c.relacl IS NOT NULL AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
	UNION ALL
	SELECT 'column', n.nspname::text, c.relname::text, att.attname::text, '', att.attacl, c.relowner
	FROM pg_attribute att JOIN pg_class c ON c.oid = att.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE att.attacl IS NOT NULL AND att.attnum > 0 AND NOT att.attisdropped
	UNION ALL
	SELECT 'schema', '', n.nspname::text, '', '', n.nspacl, n.nspowner
	FROM pg_namespace n WHERE n.nspacl IS NOT NULL
	UNION ALL
	SELECT 'routine', n.nspname::text, p.proname::text, '', pg_get_function_identity_arguments(p.oid), p.proacl, p.proowner
	FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.proacl IS NOT NULL
	UNION ALL
	SELECT 'type', n.nspname::text, t.typname::text, '', '', t.typacl, t.typowner
	FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.typacl IS NOT NULL
	UNION ALL
	SELECT 'database', '', d.datname::text, '', '', d.datacl, d.datdba
	FROM pg_database d WHERE d.datacl IS NOT NULL
) o, aclexplode(o.acl) a
WHERE a.grantee = ANY($1::oid[]) AND a.grantee <> o.owner`

// directGrants returns the privileges granted directly to each role oid.
func directGrants(ctx context.Context, q queryer, oids []uint32) (map[uint32][]grant, error) {
	rows, err := q.Query(ctx, directGrantsSQL, oids)
	if err != nil {
		return nil, fmt.Errorf("read grants: %w", err)
	}
	out := make(map[uint32][]grant)
	var g grant
	var grantee uint32
	_, err = pgx.ForEachRow(rows, []any{&g.kind, &g.schema, &g.name, &g.column, &g.args, &g.priv, &g.grantable, &grantee}, func() error {
		out[grantee] = append(out[grantee], g)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read grants: %w", err)
	}
	return out, nil
}

// ownedObjectsSQL lists the objects a role owns in the connected database, and databases.
const ownedObjectsSQL = `
SELECT CASE c.relkind WHEN 'S' THEN 'sequence' ELSE 'table' END, n.nspname::text, c.relname::text, ''::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relowner = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
UNION ALL
SELECT 'schema', '', nspname::text, '' FROM pg_namespace WHERE nspowner = $1
UNION ALL
SELECT 'routine', n.nspname::text, p.proname::text, pg_get_function_identity_arguments(p.oid)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.proowner = $1
UNION ALL
SELECT 'database', '', datname::text, '' FROM pg_database WHERE datdba = $1
ORDER BY 1, 2, 3, 4`

func ownedObjects(ctx context.Context, q queryer, oid uint32) ([]string, error) {
	rows, err := q.Query(ctx, ownedObjectsSQL, oid)
	if err != nil {
		return nil, fmt.Errorf("read owned objects: %w", err)
	}
	var out []string
	var g grant
	_, err = pgx.ForEachRow(rows, []any{&g.kind, &g.schema, &g.name, &g.args}, func() error {
		out = append(out, g.object())
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read owned objects: %w", err)
	}
	return out, nil
}
