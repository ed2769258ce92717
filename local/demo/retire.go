package demo

import (
	"context"
	"fmt"
	"time"

	"github.com/pgrotate/pgrotate/adapters/postgres"
	"github.com/pgrotate/pgrotate/internal/wait"
	"github.com/pgrotate/pgrotate/workflow"
)

// MaxRetireWait bounds how long the demo waits, after its last rotation, for the previous
// password to expire before the final logins. A longer grace is reported, not waited for.
const MaxRetireWait = time.Minute

// waitRetired waits until the last rotation's retirement is past by the primary's clock (it
// decides: PostgreSQL compares VALID UNTIL with the server's clock), when that is within
// MaxRetireWait, and fills the report's Retirement. It reports whether the final logins
// must find AWSPREVIOUS refused.
func (r *run) waitRetired(ctx context.Context) (bool, error) {
	ret := r.retired
	if ret == nil {
		return false, nil
	}
	rep := &Retirement{After: ret.After, User: ret.User, Version: ret.Version, ValidUntil: *ret.ValidUntil}
	r.report.Retirement = rep
	if time.Until(rep.ValidUntil) > MaxRetireWait {
		r.out.printf("• %s (AWSPREVIOUS) retires at %s, more than %s away: not waited for\n", rep.User, rep.ValidUntil.Format(time.RFC3339), MaxRetireWait)
		return false, nil
	}
	conn, err := postgres.Connect(ctx, workflow.Target{Endpoint: r.db.Primary, DBName: r.db.AdminDB, User: r.db.AdminUser, Password: r.db.AdminPassword, SSLMode: r.db.SSLMode}, r.pg)
	if err != nil {
		return false, fmt.Errorf("wait for the retirement of %s: %w", rep.User, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	deadline := time.Now().Add(MaxRetireWait + 10*time.Second)
	for {
		var past bool
		if err := conn.QueryRow(ctx, "SELECT clock_timestamp() > $1", rep.ValidUntil).Scan(&past); err != nil {
			return false, fmt.Errorf("wait for the retirement of %s: read the primary's clock: %w", rep.User, err)
		}
		if past {
			break
		}
		if time.Now().After(deadline) {
			return false, fmt.Errorf("wait for the retirement of %s: the primary's clock did not reach %s", rep.User, rep.ValidUntil.Format(time.RFC3339Nano))
		}
		if err := wait.Sleep(ctx, 50*time.Millisecond); err != nil {
			return false, err
		}
	}
	rep.Waited = true
	r.out.printf("• %s (AWSPREVIOUS) retired: its password expired at %s by the primary's clock\n", rep.User, rep.ValidUntil.Format(time.RFC3339Nano))
	return true, nil
}
