package workflow

import (
	"fmt"
	"slices"
	"time"
)

// State names of statemachine/rotation.asl.json. The rotation function follows an execution
// by these names.
const (
	StatePreflight     = "Preflight"
	StateCloneUser     = "CloneUser"
	StateSetPassword   = "SetPassword"
	StateTestLogin     = "TestLogin"
	StateCheckReplicas = "CheckReplicas"
	StatePromote       = "Promote"
	StateRedeploy      = "Redeploy"
	StateNotifyFailure = "NotifyFailure"
	// StateRetirePrevious follows Redeploy when retirement is on (see Retirement). It is not
	// on MainPath: with retirement off the execution ends after Redeploy.
	StateRetirePrevious = "RetirePrevious"
)

// MainPath is the rotation's success path, in order. States inside the Redeploy Map are not
// on it: they count as Redeploy.
var MainPath = []string{StatePreflight, StateCloneUser, StateSetPassword, StateTestLogin, StateCheckReplicas, StatePromote, StateRedeploy}

// IsTopLevel reports whether a state is on the main path, RetirePrevious or NotifyFailure,
// the states a timeline of an execution shows.
func IsTopLevel(state string) bool {
	return state == StateNotifyFailure || state == StateRetirePrevious || slices.Contains(MainPath, state)
}

// Secrets Manager staging labels.
const (
	StageCurrent  = "AWSCURRENT"
	StagePending  = "AWSPENDING"
	StagePrevious = "AWSPREVIOUS"
)

// State is the input and output of every step. It carries references only: never a
// password, a verifier or a RotationToken, because Step Functions keeps every state's input
// and output in the execution history.
type State struct {
	// SecretARN is the app secret being rotated.
	SecretARN string `json:"secretArn"`
	// Token is the ClientRequestToken: the pending version's id and the execution's name.
	Token string `json:"token"`
	// Services are the ECS services that hold the app secret.
	Services []Service `json:"services"`

	// Filled by Preflight.
	ActiveVersion string     `json:"activeVersion,omitempty"` // version id of AWSCURRENT at the start
	ActiveUser    string     `json:"activeUser,omitempty"`
	PendingUser   string     `json:"pendingUser,omitempty"`
	Primary       *Endpoint  `json:"primary,omitempty"`
	Replicas      []Endpoint `json:"replicas,omitempty"`

	// LSN is the primary's WAL position after the password change (SetPassword); every
	// replica must have replayed it before the new password counts as replicated.
	LSN string `json:"lsn,omitempty"`
	// Promotion is the rotation function's answer to Promote: when AWSCURRENT moved to Token.
	Promotion *PromoteResult `json:"promotion,omitempty"`
	// Rollouts is the outcome of Redeploy, one per service.
	Rollouts []Rollout `json:"rollouts,omitempty"`
	// Retirement is the retirement policy, set from the definition after Redeploy, and
	// RetirePrevious's outcome.
	Retirement *Retirement `json:"retirement,omitempty"`
}

// RetireOff is Retirement.After when the previous password is not retired.
const RetireOff = "off"

// Retirement is the opt-in retirement of the previous password: once every service's
// redeploy COMPLETED, the AWSPREVIOUS user's password gets VALID UNTIL now + After, and the
// next rotation's password change clears it.
type Retirement struct {
	// After is the grace, a Go duration ("1h0m0s"), or RetireOff. The deployment puts it
	// in the definition; the state machine skips RetirePrevious when it is RetireOff.
	After string `json:"after"`
	// Filled by RetirePrevious.
	User       string     `json:"user,omitempty"`       // the AWSPREVIOUS user
	Version    string     `json:"version,omitempty"`    // the AWSPREVIOUS version id
	ValidUntil *time.Time `json:"validUntil,omitempty"` // its password's expiry, by the primary's clock
	// Skipped says why nothing was retired, when nothing was.
	Skipped string `json:"skipped,omitempty"`
}

// Grace parses After: a positive duration. RetireOff or anything else is an
// *InvalidSecret naming the field, for a step that must not run then.
func (r *Retirement) Grace() (time.Duration, error) {
	if r == nil {
		return 0, &InvalidSecret{Secret: "state", Field: "retirement", Reason: "missing"}
	}
	d, err := time.ParseDuration(r.After)
	if err != nil || d <= 0 {
		return 0, &InvalidSecret{Secret: "state", Field: "retirement.after", Reason: fmt.Sprintf("%q is not a positive duration", r.After)}
	}
	return d, nil
}

// Service names an ECS service.
type Service struct {
	Cluster string `json:"cluster"`
	Service string `json:"service"`
}

func (s Service) String() string { return s.Cluster + "/" + s.Service }

// Rollout follows one service's forced deployment; it is the item of the Redeploy Map and
// the state of its Wait → CheckRollout → Choice loop.
type Rollout struct {
	SecretARN    string    `json:"secretArn"`
	Token        string    `json:"token"`
	Service      Service   `json:"service"`
	PromotedAt   time.Time `json:"promotedAt"`
	DeploymentID string    `json:"deploymentId,omitempty"`
	RolloutState string    `json:"rolloutState,omitempty"`
	// Done is true once the deployment is COMPLETED; the Choice state exits the loop on it.
	Done bool `json:"done"`
	// Checks counts CheckRollout invocations, so the loop is bounded.
	Checks int `json:"checks"`
	// DesiredCount and RunningCount are the deployment's task counts at the last check
	// (ECS DescribeServices deployments[].desiredCount and runningCount).
	DesiredCount int `json:"desiredCount,omitempty"`
	RunningCount int `json:"runningCount,omitempty"`
}

// PromoteRequest is what the state machine sends the rotation function to move AWSCURRENT.
type PromoteRequest struct {
	Action    string `json:"action"` // "promote"
	SecretARN string `json:"secretArn"`
	Token     string `json:"token"`
}

// ActionPromote is PromoteRequest.Action.
const ActionPromote = "promote"

// PromoteResult is the rotation function's answer to a PromoteRequest.
type PromoteResult struct {
	PromotedAt time.Time `json:"promotedAt"`
}

// CheckStarted verifies the fields every step needs, so a malformed input fails with a
// named error before anything is read or changed.
func (s State) CheckStarted() error {
	switch {
	case s.SecretARN == "":
		return &InvalidSecret{Secret: "state", Field: "secretArn", Reason: "missing"}
	case s.Token == "":
		return &InvalidSecret{Secret: "state", Field: "token", Reason: "missing"}
	}
	return nil
}

// CheckPreflighted verifies that Preflight filled the state, for the steps after it.
func (s State) CheckPreflighted() error {
	if err := s.CheckStarted(); err != nil {
		return err
	}
	switch {
	case s.ActiveVersion == "" || s.ActiveUser == "" || s.PendingUser == "" || s.Primary == nil:
		return &InvalidSecret{Secret: "state", Reason: "Preflight has not run for this execution"}
	case s.PendingUser != Alternate(s.ActiveUser):
		return &InvalidSecret{Secret: "state", Field: "pendingUser", Reason: fmt.Sprintf("%q is not the alternate of %q", s.PendingUser, s.ActiveUser)}
	}
	return nil
}
