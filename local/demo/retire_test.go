package demo

import (
	"errors"
	"github.com/pgrotate/pgrotate/internal/testctx"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgrotate/pgrotate/adapters/postgres"
	"github.com/pgrotate/pgrotate/workflow"
)

// The done-when: `pgrotate demo --retire-previous 1s` on given servers leaves
// AWSPREVIOUS refused on both servers and AWSCURRENT working, checked here from the secrets
// file as an outside checker would, and listed so in the report.
func TestRetirePreviousOnGivenServers(t *testing.T) {
	ctx := testctx.Context(t)
	c, _, primaryDSN, replicaDSN := givenServers(t, ctx, "demo_retire")
	out := &syncBuffer{}
	secretsPath := filepath.Join(t.TempDir(), "secrets.json")
	rep, err := Run(ctx, Options{
		PrimaryDSN: primaryDSN, ReplicaDSN: replicaDSN, AppUser: "ret_user", Rotations: 2, Tasks: 2,
		Settle: 500 * time.Millisecond, AppBinary: appBinary, SecretsFile: secretsPath, Out: out,
		RetirePrevious: time.Second,
	})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, out)
	}
	rep.WriteSummary(out)
	t.Logf("human output:\n%s", out)
	// The fleet's own request counts under drain are TestAlternatingOnGivenServers' subject;
	// this test judges the rotations, the probe and the logins afterwards.
	if rep.Rotations.Succeeded != 2 || rep.Connections.Failed != 0 || rep.Connections.Primary.Attempts == 0 || rep.Connections.Replica.Attempts == 0 {
		t.Fatalf("rotations %+v, connections %+v", rep.Rotations, rep.Connections)
	}
	if r := rep.Retirement; r == nil || !r.Waited || r.After != "1s" || r.User != "ret_user_clone" || r.ValidUntil.IsZero() {
		t.Fatalf("retirement %+v, want ret_user_clone retired after 1s and waited for", rep.Retirement)
	}
	var refused, ok int
	for _, l := range rep.LoginsAfter {
		switch {
		case l.Stage == workflow.StagePrevious && l.Retired && !l.OK && strings.Contains(l.Reason, "SQLSTATE 28P01"):
			refused++
		case l.Stage == workflow.StageCurrent && l.OK:
			ok++
		default:
			t.Errorf("login afterwards %+v", l)
		}
	}
	if refused != 2 || ok != 2 {
		t.Fatalf("logins afterwards %+v: want AWSPREVIOUS refused (28P01) and AWSCURRENT ok on both servers", rep.LoginsAfter)
	}
	if !strings.Contains(out.String(), "refused, retired: ") {
		t.Errorf("the summary does not list AWSPREVIOUS as refused, retired")
	}

	sf := readSecrets(t, secretsPath)
	cur, prev := sf.appSecretAt(t, workflow.StageCurrent), sf.appSecretAt(t, workflow.StagePrevious)
	opts := postgres.Options{CABundle: c.CAFile}
	for _, ep := range []workflow.Endpoint{cur.Primary(), cur.Replicas[0]} {
		if _, _, err := postgres.Login(ctx, cur.At(ep), opts); err != nil {
			t.Errorf("AWSCURRENT %s on %s: %v", cur.Username, ep, err)
		}
		_, _, err := postgres.Login(ctx, prev.At(ep), opts)
		var rejected *workflow.CredentialRejected
		if !errors.As(err, &rejected) {
			t.Errorf("AWSPREVIOUS %s on %s: %v, want refused", prev.Username, ep, err)
		}
	}
}

func TestRetiredLoginsInReport(t *testing.T) {
	base := func() *Report {
		return &Report{Strategy: StrategyAlternating, Rotations: RotationCounts{Requested: 1, Succeeded: 1}}
	}
	tests := []struct {
		name   string
		logins []Login
		ok     bool
	}{
		{"retired and refused", []Login{{Stage: stageCurrent, OK: true}, {Stage: stagePrevious, Retired: true, Reason: "SQLSTATE 28P01"}}, true},
		{"retired but logs in", []Login{{Stage: stageCurrent, OK: true}, {Stage: stagePrevious, Retired: true, OK: true}}, false},
		{"not retired and refused", []Login{{Stage: stageCurrent, OK: true}, {Stage: stagePrevious}}, false},
		{"current refused", []Login{{Stage: stageCurrent}, {Stage: stagePrevious, Retired: true}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := base()
			r.LoginsAfter = tc.logins
			// The probe's and the fleet's counts are irrelevant here: judge the logins alone.
			r.Connections.Primary.Attempts, r.Connections.Replica.Attempts = 1, 1
			if got := r.OK(); got != tc.ok {
				t.Fatalf("OK() = %v, want %v", got, tc.ok)
			}
		})
	}
	if err := (Options{Strategy: StrategySingleUser, RetirePrevious: time.Second}).Check(); err == nil {
		t.Error("single-user with --retire-previous accepted")
	}
	for _, d := range []time.Duration{-time.Second, time.Nanosecond, MinRetirePrevious - time.Millisecond} {
		if err := (Options{RetirePrevious: d}).Check(); err == nil {
			t.Errorf("--retire-previous %s accepted", d)
		}
	}
}
