package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pgrotate/pgrotate/operator"
)

// The human output of the operator commands: references only (names, version ids, users,
// states, error names), never a secret value, which the commands never read.

func writeStatus(w io.Writer, s *operator.Status) {
	d := s.Deployment
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "secret\t%s (%s)\n", d.SecretName, d.SecretARN)
	fmt.Fprintf(tw, "live user\t%s\n", orNone(s.LiveUser))
	for i, v := range s.Versions {
		label := ""
		if i == 0 {
			label = "versions"
		}
		fmt.Fprintf(tw, "%s\t%s  %s\n", label, v.ID, strings.Join(v.Stages, ", "))
	}
	fmt.Fprintf(tw, "schedule\t%s\n", scheduleLine(d))
	fmt.Fprintf(tw, "last rotated\t%s\n", when(d.LastRotated))
	fmt.Fprintf(tw, "next rotation\t%s\n", when(d.NextRotation))
	if r := s.LastRotation; r != nil {
		fmt.Fprintf(tw, "last execution\t%s\n", rotationLine(*r))
	} else {
		fmt.Fprintf(tw, "last execution\tnone\n")
	}
	if len(s.Services) == 0 {
		fmt.Fprintf(tw, "services\tnone known (no execution yet)\n")
	}
	for i, svc := range s.Services {
		label := ""
		if i == 0 {
			label = "services"
		}
		var deps []string
		for _, dep := range svc.Deployments {
			deps = append(deps, fmt.Sprintf("%s %s %s %d/%d running", dep.ID, dep.Status, orNone(dep.RolloutState), dep.Running, dep.Desired))
		}
		fmt.Fprintf(tw, "%s\t%s: %s\n", label, svc.Service, strings.Join(deps, "; "))
	}
	for i, c := range s.Preflight.Checks {
		label := ""
		if i == 0 {
			label = "preflight (dry run)"
		}
		if c.OK {
			fmt.Fprintf(tw, "%s\tok   %s\n", label, c.Name)
		} else {
			fmt.Fprintf(tw, "%s\tNOT  %s: %s\n", label, c.Name, c.Problem)
		}
	}
	if s.MayRotate {
		fmt.Fprintf(tw, "may rotate now\tyes\n")
	} else {
		fmt.Fprintf(tw, "may rotate now\tno\n")
		for _, r := range s.Reasons {
			fmt.Fprintf(tw, "\t- %s\n", r)
		}
	}
	_ = tw.Flush()
}

func scheduleLine(d *operator.Deployment) string {
	switch {
	case !d.RotationEnabled:
		return "rotation not enabled"
	case d.Schedule == "":
		return "enabled"
	}
	return d.Schedule
}

func rotationLine(r operator.Rotation) string {
	line := fmt.Sprintf("%s %s, started %s", r.Execution, r.Status, when(r.StartedAt))
	if r.StartedAt != nil && r.StoppedAt != nil {
		line += fmt.Sprintf(", took %s", r.StoppedAt.Sub(*r.StartedAt).Round(time.Millisecond))
	}
	if r.FromUser != "" {
		line += fmt.Sprintf(", %s → %s", r.FromUser, r.ToUser)
	}
	if r.FailedState != "" {
		line += fmt.Sprintf(", failed in %s (%s)", r.FailedState, orNone(r.Error))
	}
	if r.Redrives > 0 {
		line += fmt.Sprintf(", redriven %d×", r.Redrives)
	}
	return line
}

func when(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func writeHistory(w io.Writer, rs []operator.Rotation) {
	if len(rs) == 0 {
		fmt.Fprintln(w, "no rotations")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STARTED\tVERSION\tATTEMPT\tSTATUS\tUSERS\tTOOK\tREDRIVES\tFAILED IN\tERROR\tSOURCE")
	for _, r := range rs {
		users, took := "-", "-"
		if r.FromUser != "" {
			users = r.FromUser + " → " + r.ToUser
		}
		if r.StartedAt != nil && r.StoppedAt != nil {
			took = r.StoppedAt.Sub(*r.StartedAt).Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", when(r.StartedAt), r.Version, r.Attempt, r.Status, users, took,
			r.Redrives, orNone(r.FailedState), orNone(r.Error), r.Source)
	}
	_ = tw.Flush()
}

// stepPrinter prints a line per top-level state entered and exited, with its duration,
// and each failure: with marks on a terminal, plain words otherwise.
func stepPrinter(w io.Writer) func(operator.Step) {
	tty := isTerminal(w)
	return func(s operator.Step) {
		if !s.TopLevel {
			return
		}
		at := s.At.UTC().Format("15:04:05")
		switch {
		case tty:
			fmt.Fprintln(w, ttyLine(s, at))
		case s.Kind == operator.StepExited:
			fmt.Fprintf(w, "%s exited %s after %s\n", at, s.State, s.Took.Round(time.Millisecond))
		case s.Kind == operator.StepEntered:
			fmt.Fprintf(w, "%s entered %s\n", at, s.State)
		case s.Kind == operator.StepFailed:
			fmt.Fprintf(w, "%s failed: %s\n", at, s.Error)
		default:
			fmt.Fprintln(w, strings.TrimSpace(fmt.Sprintf("%s execution %s %s", at, s.Kind, s.Error)))
		}
	}
}

func ttyLine(s operator.Step, at string) string {
	switch s.Kind {
	case operator.StepEntered:
		return fmt.Sprintf("  %s  → %s", at, s.State)
	case operator.StepExited:
		return fmt.Sprintf("  %s  ✓ %-16s %8s", at, s.State, s.Took.Round(time.Millisecond))
	case operator.StepFailed:
		return fmt.Sprintf("  %s  ✗ failed: %s", at, s.Error)
	}
	return strings.TrimRight(fmt.Sprintf("  %s  ● execution %s %s", at, s.Kind, s.Error), " ")
}
