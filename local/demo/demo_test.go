package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgrotate/pgrotate/adapters/postgres"
	"github.com/pgrotate/pgrotate/internal/testctx"
	"github.com/pgrotate/pgrotate/local/fleet"
	"github.com/pgrotate/pgrotate/local/pgcluster"
	"github.com/pgrotate/pgrotate/local/pgcluster/pgtest"
	"github.com/pgrotate/pgrotate/local/probe"
	"github.com/pgrotate/pgrotate/workflow"
)

var appBinary string

func TestMain(m *testing.M) {
	if os.Getenv(spinEnv) != "" {
		spin() // a CPU-load process of TestDemoUnderCPULoad
	}
	dir, err := os.MkdirTemp("", "demo-test-")
	if err != nil {
		panic(err)
	}
	ctx, cancel := testctx.MainContext() // a build can take minutes on a busy machine
	appBinary, err = fleet.Build(ctx, dir)
	cancel()
	if err != nil {
		os.RemoveAll(dir)
		panic(err)
	}
	code := pgtest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer collects the human output, written from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	// onWrite, if set, sees everything written so far after each write.
	onWrite func(all string)
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	n, err := s.buf.Write(p)
	all := s.buf.String()
	fn := s.onWrite
	s.mu.Unlock()
	if fn != nil {
		fn(all)
	}
	return n, err
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// givenServers creates a database (prefix and a random suffix, so -count=N reruns on the
// package's cluster) and returns admin connection strings to it with the password inside,
// as an outside checker passes them: the primary as a URL, the replica as keyword/value.
func givenServers(t *testing.T, ctx context.Context, prefix string) (c *pgcluster.Cluster, dbname, primaryDSN, replicaDSN string) {
	t.Helper()
	c = pgtest.Cluster(t)
	dbname = prefix + "_" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	cfg, err := pgx.ParseConfig(c.DSN(c.Primary, c.AdminUser(), pgcluster.AppDatabase))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = c.AdminPassword()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{dbname}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReplayed(ctx); err != nil {
		t.Fatal(err)
	}
	u := url.URL{
		Scheme: "postgres", User: url.UserPassword(c.AdminUser(), c.AdminPassword()),
		Host: net.JoinHostPort(c.Primary.Host, strconv.Itoa(c.Primary.Port)), Path: "/" + dbname,
		RawQuery: url.Values{"sslmode": {"verify-full"}, "sslrootcert": {c.CAFile}}.Encode(),
	}
	return c, dbname, u.String(), c.DSN(c.Replica, c.AdminUser(), dbname) + " password=" + quote(c.AdminPassword())
}

// secretsFile is the --secrets-file format.
type secretsFile map[string]struct {
	Versions []struct {
		ID     string          `json:"id"`
		Stages []string        `json:"stages"`
		Value  json.RawMessage `json:"value"`
	} `json:"versions"`
}

func readSecrets(t *testing.T, path string) secretsFile {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("secrets file mode %v, want 0600", fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var sf secretsFile
	if err := json.Unmarshal(b, &sf); err != nil {
		t.Fatalf("secrets file: %v", err)
	}
	return sf
}

// appSecretAt returns the app secret's version at stage from the secrets file.
func (sf secretsFile) appSecretAt(t *testing.T, stage string) workflow.AppSecret {
	t.Helper()
	for _, v := range sf["pgrotate/app"].Versions {
		for _, s := range v.Stages {
			if s == stage {
				sec, err := workflow.ParseAppSecret(v.Value)
				if err != nil {
					t.Fatal(err)
				}
				return sec
			}
		}
	}
	t.Fatalf("no app secret version at %s", stage)
	return workflow.AppSecret{}
}

// passwords returns every password in the secrets file.
func (sf secretsFile) passwords(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, sec := range sf {
		for _, v := range sec.Versions {
			var x struct {
				Password string `json:"password"`
			}
			if err := json.Unmarshal(v.Value, &x); err != nil {
				t.Fatal(err)
			}
			out = append(out, x.Password)
		}
	}
	return out
}

// The first test: a demo with 2 rotations on servers given by DSN exits 0 with
// zero failed connections, the users alternate, and both log in afterwards.
func TestAlternatingOnGivenServers(t *testing.T) {
	ctx := testctx.Context(t)
	c, dbname, primaryDSN, replicaDSN := givenServers(t, ctx, "demo_alt")
	out := &syncBuffer{}
	secretsPath := filepath.Join(t.TempDir(), "secrets.json")
	rep, err := Run(ctx, Options{
		PrimaryDSN: primaryDSN, ReplicaDSN: replicaDSN, AppUser: "alt_user", Rotations: 2, Tasks: 3,
		Settle: 500 * time.Millisecond, AppBinary: appBinary, SecretsFile: secretsPath, Out: out,
	})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, out)
	}
	rep.WriteSummary(out)
	t.Logf("human output:\n%s", out)
	if !rep.OK() {
		t.Fatalf("report not OK: %+v", rep)
	}
	if rep.Rotations != (RotationCounts{Requested: 2, Succeeded: 2}) {
		t.Errorf("rotations = %+v", rep.Rotations)
	}
	if c := rep.ConfigurationTest; c == nil || c.Result != "passed" || !strings.Contains(out.String(), "rotation configuration test") {
		t.Errorf("configuration test = %+v, want passed and reported", c)
	}
	cn := rep.Connections
	if cn.Failed != 0 || cn.Primary.Attempts < 20 || cn.Replica.Attempts < 20 {
		t.Errorf("connections = %+v, want attempts on both targets and no failure", cn)
	}
	if rep.Requests.Failed != 0 || rep.Requests.Draining.Attempts != 2*3*fleet.DefaultBurst {
		t.Errorf("requests = %+v, want %d draining requests and no failure", rep.Requests, 2*3*fleet.DefaultBurst)
	}
	var users []string
	for _, r := range rep.PerRotation {
		users = append(users, r.From+"→"+r.To)
	}
	if got, want := strings.Join(users, " "), "alt_user→alt_user_clone alt_user_clone→alt_user"; got != want {
		t.Errorf("rotations %s, want %s", got, want)
	}
	if rep.ActiveUser != "alt_user" {
		t.Errorf("active user %s", rep.ActiveUser)
	}
	if len(rep.States) != 2*7 || rep.PromoteMS.P50 <= 0 || rep.RotationMS.Max < rep.PromoteMS.Max {
		t.Errorf("states %d (want 14), promote %+v, rotation %+v", len(rep.States), rep.PromoteMS, rep.RotationMS)
	}

	// Both users log in afterwards, on the primary and the replica, with what the secrets
	// file holds; and the secret names the given servers and TLS settings.
	sf := readSecrets(t, secretsPath)
	cur, prev := sf.appSecretAt(t, "AWSCURRENT"), sf.appSecretAt(t, "AWSPREVIOUS")
	if cur.Username != "alt_user" || prev.Username != "alt_user_clone" {
		t.Errorf("AWSCURRENT %s, AWSPREVIOUS %s", cur.Username, prev.Username)
	}
	if cur.Host != c.Primary.Host || cur.Port != c.Primary.Port || cur.DBName != dbname || cur.TLSMode() != "verify-full" ||
		len(cur.Replicas) != 1 || cur.Replicas[0] != (workflow.Endpoint{Host: c.Replica.Host, Port: c.Replica.Port}) {
		t.Errorf("app secret names %s/%s %v sslmode %s", cur.Primary(), cur.DBName, cur.Replicas, cur.TLSMode())
	}
	for _, s := range []workflow.AppSecret{cur, prev} {
		for _, ep := range []workflow.Endpoint{s.Primary(), s.Replicas[0]} {
			if _, _, err := postgres.Login(ctx, s.At(ep), postgres.Options{CABundle: c.CAFile}); err != nil {
				t.Errorf("%s does not log in on %s: %v", s.Username, ep, err)
			}
		}
	}

	// No secret value anywhere but in the secrets file.
	js, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	logs := ""
	for _, f := range []string{c.Primary.LogFile, c.Replica.LogFile} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		logs += string(b)
	}
	pws := append(sf.passwords(t), c.AdminPassword())
	if len(pws) < 5 {
		t.Fatalf("only %d passwords in the secrets file", len(pws))
	}
	for i, pw := range pws {
		for what, text := range map[string]string{"human output": out.String(), "JSON report": string(js), "server logs": logs} {
			if strings.Contains(text, pw) {
				t.Errorf("password %d appears in the %s", i, what)
			}
		}
	}
}

// The second test: the single-user baseline on the same harness records failed
// connections, refused as PostgreSQL refuses a stale password.
func TestSingleUserRecordsFailures(t *testing.T) {
	ctx := testctx.Context(t)
	_, _, primaryDSN, replicaDSN := givenServers(t, ctx, "demo_single")
	out := &syncBuffer{}
	rep, err := Run(ctx, Options{
		Strategy: StrategySingleUser, PrimaryDSN: primaryDSN, ReplicaDSN: replicaDSN, AppUser: "single_user", Rotations: 2, Tasks: 2,
		Settle: 300 * time.Millisecond, AppBinary: appBinary, Out: out,
	})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, out)
	}
	rep.WriteSummary(out)
	t.Logf("human output:\n%s", out)
	if rep.Rotations.Succeeded != 2 || !rep.OK() {
		t.Fatalf("rotations %+v, OK %v", rep.Rotations, rep.OK())
	}
	cn := rep.Connections
	if cn.Primary.Failed == 0 || cn.Replica.Failed == 0 {
		t.Fatalf("connections = %+v, want failures on both targets", cn)
	}
	for _, f := range cn.Failures {
		if f.User != "single_user" || !strings.Contains(f.Reason, "28P01") {
			t.Errorf("failure %+v, want single_user refused with SQLSTATE 28P01", f)
		}
	}
	for _, r := range rep.PerRotation {
		if r.LoginFailures == 0 || r.From != "single_user" || r.To != "single_user" {
			t.Errorf("rotation %+v: want failed logins and the same user", r)
		}
	}
	if rep.Requests.Draining.Failed == 0 {
		t.Errorf("no request in flight at SIGTERM failed: %+v", rep.Requests)
	}
	for _, l := range rep.LoginsAfter {
		if l.OK != (l.Stage == "AWSCURRENT") {
			t.Errorf("login afterwards %+v: only AWSCURRENT should log in", l)
		}
	}
}

// The negative control at the demo's level: the probe, as the demo wires it (targets, TLS
// settings, database), reports a wrong password as failures on both targets.
func TestProbeNegativeControl(t *testing.T) {
	ctx := testctx.Context(t)
	_, _, primaryDSN, replicaDSN := givenServers(t, ctx, "demo_negative")
	primary, err := ParseDSN(primaryDSN)
	if err != nil {
		t.Fatal(err)
	}
	replica, err := ParseDSN(replicaDSN)
	if err != nil {
		t.Fatal(err)
	}
	db, err := Database(primary, replica, "")
	if err != nil {
		t.Fatal(err)
	}
	r := &run{db: db}
	for _, tc := range []struct {
		name     string
		password workflow.Password
		failed   bool
	}{
		{"right password", primary.Password, false},
		{"wrong password", workflow.NewPassword("wrong-" + primary.Password.Reveal()[:4]), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			creds := []probe.Credential{{User: primary.User, Password: tc.password}}
			p, err := probe.New(r.targets(), probe.Options{Credentials: func() []probe.Credential { return creds }, Interval: 10 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			pctx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { defer close(done); _ = p.Run(pctx) }()
			for rep := p.Report(); rep.Primary.Attempts < 3 || rep.Replica.Attempts < 3; rep = p.Report() {
				time.Sleep(10 * time.Millisecond)
			}
			cancel()
			<-done
			rep := p.Report()
			if tc.failed != (rep.Primary.Failed == rep.Primary.Attempts && rep.Replica.Failed == rep.Replica.Attempts) || tc.failed != (rep.Failed > 0) {
				t.Fatalf("report %+v, want every attempt failed: %v", rep, tc.failed)
			}
			for _, f := range rep.Failures {
				if !strings.Contains(f.Reason, "28P01") || strings.Contains(f.Reason, tc.password.Reveal()) {
					t.Errorf("failure %+v", f)
				}
			}
		})
	}
}

// Ctrl-C in the middle of a rotation stops everything: the demo returns the interruption,
// and no process it started (servers, tasks, interpreter) survives. This run starts its
// own servers, as `make demo` does.
func TestInterruptStopsEverything(t *testing.T) {
	ctx, cancel := context.WithCancel(testctx.Context(t))
	defer cancel()
	work := t.TempDir()
	var once sync.Once
	out := &syncBuffer{onWrite: func(all string) {
		// Mid-rotation: the new version is promoted, the redeploy is running.
		if strings.Contains(all, "  Promote") {
			once.Do(func() { time.AfterFunc(300*time.Millisecond, cancel) })
		}
	}}
	// No AppBinary: the demo builds examples/app into the work dir, as `make demo` does.
	rep, err := Run(ctx, Options{Rotations: 2, Tasks: 2, Settle: 200 * time.Millisecond, WorkDir: work, Out: out})
	t.Logf("human output:\n%s", out)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run error %v, want context.Canceled", err)
	}
	if rep == nil || !rep.Interrupted || rep.OK() {
		t.Fatalf("report %+v, want an interrupted one", rep)
	}
	if !strings.Contains(out.String(), "PostgreSQL 15 primary") {
		t.Fatalf("the demo did not start its own servers")
	}
	if left := processesUnder(t, work); len(left) > 0 {
		t.Errorf("processes left behind: %v", left)
	}
	if kids := children(t, pgtest.Cluster(t).Dir); len(kids) > 0 {
		t.Errorf("child processes left behind: %v", kids)
	}
}

// processesUnder lists the processes whose command line or executable mentions dir.
func processesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	forEachProcess(t, func(pid int, cmdline, exe string, _ int) {
		if strings.Contains(cmdline, dir) || strings.HasPrefix(exe, dir) {
			out = append(out, fmt.Sprintf("%d %s", pid, cmdline))
		}
	})
	return out
}

// children lists this process's live child processes but the package's servers (in keep).
func children(t *testing.T, keep string) []string {
	t.Helper()
	var out []string
	forEachProcess(t, func(pid int, cmdline, _ string, ppid int) {
		if ppid == os.Getpid() && !strings.Contains(cmdline, keep) {
			out = append(out, fmt.Sprintf("%d %s", pid, cmdline))
		}
	})
	return out
}

func forEachProcess(t *testing.T, fn func(pid int, cmdline, exe string, ppid int)) {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue // gone meanwhile
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// stat: pid (comm) state ppid …; comm may hold spaces and parentheses.
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) < 2 || fields[0] == "Z" {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		exe, _ := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		fn(pid, strings.ReplaceAll(string(raw), "\x00", " "), exe, ppid)
	}
}
