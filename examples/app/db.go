package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// replicaBackoff is how long a replica connection waits before each retry after an
// authentication failure. A password changed on the primary reaches a replica with
// replication lag; these few short retries (1.55 s in all) bridge that window for a task
// launched right after a rotation. Primary connections never retry: there the new password
// is valid before the secret is promoted.
var replicaBackoff = []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}

// database holds the service's two pools. Without a replica endpoint, replica is the
// primary's pool.
type database struct {
	primary, replica *pgxpool.Pool
	// replicaRetry is the wait before each retry of a replica acquisition that failed
	// authentication; empty when the replica is the primary.
	replicaRetry []time.Duration
	// onRetry, when set, is told of each retry (for logs and tests).
	onRetry func(attempt int, wait time.Duration, err error)
}

// openDatabase builds both pools; onRetry (may be nil) is told of each replica retry. It
// connects lazily: the health check, not start-up, decides whether the task takes traffic.
func openDatabase(c config, onRetry func(attempt int, wait time.Duration, err error)) (*database, error) {
	primary, err := newPool(c, c.Primary)
	if err != nil {
		return nil, fmt.Errorf("configure primary pool: %w", err)
	}
	if !c.hasReplica() {
		return &database{primary: primary, replica: primary}, nil
	}
	replica, err := newPool(c, c.Replica)
	if err != nil {
		primary.Close()
		return nil, fmt.Errorf("configure replica pool: %w", err)
	}
	return &database{primary: primary, replica: replica, replicaRetry: replicaBackoff, onRetry: onRetry}, nil
}

func newPool(c config, e endpoint) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(c.dsn(e))
	if err != nil {
		return nil, err
	}
	cfg.ConnConfig.Password = c.Password.reveal()
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	cfg.MaxConns = 4
	return pgxpool.NewWithConfig(context.Background(), cfg)
}

func (d *database) close() {
	d.primary.Close()
	if d.replica != d.primary {
		d.replica.Close()
	}
}

// withPrimary runs fn on a primary connection.
func (d *database) withPrimary(ctx context.Context, fn func(*pgxpool.Conn) error) error {
	conn, err := d.primary.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect to primary: %w", err)
	}
	defer conn.Release()
	return fn(conn)
}

// withReplica runs fn on a replica connection, retrying an acquisition that fails
// authentication. The retry wraps Acquire because pgxpool has no hook around its connect:
// an Acquire that finds no idle connection connects, and a failed connect is not cached.
func (d *database) withReplica(ctx context.Context, fn func(*pgxpool.Conn) error) error {
	conn, err := retryAuth(ctx, d.replicaRetry, d.onRetry, d.replica.Acquire)
	if err != nil {
		return fmt.Errorf("connect to replica: %w", err)
	}
	defer conn.Release()
	return fn(conn)
}

// retryAuth calls connect, and again after each wait in backoff for as long as it fails
// authentication. Other errors return at once: only a password that has not replicated yet
// is worth waiting for.
func retryAuth[T any](ctx context.Context, backoff []time.Duration, onRetry func(int, time.Duration, error), connect func(context.Context) (T, error)) (T, error) {
	for attempt := 0; ; attempt++ {
		v, err := connect(ctx)
		if err == nil || !isAuthFailure(err) || attempt == len(backoff) {
			return v, err
		}
		wait := backoff[attempt]
		if onRetry != nil {
			onRetry(attempt+1, wait, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			var zero T
			return zero, fmt.Errorf("wait to retry after %w: %w", err, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// isAuthFailure reports whether err is PostgreSQL refusing the credentials: invalid_password
// (28P01; also what SCRAM reports for an unknown role) or invalid_authorization_specification
// (28000; no pg_hba entry, or a role without LOGIN).
func isAuthFailure(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "28P01" || pgErr.Code == "28000")
}

// failureReason says why a database call failed without revealing anything secret or
// internal: the SQLSTATE, or the kind of failure.
func failureReason(err error) string {
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr):
		return "SQLSTATE " + pgErr.Code
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	default:
		return "connection error"
	}
}

// logRetry is the production onRetry: one line per retry, no secret.
func logRetry(log *slog.Logger) func(int, time.Duration, error) {
	return func(attempt int, wait time.Duration, err error) {
		log.Warn("replica refused the credentials; retrying", "attempt", attempt, "wait", wait, "reason", failureReason(err))
	}
}
