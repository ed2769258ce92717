// Package ecsservice is pgrotate's ECS adapter: it forces a new deployment of a service,
// reads the service's deployments (to follow that deployment's rollout state), and tells
// when the service's tasks were launched (to know whether any task may still hold an old
// credential).
//
// It depends only on the API interface, which *ecs.Client and the local mode's
// *localecs.ECS both satisfy.
package ecsservice

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/pgrotate/pgrotate/workflow"
)

// API is the part of ECS the adapter uses.
type API interface {
	UpdateService(context.Context, *ecs.UpdateServiceInput, ...func(*ecs.Options)) (*ecs.UpdateServiceOutput, error)
	DescribeServices(context.Context, *ecs.DescribeServicesInput, ...func(*ecs.Options)) (*ecs.DescribeServicesOutput, error)
	ListTasks(context.Context, *ecs.ListTasksInput, ...func(*ecs.Options)) (*ecs.ListTasksOutput, error)
	DescribeTasks(context.Context, *ecs.DescribeTasksInput, ...func(*ecs.Options)) (*ecs.DescribeTasksOutput, error)
}

// describeTasksMax is DescribeTasks' limit on task ARNs per call.
const describeTasksMax = 100

// Deployment is one deployment of a service (workflow.Deployment, which the handlers use).
type Deployment = workflow.Deployment

// ServiceMissing reports a service that does not exist, or no longer does (INACTIVE or
// DRAINING after a deletion).
type ServiceMissing struct {
	Service workflow.Service
	Reason  string
}

func (e *ServiceMissing) Error() string {
	return fmt.Sprintf("ECS service %s is missing: %s", e.Service, e.Reason)
}

// IsMissing reports whether err is, or wraps, a *ServiceMissing.
func IsMissing(err error) bool {
	var m *ServiceMissing
	return errors.As(err, &m)
}

// Services is the ECS adapter.
type Services struct {
	api API
}

// New returns an adapter backed by api.
func New(api API) *Services {
	if api == nil {
		panic("ecsservice.New: nil API")
	}
	return &Services{api: api}
}

// ForceDeployment starts a new deployment of svc with the same task definition
// (UpdateService forceNewDeployment), so its tasks relaunch and read the secret again, and
// returns the new PRIMARY deployment's id.
func (s *Services) ForceDeployment(ctx context.Context, svc workflow.Service) (string, error) {
	out, err := s.api.UpdateService(ctx, &ecs.UpdateServiceInput{
		Cluster:            aws.String(svc.Cluster),
		Service:            aws.String(svc.Service),
		ForceNewDeployment: true,
	})
	if err != nil {
		var nf *types.ServiceNotFoundException
		var na *types.ServiceNotActiveException
		var cnf *types.ClusterNotFoundException
		switch {
		case errors.As(err, &nf):
			err = &ServiceMissing{Service: svc, Reason: "service not found"}
		case errors.As(err, &cnf):
			err = &ServiceMissing{Service: svc, Reason: "cluster not found"}
		case errors.As(err, &na):
			err = &ServiceMissing{Service: svc, Reason: "the service is not ACTIVE"}
		}
		return "", fmt.Errorf("force a new deployment of %s: %w", svc, err)
	}
	if out.Service != nil {
		for _, d := range out.Service.Deployments {
			if aws.ToString(d.Status) == "PRIMARY" && aws.ToString(d.Id) != "" {
				return aws.ToString(d.Id), nil
			}
		}
	}
	return "", fmt.Errorf("force a new deployment of %s: UpdateService returned no PRIMARY deployment", svc)
}

// Deployments returns the deployments of svc, PRIMARY first as ECS lists them. A service
// that does not exist, or is INACTIVE or DRAINING, is a *ServiceMissing.
func (s *Services) Deployments(ctx context.Context, svc workflow.Service) ([]Deployment, error) {
	d, err := s.describe(ctx, svc)
	if err != nil {
		return nil, fmt.Errorf("describe service %s: %w", svc, err)
	}
	out := make([]Deployment, 0, len(d.Deployments))
	for _, x := range d.Deployments {
		out = append(out, Deployment{
			ID:                 aws.ToString(x.Id),
			Status:             aws.ToString(x.Status),
			RolloutState:       string(x.RolloutState),
			RolloutStateReason: aws.ToString(x.RolloutStateReason),
			CreatedAt:          aws.ToTime(x.CreatedAt),
			UpdatedAt:          aws.ToTime(x.UpdatedAt),
			Desired:            int(x.DesiredCount),
			Running:            int(x.RunningCount),
		})
	}
	return out, nil
}

// CheckService returns nil when svc exists and is ACTIVE, a *ServiceMissing when it does not
// (or its cluster does not), and the API's error otherwise (e.g. access denied). It changes
// nothing.
func (s *Services) CheckService(ctx context.Context, svc workflow.Service) error {
	if _, err := s.describe(ctx, svc); err != nil {
		return fmt.Errorf("describe service %s: %w", svc, err)
	}
	return nil
}

func (s *Services) describe(ctx context.Context, svc workflow.Service) (types.Service, error) {
	out, err := s.api.DescribeServices(ctx, &ecs.DescribeServicesInput{
		Cluster:  aws.String(svc.Cluster),
		Services: []string{svc.Service},
	})
	if err != nil {
		var cnf *types.ClusterNotFoundException
		if errors.As(err, &cnf) {
			return types.Service{}, &ServiceMissing{Service: svc, Reason: "cluster not found"}
		}
		return types.Service{}, err
	}
	if len(out.Failures) > 0 {
		f := out.Failures[0]
		return types.Service{}, &ServiceMissing{Service: svc, Reason: fmt.Sprintf("%s (%s)", aws.ToString(f.Reason), aws.ToString(f.Arn))}
	}
	if len(out.Services) != 1 {
		return types.Service{}, fmt.Errorf("DescribeServices returned %d services for one", len(out.Services))
	}
	d := out.Services[0]
	if st := aws.ToString(d.Status); st != "ACTIVE" {
		return types.Service{}, &ServiceMissing{Service: svc, Reason: "status " + st}
	}
	return d, nil
}

// TaskLaunchTimes returns when each task of svc that has not stopped was launched: its
// CreatedAt (ECS fetches the secrets after that, so a task created after a promotion holds
// the promoted version; StartedAt would be later than the fetch). Tasks told to stop but still
// draining count too: they still hold the credentials they were launched with. A service
// that does not exist is a *ServiceMissing.
func (s *Services) TaskLaunchTimes(ctx context.Context, svc workflow.Service) ([]time.Time, error) {
	var arns []string
	// ListTasks lists desired-RUNNING tasks by default; desired-STOPPED ones include tasks
	// that are still deactivating (and, for a while, stopped ones, filtered out below).
	for _, desired := range []types.DesiredStatus{types.DesiredStatusRunning, types.DesiredStatusStopped} {
		got, err := s.listTasks(ctx, svc, desired)
		if err != nil {
			return nil, fmt.Errorf("list tasks of %s: %w", svc, err)
		}
		arns = append(arns, got...)
	}
	var times []time.Time
	for start := 0; start < len(arns); start += describeTasksMax {
		batch := arns[start:min(start+describeTasksMax, len(arns))]
		out, err := s.api.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String(svc.Cluster), Tasks: batch})
		if err != nil {
			return nil, fmt.Errorf("describe tasks of %s: %w", svc, err)
		}
		// A task in Failures (MISSING) stopped and expired between the two calls: it holds
		// nothing any more.
		for _, t := range out.Tasks {
			if aws.ToString(t.LastStatus) == "STOPPED" {
				continue
			}
			switch {
			case t.CreatedAt != nil:
				times = append(times, *t.CreatedAt)
			case t.StartedAt != nil:
				times = append(times, *t.StartedAt)
			default:
				return nil, fmt.Errorf("describe tasks of %s: task %s has no launch time", svc, aws.ToString(t.TaskArn))
			}
		}
	}
	return times, nil
}

func (s *Services) listTasks(ctx context.Context, svc workflow.Service, desired types.DesiredStatus) ([]string, error) {
	var arns []string
	in := &ecs.ListTasksInput{Cluster: aws.String(svc.Cluster), ServiceName: aws.String(svc.Service), DesiredStatus: desired}
	for {
		out, err := s.api.ListTasks(ctx, in)
		if err != nil {
			var nf *types.ServiceNotFoundException
			var cnf *types.ClusterNotFoundException
			switch {
			case errors.As(err, &nf):
				return nil, &ServiceMissing{Service: svc, Reason: "service not found"}
			case errors.As(err, &cnf):
				return nil, &ServiceMissing{Service: svc, Reason: "cluster not found"}
			}
			return nil, err
		}
		arns = append(arns, out.TaskArns...)
		if aws.ToString(out.NextToken) == "" {
			return arns, nil
		}
		in.NextToken = out.NextToken
	}
}
