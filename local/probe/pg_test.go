package probe

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgrotate/pgrotate/internal/testctx"
	"github.com/pgrotate/pgrotate/local/cause"
	"github.com/pgrotate/pgrotate/local/pgcluster"
	"github.com/pgrotate/pgrotate/local/pgcluster/pgtest"
	"github.com/pgrotate/pgrotate/workflow"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// newRole creates a login role with a random name and password, replayed on the replica.
func newRole(t *testing.T, c *pgcluster.Cluster) Credential {
	t.Helper()
	name, password := pgtest.NewRole(t, "probe_", "LOGIN")
	if err := c.WaitReplayed(testctx.Context(t)); err != nil {
		t.Fatal(err)
	}
	return Credential{User: name, Password: workflow.NewPassword(password)}
}

// runFor probes until both targets have at least n attempts (or the test's deadline passes).
func runFor(t *testing.T, p *Probe, n int) Report {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	testDone := testctx.Context(t).Done()
wait:
	for r := p.Report(); r.Primary.Attempts < n || r.Replica.Attempts < n; r = p.Report() {
		select {
		case <-testDone:
			t.Errorf("at the test's deadline: %+v, want %d attempts per target", r, n)
			break wait
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	return p.Report()
}

func TestProbe(t *testing.T) {
	c := pgtest.Cluster(t)
	good := newRole(t, c)
	other := newRole(t, c)
	wrong := Credential{User: good.User, Password: workflow.NewPassword("wrong-" + good.Password.Reveal())}
	targets := []Target{
		{TargetPrimary, c.DSN(c.Primary, "", pgcluster.AppDatabase)},
		{TargetReplica, c.DSN(c.Replica, "", pgcluster.AppDatabase)},
	}
	tests := []struct {
		name  string
		creds []Credential
		// wrongUsers hold wrong passwords: their every attempt must fail, and only theirs.
		wrongUsers map[string]bool
	}{
		{name: "right password", creds: []Credential{good}},
		{name: "both alternating users", creds: []Credential{good, other}},
		{name: "wrong password", creds: []Credential{wrong}, wrongUsers: map[string]bool{good.User: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(targets, Options{Credentials: func() []Credential { return tt.creds }})
			if err != nil {
				t.Fatal(err)
			}
			r := runFor(t, p, 5)
			js, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("report: attempts %d, failed %d (primary %+v, replica %+v)", r.Attempts, r.Failed, r.Primary, r.Replica)
			for _, cr := range append(tt.creds, good, other) {
				if strings.Contains(string(js), cr.Password.Reveal()) {
					t.Fatalf("report JSON reveals a password: %s", js)
				}
			}
			if r.Attempts != r.Primary.Attempts+r.Replica.Attempts || r.Failed != r.Primary.Failed+r.Replica.Failed {
				t.Errorf("totals %d/%d do not add up the targets %+v %+v", r.Attempts, r.Failed, r.Primary, r.Replica)
			}
			if len(tt.wrongUsers) == 0 {
				if r.Failed != 0 || r.Primary.Failed != 0 || r.Replica.Failed != 0 {
					t.Fatalf("failures with valid credentials: %s", js)
				}
				return
			}
			if r.Primary.Failed != r.Primary.Attempts || r.Replica.Failed != r.Replica.Attempts {
				t.Errorf("failed %+v %+v, want every attempt failed", r.Primary, r.Replica)
			}
			if len(r.Failures) != r.Failed {
				t.Errorf("report lists %d failures, counts %d", len(r.Failures), r.Failed)
			}
			seen := map[string]bool{}
			for _, f := range r.Failures {
				seen[f.Target] = true
				if !tt.wrongUsers[f.User] || f.At.IsZero() || f.Cause != cause.AuthRefused || f.SQLState != "28P01" ||
					!strings.Contains(f.Reason, "SQLSTATE 28P01") || !strings.Contains(f.Reason, "password authentication failed") {
					t.Errorf("failure %+v, want %v refused with SQLSTATE 28P01 password authentication failed", f, tt.wrongUsers)
				}
			}
			if !seen[TargetPrimary] || !seen[TargetReplica] {
				t.Errorf("failures on %v, want both targets", seen)
			}
		})
	}
}

// TestProbeFollowsCredentials hands the probe a new set of credentials mid-run, as the
// fleet does when tasks are replaced.
func TestProbeFollowsCredentials(t *testing.T) {
	c := pgtest.Cluster(t)
	first, second := newRole(t, c), newRole(t, c)
	var current atomic.Pointer[[]Credential]
	current.Store(&[]Credential{first})
	p, err := New([]Target{
		{TargetPrimary, c.DSN(c.Primary, "", pgcluster.AppDatabase)},
		{TargetReplica, c.DSN(c.Replica, "", pgcluster.AppDatabase)},
	}, Options{Credentials: func() []Credential { return *current.Load() }, Interval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	testDone := testctx.Context(t).Done()
	waitAttempts := func(n int) {
		t.Helper()
		for p.Report().Attempts < n {
			select {
			case <-testDone:
				t.Fatalf("attempts stuck at %d, want %d", p.Report().Attempts, n)
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	waitAttempts(4)
	current.Store(&[]Credential{second, {User: second.User, Password: workflow.NewPassword("stale")}})
	before := p.Report().Attempts
	waitAttempts(before + 8)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	r := p.Report()
	if r.Failed == 0 {
		t.Fatalf("no failure recorded for the stale credential: %+v", r)
	}
	for _, f := range r.Failures {
		if f.User != second.User {
			t.Errorf("failure for %s, want only the stale credential of %s", f.User, second.User)
		}
	}
}
