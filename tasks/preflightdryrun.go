package tasks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pgrotate/pgrotate/workflow"
)

// DryRunInput asks Preflight, with no rotation under way, whether one could start now. The
// pgrotate CLI's status command sends it; nothing is changed and no token is involved.
type DryRunInput struct {
	DryRun    bool               `json:"DryRun"`
	SecretARN string             `json:"SecretARN"`
	Services  []workflow.Service `json:"Services,omitempty"`
}

// DryRunCheck is one precondition of a rotation and whether it holds now.
type DryRunCheck struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	// Problem says why not; Error is the workflow error name the rotation's Preflight would
	// fail with.
	Problem string `json:"problem,omitempty"`
	Error   string `json:"error,omitempty"`
}

// DryRunResult is the dry run's answer: a "no" is a result (Safe false, a failed check),
// not an error. It holds references only (version ids, user names, endpoints).
type DryRunResult struct {
	Safe           bool                `json:"safe"`
	CurrentVersion string              `json:"currentVersion,omitempty"`
	PendingVersion string              `json:"pendingVersion,omitempty"`
	LiveUser       string              `json:"liveUser,omitempty"`
	AlternateUser  string              `json:"alternateUser,omitempty"`
	Primary        *workflow.Endpoint  `json:"primary,omitempty"`
	Replicas       []workflow.Endpoint `json:"replicas,omitempty"`
	Services       []workflow.Service  `json:"services,omitempty"`
	Checks         []DryRunCheck       `json:"checks"`
}

// InvalidDryRun is the dry run's error for a payload it cannot answer (no secret ARN,
// malformed JSON). It never reaches Step Functions: only the CLI invokes a dry run.
type InvalidDryRun struct{ Reason string }

func (e *InvalidDryRun) Error() string { return "invalid dry-run input: " + e.Reason }

// Check names.
const (
	CheckSecrets  = "secrets"
	CheckLogin    = "login"
	CheckSessions = "alternate-sessions"
	CheckService  = "service"
)

// Invoke is the Preflight function's handler: one function, two modes. A payload with
// "DryRun": true is a dry run (DryRun); anything else is the state machine's State (Handle).
func (h *Preflight) Invoke(ctx context.Context, payload json.RawMessage) (any, error) {
	var mode struct{ DryRun bool }
	if err := json.Unmarshal(payload, &mode); err == nil && mode.DryRun {
		var in DryRunInput
		dec := json.NewDecoder(bytes.NewReader(payload))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			return nil, &InvalidDryRun{Reason: err.Error()}
		}
		return h.DryRun(ctx, in)
	}
	var st workflow.State
	if err := json.Unmarshal(payload, &st); err != nil {
		return nil, &workflow.InvalidSecret{Secret: "state", Reason: "the input is not a rotation state: " + err.Error()}
	}
	return h.Handle(ctx, st)
}

// DryRun checks, read-only, what Preflight would check before a rotation: AWSCURRENT and the
// admin secret parse and pair (and an AWSPENDING version, if one is left, alternates),
// AWSCURRENT logs in on the primary and on every replica, no session holds the alternate
// user, and each service runs a single completed deployment of tasks launched after
// AWSCURRENT's promotion. Only errors reading AWS are returned as errors.
func (h *Preflight) DryRun(ctx context.Context, in DryRunInput) (DryRunResult, error) {
	res := DryRunResult{Services: in.Services, Checks: []DryRunCheck{}}
	if in.SecretARN == "" {
		return res, &InvalidDryRun{Reason: "SecretARN is empty"}
	}
	r, pending, err := h.dryRunSecrets(ctx, in.SecretARN)
	if stop, err := res.record(CheckSecrets, err); stop {
		return res, err
	}
	primary := r.current.Primary()
	res.CurrentVersion, res.PendingVersion = r.currentVersion, pending
	res.LiveUser, res.AlternateUser = r.current.Username, r.pending.Username
	res.Primary, res.Replicas = &primary, r.current.Replicas

	for _, ep := range append([]workflow.Endpoint{primary}, r.current.Replicas...) {
		err := h.DB.Login(ctx, r.current.At(ep))
		if err != nil {
			err = fmt.Errorf("log in with AWSCURRENT on %s: %w", ep, err)
		}
		if _, err := res.record(CheckLogin+" "+ep.String(), err); err != nil {
			return res, err
		}
	}
	if _, err := res.record(CheckSessions, pendingSessions(ctx, h.DB, r, r.current.Replicas)); err != nil {
		return res, err
	}
	if len(in.Services) > 0 {
		since, _, err := h.promotionTime(ctx, workflow.State{SecretARN: in.SecretARN, ActiveVersion: r.currentVersion})
		if err != nil {
			return res, err
		}
		for _, svc := range in.Services {
			if _, err := res.record(CheckService+" "+svc.String(), h.checkService(ctx, svc, since)); err != nil {
				return res, err
			}
		}
	}
	res.Safe = true
	for _, c := range res.Checks {
		res.Safe = res.Safe && c.OK
	}
	logger(h.Log).InfoContext(ctx, "preflight dry run", "secret", in.SecretARN, "safe", res.Safe,
		"live_user", res.LiveUser, "alternate_user", res.AlternateUser, "checks", len(res.Checks))
	return res, nil
}

// dryRunSecrets reads AWSCURRENT, the admin secret and any AWSPENDING version, and returns
// the rotation Preflight would work on: its pending user is the alternate of AWSCURRENT's.
func (h *Preflight) dryRunSecrets(ctx context.Context, arn string) (rotation, string, error) {
	var r rotation
	stages, err := h.Secrets.VersionStages(ctx, arn)
	if err != nil {
		return r, "", fmt.Errorf("read versions of %s: %w", arn, err)
	}
	v := workflow.Versions(stages)
	if r.currentVersion = v.With(workflow.StageCurrent); r.currentVersion == "" {
		return r, "", &workflow.InvalidSecret{Secret: arn, Reason: "no version is AWSCURRENT"}
	}
	if r.current, err = h.Secrets.AppSecret(ctx, arn, r.currentVersion); err != nil {
		return r, "", fmt.Errorf("read AWSCURRENT of %s: %w", arn, err)
	}
	r.pending = workflow.AppSecret{Username: workflow.Alternate(r.current.Username)}
	pending := v.With(workflow.StagePending)
	if pending == r.currentVersion {
		pending = ""
	}
	if pending != "" {
		p, err := h.Secrets.AppSecret(ctx, arn, pending)
		if err != nil {
			return r, pending, fmt.Errorf("read AWSPENDING of %s: %w", arn, err)
		}
		if err := workflow.ValidatePending(r.current, p); err != nil {
			return r, pending, err
		}
	}
	if r.admin, err = h.Secrets.AdminSecret(ctx, r.current.MasterARN); err != nil {
		return r, pending, fmt.Errorf("read admin secret: %w", err)
	}
	if err := workflow.ValidatePair(r.current, r.admin); err != nil {
		return r, pending, err
	}
	return r, pending, h.checkReplicasListed(r.current.Replicas)
}

// record adds a check: passed when err is nil, failed with err's workflow error when it has
// one. Any other error is returned: the dry run could not answer. stop is true when the
// check failed.
func (res *DryRunResult) record(name string, err error) (stop bool, _ error) {
	if err == nil {
		res.Checks = append(res.Checks, DryRunCheck{Name: name, OK: true})
		return false, nil
	}
	var unnamed *workflow.StepFailed
	named := named(name, err)
	if errors.As(named, &unnamed) {
		return true, err
	}
	res.Checks = append(res.Checks, DryRunCheck{Name: name, Problem: err.Error(), Error: errorName(named)})
	return true, nil
}

// errorName is the Go type name of a workflow error, which is its Step Functions error name.
func errorName(err error) string {
	for _, n := range workflow.ErrorNames {
		if fmt.Sprintf("%T", err) == "*workflow."+n {
			return n
		}
	}
	return ""
}
