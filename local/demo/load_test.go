package demo

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgrotate/pgrotate/internal/testctx"
	"github.com/pgrotate/pgrotate/local/cause"
	"github.com/pgrotate/pgrotate/local/fleet"
)

// spinEnv makes the test binary a CPU-load process instead of running tests.
const spinEnv = "PGROTATE_TEST_SPIN"

// cpuHogs is the load of the check: 12 CPU-bound processes on a 2-core machine.
const cpuHogs = 12

// spin burns one core until killed (its parent's death kills it too: Pdeathsig).
func spin() {
	runtime.GOMAXPROCS(1)
	x := uint64(1)
	for {
		x = x*6364136223846793005 + 1442695040888963407
		if x == 0 {
			os.Exit(0) // never: keeps the loop from being optimised away
		}
	}
}

// startCPULoad starts n CPU-bound processes that run until the test ends (or ctx does).
func startCPULoad(t *testing.T, ctx context.Context, n int) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	var cmds []*exec.Cmd
	t.Cleanup(func() {
		cancel()
		for _, c := range cmds {
			_ = c.Wait()
		}
	})
	for range n {
		c := exec.CommandContext(ctx, exe, "-test.run=^$")
		c.Env = append(os.Environ(), spinEnv+"=1")
		c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, c)
	}
}

// The proof holds on a busy machine: `pgrotate demo` with its defaults (3 rotations, 4
// tasks, the reference stack's drain and stop timeouts) and 12 CPU-bound processes beside
// it sees not one failure of any cause. Before the demo mirrored the reference stack (a 2 s
// drain), requests in flight at SIGTERM were cut here.
func TestDemoUnderCPULoad(t *testing.T) {
	if testing.Short() {
		t.Skip("a whole demo under load; not in -short")
	}
	ctx := testctx.Context(t)
	startCPULoad(t, ctx, cpuHogs)
	out := &syncBuffer{}
	began := time.Now()
	rep, err := Run(ctx, Options{AppBinary: appBinary, Out: out})
	if rep != nil {
		rep.WriteSummary(out)
	}
	t.Logf("%d CPU-bound processes beside the demo; took %s; human output:\n%s", cpuHogs, time.Since(began).Round(time.Millisecond), out)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Rotations.Succeeded != DefaultRotations {
		t.Errorf("report not OK: %d/%d rotations", rep.Rotations.Succeeded, rep.Rotations.Requested)
	}
	c, q := rep.Connections, rep.Requests
	if c.Failed != 0 || c.Primary.Attempts == 0 || c.Replica.Attempts == 0 {
		t.Errorf("logins: %d of %d failed (primary %d, replica %d attempts): %+v", c.Failed, c.Attempts, c.Primary.Attempts, c.Replica.Attempts, c.Failures)
	}
	if q.Failed != 0 || q.Crashed != 0 || q.Draining.Attempts != DefaultRotations*DefaultTasks*fleet.DefaultBurst {
		t.Errorf("requests: %d of %d failed, %d of %d draining (want %d), %d tasks crashed: %+v",
			q.Failed, q.Attempts, q.Draining.Failed, q.Draining.Attempts, DefaultRotations*DefaultTasks*fleet.DefaultBurst, q.Crashed, q.Failures)
	}
	for _, k := range cause.All {
		if c.ByCause[k] != 0 || q.ByCause[k] != 0 {
			t.Errorf("%s: %d logins, %d requests, want none", k, c.ByCause[k], q.ByCause[k])
		}
	}
	if !strings.Contains(out.String(), "result: OK") {
		t.Errorf("the human report does not say OK")
	}
}
