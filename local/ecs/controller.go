package localecs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// Controller carries out deployments. UpdateService calls Deploy once for each deployment
// it creates, after the deployment is recorded (PRIMARY, IN_PROGRESS) and without holding
// any lock. Deploy must return promptly: long work goes into r.Go. ctx is cancelled when a
// newer deployment supersedes this one, when it is completed, failed or removed, and when
// the ECS is closed.
type Controller interface {
	Deploy(ctx context.Context, r *Rollout)
}

// ControllerFunc adapts a function to Controller.
type ControllerFunc func(ctx context.Context, r *Rollout)

// Deploy calls f.
func (f ControllerFunc) Deploy(ctx context.Context, r *Rollout) { f(ctx, r) }

// Auto replaces a deployment's tasks and completes it (Rollout.Replace): at once when Delay
// is zero, so the deployment is COMPLETED by the time UpdateService returns, else after
// Delay unless the deployment was superseded meanwhile.
type Auto struct {
	Delay time.Duration
}

// Deploy implements Controller.
func (a Auto) Deploy(ctx context.Context, r *Rollout) {
	if a.Delay <= 0 {
		_ = r.Replace()
		return
	}
	r.Go(func() {
		timer := time.NewTimer(a.Delay)
		defer timer.Stop()
		select {
		case <-ctx.Done():
		case <-timer.C:
			_ = r.Replace()
		}
	})
}

// Manual does nothing: deployments stay IN_PROGRESS until a test calls CompleteDeployment,
// FailDeployment or the Rollout's methods.
type Manual struct{}

// Deploy implements Controller.
func (Manual) Deploy(context.Context, *Rollout) {}

// ErrSuperseded reports an action on a deployment that is no longer the service's PRIMARY
// IN_PROGRESS deployment (a newer one replaced it, or it already completed or failed).
var ErrSuperseded = errors.New("deployment is no longer the PRIMARY deployment in progress")

// Rollout is a handle on one deployment of one service: what a Controller uses to launch,
// start and stop tasks and to finish the deployment. Its methods are safe for concurrent use.
type Rollout struct {
	e                    *ECS
	cluster, service, id string
}

// Cluster returns the service's cluster.
func (r *Rollout) Cluster() string { return r.cluster }

// Service returns the service's name.
func (r *Rollout) Service() string { return r.service }

// ID returns the deployment id (the StartedBy of its tasks).
func (r *Rollout) ID() string { return r.id }

// Desired returns the service's desired task count.
func (r *Rollout) Desired() int {
	r.e.mu.Lock()
	defer r.e.mu.Unlock()
	svc, err := r.e.lookupService(r.cluster, r.service)
	if err != nil {
		return 0
	}
	return svc.desired
}

// Go runs fn in a goroutine that Close waits for.
func (r *Rollout) Go(fn func()) {
	r.e.wg.Go(fn)
}

// with runs fn with the lock held, the service, and this deployment (nil if gone).
func (r *Rollout) with(action string, fn func(svc *service, d *deployment) error) error {
	r.e.mu.Lock()
	defer r.e.mu.Unlock()
	svc, err := r.e.lookupService(r.cluster, r.service)
	if err == nil {
		err = fn(svc, svc.deployment(r.id))
	}
	if err != nil {
		return fmt.Errorf("%s (deployment %s of %s/%s): %w", action, r.id, r.cluster, r.service, err)
	}
	return nil
}

// inProgress checks that d is the PRIMARY deployment, IN_PROGRESS.
func inProgress(d *deployment) error {
	if d == nil || d.status != StatusPrimary || d.rollout != types.DeploymentRolloutStateInProgress {
		return ErrSuperseded
	}
	return nil
}

// Launch records a new task of this deployment, PENDING, created now, and returns its ARN.
func (r *Rollout) Launch() (string, error) {
	var arn string
	err := r.with("launch task", func(svc *service, d *deployment) error {
		if err := inProgress(d); err != nil {
			return err
		}
		arn = r.e.launch(svc, d, false, r.e.now()).arn
		d.updated = r.e.now()
		return nil
	})
	return arn, err
}

// taskOf finds a task of the service. The caller holds the lock.
func (r *Rollout) taskOf(svc *service, arn string) (*task, error) {
	t, ok := r.e.tasks[arn]
	if !ok || t.cluster != svc.cluster || t.service != svc.name {
		return nil, fmt.Errorf("task %s is not a task of the service", arn)
	}
	return t, nil
}

// Running marks a PENDING task RUNNING, started now.
func (r *Rollout) Running(taskARN string) error {
	return r.with("start task", func(svc *service, _ *deployment) error {
		t, err := r.taskOf(svc, taskARN)
		if err != nil {
			return err
		}
		if t.last != TaskPending {
			return fmt.Errorf("task %s is %s, not PENDING", taskARN, t.last)
		}
		now := r.e.now()
		t.last, t.started = TaskRunning, &now
		return nil
	})
}

// Stop asks a task of the service (of any deployment) to stop: its desired status becomes
// STOPPED and a RUNNING task becomes DEACTIVATING (it still holds its credentials and may
// keep connecting while it drains) until Stopped. A task that never ran stops at once.
func (r *Rollout) Stop(taskARN, reason string) error {
	return r.with("stop task", func(svc *service, _ *deployment) error {
		t, err := r.taskOf(svc, taskARN)
		if err != nil {
			return err
		}
		if !t.live() {
			return nil
		}
		now := r.e.now()
		if t.last != TaskRunning && t.last != TaskDeactivating {
			stop(t, reason, now)
			return nil
		}
		if t.stopping == nil {
			t.stopping = &now
		}
		t.desired, t.last, t.stoppedReason = TaskStopped, TaskDeactivating, reason
		return nil
	})
}

// Stopped marks a task of the service STOPPED, now.
func (r *Rollout) Stopped(taskARN string) error {
	return r.with("stop task", func(svc *service, _ *deployment) error {
		t, err := r.taskOf(svc, taskARN)
		if err != nil {
			return err
		}
		stop(t, "Task stopped", r.e.now())
		return nil
	})
}

// Tasks returns the ARNs of this deployment's tasks that are not STOPPED.
func (r *Rollout) Tasks() []string {
	return r.taskARNs(func(t *task) bool { return t.deploymentID == r.id })
}

// OldTasks returns the ARNs of the service's tasks from other deployments that are not
// STOPPED: what a rolling replacement must stop once the new tasks are healthy.
func (r *Rollout) OldTasks() []string {
	return r.taskARNs(func(t *task) bool { return t.deploymentID != r.id })
}

func (r *Rollout) taskARNs(keep func(*task) bool) []string {
	var out []string
	_ = r.with("list tasks", func(svc *service, _ *deployment) error {
		for _, t := range r.e.tasksOf(svc, "") {
			if keep(t) {
				out = append(out, t.arn)
			}
		}
		return nil
	})
	return out
}

// Complete marks the deployment COMPLETED, stops whatever tasks of older deployments are
// still not STOPPED and drops those deployments, as ECS does once a service reaches a
// steady state. It fails with ErrSuperseded unless the deployment is PRIMARY and
// IN_PROGRESS.
func (r *Rollout) Complete() error { return r.complete(false) }

// Replace launches the tasks this deployment still lacks, RUNNING at once, then completes
// it (Complete): the instant rolling replacement of Auto and CompleteDeployment.
func (r *Rollout) Replace() error { return r.complete(true) }

func (r *Rollout) complete(launch bool) error {
	return r.with("complete deployment", func(svc *service, d *deployment) error {
		if err := inProgress(d); err != nil {
			return err
		}
		now := r.e.now()
		if launch {
			for n := len(r.e.tasksOf(svc, d.id)); n < svc.desired; n++ {
				r.e.launch(svc, d, true, now)
			}
		}
		for _, t := range r.e.tasksOf(svc, "") {
			if t.deploymentID != d.id {
				stop(t, "Scaling activity initiated by (deployment "+d.id+")", now)
			}
		}
		for _, old := range append([]*deployment(nil), svc.deployments...) {
			if old != d {
				r.e.drop(svc, old)
			}
		}
		d.rollout, d.reason, d.updated = types.DeploymentRolloutStateCompleted, "ECS deployment "+d.id+" completed.", now
		if d.cancel != nil {
			d.cancel()
		}
		return nil
	})
}

// Fail marks the deployment FAILED with reason, as the deployment circuit breaker does.
// Without rollback it stays PRIMARY and its tasks are left as they are ("a deployment in
// FAILED state doesn't launch any new tasks"). With rollback its tasks are stopped, it
// becomes ACTIVE (still listed, FAILED, until RemoveDeployment), and the most recent
// deployment that had COMPLETED becomes PRIMARY again, relaunching any task it lacks.
func (r *Rollout) Fail(reason string, rollback bool) error {
	return r.with("fail deployment", func(svc *service, d *deployment) error {
		if err := inProgress(d); err != nil {
			return err
		}
		var back *deployment
		if rollback {
			for _, x := range svc.deployments {
				if x != d && x.rollout == types.DeploymentRolloutStateCompleted {
					back = x
					break
				}
			}
			if back == nil {
				return errors.New("no completed deployment to roll back to")
			}
		}
		now := r.e.now()
		d.rollout, d.reason, d.updated = types.DeploymentRolloutStateFailed, reason, now
		if d.cancel != nil {
			d.cancel()
		}
		if !rollback {
			return nil
		}
		for _, t := range r.e.tasksOf(svc, d.id) {
			stop(t, "Deployment failed: rolling back", now)
		}
		d.status = StatusActive
		back.status, back.updated = StatusPrimary, now
		for n := len(r.e.tasksOf(svc, back.id)); n < svc.desired; n++ {
			r.e.launch(svc, back, true, now)
		}
		// Keep PRIMARY first, as DescribeServices lists it.
		list := []*deployment{back}
		for _, x := range svc.deployments {
			if x != back {
				list = append(list, x)
			}
		}
		svc.deployments = list
		return nil
	})
}
