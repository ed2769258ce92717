package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stopTimeout bounds a fast shutdown before the processes are killed. A
// variable only so that a test can shorten it.
var stopTimeout = 10 * time.Second

// runner starts PostgreSQL programs, as the postgres OS user when the kit
// runs as root (PostgreSQL refuses to run as root).
type runner struct {
	binDir string
	cred   *syscall.Credential // nil: run as the current user
	home   string              // HOME for the programs when cred is set
}

func newRunner(binDir string) (*runner, error) {
	r := &runner{binDir: binDir}
	if os.Geteuid() != 0 {
		return r, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs the postgres OS user: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("parse uid of postgres user: %w", err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("parse gid of postgres user: %w", err)
	}
	r.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	// libpq (pg_basebackup, the replica's WAL receiver) looks for client
	// certificates under $HOME and fails on root's unreadable home.
	r.home = u.HomeDir
	return r, nil
}

// chown hands path to the user the servers run as; a no-op when not root.
func (r *runner) chown(path string) error {
	if r.cred == nil {
		return nil
	}
	if err := os.Chown(path, int(r.cred.Uid), int(r.cred.Gid)); err != nil {
		return fmt.Errorf("chown %s to postgres: %w", path, err)
	}
	return nil
}

// mkdir creates dir with mode and hands it to the server user.
func (r *runner) mkdir(dir string, mode os.FileMode) error {
	if err := os.Mkdir(dir, mode); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	// Mkdir applies the umask; the modes here are what PostgreSQL demands.
	if err := os.Chmod(dir, mode); err != nil {
		return fmt.Errorf("chmod %s: %w", dir, err)
	}
	return r.chown(dir)
}

// writeFile writes data with mode and hands the file to the server user.
func (r *runner) writeFile(path string, data []byte, mode os.FileMode) error {
	if err := os.WriteFile(path, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(path, mode); err != nil {
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	return r.chown(path)
}

func (r *runner) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return r.prepare(exec.CommandContext(ctx, filepath.Join(r.binDir, name), args...))
}

// daemon is command for the server itself, which outlives any context: Close stops it.
func (r *runner) daemon(name string, args ...string) *exec.Cmd {
	return r.prepare(exec.Command(filepath.Join(r.binDir, name), args...))
}

// prepare gives cmd a clean environment and runs it as the server user in its own process group.
func (r *runner) prepare(cmd *exec.Cmd) *exec.Cmd {
	cmd.Env = cleanEnv()
	if r.cred != nil {
		cmd.Env = slices.DeleteFunc(cmd.Env, func(kv string) bool { return strings.HasPrefix(kv, "HOME=") })
		cmd.Env = append(cmd.Env, "HOME="+r.home)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: r.cred, Setpgid: true}
	return cmd
}

// run runs a short-lived program and returns its error with its output,
// which for initdb and pg_basebackup never contains a secret.
func (r *runner) run(ctx context.Context, env []string, name string, args ...string) error {
	cmd := r.command(ctx, name, args...)
	cmd.Env = append(cmd.Env, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w\n%s", name, err, tail(out.Bytes(), 40))
	}
	return nil
}

// cleanEnv is the environment minus libpq's PG* variables, which could point
// programs at another server, and with a C locale so output is predictable.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C")
}

// proc is a running postmaster.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the postmaster has been reaped
	err  error         // its exit status; read only after done is closed
}

// startPostgres launches the postmaster for dataDir with its stderr appended
// to logFile. It is the leader of its own process group, so Close can kill
// every backend at once, and it is told to stop if this process dies.
func (r *runner) startPostgres(dataDir, logFile string) (*proc, error) {
	f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open server log: %w", err)
	}
	defer f.Close() // the child holds its own descriptor
	cmd := r.daemon("postgres", "-D", dataDir)
	cmd.Dir = dataDir
	cmd.Stdout, cmd.Stderr = f, f
	// SIGINT is PostgreSQL's fast shutdown: an orphaned cluster stops cleanly.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGINT
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop asks for a fast shutdown and kills the process group if the server
// has not exited within stopTimeout.
func (p *proc) stop() error {
	if p.exited() {
		return nil
	}
	pid := p.cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGINT); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal postgres %d: %w", pid, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(stopTimeout):
	}
	// Each backend calls setsid, so the postmaster's group holds only the
	// postmaster: kill its children's groups first, while they are still
	// its children, then its own.
	for _, child := range childrenOf(pid) {
		_ = syscall.Kill(-child, syscall.SIGKILL)
		_ = syscall.Kill(child, syscall.SIGKILL)
	}
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill process group %d: %w", pid, err)
	}
	<-p.done
	return fmt.Errorf("postgres %d did not stop within %s; killed", pid, stopTimeout)
}

// childrenOf lists the processes whose parent is pid, from /proc.
func childrenOf(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var kids []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			kids = append(kids, child)
		}
	}
	return kids
}

// logTail returns the last lines of a server log for error messages.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(read %s: %v)", path, err)
	}
	return tail(b, 30)
}

func tail(b []byte, lines int) string {
	b = bytes.TrimRight(b, "\n")
	for i, n := len(b)-1, 0; i >= 0; i-- {
		if b[i] == '\n' {
			if n++; n == lines {
				return string(b[i+1:])
			}
		}
	}
	return string(b)
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)`)

// findBinDir picks the PostgreSQL binaries: the option, then pg_config's
// answer, then the Debian path of PostgreSQL 15. It checks the major version.
func findBinDir(ctx context.Context, opt string) (string, error) {
	dir := opt
	if dir == "" {
		if out, err := exec.CommandContext(ctx, "pg_config", "--bindir").Output(); err == nil {
			dir = strings.TrimSpace(string(out))
		}
		if _, err := os.Stat(filepath.Join(dir, "postgres")); dir == "" || err != nil {
			dir = "/usr/lib/postgresql/15/bin"
		}
	}
	bin := filepath.Join(dir, "postgres")
	cmd := exec.CommandContext(ctx, bin, "--version")
	cmd.Env = cleanEnv()
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("PostgreSQL binaries not usable in %s (install postgresql-15 or set Options.BinDir): %w", dir, err)
	}
	m := versionRE.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("unrecognised %s --version output %q", bin, bytes.TrimSpace(out))
	}
	if major, _ := strconv.Atoi(string(m[1])); major < 15 {
		// GRANT SET ON PARAMETER and pg_get_wal_replay_pause_state need 15.
		return "", fmt.Errorf("%s is PostgreSQL %d; need 15 or later", bin, major)
	}
	return dir, nil
}

// ensureTraversable makes sure the server user can reach files under dir.
// Directories under the system temp dir (such as those of t.TempDir, which
// are 0700) get the search bit for others; anything else must already allow
// it, since the kit does not loosen permissions outside temp.
func ensureTraversable(dir string) error {
	tmp, err := filepath.Abs(os.TempDir())
	if err != nil {
		return fmt.Errorf("resolve temp dir: %w", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("stat %s: %w", d, err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if d == tmp || !strings.HasPrefix(d, tmp+string(filepath.Separator)) {
				return fmt.Errorf("%s is not searchable by the postgres user (chmod o+x it or choose another Options.Dir)", d)
			}
			if err := os.Chmod(d, fi.Mode().Perm()|0o001); err != nil {
				return fmt.Errorf("chmod o+x %s: %w", d, err)
			}
		}
		if parent := filepath.Dir(d); parent == d {
			return nil
		}
	}
}
