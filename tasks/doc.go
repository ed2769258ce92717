// Package tasks holds the step handlers of the rotation state machine, one file per step.
//
// Every handler takes the workflow State (or, inside the Redeploy Map, a Rollout) and returns
// it, checks its preconditions before it changes anything, and can run twice, or be
// re-driven, with the effect of running once. Passwords are re-read from Secrets Manager by
// version id in every step; the State carries references only.
//
// Each handler declares the small interfaces it needs (secrets, database, ECS), satisfied
// by the adapters in adapters/secretstore, adapters/postgres and adapters/ecsservice and by
// hand-written fakes in tests. A handler returns its named workflow error unwrapped, so the
// errorType Step Functions sees is the name the state machine matches.
package tasks
