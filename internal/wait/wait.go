// Package wait holds the one sleep that a cancelled context cuts short, for the clients that
// poll from outside the state machine (the operator's rotate command, the local demo): a
// Lambda never sleeps, the state machine waits for it.
package wait

import (
	"context"
	"time"
)

// Sleep waits d, or returns ctx's error as soon as ctx is done.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
