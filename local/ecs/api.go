package localecs

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/pgrotate/pgrotate/local/internal/apirec"
)

// UpdateService updates a service. ForceNewDeployment, or a new TaskDefinition, starts a new
// deployment: PRIMARY, IN_PROGRESS, created now; the previous PRIMARY becomes ACTIVE. The
// Controller is then told to carry it out. DesiredCount sets the service's desired count.
// The output shows the service as it was when the deployment started.
func (e *ECS) UpdateService(ctx context.Context, in *ecs.UpdateServiceInput, _ ...func(*ecs.Options)) (*ecs.UpdateServiceOutput, error) {
	c := Call{Op: OpUpdateService, Cluster: aws.ToString(in.Cluster), Services: []string{aws.ToString(in.Service)}, ForceNewDeployment: in.ForceNewDeployment}
	var r *Rollout
	var dctx context.Context
	update := func(ctx context.Context, in *ecs.UpdateServiceInput) (out *ecs.UpdateServiceOutput, err error) {
		out, r, dctx, err = e.updateService(ctx, in)
		return out, err
	}
	return apirec.Do(ctx, e.api, c, in, update, func(_ *Call, _ *ecs.UpdateServiceOutput, err error) {
		if err == nil && r != nil {
			e.controller.Deploy(dctx, r)
		}
	})
}

func (e *ECS) updateService(ctx context.Context, in *ecs.UpdateServiceInput) (*ecs.UpdateServiceOutput, *Rollout, context.Context, error) {
	if aws.ToString(in.Service) == "" {
		return nil, nil, nil, &types.InvalidParameterException{Message: aws.String("Service must be specified.")}
	}
	if in.DesiredCount != nil && *in.DesiredCount < 0 {
		return nil, nil, nil, &types.InvalidParameterException{Message: aws.String("DesiredCount must be ≥ 0.")}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	svc, err := e.lookupService(aws.ToString(in.Cluster), aws.ToString(in.Service))
	if err != nil {
		return nil, nil, nil, err
	}
	if svc.status != "ACTIVE" {
		return nil, nil, nil, &types.ServiceNotActiveException{Message: aws.String("Service was not ACTIVE.")}
	}
	if in.DesiredCount != nil {
		svc.desired = int(*in.DesiredCount)
	}
	newDef := in.TaskDefinition != nil && *in.TaskDefinition != svc.taskDef
	if newDef {
		svc.taskDef = *in.TaskDefinition
	}
	var r *Rollout
	var dctx context.Context
	if in.ForceNewDeployment || newDef {
		r, dctx = e.startDeployment(svc)
	}
	return &ecs.UpdateServiceOutput{Service: e.describe(svc)}, r, dctx, nil
}

// startDeployment makes a new primary deployment of svc's task definition, supersedes the
// primary one, and returns the rollout with the context that stops its controller. The
// caller holds e.mu.
func (e *ECS) startDeployment(svc *service) (*Rollout, context.Context) {
	now := e.now()
	d := &deployment{
		id: newDeploymentID(), status: StatusPrimary, rollout: types.DeploymentRolloutStateInProgress,
		taskDef: svc.taskDef, created: now, updated: now,
	}
	d.reason = "ECS deployment " + d.id + " in progress."
	var dctx context.Context
	dctx, d.cancel = context.WithCancel(e.ctx)
	for _, old := range svc.deployments {
		if old.status == StatusPrimary {
			old.status, old.updated = StatusActive, now
			if old.cancel != nil {
				old.cancel() // superseded: its controller stops
			}
		}
	}
	svc.deployments = append([]*deployment{d}, svc.deployments...)
	return &Rollout{e: e, cluster: svc.cluster, service: svc.name, id: d.id}, dctx
}

// DescribeServices describes up to 10 services of a cluster, by name or ARN. Unknown
// services are reported in Failures with reason MISSING; deleted ones have status INACTIVE.
func (e *ECS) DescribeServices(ctx context.Context, in *ecs.DescribeServicesInput, _ ...func(*ecs.Options)) (*ecs.DescribeServicesOutput, error) {
	c := Call{Op: OpDescribeServices, Cluster: aws.ToString(in.Cluster), Services: append([]string(nil), in.Services...)}
	return apirec.Do(ctx, e.api, c, in, e.describeServices, nil)
}

func (e *ECS) describeServices(ctx context.Context, in *ecs.DescribeServicesInput) (*ecs.DescribeServicesOutput, error) {
	if len(in.Services) == 0 || len(in.Services) > 10 {
		return nil, &types.InvalidParameterException{Message: aws.String("Services must name 1 to 10 services.")}
	}
	return withCluster(e, in.Cluster, func(cluster string, svcs map[string]*service) (*ecs.DescribeServicesOutput, error) {
		out := &ecs.DescribeServicesOutput{}
		for _, ref := range in.Services {
			name := serviceName(cluster, ref)
			svc, ok := svcs[name]
			if !ok {
				out.Failures = append(out.Failures, types.Failure{Arn: aws.String(ServiceARN(cluster, name)), Reason: aws.String("MISSING")})
				continue
			}
			out.Services = append(out.Services, *e.describe(svc))
		}
		return out, nil
	})
}

// describe renders svc as the SDK type. The caller holds e.mu.
func (e *ECS) describe(svc *service) *types.Service {
	s := &types.Service{
		ServiceArn:     aws.String(svc.arn),
		ServiceName:    aws.String(svc.name),
		ClusterArn:     aws.String(clusterARN(svc.cluster)),
		Status:         aws.String(svc.status),
		DesiredCount:   int32(svc.desired),
		TaskDefinition: aws.String(svc.taskDef),
		CreatedAt:      aws.Time(svc.created),
		LaunchType:     types.LaunchTypeFargate,
	}
	for _, d := range svc.deployments {
		var running, pending, wanted int32
		for _, t := range e.tasksOf(svc, d.id) {
			switch t.last {
			case TaskRunning:
				running++
			case TaskPending:
				pending++
			}
			if t.desired == TaskRunning {
				wanted++
			}
		}
		desired := wanted // an ACTIVE deployment is scaled down as its tasks are told to stop
		if d.status == StatusPrimary {
			desired = int32(svc.desired)
		}
		s.RunningCount += running
		s.PendingCount += pending
		s.Deployments = append(s.Deployments, types.Deployment{
			Id:                 aws.String(d.id),
			Status:             aws.String(d.status),
			RolloutState:       d.rollout,
			RolloutStateReason: aws.String(d.reason),
			TaskDefinition:     aws.String(d.taskDef),
			CreatedAt:          aws.Time(d.created),
			UpdatedAt:          aws.Time(d.updated),
			DesiredCount:       desired,
			RunningCount:       running,
			PendingCount:       pending,
			LaunchType:         types.LaunchTypeFargate,
		})
	}
	return s
}

// ListTasks lists task ARNs of a cluster in launch order, filtered by ServiceName,
// StartedBy and DesiredStatus (RUNNING by default, as in ECS; STOPPED lists the tasks that
// are stopping or stopped). It pages with MaxResults (1 to 100, default 100) and NextToken.
func (e *ECS) ListTasks(ctx context.Context, in *ecs.ListTasksInput, _ ...func(*ecs.Options)) (*ecs.ListTasksOutput, error) {
	c := Call{Op: OpListTasks, Cluster: aws.ToString(in.Cluster)}
	if in.ServiceName != nil {
		c.Services = []string{*in.ServiceName}
	}
	return apirec.Do(ctx, e.api, c, in, e.listTasks, nil)
}

func (e *ECS) listTasks(ctx context.Context, in *ecs.ListTasksInput) (*ecs.ListTasksOutput, error) {
	limit, start, want, err := checkListTasks(in)
	if err != nil {
		return nil, err
	}
	return withCluster(e, in.Cluster, func(cluster string, svcs map[string]*service) (*ecs.ListTasksOutput, error) {
		var name string
		if in.ServiceName != nil {
			name = serviceName(cluster, *in.ServiceName)
			if _, ok := svcs[name]; !ok {
				return nil, &types.ServiceNotFoundException{Message: aws.String("Service not found.")}
			}
		}
		var all []string
		for _, arn := range e.taskOrder {
			if e.tasks[arn].listed(cluster, name, want, in.StartedBy) {
				all = append(all, arn)
			}
		}
		if start > len(all) {
			return nil, &types.InvalidParameterException{Message: aws.String("Invalid NextToken.")}
		}
		end := min(start+limit, len(all))
		out := &ecs.ListTasksOutput{TaskArns: all[start:end]}
		if end < len(all) {
			out.NextToken = aws.String(strconv.Itoa(end))
		}
		return out, nil
	})
}

// checkListTasks checks ListTasks' parameters and returns the page size, the index the page
// starts at, and the desired status to list.
func checkListTasks(in *ecs.ListTasksInput) (limit, start int, want string, err error) {
	limit = 100
	if in.MaxResults != nil {
		if *in.MaxResults < 1 || *in.MaxResults > 100 {
			return 0, 0, "", &types.InvalidParameterException{Message: aws.String("MaxResults must be between 1 and 100.")}
		}
		limit = int(*in.MaxResults)
	}
	if in.NextToken != nil {
		n, err := strconv.Atoi(*in.NextToken)
		if err != nil || n < 0 {
			return 0, 0, "", &types.InvalidParameterException{Message: aws.String("Invalid NextToken.")}
		}
		start = n
	}
	want = string(in.DesiredStatus)
	if want == "" {
		want = TaskRunning
	}
	return limit, start, want, nil
}

// listed reports whether ListTasks lists t for these filters (service "" and startedBy nil
// match every task).
func (t *task) listed(cluster, service, desired string, startedBy *string) bool {
	return t.cluster == cluster && (service == "" || t.service == service) && t.desired == desired &&
		(startedBy == nil || t.deploymentID == *startedBy)
}

// DescribeTasks describes up to 100 tasks of a cluster, by ARN or id. Unknown tasks are
// reported in Failures with reason MISSING.
func (e *ECS) DescribeTasks(ctx context.Context, in *ecs.DescribeTasksInput, _ ...func(*ecs.Options)) (*ecs.DescribeTasksOutput, error) {
	c := Call{Op: OpDescribeTasks, Cluster: aws.ToString(in.Cluster), Tasks: len(in.Tasks)}
	return apirec.Do(ctx, e.api, c, in, e.describeTasks, nil)
}

func (e *ECS) describeTasks(ctx context.Context, in *ecs.DescribeTasksInput) (*ecs.DescribeTasksOutput, error) {
	if len(in.Tasks) == 0 || len(in.Tasks) > 100 {
		return nil, &types.InvalidParameterException{Message: aws.String(fmt.Sprintf("Tasks must name 1 to 100 tasks (%d given).", len(in.Tasks)))}
	}
	return withCluster(e, in.Cluster, func(cluster string, _ map[string]*service) (*ecs.DescribeTasksOutput, error) {
		out := &ecs.DescribeTasksOutput{}
		for _, ref := range in.Tasks {
			arn := ref
			if _, ok := e.tasks[arn]; !ok {
				arn = fmt.Sprintf("arn:aws:ecs:%s:%s:task/%s/%s", Region, Account, cluster, ref)
			}
			t, ok := e.tasks[arn]
			if !ok || t.cluster != cluster {
				out.Failures = append(out.Failures, types.Failure{Arn: aws.String(ref), Reason: aws.String("MISSING")})
				continue
			}
			out.Tasks = append(out.Tasks, types.Task{
				TaskArn:           aws.String(t.arn),
				ClusterArn:        aws.String(clusterARN(t.cluster)),
				TaskDefinitionArn: aws.String(t.taskDef),
				Group:             aws.String("service:" + t.service),
				StartedBy:         aws.String(t.deploymentID),
				LastStatus:        aws.String(t.last),
				DesiredStatus:     aws.String(t.desired),
				CreatedAt:         aws.Time(t.created),
				StartedAt:         timePtr(t.started),
				StoppingAt:        timePtr(t.stopping),
				StoppedAt:         timePtr(t.stopped),
				StoppedReason:     optString(t.stoppedReason),
				LaunchType:        types.LaunchTypeFargate,
			})
		}
		return out, nil
	})
}

func timePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := *t
	return &v
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// withCluster runs f on the cluster name names (the default cluster for nil or "") and its
// services, with e locked.
func withCluster[Out any](e *ECS, name *string, f func(cluster string, svcs map[string]*service) (*Out, error)) (*Out, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	cluster, svcs, err := e.resolveCluster(aws.ToString(name))
	if err != nil {
		return nil, err
	}
	return f(cluster, svcs)
}
