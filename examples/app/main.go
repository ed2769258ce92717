// Command app is a small service like one run on ECS against RDS PostgreSQL with a read
// replica, written to survive a pgrotate rotation without a failed request:
//
//   - it reads its credentials once, at start, from environment variables (as ECS injects a
//     Secrets Manager secret): DB_HOST, DB_PORT, DB_NAME, DB_USER, DB_PASSWORD, DB_SSLMODE
//     (verify-full), DB_SSLROOTCERT, DB_REPLICA_HOST, DB_REPLICA_PORT, or the whole secret
//     JSON in DB_SECRET; LISTEN_ADDR (:8080), DRAIN_TIMEOUT (30s), WORK_TABLE (optional);
//   - GET /healthz runs SELECT 1 on the primary and the replica, so a task takes traffic only
//     once it can log in to both;
//   - replica connections retry an authentication failure with a short backoff, because a
//     password changed on the primary reaches the replica after replication lag;
//   - on SIGTERM it stops accepting requests, lets in-flight ones finish (they may still open
//     new connections: the previous user stays valid until the next rotation), closes its
//     pools and exits 0.
//
// GET /work?sleep=2s simulates a request held open; GET /whoami returns current_user and
// session_user. Once listening it prints "READY <addr>" on stdout. Logs are JSON lines on
// stderr and never contain the password.
package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	// After the first signal, a second one kills the process instead of waiting for the drain.
	context.AfterFunc(ctx, stop)
	if err := run(ctx, os.LookupEnv, os.Stdout, log); err != nil {
		log.Error("exited", "error", err.Error())
		os.Exit(1)
	}
	log.Info("exited")
}

// run reads the configuration, serves until ctx is done, drains and closes the pools.
func run(ctx context.Context, lookup func(string) (string, bool), stdout io.Writer, log *slog.Logger) (err error) {
	cfg, err := loadConfig(lookup)
	if err != nil {
		return err
	}
	defer func() {
		// Backstop: no error leaves with the password in it.
		if err != nil {
			err = errors.New(scrub(err.Error(), cfg.Password))
		}
	}()
	log.Info("start", "config", cfg)
	db, err := openDatabase(cfg, logRetry(log))
	if err != nil {
		return err
	}
	defer db.close()
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return err
	}
	s := &server{db: db, log: log, workTable: cfg.WorkTable, password: cfg.Password}
	return serve(ctx, ln, s.routes(), cfg.DrainTimeout, stdout, log)
}
