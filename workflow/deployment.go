package workflow

import "time"

// Deployment is one deployment of an ECS service, as DescribeServices reports it.
// https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_Deployment.html
type Deployment struct {
	ID     string
	Status string // DeploymentPrimary (the newest), ACTIVE (being replaced), INACTIVE
	// RolloutState is one of the Rollout* constants; empty for services that do not use
	// the rolling update (ECS) deployment controller.
	RolloutState       string
	RolloutStateReason string
	CreatedAt          time.Time
	UpdatedAt          time.Time
	Desired            int
	Running            int
}

// ECS deployment status and rollout states, as the ECS API spells them.
// https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_Deployment.html
const (
	DeploymentPrimary = "PRIMARY"
	RolloutInProgress = "IN_PROGRESS"
	RolloutCompleted  = "COMPLETED"
	RolloutFailed     = "FAILED"
)
