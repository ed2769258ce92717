package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgrotate/pgrotate/adapters/postgres"
	"github.com/pgrotate/pgrotate/internal/testctx"
	"github.com/pgrotate/pgrotate/local/backend"
)

// The command line's own behaviour; the demo itself is tested in local/demo.
func TestRunExitStatus(t *testing.T) {
	const secret = "Sup3rSecretPw"
	tests := []struct {
		name       string
		args       []string
		want       int
		wantStderr string
		wantStdout string
	}{
		{"no command", nil, exitUsage, "usage: pgrotate", ""},
		{"unknown command", []string{"rotation"}, exitUsage, `unknown command "rotation"`, ""},
		{"help", []string{"help"}, exitOK, "", "usage: pgrotate"},
		{"-h", []string{"-h"}, exitOK, "", "usage: pgrotate"},
		{"demo help on stdout", []string{"demo", "-h"}, exitOK, "", "-primary-dsn"},
		{"bench help on stdout", []string{"bench", "--help"}, exitOK, "", "-stop-timeout"},
		{"unknown flag", []string{"demo", "--nope"}, exitUsage, "flag provided but not defined", ""},
		{"zero rotations", []string{"demo", "--rotations", "0"}, exitUsage, "--rotations 0: want 1 to", ""},
		{"zero tasks", []string{"bench", "--tasks", "0"}, exitUsage, "--tasks 0: want 1 to", ""},
		{"too many tasks", []string{"demo", "--tasks", "51"}, exitUsage, "--tasks 51: want 1 to 50", ""},
		{"negative rotations", []string{"demo", "--rotations=-1"}, exitUsage, "--rotations -1", ""},
		{"zero drain", []string{"demo", "--drain", "0s"}, exitUsage, "--drain 0s", ""},
		{"drain beyond stop timeout", []string{"demo", "--drain", "90s"}, exitUsage, "shorter than the stop timeout", ""},
		{"zero probe interval", []string{"demo", "--probe-interval", "0s"}, exitUsage, "--probe-interval 0s", ""},
		{"time scale above 1", []string{"demo", "--time-scale", "2"}, exitUsage, "--time-scale 2", ""},
		{"bad strategy", []string{"demo", "--strategy", "both"}, exitUsage, `strategy "both"`, ""},
		{"one DSN only", []string{"demo", "--primary-dsn", "host=h user=u password=" + secret}, exitUsage, "both --primary-dsn and --replica-dsn", ""},
		{"stray argument", []string{"bench", "now"}, exitUsage, `unexpected argument "now"`, ""},
		{"bad user name", []string{"demo", "--app-user", "app;drop"}, exitUsage, "not allowed", ""},
		{"negative retirement", []string{"demo", "--retire-previous=-1s"}, exitUsage, "--retire-previous -1s: want 0 (off) or at least 1s", ""},
		{"sub-second retirement", []string{"demo", "--retire-previous", "500ms"}, exitUsage, "--retire-previous 500ms: want 0 (off) or at least 1s", ""},
		{"retirement beyond a Go duration", []string{"demo", "--retire-previous", "3000000h"}, exitUsage, `invalid value "3000000h" for flag -retire-previous`, ""},
		{"retirement not a duration", []string{"demo", "--retire-previous", "1d"}, exitUsage, `invalid value "1d" for flag -retire-previous`, ""},
		{"retirement with single-user", []string{"demo", "--strategy", "single-user", "--retire-previous", "1s"}, exitUsage, "needs the alternating strategy", ""},
		{"retirement help", []string{"demo", "-h"}, exitOK, "", "at least 1s"},
		{
			"DSN refused before anything starts, password unprinted",
			[]string{"demo", "--primary-dsn", "postgres://dbadmin:" + secret + "@db.invalid/app?sslmode=prefer", "--replica-dsn", "host=r user=u password=" + secret},
			exitFailed, `--primary-dsn: sslmode "prefer"`, "",
		},
		{
			"unparsable DSN, password unprinted",
			[]string{"demo", "--primary-dsn", "host=h port=x user=u password='" + secret + `\'x'`, "--replica-dsn", "host=r user=u password=" + secret},
			exitFailed, "--primary-dsn: invalid connection string: invalid port", "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testctx.Context(t)
			var stdout, stderr bytes.Buffer
			if got := run(ctx, tt.args, &stdout, &stderr); got != tt.want {
				t.Errorf("exit %d, want %d\nstderr: %s", got, tt.want, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantStderr, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.wantStdout, stdout.String())
			}
			if tt.want == exitUsage && stdout.Len() > 0 {
				t.Errorf("a usage error wrote to stdout:\n%s", stdout.String())
			}
			if strings.Contains(stdout.String()+stderr.String(), secret) {
				t.Errorf("the password was printed:\n%s%s", stdout.String(), stderr.String())
			}
		})
	}
}

// A setup that refuses to take over a role exits 2 and says nothing was changed; the adopt
// hint only comes with a role pgrotate did not create.
func TestExitStatusOfRefusals(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		want      int
		wantHint  bool
		wantInOut string
	}{
		{"someone else's role", fmt.Errorf("bootstrap: %w", &postgres.UnmanagedRole{Role: "live"}), exitUsage, true, `refusing to take over role "live"`},
		{"the admin", fmt.Errorf("bootstrap: %w", &postgres.RefusedRole{Role: "dbadmin", Reason: "it is the admin"}), exitUsage, false, `refusing to change role "dbadmin"`},
		{"someone else's demo table", fmt.Errorf("bootstrap: %w", &backend.DemoTableTaken{Table: "rotation_demo_x", Owner: "o", User: "x"}), exitUsage, false, "rotation_demo_x"},
		{"another failure", errors.New("connection refused"), exitFailed, false, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if got := exitStatus(context.Background(), tt.err, &stderr, time.Second, false); got != tt.want {
				t.Errorf("exit %d, want %d", got, tt.want)
			}
			out := stderr.String()
			if !strings.Contains(out, tt.wantInOut) || strings.Contains(out, "nothing was changed") != (tt.want == exitUsage) {
				t.Errorf("stderr = %q", out)
			}
			if strings.Contains(out, "--adopt-existing-user") != tt.wantHint {
				t.Errorf("adopt hint shown = %v, want %v: %q", !tt.wantHint, tt.wantHint, out)
			}
		})
	}
}
