// Package rotator is the Secrets Manager rotation function of pgrotate, and the only code
// that writes the app secret (invariant 7).
//
// Secrets Manager calls it four times per rotation. createSecret puts the AWSPENDING version
// (the alternate user with a fresh password, created with the RotationToken so Secrets
// Manager accepts it as this function's) and starts the rotation execution, named after the
// version id (executions.Name). setSecret, testSecret and finishSecret then wait, within the
// Lambda deadline, for the execution to pass SetPassword, CheckReplicas and Promote, and
// report its failure by state and cause. A failed execution is redriven by the next
// createSecret of its version; once Step Functions no longer allows that (14 days after the
// failure), a successor execution of the same version takes over (see start).
//
// A testSecret for a version no execution belongs to, and that createSecret did not write,
// is Secrets Manager's test of the rotation configuration (RotateSecret without
// RotateImmediately): it gets a read-only check of the configuration (CheckConfiguration). The state machine itself calls the "promote" action, which moves
// AWSCURRENT: the move happens in the middle of the workflow (before the redeploy), and the
// function that moves it is the registered rotation function.
package rotator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/pgrotate/pgrotate/adapters/executions"
	"github.com/pgrotate/pgrotate/workflow"
)

// Secrets Manager step names, as the service sends them.
const (
	StepCreate = "createSecret"
	StepSet    = "setSecret"
	StepTest   = "testSecret"
	StepFinish = "finishSecret"
)

// Event is either a Secrets Manager rotation event or a promote request from the state
// machine. RotationToken is a secret: it is passed to PutSecretValue and nowhere else.
type Event struct {
	Step               string            `json:"Step,omitempty"`
	SecretID           string            `json:"SecretId,omitempty"`
	ClientRequestToken string            `json:"ClientRequestToken,omitempty"`
	RotationToken      workflow.Password `json:"RotationToken,omitempty"`

	Action    string `json:"action,omitempty"`
	SecretARN string `json:"secretArn,omitempty"`
	Token     string `json:"token,omitempty"`
}

// Secrets is what the rotation function does with Secrets Manager (adapters/secretstore).
type Secrets interface {
	VersionStages(ctx context.Context, arn string) (workflow.Versions, error)
	AppSecret(ctx context.Context, arn, versionID string) (workflow.AppSecret, error)
	AdminSecret(ctx context.Context, arn string) (workflow.AdminSecret, error)
	PutPending(ctx context.Context, arn, token string, s workflow.AppSecret, rotationToken workflow.Password) error
	MoveCurrent(ctx context.Context, arn, toVersion, fromVersion string) error
	RandomPassword(ctx context.Context, length int, exclude string) (workflow.Password, error)
	IsNotFound(err error) bool
}

// StepFunctions is what the rotation function does with Step Functions; *sfn.Client and the
// local interpreter satisfy it.
type StepFunctions interface {
	executions.API
	StartExecution(ctx context.Context, in *sfn.StartExecutionInput, optFns ...func(*sfn.Options)) (*sfn.StartExecutionOutput, error)
	StopExecution(ctx context.Context, in *sfn.StopExecutionInput, optFns ...func(*sfn.Options)) (*sfn.StopExecutionOutput, error)
	RedriveExecution(ctx context.Context, in *sfn.RedriveExecutionInput, optFns ...func(*sfn.Options)) (*sfn.RedriveExecutionOutput, error)
	ListExecutions(ctx context.Context, in *sfn.ListExecutionsInput, optFns ...func(*sfn.Options)) (*sfn.ListExecutionsOutput, error)
	DescribeStateMachine(ctx context.Context, in *sfn.DescribeStateMachineInput, optFns ...func(*sfn.Options)) (*sfn.DescribeStateMachineOutput, error)
}

// ECS is what the configuration test asks ECS (adapters/ecsservice): whether a service exists
// and is ACTIVE.
type ECS interface {
	CheckService(ctx context.Context, svc workflow.Service) error
}

// Config is the static wiring of the function. Zero values take the documented defaults.
type Config struct {
	StateMachineARN string
	// Services are the ECS services to redeploy after the promotion.
	Services []workflow.Service
	// PasswordLength defaults to 32.
	PasswordLength int
	// ExcludeCharacters defaults to DefaultExcludeCharacters.
	ExcludeCharacters string
	// PollInterval is how often set/test/finishSecret read the execution; default 2s.
	PollInterval time.Duration
	// DeadlineMargin is left before the Lambda deadline to answer; default 3s.
	DeadlineMargin time.Duration
}

// DefaultExcludeCharacters is workflow.DefaultExcludeCharacters, for callers of this package.
const DefaultExcludeCharacters = workflow.DefaultExcludeCharacters

// Rotator handles the events.
type Rotator struct {
	Secrets Secrets
	SFN     StepFunctions
	// ECS is used by the configuration test only; it may be nil when Config.Services is empty.
	ECS    ECS
	Config Config
	Log    *slog.Logger
	Now    func() time.Time
}

// Handle is the Lambda handler. For Secrets Manager steps it returns nil output; for a
// promote request, the promotion time.
func (r *Rotator) Handle(ctx context.Context, ev Event) (*workflow.PromoteResult, error) {
	if ev.Action != "" {
		if ev.Action != workflow.ActionPromote {
			return nil, fmt.Errorf("unknown action %q", ev.Action)
		}
		res, err := r.Promote(ctx, ev.SecretARN, ev.Token)
		if err != nil {
			r.log().ErrorContext(ctx, "promote failed", "secret", ev.SecretARN, "version", ev.Token, "error", err.Error())
			var sup *workflow.RotationSuperseded
			if errors.As(err, &sup) {
				return nil, sup
			}
			return nil, err
		}
		return &res, nil
	}
	if ev.SecretID == "" || ev.ClientRequestToken == "" {
		return nil, errors.New("rotation event without SecretId or ClientRequestToken")
	}
	var err error
	switch ev.Step {
	case StepCreate:
		err = r.CreateSecret(ctx, ev.SecretID, ev.ClientRequestToken, ev.RotationToken)
	case StepSet:
		err = r.waitFor(ctx, ev.SecretID, ev.ClientRequestToken, workflow.StateSetPassword)
	case StepTest:
		err = r.testSecret(ctx, ev.SecretID, ev.ClientRequestToken)
	case StepFinish:
		err = r.finish(ctx, ev.SecretID, ev.ClientRequestToken)
	default:
		err = fmt.Errorf("unknown rotation step %q", ev.Step)
	}
	if err != nil {
		r.log().ErrorContext(ctx, "rotation step failed", "step", ev.Step, "secret", ev.SecretID, "version", ev.ClientRequestToken, "error", err.Error())
		return nil, err
	}
	r.log().InfoContext(ctx, "rotation step done", "step", ev.Step, "secret", ev.SecretID, "version", ev.ClientRequestToken)
	return nil, nil
}

// CreateSecret puts the AWSPENDING version if it is not there yet, stops executions of
// other versions of this secret, and starts (or resumes) this version's execution.
func (r *Rotator) CreateSecret(ctx context.Context, arn, token string, rotationToken workflow.Password) error {
	v, err := r.stages(ctx, arn)
	if err != nil {
		return err
	}
	if v.Stage(token) == workflow.TokenCurrent {
		return r.resumeRedeploy(ctx, token)
	}
	currentVersion := v.Current()
	if currentVersion == "" {
		return &workflow.InvalidSecret{Secret: arn, Reason: "no version is AWSCURRENT"}
	}
	current, err := r.Secrets.AppSecret(ctx, arn, currentVersion)
	if err != nil {
		return fmt.Errorf("read AWSCURRENT of %s: %w", arn, err)
	}
	pending, err := r.Secrets.AppSecret(ctx, arn, token)
	switch {
	case err == nil:
		// A retried createSecret: the version exists; make sure it is still the rotation
		// in progress (a newer one may have taken AWSPENDING) and ours to follow.
		if err := v.NotPending(token); err != nil {
			return err
		}
		if err := workflow.ValidatePending(current, pending); err != nil {
			return err
		}
	case r.Secrets.IsNotFound(err):
		pw, err := r.Secrets.RandomPassword(ctx, r.passwordLength(), r.exclude())
		if err != nil {
			return fmt.Errorf("generate a password: %w", err)
		}
		pending = current.Pending(pw)
		if err := r.Secrets.PutPending(ctx, arn, token, pending, rotationToken); err != nil {
			return fmt.Errorf("put AWSPENDING version %s: %w", token, err)
		}
		r.log().InfoContext(ctx, "pending version created", "secret", arn, "version", token, "pending_user", pending.Username)
	default:
		return fmt.Errorf("read version %s of %s: %w", token, arn, err)
	}
	if err := r.stopSuperseded(ctx, arn, token); err != nil {
		return err
	}
	return r.start(ctx, arn, token)
}

// start starts the rotation's execution (named executions.Name(token)), or resolves
// ExecutionAlreadyExists: its newest execution (see executions.Reader.Latest) running or
// done is fine; one that failed before Promote is redriven; one that can no longer be
// redriven (Step Functions redrives only within 14 days of the failure, and the name stays
// taken for 90: https://docs.aws.amazon.com/step-functions/latest/apireference/API_RedriveExecution.html)
// is followed by a successor execution of the same version, which runs the rotation again
// from Preflight: every state is idempotent and rechecks its preconditions.
func (r *Rotator) start(ctx context.Context, arn, token string) error {
	err := r.startAttempt(ctx, arn, token, 1)
	var exists *types.ExecutionAlreadyExists
	if !errors.As(err, &exists) {
		return err
	}
	a, found, err := r.reader().Latest(ctx, token)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("execution %s exists but cannot be read", executions.Name(token))
	}
	p, err := r.reader().Progress(ctx, a.Name)
	if err != nil {
		return err
	}
	switch {
	case !p.Found:
		return fmt.Errorf("execution %s exists but cannot be read", a.Name)
	case p.Status == types.ExecutionStatusRunning, p.Status == types.ExecutionStatusSucceeded, p.Status == types.ExecutionStatusPendingRedrive:
		r.log().InfoContext(ctx, "execution already exists", "secret", arn, "version", token, "execution", a.Name, "status", string(p.Status))
		return nil
	case p.Ended() && !p.Passed(workflow.StatePromote):
		_, err := r.SFN.RedriveExecution(ctx, &sfn.RedriveExecutionInput{ExecutionArn: aws.String(r.reader().ARN(a.Name))})
		var notRedrivable *types.ExecutionNotRedrivable
		if errors.As(err, &notRedrivable) {
			return r.successor(ctx, arn, token, a, p, aws.ToString(notRedrivable.Message))
		}
		if err != nil {
			return fmt.Errorf("redrive execution %s (failed in %s): %w", a.Name, p.FailedState, err)
		}
		r.log().InfoContext(ctx, "execution redriven", "secret", arn, "version", token, "execution", a.Name, "from_state", p.FailedState)
		return nil
	}
	return fmt.Errorf("execution %s ended %s after Promote, yet version %s is not AWSCURRENT", a.Name, p.Status, token)
}

// successor starts the next execution of the rotation to token after a, which failed and
// can no longer be redriven.
func (r *Rotator) successor(ctx context.Context, arn, token string, a executions.Attempt, p executions.Progress, why string) error {
	n := a.Last + 1
	if n > executions.MaxAttempts {
		return &RotationStuck{Secret: arn, Version: token, Reason: fmt.Sprintf("execution %s failed in %s and cannot be redriven (%s), and all %d execution names of this version are used", a.Name, p.FailedState, why, executions.MaxAttempts)}
	}
	err := r.startAttempt(ctx, arn, token, n)
	var exists *types.ExecutionAlreadyExists
	if errors.As(err, &exists) {
		return &RotationStuck{Secret: arn, Version: token, Reason: fmt.Sprintf("execution %s failed in %s and cannot be redriven (%s), and its successor %s cannot be started", a.Name, p.FailedState, why, executions.AttemptName(token, n))}
	}
	if err != nil {
		return err
	}
	r.log().WarnContext(ctx, "execution cannot be redriven: successor started", "secret", arn, "version", token,
		"failed_execution", a.Name, "failed_state", p.FailedState, "reason", why, "execution", executions.AttemptName(token, n))
	return nil
}

// startAttempt starts attempt n of the rotation to token. Errors other than
// ExecutionAlreadyExists are wrapped with the action.
func (r *Rotator) startAttempt(ctx context.Context, arn, token string, n int) error {
	input, err := json.Marshal(workflow.State{SecretARN: arn, Token: token, Services: r.Config.Services})
	if err != nil {
		return err
	}
	name := executions.AttemptName(token, n)
	_, err = r.SFN.StartExecution(ctx, &sfn.StartExecutionInput{
		StateMachineArn: aws.String(r.Config.StateMachineARN),
		Name:            aws.String(name),
		Input:           aws.String(string(input)),
	})
	var exists *types.ExecutionAlreadyExists
	switch {
	case errors.As(err, &exists):
		return err
	case err != nil:
		return fmt.Errorf("start execution %s: %w", name, err)
	}
	r.log().InfoContext(ctx, "execution started", "secret", arn, "version", token, "execution", name)
	return nil
}

// stopSuperseded stops running executions of this secret for other versions: AWSPENDING has
// moved to token, so they must not change anything any more (invariant 8). Their own steps
// would refuse anyway; stopping them makes it visible.
func (r *Rotator) stopSuperseded(ctx context.Context, arn, token string) error {
	var next *string
	for {
		out, err := r.SFN.ListExecutions(ctx, &sfn.ListExecutionsInput{
			StateMachineArn: aws.String(r.Config.StateMachineARN),
			StatusFilter:    types.ExecutionStatusRunning,
			NextToken:       next,
		})
		if err != nil {
			return fmt.Errorf("list running executions: %w", err)
		}
		for _, ex := range out.Executions {
			if executions.IsAttemptOf(aws.ToString(ex.Name), token) {
				continue
			}
			// An execution past Promote finished its rotation; it is only redeploying.
			// Stopping it would hide a failed rollout from the alarm.
			if p, err := r.reader().Progress(ctx, aws.ToString(ex.Name)); err != nil {
				return err
			} else if p.Passed(workflow.StatePromote) {
				continue
			}
			desc, err := r.SFN.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: ex.ExecutionArn})
			if err != nil {
				return fmt.Errorf("describe execution %s: %w", aws.ToString(ex.Name), err)
			}
			var in workflow.State
			if json.Unmarshal([]byte(aws.ToString(desc.Input)), &in) != nil || in.SecretARN != arn {
				continue
			}
			_, err = r.SFN.StopExecution(ctx, &sfn.StopExecutionInput{
				ExecutionArn: ex.ExecutionArn,
				Error:        aws.String("RotationSuperseded"),
				Cause:        aws.String(fmt.Sprintf("superseded by the rotation to version %s", token)),
			})
			if err != nil {
				return fmt.Errorf("stop superseded execution %s: %w", aws.ToString(ex.Name), err)
			}
			r.log().WarnContext(ctx, "superseded execution stopped", "secret", arn, "stopped", aws.ToString(ex.Name), "version", token)
		}
		if out.NextToken == nil {
			return nil
		}
		next = out.NextToken
	}
}

// waitFor returns once the execution of token has passed state, or the version is already
// AWSCURRENT; it fails with the failed state and cause, or at the Lambda deadline.
func (r *Rotator) waitFor(ctx context.Context, arn, token, state string) error {
	v, err := r.stages(ctx, arn)
	if err != nil {
		return err
	}
	switch v.Stage(token) {
	case workflow.TokenCurrent:
		return nil
	case workflow.TokenGone:
		return fmt.Errorf("version %s of %s is not AWSPENDING", token, arn)
	}
	deadline, hasDeadline := ctx.Deadline()
	for {
		a, p, err := r.reader().LatestProgress(ctx, token)
		if err != nil {
			return err
		}
		switch {
		case !p.Found:
			return &noExecution{token: token}
		case p.Passed(state):
			return nil
		case p.Ended():
			return fmt.Errorf("rotation execution %s %s in state %s: %s: %s", a.Name, p.Status, p.FailedState, p.Error, p.Cause)
		case p.Status == types.ExecutionStatusSucceeded:
			return fmt.Errorf("rotation execution %s succeeded without passing %s", a.Name, state)
		}
		wait := r.pollInterval()
		if hasDeadline && time.Until(deadline)-r.margin() < wait {
			return fmt.Errorf("rotation execution %s has not passed %s before the Lambda deadline; Secrets Manager will retry", a.Name, state)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

func (r *Rotator) finish(ctx context.Context, arn, token string) error {
	if err := r.waitFor(ctx, arn, token, workflow.StatePromote); err != nil {
		return err
	}
	v, err := r.stages(ctx, arn)
	if err != nil {
		return err
	}
	if v.Stage(token) != workflow.TokenCurrent {
		return fmt.Errorf("execution %s passed Promote but version %s is not AWSCURRENT", token, token)
	}
	return r.resumeRedeploy(ctx, token)
}

// resumeRedeploy redrives the execution of a version that is AWSCURRENT but whose execution
// ended before Redeploy (e.g. the Promote Lambda timed out after moving the stage): without
// it, no service would ever be redeployed onto the new version.
func (r *Rotator) resumeRedeploy(ctx context.Context, token string) error {
	a, p, err := r.reader().LatestProgress(ctx, token)
	if err != nil {
		return err
	}
	if !p.Found || !p.Ended() || p.Passed(workflow.StatePromote) {
		return nil
	}
	if _, err := r.SFN.RedriveExecution(ctx, &sfn.RedriveExecutionInput{ExecutionArn: aws.String(r.reader().ARN(a.Name))}); err != nil {
		return fmt.Errorf("redrive execution %s to redeploy the promoted version: %w", a.Name, err)
	}
	r.log().InfoContext(ctx, "promoted version not redeployed: execution redriven", "version", token, "from_state", p.FailedState)
	return nil
}

// Promote moves AWSCURRENT to token (AWSPREVIOUS follows) and returns when. It is a no-op
// when token is already AWSCURRENT.
func (r *Rotator) Promote(ctx context.Context, arn, token string) (workflow.PromoteResult, error) {
	if arn == "" || token == "" {
		return workflow.PromoteResult{}, &workflow.InvalidSecret{Secret: "state", Reason: "promote needs secretArn and token"}
	}
	v, err := r.stages(ctx, arn)
	if err != nil {
		return workflow.PromoteResult{}, err
	}
	now := r.now()
	if v.Stage(token) == workflow.TokenCurrent {
		return workflow.PromoteResult{PromotedAt: now}, nil
	}
	if err := v.NotPending(token); err != nil {
		return workflow.PromoteResult{}, err
	}
	current := v.Current()
	if err := r.Secrets.MoveCurrent(ctx, arn, token, current); err != nil {
		return workflow.PromoteResult{}, fmt.Errorf("move AWSCURRENT to %s: %w", token, err)
	}
	r.log().InfoContext(ctx, "promoted", "secret", arn, "version", token, "previous", current)
	return workflow.PromoteResult{PromotedAt: r.now()}, nil
}

func (r *Rotator) stages(ctx context.Context, arn string) (workflow.Versions, error) {
	v, err := r.Secrets.VersionStages(ctx, arn)
	if err != nil {
		return nil, fmt.Errorf("read versions of %s: %w", arn, err)
	}
	return v, nil
}

func (r *Rotator) reader() *executions.Reader {
	return &executions.Reader{API: r.SFN, StateMachineARN: r.Config.StateMachineARN}
}

func (r *Rotator) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.Default()
}

func (r *Rotator) now() time.Time {
	if r.Now != nil {
		return r.Now().UTC()
	}
	return time.Now().UTC()
}

func (r *Rotator) passwordLength() int {
	if r.Config.PasswordLength > 0 {
		return r.Config.PasswordLength
	}
	return 32
}

func (r *Rotator) exclude() string {
	if r.Config.ExcludeCharacters != "" {
		return r.Config.ExcludeCharacters
	}
	return DefaultExcludeCharacters
}

func (r *Rotator) pollInterval() time.Duration {
	if r.Config.PollInterval > 0 {
		return r.Config.PollInterval
	}
	return 2 * time.Second
}

func (r *Rotator) margin() time.Duration {
	if r.Config.DeadlineMargin > 0 {
		return r.Config.DeadlineMargin
	}
	return 3 * time.Second
}
