package audit

import (
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/pgrotate/pgrotate/tasks/evidence"
)

// execution gathers the records of one execution, one per run, in run order.
type execution struct {
	name string
	runs []evidence.Record
}

// addRun files rec under its execution.
func addRun(execs []execution, rec evidence.Record) []execution {
	name := rec.ExecutionName
	if name == "" {
		name = rec.ExecutionARN
	}
	i := slices.IndexFunc(execs, func(e execution) bool { return e.name == name })
	if i < 0 {
		execs = append(execs, execution{name: name})
		i = len(execs) - 1
	}
	runs := append(execs[i].runs, rec)
	slices.SortStableFunc(runs, func(a, b evidence.Record) int { return int(a.Run) - int(b.Run) })
	execs[i].runs = runs
	return execs
}

// last is the record of the latest run: it holds every run's states and says how it ended.
func (e execution) last() evidence.Record { return e.runs[len(e.runs)-1] }

func (e execution) succeeded() bool {
	return e.last().Outcome.Status == string(types.ExecutionStatusSucceeded)
}

func (e execution) start() time.Time {
	for _, r := range e.runs {
		if r.StartedAt != nil {
			return r.StartedAt.UTC()
		}
	}
	return endOf(e.runs[0])
}

// rotatedAt is when a successful rotation's credential became AWSCURRENT: the promotion
// (the end, for a record without one).
func (e execution) rotatedAt() (time.Time, bool) {
	if !e.succeeded() {
		return time.Time{}, false
	}
	if p := e.last().Outcome.PromotedAt; p != nil {
		return p.UTC(), true
	}
	return endOf(e.last()), true
}

// rotation merges the runs; later are the executions that started after this one.
func (e execution) rotation(later []execution) (Rotation, []Failure) {
	last := e.last()
	rot := Rotation{
		Version: last.SecretVersion, FromVersion: last.FromVersion, Execution: e.name, ExecutionARN: last.ExecutionARN,
		FromUser: last.FromUser, ToUser: last.ToUser, StartedAt: e.start(), Status: last.Outcome.Status,
		Runs: int(last.Run) + 1, StartedBy: last.StartedBy,
		Replicas: nonNil(last.Replicas), Deployments: nonNil(last.Deployments),
	}
	if last.EndedAt != nil {
		end := last.EndedAt.UTC()
		rot.EndedAt = &end
		rot.Duration = Seconds(end.Sub(rot.StartedAt))
	}
	if at, ok := e.rotatedAt(); ok {
		rot.RotatedAt = &at
	}
	resolution, by, byAt := ResolvedOpen, "", (*time.Time)(nil)
	switch {
	case e.succeeded() && last.Run > 0:
		rot.Outcome, resolution, by, byAt = OutcomeRedriven, ResolvedRedriven, fmt.Sprintf("%s run %d", e.name, last.Run), rot.EndedAt
	case e.succeeded():
		rot.Outcome = OutcomeSucceeded
	case len(later) > 0:
		next := later[0].start()
		rot.Outcome, resolution, by, byAt = OutcomeSuperseded, ResolvedSuperseded, later[0].name, &next
	default:
		rot.Outcome = OutcomeFailed
	}
	var fails []Failure
	for _, run := range e.runs {
		if run.Outcome.Status == string(types.ExecutionStatusSucceeded) {
			continue
		}
		fails = append(fails, Failure{
			Kind: evidence.KindExecution, Version: run.SecretVersion, Execution: e.name, Run: run.Run,
			Status: run.Outcome.Status, State: run.Outcome.FailedState, Error: run.Outcome.Error, Cause: run.Outcome.Cause,
			At: endOf(run), Resolution: resolution, ResolvedBy: by, ResolvedAt: byAt,
		})
	}
	return rot, fails
}

// secretsManagerFailure is a RotationFailed or RotationAbandoned event, resolved by the first
// rotation that succeeded after it: a redrive when that execution had started before it.
func secretsManagerFailure(rec evidence.Record, execs []execution) Failure {
	f := Failure{
		Kind: rec.Kind, Status: rec.Outcome.Status, Error: rec.Outcome.Error, Cause: rec.Outcome.Cause,
		At: endOf(rec), Resolution: ResolvedOpen,
	}
	var best *execution
	var bestAt time.Time
	for i, e := range execs {
		if at, ok := e.rotatedAt(); ok && at.After(f.At) && (best == nil || at.Before(bestAt)) {
			best, bestAt = &execs[i], at
		}
	}
	if best != nil {
		f.Resolution, f.ResolvedBy, f.ResolvedAt = ResolvedSuperseded, best.name, &bestAt
		if best.start().Before(f.At) {
			f.Resolution = ResolvedRedriven
		}
	}
	return f
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
