// Package probe proves that a rotation never refuses a connection. It logs in again and
// again, on fresh connections (no pool, no reuse), to the primary and to the replica with
// every credential the live application tasks hold, and records each attempt and each
// failure. A rotation is clean when the report counts attempts on both targets and no
// failure.
package probe

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgrotate/pgrotate/local/cause"
	"github.com/pgrotate/pgrotate/workflow"
)

// Target names: a report counts attempts per name. Several replicas may share TargetReplica.
const (
	TargetPrimary = "primary"
	TargetReplica = "replica"
)

// Target is a server to log in to.
type Target struct {
	Name string // TargetPrimary or TargetReplica
	// DSN is a keyword/value connection string (host, port, dbname, sslmode, sslrootcert…).
	// Its user and password, if any, are replaced by each credential's.
	DSN string
}

// Credential is a login a live task holds.
type Credential struct {
	User     string
	Password workflow.Password
}

// Options configure a Probe. Zero values choose the documented defaults.
type Options struct {
	// Credentials returns the credentials to probe with; it is called once per round, so
	// the set follows the live tasks. Required. Duplicates are probed once per round.
	Credentials func() []Credential
	// Interval is the time between the starts of two rounds; one round logs in once per
	// target and credential. Zero means 20ms.
	Interval time.Duration
	// Timeout bounds one login and its query. Zero means 30s: a login that is only slow
	// (a busy machine) is not a refused one.
	Timeout time.Duration
	// MaxFailures caps the failures kept in the report (the first ones); the counts stay
	// exact. Zero means 1000.
	MaxFailures int
	// Now returns the time of an attempt. Nil means time.Now.
	Now func() time.Time
}

// Counts are the attempts and failures on one target, or on all.
type Counts struct {
	Attempts int `json:"attempts"`
	Failed   int `json:"failed"`
}

// Failure is one refused or broken login.
type Failure struct {
	Target string `json:"target"`
	cause.Failure
}

// Report is what the probe saw so far.
type Report struct {
	Attempts int    `json:"attempts"`
	Failed   int    `json:"failed"`
	Primary  Counts `json:"primary"`
	Replica  Counts `json:"replica"`
	// ByCause counts every failure by its cause (exact, unlike Failures).
	ByCause  cause.Counts `json:"by_cause"`
	Failures []Failure    `json:"failures"`
}

// Probe logs in continuously and records what happens. Its methods are safe for
// concurrent use.
type Probe struct {
	targets []target
	opts    Options
	running atomic.Bool

	mu     sync.Mutex
	report Report
}

type target struct {
	name string
	cfg  *pgconn.Config
}

// New returns a probe of targets. It parses each DSN once; Run copies the parsed config for
// every attempt.
func New(targets []Target, opts Options) (*Probe, error) {
	if opts.Credentials == nil {
		return nil, errors.New("new probe: Options.Credentials is required")
	}
	if len(targets) == 0 {
		return nil, errors.New("new probe: no target")
	}
	if opts.Interval <= 0 {
		opts.Interval = 20 * time.Millisecond
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.MaxFailures <= 0 {
		opts.MaxFailures = 1000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	p := &Probe{opts: opts, report: Report{ByCause: cause.NewCounts(), Failures: []Failure{}}}
	for _, t := range targets {
		if t.Name != TargetPrimary && t.Name != TargetReplica {
			return nil, fmt.Errorf("new probe: target name %q is not %q or %q", t.Name, TargetPrimary, TargetReplica)
		}
		cfg, err := pgconn.ParseConfig(t.DSN)
		if err != nil {
			return nil, fmt.Errorf("new probe: parse %s DSN: %w", t.Name, err)
		}
		p.targets = append(p.targets, target{name: t.Name, cfg: cfg})
	}
	return p, nil
}

// Run probes until ctx is done, then returns nil. An attempt cut short by ctx is not
// counted. Run must not be called again while it runs.
func (p *Probe) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("run probe: already running")
	}
	defer p.running.Store(false)
	tick := time.NewTicker(p.opts.Interval)
	defer tick.Stop()
	for {
		p.round(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// round logs in once per target and distinct credential, all at once, and waits for all.
func (p *Probe) round(ctx context.Context) {
	seen := map[Credential]bool{}
	var wg sync.WaitGroup
	for _, c := range p.opts.Credentials() {
		if seen[c] {
			continue
		}
		seen[c] = true
		for _, t := range p.targets {
			wg.Go(func() { p.attempt(ctx, t, c) })
		}
	}
	wg.Wait()
}

func (p *Probe) attempt(ctx context.Context, t target, c Credential) {
	at := p.opts.Now()
	actx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()
	err := login(actx, t.cfg, c)
	if ctx.Err() != nil {
		return
	}
	p.record(t.name, c, at, err)
}

// login opens a fresh connection as c, runs SELECT 1 and closes it.
func login(ctx context.Context, base *pgconn.Config, c Credential) error {
	cfg := base.Copy()
	cfg.User = c.User
	cfg.Password = c.Password.Reveal()
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	_, err = conn.Exec(ctx, "SELECT 1").ReadAll()
	return err
}

func (p *Probe) record(name string, c Credential, at time.Time, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := &p.report
	side := &r.Primary
	if name == TargetReplica {
		side = &r.Replica
	}
	r.Attempts++
	side.Attempts++
	if err == nil {
		return
	}
	r.Failed++
	side.Failed++
	why, code := cause.Of(err)
	r.ByCause[why]++
	if len(r.Failures) < p.opts.MaxFailures {
		r.Failures = append(r.Failures, Failure{Target: name, Failure: cause.Failure{User: c.User, Reason: reason(err, c.Password), Cause: why, SQLState: code, At: at}})
	}
}

// reason describes err without the password: PostgreSQL's SQLSTATE and message when the
// server refused, else the client's error text. Neither should contain the password; it is
// scrubbed anyway.
func reason(err error, pw workflow.Password) string {
	msg := err.Error()
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		msg = fmt.Sprintf("SQLSTATE %s: %s", pgErr.Code, pgErr.Message)
	}
	if !pw.IsZero() {
		msg = strings.ReplaceAll(msg, pw.Reveal(), workflow.Redacted)
	}
	return msg
}

// Report returns a copy of what the probe saw so far.
func (p *Probe) Report() Report {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.report
	r.Failures = append([]Failure{}, p.report.Failures...)
	r.ByCause = maps.Clone(p.report.ByCause)
	return r
}
