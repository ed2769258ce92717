package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/cfn"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/pgrotate/pgrotate/workflow"
)

// fakeLogins is the bootstrap's database: EnsureLogin records the user's password, and each
// replica accepts that login once its queue of failures is used up.
type fakeLogins struct {
	mu        sync.Mutex
	calls     []dbCall
	users     map[string]workflow.Password
	lsn       string
	ensureErr error
	replica   map[string][]error // host → errors CaughtUp returns first, in order
	deadline  time.Time          // of the context EnsureLogin got
	adopt     []bool             // the adopt argument of each EnsureLogin
	unmanaged []string           // existing roles EnsureLogin reports adopted when asked to
}

func newFakeLogins() *fakeLogins {
	return &fakeLogins{users: map[string]workflow.Password{}, lsn: "0/5000060", replica: map[string][]error{}}
}

func (d *fakeLogins) EnsureLogin(ctx context.Context, admin workflow.Target, user string, pw workflow.Password, adopt bool) (string, []string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, dbCall{Op: "EnsureLogin", Host: admin.Endpoint.Host, As: admin.User, User: user})
	d.deadline, _ = ctx.Deadline()
	d.adopt = append(d.adopt, adopt)
	if admin.Endpoint.Host != primaryHost || admin.User != "dbadmin" || admin.Password.Reveal() != adminPW || admin.DBName != "app" {
		return "", nil, fmt.Errorf("EnsureLogin got the wrong admin login: %s@%s/%s", admin.User, admin.Endpoint.Host, admin.DBName)
	}
	if d.ensureErr != nil {
		return "", nil, d.ensureErr
	}
	d.users[user] = pw
	var adopted []string
	if adopt {
		adopted = d.unmanaged
	}
	return d.lsn, adopted, nil
}

func (d *fakeLogins) CaughtUp(_ context.Context, login workflow.Target, lsn string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, dbCall{Op: "CaughtUp", Host: login.Endpoint.Host, As: login.User, Arg: lsn})
	if login.Endpoint.Host == primaryHost || login.User == "dbadmin" || login.Password.Reveal() == adminPW {
		return fmt.Errorf("the admin login was sent to replica %s", login.Endpoint.Host)
	}
	if pw, ok := d.users[login.User]; !ok || !pw.Equal(login.Password) || login.DBName != "app" || lsn != d.lsn {
		return fmt.Errorf("CaughtUp on %s as %s: not the app login made by EnsureLogin, or another LSN", login.Endpoint.Host, login.User)
	}
	if q := d.replica[login.Endpoint.Host]; len(q) > 0 {
		d.replica[login.Endpoint.Host] = q[1:]
		return q[0]
	}
	return nil
}

func (d *fakeLogins) ops() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, c := range d.calls {
		out = append(out, c.Op+" "+c.Host+" "+c.As+" "+c.User)
	}
	return out
}

// noSecrets fails the test on any read: Delete and bad requests must not read secrets.
type noSecrets struct{ t *testing.T }

func (s noSecrets) AppSecretAt(context.Context, string, string) (workflow.AppSecret, string, error) {
	s.t.Error("the app secret was read")
	return workflow.AppSecret{}, "", errors.New("no")
}

func (s noSecrets) AdminSecret(context.Context, string) (workflow.AdminSecret, error) {
	s.t.Error("the admin secret was read")
	return workflow.AdminSecret{}, errors.New("no")
}

func (e *env) bootstrap(db *fakeLogins) *Bootstrap {
	return &Bootstrap{Secrets: e.store, DB: db, Log: e.log, Poll: time.Millisecond, ReplicaTimeout: 2 * time.Second}
}

func (e *env) event(typ cfn.RequestType, physicalID string) cfn.Event {
	return cfn.Event{
		RequestType: typ, RequestID: "req-1", LogicalResourceID: "Bootstrap", StackID: "arn:aws:cloudformation:eu-west-1:123456789012:stack/s/1",
		ResourceType: "Custom::PgrotateBootstrap", PhysicalResourceID: physicalID,
		ResourceProperties: map[string]interface{}{"ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:b", PropAppSecretARN: e.appARN},
	}
}

// noSecretIn fails the test if err's text holds a password.
func noSecretIn(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range []string{currentPW, pendingPW, adminPW, otherPW} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("the error sent to CloudFormation holds a password: %d characters of it", len(s))
		}
	}
}

func TestBootstrapCreateAndUpdate(t *testing.T) {
	e := newEnv(t)
	db := newFakeLogins()
	h := e.bootstrap(db)

	id, data, err := h.Handle(context.Background(), e.event(cfn.RequestCreate, ""))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if want := e.appARN + "/app_user"; id != want {
		t.Errorf("physical id = %q, want %q", id, want)
	}
	if data["Username"] != "app_user" || len(data) != 1 {
		t.Errorf("data = %v, want only the user name", data)
	}
	if !db.users["app_user"].Equal(workflow.NewPassword(currentPW)) || len(db.users) != 1 {
		t.Errorf("EnsureLogin did not get AWSCURRENT's user and password: %v", slices.Collect(maps.Keys(db.users)))
	}
	// The user on the primary as the admin, then each replica as the app user (never the admin).
	want := []string{"EnsureLogin " + primaryHost + " dbadmin app_user", "CaughtUp " + replica1 + " app_user ", "CaughtUp " + replica2 + " app_user "}
	if got := db.ops(); !slices.Equal(got, want) {
		t.Errorf("database calls = %q, want %q", got, want)
	}

	// Update runs it again, with the same id.
	id2, _, err := h.Handle(context.Background(), e.event(cfn.RequestUpdate, id))
	if err != nil || id2 != id {
		t.Fatalf("Update = %q, %v; want %q, nil", id2, err, id)
	}
	if n := strings.Count(strings.Join(db.ops(), "\n"), "EnsureLogin"); n != 2 {
		t.Errorf("EnsureLogin ran %d times, want 2", n)
	}

	// After a rotation AWSCURRENT is the clone: an Update makes sure of it, and the id stays.
	e.promote(tok)
	id3, data, err := h.Handle(context.Background(), e.event(cfn.RequestUpdate, id))
	if err != nil || id3 != id || data["Username"] != "app_user_clone" {
		t.Fatalf("Update after a rotation = %q, %v, %v; want %q, app_user_clone, nil", id3, data, err, id)
	}
	if !db.users["app_user_clone"].Equal(workflow.NewPassword(pendingPW)) {
		t.Error("EnsureLogin did not get the promoted version's user and password")
	}
}

func TestBootstrapDeleteLeavesTheUser(t *testing.T) {
	e := newEnv(t)
	db := newFakeLogins()
	h := &Bootstrap{Secrets: noSecrets{t}, DB: db, Log: e.log}
	id := e.appARN + "/app_user"
	got, data, err := h.Handle(context.Background(), e.event(cfn.RequestDelete, id))
	if err != nil || got != id || data != nil {
		t.Fatalf("Delete = %q, %v, %v; want %q, nil, nil", got, data, err, id)
	}
	if ops := db.ops(); len(ops) != 0 {
		t.Errorf("Delete touched the database: %v", ops)
	}
}

func TestBootstrapWaitsForReplicas(t *testing.T) {
	e := newEnv(t)
	db := newFakeLogins()
	// replica1 has not replayed the role yet (the login is refused), then lags; replica2 lags.
	db.replica[replica1] = []error{
		&workflow.CredentialRejected{User: "app_user", Host: replica1, Reason: "role does not exist"},
		&workflow.ReplicaNotReady{Replica: replica1, Reason: "replayed 0/5000000"},
	}
	db.replica[replica2] = []error{&workflow.ReplicaNotReady{Replica: replica2, Reason: "replayed 0/5000000"}}
	if _, _, err := e.bootstrap(db).Handle(context.Background(), e.event(cfn.RequestCreate, "")); err != nil {
		t.Fatalf("Create: %v", err)
	}
	var checks []string
	for _, op := range db.ops() {
		if strings.HasPrefix(op, "CaughtUp") {
			checks = append(checks, strings.Fields(op)[1])
		}
	}
	if want := []string{replica1, replica1, replica1, replica2, replica2}; !slices.Equal(checks, want) {
		t.Errorf("replica checks %v, want %v", checks, want)
	}
}

func TestBootstrapFailures(t *testing.T) {
	lagForever := func(e *env, db *fakeLogins, h *Bootstrap) {
		h.ReplicaTimeout = 50 * time.Millisecond
		for i := 0; i < 1000; i++ {
			db.replica[replica2] = append(db.replica[replica2], &workflow.ReplicaNotReady{Replica: replica2, Reason: "paused"})
		}
	}
	tests := []struct {
		name      string
		setup     func(e *env, db *fakeLogins, h *Bootstrap)
		event     func(e *env) cfn.Event
		want      string // in the error
		noEnsure  bool   // EnsureLogin must not have run
		noSecrets bool   // no secret may be read
	}{
		{name: "no AppSecretArn", noEnsure: true, noSecrets: true, want: "no AppSecretArn property",
			event: func(e *env) cfn.Event {
				ev := e.event(cfn.RequestCreate, "")
				delete(ev.ResourceProperties, PropAppSecretARN)
				return ev
			}},
		{name: "AppSecretArn not an ARN", noEnsure: true, noSecrets: true, want: "is not a secret ARN",
			event: func(e *env) cfn.Event {
				ev := e.event(cfn.RequestCreate, "")
				ev.ResourceProperties[PropAppSecretARN] = 42
				return ev
			}},
		{name: "AdoptExistingUser not a boolean", noEnsure: true, noSecrets: true, want: "property AdoptExistingUser must be true or false",
			event: func(e *env) cfn.Event {
				ev := e.event(cfn.RequestCreate, "")
				ev.ResourceProperties[PropAdoptExistingUser] = "yes please"
				return ev
			}},
		{name: "unknown request type", noEnsure: true, noSecrets: true, want: `unknown request type "Replace"`,
			event: func(e *env) cfn.Event { return e.event("Replace", "") }},
		{name: "app secret missing", noEnsure: true, want: "bootstrap: read app secret",
			event: func(e *env) cfn.Event {
				ev := e.event(cfn.RequestCreate, "")
				ev.ResourceProperties[PropAppSecretARN] = e.appARN + "-gone"
				return ev
			}},
		{name: "admin secret on another host", noEnsure: true, want: "differs from the admin secret's",
			setup: func(e *env, _ *fakeLogins, _ *Bootstrap) {
				e.putAdmin(e.admin("evil.example.com").str(e.t))
			}},
		{name: "malformed admin secret", noEnsure: true, want: "read the admin secret named by",
			setup: func(e *env, _ *fakeLogins, _ *Bootstrap) { e.putAdmin(`{"engine":"postgres"}`) }},
		{name: "database refuses", want: "create the app user app_user on " + primaryHost + ":5432: permission denied to create role",
			setup: func(_ *env, db *fakeLogins, _ *Bootstrap) {
				db.ensureErr = errors.New("permission denied to create role")
			}},
		{name: "database error quoting a password is withheld", want: "withheld because it quoted a secret value",
			setup: func(_ *env, db *fakeLogins, _ *Bootstrap) {
				db.ensureErr = errors.New("syntax error at or near \"" + currentPW + "\"")
			}},
		{name: "admin password quoted is withheld", want: "withheld because it quoted a secret value",
			setup: func(_ *env, db *fakeLogins, _ *Bootstrap) { db.ensureErr = errors.New("bad login dbadmin:" + adminPW) }},
		{name: "replica never catches up", want: "replica " + replica2 + ":5433 did not accept the app user app_user within 50ms: ",
			setup: lagForever},
		{name: "replica unreachable", want: "check the app user app_user on replica " + replica1 + ":5432: dial tcp: connection refused",
			setup: func(_ *env, db *fakeLogins, _ *Bootstrap) {
				db.replica[replica1] = []error{errors.New("dial tcp: connection refused")}
			}},
		{name: "long error is cut", want: " … (cut)",
			setup: func(_ *env, db *fakeLogins, _ *Bootstrap) { db.ensureErr = errors.New(strings.Repeat("é", 2000)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			db := newFakeLogins()
			h := e.bootstrap(db)
			if tt.noSecrets {
				h.Secrets = noSecrets{t}
			}
			if tt.setup != nil {
				tt.setup(e, db, h)
			}
			ev := e.event(cfn.RequestCreate, "")
			if tt.event != nil {
				ev = tt.event(e)
			}
			id, data, err := h.Handle(context.Background(), ev)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Handle = %v; want an error containing %q", err, tt.want)
			}
			if id != "" || data != nil {
				t.Errorf("a failure returned id %q and data %v; want none (LambdaWrap keeps the request's)", id, data)
			}
			if len(err.Error()) > maxReason+len(" … (cut)") {
				t.Errorf("error of %d bytes sent to CloudFormation", len(err.Error()))
			}
			noSecretIn(t, err)
			ensured := slices.ContainsFunc(db.ops(), func(op string) bool { return strings.HasPrefix(op, "EnsureLogin") })
			if tt.noEnsure && ensured {
				t.Error("EnsureLogin ran")
			}
		})
	}
}

func TestBootstrapKeepsTimeToAnswer(t *testing.T) {
	e := newEnv(t)
	db := newFakeLogins()
	h := e.bootstrap(db)
	h.ResponseMargin = 20 * time.Second
	deadline := time.Now().Add(time.Minute)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if _, _, err := h.Handle(ctx, e.event(cfn.RequestCreate, "")); err != nil {
		t.Fatal(err)
	}
	if want := deadline.Add(-20 * time.Second); !db.deadline.Equal(want) {
		t.Errorf("the database work had deadline %v, want %v (the invocation's minus the margin)", db.deadline, want)
	}
}

// TestBootstrapThroughLambdaWrap runs the handler as cmd/bootstrap does and reads what
// CloudFormation would receive at the response URL.
func TestBootstrapThroughLambdaWrap(t *testing.T) {
	var (
		mu     sync.Mutex
		bodies []cfn.Response
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var resp cfn.Response
		if r.Method != http.MethodPut || json.Unmarshal(b, &resp) != nil {
			t.Errorf("response %s %s", r.Method, b)
		}
		for _, s := range []string{currentPW, pendingPW, adminPW} {
			if strings.Contains(string(b), s) {
				t.Error("a password was sent to CloudFormation")
			}
		}
		mu.Lock()
		bodies = append(bodies, resp)
		mu.Unlock()
	}))
	defer srv.Close()

	e := newEnv(t)
	db := newFakeLogins()
	fn := cfn.LambdaWrap(e.bootstrap(db).Handle)
	send := func(ev cfn.Event) cfn.Response {
		t.Helper()
		ev.ResponseURL = srv.URL
		if reason, err := fn(context.Background(), ev); err != nil || reason != "" {
			t.Fatalf("LambdaWrap = %q, %v", reason, err)
		}
		mu.Lock()
		defer mu.Unlock()
		return bodies[len(bodies)-1]
	}

	ok := send(e.event(cfn.RequestCreate, ""))
	if ok.Status != cfn.StatusSuccess || ok.PhysicalResourceID != e.appARN+"/app_user" || ok.Data["Username"] != "app_user" || ok.RequestID != "req-1" {
		t.Errorf("Create answer = %+v", ok)
	}

	e.putAdmin(e.admin("evil.example.com").str(t))
	bad := send(e.event(cfn.RequestUpdate, ok.PhysicalResourceID))
	if bad.Status != cfn.StatusFailed || bad.PhysicalResourceID != ok.PhysicalResourceID || !strings.Contains(bad.Reason, "differs from the admin secret's") {
		t.Errorf("failed Update answer = %+v; want FAILED keeping the id, with the reason", bad)
	}

	del := send(e.event(cfn.RequestDelete, ok.PhysicalResourceID))
	if del.Status != cfn.StatusSuccess || del.PhysicalResourceID != ok.PhysicalResourceID {
		t.Errorf("Delete answer = %+v", del)
	}
}

func TestBootstrapID(t *testing.T) {
	for user, want := range map[string]string{"app_user": "arn/app_user", "app_user_clone": "arn/app_user", "x": "arn/x"} {
		if got := bootstrapID("arn", user); got != want {
			t.Errorf("bootstrapID(%q) = %q, want %q", user, got, want)
		}
	}
}

// putAdmin writes a new AWSCURRENT value of the admin secret.
func (e *env) putAdmin(value string) {
	e.t.Helper()
	in := &secretsmanager.PutSecretValueInput{SecretId: aws.String(e.adminARN), SecretString: aws.String(value)}
	if _, err := e.sm.PutSecretValue(context.Background(), in); err != nil {
		e.t.Fatalf("put admin secret: %v", err)
	}
}

// AdoptExistingUser reaches EnsureLogin (off unless set), and what it adopted is in the
// resource's data.
func TestBootstrapAdoptExistingUser(t *testing.T) {
	tests := []struct {
		name        string
		prop        any // nil: no property
		wantAdopt   bool
		wantAdopted any
	}{
		{name: "absent", prop: nil},
		{name: "false", prop: "false"},
		{name: "true string", prop: "true", wantAdopt: true, wantAdopted: "app_user,app_user_clone"},
		{name: "true boolean", prop: true, wantAdopt: true, wantAdopted: "app_user,app_user_clone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			db := newFakeLogins()
			db.unmanaged = []string{"app_user", "app_user_clone"}
			ev := e.event(cfn.RequestCreate, "")
			if tt.prop != nil {
				ev.ResourceProperties[PropAdoptExistingUser] = tt.prop
			}
			_, data, err := e.bootstrap(db).Handle(context.Background(), ev)
			if err != nil {
				t.Fatal(err)
			}
			if len(db.adopt) != 1 || db.adopt[0] != tt.wantAdopt {
				t.Errorf("EnsureLogin got adopt %v; want [%v]", db.adopt, tt.wantAdopt)
			}
			if data["Adopted"] != tt.wantAdopted {
				t.Errorf("data[Adopted] = %v; want %v", data["Adopted"], tt.wantAdopted)
			}
		})
	}
}
