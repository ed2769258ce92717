package audit

import (
	"cmp"
	"slices"
	"time"

	"github.com/pgrotate/pgrotate/tasks/evidence"
)

// ReportSchema names the JSON form of the report; README.md ("Audit report") lists its fields.
const ReportSchema = "pgrotate.audit/v1"

// DefaultMaxAge is the policy when Options.MaxAge is zero: PCI DSS 8.3.9 asks for a password
// change at least once every 90 days.
const DefaultMaxAge = 90 * 24 * time.Hour

// Outcomes of a rotation.
const (
	OutcomeSucceeded  = "succeeded"  // its first run succeeded
	OutcomeRedriven   = "redriven"   // a run failed, a redrive of the execution succeeded
	OutcomeSuperseded = "superseded" // it did not succeed, and a later rotation took over
	OutcomeFailed     = "failed"     // it did not succeed, and nothing came after it yet
)

// Resolutions of a failure.
const (
	ResolvedRedriven   = "redriven"   // a later run of the same execution succeeded
	ResolvedSuperseded = "superseded" // a later rotation took over (or, for a Secrets Manager failure, succeeded)
	ResolvedOpen       = "open"       // nothing resolved it yet
)

// Options bound the report and set the policy.
type Options struct {
	// Since and Until bound the period: rotations that started before Since are left out,
	// records that ended after Until are ignored (the report is as of Until). Zero: no
	// lower bound, and Until = Now.
	Since, Until time.Time
	// MaxAge is the policy: the longest allowed interval between successful rotations.
	// Zero means DefaultMaxAge.
	MaxAge time.Duration
	// Now is the report's time; zero means time.Now().
	Now time.Time
}

// Report is the compliance report of one secret. Every time is UTC.
type Report struct {
	Schema      string    `json:"schema"`
	SecretARN   string    `json:"secretArn"`
	GeneratedAt time.Time `json:"generatedAt"`
	// From and Until are the period: Since, or the first rotation's start; Until, or Now.
	From  time.Time `json:"from"`
	Until time.Time `json:"until"`
	// MaxAge is the policy.
	MaxAge Seconds `json:"maxAgeSeconds"`
	// Compliant: there was a successful rotation, and no interval in the period (including
	// the one from the last success to Until) is longer than MaxAge.
	Compliant bool `json:"compliant"`
	// NextDue is when the policy wants the next successful rotation: the last one plus
	// MaxAge; nil with no successful rotation.
	NextDue *time.Time `json:"nextDue,omitempty"`
	// Longest is the longest of Intervals; nil when there is none.
	Longest *Interval `json:"longestInterval,omitempty"`
	// Intervals are the intervals between successful rotations that reach into the period,
	// the last one open to Until. With no successful rotation at all, the one interval is
	// the whole period, with no versions.
	Intervals []Interval `json:"intervals"`
	Rotations []Rotation `json:"rotations"`
	Failures  []Failure  `json:"failures"`
}

// Interval is the time between two successful rotations (or from the last one to Until).
type Interval struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// FromVersion is the rotation that opens it; ToVersion the one that closes it, empty for
	// the interval open to Until.
	FromVersion string  `json:"fromVersion,omitempty"`
	ToVersion   string  `json:"toVersion,omitempty"`
	Length      Seconds `json:"seconds"`
	OverPolicy  bool    `json:"overPolicy"`
}

// Rotation is one execution of the rotation state machine, its runs merged: the last run's
// record says how it ended.
type Rotation struct {
	// Version is the secret version the rotation promotes (the execution's token).
	Version      string `json:"version"`
	FromVersion  string `json:"fromVersion,omitempty"`
	Execution    string `json:"execution"`
	ExecutionARN string `json:"executionArn,omitempty"`
	FromUser     string `json:"fromUser,omitempty"`
	ToUser       string `json:"toUser,omitempty"`

	StartedAt time.Time  `json:"startedAt"`
	EndedAt   *time.Time `json:"endedAt,omitempty"`
	// Duration is from the start to the end of the last run, redrive waits included.
	Duration Seconds `json:"durationSeconds"`
	// RotatedAt is when the new credential became AWSCURRENT (the promotion, else the end),
	// for a rotation that succeeded.
	RotatedAt *time.Time `json:"rotatedAt,omitempty"`

	Outcome string `json:"outcome"`
	// Status is the last run's execution status: SUCCEEDED, FAILED, TIMED_OUT or ABORTED.
	Status      string                `json:"status"`
	Runs        int                   `json:"runs"`
	StartedBy   evidence.StartedBy    `json:"startedBy"`
	Replicas    []evidence.Replica    `json:"replicas"`
	Deployments []evidence.Deployment `json:"deployments"`
}

// Failure is a run that did not succeed, or a Secrets Manager rotation failure event.
type Failure struct {
	// Kind is the record's: execution, or secretsmanager-rotation-failure.
	Kind      string `json:"kind"`
	Version   string `json:"version,omitempty"`
	Execution string `json:"execution,omitempty"`
	Run       int32  `json:"run"`
	// Status is the run's execution status, or the Secrets Manager event name.
	Status string `json:"status"`
	// State is the state that failed; Error the error name; Cause its message.
	State string    `json:"state,omitempty"`
	Error string    `json:"error,omitempty"`
	Cause string    `json:"cause,omitempty"`
	At    time.Time `json:"at"`

	Resolution string `json:"resolution"`
	// ResolvedBy names the execution that resolved it (with the run, for a redrive).
	ResolvedBy string     `json:"resolvedBy,omitempty"`
	ResolvedAt *time.Time `json:"resolvedAt,omitempty"`
}

// Build turns records (of one secret, as Load returns them) into the report.
func Build(recs []evidence.Record, o Options) *Report {
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	until := o.Until
	if until.IsZero() {
		until = now
	}
	maxAge := o.MaxAge
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	r := &Report{
		Schema: ReportSchema, GeneratedAt: now.UTC(), Until: until.UTC(), MaxAge: Seconds(maxAge),
		Intervals: []Interval{}, Rotations: []Rotation{}, Failures: []Failure{},
	}
	if len(recs) > 0 {
		r.SecretARN = recs[0].SecretARN
	}
	execs, smFailures := group(recs, until)
	for i, e := range execs {
		rot, fails := e.rotation(execs[i+1:])
		if !o.Since.IsZero() && rot.StartedAt.Before(o.Since) {
			continue
		}
		r.Rotations = append(r.Rotations, rot)
		r.Failures = append(r.Failures, fails...)
	}
	for _, rec := range smFailures {
		if f := secretsManagerFailure(rec, execs); o.Since.IsZero() || !f.At.Before(o.Since) {
			r.Failures = append(r.Failures, f)
		}
	}
	slices.SortStableFunc(r.Failures, func(a, b Failure) int { return a.At.Compare(b.At) })
	r.From = periodStart(o.Since, r)
	r.intervals(successes(execs))
	return r
}

// group files the records that ended by until: execution runs by execution, in order of
// start, and Secrets Manager failures apart.
func group(recs []evidence.Record, until time.Time) ([]execution, []evidence.Record) {
	var execs []execution
	var smFailures []evidence.Record
	for _, rec := range recs {
		switch {
		case endOf(rec).After(until):
			// not yet written as of Until
		case rec.Kind == evidence.KindRotationFailure:
			smFailures = append(smFailures, rec)
		case rec.Kind == evidence.KindExecution:
			execs = addRun(execs, rec)
		}
	}
	slices.SortStableFunc(execs, func(a, b execution) int {
		return cmp.Or(a.start().Compare(b.start()), cmp.Compare(a.name, b.name))
	})
	return execs, smFailures
}

// periodStart is Since, else the first rotation's start or failure, else Until.
func periodStart(since time.Time, r *Report) time.Time {
	if !since.IsZero() {
		return since.UTC()
	}
	from := r.Until
	if len(r.Rotations) > 0 && r.Rotations[0].StartedAt.Before(from) {
		from = r.Rotations[0].StartedAt
	}
	if len(r.Failures) > 0 && r.Failures[0].At.Before(from) {
		from = r.Failures[0].At
	}
	return from
}

// success is a successful rotation on the time line.
type success struct {
	version string
	at      time.Time
}

func successes(execs []execution) []success {
	var out []success
	for _, e := range execs {
		if at, ok := e.rotatedAt(); ok {
			out = append(out, success{version: e.last().SecretVersion, at: at})
		}
	}
	slices.SortStableFunc(out, func(a, b success) int { return a.at.Compare(b.at) })
	return out
}

// intervals fills Intervals, Longest and Compliant from the successful rotations (all of
// them: the one before From opens the first interval of the period).
func (r *Report) intervals(succ []success) {
	maxAge := time.Duration(r.MaxAge)
	add := func(from, to time.Time, fromV, toV string) {
		if to.Before(r.From) {
			return // wholly before the period
		}
		d := to.Sub(from)
		r.Intervals = append(r.Intervals, Interval{From: from, To: to, FromVersion: fromV, ToVersion: toV, Length: Seconds(d), OverPolicy: d > maxAge})
	}
	if len(succ) == 0 {
		add(r.From, r.Until, "", "")
	} else {
		due := succ[len(succ)-1].at.Add(maxAge)
		r.NextDue = &due
	}
	for i, s := range succ {
		if i+1 < len(succ) {
			add(s.at, succ[i+1].at, s.version, succ[i+1].version)
		} else {
			add(s.at, r.Until, s.version, "")
		}
	}
	for i := range r.Intervals {
		if r.Longest == nil || r.Intervals[i].Length > r.Longest.Length {
			l := r.Intervals[i]
			r.Longest = &l
		}
	}
	r.Compliant = len(succ) > 0 && r.Longest != nil && !r.Longest.OverPolicy
}

// endOf is when a record's run (or event) ended.
func endOf(rec evidence.Record) time.Time {
	if rec.EndedAt != nil {
		return rec.EndedAt.UTC()
	}
	return rec.Event.Time.UTC()
}
