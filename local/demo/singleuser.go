package demo

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/pgrotate/pgrotate/adapters/ecsservice"
	"github.com/pgrotate/pgrotate/adapters/postgres"
	"github.com/pgrotate/pgrotate/internal/wait"
	"github.com/pgrotate/pgrotate/workflow"
)

// rotateSingleUser is the classic in-place rotation (AWS's single-user template) on the
// same harness: a new version with a new password for the same user, ALTER ROLE of that
// user's password, a test login, promotion, then a forced redeploy awaited to completion.
// From the ALTER ROLE until the last old task has stopped, every new connection made with
// the credential the old tasks hold is refused: the gap alternating users closes.
//
// A failed step makes a failed rotation (rotation.err), not an error; only ctx does.
func (r *run) rotateSingleUser(ctx context.Context) (rotation, error) {
	start := time.Now()
	var res rotation
	step := func(name string, fn func() error) bool {
		if res.err != "" {
			return false
		}
		began := time.Now()
		err := fn()
		d := time.Since(began)
		res.states = append(res.states, stateSpan{name, d})
		if err != nil {
			res.err = name + ": " + err.Error()
			r.out.printf("  %-14s %8s  %s\n", name, dur(d), res.err)
			return false
		}
		r.out.state(name, d)
		return true
	}
	arn := r.b.AppSecretARN
	var cur, next workflow.AppSecret
	var curID string
	step("createSecret", func() error {
		var err error
		if cur, curID, err = r.b.Secret(ctx, stageCurrent); err != nil {
			return err
		}
		pw, err := r.b.Store.RandomPassword(ctx, 32, workflow.DefaultExcludeCharacters)
		if err != nil {
			return err
		}
		if res.version, err = newVersionID(); err != nil {
			return err
		}
		next = cur
		next.Password = pw
		return r.b.Store.PutPending(ctx, arn, res.version, next, workflow.Password{})
	})
	step("setSecret", func() error {
		admin, err := r.b.Store.AdminSecret(ctx, r.b.AdminSecretARN)
		if err != nil {
			return err
		}
		// The product's adapter, as the SetPassword step uses it: a SCRAM verifier, in place.
		_, _, err = postgres.PG{Options: r.pg}.SetPassword(ctx, admin.In(admin.DBName), next.Username, next.Password)
		return err
	})
	step("testSecret", func() error {
		_, _, err := postgres.Login(ctx, next.At(next.Primary()), r.pg)
		return err
	})
	if step("finishSecret", func() error { return r.b.Store.MoveCurrent(ctx, arn, res.version, curID) }) {
		res.promote = time.Since(start)
	}
	step(workflow.StateRedeploy, func() error { return r.redeploy(ctx) })
	res.total = time.Since(start)
	if err := ctx.Err(); err != nil {
		return res, err
	}
	return res, nil
}

// redeploy forces a new deployment of the service and waits until it completes, polling at
// the state machine's cadence (its 15 s rollout wait, scaled).
func (r *run) redeploy(ctx context.Context) error {
	svc := ecsservice.New(r.b.ECS)
	id, err := svc.ForceDeployment(ctx, service)
	if err != nil {
		return err
	}
	every := time.Duration(float64(15*time.Second) * r.opts.TimeScale)
	for {
		if err := wait.Sleep(ctx, every); err != nil {
			return err
		}
		deps, err := svc.Deployments(ctx, service)
		if err != nil {
			return err
		}
		found := false
		for _, d := range deps {
			if d.ID != id {
				continue
			}
			found = true
			switch d.RolloutState {
			case "COMPLETED":
				return nil
			case "FAILED":
				return fmt.Errorf("deployment %s failed: %s", id, d.RolloutStateReason)
			}
		}
		if !found {
			return fmt.Errorf("deployment %s is gone (rolled back or replaced)", id)
		}
	}
}

// newVersionID returns a UUID, as Secrets Manager's ClientRequestToken.
func newVersionID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:]), nil
}
