package secretstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/pgrotate/pgrotate/internal/testctx"
	localsecrets "github.com/pgrotate/pgrotate/local/secrets"
	"github.com/pgrotate/pgrotate/workflow"
)

var (
	_ API = (*secretsmanager.Client)(nil)
	_ API = (*localsecrets.Store)(nil)
)

// Secret values used below; no error or output may contain them.
const (
	appPassword   = "app-Pa55word-value"
	adminPassword = "admin-Pa55word-value"
	rotationToken = "f00dfeed-0000-4000-8000-123456789abc"
)

func tok(i int) string { return fmt.Sprintf("a0000000-0000-4000-8000-%012d", i) }

type fixture struct {
	sm       *localsecrets.Store
	store    *Store
	appARN   string
	adminARN string
	app      workflow.AppSecret
}

// newFixture creates an admin secret and an app secret whose version tok(1) is AWSCURRENT.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	sm := localsecrets.New()
	f := &fixture{sm: sm, store: New(sm)}
	admin := workflow.AdminSecret{Engine: "postgres", Host: "db.local", Port: 5432, DBName: "postgres", Username: "dbadmin", Password: workflow.NewPassword(adminPassword)}
	f.adminARN = f.create(t, "admin", admin.SecretString, tok(100))
	f.app = workflow.AppSecret{
		Engine: "postgres", Host: "db.local", Port: 5432, DBName: "app", Username: "app_user",
		Password: workflow.NewPassword(appPassword), MasterARN: f.adminARN,
		Replicas: []workflow.Endpoint{{Host: "replica.local", Port: 5433}},
	}
	f.appARN = f.create(t, "app", f.app.SecretString, tok(1))
	return f
}

func (f *fixture) create(t *testing.T, name string, value func() (string, error), token string) string {
	t.Helper()
	str, err := value()
	if err != nil {
		t.Fatal(err)
	}
	out, err := f.sm.CreateSecret(testctx.Context(t), &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(str), ClientRequestToken: aws.String(token)})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return aws.ToString(out.ARN)
}

// putRaw writes a version with any SecretString, bypassing validation.
func (f *fixture) putRaw(t *testing.T, token, value string, stages ...string) {
	t.Helper()
	if _, err := f.sm.PutSecretValue(testctx.Context(t), &secretsmanager.PutSecretValueInput{
		SecretId: aws.String(f.appARN), ClientRequestToken: aws.String(token), SecretString: aws.String(value), VersionStages: stages,
	}); err != nil {
		t.Fatal(err)
	}
}

// noSecretIn fails if err's message carries a secret value.
func noSecretIn(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, v := range []string{appPassword, adminPassword, rotationToken, "new-Pa55word"} {
		if strings.Contains(err.Error(), v) {
			t.Errorf("error carries a secret value: %v", err)
		}
	}
}

func TestAppSecret(t *testing.T) {
	f := newFixture(t)
	f.putRaw(t, tok(2), `{"engine":"postgres","host":"db.local","port":5432,"dbname":"app","username":"app_user","password":"`+appPassword+`","masterarn":"x","hostname":"typo"}`, "BROKEN")
	f.putRaw(t, tok(3), `{"engine":"mysql","host":"db.local","port":5432,"dbname":"app","username":"app_user","password":"`+appPassword+`","masterarn":"arn:x"}`, "MYSQL")
	f.putRaw(t, tok(4), `not json `+appPassword, "GARBAGE")
	if _, err := f.sm.PutSecretValue(testctx.Context(t), &secretsmanager.PutSecretValueInput{
		SecretId: aws.String(f.appARN), ClientRequestToken: aws.String(tok(5)), SecretBinary: []byte(appPassword), VersionStages: []string{"BINARY"},
	}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name        string
		version     string
		wantInvalid bool
		wantMissing bool
	}{
		{name: "current version", version: tok(1)},
		{name: "unknown field", version: tok(2), wantInvalid: true},
		{name: "other engine", version: tok(3), wantInvalid: true},
		{name: "not JSON", version: tok(4), wantInvalid: true},
		{name: "binary", version: tok(5), wantInvalid: true},
		{name: "unknown version", version: tok(9), wantMissing: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := f.store.AppSecret(testctx.Context(t), f.appARN, tc.version)
			noSecretIn(t, err)
			var invalid *workflow.InvalidSecret
			if gotInvalid := errors.As(err, &invalid); gotInvalid != tc.wantInvalid {
				t.Fatalf("error %v: InvalidSecret = %v, want %v", err, gotInvalid, tc.wantInvalid)
			}
			if IsNotFound(err) != tc.wantMissing {
				t.Fatalf("error %v: IsNotFound = %v, want %v", err, IsNotFound(err), tc.wantMissing)
			}
			if err != nil {
				if !strings.Contains(err.Error(), "read app secret "+f.appARN+" version "+tc.version) {
					t.Errorf("error %q does not name the action", err)
				}
				return
			}
			if got.Username != "app_user" || !got.Password.Equal(workflow.NewPassword(appPassword)) || len(got.Replicas) != 1 || got.MasterARN != f.adminARN {
				t.Errorf("AppSecret = %+v", got)
			}
		})
	}
	if _, err := f.store.AppSecret(testctx.Context(t), f.appARN, ""); err == nil {
		t.Error("empty version id accepted")
	}
	_, err := f.store.AppSecret(testctx.Context(t), "arn:aws:secretsmanager:local:000000000000:secret:nope-AbCdEf", tok(1))
	if !IsNotFound(err) {
		t.Errorf("unknown secret: %v, want not found", err)
	}
}

func TestAppSecretAt(t *testing.T) {
	f := newFixture(t)
	pending := f.app.Pending(workflow.NewPassword("new-Pa55word"))
	if err := f.store.PutPending(testctx.Context(t), f.appARN, tok(2), pending, workflow.Password{}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		stage, wantID, wantUser string
		wantMissing             bool
	}{
		{stage: workflow.StageCurrent, wantID: tok(1), wantUser: "app_user"},
		{stage: workflow.StagePending, wantID: tok(2), wantUser: "app_user_clone"},
		{stage: workflow.StagePrevious, wantMissing: true},
	}
	for _, tc := range tests {
		t.Run(tc.stage, func(t *testing.T) {
			got, id, err := f.store.AppSecretAt(testctx.Context(t), f.appARN, tc.stage)
			noSecretIn(t, err)
			if IsNotFound(err) != tc.wantMissing {
				t.Fatalf("error = %v, want not found %v", err, tc.wantMissing)
			}
			if err != nil {
				if !strings.Contains(err.Error(), "at "+tc.stage) {
					t.Errorf("error %q does not name the stage", err)
				}
				return
			}
			if id != tc.wantID || got.Username != tc.wantUser {
				t.Errorf("got %s %s, want %s %s", id, got.Username, tc.wantID, tc.wantUser)
			}
		})
	}
	if _, _, err := f.store.AppSecretAt(testctx.Context(t), f.appARN, ""); err == nil {
		t.Error("empty stage accepted")
	}
}

func TestAdminSecret(t *testing.T) {
	f := newFixture(t)
	got, err := f.store.AdminSecret(testctx.Context(t), f.adminARN)
	if err != nil {
		t.Fatal(err)
	}
	if got.Username != "dbadmin" || !got.Password.Equal(workflow.NewPassword(adminPassword)) {
		t.Errorf("AdminSecret = %+v", got)
	}

	// An app-shaped value in the admin secret is refused (unknown field "masterarn").
	str, _ := f.app.SecretString()
	if _, err := f.sm.PutSecretValue(testctx.Context(t), &secretsmanager.PutSecretValueInput{
		SecretId: aws.String(f.adminARN), ClientRequestToken: aws.String(tok(101)), SecretString: aws.String(str),
	}); err != nil {
		t.Fatal(err)
	}
	_, err = f.store.AdminSecret(testctx.Context(t), f.adminARN)
	var invalid *workflow.InvalidSecret
	if !errors.As(err, &invalid) || invalid.Secret != "admin" {
		t.Errorf("error = %v, want an InvalidSecret for the admin secret", err)
	}
	noSecretIn(t, err)

	_, err = f.store.AdminSecret(testctx.Context(t), "missing")
	if !IsNotFound(err) || !strings.Contains(err.Error(), "read admin secret missing") {
		t.Errorf("error = %v, want a not-found naming the action", err)
	}
}

func TestStages(t *testing.T) {
	f := newFixture(t)
	v, err := f.store.Stages(testctx.Context(t), f.appARN)
	if err != nil {
		t.Fatal(err)
	}
	if v.Current() != tok(1) || v.Pending() != "" || v.Previous() != "" {
		t.Errorf("before rotation: current %q pending %q previous %q", v.Current(), v.Pending(), v.Previous())
	}
	if err := f.store.PutPending(testctx.Context(t), f.appARN, tok(2), f.app.Pending(workflow.NewPassword("new-Pa55word")), workflow.Password{}); err != nil {
		t.Fatal(err)
	}
	if err := f.store.MoveCurrent(testctx.Context(t), f.appARN, tok(2), tok(1)); err != nil {
		t.Fatal(err)
	}
	v, err = f.store.Stages(testctx.Context(t), f.appARN)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id, stage string
		want      bool
	}{
		{tok(2), workflow.StageCurrent, true},
		{tok(2), workflow.StagePending, true},
		{tok(1), workflow.StagePrevious, true},
		{tok(1), workflow.StageCurrent, false},
		{tok(9), workflow.StageCurrent, false},
	}
	for _, tc := range tests {
		if got := v.Has(tc.id, tc.stage); got != tc.want {
			t.Errorf("HasStage(%s, %s) = %v, want %v", tc.id, tc.stage, got, tc.want)
		}
	}
	if v.Current() != tok(2) || v.Pending() != tok(2) || v.Previous() != tok(1) || v.With("NONE") != "" {
		t.Errorf("after rotation: current %q pending %q previous %q", v.Current(), v.Pending(), v.Previous())
	}
	if _, err := f.store.Stages(testctx.Context(t), "missing"); !IsNotFound(err) {
		t.Errorf("unknown secret: %v", err)
	}
}

func TestPutPending(t *testing.T) {
	newPW := workflow.NewPassword("new-Pa55word")
	tests := []struct {
		name          string
		before        func(t *testing.T, f *fixture)
		password      workflow.Password
		rotationToken workflow.Password
		wantErr       bool
	}{
		{name: "first write", password: newPW},
		{name: "with a RotationToken", password: newPW, rotationToken: workflow.NewPassword(rotationToken)},
		{
			name: "repeated write with the same value",
			before: func(t *testing.T, f *fixture) {
				if err := f.store.PutPending(testctx.Context(t), f.appARN, tok(2), f.app.Pending(newPW), workflow.Password{}); err != nil {
					t.Fatal(err)
				}
			},
			password: newPW,
		},
		{
			name: "repeated write with another value",
			before: func(t *testing.T, f *fixture) {
				if err := f.store.PutPending(testctx.Context(t), f.appARN, tok(2), f.app.Pending(workflow.NewPassword("other-Pa55word")), workflow.Password{}); err != nil {
					t.Fatal(err)
				}
			},
			password: newPW, wantErr: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if tc.before != nil {
				tc.before(t, f)
			}
			err := f.store.PutPending(testctx.Context(t), f.appARN, tok(2), f.app.Pending(tc.password), tc.rotationToken)
			noSecretIn(t, err)
			if tc.wantErr {
				var exists *types.ResourceExistsException
				if !errors.As(err, &exists) || !strings.Contains(err.Error(), "put pending version "+tok(2)) {
					t.Fatalf("error = %v, want ResourceExistsException naming the action", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			calls := f.sm.CallsOf(localsecrets.OpPutSecretValue)
			last := calls[len(calls)-1]
			if last.RotationToken != !tc.rotationToken.IsZero() || last.VersionID != tok(2) || len(last.Stages) != 1 || last.Stages[0] != workflow.StagePending {
				t.Errorf("PutSecretValue call = %+v", last)
			}
			got, id, err := f.store.AppSecretAt(testctx.Context(t), f.appARN, workflow.StagePending)
			if err != nil {
				t.Fatal(err)
			}
			want := f.app.Pending(tc.password)
			if id != tok(2) || got.Username != want.Username || !got.Password.Equal(want.Password) || got.Host != want.Host || len(got.Replicas) != 1 {
				t.Errorf("pending = %s %+v", id, got)
			}
			v, err := f.store.Stages(testctx.Context(t), f.appARN)
			if err != nil {
				t.Fatal(err)
			}
			if v.Current() != tok(1) {
				t.Errorf("AWSCURRENT moved to %s", v.Current())
			}
		})
	}
	f := newFixture(t)
	if err := f.store.PutPending(testctx.Context(t), f.appARN, "", f.app, workflow.Password{}); err == nil {
		t.Error("empty token accepted")
	}
}

func TestMoveCurrent(t *testing.T) {
	tests := []struct {
		name     string
		to, from string
		wantErr  bool
		wantCur  string
		wantPrev string
	}{
		{name: "from the holder", to: tok(2), from: tok(1), wantCur: tok(2), wantPrev: tok(1)},
		{name: "already current", to: tok(1), from: tok(1), wantCur: tok(1)},
		{name: "without naming the holder", to: tok(2), wantErr: true, wantCur: tok(1)},
		{name: "from a version that is not current", to: tok(2), from: tok(2), wantErr: true, wantCur: tok(1)},
		{name: "to an unknown version", to: tok(9), from: tok(1), wantErr: true, wantCur: tok(1)},
		{name: "to nothing", to: "", from: tok(1), wantErr: true, wantCur: tok(1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if err := f.store.PutPending(testctx.Context(t), f.appARN, tok(2), f.app.Pending(workflow.NewPassword("new-Pa55word")), workflow.Password{}); err != nil {
				t.Fatal(err)
			}
			err := f.store.MoveCurrent(testctx.Context(t), f.appARN, tc.to, tc.from)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error = %v, want error %v", err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "move AWSCURRENT of "+f.appARN) {
				t.Errorf("error %q does not name the action", err)
			}
			v, err := f.store.Stages(testctx.Context(t), f.appARN)
			if err != nil {
				t.Fatal(err)
			}
			if v.Current() != tc.wantCur || v.Previous() != tc.wantPrev {
				t.Errorf("current %s previous %s, want %s %s", v.Current(), v.Previous(), tc.wantCur, tc.wantPrev)
			}
		})
	}
}

func TestRandomPassword(t *testing.T) {
	f := newFixture(t)
	const exclude = ":/@\"'\\ "
	for _, n := range []int{4, 32, 100} {
		pw, err := f.store.RandomPassword(testctx.Context(t), n, exclude)
		if err != nil {
			t.Fatal(err)
		}
		if got := pw.Reveal(); len(got) != n || strings.ContainsAny(got, exclude) {
			t.Errorf("length %d password: %d characters, excluded ones present: %v", n, len(got), strings.ContainsAny(got, exclude))
		}
		if fmt.Sprint(pw) != workflow.Redacted {
			t.Error("password prints its value")
		}
	}
	_, err := f.store.RandomPassword(testctx.Context(t), 0, "")
	var invalid *types.InvalidParameterException
	if !errors.As(err, &invalid) || !strings.Contains(err.Error(), "generate a 0-character password") {
		t.Errorf("zero length: %v", err)
	}
	f.sm.FailNext(localsecrets.OpGetRandomPassword, &types.InternalServiceError{Message: aws.String("boom")})
	_, err = f.store.RandomPassword(testctx.Context(t), 32, "")
	var internal *types.InternalServiceError
	if !errors.As(err, &internal) {
		t.Errorf("injected error: %v", err)
	}
}

// shortPasswords answers GetRandomPassword with fewer characters than asked.
type shortPasswords struct{ API }

func (shortPasswords) GetRandomPassword(context.Context, *secretsmanager.GetRandomPasswordInput, ...func(*secretsmanager.Options)) (*secretsmanager.GetRandomPasswordOutput, error) {
	return &secretsmanager.GetRandomPasswordOutput{RandomPassword: aws.String("short")}, nil
}

func TestRandomPasswordLengthChecked(t *testing.T) {
	s := New(shortPasswords{})
	_, err := s.RandomPassword(testctx.Context(t), 32, "")
	if err == nil || !strings.Contains(err.Error(), "got 5 characters") || strings.Contains(err.Error(), "short") {
		t.Errorf("error = %v, want a length mismatch", err)
	}
}

func TestIsNotFound(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("other"), false},
		{&types.ResourceNotFoundException{}, true},
		{fmt.Errorf("read: %w", &types.ResourceNotFoundException{}), true},
		{&types.InvalidParameterException{}, false},
	}
	for _, tc := range tests {
		if got := IsNotFound(tc.err); got != tc.want {
			t.Errorf("IsNotFound(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestVersionStagesAndCreated(t *testing.T) {
	created := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	now := created
	sm := localsecrets.New(localsecrets.WithClock(func() time.Time { return now }))
	s := New(sm)
	out, err := sm.CreateSecret(testctx.Context(t), &secretsmanager.CreateSecretInput{Name: aws.String("app"), SecretString: aws.String("{}"), ClientRequestToken: aws.String(tok(1))})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(out.ARN)
	now = now.Add(time.Hour)
	if _, err := sm.PutSecretValue(testctx.Context(t), &secretsmanager.PutSecretValueInput{
		SecretId: aws.String(arn), ClientRequestToken: aws.String(tok(2)), SecretString: aws.String("{}"), VersionStages: []string{workflow.StagePending},
	}); err != nil {
		t.Fatal(err)
	}

	m, err := s.VersionStages(testctx.Context(t), arn)
	if err != nil {
		t.Fatal(err)
	}
	v := workflow.Versions(m)
	if v.With(workflow.StageCurrent) != tok(1) || !v.Has(tok(2), workflow.StagePending) || len(m) != 2 {
		t.Errorf("VersionStages = %v", m)
	}

	tests := []struct {
		version     string
		want        time.Time
		wantMissing bool
	}{
		{version: tok(1), want: created},
		{version: tok(2), want: created.Add(time.Hour)},
		{version: tok(3), wantMissing: true},
	}
	for _, tc := range tests {
		got, err := s.VersionCreated(testctx.Context(t), arn, tc.version)
		if s.IsNotFound(err) != tc.wantMissing {
			t.Fatalf("VersionCreated(%s): %v, want not found %v", tc.version, err, tc.wantMissing)
		}
		if err == nil && !got.Equal(tc.want) {
			t.Errorf("VersionCreated(%s) = %v, want %v", tc.version, got, tc.want)
		}
	}
	if _, err := s.VersionCreated(testctx.Context(t), arn, ""); err == nil {
		t.Error("empty version id accepted")
	}
}
