// Package pgcluster starts a throwaway PostgreSQL 15 primary and streaming
// replica from the installed binaries, shaped like a small RDS setup: TCP
// logins only over TLS (verify-full against a CA the kit generates) with
// SCRAM-SHA-256, a non-superuser admin role, statement logging, and replay
// pause/resume to make real replica lag. Tests use it through pgtest; the
// pgrotate demo uses it directly.
//
// When the process runs as root, every PostgreSQL program runs as the
// postgres OS user, and the kit's directories are handed to that user.
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgrotate/pgrotate/internal/scram"
)

const (
	// AppDatabase is the database owned by the admin user.
	AppDatabase = "app"

	adminUser       = "dbadmin"
	replicationUser = "replicator"
	superuser       = "postgres"
	passwordLength  = 32

	// readyTimeout bounds the wait for one server to accept connections,
	// in case the caller's context has no deadline.
	readyTimeout = 60 * time.Second
	pollInterval = 10 * time.Millisecond
)

// Options configure Start. The zero value is ready to use.
type Options struct {
	// Dir holds the cluster (data dirs, logs, TLS files, socket). Empty: a
	// fresh temp dir that Close removes. A caller's Dir is kept by Close.
	// As root, Dir and its parents must be searchable by the postgres
	// user; the kit adds o+x itself to directories under the temp dir.
	Dir string
	// BinDir holds initdb, postgres and pg_basebackup. Empty: the answer
	// of `pg_config --bindir`, else /usr/lib/postgresql/15/bin.
	BinDir string
	// LogStatement is the servers' log_statement setting. Empty: "all",
	// so tests can prove no secret reaches the server log.
	LogStatement string
}

// Server is one PostgreSQL server of the cluster.
type Server struct {
	Name    string // "primary" or "replica"
	Host    string // "localhost"; its certificate is valid for it
	Port    int
	DataDir string
	LogFile string // the server's stderr: every log line

	proc *proc
}

// Cluster is a running primary and its streaming replica.
type Cluster struct {
	Primary, Replica *Server
	CAFile           string // PEM of the CA that signed the servers' certificate
	Dir              string

	sockDir       string
	adminPassword string
	logStatement  string
	ownDir        bool
	run           *runner

	procMu    sync.Mutex // guards each Server's proc: Stop, Restart and Close
	closeOnce sync.Once
	closeErr  error
}

// Start initialises and starts a primary, creates the roles and the app
// database, clones a streaming replica from it, and returns once the replica
// has replayed everything. On failure it stops whatever it started; errors
// from a server that would not start carry the tail of its log.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	binDir, err := findBinDir(ctx, opts.BinDir)
	if err != nil {
		return nil, err
	}
	run, err := newRunner(binDir)
	if err != nil {
		return nil, err
	}
	c := &Cluster{run: run, logStatement: opts.LogStatement}
	if c.logStatement == "" {
		c.logStatement = "all"
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Close())
		}
	}()
	if err := c.makeDirs(opts.Dir); err != nil {
		return nil, err
	}
	if c.adminPassword, err = randomPassword(passwordLength); err != nil {
		return nil, err
	}
	replPassword, err := randomPassword(passwordLength)
	if err != nil {
		return nil, err
	}

	if err := c.startPrimary(ctx, replPassword); err != nil {
		return nil, err
	}
	if err := c.startReplica(ctx, replPassword); err != nil {
		return nil, err
	}

	// Created after the replica is up, so Start itself proves streaming works.
	if err := c.createRole(ctx, adminUser, "LOGIN CREATEROLE CREATEDB", c.adminPassword); err != nil {
		return nil, err
	}
	if err := c.setupAdmin(ctx); err != nil {
		return nil, err
	}
	if err := c.WaitReplayed(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// startPrimary initialises and starts the primary, with the replication user.
func (c *Cluster) startPrimary(ctx context.Context, replPassword string) error {
	if err := c.run.run(ctx, nil, "initdb", "-D", c.Primary.DataDir, "-N", "-U", superuser,
		"-E", "UTF8", "--locale=C", "--auth-local=trust", "--auth-host=reject"); err != nil {
		return fmt.Errorf("initdb primary: %w", err)
	}
	if err := c.configure(c.Primary.DataDir); err != nil {
		return err
	}
	if err := c.startServer(ctx, c.Primary); err != nil {
		return err
	}
	return c.createRole(ctx, replicationUser, "LOGIN REPLICATION", replPassword)
}

// startReplica clones the primary into the replica and starts it streaming.
func (c *Cluster) startReplica(ctx context.Context, replPassword string) error {
	// pg_basebackup -R stores this conninfo, password included, in the
	// replica's postgresql.auto.conf: the replica streams over verify-full TLS.
	conninfo := fmt.Sprintf("host=%s port=%d user=%s sslmode=verify-full sslrootcert=%s",
		c.Primary.Host, c.Primary.Port, replicationUser, quoteValue(c.CAFile))
	if err := c.run.run(ctx, []string{"PGPASSWORD=" + replPassword}, "pg_basebackup",
		"-D", c.Replica.DataDir, "-R", "-X", "stream", "-c", "fast", "-w", "-d", conninfo); err != nil {
		return fmt.Errorf("clone replica: %w", err)
	}
	return c.startServer(ctx, c.Replica)
}

// makeDirs lays out the cluster directory and writes the TLS files.
func (c *Cluster) makeDirs(dir string) error {
	dir, own, err := makeClusterDir(dir)
	if err != nil {
		return err
	}
	c.ownDir = own
	c.Dir = dir
	if c.run.cred != nil {
		if err := ensureTraversable(dir); err != nil {
			return err
		}
	}

	c.sockDir = filepath.Join(dir, "s")
	// The kernel limits a socket path to 107 bytes.
	if n := len(c.sockDir) + len("/.s.PGSQL.65535"); n > 107 {
		return fmt.Errorf("cluster dir %s is too long for a unix socket path (%d > 107 bytes)", dir, n)
	}
	// 0700: the socket accepts trust logins, so only the server user (and
	// root) may reach it.
	if err := c.run.mkdir(c.sockDir, 0o700); err != nil {
		return err
	}

	if err := c.writeTLSFiles(dir); err != nil {
		return err
	}

	for _, s := range []**Server{&c.Primary, &c.Replica} {
		name := "primary"
		if s == &c.Replica {
			name = "replica"
		}
		*s = &Server{
			Name:    name,
			Host:    "localhost",
			DataDir: filepath.Join(dir, name),
			LogFile: filepath.Join(dir, name+".log"),
		}
		if err := c.run.mkdir((*s).DataDir, 0o700); err != nil {
			return err
		}
	}
	return nil
}

// makeClusterDir creates dir (absolute), or a temporary directory when dir is "": then own
// is true, and Close removes it.
func makeClusterDir(dir string) (_ string, own bool, _ error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "pgcluster-")
		if err != nil {
			return "", false, fmt.Errorf("create cluster dir: %w", err)
		}
		// Others need to read ca.pem and reach the data dirs.
		if err := os.Chmod(d, 0o755); err != nil {
			return d, true, fmt.Errorf("chmod cluster dir: %w", err)
		}
		return d, true, nil
	}
	d, err := filepath.Abs(dir)
	if err != nil {
		return "", false, fmt.Errorf("cluster dir: %w", err)
	}
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", false, fmt.Errorf("create cluster dir: %w", err)
	}
	return d, false, nil
}

// writeTLSFiles writes the CA certificate (c.CAFile) and the servers' certificate and key.
func (c *Cluster) writeTLSFiles(dir string) error {
	files, err := newTLSFiles(time.Now())
	if err != nil {
		return err
	}
	c.CAFile = filepath.Join(dir, "ca.pem")
	if err := c.run.writeFile(c.CAFile, files.caPEM, 0o644); err != nil {
		return err
	}
	tlsDir := filepath.Join(dir, "tls")
	if err := c.run.mkdir(tlsDir, 0o700); err != nil {
		return err
	}
	if err := c.run.writeFile(filepath.Join(tlsDir, "server.crt"), files.certPEM, 0o644); err != nil {
		return err
	}
	// PostgreSQL refuses a key readable by group or others.
	return c.run.writeFile(filepath.Join(tlsDir, "server.key"), files.keyPEM, 0o600)
}

// configure writes pg_hba.conf and makes postgresql.conf include
// pgcluster.conf, which startServer writes with the server's port. Both files
// travel to the replica with pg_basebackup.
func (c *Cluster) configure(dataDir string) error {
	hba := strings.Join([]string{
		"# Written by pgcluster. No plain host lines: TCP without TLS is refused.",
		"local   all          all                       trust",
		"hostssl all          all         127.0.0.1/32  scram-sha-256",
		"hostssl all          all         ::1/128       scram-sha-256",
		"hostssl replication  " + replicationUser + "  127.0.0.1/32  scram-sha-256",
		"hostssl replication  " + replicationUser + "  ::1/128       scram-sha-256",
		"",
	}, "\n")
	if err := c.run.writeFile(filepath.Join(dataDir, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return err
	}
	conf := filepath.Join(dataDir, "postgresql.conf")
	f, err := os.OpenFile(conf, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("open postgresql.conf: %w", err)
	}
	_, err = f.WriteString("\ninclude 'pgcluster.conf'\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("append to postgresql.conf: %w", err)
	}
	return nil
}

func (c *Cluster) serverConf(port int) string {
	tlsDir := filepath.Join(c.Dir, "tls")
	settings := []struct{ name, value string }{
		{"listen_addresses", quoteConf("localhost")},
		{"port", fmt.Sprint(port)},
		{"unix_socket_directories", quoteConf(c.sockDir)},
		{"unix_socket_permissions", "0700"},
		{"ssl", "on"},
		{"ssl_cert_file", quoteConf(filepath.Join(tlsDir, "server.crt"))},
		{"ssl_key_file", quoteConf(filepath.Join(tlsDir, "server.key"))},
		{"password_encryption", quoteConf("scram-sha-256")},
		{"logging_collector", "off"},
		{"log_destination", quoteConf("stderr")},
		{"log_line_prefix", quoteConf("%m [%p] %q%u@%d ")},
		{"log_statement", quoteConf(c.logStatement)},
		{"log_connections", "on"},
		{"synchronous_commit", "on"},
		{"fsync", "off"},
		{"full_page_writes", "off"},
		{"max_connections", "200"},
		{"shared_buffers", quoteConf("32MB")},
		{"hot_standby", "on"},
		{"wal_level", "replica"},
		{"max_wal_senders", "5"},
		// Lets a paused or slow replica catch up without a slot.
		{"wal_keep_size", quoteConf("256MB")},
	}
	var b strings.Builder
	b.WriteString("# Written by pgcluster.\n")
	for _, s := range settings {
		fmt.Fprintf(&b, "%s = %s\n", s.name, s.value)
	}
	return b.String()
}

// startServer starts s on a free port and waits until it accepts
// connections. A port taken between the pick and the bind is retried.
func (c *Cluster) startServer(ctx context.Context, s *Server) error {
	const attempts = 3
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		s.Port = port
		if err := c.run.writeFile(filepath.Join(s.DataDir, "pgcluster.conf"), []byte(c.serverConf(port)), 0o600); err != nil {
			return err
		}
		var logStart int64
		if fi, err := os.Stat(s.LogFile); err == nil {
			logStart = fi.Size()
		}
		p, err := c.run.startPostgres(s.DataDir, s.LogFile)
		if err != nil {
			return fmt.Errorf("start %s: %w", s.Name, err)
		}
		s.proc = p
		err = c.waitReady(ctx, s)
		if err == nil {
			return nil
		}
		if p.exited() && attempt < attempts && portTaken(s.LogFile, logStart) {
			continue
		}
		return fmt.Errorf("start %s: %w; tail of %s:\n%s", s.Name, err, s.LogFile, logTail(s.LogFile))
	}
}

func (c *Cluster) waitReady(ctx context.Context, s *Server) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var lastErr error
	for {
		if s.proc.exited() {
			return fmt.Errorf("postgres exited: %v", s.proc.err)
		}
		attempt, cancelAttempt := context.WithTimeout(ctx, 2*time.Second)
		conn, err := c.Superuser(attempt, s)
		cancelAttempt()
		if err == nil {
			return conn.Close(ctx)
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w (last error: %v)", ctx.Err(), lastErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// portTaken reports whether the server log, from offset on, says the port
// was in use.
func portTaken(logFile string, offset int64) bool {
	b, err := os.ReadFile(logFile)
	if err != nil || int64(len(b)) < offset {
		return false
	}
	return strings.Contains(string(b[offset:]), "could not create any TCP/IP sockets")
}

// freePort returns a TCP port free on 127.0.0.1 and, where IPv6 exists, ::1,
// since listen_addresses='localhost' binds both.
func freePort() (int, error) {
	for range 20 {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("pick a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l6, err := net.Listen("tcp6", fmt.Sprintf("[::1]:%d", port))
		l.Close()
		if err == nil {
			l6.Close()
			return port, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return port, nil // no IPv6 loopback here
		}
	}
	return 0, errors.New("pick a free port: no port free on both 127.0.0.1 and ::1")
}

// CreateRole creates a role with attrs (e.g. "LOGIN") and a password, as the
// superuser, for tests and the demo's own setup; see createRole.
func (c *Cluster) CreateRole(ctx context.Context, name, attrs, password string) error {
	return c.createRole(ctx, name, attrs, password)
}

// createRole creates a login role with a password that never reaches the
// server as plaintext nor appears in its log: the kit sends a SCRAM verifier
// computed here, with statement logging off for the session.
func (c *Cluster) createRole(ctx context.Context, name, attrs, password string) error {
	verifier, err := scram.Verifier(password) // randomPassword's alphabet needs no SASLprep
	if err != nil {
		return err
	}
	conn, err := c.Superuser(ctx, c.Primary)
	if err != nil {
		return fmt.Errorf("create role %s: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, sql := range []string{
		"SET log_statement = 'none'",
		"SET log_min_error_statement = 'panic'",
		fmt.Sprintf("CREATE ROLE %s WITH %s PASSWORD '%s'", pgx.Identifier{name}.Sanitize(), attrs, verifier),
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			// The error of CREATE ROLE does not quote the statement.
			return fmt.Errorf("create role %s: %w", name, err)
		}
	}
	return nil
}

// setupAdmin gives the admin user what an RDS master user has that the tests
// rely on: the app database, and the right to change statement logging for
// its own session (PostgreSQL 15's GRANT SET ON PARAMETER).
func (c *Cluster) setupAdmin(ctx context.Context) error {
	conn, err := c.Superuser(ctx, c.Primary)
	if err != nil {
		return fmt.Errorf("set up %s: %w", adminUser, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	admin := pgx.Identifier{adminUser}.Sanitize()
	for _, sql := range []string{
		"GRANT SET ON PARAMETER log_statement, log_min_error_statement TO " + admin,
		"CREATE DATABASE " + pgx.Identifier{AppDatabase}.Sanitize() + " OWNER " + admin,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("set up %s: %q: %w", adminUser, sql, err)
		}
	}
	return nil
}

// AdminUser is the name of the admin role: LOGIN CREATEROLE CREATEDB, not a
// superuser, like an RDS master user. It owns the app database.
func (c *Cluster) AdminUser() string { return adminUser }

// AdminPassword is the admin role's random password. The kit never prints it.
func (c *Cluster) AdminPassword() string { return c.adminPassword }

// DSN returns a keyword/value conninfo for user on s, over TLS verified
// against the kit's CA, without a password: callers set pgx's
// Config.Password after pgx.ParseConfig. An empty dbname is left out.
func (c *Cluster) DSN(s *Server, user, dbname string) string {
	parts := []string{
		"host=" + quoteValue(s.Host),
		fmt.Sprintf("port=%d", s.Port),
	}
	if dbname != "" {
		parts = append(parts, "dbname="+quoteValue(dbname))
	}
	parts = append(parts,
		"user="+quoteValue(user),
		"sslmode=verify-full",
		"sslrootcert="+quoteValue(c.CAFile),
	)
	return strings.Join(parts, " ")
}

// Superuser connects to s as the bootstrap superuser postgres, over the
// cluster's unix socket (trust). It is the kit's tool for setting up and
// inspecting state; code under test should log in over TCP instead.
func (c *Cluster) Superuser(ctx context.Context, s *Server) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=%s dbname=postgres sslmode=disable",
		quoteValue(c.sockDir), s.Port, superuser))
	if err != nil {
		return nil, fmt.Errorf("superuser config for %s: %w", s.Name, err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s as %s: %w", s.Name, superuser, err)
	}
	return conn, nil
}

// WaitReplayed waits until the replica has replayed all WAL the primary had
// written when it was called. It waits until ctx is done if replay is paused.
func (c *Cluster) WaitReplayed(ctx context.Context) error {
	p, err := c.Superuser(ctx, c.Primary)
	if err != nil {
		return fmt.Errorf("wait for replay: %w", err)
	}
	var lsn string
	err = p.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn)
	p.Close(context.WithoutCancel(ctx))
	if err != nil {
		return fmt.Errorf("wait for replay: read primary LSN: %w", err)
	}
	r, err := c.Superuser(ctx, c.Replica)
	if err != nil {
		return fmt.Errorf("wait for replay of %s: %w", lsn, err)
	}
	defer r.Close(context.WithoutCancel(ctx))
	var replayed string
	return poll(ctx, func() (bool, error) {
		var done bool
		err := r.QueryRow(ctx, `SELECT coalesce(pg_last_wal_replay_lsn()::text, ''),
			coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)`, lsn).Scan(&replayed, &done)
		if err != nil {
			return false, fmt.Errorf("wait for replay of %s: %w", lsn, err)
		}
		return done, nil
	}, func(err error) error {
		return fmt.Errorf("wait for replay of %s (replica at %q): %w", lsn, replayed, err)
	})
}

// WaitStreaming waits until the replica's WAL receiver streams from the primary again, as
// after a restart of the primary: until then the replica replays nothing new. (The receiver
// retries its connection every wal_retrieve_retry_interval, 5 s by default.)
func (c *Cluster) WaitStreaming(ctx context.Context) error {
	r, err := c.Superuser(ctx, c.Replica)
	if err != nil {
		return fmt.Errorf("wait for streaming: %w", err)
	}
	defer r.Close(context.WithoutCancel(ctx))
	return poll(ctx, func() (bool, error) {
		var streaming bool
		err := r.QueryRow(ctx, `SELECT coalesce((SELECT status = 'streaming' FROM pg_stat_wal_receiver), false)`).Scan(&streaming)
		if err != nil {
			return false, fmt.Errorf("wait for streaming: %w", err)
		}
		return streaming, nil
	}, func(err error) error {
		return fmt.Errorf("wait for the replica to stream from the primary: %w", err)
	})
}

// PauseReplay pauses WAL replay on the replica, which keeps receiving WAL,
// and returns once replay is actually paused.
func (c *Cluster) PauseReplay(ctx context.Context) error {
	return c.setReplay(ctx, "pg_wal_replay_pause", "paused")
}

// ResumeReplay resumes WAL replay on the replica and returns once it runs.
func (c *Cluster) ResumeReplay(ctx context.Context) error {
	return c.setReplay(ctx, "pg_wal_replay_resume", "not paused")
}

func (c *Cluster) setReplay(ctx context.Context, fn, want string) error {
	r, err := c.Superuser(ctx, c.Replica)
	if err != nil {
		return fmt.Errorf("%s: %w", fn, err)
	}
	defer r.Close(context.WithoutCancel(ctx))
	if _, err := r.Exec(ctx, "SELECT "+fn+"()"); err != nil {
		return fmt.Errorf("%s: %w", fn, err)
	}
	var state string
	return poll(ctx, func() (bool, error) {
		if err := r.QueryRow(ctx, "SELECT pg_get_wal_replay_pause_state()").Scan(&state); err != nil {
			return false, fmt.Errorf("%s: read pause state: %w", fn, err)
		}
		return state == want, nil
	}, func(err error) error {
		return fmt.Errorf("%s: replay state still %q: %w", fn, state, err)
	})
}

// poll calls check every pollInterval until it reports done or fails; when
// ctx ends first, it returns timeout(ctx.Err()).
func poll(ctx context.Context, check func() (bool, error), timeout func(error) error) error {
	for {
		done, err := check()
		if err != nil {
			if ctx.Err() != nil {
				return timeout(ctx.Err())
			}
			return err
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return timeout(ctx.Err())
		case <-time.After(pollInterval):
		}
	}
}

// ServerLog returns everything s has logged so far.
func (c *Cluster) ServerLog(s *Server) ([]byte, error) {
	b, err := os.ReadFile(s.LogFile)
	if err != nil {
		return nil, fmt.Errorf("read %s log: %w", s.Name, err)
	}
	return b, nil
}

// Stop stops s with a fast shutdown, as a restart or a Multi-AZ failover of
// RDS does: PostgreSQL terminates every session (SQLSTATE 57P01) and the port
// refuses connections until Restart. A stopped server stays stopped.
func (c *Cluster) Stop(s *Server) error {
	c.procMu.Lock()
	defer c.procMu.Unlock()
	if s.proc == nil {
		return fmt.Errorf("stop %s: not started", s.Name)
	}
	if err := s.proc.stop(); err != nil {
		return fmt.Errorf("stop %s: %w", s.Name, err)
	}
	return nil
}

// Restart starts a stopped s again on the same data directory and port (its
// endpoint does not change, as an RDS endpoint does not across a failover),
// and returns once it accepts connections. A running server is left alone.
func (c *Cluster) Restart(ctx context.Context, s *Server) error {
	c.procMu.Lock()
	defer c.procMu.Unlock()
	if s.proc != nil && !s.proc.exited() {
		return nil
	}
	p, err := c.run.startPostgres(s.DataDir, s.LogFile)
	if err != nil {
		return fmt.Errorf("restart %s: %w", s.Name, err)
	}
	s.proc = p
	if err := c.waitReady(ctx, s); err != nil {
		return fmt.Errorf("restart %s on port %d: %w; tail of %s:\n%s", s.Name, s.Port, err, s.LogFile, logTail(s.LogFile))
	}
	return nil
}

// Close stops both servers with a fast shutdown, kills their process groups
// if they have not exited within 10 s, and removes the directory if the kit
// created it. It is safe to call more than once.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		c.procMu.Lock()
		defer c.procMu.Unlock()
		var errs []error
		for _, s := range []*Server{c.Replica, c.Primary} {
			if s == nil || s.proc == nil {
				continue
			}
			if err := s.proc.stop(); err != nil {
				errs = append(errs, fmt.Errorf("stop %s: %w", s.Name, err))
			}
		}
		if c.ownDir && c.Dir != "" {
			if err := os.RemoveAll(c.Dir); err != nil {
				errs = append(errs, fmt.Errorf("remove cluster dir: %w", err))
			}
		}
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}

// quoteValue quotes a conninfo value when it needs it.
func quoteValue(v string) string {
	if v != "" && !strings.ContainsAny(v, ` '\`) {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// quoteConf quotes a postgresql.conf string value.
func quoteConf(v string) string {
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}
