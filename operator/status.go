package operator

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/pgrotate/pgrotate/adapters/ecsservice"
	"github.com/pgrotate/pgrotate/tasks"
	"github.com/pgrotate/pgrotate/workflow"
)

// Invoker invokes a Lambda function synchronously.
type Invoker interface {
	Invoke(ctx context.Context, in *lambda.InvokeInput, optFns ...func(*lambda.Options)) (*lambda.InvokeOutput, error)
}

// StatusClients are the APIs status reads.
type StatusClients struct {
	Executions ExecutionReader
	Lambda     Invoker
	ECS        ecsservice.API
}

// Version is one labelled version of the secret.
type Version struct {
	ID     string   `json:"id"`
	Stages []string `json:"stages"`
}

// ServiceStatus is one ECS service's deployments.
type ServiceStatus struct {
	Service     workflow.Service    `json:"service"`
	Deployments []ServiceDeployment `json:"deployments"`
}

// ServiceDeployment is one deployment of a service, as DescribeServices reports it
// (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_Deployment.html).
type ServiceDeployment struct {
	ID                 string    `json:"id"`
	Status             string    `json:"status"`
	RolloutState       string    `json:"rolloutState,omitempty"`
	RolloutStateReason string    `json:"rolloutStateReason,omitempty"`
	Desired            int       `json:"desired"`
	Running            int       `json:"running"`
	UpdatedAt          time.Time `json:"updatedAt"`
}

// Status answers: which user is live, how did the last rotation end, when is the next one,
// how are the services deployed, and may a rotation start now.
type Status struct {
	Deployment   *Deployment         `json:"deployment"`
	LiveUser     string              `json:"liveUser,omitempty"`
	Versions     []Version           `json:"versions"`
	LastRotation *Rotation           `json:"lastRotation,omitempty"`
	Services     []ServiceStatus     `json:"services"`
	Preflight    *tasks.DryRunResult `json:"preflight"`
	MayRotate    bool                `json:"mayRotate"`
	Reasons      []string            `json:"reasons,omitempty"`
}

// PreflightFailed: the Preflight function returned an error instead of a dry-run result.
type PreflightFailed struct{ Function, Type, Message string }

func (e *PreflightFailed) Error() string {
	return fmt.Sprintf("the Preflight function %s failed the dry run: %s: %s", e.Function, e.Type, e.Message)
}

// GetStatus reads the deployment's status. The services are those of the newest execution
// (the rotation function puts its configured services in each execution's input); before any
// execution there are none to check.
func GetStatus(ctx context.Context, c StatusClients, d *Deployment) (*Status, error) {
	preflight, err := d.needPreflight()
	if err != nil {
		return nil, err
	}
	s := &Status{Deployment: d, Versions: versions(d.Versions), Services: []ServiceStatus{}}
	last, err := rotations(ctx, c.Executions, d, time.Time{}, 1)
	if err != nil {
		return nil, err
	}
	var services []workflow.Service
	if len(last) == 1 {
		s.LastRotation, services = &last[0], last[0].services
	}
	if s.Preflight, err = dryRun(ctx, c.Lambda, preflight, d.SecretARN, services); err != nil {
		return nil, err
	}
	s.LiveUser = s.Preflight.LiveUser
	svc := ecsservice.New(c.ECS)
	for _, sv := range services {
		deps, err := svc.Deployments(ctx, sv)
		if err != nil {
			return nil, err
		}
		st := ServiceStatus{Service: sv, Deployments: []ServiceDeployment{}}
		for _, d := range deps {
			st.Deployments = append(st.Deployments, ServiceDeployment{ID: d.ID, Status: d.Status, RolloutState: d.RolloutState,
				RolloutStateReason: d.RolloutStateReason, Desired: d.Desired, Running: d.Running, UpdatedAt: d.UpdatedAt})
		}
		s.Services = append(s.Services, st)
	}
	s.Reasons = reasons(s)
	s.MayRotate = len(s.Reasons) == 0
	return s, nil
}

// dryRun invokes the Preflight function in its dry-run mode (tasks.DryRunInput)
// (https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html): a function error comes
// back as X-Amz-Function-Error with the error payload, not as an API error.
func dryRun(ctx context.Context, l Invoker, function, secretARN string, services []workflow.Service) (*tasks.DryRunResult, error) {
	payload, err := json.Marshal(tasks.DryRunInput{DryRun: true, SecretARN: secretARN, Services: services})
	if err != nil {
		return nil, err
	}
	out, err := l.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(function), Payload: payload})
	if err != nil {
		return nil, fmt.Errorf("invoke the Preflight function %s: %w", function, err)
	}
	if out.FunctionError != nil {
		var fe struct{ ErrorType, ErrorMessage string }
		_ = json.Unmarshal(out.Payload, &fe)
		return nil, &PreflightFailed{Function: function, Type: fe.ErrorType, Message: fe.ErrorMessage}
	}
	var res tasks.DryRunResult
	if err := json.Unmarshal(out.Payload, &res); err != nil {
		return nil, fmt.Errorf("read the dry run of %s: %w", function, err)
	}
	return &res, nil
}

// reasons lists why a rotation may not start now; none means it may.
func reasons(s *Status) []string {
	var out []string
	v := workflow.Versions(s.Deployment.Versions)
	if p := v.With(workflow.StagePending); p != "" && p != v.With(workflow.StageCurrent) {
		out = append(out, fmt.Sprintf("version %s is AWSPENDING: a rotation is in progress or failed (see pgrotate redrive)", p))
	}
	if r := s.LastRotation; r != nil && r.Status == string(types.ExecutionStatusRunning) {
		out = append(out, fmt.Sprintf("execution %s is running", r.Execution))
	}
	for _, c := range s.Preflight.Checks {
		if !c.OK {
			out = append(out, fmt.Sprintf("%s: %s (%s)", c.Name, c.Problem, c.Error))
		}
	}
	return out
}

func versions(m map[string][]string) []Version {
	// AWSCURRENT first, then AWSPENDING, AWSPREVIOUS, then by id; the same for the labels.
	order := []string{workflow.StageCurrent, workflow.StagePending, workflow.StagePrevious}
	stageRank := func(s string) int {
		if i := slices.Index(order, s); i >= 0 {
			return i
		}
		return len(order)
	}
	out := make([]Version, 0, len(m))
	for id, stages := range m {
		stages = slices.Clone(stages)
		slices.SortStableFunc(stages, func(a, b string) int { return stageRank(a) - stageRank(b) })
		out = append(out, Version{ID: id, Stages: stages})
	}
	rank := func(v Version) int {
		if len(v.Stages) == 0 {
			return len(order)
		}
		return stageRank(v.Stages[0])
	}
	slices.SortFunc(out, func(a, b Version) int {
		if d := rank(a) - rank(b); d != 0 {
			return d
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}
