package tasks

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/pgrotate/pgrotate/workflow"
)

// serviceReader reads what Preflight needs to know about an ECS service.
type serviceReader interface {
	Deployments(ctx context.Context, svc workflow.Service) ([]workflow.Deployment, error)
	TaskLaunchTimes(ctx context.Context, svc workflow.Service) ([]time.Time, error)
}

// promotionLookup finds when a version became AWSCURRENT under pgrotate.
type promotionLookup interface {
	// PromotedAt returns when the execution named after version left its Promote state;
	// found is false when no such execution exists (first rotation, or a manual version).
	PromotedAt(ctx context.Context, version string) (at time.Time, found bool, err error)
}

// versionDates tells when a version of the secret was created.
type versionDates interface {
	VersionCreated(ctx context.Context, arn, versionID string) (time.Time, error)
}

// preflightDB is what Preflight checks on the servers.
type preflightDB interface {
	loginChecker
	sessionCounter
}

// Preflight validates the rotation before anything changes: both versions parse and
// alternate, the token is still AWSPENDING, AWSCURRENT logs in everywhere, and nobody still
// holds the pending user's password (invariant 3).
type Preflight struct {
	Secrets    secretReader
	Dates      versionDates
	DB         preflightDB
	ECS        serviceReader
	Promotions promotionLookup
	// Replicas, when set, are the read replicas the deployment knows of: the app secret
	// must list each of them, or a replica would never be checked before a promotion.
	Replicas []workflow.Endpoint
	Log      *slog.Logger
}

// Handle checks a started rotation before anything changes.
func (h *Preflight) Handle(ctx context.Context, st workflow.State) (workflow.State, error) {
	return run(ctx, h.Log, workflow.StatePreflight, st, workflow.State.CheckStarted, h.check)
}

func (h *Preflight) check(ctx context.Context, st workflow.State) (workflow.State, error) {
	// A fresh read: Preflight defines ActiveVersion, so it must not trust a stale one.
	st.ActiveVersion, st.ActiveUser, st.PendingUser = "", "", ""
	r, err := loadAdmin(ctx, h.Secrets, st)
	if err != nil {
		return st, err
	}
	primary := r.current.Primary()
	st.ActiveVersion = r.currentVersion
	st.ActiveUser = r.current.Username
	st.PendingUser = r.pending.Username
	st.Primary = &primary
	st.Replicas = append([]workflow.Endpoint(nil), r.current.Replicas...)
	if err := h.checkReplicasListed(st.Replicas); err != nil {
		return st, err
	}

	// Invariant 1 as a precondition: AWSCURRENT must log in everywhere, or promoting a new
	// version would not be the only problem.
	for _, ep := range append([]workflow.Endpoint{primary}, st.Replicas...) {
		if err := h.DB.Login(ctx, r.current.At(ep)); err != nil {
			return st, fmt.Errorf("log in with AWSCURRENT on %s: %w", ep, err)
		}
	}

	since, rule, err := h.promotionTime(ctx, st)
	if err != nil {
		return st, err
	}
	for _, svc := range st.Services {
		if err := h.checkService(ctx, svc, since); err != nil {
			return st, err
		}
	}
	if err := pendingSessions(ctx, h.DB, r, st.Replicas); err != nil {
		return st, err
	}
	logger(h.Log).InfoContext(ctx, "preflight passed", "secret", st.SecretARN, "version", st.Token,
		"active_user", st.ActiveUser, "pending_user", st.PendingUser, "replicas", len(st.Replicas),
		"services", len(st.Services), "tasks_must_start_after", since, "rule", rule)
	return st, nil
}

// checkReplicasListed refuses a secret that omits a configured replica (invariant 4:
// AWSCURRENT moves only to a version proven on every replica).
func (h *Preflight) checkReplicasListed(listed []workflow.Endpoint) error {
	for _, want := range h.Replicas {
		found := false
		for _, ep := range listed {
			if strings.EqualFold(ep.Host, want.Host) && ep.Port == want.Port {
				found = true
			}
		}
		if !found {
			return &workflow.InvalidSecret{Secret: "app", Field: "replicas", Reason: fmt.Sprintf("the configured replica %s is not listed", want)}
		}
	}
	return nil
}

// promotionTime is the instant after which a task holds the current version. The rule that
// decided is returned for the log line (DESIGN §6).
func (h *Preflight) promotionTime(ctx context.Context, st workflow.State) (time.Time, string, error) {
	at, found, err := h.Promotions.PromotedAt(ctx, st.ActiveVersion)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("find the promotion of version %s: %w", st.ActiveVersion, err)
	}
	if found {
		return at, "promotion time of the execution that promoted AWSCURRENT", nil
	}
	created, err := h.Dates.VersionCreated(ctx, st.SecretARN, st.ActiveVersion)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("read the creation time of version %s: %w", st.ActiveVersion, err)
	}
	return created, "no pgrotate promotion found: creation time of AWSCURRENT, plus a clean session check", nil
}

// checkService requires a single, completed deployment whose tasks all launched after since.
func (h *Preflight) checkService(ctx context.Context, svc workflow.Service, since time.Time) error {
	deps, err := h.ECS.Deployments(ctx, svc)
	if err != nil {
		return fmt.Errorf("describe service %s: %w", svc, err)
	}
	if len(deps) != 1 {
		return &workflow.ServiceNotSteady{Service: svc.String(), Reason: fmt.Sprintf("%d deployments in progress, want 1", len(deps))}
	}
	if d := deps[0]; d.RolloutState != workflow.RolloutCompleted {
		return &workflow.ServiceNotSteady{Service: svc.String(), Reason: fmt.Sprintf("deployment %s is %s, want COMPLETED", d.ID, orUnknown(d.RolloutState))}
	}
	launched, err := h.ECS.TaskLaunchTimes(ctx, svc)
	if err != nil {
		return fmt.Errorf("list tasks of %s: %w", svc, err)
	}
	stale := 0
	for _, t := range launched {
		if !t.After(since) {
			stale++
		}
	}
	if stale > 0 {
		return &workflow.ServiceNotSteady{Service: svc.String(), Reason: fmt.Sprintf("%d of %d tasks launched before %s may still hold the previous secret", stale, len(launched), since.UTC().Format(time.RFC3339))}
	}
	return nil
}

func orUnknown(s string) string {
	if s == "" {
		return "UNKNOWN"
	}
	return s
}
