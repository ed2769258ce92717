package wait

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestSleep(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		d    time.Duration
		want error
	}{
		{name: "the duration passes", ctx: context.Background(), d: time.Millisecond},
		{name: "no wait", ctx: context.Background(), d: 0},
		// An hour that a done context cuts short: the test would time out if it did not.
		{name: "the context is done", ctx: cancelled, d: time.Hour, want: context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := Sleep(tc.ctx, tc.d); !errors.Is(err, tc.want) {
				t.Fatalf("Sleep(%v) = %v, want %v", tc.d, err, tc.want)
			}
		})
	}
}
