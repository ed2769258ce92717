package main

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestRetryAuth(t *testing.T) {
	authErr := fmt.Errorf("connect: %w", &pgconn.PgError{Code: "28P01", Message: "password authentication failed"})
	noLogin := &pgconn.PgError{Code: "28000", Message: "role is not permitted to log in"}
	refused := errors.New("dial tcp: connection refused")
	backoff := []time.Duration{time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond}
	tests := []struct {
		name         string
		errs         []error // what each call returns; nil is success
		wantCalls    int
		wantErr      error
		wantWaitsSum time.Duration
	}{
		{name: "first try", errs: []error{nil}, wantCalls: 1},
		{name: "password replicates", errs: []error{authErr, authErr, nil}, wantCalls: 3, wantWaitsSum: 3 * time.Millisecond},
		{name: "no login replicates", errs: []error{noLogin, nil}, wantCalls: 2, wantWaitsSum: time.Millisecond},
		{name: "other errors are not retried", errs: []error{refused}, wantCalls: 1, wantErr: refused},
		{name: "gives up after the backoff", errs: []error{authErr, authErr, authErr, authErr}, wantCalls: 4, wantErr: authErr, wantWaitsSum: 6 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			var waits time.Duration
			got, err := retryAuth(context.Background(), backoff,
				func(attempt int, wait time.Duration, err error) {
					if attempt != calls {
						t.Errorf("onRetry attempt = %d after %d calls", attempt, calls)
					}
					waits += wait
				},
				func(context.Context) (int, error) {
					err := tt.errs[calls]
					calls++
					return calls, err
				})
			if calls != tt.wantCalls {
				t.Errorf("calls = %d, want %d", calls, tt.wantCalls)
			}
			if waits != tt.wantWaitsSum {
				t.Errorf("waited %s in all, want %s", waits, tt.wantWaitsSum)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && got != tt.wantCalls {
				t.Errorf("result = %d, want the last call's %d", got, tt.wantCalls)
			}
		})
	}
}

func TestRetryAuthStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	authErr := &pgconn.PgError{Code: "28P01"}
	_, err := retryAuth(ctx, []time.Duration{time.Hour}, func(int, time.Duration, error) { cancel() },
		func(context.Context) (struct{}, error) { return struct{}{}, authErr })
	if !errors.Is(err, context.Canceled) || !errors.Is(err, authErr) {
		t.Fatalf("err = %v, want the auth failure and context.Canceled", err)
	}
}
