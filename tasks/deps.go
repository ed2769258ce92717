package tasks

import (
	"context"
	"errors"
	"fmt"

	"github.com/pgrotate/pgrotate/workflow"
)

// appSecrets reads the app secret; every step that touches the database needs it.
type appSecrets interface {
	// AppSecret reads and validates one version of the app secret.
	AppSecret(ctx context.Context, arn, versionID string) (workflow.AppSecret, error)
	// VersionStages returns version id -> staging labels.
	VersionStages(ctx context.Context, arn string) (workflow.Versions, error)
}

// adminSecrets reads the admin secret named by the app secret's masterarn.
type adminSecrets interface {
	AdminSecret(ctx context.Context, arn string) (workflow.AdminSecret, error)
}

// secretReader is what the database-facing steps read.
type secretReader interface {
	appSecrets
	adminSecrets
}

// rotation is the pair of versions a step works on, re-read and re-validated on every call.
type rotation struct {
	current, pending workflow.AppSecret
	currentVersion   string
	admin            workflow.AdminSecret
}

// loadRotation re-reads both versions and the admin secret and checks that this execution
// still owns the rotation: its token is AWSPENDING, AWSCURRENT names the other user, and the
// pair is valid. It is every mutating step's precondition (invariants 2 and 8).
func loadRotation(ctx context.Context, s appSecrets, st workflow.State) (rotation, error) {
	var r rotation
	stages, err := s.VersionStages(ctx, st.SecretARN)
	if err != nil {
		return r, fmt.Errorf("read versions of %s: %w", st.SecretARN, err)
	}
	if err := stages.NotPending(st.Token); err != nil {
		return r, err
	}
	r.currentVersion = stages.Current()
	if r.currentVersion == "" {
		return r, &workflow.InvalidSecret{Secret: st.SecretARN, Reason: "no version is AWSCURRENT"}
	}
	if st.ActiveVersion != "" && r.currentVersion != st.ActiveVersion {
		return r, &workflow.RotationSuperseded{Version: st.Token, Reason: "AWSCURRENT moved since Preflight"}
	}
	if r.current, err = s.AppSecret(ctx, st.SecretARN, r.currentVersion); err != nil {
		return r, fmt.Errorf("read AWSCURRENT of %s: %w", st.SecretARN, err)
	}
	if r.pending, err = s.AppSecret(ctx, st.SecretARN, st.Token); err != nil {
		return r, fmt.Errorf("read AWSPENDING of %s: %w", st.SecretARN, err)
	}
	if err := workflow.ValidatePending(r.current, r.pending); err != nil {
		return r, err
	}
	if st.ActiveUser != "" && (r.current.Username != st.ActiveUser || r.pending.Username != st.PendingUser) {
		return r, &workflow.RotationSuperseded{Version: st.Token, Reason: "the users changed since Preflight"}
	}
	return r, nil
}

// adminLogin is the admin on the primary, in the app's database, where the grants live. The
// admin's own sslmode applies (verify-full unless the admin secret says otherwise), and the
// admin password goes only to the primary, which ValidatePair proved is the admin secret's.
func (r rotation) adminLogin() workflow.Target { return r.admin.In(r.current.DBName) }

// loadAdmin re-reads the rotation and the admin secret it names, and checks they name the
// same primary (the admin password goes nowhere else).
func loadAdmin(ctx context.Context, s secretReader, st workflow.State) (rotation, error) {
	r, err := loadRotation(ctx, s, st)
	if err != nil {
		return r, err
	}
	if r.admin, err = s.AdminSecret(ctx, r.current.MasterARN); err != nil {
		return r, fmt.Errorf("read admin secret: %w", err)
	}
	if err := workflow.ValidatePair(r.current, r.admin); err != nil {
		return r, err
	}
	return r, nil
}

// named returns the workflow error inside err, unwrapped, so the Lambda runtime reports its
// type name; any other error becomes a *workflow.StepFailed of step, so that no unnamed
// type ("wrapError", "errorString") reaches Step Functions, where no Retry or Catch could
// tell it from another.
//
// Errors of the AWS SDK (Secrets Manager, ECS) are not retried by the state machine: the
// SDK's standard retry mode has already retried throttling, 5xx and connection errors with
// backoff (https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html),
// and what is left (access denied, a missing secret or KMS key, an exhausted quota) needs
// an operator, then a redrive.
func named(step string, err error) error {
	if err == nil {
		return nil
	}
	for _, find := range namedErrors {
		if e := find(err); e != nil {
			return e
		}
	}
	return &workflow.StepFailed{State: step, Reason: err.Error(), Err: err}
}

// namedErrors find each workflow error type in a chain, in the order of workflow.ErrorNames.
var namedErrors = []func(error) error{
	find[*workflow.InvalidSecret], find[*workflow.InvalidRoleName], find[*workflow.ActiveUserMissing],
	find[*workflow.PrivilegeMismatch], find[*workflow.CredentialRejected], find[*workflow.ReplicaNotReady],
	find[*workflow.PendingUserInUse], find[*workflow.RotationSuperseded], find[*workflow.ServiceNotSteady],
	find[*workflow.DeploymentFailed], find[*workflow.RolloutTimedOut], find[*workflow.DatabaseUnavailable],
	find[*workflow.StepFailed],
}

// find returns the first error of type T in err's chain, or nil.
func find[T error](err error) error {
	var target T
	if errors.As(err, &target) {
		return target
	}
	return nil
}
