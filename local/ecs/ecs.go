// Package localecs is an in-process Amazon ECS for pgrotate's local mode and for tests:
// clusters of services whose deployments have a status (PRIMARY, ACTIVE) and a rollout
// state (IN_PROGRESS, COMPLETED, FAILED), and tasks started by those deployments.
//
// An *ECS has the method set of *ecs.Client for the operations pgrotate uses
// (UpdateService, DescribeServices, ListTasks, DescribeTasks), with the SDK's modelled
// errors wrapped in a *smithy.OperationError. UpdateService with ForceNewDeployment makes a
// new PRIMARY deployment, IN_PROGRESS, and demotes the previous one to ACTIVE; what the
// deployment then does (launch tasks, stop old ones, complete or fail) is decided by a
// Controller. The default, Auto, replaces the tasks at once (or after a delay) and marks
// the deployment COMPLETED; Manual leaves it IN_PROGRESS for a test to finish with
// CompleteDeployment or FailDeployment; the local demo plugs in a process fleet.
//
// Tasks carry StartedBy = the id of the deployment that launched them, as ECS services do,
// and move through PENDING → RUNNING → DEACTIVATING → STOPPED.
package localecs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/pgrotate/pgrotate/local/internal/apirec"
)

// Region and Account appear in the ARNs.
const (
	Region  = "local"
	Account = "000000000000"
)

// DefaultCluster is the cluster an operation without Cluster addresses, as in ECS.
const DefaultCluster = "default"

// Deployment statuses.
const (
	StatusPrimary = "PRIMARY"
	StatusActive  = "ACTIVE"
)

// Task statuses (LastStatus and DesiredStatus).
const (
	TaskPending      = "PENDING"
	TaskRunning      = "RUNNING"
	TaskDeactivating = "DEACTIVATING"
	TaskStopped      = "STOPPED"
)

// Operation names, as the SDK names them; used by Intercept, FailNext and Call.Op.
const (
	OpUpdateService    = "UpdateService"
	OpDescribeServices = "DescribeServices"
	OpListTasks        = "ListTasks"
	OpDescribeTasks    = "DescribeTasks"
)

const serviceID = "ECS"

// ECS is the in-process ECS. Create it with New and Close it when done. It is safe for
// concurrent use.
type ECS struct {
	// Log gives the calls made (Calls, CallsOf) and queues interceptors (Intercept,
	// FailNext).
	apirec.Log[Call]

	now        func() time.Time
	controller Controller

	ctx    context.Context // cancelled by Close; parent of every controller context
	cancel context.CancelFunc
	wg     sync.WaitGroup // controller goroutines (Rollout.Go)

	mu        sync.Mutex
	clusters  map[string]map[string]*service // cluster → service name → service
	tasks     map[string]*task               // by ARN
	taskOrder []string                       // ARNs in launch order
	api       apirec.API[Call]
}

// Option configures an ECS.
type Option func(*ECS)

// WithController sets what carries out new deployments. The default is Auto{}.
func WithController(c Controller) Option {
	return func(e *ECS) { e.controller = c }
}

// WithClock sets the source of every timestamp (deployments' CreatedAt/UpdatedAt, tasks'
// CreatedAt/StartedAt/StoppedAt). The default is time.Now. Auto's Delay is real time.
func WithClock(now func() time.Time) Option {
	return func(e *ECS) { e.now = now }
}

// New returns an ECS with no cluster.
func New(opts ...Option) *ECS {
	e := &ECS{
		now:        time.Now,
		controller: Auto{},
		clusters:   make(map[string]map[string]*service),
		tasks:      make(map[string]*task),
	}
	for _, o := range opts {
		o(e)
	}
	// Each operation runs in apirec.Do, without e.mu held.
	rec := apirec.New(func(c Call) string { return c.Op },
		func(c Call) Call { c.Services = append([]string(nil), c.Services...); return c })
	e.Log = rec.Log()
	e.api = apirec.API[Call]{Rec: rec, Service: serviceID, SetErr: func(c *Call, err error) { c.Err = err }}
	if e.controller == nil {
		e.controller = Auto{}
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	return e
}

// Close cancels the controllers' contexts and waits for the goroutines they started with
// Rollout.Go.
func (e *ECS) Close() {
	e.cancel()
	e.wg.Wait()
}

type service struct {
	cluster, name, arn string
	status             string // ACTIVE, DRAINING, INACTIVE
	desired            int
	taskDef            string
	created            time.Time
	deployments        []*deployment // PRIMARY first, then newest first
}

type deployment struct {
	id      string
	status  string
	rollout types.DeploymentRolloutState
	reason  string
	taskDef string
	created time.Time
	updated time.Time
	cancel  context.CancelFunc // the controller's context; nil for deployments made by AddService
}

type task struct {
	arn, cluster, service, deploymentID, taskDef string
	last, desired                                string
	created                                      time.Time
	started, stopping, stopped                   *time.Time
	stoppedReason                                string
}

func (t *task) live() bool { return t.last != TaskStopped }

func clusterARN(cluster string) string {
	return fmt.Sprintf("arn:aws:ecs:%s:%s:cluster/%s", Region, Account, cluster)
}

// ServiceARN returns the ARN of a service, in the long format ECS uses today.
func ServiceARN(cluster, name string) string {
	return fmt.Sprintf("arn:aws:ecs:%s:%s:service/%s/%s", Region, Account, cluster, name)
}

func taskDefARN(family string) string {
	return fmt.Sprintf("arn:aws:ecs:%s:%s:task-definition/%s:1", Region, Account, family)
}

func newDeploymentID() string {
	// ECS ids look like ecs-svc/1234567890123456789; they only need to be unique here.
	return fmt.Sprintf("ecs-svc/%019d", mrand.Int64N(1e18)+1e18)
}

func newTaskID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// resolveCluster returns the services of cluster ("" = default) by name or ARN. The caller
// holds e.mu.
func (e *ECS) resolveCluster(cluster string) (string, map[string]*service, error) {
	if cluster == "" {
		cluster = DefaultCluster
	}
	if after, ok := strings.CutPrefix(cluster, fmt.Sprintf("arn:aws:ecs:%s:%s:cluster/", Region, Account)); ok {
		cluster = after
	}
	svcs, ok := e.clusters[cluster]
	if !ok {
		return "", nil, &types.ClusterNotFoundException{Message: aws.String("Cluster not found.")}
	}
	return cluster, svcs, nil
}

// serviceName turns a service name or ARN into its name.
func serviceName(cluster, ref string) string {
	if after, ok := strings.CutPrefix(ref, ServiceARN(cluster, "")); ok {
		return after
	}
	return ref
}

// lookupService finds an ACTIVE service. The caller holds e.mu.
func (e *ECS) lookupService(cluster, ref string) (*service, error) {
	cluster, svcs, err := e.resolveCluster(cluster)
	if err != nil {
		return nil, err
	}
	svc, ok := svcs[serviceName(cluster, ref)]
	if !ok {
		return nil, &types.ServiceNotFoundException{Message: aws.String("Service not found.")}
	}
	return svc, nil
}

func (svc *service) deployment(id string) *deployment {
	for _, d := range svc.deployments {
		if d.id == id {
			return d
		}
	}
	return nil
}

func (svc *service) primary() *deployment {
	for _, d := range svc.deployments {
		if d.status == StatusPrimary {
			return d
		}
	}
	return nil
}

// tasksOf returns the live tasks of svc, optionally only those of one deployment, in
// launch order. The caller holds e.mu.
func (e *ECS) tasksOf(svc *service, deploymentID string) []*task {
	var out []*task
	for _, arn := range e.taskOrder {
		t := e.tasks[arn]
		if t.cluster == svc.cluster && t.service == svc.name && t.live() && (deploymentID == "" || t.deploymentID == deploymentID) {
			out = append(out, t)
		}
	}
	return out
}

// launch records a new task of deployment d. The caller holds e.mu.
func (e *ECS) launch(svc *service, d *deployment, running bool, at time.Time) *task {
	t := &task{
		arn:          fmt.Sprintf("arn:aws:ecs:%s:%s:task/%s/%s", Region, Account, svc.cluster, newTaskID()),
		cluster:      svc.cluster,
		service:      svc.name,
		deploymentID: d.id,
		taskDef:      d.taskDef,
		last:         TaskPending,
		desired:      TaskRunning,
		created:      at,
	}
	if running {
		t.last = TaskRunning
		t.started = &at
	}
	e.tasks[t.arn] = t
	e.taskOrder = append(e.taskOrder, t.arn)
	return t
}

// stop moves t to STOPPED at once. The caller holds e.mu.
func stop(t *task, reason string, at time.Time) {
	if !t.live() {
		return
	}
	if t.stopping == nil {
		t.stopping = &at
	}
	t.desired = TaskStopped
	t.last = TaskStopped
	t.stopped = &at
	if t.stoppedReason == "" {
		t.stoppedReason = reason
	}
}

// AddService creates a service (and its cluster, if new) running desired tasks that were
// created and started at launchedAt, under one PRIMARY deployment, COMPLETED, created then.
// It returns the service ARN.
func (e *ECS) AddService(cluster, name string, desired int, launchedAt time.Time) (string, error) {
	if cluster == "" {
		cluster = DefaultCluster
	}
	if name == "" || desired < 0 {
		return "", fmt.Errorf("add service %q/%q: need a name and a desired count ≥ 0", cluster, name)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.clusters[cluster] == nil {
		e.clusters[cluster] = make(map[string]*service)
	}
	if _, ok := e.clusters[cluster][name]; ok {
		return "", fmt.Errorf("add service %s/%s: already exists", cluster, name)
	}
	svc := &service{
		cluster: cluster, name: name, arn: ServiceARN(cluster, name), status: "ACTIVE",
		desired: desired, taskDef: taskDefARN(name), created: launchedAt,
	}
	d := &deployment{
		id: newDeploymentID(), status: StatusPrimary, rollout: types.DeploymentRolloutStateCompleted,
		reason: "ECS deployment completed.", taskDef: svc.taskDef, created: launchedAt, updated: launchedAt,
	}
	svc.deployments = []*deployment{d}
	e.clusters[cluster][name] = svc
	for range desired {
		e.launch(svc, d, true, launchedAt)
	}
	return svc.arn, nil
}

// DeleteService marks a service INACTIVE and stops its tasks, as deleting it in ECS does:
// DescribeServices still returns it, with status INACTIVE, and UpdateService refuses it.
func (e *ECS) DeleteService(cluster, name string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	svc, err := e.lookupService(cluster, name)
	if err != nil {
		return fmt.Errorf("delete service %s/%s: %w", cluster, name, err)
	}
	now := e.now()
	for _, t := range e.tasksOf(svc, "") {
		stop(t, "Service deleted", now)
	}
	for _, d := range svc.deployments {
		if d.cancel != nil {
			d.cancel()
		}
	}
	svc.status = "INACTIVE"
	svc.desired = 0
	svc.deployments = nil
	return nil
}

// Rollout returns a handle on the service's PRIMARY deployment.
func (e *ECS) Rollout(cluster, name string) (*Rollout, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	svc, err := e.lookupService(cluster, name)
	if err != nil {
		return nil, fmt.Errorf("rollout of %s/%s: %w", cluster, name, err)
	}
	d := svc.primary()
	if d == nil {
		return nil, fmt.Errorf("rollout of %s/%s: no PRIMARY deployment", cluster, name)
	}
	return &Rollout{e: e, cluster: svc.cluster, service: svc.name, id: d.id}, nil
}

// CompleteDeployment finishes the service's PRIMARY deployment at once: it launches the
// tasks it still lacks (running), stops the tasks of older deployments, drops those
// deployments and marks it COMPLETED. See Rollout.Replace.
func (e *ECS) CompleteDeployment(cluster, name string) error {
	r, err := e.Rollout(cluster, name)
	if err != nil {
		return err
	}
	return r.Replace()
}

// FailDeployment fails the service's PRIMARY deployment, as the deployment circuit breaker
// does. See Rollout.Fail.
func (e *ECS) FailDeployment(cluster, name, reason string, rollback bool) error {
	r, err := e.Rollout(cluster, name)
	if err != nil {
		return err
	}
	return r.Fail(reason, rollback)
}

// RemoveDeployment drops a deployment that is not PRIMARY from the service's list, as ECS
// does once one is INACTIVE (for example a failed deployment after a rollback), and stops
// its tasks.
func (e *ECS) RemoveDeployment(cluster, name, deploymentID string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	svc, err := e.lookupService(cluster, name)
	if err != nil {
		return fmt.Errorf("remove deployment %s of %s/%s: %w", deploymentID, cluster, name, err)
	}
	d := svc.deployment(deploymentID)
	switch {
	case d == nil:
		return fmt.Errorf("remove deployment %s of %s/%s: no such deployment", deploymentID, cluster, name)
	case d.status == StatusPrimary:
		return fmt.Errorf("remove deployment %s of %s/%s: it is PRIMARY", deploymentID, cluster, name)
	}
	now := e.now()
	for _, t := range e.tasksOf(svc, d.id) {
		stop(t, "Deployment removed", now)
	}
	e.drop(svc, d)
	return nil
}

// drop removes d from svc and cancels its controller. The caller holds e.mu.
func (e *ECS) drop(svc *service, d *deployment) {
	if d.cancel != nil {
		d.cancel()
	}
	out := svc.deployments[:0]
	for _, x := range svc.deployments {
		if x != d {
			out = append(out, x)
		}
	}
	svc.deployments = out
}

// Call is one recorded operation.
type Call struct {
	Op      string
	Cluster string
	// Services are the services named (UpdateService's Service, DescribeServices'
	// Services, ListTasks' ServiceName).
	Services []string
	// Tasks is how many tasks DescribeTasks asked for.
	Tasks int
	// ForceNewDeployment is UpdateService's flag.
	ForceNewDeployment bool
	Err                error
}
