package audit

import (
	"strings"
	"time"

	"github.com/pgrotate/pgrotate/tasks/evidence"
)

const (
	testSecretARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:app/db-AbCdEf"
	machineARN    = "arn:aws:states:eu-west-1:123456789012:stateMachine:rotation"
)

const day = 24 * time.Hour

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func ptr[T any](v T) *T { return &v }

// run is the record of one run of execution exec (its version is the name before any
// "_n" successor suffix), started at start and ended at end with status; a succeeded run
// was promoted a minute before its end.
func run(exec string, n int32, status string, start, end time.Time, mods ...func(*evidence.Record)) evidence.Record {
	version, _, _ := strings.Cut(exec, "_")
	rec := evidence.Record{
		Schema: evidence.Schema, Kind: evidence.KindExecution, PgrotateVersion: "test",
		SecretARN: testSecretARN, SecretVersion: version, FromVersion: "prev-" + version,
		FromUser: "app_user", ToUser: "app_user_clone",
		ExecutionARN: "arn:aws:states:eu-west-1:123456789012:execution:rotation:" + exec, ExecutionName: exec, Run: n,
		StartedBy: evidence.StartedBy{Via: "secretsmanager-rotation", ClientRequestToken: exec},
		StartedAt: ptr(start), EndedAt: ptr(end),
		Outcome: evidence.Outcome{Status: status},
		Event:   evidence.EventRef{ID: exec + "-ev", DetailType: evidence.DetailTypeStatusChange, Time: end},
	}
	if status == "SUCCEEDED" {
		rec.Outcome.PromotedAt = ptr(end.Add(-time.Minute))
		rec.Replicas = []evidence.Replica{{Host: "replica-1.example", Port: 5432, LSN: "0/3000148"}}
		rec.Deployments = []evidence.Deployment{{Cluster: "prod", Service: "api", DeploymentID: "ecs-svc/1", RolloutState: "COMPLETED", Checks: 2, DesiredCount: 4, RunningCount: 4}}
	}
	for _, m := range mods {
		m(&rec)
	}
	return rec
}

func failedIn(state, errName string) func(*evidence.Record) {
	return func(r *evidence.Record) {
		r.Outcome.FailedState, r.Outcome.Error, r.Outcome.Cause = state, errName, errName+" in "+state
	}
}

// ok is a rotation that succeeded at d (started ten minutes before).
func ok(exec string, d time.Duration) evidence.Record {
	return run(exec, 0, "SUCCEEDED", at(d).Add(-10*time.Minute), at(d))
}

// smFailure is a Secrets Manager RotationFailed record at d.
func smFailure(id string, d time.Duration) evidence.Record {
	return evidence.Record{
		Schema: evidence.Schema, Kind: evidence.KindRotationFailure, SecretARN: testSecretARN,
		StartedBy: evidence.StartedBy{Via: "secretsmanager", InvokedBy: "secretsmanager.amazonaws.com"},
		EndedAt:   ptr(at(d)), Outcome: evidence.Outcome{Status: "RotationFailed", Cause: "Error when executing lambda during setSecret step"},
		Event: evidence.EventRef{ID: id, DetailType: evidence.DetailTypeServiceEvent, Time: at(d)},
	}
}
