package tasks

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/pgrotate/pgrotate/adapters/ecsservice"
	"github.com/pgrotate/pgrotate/adapters/secretstore"
	localecs "github.com/pgrotate/pgrotate/local/ecs"
	localsecrets "github.com/pgrotate/pgrotate/local/secrets"
	"github.com/pgrotate/pgrotate/local/sfnlocal"
	"github.com/pgrotate/pgrotate/workflow"
)

const (
	// Version ids (ClientRequestTokens): local/secrets wants 32 to 64 characters.
	v1     = "00000000-0000-4000-8000-000000000001"
	tok    = "11111111-1111-4111-8111-111111111111"
	tok2   = "22222222-2222-4222-8222-222222222222"
	manual = "33333333-3333-4333-8333-333333333333"

	currentPW = "Cur-Pw-6b1f0e8c7d9a2b3c4d5e6f7a"
	pendingPW = "Pend-Pw-0a1b2c3d4e5f6a7b8c9d0e1f"
	adminPW   = "Adm-Pw-2c4e6a8b0d1f3e5a7c9b1d3f"
	otherPW   = "Other-Pw-9f8e7d6c5b4a39281706f5e4"

	primaryHost = "db.example.internal"
	replica1    = "replica-1.example.internal"
	replica2    = "replica-2.example.internal"
)

// The timeline every test starts from: AWSCURRENT (v1) is created at t0, the execution that
// promoted it left Promote at t0+1h, the services' tasks launched at t0+2h, and the
// rotation under test put AWSPENDING (tok) at t0+3h.
var (
	t0         = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	promotedAt = t0.Add(time.Hour)
	launchedAt = t0.Add(2 * time.Hour)
	pendingAt  = t0.Add(3 * time.Hour)
)

// clock is the shared, settable time of the Secrets Manager and ECS fakes.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is one rotation in progress: the app secret with AWSCURRENT v1 (app_user) and
// AWSPENDING tok (app_user_clone), its admin secret, two ECS services steady on tasks
// launched after the promotion, a database fake in which AWSCURRENT logs in, and a
// promotion lookup that knows v1's promotion.
type env struct {
	t        *testing.T
	clock    *clock
	sm       *localsecrets.Store
	store    *secretstore.Store
	appARN   string
	adminARN string
	ecs      *localecs.ECS
	services []workflow.Service
	db       *fakeDB
	promos   *fakePromotions
	logs     *syncBuffer
	log      *slog.Logger
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, clock: &clock{now: t0}, logs: &syncBuffer{}}
	e.sm = localsecrets.New(localsecrets.WithClock(e.clock.Now))
	e.store = secretstore.New(e.sm)
	e.log = slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	e.adminARN = e.createSecret("pgrotate-admin", "", e.admin(primaryHost).str(t))
	e.appARN = e.createSecret("pgrotate-app", v1, secretString(t, e.current()))

	e.ecs = localecs.New(localecs.WithController(localecs.Manual{}), localecs.WithClock(e.clock.Now))
	t.Cleanup(e.ecs.Close)
	e.addService("prod", "web", 2, launchedAt)
	e.addService("prod", "worker", 1, launchedAt)

	e.db = newFakeDB()
	e.db.valid["app_user"] = workflow.NewPassword(currentPW)
	e.promos = &fakePromotions{at: promotedAt, found: true}

	e.clock.Set(pendingAt)
	e.putVersion(tok, e.current().Pending(workflow.NewPassword(pendingPW)), workflow.StagePending)
	t.Cleanup(e.scanForSecrets)
	return e
}

func (e *env) createSecret(name, token, value string) string {
	e.t.Helper()
	in := &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(value)}
	if token != "" {
		in.ClientRequestToken = aws.String(token)
	}
	out, err := e.sm.CreateSecret(context.Background(), in)
	if err != nil {
		e.t.Fatalf("create secret %s: %v", name, err)
	}
	return aws.ToString(out.ARN)
}

// current is the AWSCURRENT value the environment starts with.
func (e *env) current() workflow.AppSecret {
	return workflow.AppSecret{
		Engine: "postgres", Host: primaryHost, Port: 5432, DBName: "app", Username: "app_user",
		Password: workflow.NewPassword(currentPW), MasterARN: e.adminARN,
		Replicas: []workflow.Endpoint{{Host: replica1, Port: 5432}, {Host: replica2, Port: 5433}},
	}
}

type adminValue workflow.AdminSecret

func (a adminValue) str(t *testing.T) string {
	t.Helper()
	s, err := workflow.AdminSecret(a).SecretString()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *env) admin(host string) adminValue {
	return adminValue{Engine: "postgres", Host: host, Port: 5432, DBName: "postgres", Username: "dbadmin", Password: workflow.NewPassword(adminPW)}
}

func secretString(t *testing.T, s workflow.AppSecret) string {
	t.Helper()
	str, err := s.SecretString()
	if err != nil {
		t.Fatal(err)
	}
	return str
}

// putVersion writes a version of the app secret straight into Secrets Manager.
func (e *env) putVersion(id string, s workflow.AppSecret, stages ...string) {
	e.t.Helper()
	if _, err := e.sm.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{
		SecretId: aws.String(e.appARN), ClientRequestToken: aws.String(id), SecretString: aws.String(secretString(e.t, s)), VersionStages: stages,
	}); err != nil {
		e.t.Fatalf("put version %s: %v", id, err)
	}
}

// promote moves AWSCURRENT to id, as the rotation function's Promote does.
func (e *env) promote(id string) {
	e.t.Helper()
	v, err := e.store.VersionStages(context.Background(), e.appARN)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.MoveCurrent(context.Background(), e.appARN, id, workflow.Versions(v).With(workflow.StageCurrent)); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) addService(cluster, name string, desired int, at time.Time) {
	e.t.Helper()
	if _, err := e.ecs.AddService(cluster, name, desired, at); err != nil {
		e.t.Fatal(err)
	}
	e.services = append(e.services, workflow.Service{Cluster: cluster, Service: name})
}

// deploy forces a new deployment of svc now (it stays IN_PROGRESS: the controller is
// Manual) and returns its id.
func (e *env) deploy(svc workflow.Service) string {
	e.t.Helper()
	id, err := ecsservice.New(e.ecs).ForceDeployment(context.Background(), svc)
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

func (e *env) state() workflow.State {
	return workflow.State{SecretARN: e.appARN, Token: tok, Services: append([]workflow.Service(nil), e.services...)}
}

func (e *env) preflight() *Preflight {
	return &Preflight{Secrets: e.store, Dates: e.store, DB: e.db, ECS: ecsservice.New(e.ecs), Promotions: e.promos, Log: e.log}
}

// preflighted runs Preflight and returns its output, with the database calls it made
// forgotten.
func (e *env) preflighted() workflow.State {
	e.t.Helper()
	st, err := e.preflight().Handle(context.Background(), e.state())
	if err != nil {
		e.t.Fatalf("preflight: %v", err)
	}
	e.db.reset()
	return st
}

func (e *env) cloneUser() *CloneUser     { return NewCloneUser(e.store, e.db, e.log) }
func (e *env) setPassword() *SetPassword { return NewSetPassword(e.store, e.db, e.log) }
func (e *env) testLogin() *TestLogin     { return NewTestLogin(e.store, e.db, e.log) }
func (e *env) checkReplicas() *CheckReplicas {
	return &CheckReplicas{Secrets: e.store, DB: e.db, Log: e.log}
}
func (e *env) redeploy() *Redeploy { return &Redeploy{ECS: ecsservice.New(e.ecs), Log: e.log} }
func (e *env) checkRollout(max int) *CheckRollout {
	return &CheckRollout{ECS: ecsservice.New(e.ecs), MaxChecks: max, Log: e.log}
}

// scanForSecrets fails the test if a password appears in the logs (invariant 5).
func (e *env) scanForSecrets() {
	logs := e.logs.String()
	for _, s := range []string{currentPW, pendingPW, adminPW, otherPW} {
		if strings.Contains(logs, s) {
			e.t.Errorf("a password (%d characters) leaked into the logs", len(s))
		}
	}
}

// fakePromotions is the promotionLookup: when the execution named after a version left
// Promote.
type fakePromotions struct {
	mu    sync.Mutex
	at    time.Time
	found bool
	err   error
	asked []string
}

func (p *fakePromotions) PromotedAt(_ context.Context, version string) (time.Time, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.asked = append(p.asked, version)
	return p.at, p.found, p.err
}

// dbCall is one call of the database fake. It holds user names and hosts, never a password.
type dbCall struct {
	Op   string
	Host string
	As   string // the user who logs in: the app user for Login, the admin otherwise
	User string // the role the call is about (Sessions, CloneUser, SetPassword)
	Arg  string // the LSN for CaughtUp, the pending user for CloneUser/CheckParity
}

// fakeDB is a hand-written PostgreSQL stand-in for the step handlers (the SQL itself is
// tested in adapters/postgres): one password per role, shared by the primary and replicas,
// with per-host refusals, session counts and replay lag.
type fakeDB struct {
	mu       sync.Mutex
	calls    []dbCall
	valid    map[string]workflow.Password // role → password that logs in
	reject   map[string]bool              // "role@host" → refused whatever the password
	sessions map[string]int               // host → sessions of the role asked about
	lagging  map[string]bool              // host → has not replayed the LSN
	expiry   map[string]time.Time         // role → VALID UNTIL set by RetirePassword
	lsn      string
	cloneErr error
	parity   error
	setErr   error
}

func newFakeDB() *fakeDB {
	return &fakeDB{valid: map[string]workflow.Password{}, reject: map[string]bool{}, sessions: map[string]int{}, lagging: map[string]bool{}, expiry: map[string]time.Time{}, lsn: "0/3000148"}
}

func (d *fakeDB) record(c dbCall) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, c)
}

func (d *fakeDB) reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = nil
}

func (d *fakeDB) callLog() []dbCall {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]dbCall(nil), d.calls...)
}

// ops returns "Op host user" for each call, for compact comparisons.
func (d *fakeDB) ops() []string {
	var out []string
	for _, c := range d.callLog() {
		out = append(out, strings.TrimSpace(c.Op+" "+c.Host+" "+c.User))
	}
	return out
}

// mutations returns the calls that change a role.
func (d *fakeDB) mutations() []dbCall {
	var out []dbCall
	for _, c := range d.callLog() {
		if c.Op == "CloneUser" || c.Op == "SetPassword" || c.Op == "RetirePassword" {
			out = append(out, c)
		}
	}
	return out
}

// checkAdmin makes sure admin operations use the admin credentials, in the app database.
func (d *fakeDB) checkAdmin(admin workflow.Target) error {
	if admin.User != "dbadmin" || admin.Password.Reveal() != adminPW || admin.DBName != "app" {
		return &workflow.CredentialRejected{User: admin.User, Host: admin.Endpoint.Host, Reason: "not the admin credentials in the app database"}
	}
	return nil
}

// checkReadLogin: read-only checks use the admin on the primary and the AWSCURRENT app login
// on replicas, whose hosts the app secret names: the admin password must never go there.
func (d *fakeDB) checkReadLogin(login workflow.Target) error {
	if login.Endpoint.Host == primaryHost {
		return d.checkAdmin(login)
	}
	if login.User == "dbadmin" || login.Password.Reveal() == adminPW {
		return fmt.Errorf("the admin credentials were sent to %s, a host the app secret names", login.Endpoint.Host)
	}
	d.mu.Lock()
	pw, ok := d.valid[login.User]
	d.mu.Unlock()
	if !ok || !pw.Equal(login.Password) || login.DBName != "app" {
		return &workflow.CredentialRejected{User: login.User, Host: login.Endpoint.Host, Reason: "not a valid app login in the app database"}
	}
	return nil
}

func (d *fakeDB) Login(_ context.Context, s workflow.Target) error {
	ep := s.Endpoint
	d.record(dbCall{Op: "Login", Host: ep.Host, As: s.User, User: s.User})
	d.mu.Lock()
	defer d.mu.Unlock()
	if pw, ok := d.valid[s.User]; !ok || !pw.Equal(s.Password) || d.reject[s.User+"@"+ep.Host] {
		return &workflow.CredentialRejected{User: s.User, Host: ep.String(), Reason: "password authentication failed"}
	}
	return nil
}

func (d *fakeDB) Sessions(_ context.Context, admin workflow.Target, user string) (int, error) {
	d.record(dbCall{Op: "Sessions", Host: admin.Endpoint.Host, As: admin.User, User: user})
	if err := d.checkReadLogin(admin); err != nil {
		return 0, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sessions[admin.Endpoint.Host], nil
}

func (d *fakeDB) CloneUser(_ context.Context, admin workflow.Target, active, pending string) error {
	d.record(dbCall{Op: "CloneUser", Host: admin.Endpoint.Host, As: admin.User, User: pending, Arg: active})
	if err := d.checkAdmin(admin); err != nil {
		return err
	}
	return d.cloneErr
}

func (d *fakeDB) CheckParity(_ context.Context, admin workflow.Target, active, pending string) error {
	d.record(dbCall{Op: "CheckParity", Host: admin.Endpoint.Host, As: admin.User, User: pending, Arg: active})
	if err := d.checkAdmin(admin); err != nil {
		return err
	}
	return d.parity
}

func (d *fakeDB) SetPassword(_ context.Context, admin workflow.Target, user string, pw workflow.Password) (string, bool, error) {
	d.record(dbCall{Op: "SetPassword", Host: admin.Endpoint.Host, As: admin.User, User: user})
	if err := d.checkAdmin(admin); err != nil {
		return "", false, err
	}
	if d.setErr != nil {
		return "", false, d.setErr
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	changed := !d.valid[user].Equal(pw)
	d.valid[user] = pw
	return d.lsn, changed, nil
}

func (d *fakeDB) CaughtUp(_ context.Context, admin workflow.Target, lsn string) error {
	d.record(dbCall{Op: "CaughtUp", Host: admin.Endpoint.Host, As: admin.User, Arg: lsn})
	if err := d.checkReadLogin(admin); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lagging[admin.Endpoint.Host] {
		return &workflow.ReplicaNotReady{Replica: admin.Endpoint.Host, Reason: "replayed 0/3000000, want " + lsn}
	}
	return nil
}

// RetirePassword expires user's password grace after pendingAt (the fake has no clock) while
// pw still logs in, keeping an earlier expiry, like tasks/postgres.
func (d *fakeDB) RetirePassword(_ context.Context, admin workflow.Target, user string, pw workflow.Password, grace time.Duration) (time.Time, string, error) {
	d.record(dbCall{Op: "RetirePassword", Host: admin.Endpoint.Host, As: admin.User, User: user})
	if err := d.checkAdmin(admin); err != nil {
		return time.Time{}, "", err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if cur, ok := d.valid[user]; !ok || !cur.Equal(pw) {
		return time.Time{}, "the password no longer logs in: it was changed since", nil
	}
	until := pendingAt.Add(grace)
	if old, ok := d.expiry[user]; ok && !old.After(until) {
		return old, "the password already expires by then", nil
	}
	d.expiry[user] = until
	return until, "", nil
}

// namedType returns the workflow error name of err's own type, "" for any other type. It
// is a type switch on the value itself, not errors.As: aws-lambda-go reports the type of
// the returned value, so a wrapped named error would reach Step Functions as "wrapError".
func namedType(err error) string {
	switch err.(type) {
	case *workflow.InvalidSecret:
		return "InvalidSecret"
	case *workflow.InvalidRoleName:
		return "InvalidRoleName"
	case *workflow.ActiveUserMissing:
		return "ActiveUserMissing"
	case *workflow.PrivilegeMismatch:
		return "PrivilegeMismatch"
	case *workflow.CredentialRejected:
		return "CredentialRejected"
	case *workflow.ReplicaNotReady:
		return "ReplicaNotReady"
	case *workflow.PendingUserInUse:
		return "PendingUserInUse"
	case *workflow.RotationSuperseded:
		return "RotationSuperseded"
	case *workflow.ServiceNotSteady:
		return "ServiceNotSteady"
	case *workflow.DeploymentFailed:
		return "DeploymentFailed"
	case *workflow.RolloutTimedOut:
		return "RolloutTimedOut"
	case *workflow.DatabaseUnavailable:
		return "DatabaseUnavailable"
	case *workflow.StepFailed:
		return "StepFailed"
	}
	return ""
}

// wantNamed fails unless err is the named workflow error want, unwrapped, and the Lambda
// runtime would report it under a name the state machine knows.
func wantNamed(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want %s, got nil", want)
	}
	if got := namedType(err); got != want {
		t.Fatalf("want *workflow.%s returned unwrapped, got %T: %v", want, err, err)
	}
	name := sfnlocal.ErrorName(err)
	if name != want || !slices.Contains(workflow.ErrorNames, name) {
		t.Fatalf("the Lambda runtime reports %q for %v; want %q, one of workflow.ErrorNames", name, err, want)
	}
}
