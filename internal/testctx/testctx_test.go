package testctx

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestLessGrace(t *testing.T) {
	end := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name   string
		d      time.Time
		ok     bool
		want   time.Time
		wantOK bool
	}{
		{"-timeout set", end, true, end.Add(-Grace), true},
		{"-timeout 0", time.Time{}, false, time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := lessGrace(tt.d, tt.ok)
			if ok != tt.wantOK || !got.Equal(tt.want) {
				t.Errorf("lessGrace(%v, %v) = %v, %v; want %v, %v", tt.d, tt.ok, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// CleanupContext is still live in a cleanup, and ends with the test binary's deadline.
func TestCleanupContext(t *testing.T) {
	var inCleanup error
	var deadline time.Time
	var hasDeadline bool
	t.Run("inner", func(t *testing.T) {
		t.Cleanup(func() {
			ctx, cancel := CleanupContext(t)
			defer cancel()
			inCleanup = ctx.Err()
			deadline, hasDeadline = ctx.Deadline()
		})
	})
	want, wantOK := t.Deadline()
	if inCleanup != nil {
		t.Errorf("in a cleanup: ctx.Err() = %v, want nil", inCleanup)
	}
	if hasDeadline != wantOK || !deadline.Equal(want) {
		t.Errorf("deadline %v (%v), want the test binary's %v (%v)", deadline, hasDeadline, want, wantOK)
	}
}

// MainContext ends with -timeout counted from its call: after the tests' own deadline,
// whose count began earlier (with m.Run); no deadline with -timeout 0.
func TestMainContext(t *testing.T) {
	ctx, cancel := MainContext()
	defer cancel()
	got, ok := ctx.Deadline()
	tests, testsOK := t.Deadline()
	if ok != testsOK || got.Before(tests) {
		t.Errorf("MainContext deadline %v (%v), want one no earlier than the tests' %v (%v)", got, ok, tests, testsOK)
	}
}

// Context ends with Deadline, is live while the test runs, and is already canceled when
// the test's cleanups run (why a cleanup needs context.WithoutCancel) and after it ends.
func TestContext(t *testing.T) {
	var ctx context.Context
	var during, inCleanup error
	t.Run("inner", func(t *testing.T) {
		ctx = Context(t)
		t.Cleanup(func() { inCleanup = ctx.Err() })
		during = ctx.Err()
		want, wantOK := Deadline(t)
		got, gotOK := ctx.Deadline()
		if gotOK != wantOK || !got.Equal(want) {
			t.Errorf("context deadline %v (%v), want Deadline's %v (%v)", got, gotOK, want, wantOK)
		}
		if raw, ok := t.Deadline(); ok && raw.Sub(got) != Grace {
			t.Errorf("context ends %v before the test binary's deadline, want %v", raw.Sub(got), Grace)
		}
	})
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"during the test", during, nil},
		{"in a cleanup", inCleanup, context.Canceled},
		{"after the test", ctx.Err(), context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !errors.Is(tt.err, tt.want) {
				t.Errorf("ctx.Err() = %v, want %v", tt.err, tt.want)
			}
		})
	}
}
