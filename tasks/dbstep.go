package tasks

import (
	"context"
	"log/slog"

	"github.com/pgrotate/pgrotate/workflow"
)

// dbStep is the frame of the database steps on a preflighted State (CloneUser, SetPassword,
// TestLogin, RetirePrevious): the secrets and the database the step reads, its logger, and
// one Handle that refuses a state Preflight has not checked, then does the step's work (do).
type dbStep[DB any] struct {
	secrets secretReader
	db      DB
	log     *slog.Logger
	state   string
	do      func(context.Context, *dbStep[DB], workflow.State) (workflow.State, error)
}

// newDBStep builds the step named state, whose work is do.
func newDBStep[DB any](state string, do func(context.Context, *dbStep[DB], workflow.State) (workflow.State, error),
	s secretReader, db DB, l *slog.Logger) *dbStep[DB] {
	return &dbStep[DB]{secrets: s, db: db, log: l, state: state, do: do}
}

// Handle runs the step once, after Preflight.
func (h *dbStep[DB]) Handle(ctx context.Context, st workflow.State) (workflow.State, error) {
	return run(ctx, h.log, h.state, st, workflow.State.CheckPreflighted, func(ctx context.Context, st workflow.State) (workflow.State, error) {
		return h.do(ctx, h, st)
	})
}

// asAdmin is the work of a step that changes the database as the admin (do): it first re-reads
// the rotation and the admin secret and checks they belong together (loadAdmin).
func asAdmin[DB any](do func(context.Context, *dbStep[DB], rotation, workflow.State) (workflow.State, error)) func(context.Context, *dbStep[DB], workflow.State) (workflow.State, error) {
	return func(ctx context.Context, h *dbStep[DB], st workflow.State) (workflow.State, error) {
		r, err := loadAdmin(ctx, h.secrets, st)
		if err != nil {
			return st, err
		}
		return do(ctx, h, r, st)
	}
}

// The database steps on a preflighted State; the file of each name holds its work.
type (
	// CloneUser makes sure the pending user exists as the twin of the active user (created on
	// the first rotation) and that the two have the same privileges.
	CloneUser = dbStep[userCloner]

	// SetPassword gives the pending user the password of the AWSPENDING version, on the primary
	// only (replicas follow by WAL), and records the primary's LSN after the change.
	SetPassword = dbStep[passwordSetter]

	// TestLogin logs in on the primary with the AWSPENDING version.
	TestLogin = dbStep[loginChecker]

	// RetirePrevious expires the previous user's password a grace period after the rotation
	// (opt-in, State.Retirement): the state machine runs it only when every service's redeploy
	// COMPLETED, so no ECS task still holds AWSPREVIOUS, and the next rotation's SetPassword
	// clears the expiry with the new password. It never touches the AWSCURRENT user
	// (invariant 2) and changes nothing unless this execution's version is AWSCURRENT, no newer
	// rotation has begun, and AWSPREVIOUS is the version this execution replaced; otherwise it
	// records why in Retirement.Skipped and succeeds, since the rotation itself did. Running it
	// again changes nothing (the adapter keeps an earlier expiry).
	RetirePrevious = dbStep[passwordRetirer]
)

// The constructors of the database steps take the secrets, the database and the logger (nil:
// slog.Default); the lambdas registry and the tests build the steps only through them.

// NewCloneUser builds CloneUser.
func NewCloneUser(s secretReader, db userCloner, l *slog.Logger) *CloneUser {
	return newDBStep(workflow.StateCloneUser, asAdmin(cloneUser), s, db, l)
}

// NewSetPassword builds SetPassword.
func NewSetPassword(s secretReader, db passwordSetter, l *slog.Logger) *SetPassword {
	return newDBStep(workflow.StateSetPassword, asAdmin(setPassword), s, db, l)
}

// NewTestLogin builds TestLogin.
func NewTestLogin(s secretReader, db loginChecker, l *slog.Logger) *TestLogin {
	return newDBStep(workflow.StateTestLogin, testLogin, s, db, l)
}

// NewRetirePrevious builds RetirePrevious.
func NewRetirePrevious(s secretReader, db passwordRetirer, l *slog.Logger) *RetirePrevious {
	return newDBStep(workflow.StateRetirePrevious, retirePrevious, s, db, l)
}
