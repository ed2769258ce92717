package tasks

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pgrotate/pgrotate/workflow"
)

// DefaultMaxRolloutChecks bounds the Wait → CheckRollout loop: with the state machine's
// 15-second wait, about 30 minutes.
const DefaultMaxRolloutChecks = 120

// CheckRollout reads the deployment once per invocation: COMPLETED ends the loop, FAILED or
// gone (a circuit-breaker rollback) fails the rotation, anything else loops until the bound.
type CheckRollout struct {
	ECS interface {
		Deployments(ctx context.Context, svc workflow.Service) ([]workflow.Deployment, error)
	}
	MaxChecks int
	Log       *slog.Logger
}

// Handle runs the step for one item of the Redeploy Map.
func (h *CheckRollout) Handle(ctx context.Context, ro workflow.Rollout) (workflow.Rollout, error) {
	if err := checkRollout(ro); err != nil {
		return ro, err
	}
	if ro.DeploymentID == "" {
		return ro, &workflow.InvalidSecret{Secret: "state", Field: "deploymentId", Reason: "UpdateService has not run for this service"}
	}
	if ro.Done {
		return ro, nil
	}
	max := h.MaxChecks
	if max <= 0 {
		max = DefaultMaxRolloutChecks
	}
	ro.Checks++
	deps, err := h.ECS.Deployments(ctx, ro.Service)
	if err != nil {
		return h.fail(ctx, ro, fmt.Errorf("describe service %s: %w", ro.Service, err))
	}
	var ours *workflow.Deployment
	for i := range deps {
		if deps[i].ID == ro.DeploymentID {
			ours = &deps[i]
		}
	}
	if ours != nil {
		ro.DesiredCount, ro.RunningCount = ours.Desired, ours.Running
	}
	switch {
	case ours == nil:
		return h.fail(ctx, ro, &workflow.DeploymentFailed{Service: ro.Service.String(), Deployment: ro.DeploymentID, Reason: "the deployment is gone (rolled back or replaced)"})
	case ours.RolloutState == workflow.RolloutFailed:
		return h.fail(ctx, ro, &workflow.DeploymentFailed{Service: ro.Service.String(), Deployment: ro.DeploymentID, Reason: orUnknown(ours.RolloutStateReason)})
	case ours.RolloutState == workflow.RolloutCompleted:
		ro.RolloutState, ro.Done = ours.RolloutState, true
		logger(h.Log).InfoContext(ctx, "deployment completed", "service", ro.Service.String(), "deployment", ro.DeploymentID, "checks", ro.Checks)
		return ro, nil
	case ro.Checks >= max:
		return h.fail(ctx, ro, &workflow.RolloutTimedOut{Service: ro.Service.String(), Deployment: ro.DeploymentID, Checks: ro.Checks})
	}
	ro.RolloutState = ours.RolloutState
	return ro, nil
}

func (h *CheckRollout) fail(ctx context.Context, ro workflow.Rollout, err error) (workflow.Rollout, error) {
	logger(h.Log).ErrorContext(ctx, "step failed", "step", "CheckRollout", "service", ro.Service.String(), "deployment", ro.DeploymentID, "error", err.Error())
	return ro, named("CheckRollout", err)
}
