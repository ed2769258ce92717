package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pgrotate/pgrotate/workflow"
)

// validUntil reads user's VALID UNTIL as text ("none" for NULL), as the admin sees it.
func (f fixture) validUntil(t *testing.T, ctx context.Context, user string) string {
	t.Helper()
	conn := f.conn(t, ctx, f.primary, f.adminUser, f.adminPW)
	var v string
	if err := conn.QueryRow(ctx, "SELECT COALESCE(rolvaliduntil::text, 'none') FROM pg_roles WHERE rolname = $1", user).Scan(&v); err != nil {
		t.Fatalf("read VALID UNTIL of %s: %v", user, err)
	}
	return v
}

// waitPast waits until the primary's clock is past until: VALID UNTIL is compared with the
// server's clock, not the test's.
func (f fixture) waitPast(t *testing.T, ctx context.Context, until time.Time) {
	t.Helper()
	conn := f.conn(t, ctx, f.primary, f.adminUser, f.adminPW)
	for {
		var past bool
		if err := conn.QueryRow(ctx, "SELECT clock_timestamp() > $1", until).Scan(&past); err != nil {
			t.Fatalf("read the primary's clock: %v", err)
		}
		if past {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the primary's clock did not pass %s: %v", until, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func TestRetirePassword(t *testing.T) {
	ctx, f := setup(t)
	a := f.admin(t, ctx)
	base, basePW, clone := f.newPair(t, ctx, "ret_")
	clonePW := randomPassword(t)
	if _, _, err := a.SetPassword(ctx, clone, clonePW); err != nil {
		t.Fatal(err)
	}

	// Retired with an hour's grace: the password still works until then.
	r1, err := a.RetirePassword(ctx, base, basePW, time.Hour)
	if err != nil || !r1.Changed || r1.Skipped != "" || !r1.ValidUntil.After(time.Now().Add(50*time.Minute)) {
		t.Fatalf("RetirePassword(1h) = %+v, %v; want changed, about an hour from now", r1, err)
	}
	if got := f.validUntil(t, ctx, base); got == "none" || got == "infinity" {
		t.Fatalf("VALID UNTIL of %s = %s, want %s", base, got, r1.ValidUntil)
	}
	f.login(t, ctx, f.primary, base, basePW)
	f.login(t, ctx, f.primary, clone, clonePW)
	if v := f.validUntil(t, ctx, clone); v != "infinity" { // as SetPassword left it
		t.Fatalf("the other user got VALID UNTIL %s", v)
	}

	// Again (a re-drive): nothing changes, the expiry is not pushed back.
	r2, err := a.RetirePassword(ctx, base, basePW, 2*time.Hour)
	if err != nil || r2.Changed || r2.Skipped == "" || !r2.ValidUntil.Equal(r1.ValidUntil) {
		t.Fatalf("repeated RetirePassword = %+v, %v; want unchanged at %s", r2, err, r1.ValidUntil)
	}

	// A shorter grace brings it forward; past it the password is refused on the primary and,
	// once replayed, on the replica. The other user is untouched.
	r3, err := a.RetirePassword(ctx, base, basePW, time.Millisecond)
	if err != nil || !r3.Changed || !r3.ValidUntil.Before(r1.ValidUntil) {
		t.Fatalf("RetirePassword(1ms) = %+v, %v; want changed, earlier", r3, err)
	}
	f.waitPast(t, ctx, r3.ValidUntil)
	if err := f.c.WaitReplayed(ctx); err != nil {
		t.Fatal(err)
	}
	for _, ep := range []workflow.Endpoint{f.primary, f.replica} {
		f.rejected(t, ctx, ep, base, basePW)
		f.login(t, ctx, ep, clone, clonePW)
	}
	r4, err := a.RetirePassword(ctx, base, basePW, time.Hour)
	if err != nil || r4.Changed || !r4.ValidUntil.Equal(r3.ValidUntil) || !strings.Contains(r4.Skipped, "expired") {
		t.Fatalf("RetirePassword of an expired password = %+v, %v; want skipped, unchanged", r4, err)
	}

	// The next password change clears the expiry with the new password: the new one logs
	// in everywhere, the retired one stays refused.
	p2 := randomPassword(t)
	if _, changed, err := a.SetPassword(ctx, base, p2); err != nil || !changed {
		t.Fatalf("SetPassword after retirement = %v, %v", changed, err)
	}
	if v := f.validUntil(t, ctx, base); v != "infinity" {
		t.Fatalf("VALID UNTIL after SetPassword = %s, want infinity", v)
	}
	if err := f.c.WaitReplayed(ctx); err != nil {
		t.Fatal(err)
	}
	for _, ep := range []workflow.Endpoint{f.primary, f.replica} {
		f.login(t, ctx, ep, base, p2)
		f.rejected(t, ctx, ep, base, basePW)
	}

	// The old password no longer logs in: it was changed, nothing is retired.
	r5, err := a.RetirePassword(ctx, base, basePW, time.Millisecond)
	if err != nil || r5.Changed || r5.Skipped == "" {
		t.Fatalf("RetirePassword of a changed password = %+v, %v; want skipped", r5, err)
	}
	if v := f.validUntil(t, ctx, base); v != "infinity" {
		t.Fatalf("VALID UNTIL after a skipped retirement = %s, want infinity", v)
	}
	f.login(t, ctx, f.primary, base, p2)
}

func TestRetirePasswordRefuses(t *testing.T) {
	ctx, f := setup(t)
	a := f.admin(t, ctx)
	user, pw := f.newUser(t, ctx, "retref_")
	tests := []struct {
		name  string
		user  string
		grace time.Duration
		check func(error) bool
	}{
		{"the admin", f.adminUser, time.Hour, func(err error) bool { var r *RefusedRole; return errors.As(err, &r) }},
		{"an invalid name", `x"; DROP ROLE y; --`, time.Hour, func(err error) bool { var r *workflow.InvalidRoleName; return errors.As(err, &r) }},
		{"no grace", user, 0, func(err error) bool { return err != nil && strings.Contains(err.Error(), "not positive") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := a.RetirePassword(ctx, tc.user, pw, tc.grace); !tc.check(err) {
				t.Fatalf("RetirePassword(%q) = %v", tc.user, err)
			}
		})
	}
	if v := f.validUntil(t, ctx, user); v != "none" {
		t.Fatalf("a refused retirement changed VALID UNTIL to %s", v)
	}
	f.login(t, ctx, f.primary, user, pw)
}

// A pending user that is retired, or whose expiry differs from the active user's, is still
// the active user's twin: VALID UNTIL is the password's lifetime, and CloneUser leaves it to
// SetPassword (clearing it earlier would revive the old password until then).
func TestParityAndCloneLeaveValidUntil(t *testing.T) {
	ctx, f := setup(t)
	a := f.admin(t, ctx)
	base, _, clone := f.newPair(t, ctx, "retpar_")
	f.exec(t, ctx, "ALTER ROLE "+ident(clone)+" VALID UNTIL '2031-02-03 04:05:06+00'")
	for _, dir := range [][2]string{{base, clone}, {clone, base}} {
		if err := a.CheckParity(ctx, dir[0], dir[1]); err != nil {
			t.Fatalf("CheckParity(%s, %s) = %v, want parity", dir[0], dir[1], err)
		}
	}
	if err := a.CloneRole(ctx, base, clone); err != nil {
		t.Fatal(err)
	}
	if v := f.validUntil(t, ctx, clone); !strings.HasPrefix(v, "2031-02-03") {
		t.Fatalf("CloneRole changed the pending user's VALID UNTIL to %s", v)
	}
}

// A password that already logs in is not set again, but a pending expiry on it is cleared:
// it is about to be promoted.
func TestSetPasswordClearsExpiryOfAWorkingPassword(t *testing.T) {
	ctx, f := setup(t)
	a := f.admin(t, ctx)
	_, _, clone := f.newPair(t, ctx, "retset_")
	pw := randomPassword(t)
	if _, _, err := a.SetPassword(ctx, clone, pw); err != nil {
		t.Fatal(err)
	}
	before := f.storedVerifier(t, ctx, clone)
	f.exec(t, ctx, "ALTER ROLE "+ident(clone)+" VALID UNTIL '2099-01-01 00:00:00+00'")
	if _, changed, err := a.SetPassword(ctx, clone, pw); err != nil || !changed {
		t.Fatalf("SetPassword = %v, %v; want the expiry cleared", changed, err)
	}
	if v := f.validUntil(t, ctx, clone); v != "infinity" {
		t.Fatalf("VALID UNTIL = %s, want infinity", v)
	}
	if f.storedVerifier(t, ctx, clone) != before {
		t.Fatal("the password was set again")
	}
	f.login(t, ctx, f.primary, clone, pw)
}
