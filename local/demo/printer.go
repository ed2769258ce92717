package demo

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/pgrotate/pgrotate/local/fleet"
	"github.com/pgrotate/pgrotate/local/probe"
	"github.com/pgrotate/pgrotate/workflow"
)

// topLevel are the states of rotation.asl.json a timeline shows (the Map's inner states are
// summed up in Redeploy).
var topLevel = map[string]bool{
	workflow.StatePreflight: true, workflow.StateCloneUser: true, workflow.StateSetPassword: true,
	workflow.StateTestLogin: true, workflow.StateCheckReplicas: true, workflow.StatePromote: true,
	workflow.StateRedeploy: true, workflow.StateNotifyFailure: true,
}

// printer writes the human progress: one line per state as it ends. It is safe for
// concurrent use (the interpreter reports events from its own goroutines).
type printer struct {
	mu      sync.Mutex
	w       io.Writer
	entered map[string]time.Time // by execution ARN and state name
}

func (p *printer) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format, args...)
}

// onEvent is the backend's OnEvent: it prints each top-level state when it exits.
func (p *printer) onEvent(execARN string, ev types.HistoryEvent) {
	at := aws.ToTime(ev.Timestamp)
	if d := ev.StateEnteredEventDetails; d != nil && topLevel[aws.ToString(d.Name)] {
		p.mu.Lock()
		if p.entered == nil {
			p.entered = map[string]time.Time{}
		}
		p.entered[execARN+"/"+aws.ToString(d.Name)] = at
		p.mu.Unlock()
	}
	if d := ev.StateExitedEventDetails; d != nil && topLevel[aws.ToString(d.Name)] {
		p.mu.Lock()
		began, ok := p.entered[execARN+"/"+aws.ToString(d.Name)]
		p.mu.Unlock()
		if ok {
			p.state(aws.ToString(d.Name), at.Sub(began))
		}
	}
	if d := ev.ExecutionFailedEventDetails; d != nil {
		p.printf("  execution failed: %s: %s\n", aws.ToString(d.Error), aws.ToString(d.Cause))
	}
}

func (p *printer) state(name string, d time.Duration) {
	p.printf("  %-14s %8s\n", name, dur(d))
}

func (p *printer) rotationStart(i, n int, from, to string) {
	p.printf("\nrotation %d/%d: %s → %s\n", i, n, from, to)
}

func (p *printer) rotationEnd(rr RotationResult, pr probe.Report, st fleet.Stats, healthy, stopped int) {
	if healthy+stopped > 0 {
		p.printf("  redeploy: %d new tasks healthy, then %d old tasks drained and stopped\n", healthy, stopped)
	}
	if rr.Succeeded {
		p.printf("  ✓ succeeded in %s; AWSCURRENT moved to %s %s after the start\n", ms(rr.MS), rr.To, ms(rr.PromoteMS))
	} else {
		p.printf("  ✗ failed after %s: %s\n", ms(rr.MS), rr.Error)
	}
	p.printf("  fresh logins so far: %d, failed %d (%d during this rotation); app requests %d, failed %d (in flight while draining: %d, failed %d)\n",
		pr.Attempts, pr.Failed, rr.LoginFailures, st.Attempts, st.Failed, st.Draining.Attempts, st.Draining.Failed)
}
