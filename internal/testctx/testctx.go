// Package testctx bounds a test's waits by the test binary's own deadline (go test
// -timeout) instead of a clock of the test's choosing. On a busy, shared machine any fixed
// clock is a flake waiting to happen: a slow compile or a slow database start is not a
// failure. Only a real hang should fail a test, and -timeout is the bound for that; the
// grace below lets a hung test fail with its own message (and run its cleanups) before
// go test panics. Speed is measured by benchmarks and reports, never by a timed assertion.
//
// Only tests and test helper packages (such as local/pgcluster/pgtest) import it.
package testctx

import (
	"context"
	"flag"
	"testing"
	"time"
)

// Grace is how long before go test's -timeout a test's context ends: time for the test to
// report what it was waiting for and for its cleanups (stopping servers, clusters) to run.
// A -timeout shorter than Grace leaves the tests no time at all.
const Grace = time.Minute

// Deadline is the test binary's deadline less Grace; false when there is none (-timeout 0).
func Deadline(t *testing.T) (time.Time, bool) {
	t.Helper()
	return lessGrace(t.Deadline())
}

func lessGrace(d time.Time, ok bool) (time.Time, bool) {
	if !ok {
		return time.Time{}, false
	}
	return d.Add(-Grace), true
}

// Context is t.Context() bounded by Deadline. Like t.Context(), it is canceled just before
// the test's Cleanup functions run: a cleanup that needs a context uses
// context.WithoutCancel or its own.
func Context(t *testing.T) context.Context {
	t.Helper()
	ctx := t.Context()
	d, ok := Deadline(t)
	if !ok {
		return ctx
	}
	ctx, cancel := context.WithDeadline(ctx, d)
	t.Cleanup(cancel)
	return ctx
}

// CleanupContext is for a t.Cleanup function: not canceled when the test ends, and bounded
// by the test binary's own deadline, so a cleanup after a hung test still has Grace to run.
func CleanupContext(t *testing.T) (context.Context, context.CancelFunc) {
	t.Helper()
	if d, ok := t.Deadline(); ok {
		return context.WithDeadline(context.Background(), d)
	}
	return context.WithCancel(context.Background())
}

// MainContext is for TestMain's work before m.Run (starting a database, building a
// binary): bounded by go test's -timeout, since the tests' own alarm starts only with
// m.Run; no bound with -timeout 0.
func MainContext() (context.Context, context.CancelFunc) {
	flag.Parse() // m.Run parses the flags, but TestMain runs first
	if f := flag.Lookup("test.timeout"); f != nil {
		if d, ok := f.Value.(flag.Getter).Get().(time.Duration); ok && d > 0 {
			return context.WithTimeout(context.Background(), d)
		}
	}
	return context.WithCancel(context.Background())
}
