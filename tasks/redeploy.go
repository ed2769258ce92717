package tasks

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pgrotate/pgrotate/workflow"
)

// deployer forces a new deployment of a service.
type deployer interface {
	Deployments(ctx context.Context, svc workflow.Service) ([]workflow.Deployment, error)
	ForceDeployment(ctx context.Context, svc workflow.Service) (string, error)
}

// Redeploy forces a new deployment of one service, so its tasks relaunch with the promoted
// secret. On a retry or re-drive it reuses a deployment created after the promotion instead
// of starting another.
type Redeploy struct {
	ECS deployer
	Log *slog.Logger
}

// Handle runs the step for one item of the Redeploy Map.
func (h *Redeploy) Handle(ctx context.Context, ro workflow.Rollout) (workflow.Rollout, error) {
	if err := checkRollout(ro); err != nil {
		return ro, err
	}
	if ro.DeploymentID != "" {
		return ro, nil
	}
	deps, err := h.ECS.Deployments(ctx, ro.Service)
	if err != nil {
		return h.fail(ctx, ro, fmt.Errorf("describe service %s: %w", ro.Service, err))
	}
	for _, d := range deps {
		// A FAILED one is not reused: a re-drive after DeploymentFailed would only fail again.
		if d.Status == workflow.DeploymentPrimary && d.RolloutState != workflow.RolloutFailed && d.CreatedAt.After(ro.PromotedAt) {
			ro.DeploymentID = d.ID
			logger(h.Log).InfoContext(ctx, "reusing a deployment created after the promotion", "service", ro.Service.String(), "deployment", d.ID)
			return ro, nil
		}
	}
	id, err := h.ECS.ForceDeployment(ctx, ro.Service)
	if err != nil {
		return h.fail(ctx, ro, fmt.Errorf("force a new deployment of %s: %w", ro.Service, err))
	}
	ro.DeploymentID = id
	logger(h.Log).InfoContext(ctx, "deployment started", "service", ro.Service.String(), "deployment", id, "version", ro.Token)
	return ro, nil
}

func (h *Redeploy) fail(ctx context.Context, ro workflow.Rollout, err error) (workflow.Rollout, error) {
	logger(h.Log).ErrorContext(ctx, "step failed", "step", "UpdateService", "service", ro.Service.String(), "error", err.Error())
	return ro, named("UpdateService", err)
}

func checkRollout(ro workflow.Rollout) error {
	switch {
	case ro.Service.Cluster == "" || ro.Service.Service == "":
		return &workflow.InvalidSecret{Secret: "state", Field: "service", Reason: "missing cluster or service name"}
	case ro.PromotedAt.IsZero():
		return &workflow.InvalidSecret{Secret: "state", Field: "promotedAt", Reason: "Promote has not run for this execution"}
	}
	return nil
}
