package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

const (
	healthTimeout = 3 * time.Second // covers the replica's auth backoff (1.55 s)
	workTimeout   = 10 * time.Second
	maxSleep      = 10 * time.Minute
)

// server answers the service's HTTP endpoints.
type server struct {
	db  *database
	log *slog.Logger
	// workTable is the table /work counts rows of, when it exists; empty means none.
	workTable string
	// password is scrubbed from every error logged, as a backstop: PostgreSQL errors
	// never contain it.
	password secret
}

func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /work", s.work)
	mux.HandleFunc("GET /whoami", s.whoami)
	return mux
}

// healthz runs SELECT 1 on the primary and on the replica, so only a task that can reach
// and log in to both takes traffic (the ALB and ECS health checks call it).
func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()
	ping := func(c *pgxpool.Conn) error {
		_, err := c.Exec(ctx, "SELECT 1")
		return err
	}
	var primaryErr, replicaErr error
	var wg sync.WaitGroup
	wg.Go(func() { primaryErr = s.db.withPrimary(ctx, ping) })
	wg.Go(func() { replicaErr = s.db.withReplica(ctx, ping) })
	wg.Wait()

	body := map[string]string{"status": "ok", "primary": "ok", "replica": "ok"}
	code := http.StatusOK
	for side, err := range map[string]error{"primary": primaryErr, "replica": replicaErr} {
		if err != nil {
			s.logError("health check failed", err, "side", side)
			body[side] = "failed: " + failureReason(err)
			body["status"] = "unavailable"
			code = http.StatusServiceUnavailable
		}
	}
	writeJSON(w, code, body)
}

// sideResult is what /work read on one side.
type sideResult struct {
	User    string    `json:"user"`
	Standby bool      `json:"standby"`
	Now     time.Time `json:"now"`
	Rows    *int64    `json:"rows,omitempty"`
}

// work simulates a request: with ?sleep=2s it first holds the request open (to test
// draining), then queries the primary and the replica. Because the queries come after the
// sleep, a request in flight at SIGTERM opens its connections while the task drains.
func (s *server) work(w http.ResponseWriter, r *http.Request) {
	var sleep time.Duration
	if v := r.URL.Query().Get("sleep"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > maxSleep {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("sleep must be a duration between 0 and %s", maxSleep)})
			return
		}
		sleep = d
	}
	s.log.Info("work started", "sleep", sleep)
	select {
	case <-time.After(sleep):
	case <-r.Context().Done():
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), workTimeout)
	defer cancel()
	var res struct {
		Primary sideResult `json:"primary"`
		Replica sideResult `json:"replica"`
	}
	err := s.db.withPrimary(ctx, func(c *pgxpool.Conn) error { return s.read(ctx, c, &res.Primary) })
	if err == nil {
		err = s.db.withReplica(ctx, func(c *pgxpool.Conn) error { return s.read(ctx, c, &res.Replica) })
	}
	if err != nil {
		s.unavailable(w, "work failed", err)
		return
	}
	s.log.Info("work done", "sleep", sleep)
	writeJSON(w, http.StatusOK, res)
}

func (s *server) read(ctx context.Context, c *pgxpool.Conn, res *sideResult) error {
	if err := c.QueryRow(ctx, "SELECT current_user, pg_is_in_recovery(), now()").Scan(&res.User, &res.Standby, &res.Now); err != nil {
		return fmt.Errorf("read session: %w", err)
	}
	if s.workTable == "" {
		return nil
	}
	// regclass's text form is a quoted, qualified-as-needed name, safe to put in SQL.
	var table *string
	if err := c.QueryRow(ctx, "SELECT to_regclass($1)::text", s.workTable).Scan(&table); err != nil {
		return fmt.Errorf("look up table %s: %w", s.workTable, err)
	}
	if table == nil {
		return nil
	}
	var n int64
	if err := c.QueryRow(ctx, "SELECT count(*) FROM "+*table).Scan(&n); err != nil {
		return fmt.Errorf("count rows of %s: %w", *table, err)
	}
	res.Rows = &n
	return nil
}

// whoami tells which login user the task holds (session_user) and which role it acts as
// (current_user; the clone acts as the original user).
func (s *server) whoami(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), workTimeout)
	defer cancel()
	var res struct {
		CurrentUser string `json:"current_user"`
		SessionUser string `json:"session_user"`
	}
	err := s.db.withPrimary(ctx, func(c *pgxpool.Conn) error {
		return c.QueryRow(ctx, "SELECT current_user, session_user").Scan(&res.CurrentUser, &res.SessionUser)
	})
	if err != nil {
		s.unavailable(w, "whoami failed", err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *server) logError(msg string, err error, args ...any) {
	s.log.Warn(msg, append(args, "error", scrub(err.Error(), s.password))...)
}

// unavailable logs a failed database call and answers 503 with only the failure's kind.
func (s *server) unavailable(w http.ResponseWriter, msg string, err error) {
	s.logError(msg, err)
	writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": failureReason(err)})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// serve serves h on ln until ctx is done (SIGTERM), then drains: the listener closes so no
// new request is accepted, and in-flight requests run to completion for up to drain. It
// prints "READY <addr>" to stdout once listening, for whoever started the process.
func serve(ctx context.Context, ln net.Listener, h http.Handler, drain time.Duration, stdout io.Writer, log *slog.Logger) error {
	// Requests get their own base context, so the signal does not cancel in-flight work.
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	addr := ln.Addr().String()
	if _, err := fmt.Fprintf(stdout, "READY %s\n", addr); err != nil {
		_ = hs.Close()
		return fmt.Errorf("announce readiness: %w", err)
	}
	log.Info("ready", "addr", addr)

	select {
	case err := <-errc:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	log.Info("draining", "timeout", drain)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drain)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		_ = hs.Close()
		return fmt.Errorf("drain in-flight requests: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve http: %w", err)
	}
	return nil
}
