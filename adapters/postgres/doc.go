// Package postgres is the only code in pgrotate that writes SQL. It connects to the primary
// and the replicas with pgx v5 and implements the database side of a rotation: the role
// checks, the clone of the active user, the privilege-parity check, the password change, the
// login probe, the replica replay check and the session count.
//
// # Connections
//
// Every connection goes to a workflow.Target (endpoint, database, user, password, sslmode),
// built by the caller from a secret, and Connect builds it the same way: pgx.ParseConfig of a
// keyword DSN that holds no password (values single-quoted and escaped), then cfg.Password is
// set. The result is
// pinned so PG* environment variables cannot change what matters: host, port, database and
// user are checked against the request; no fallbacks (sslmode=prefer and allow, which retry
// in plaintext, are refused before anything is dialled); no ValidateConnect/AfterConnect
// hooks, no client certificate, no tracer; application_name=pgrotate and no other runtime
// parameter. The TLS configuration is built here, not by pgx, so PGSSLROOTCERT or
// ~/.postgresql/root.crt never replace the configured CA bundle:
//
//   - verify-full (the default): the chain must verify against Options.CABundle (a PEM file;
//     empty means the system roots) and the certificate must name the host (DNS name or IP).
//   - verify-ca: the chain must verify; the name is not checked.
//   - require: encrypted; with a CA bundle it behaves as verify-ca (as libpq does with a root
//     certificate), without one the certificate is not checked.
//   - disable: plaintext, only when asked for explicitly.
//
// The handshake is forced right after dialling so a TLS failure surfaces as a *TLSError
// naming the endpoint, the sslmode and the CA bundle, never as a later protocol error. A
// login the server refuses (SQLSTATE 28P01 or 28000) is a *workflow.CredentialRejected.
// Options.ConnectTimeout bounds each connection attempt (default 5s).
//
// # The pair of login users
//
// The base user x and its clone x_clone alternate as the active user. The pair relation is
// fixed, whichever one is active: x_clone is a member of x and has the role setting
// role = x (ALTER ROLE x_clone SET role = x), so a session of x_clone runs as x
// (current_user = x, session_user = x_clone) and every object either one creates is owned
// by x. Both users can use everything, and neither owns anything the other cannot use.
//
// CloneRole(active, pending) creates the clone in one transaction when it does not exist:
// LOGIN without a password, the active user's attributes (INHERIT, CREATEDB, CREATEROLE,
// CONNECTION LIMIT, VALID UNTIL), GRANT x TO x_clone, the role setting, the active user's
// memberships in other roles, and every privilege granted directly to the active user in the
// connected database (tables, views, sequences, columns, schemas, routines, types) and on
// every database. A GRANT the admin may not give is skipped (inside a savepoint) and then
// reported by the parity check that ends CloneRole. When the pending user exists, CloneRole
// only repairs the pending user: its attributes but VALID UNTIL, and, if it is the clone, its
// membership and role setting. It never alters the active user (invariant 2) and never creates the base
// user for an active clone, since that would change what the active user's sessions run as.
// Object grants of an existing pending user are compared, not synchronised: a drift is an
// operator's decision, reported by CheckParity.
//
// CheckParity reports every difference as one line: a missing pair membership or role
// setting; LOGIN, SUPERUSER, INHERIT, CREATEROLE, CREATEDB, REPLICATION, BYPASSRLS,
// or CONNECTION LIMIT that differ; a membership
// in another role that one user has and the other has not; a privilege granted directly to
// one user and not the other (owners' implicit privileges are not grants and are ignored);
// and an object owned by the clone, which the base user could not use. Scope: grants in the
// connected database plus database-level grants, so the admin handle must be connected to
// the app's database. Not compared: VALID UNTIL, the password's lifetime, which pgrotate
// sets with the password (SetPassword clears it, RetirePassword sets it on the previous
// user); per-role settings other than role (copying list-valued
// settings such as search_path safely is not possible without parsing them), default
// privileges, and grants on languages, large objects, foreign servers, tablespaces and
// parameters.
//
// # Setting a password
//
// SetPassword refuses a superuser and the admin itself, then tries to log in as the user
// with the new password on the admin's server; if that works nothing is changed. Otherwise
// it sends ALTER ROLE … PASSWORD with a SCRAM-SHA-256 verifier computed here (random 16-byte
// salt, 4096 iterations, PostgreSQL's format), never the plaintext, in one transaction that
// first sets log_statement=none, log_min_error_statement=panic,
// log_min_duration_statement=-1 and pg_stat_statements.track_utility=off with SET LOCAL,
// each in its own savepoint so that a permission error only loses that protection. After
// the commit it returns pg_current_wal_lsn(), the position every replica must replay before
// the password counts as replicated. A password outside printable ASCII is refused
// (ErrPasswordNotASCII): SCRAM clients normalise such passwords differently (SASLprep's NFKC
// in libpq and the server, PRECIS's NFC in pgx), so it could log in through one and not
// another.
//
// # The first app user
//
// EnsureLogin is the bootstrap of a new deployment, and of `pgrotate demo`. A read-only plan
// first refuses every takeover: a reserved name, the admin, a superuser or rds_superuser
// member (for the user and its alternate), a clone name that does not exist, and an existing
// role or alternate that pgrotate did not create (*UnmanagedRole) unless the caller adopts
// it. Then one transaction creates the base user WITH LOGIN (no password in the CREATE) and
// marks it with a ManagedMark role comment when it is missing, and grants CONNECT on the
// connected database and USAGE, CREATE on its public schema where they are missing (to the
// alternate too when a rotation already made it), checks the grants took effect, then sets
// the password through SetPassword, as a verifier. CloneRole marks the clone it creates.
// Running it again changes nothing; it never drops anything.
//
// Role names of the pair are checked with workflow.ValidateRoleName before any SQL, and every
// identifier is still quoted with pgx.Identifier.Sanitize. Errors name the action, users and
// hosts, never a password or a verifier. An Admin or Replica wraps one connection and is not
// safe for concurrent use.
package postgres
