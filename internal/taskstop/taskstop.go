// Package taskstop holds how long stopping an app task may take in the reference
// deployment (cdk/reference) and in the local fleet that stands in for it (local/fleet):
// one source of the three numbers, so the demo proves what the stack deploys.
//
// When ECS replaces a task behind a load balancer it first deregisters the task from the
// target group and waits for its in-flight requests (at most DeregistrationDelay), then sends
// SIGTERM; the app stops accepting requests and lets the in-flight ones finish for up to
// DrainTimeout (its DRAIN_TIMEOUT); ECS sends SIGKILL if the task is still running
// StopTimeout after SIGTERM. A request is cut only if it outlives all of that, so
// StopTimeout > DrainTimeout.
//
//   - https://docs.aws.amazon.com/AmazonECS/latest/developerguide/update-service.html
//     (the service removes the task from the load balancer, waits for connection draining,
//     then stops it: SIGTERM, then SIGKILL after the stop timeout)
//   - https://docs.aws.amazon.com/elasticloadbalancing/latest/application/modify-target-group-health-settings.html
//     (deregistration delay; a target with no in-flight request completes at once)
//   - https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ContainerDefinition.html
//     (stopTimeout: Fargate default 30 s, at most 120 s)
package taskstop

import "time"

const (
	// DeregistrationDelay is the target group's deregistration_delay.timeout_seconds.
	DeregistrationDelay = 30 * time.Second
	// DrainTimeout is the app's DRAIN_TIMEOUT: how long in-flight requests may run after
	// SIGTERM.
	DrainTimeout = 30 * time.Second
	// StopTimeout is the container's stopTimeout: SIGKILL this long after SIGTERM.
	StopTimeout = 60 * time.Second
)
