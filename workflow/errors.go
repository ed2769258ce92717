package workflow

import (
	"fmt"
	"strings"
)

// The types below are the error names the state machine matches: aws-lambda-go reports the
// Go type name of the returned error as the errorType, so handlers return these values
// unwrapped at the Lambda boundary. Messages name users, hosts and services, never a secret
// value; each type's message is its line in the Error methods after the types.
type (
	// InvalidSecret reports a secret that fails validation. Nothing was changed.
	InvalidSecret struct {
		Secret string // which secret: "app", "admin", "pending", or an ARN
		Field  string // the offending JSON field, if any
		Reason string
	}

	// InvalidRoleName reports a role name that pgrotate refuses to use. The name itself is
	// not echoed in full when it is hostile; Quoted holds a safe rendering.
	InvalidRoleName struct {
		Quoted string
		Reason string
	}

	// ActiveUserMissing reports that the user named in AWSCURRENT does not exist on the primary.
	ActiveUserMissing struct {
		User string
	}

	// PrivilegeMismatch reports that the two login users do not act as one: each difference
	// is listed so an operator can fix the grants.
	PrivilegeMismatch struct {
		Active      string
		Pending     string
		Differences []string
	}

	// CredentialRejected reports that a login with a credential from the secret failed.
	CredentialRejected struct {
		User   string
		Host   string
		Reason string
	}

	// ReplicaNotReady reports a replica that has not replayed the password change yet. The
	// state machine retries it with backoff.
	ReplicaNotReady struct {
		Replica string
		Reason  string
	}

	// PendingUserInUse reports sessions of the pending user, whose password would be changed
	// under them (invariant 3). The state machine retries it: sessions drain.
	PendingUserInUse struct {
		User     string
		Sessions int
		Where    string
	}

	// RotationSuperseded reports that the execution's version is no longer AWSPENDING:
	// another rotation took over, and this one must stop before it changes anything.
	RotationSuperseded struct {
		Version string
		Reason  string
	}

	// ServiceNotSteady reports an ECS service that may still hold the pending user's password.
	ServiceNotSteady struct {
		Service string
		Reason  string
	}

	// DeploymentFailed reports a forced deployment that failed or was rolled back.
	DeploymentFailed struct {
		Service    string
		Deployment string
		Reason     string
	}

	// RolloutTimedOut reports a deployment that did not complete within the bounded wait.
	RolloutTimedOut struct {
		Service    string
		Deployment string
		Checks     int
	}

	// DatabaseUnavailable reports a server that cannot serve now: connection refused or
	// reset, a dial or TLS timeout, a server shutting down, starting up or in recovery (a
	// Multi-AZ failover or a restart), or too many connections. Nothing was changed by the
	// failed call; every database-facing state retries it with backoff. Endpoint is host:port.
	DatabaseUnavailable struct {
		Endpoint string
		Reason   string
		Err      error // the driver's error, for errors.Is/As; Reason is its safe summary
	}

	// StepFailed reports a failure no other name describes (a secret that cannot be read, an
	// unexpected database or ECS error). It is not retried: the operator fixes the cause and
	// redrives. It exists so that no unnamed error type ("wrapError") reaches Step Functions.
	StepFailed struct {
		State  string
		Reason string
		Err    error
	}
)

func (e *InvalidSecret) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("invalid %s secret: %s", e.Secret, e.Reason)
	}
	return fmt.Sprintf("invalid %s secret: field %q: %s", e.Secret, e.Field, e.Reason)
}

func (e *InvalidRoleName) Error() string {
	return fmt.Sprintf("invalid role name %s: %s", e.Quoted, e.Reason)
}

func (e *ActiveUserMissing) Error() string {
	return fmt.Sprintf("active user %q does not exist on the primary", e.User)
}

func (e *PrivilegeMismatch) Error() string {
	return fmt.Sprintf("privileges of %q and %q differ: %s", e.Active, e.Pending, strings.Join(e.Differences, "; "))
}

func (e *CredentialRejected) Error() string {
	return fmt.Sprintf("login as %q on %s rejected: %s", e.User, e.Host, e.Reason)
}

func (e *ReplicaNotReady) Error() string {
	return fmt.Sprintf("replica %s not ready: %s", e.Replica, e.Reason)
}

func (e *PendingUserInUse) Error() string {
	return fmt.Sprintf("pending user %q still has %d session(s) on %s", e.User, e.Sessions, e.Where)
}

func (e *RotationSuperseded) Error() string {
	return fmt.Sprintf("rotation to version %s superseded: %s", e.Version, e.Reason)
}

func (e *ServiceNotSteady) Error() string {
	return fmt.Sprintf("service %s not steady: %s", e.Service, e.Reason)
}

func (e *DeploymentFailed) Error() string {
	return fmt.Sprintf("deployment %s of service %s failed: %s", e.Deployment, e.Service, e.Reason)
}

func (e *RolloutTimedOut) Error() string {
	return fmt.Sprintf("deployment %s of service %s not complete after %d checks", e.Deployment, e.Service, e.Checks)
}

func (e *DatabaseUnavailable) Error() string {
	return fmt.Sprintf("database %s unavailable: %s", e.Endpoint, e.Reason)
}

func (e *DatabaseUnavailable) Unwrap() error { return e.Err }

// Error is the reason alone: the execution's failure already names the state (see
// tasks.Rethrow), and the handlers log it.
func (e *StepFailed) Error() string {
	if e.Reason == "" {
		return "step failed"
	}
	return e.Reason
}

func (e *StepFailed) Unwrap() error { return e.Err }

// ErrorNames lists every error name above; the state machine tests check the ASL against it.
var ErrorNames = []string{
	"InvalidSecret",
	"InvalidRoleName",
	"ActiveUserMissing",
	"PrivilegeMismatch",
	"CredentialRejected",
	"ReplicaNotReady",
	"PendingUserInUse",
	"RotationSuperseded",
	"ServiceNotSteady",
	"DeploymentFailed",
	"RolloutTimedOut",
	"DatabaseUnavailable",
	"StepFailed",
}
