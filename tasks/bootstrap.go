package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/cfn"

	"github.com/pgrotate/pgrotate/workflow"
)

// Bootstrap defaults.
const (
	DefaultReplicaTimeout = 3 * time.Minute
	DefaultReplicaPoll    = 2 * time.Second
	// DefaultResponseMargin is kept back from the Lambda deadline so the handler still
	// answers CloudFormation when the database is slow: without an answer CloudFormation
	// waits for the custom resource's whole timeout.
	DefaultResponseMargin = 15 * time.Second
	// maxReason bounds the error text sent to CloudFormation, whose response document may
	// hold 4 KiB in all.
	maxReason = 1500
)

// PropAppSecretARN is the custom resource's property naming the app secret.
const PropAppSecretARN = "AppSecretArn"

// PropAdoptExistingUser is the custom resource's optional property ("true" or "false", or a
// JSON boolean; default false) that lets the bootstrap take over an existing app user (or
// alternate) that pgrotate did not create. Without it such a user is refused, unchanged.
const PropAdoptExistingUser = "AdoptExistingUser"

// bootstrapSecrets reads the app secret's AWSCURRENT version and the admin secret it names.
type bootstrapSecrets interface {
	AppSecretAt(ctx context.Context, arn, stage string) (workflow.AppSecret, string, error)
	adminSecrets
}

// loginEnsurer creates the first app user and follows its replication.
type loginEnsurer interface {
	// EnsureLogin creates or repairs user as a login user of the admin's database
	// with password (idempotent) and returns the primary's WAL position after it and the
	// existing roles pgrotate did not create that it took over (only when adopt). Every
	// refusal (a superuser, the admin, a reserved name, a clone name, someone else's role)
	// comes before any change.
	EnsureLogin(ctx context.Context, admin workflow.Target, user string, password workflow.Password, adopt bool) (lsn string, adopted []string, err error)
	// CaughtUp returns a *workflow.ReplicaNotReady until the login's server has replayed lsn.
	CaughtUp(ctx context.Context, login workflow.Target, lsn string) error
}

// Bootstrap handles the CloudFormation custom resource that creates the first app user of
// a new deployment, so the app can start before any rotation: on Create and Update it reads
// the app secret's AWSCURRENT version and the admin secret it names (masterarn), checks they
// name the same primary, and makes the app secret's user log in there with its password
// (EnsureLogin, as the admin, in the app's database). EnsureLogin refuses, changing nothing,
// a user it must not take over: a superuser, the admin, a reserved name, or an existing role
// pgrotate did not create unless the AdoptExistingUser property is true. It then waits until every replica the
// app secret names accepts that login, since the app's health check logs in there too. On
// Delete it does nothing: the user may own the app's data.
//
// The physical resource id is the app secret's ARN and the pair's base user, so it stays
// the same when a rotation has moved AWSCURRENT to the clone. Errors, which CloudFormation
// shows, name secrets, users and hosts, never a secret value.
//
// Wrap Handle with cfn.LambdaWrap, which sends the answer to CloudFormation.
type Bootstrap struct {
	Secrets bootstrapSecrets
	DB      loginEnsurer
	Log     *slog.Logger
	// ReplicaTimeout bounds the wait for the replicas (default DefaultReplicaTimeout), Poll
	// is the interval between checks (default DefaultReplicaPoll).
	ReplicaTimeout time.Duration
	Poll           time.Duration
	// ResponseMargin is kept back from the invocation's deadline (default
	// DefaultResponseMargin).
	ResponseMargin time.Duration
}

// Handle serves one custom resource request.
func (h *Bootstrap) Handle(ctx context.Context, ev cfn.Event) (physicalID string, data map[string]interface{}, err error) {
	log := logger(h.Log).With("request", string(ev.RequestType), "resource", ev.LogicalResourceID)
	switch ev.RequestType {
	case cfn.RequestDelete:
		// Dropping the user would drop access to whatever it owns; it stays.
		log.InfoContext(ctx, "delete: the app user is left in the database", "physicalResourceId", ev.PhysicalResourceID)
		return ev.PhysicalResourceID, nil, nil
	case cfn.RequestCreate, cfn.RequestUpdate:
	default:
		return "", nil, fmt.Errorf("bootstrap: unknown request type %q", ev.RequestType)
	}

	var secrets []workflow.Password
	fail := func(err error) (string, map[string]interface{}, error) {
		err = safeReason(err, secrets...)
		log.ErrorContext(ctx, "bootstrap failed", "error", err.Error())
		return "", nil, err
	}
	arn, err := appSecretARN(ev.ResourceProperties)
	if err != nil {
		return fail(err)
	}
	adopt, err := adoptProperty(ev.ResourceProperties)
	if err != nil {
		return fail(err)
	}
	ctx, cancel := h.bounded(ctx)
	defer cancel()

	app, version, err := h.Secrets.AppSecretAt(ctx, arn, workflow.StageCurrent)
	if err != nil {
		return fail(fmt.Errorf("bootstrap: %w", err))
	}
	secrets = append(secrets, app.Password)
	admin, err := h.Secrets.AdminSecret(ctx, app.MasterARN)
	if err != nil {
		return fail(fmt.Errorf("bootstrap: read the admin secret named by %s: %w", arn, err))
	}
	secrets = append(secrets, admin.Password)
	// The admin password goes only to the admin secret's own primary.
	if err := workflow.ValidatePair(app, admin); err != nil {
		return fail(fmt.Errorf("bootstrap: %w", err))
	}
	lsn, adopted, err := h.DB.EnsureLogin(ctx, admin.In(app.DBName), app.Username, app.Password, adopt)
	if err != nil {
		return fail(fmt.Errorf("bootstrap: create the app user %s on %s: %w", app.Username, app.Primary(), err))
	}
	if len(adopted) > 0 {
		log.WarnContext(ctx, "adopted existing roles pgrotate did not create", "roles", strings.Join(adopted, ","))
	}
	log.InfoContext(ctx, "app user ready on the primary", "secret", arn, "version", version, "user", app.Username, "lsn", lsn)
	for _, ep := range app.Replicas {
		if err := h.waitReplica(ctx, app, ep, lsn); err != nil {
			return fail(err)
		}
		log.InfoContext(ctx, "app user ready on a replica", "user", app.Username, "replica", ep.String())
	}
	data = map[string]interface{}{"Username": app.Username}
	if len(adopted) > 0 {
		data["Adopted"] = strings.Join(adopted, ",")
	}
	return bootstrapID(arn, app.Username), data, nil
}

// bootstrapID is the custom resource's id for the app secret arn whose user is user: the
// ARN and the pair's base user, the same whichever user of the pair is current.
func bootstrapID(arn, user string) string {
	base := user
	if alt := workflow.Alternate(user); alt+workflow.CloneSuffix == user {
		base = alt
	}
	return arn + "/" + base
}

// appSecretARN reads the AppSecretArn property.
func appSecretARN(props map[string]interface{}) (string, error) {
	v, ok := props[PropAppSecretARN]
	if !ok {
		return "", fmt.Errorf("bootstrap: the custom resource has no %s property", PropAppSecretARN)
	}
	arn, ok := v.(string)
	if !ok || !strings.HasPrefix(arn, "arn:") {
		return "", fmt.Errorf("bootstrap: property %s is not a secret ARN", PropAppSecretARN)
	}
	return arn, nil
}

// adoptProperty reads the optional AdoptExistingUser property.
func adoptProperty(props map[string]interface{}) (bool, error) {
	switch v := props[PropAdoptExistingUser].(type) {
	case nil:
		return false, nil
	case bool:
		return v, nil
	case string:
		switch strings.ToLower(v) {
		case "true":
			return true, nil
		case "false", "":
			return false, nil
		}
	}
	return false, fmt.Errorf("bootstrap: property %s must be true or false", PropAdoptExistingUser)
}

// bounded keeps ResponseMargin of the invocation's time for the answer to CloudFormation.
func (h *Bootstrap) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	margin := h.ResponseMargin
	if margin <= 0 {
		margin = DefaultResponseMargin
	}
	return context.WithDeadline(ctx, dl.Add(-margin))
}

// waitReplica waits until the replica has replayed lsn, checked as the app user: until then
// its login is refused there (the role or its password is not replayed yet) or the replica
// reports its lag. Any other failure ends the wait at once.
func (h *Bootstrap) waitReplica(ctx context.Context, app workflow.AppSecret, ep workflow.Endpoint, lsn string) error {
	timeout, poll := h.ReplicaTimeout, h.Poll
	if timeout <= 0 {
		timeout = DefaultReplicaTimeout
	}
	if poll <= 0 {
		poll = DefaultReplicaPoll
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := h.DB.CaughtUp(ctx, app.At(ep), lsn)
		if err == nil {
			return nil
		}
		var (
			lag      *workflow.ReplicaNotReady
			rejected *workflow.CredentialRejected
		)
		if !errors.As(err, &lag) && !errors.As(err, &rejected) {
			return fmt.Errorf("bootstrap: check the app user %s on replica %s: %w", app.Username, ep, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bootstrap: replica %s did not accept the app user %s within %s: %w", ep, app.Username, timeout, err)
		case <-time.After(poll):
		}
	}
}

// safeReason is what CloudFormation and the log get: the error, unless its text quotes a
// secret value (no message is known to, but it would travel into stack events), cut to
// maxReason bytes.
func safeReason(err error, secrets ...workflow.Password) error {
	msg := err.Error()
	for _, s := range secrets {
		if !s.IsZero() && strings.Contains(msg, s.Reveal()) {
			return errors.New("bootstrap failed; the error text is withheld because it quoted a secret value")
		}
	}
	if len(msg) <= maxReason {
		return err
	}
	cut := maxReason
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return errors.New(msg[:cut] + " … (cut)")
}
