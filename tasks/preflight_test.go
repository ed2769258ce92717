package tasks

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/pgrotate/pgrotate/adapters/ecsservice"
	"github.com/pgrotate/pgrotate/workflow"
)

func TestPreflightFillsTheState(t *testing.T) {
	e := newEnv(t)
	in := e.state()
	// Fields from an earlier attempt must not be trusted: Preflight defines them.
	in.ActiveVersion, in.ActiveUser, in.PendingUser = "stale-version", "someone", "someone_clone"
	st, err := e.preflight().Handle(context.Background(), in)
	if err != nil {
		t.Fatalf("preflight: %v", err)
	}

	want := e.state()
	want.ActiveVersion, want.ActiveUser, want.PendingUser = v1, "app_user", "app_user_clone"
	want.Primary = &workflow.Endpoint{Host: primaryHost, Port: 5432}
	want.Replicas = []workflow.Endpoint{{Host: replica1, Port: 5432}, {Host: replica2, Port: 5433}}
	if !reflect.DeepEqual(st, want) {
		t.Fatalf("state = %+v\nwant    %+v", st, want)
	}
	wantOps := []string{
		"Login " + primaryHost + " app_user", "Login " + replica1 + " app_user", "Login " + replica2 + " app_user",
		"Sessions " + primaryHost + " app_user_clone", "Sessions " + replica1 + " app_user_clone", "Sessions " + replica2 + " app_user_clone",
	}
	if got := e.db.ops(); !slices.Equal(got, wantOps) {
		t.Errorf("database calls = %q\nwant %q", got, wantOps)
	}
	if !slices.Equal(e.promos.asked, []string{v1}) {
		t.Errorf("promotion looked up for %v, want the AWSCURRENT version %s", e.promos.asked, v1)
	}
	if !strings.Contains(e.logs.String(), "promotion time of the execution that promoted AWSCURRENT") {
		t.Errorf("the log does not say which rule decided:\n%s", e.logs.String())
	}
}

func TestPreflightRefuses(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(e *env)
		token   string // the execution's token, tok unless set
		want    string // a workflow error name
		check   func(t *testing.T, e *env, err error)
	}{
		{
			name: "pending version is not the alternate user",
			prepare: func(e *env) {
				s := e.current().Pending(workflow.NewPassword(otherPW))
				s.Username = "intruder"
				e.putVersion(tok2, s, workflow.StagePending)
			},
			token: tok2,
			want:  "InvalidSecret",
		},
		{
			name: "pending version is the AWSCURRENT user",
			prepare: func(e *env) {
				s := e.current()
				s.Password = workflow.NewPassword(otherPW)
				e.putVersion(tok2, s, workflow.StagePending)
			},
			token: tok2,
			want:  "InvalidSecret",
		},
		{
			name: "pending version names another database",
			prepare: func(e *env) {
				s := e.current().Pending(workflow.NewPassword(otherPW))
				s.Host = "elsewhere.example.internal"
				e.putVersion(tok2, s, workflow.StagePending)
			},
			token: tok2,
			want:  "InvalidSecret",
		},
		{
			name: "admin secret names another host than the app secret",
			prepare: func(e *env) {
				if _, err := e.sm.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{
					SecretId: aws.String(e.adminARN), SecretString: aws.String(e.admin("attacker.example.internal").str(e.t)),
				}); err != nil {
					e.t.Fatal(err)
				}
			},
			want: "InvalidSecret",
			check: func(t *testing.T, e *env, err error) {
				if calls := e.db.callLog(); len(calls) != 0 {
					t.Errorf("the database was contacted despite the host mismatch: %+v", calls)
				}
			},
		},
		{
			name: "the token is no longer AWSPENDING",
			prepare: func(e *env) {
				e.putVersion(tok2, e.current().Pending(workflow.NewPassword(otherPW)), workflow.StagePending)
			},
			want: "RotationSuperseded",
		},
		{
			name:    "the token is already AWSCURRENT",
			prepare: func(e *env) { e.promote(tok) },
			want:    "RotationSuperseded",
		},
		{
			name:    "AWSCURRENT does not log in on a replica",
			prepare: func(e *env) { e.db.reject["app_user@"+replica2] = true },
			want:    "CredentialRejected",
			check: func(t *testing.T, e *env, err error) {
				if c := err.(*workflow.CredentialRejected); !strings.Contains(c.Host, replica2) {
					t.Errorf("rejection names %q, want %s", c.Host, replica2)
				}
			},
		},
		{
			name: "two deployments",
			prepare: func(e *env) {
				e.clock.Set(pendingAt.Add(time.Minute))
				e.deploy(workflow.Service{Cluster: "prod", Service: "worker"})
			},
			want: "ServiceNotSteady",
			check: func(t *testing.T, e *env, err error) {
				if s := err.(*workflow.ServiceNotSteady); s.Service != "prod/worker" || !strings.Contains(s.Reason, "2 deployments") {
					t.Errorf("got %v, want prod/worker with 2 deployments", err)
				}
			},
		},
		{
			name: "the only deployment is not COMPLETED",
			prepare: func(e *env) {
				svc := workflow.Service{Cluster: "prod", Service: "web"}
				deps, err := ecsservice.New(e.ecs).Deployments(context.Background(), svc)
				if err != nil || len(deps) != 1 {
					e.t.Fatalf("deployments: %v %v", deps, err)
				}
				e.deploy(svc)
				if err := e.ecs.RemoveDeployment("prod", "web", deps[0].ID); err != nil {
					e.t.Fatal(err)
				}
			},
			want: "ServiceNotSteady",
			check: func(t *testing.T, e *env, err error) {
				if s := err.(*workflow.ServiceNotSteady); !strings.Contains(s.Reason, "IN_PROGRESS") {
					t.Errorf("got %v, want the rollout state named", err)
				}
			},
		},
		{
			name:    "the pending user has sessions on a replica",
			prepare: func(e *env) { e.db.sessions[replica1] = 2 },
			want:    "PendingUserInUse",
			check: func(t *testing.T, e *env, err error) {
				if p := err.(*workflow.PendingUserInUse); p.User != "app_user_clone" || p.Sessions != 2 || !strings.Contains(p.Where, replica1) {
					t.Errorf("got %+v, want 2 sessions of app_user_clone on %s", p, replica1)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			tc.prepare(e)
			in := e.state()
			if tc.token != "" {
				in.Token = tc.token
			}
			_, err := e.preflight().Handle(context.Background(), in)
			wantNamed(t, err, tc.want)
			if m := e.db.mutations(); len(m) != 0 {
				t.Errorf("preflight changed roles: %+v", m)
			}
			if tc.check != nil {
				tc.check(t, e, err)
			}
		})
	}
}

// Which instant tasks must have launched after (DESIGN §6): the time the execution named
// after AWSCURRENT left Promote; without one, AWSCURRENT's creation time plus a clean session
// check.
func TestPreflightPromotionRules(t *testing.T) {
	tests := []struct {
		name     string
		found    bool
		at       time.Time
		early    bool // a third service whose task launched before AWSCURRENT was created
		want     string
		wantRule string
	}{
		{name: "tasks launched after the promotion", found: true, at: promotedAt,
			wantRule: "promotion time of the execution that promoted AWSCURRENT"},
		{name: "tasks launched before the promotion", found: true, at: launchedAt.Add(time.Minute),
			want: "ServiceNotSteady"},
		{name: "tasks launched at the promotion instant", found: true, at: launchedAt,
			want: "ServiceNotSteady"},
		{name: "no promotion: tasks launched after AWSCURRENT was created", found: false,
			wantRule: "creation time of AWSCURRENT"},
		{name: "no promotion: a task launched before AWSCURRENT was created", found: false, early: true,
			want: "ServiceNotSteady"},
		{name: "a promotion found decides, not the creation time", found: true, at: promotedAt, early: true,
			want: "ServiceNotSteady"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.promos.found, e.promos.at = tc.found, tc.at
			if !tc.found {
				e.promos.at = time.Time{}
			}
			if tc.early {
				e.addService("legacy", "cron", 1, t0.Add(-time.Minute))
			}
			st, err := e.preflight().Handle(context.Background(), e.state())
			if tc.want != "" {
				wantNamed(t, err, tc.want)
				return
			}
			if err != nil {
				t.Fatalf("preflight: %v", err)
			}
			if st.ActiveVersion != v1 {
				t.Errorf("active version = %q", st.ActiveVersion)
			}
			if !strings.Contains(e.logs.String(), tc.wantRule) {
				t.Errorf("the log does not name the rule %q:\n%s", tc.wantRule, e.logs.String())
			}
			if got := len(e.db.callLog()); got == 0 {
				t.Error("no session check ran")
			}
		})
	}
}

// Failures of the services it reads are plain errors: Step Functions catches them with
// States.ALL, and they must not pose as a named workflow error.
func TestPreflightDependencyErrors(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(e *env)
		want    string
	}{
		{
			name:    "promotion lookup fails",
			prepare: func(e *env) { e.promos.err = errors.New("AccessDeniedException: states:DescribeExecution") },
			want:    "find the promotion of version " + v1,
		},
		{
			name:    "a service is gone",
			prepare: func(e *env) { _ = e.ecs.DeleteService("prod", "worker") },
			want:    "prod/worker",
		},
		{
			name:    "no state input",
			prepare: func(e *env) {},
			want:    "",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			tc.prepare(e)
			in := e.state()
			if tc.want == "" {
				in.Token = ""
				_, err := e.preflight().Handle(context.Background(), in)
				wantNamed(t, err, "InvalidSecret")
				return
			}
			// No name of its own, but never an unnamed error type (issue 8): StepFailed.
			_, err := e.preflight().Handle(context.Background(), in)
			wantNamed(t, err, "StepFailed")
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

// A replica the deployment knows of but the secret omits would never be checked before a
// promotion (invariant 4): Preflight refuses before touching any server.
func TestPreflightRequiresConfiguredReplicasInTheSecret(t *testing.T) {
	tests := []struct {
		name       string
		configured []workflow.Endpoint
		wantErr    bool
	}{
		{"none configured", nil, false},
		{"all listed", []workflow.Endpoint{{Host: strings.ToUpper(replica1), Port: 5432}, {Host: replica2, Port: 5433}}, false},
		{"one missing", []workflow.Endpoint{{Host: "replica-3.example.internal", Port: 5432}}, true},
		{"wrong port", []workflow.Endpoint{{Host: replica2, Port: 5432}}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			h := e.preflight()
			h.Replicas = tc.configured
			_, err := h.Handle(context.Background(), e.state())
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			inv, ok := err.(*workflow.InvalidSecret)
			if !ok || inv.Field != "replicas" {
				t.Fatalf("want *workflow.InvalidSecret on replicas, got %T %v", err, err)
			}
			if ops := e.db.ops(); len(ops) != 0 {
				t.Errorf("database calls before refusing: %q", ops)
			}
		})
	}
}
