package rotator

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	localsecrets "github.com/pgrotate/pgrotate/local/secrets"
	"github.com/pgrotate/pgrotate/workflow"
)

func TestCreateSecretPutsPendingAndStartsExecution(t *testing.T) {
	const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	tests := []struct {
		name    string
		cfg     Config
		wantLen int
		// allowed is every character the password may hold.
		allowed func(r rune) bool
	}{
		{
			name: "defaults", cfg: Config{}, wantLen: 32,
			allowed: func(r rune) bool { return r > ' ' && r < 127 && !strings.ContainsRune(DefaultExcludeCharacters, r) },
		},
		{
			// Excluding every digit and punctuation character leaves letters only, so an
			// ignored exclusion list cannot pass by chance (each included type is required).
			name: "length and exclusions from the config", wantLen: 48,
			cfg:     Config{PasswordLength: 48, ExcludeCharacters: "0123456789!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"},
			allowed: func(r rune) bool { return strings.ContainsRune(letters, r) },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.cfg)
			f.createPending(tok)

			v := f.stages()
			if !slices.Equal(v[tok], []string{workflow.StagePending}) || !v.Has(v1, workflow.StageCurrent) {
				t.Fatalf("stages after createSecret = %v, want %s AWSPENDING and %s AWSCURRENT", v, tok, v1)
			}
			cur, pend := f.appSecret(v1), f.appSecret(tok)
			if pend.Username != "app_user_clone" {
				t.Errorf("pending user = %q, want the alternate app_user_clone", pend.Username)
			}
			want := cur.Pending(pend.Password)
			if !reflect.DeepEqual(pend, want) {
				t.Errorf("pending version differs from AWSCURRENT in more than user and password:\n got %+v\nwant %+v", pend.LogValue(), want.LogValue())
			}
			pw := pend.Password.Reveal()
			if len(pw) != tc.wantLen {
				t.Errorf("password has %d characters, want %d", len(pw), tc.wantLen)
			}
			for _, r := range pw {
				if !tc.allowed(r) {
					t.Errorf("password holds an excluded character (code %d)", r)
				}
			}
			if pend.Password.Equal(cur.Password) {
				t.Error("pending password equals the current one")
			}

			puts := f.sm.CallsOf(localsecrets.OpPutSecretValue)
			if len(puts) != 1 {
				t.Fatalf("%d PutSecretValue calls, want 1", len(puts))
			}
			if p := puts[0]; p.VersionID != tok || !slices.Equal(p.Stages, []string{workflow.StagePending}) || !p.RotationToken || p.Err != nil {
				t.Errorf("PutSecretValue = %+v, want version %s, stages [AWSPENDING], with the RotationToken", p, tok)
			}
			if n := len(f.sm.CallsOf(localsecrets.OpGetRandomPassword)); n != 1 {
				t.Errorf("%d GetRandomPassword calls, want 1", n)
			}

			input, _, _, ok := f.sfn.execution(tok)
			if !ok || f.sfn.status(tok) != types.ExecutionStatusRunning {
				t.Fatalf("no running execution named after the token; calls %v", f.sfn.callLog())
			}
			var keys map[string]json.RawMessage
			if err := json.Unmarshal([]byte(input), &keys); err != nil {
				t.Fatal(err)
			}
			if got := slices.Sorted(mapKeys(keys)); !slices.Equal(got, []string{"secretArn", "services", "token"}) {
				t.Errorf("execution input keys = %v, want only secretArn, services, token", got)
			}
			var st workflow.State
			if err := json.Unmarshal([]byte(input), &st); err != nil {
				t.Fatal(err)
			}
			if wantSt := (workflow.State{SecretARN: f.arn, Token: tok, Services: f.services}); !reflect.DeepEqual(st, wantSt) {
				t.Errorf("execution input = %+v, want %+v", st, wantSt)
			}
		})
	}
}

func mapKeys(m map[string]json.RawMessage) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestCreateSecretWithoutRotationToken(t *testing.T) {
	f := newFixture(t, Config{})
	ev := f.event(StepCreate, tok)
	ev.RotationToken = workflow.Password{}
	f.mustHandle(ev)
	puts := f.sm.CallsOf(localsecrets.OpPutSecretValue)
	if len(puts) != 1 || puts[0].RotationToken {
		t.Fatalf("PutSecretValue calls %+v: want one, without a RotationToken", puts)
	}
}

func TestCreateSecretRetried(t *testing.T) {
	tests := []struct {
		name string
		// first runs the first attempt; it may fail.
		first func(t *testing.T, f *fixture) error
	}{
		{
			name: "the first attempt succeeded",
			first: func(t *testing.T, f *fixture) error {
				_, err := f.handle(context.Background(), f.event(StepCreate, tok))
				return err
			},
		},
		{
			name: "StartExecution failed after the version was put",
			first: func(t *testing.T, f *fixture) error {
				f.sfn.failOnce("StartExecution", errThrottled)
				_, err := f.handle(context.Background(), f.event(StepCreate, tok))
				if err == nil || !errors.Is(err, errThrottled) {
					t.Fatalf("first attempt: want the StartExecution error, got %v", err)
				}
				if f.sfn.count() != 0 {
					t.Fatal("an execution exists although StartExecution failed")
				}
				return nil
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			if err := tc.first(t, f); err != nil {
				t.Fatalf("first attempt: %v", err)
			}
			before := f.appSecret(tok)
			f.createPending(tok)
			after := f.appSecret(tok)

			if !after.Password.Equal(before.Password) || after.Username != before.Username {
				t.Error("the retry changed the pending version")
			}
			if n := len(f.sm.CallsOf(localsecrets.OpPutSecretValue)); n != 1 {
				t.Errorf("%d PutSecretValue calls, want 1: a retry must not write the version again", n)
			}
			if n := len(f.sm.CallsOf(localsecrets.OpGetRandomPassword)); n != 1 {
				t.Errorf("%d GetRandomPassword calls, want 1", n)
			}
			if f.sfn.count() != 1 || f.sfn.status(tok) != types.ExecutionStatusRunning {
				t.Errorf("want exactly one running execution %s; calls %v", tok, f.sfn.callLog())
			}
			if r := f.sfn.callsWith("RedriveExecution"); len(r) != 0 {
				t.Errorf("a running execution was redriven: %v", r)
			}
		})
	}
}

// A concurrent createSecret that put the same token with other data first: the put fails
// (Secrets Manager refuses to change a version) and nothing is overwritten or started.
func TestCreateSecretLosesRaceForToken(t *testing.T) {
	f := newFixture(t, Config{})
	winner := f.appSecret(v1).Pending(workflow.NewPassword("Winner-Pw-9a8b7c6d5e4f3a2b1c0d"))
	f.sm.Intercept(localsecrets.OpPutSecretValue, func() error {
		f.putVersion(tok, winner, workflow.StagePending)
		return nil
	})
	_, err := f.handle(context.Background(), f.event(StepCreate, tok))
	var exists *smtypes.ResourceExistsException
	if err == nil || !errors.As(err, &exists) {
		t.Fatalf("want ResourceExistsException from PutSecretValue, got %v", err)
	}
	if got := f.appSecret(tok); !got.Password.Equal(winner.Password) {
		t.Error("the version put by the winner was changed")
	}
	if f.sfn.count() != 0 {
		t.Error("an execution was started after a failed put")
	}
}

func TestCreateSecretRefusesForeignPendingVersion(t *testing.T) {
	f := newFixture(t, Config{})
	foreign := f.appSecret(v1)
	foreign.Username = "intruder"
	foreign.Password = workflow.NewPassword("Foreign-Pw-0f1e2d3c4b5a69788796")
	f.putVersion(tok, foreign, workflow.StagePending)

	_, err := f.handle(context.Background(), f.event(StepCreate, tok))
	var inv *workflow.InvalidSecret
	if !errors.As(err, &inv) {
		t.Fatalf("want *workflow.InvalidSecret for a pending version that is not the alternate, got %v", err)
	}
	if f.sfn.count() != 0 {
		t.Error("an execution was started for a foreign pending version")
	}
	if n := len(f.sm.CallsOf(localsecrets.OpPutSecretValue)); n != 1 { // the test's own put
		t.Errorf("%d PutSecretValue calls, want only the test's own", n)
	}
}

func TestCreateSecretTokenAlreadyCurrent(t *testing.T) {
	f := newFixture(t, Config{})
	f.createPending(tok)
	if _, err := f.r.Promote(context.Background(), f.arn, tok); err != nil {
		t.Fatal(err)
	}
	f.sfn.resetCalls()
	puts := len(f.sm.CallsOf(localsecrets.OpPutSecretValue))

	f.createPending(tok)
	if n := len(f.sm.CallsOf(localsecrets.OpPutSecretValue)); n != puts {
		t.Errorf("createSecret of the AWSCURRENT version wrote the secret (%d new puts)", n-puts)
	}
	// It may read the execution (to redeploy a promoted version whose execution stopped
	// before Redeploy) but changes nothing when the execution is running.
	for _, c := range f.sfn.callLog() {
		if !strings.HasPrefix(c, "DescribeExecution") && !strings.HasPrefix(c, "GetExecutionHistory") {
			t.Errorf("createSecret of the AWSCURRENT version called %s", c)
		}
	}
}

// The Promote Lambda moved AWSCURRENT and then timed out: the caught failure ended the
// execution before Redeploy. Secrets Manager's steps see the version current; they must
// redrive the execution so the services get the promoted version.
func TestPromotedButNotRedeployedIsRedriven(t *testing.T) {
	for _, step := range []string{StepCreate, StepFinish} {
		t.Run(step, func(t *testing.T) {
			f := newFixture(t, Config{})
			f.createPending(tok)
			f.sfn.pass(tok, "Preflight", "CloneUser", "SetPassword", "TestLogin", "CheckReplicas")
			if _, err := f.r.Promote(context.Background(), f.arn, tok); err != nil {
				t.Fatal(err)
			}
			f.sfn.fail(tok, "Promote", "Lambda.Unknown", `{"errorMessage":"timed out","errorType":"Lambda.Unknown"}`)
			f.mustHandle(f.event(step, tok))
			if r := f.sfn.callsWith("RedriveExecution " + tok); len(r) != 1 {
				t.Fatalf("%s did not redrive the execution: %v", step, f.sfn.callLog())
			}
			// Once Redeploy has run, nothing is redriven again.
			f.sfn.pass(tok, "Promote", "Redeploy")
			f.sfn.succeed(tok)
			f.sfn.resetCalls()
			f.mustHandle(f.event(step, tok))
			if r := f.sfn.callsWith("RedriveExecution"); len(r) != 0 {
				t.Fatalf("redriven again after the redeploy: %v", r)
			}
		})
	}
}

func TestCreateSecretExecutionAlreadyExists(t *testing.T) {
	before := []string{workflow.StatePreflight, workflow.StateCloneUser}
	upToPromote := []string{workflow.StatePreflight, workflow.StateCloneUser, workflow.StateSetPassword,
		workflow.StateTestLogin, workflow.StateCheckReplicas, workflow.StatePromote}
	tests := []struct {
		name        string
		prepare     func(f *fixture)
		wantRedrive bool
		wantErr     []string
	}{
		{
			name: "running (another input)",
			prepare: func(f *fixture) {
				f.sfn.seed(tok, `{"secretArn":"`+f.arn+`","token":"`+tok+`","services":[]}`)
				f.sfn.pass(tok, before...)
			},
		},
		{
			name: "succeeded",
			prepare: func(f *fixture) {
				f.sfn.seed(tok, f.input(tok))
				f.sfn.pass(tok, upToPromote...)
				f.sfn.pass(tok, workflow.StateRedeploy)
				f.sfn.succeed(tok)
			},
		},
		{
			name: "pending redrive",
			prepare: func(f *fixture) {
				f.sfn.seed(tok, f.input(tok))
				f.sfn.fail(tok, workflow.StateCloneUser, "PrivilegeMismatch", "privileges differ")
				f.sfn.setPendingRedrive(tok)
			},
		},
		{
			name: "failed before Promote",
			prepare: func(f *fixture) {
				f.sfn.seed(tok, f.input(tok))
				f.sfn.pass(tok, workflow.StatePreflight)
				f.sfn.fail(tok, workflow.StateCloneUser, "PrivilegeMismatch", "privileges differ")
			},
			wantRedrive: true,
		},
		{
			name: "aborted before Promote",
			prepare: func(f *fixture) {
				f.sfn.seed(tok, f.input(tok))
				f.sfn.pass(tok, before...)
				f.sfn.stall(tok, workflow.StateSetPassword)
				_, _ = f.sfn.StopExecution(context.Background(), stopInput(tok, "an operator stopped it"))
			},
			wantRedrive: true,
		},
		{
			name: "timed out before Promote",
			prepare: func(f *fixture) {
				f.sfn.seed(tok, f.input(tok))
				f.sfn.pass(tok, before...)
				f.sfn.stall(tok, workflow.StateCheckReplicas)
				f.sfn.timeOut(tok)
			},
			wantRedrive: true,
		},
		{
			// Promote's caught failure still exits the state; it did not promote.
			name: "failed in Promote",
			prepare: func(f *fixture) {
				f.sfn.seed(tok, f.input(tok))
				f.sfn.pass(tok, upToPromote[:5]...)
				f.sfn.fail(tok, workflow.StatePromote, "Lambda.Unknown", "the function timed out")
			},
			wantRedrive: true,
		},
		{
			name: "failed after Promote with the token not AWSCURRENT",
			prepare: func(f *fixture) {
				f.sfn.seed(tok, f.input(tok))
				f.sfn.pass(tok, upToPromote...)
				f.sfn.fail(tok, workflow.StateRedeploy, "DeploymentFailed", "rolled back")
			},
			wantErr: []string{tok, "after Promote", "not AWSCURRENT"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			tc.prepare(f)
			statusBefore := f.sfn.status(tok)
			f.sfn.resetCalls()

			_, err := f.handle(context.Background(), f.event(StepCreate, tok))
			if len(tc.wantErr) > 0 {
				wantErrContains(t, err, tc.wantErr...)
			} else if err != nil {
				t.Fatalf("createSecret: %v", err)
			}
			redrives := f.sfn.callsWith("RedriveExecution " + tok)
			switch {
			case tc.wantRedrive && (len(redrives) != 1 || f.sfn.status(tok) != types.ExecutionStatusRunning):
				t.Errorf("want one redrive and a running execution; calls %v, status %s", f.sfn.callLog(), f.sfn.status(tok))
			case !tc.wantRedrive && len(redrives) != 0:
				t.Errorf("unexpected redrive: %v", f.sfn.callLog())
			case !tc.wantRedrive && f.sfn.status(tok) != statusBefore:
				t.Errorf("status changed from %s to %s", statusBefore, f.sfn.status(tok))
			}
			if n := f.sfn.count(); n != 1 {
				t.Errorf("%d executions, want 1", n)
			}
			if !f.stages().Has(tok, workflow.StagePending) {
				t.Error("the version is not AWSPENDING")
			}
		})
	}
}

func TestCreateSecretStopsSupersededExecutions(t *testing.T) {
	f := newFixture(t, Config{})
	f.sfn.listPage = 1 // the rotator must follow NextToken
	otherSecret := "arn:aws:secretsmanager:local:000000000000:secret:other-app-AbCdEf"
	f.sfn.seed(oldTok, f.input(oldTok))
	f.sfn.pass(oldTok, workflow.StatePreflight)
	f.sfn.seed(otherTok, `{"secretArn":"`+otherSecret+`","token":"`+otherTok+`","services":[]}`)
	const failedTok = "55555555-5555-4555-8555-555555555555"
	f.sfn.seed(failedTok, f.input(failedTok))
	f.sfn.fail(failedTok, workflow.StatePreflight, "ServiceNotSteady", "old tasks")

	f.createPending(tok)

	stops := f.sfn.callsWith("StopExecution")
	if !slices.Equal(stops, []string{"StopExecution " + oldTok + " RotationSuperseded"}) {
		t.Fatalf("StopExecution calls = %v, want only %s with error RotationSuperseded", stops, oldTok)
	}
	if _, errName, cause, _ := f.sfn.execution(oldTok); errName != "RotationSuperseded" || !strings.Contains(cause, tok) {
		t.Errorf("superseded execution ended with %q: %q, want RotationSuperseded naming %s", errName, cause, tok)
	}
	for name, want := range map[string]types.ExecutionStatus{
		oldTok: types.ExecutionStatusAborted, otherTok: types.ExecutionStatusRunning,
		failedTok: types.ExecutionStatusFailed, tok: types.ExecutionStatusRunning,
	} {
		if got := f.sfn.status(name); got != want {
			t.Errorf("execution %s is %s, want %s", name, got, want)
		}
	}
	if lists := f.sfn.callsWith("ListExecutions RUNNING"); len(lists) != 2 {
		t.Errorf("ListExecutions was called %d times for 2 running executions, one per page", len(lists))
	}
}

func stopInput(name, cause string) *sfn.StopExecutionInput {
	return &sfn.StopExecutionInput{ExecutionArn: aws.String(strings.Replace(machineARN, ":stateMachine:", ":execution:", 1) + ":" + name), Cause: aws.String(cause)}
}

func TestPromote(t *testing.T) {
	t.Run("moves AWSCURRENT, AWSPREVIOUS follows", func(t *testing.T) {
		f := newFixture(t, Config{})
		f.createPending(tok)
		res, err := f.handle(context.Background(), Event{Action: workflow.ActionPromote, SecretARN: f.arn, Token: tok})
		if err != nil {
			t.Fatal(err)
		}
		if res == nil || !res.PromotedAt.Equal(promotedAt) {
			t.Errorf("result = %+v, want promotedAt %s", res, promotedAt)
		}
		v := f.stages()
		if !v.Has(tok, workflow.StageCurrent) || !v.Has(v1, workflow.StagePrevious) || v.Has(v1, workflow.StageCurrent) {
			t.Errorf("stages = %v, want %s AWSCURRENT and %s AWSPREVIOUS", v, tok, v1)
		}
		moves := f.sm.CallsOf(localsecrets.OpUpdateSecretVersionStage)
		if len(moves) != 1 || moves[0].VersionID != tok || moves[0].RemoveFrom != v1 || !slices.Equal(moves[0].Stages, []string{workflow.StageCurrent}) {
			t.Errorf("UpdateSecretVersionStage calls = %+v, want AWSCURRENT from %s to %s", moves, v1, tok)
		}

		// Again (a retried Promote state): no second move.
		if _, err := f.handle(context.Background(), Event{Action: workflow.ActionPromote, SecretARN: f.arn, Token: tok}); err != nil {
			t.Fatalf("second promote: %v", err)
		}
		if n := len(f.sm.CallsOf(localsecrets.OpUpdateSecretVersionStage)); n != 1 {
			t.Errorf("%d UpdateSecretVersionStage calls after a repeated promote, want 1", n)
		}
	})

	t.Run("superseded when the token is neither current nor pending", func(t *testing.T) {
		f := newFixture(t, Config{})
		f.createPending(tok)
		f.createPending(tok2) // AWSPENDING moves to tok2
		_, err := f.handle(context.Background(), Event{Action: workflow.ActionPromote, SecretARN: f.arn, Token: tok})
		switch e := err.(type) {
		case *workflow.RotationSuperseded:
			if e.Version != tok {
				t.Errorf("superseded version = %q, want %q", e.Version, tok)
			}
		default:
			t.Fatalf("want *workflow.RotationSuperseded unwrapped, got %T %v", err, err)
		}
		if name := errorName(t, err); name != "RotationSuperseded" {
			t.Errorf("errorType = %q", name)
		}
		if n := len(f.sm.CallsOf(localsecrets.OpUpdateSecretVersionStage)); n != 0 {
			t.Errorf("a superseded promote moved a label (%d calls)", n)
		}
		if !f.stages().Has(v1, workflow.StageCurrent) {
			t.Error("AWSCURRENT moved")
		}
	})

	t.Run("AWSCURRENT moved by someone else meanwhile", func(t *testing.T) {
		f := newFixture(t, Config{})
		f.createPending(tok)
		const manual = "66666666-6666-4666-8666-666666666666"
		f.sm.Intercept(localsecrets.OpUpdateSecretVersionStage, func() error {
			s := f.appSecret(v1)
			s.Password = workflow.NewPassword("Manual-Pw-1a2b3c4d5e6f7a8b9c0d")
			f.putVersion(manual, s) // AWSCURRENT by default
			return nil
		})
		_, err := f.handle(context.Background(), Event{Action: workflow.ActionPromote, SecretARN: f.arn, Token: tok})
		if err == nil {
			t.Fatal("promote succeeded with a stale RemoveFromVersionId")
		}
		if v := f.stages(); !v.Has(manual, workflow.StageCurrent) {
			t.Errorf("stages = %v, want AWSCURRENT left on the manual version", v)
		}
	})

	t.Run("missing token", func(t *testing.T) {
		f := newFixture(t, Config{})
		_, err := f.handle(context.Background(), Event{Action: workflow.ActionPromote, SecretARN: f.arn})
		if _, ok := err.(*workflow.InvalidSecret); !ok {
			t.Fatalf("want *workflow.InvalidSecret, got %T %v", err, err)
		}
		errorName(t, err)
	})
}

func TestHandleRejectsUnknownInput(t *testing.T) {
	tests := map[string]func(f *fixture) Event{
		"unknown step":   func(f *fixture) Event { return f.event("rotateSecret", tok) },
		"snake_case":     func(f *fixture) Event { return f.event("create_secret", tok) },
		"unknown action": func(f *fixture) Event { return Event{Action: "demote", SecretARN: f.arn, Token: tok} },
		"no SecretId":    func(f *fixture) Event { ev := f.event(StepCreate, tok); ev.SecretID = ""; return ev },
		"no token":       func(f *fixture) Event { return f.event(StepCreate, "") },
	}
	for name, ev := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, Config{})
			if _, err := f.handle(context.Background(), ev(f)); err == nil {
				t.Fatal("want an error")
			}
			if n := len(f.sm.CallsOf(localsecrets.OpPutSecretValue)); n != 0 || f.sfn.count() != 0 {
				t.Error("a rejected event changed something")
			}
		})
	}
}

// The handler is the Lambda entry point: the event must decode from Secrets Manager's JSON.
func TestEventDecodesSecretsManagerJSON(t *testing.T) {
	raw := `{"Step":"createSecret","SecretId":"arn:aws:secretsmanager:us-east-1:1:secret:app","ClientRequestToken":"` + tok + `","RotationToken":"` + rotationToken + `"}`
	var ev Event
	if err := json.Unmarshal([]byte(raw), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Step != StepCreate || ev.ClientRequestToken != tok || ev.RotationToken.Reveal() != rotationToken {
		t.Fatalf("decoded %+v", ev)
	}
	out, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), rotationToken) {
		t.Error("marshalling the event reveals the RotationToken")
	}
}

// An old rotation's createSecret retried after a newer rotation took AWSPENDING must not
// redrive its own execution nor stop the newer one (invariant 8).
func TestCreateSecretRetriedAfterSupersededChangesNothing(t *testing.T) {
	f := newFixture(t, Config{})
	f.createPending(tok)
	f.sfn.fail(tok, "SetPassword", "CredentialRejected", `{"errorMessage":"x","errorType":"CredentialRejected"}`)
	f.createPending(tok2) // the newer rotation: AWSPENDING moves to tok2
	_, err := f.handle(context.Background(), f.event(StepCreate, tok))
	var sup *workflow.RotationSuperseded
	if !errors.As(err, &sup) {
		t.Fatalf("want RotationSuperseded, got %v", err)
	}
	if r := f.sfn.callsWith("RedriveExecution"); len(r) != 0 {
		t.Errorf("the superseded execution was redriven: %v", r)
	}
	if f.sfn.status(tok2) != types.ExecutionStatusRunning {
		t.Errorf("the newer execution is %s, want RUNNING", f.sfn.status(tok2))
	}
}

// An execution past Promote finished its rotation and is only redeploying: a newer rotation
// must not abort it, or a failed rollout would never reach the alarm.
func TestCreateSecretLeavesARedeployingExecutionAlone(t *testing.T) {
	f := newFixture(t, Config{})
	f.sfn.seed(oldTok, f.input(oldTok))
	f.sfn.pass(oldTok, workflow.StatePreflight, workflow.StateCloneUser, workflow.StateSetPassword, workflow.StateTestLogin,
		workflow.StateCheckReplicas, workflow.StatePromote, workflow.StateRedeploy)
	f.createPending(tok)
	if stops := f.sfn.callsWith("StopExecution"); len(stops) != 0 {
		t.Fatalf("a redeploying execution was stopped: %v", stops)
	}
	if got := f.sfn.status(oldTok); got != types.ExecutionStatusRunning {
		t.Fatalf("execution %s is %s, want RUNNING", oldTok, got)
	}
}
