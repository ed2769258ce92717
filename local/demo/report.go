package demo

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/pgrotate/pgrotate/local/cause"
	"github.com/pgrotate/pgrotate/local/fleet"
	"github.com/pgrotate/pgrotate/local/probe"
)

// Report is what a demo run measured. It holds no secret value. Its JSON form is what
// `pgrotate demo --json` prints.
type Report struct {
	Strategy string `json:"strategy"`
	Tasks    int    `json:"tasks"`
	// ConfigurationTest is Secrets Manager's test of the rotation configuration, run first
	// as a deployment runs it (RotateSecret without RotateImmediately).
	ConfigurationTest *ConfigurationTest `json:"configuration_test,omitempty"`
	Rotations         RotationCounts     `json:"rotations"`
	// Connections are the probe's fresh logins, with every credential a live task held, to
	// the primary and the replica, from before the first rotation to after the last.
	// Failures lists the first ones (see Options.MaxFailures); the counts are exact.
	Connections probe.Report `json:"connections"`
	// PromoteMS: per rotation, the time from its start (createSecret) to AWSCURRENT moving
	// to the new version (the end of the Promote state; of finishSecret for single-user).
	PromoteMS Latency `json:"promote_ms"`
	// RotationMS: per rotation, the time from its start to the end of its execution
	// (after the redeploy completed).
	RotationMS Latency `json:"rotation_ms"`
	// States are the top-level states of every rotation (the Secrets Manager steps and
	// Redeploy for single-user) and how long each took.
	States []StateTime `json:"states"`
	// ActiveUser is the user in AWSCURRENT at the end.
	ActiveUser string `json:"active_user"`
	// PerRotation is each rotation's outcome.
	PerRotation []RotationResult `json:"per_rotation"`
	// Requests are the /work requests the fleet sent its tasks, those in flight at SIGTERM
	// counted apart.
	Requests fleet.Stats `json:"requests"`
	// LoginsAfter are the logins tried at the end with AWSCURRENT and AWSPREVIOUS, on the
	// primary and the replica.
	LoginsAfter []Login `json:"logins_after"`
	// AdoptedRoles are the existing roles, not created by pgrotate, that the setup took over
	// because --adopt-existing-user asked it to (their passwords were replaced).
	AdoptedRoles []string `json:"adopted_roles,omitempty"`
	// Interrupted is set when the run was cut short (Ctrl-C): the counts cover what ran.
	Interrupted bool `json:"interrupted,omitempty"`
	// Retirement is the last rotation's retirement of its previous user, with
	// --retire-previous.
	Retirement *Retirement `json:"retirement,omitempty"`
	// Evidence counts the records the real evidence handler wrote to the served bucket.
	Evidence *Evidence `json:"evidence,omitempty"`
}

// Evidence is what the evidence bucket (Object Lock, the demo's served S3) holds at the end.
type Evidence struct {
	Bucket string `json:"bucket"`
	// Records counts every record: one per execution run, one per failed rotation
	// (Secrets Manager's RotationFailed).
	Records int `json:"records"`
	// ExecutionRuns counts the records of execution runs.
	ExecutionRuns int `json:"execution_runs"`
}

// Line is the evidence's line in the human report.
func (e *Evidence) Line() string {
	return fmt.Sprintf("evidence: %d records (%d of execution runs) in s3://%s, written by the evidence function (Object Lock)",
		e.Records, e.ExecutionRuns, e.Bucket)
}

// Retirement is what the last rotation's RetirePrevious did.
type Retirement struct {
	After      string    `json:"after"`
	User       string    `json:"user,omitempty"`
	Version    string    `json:"version,omitempty"`
	ValidUntil time.Time `json:"valid_until,omitempty"`
	// Waited is set when the demo waited past ValidUntil before its final logins, which
	// then must refuse AWSPREVIOUS.
	Waited bool `json:"waited"`
}

// ConfigurationTest is the outcome of the rotation-configuration test: "passed" or "failed"
// with the rotation function's error name and message.
type ConfigurationTest struct {
	Result  string `json:"result"`
	MS      int64  `json:"ms"`
	Error   string `json:"error,omitempty"`
	Message string `json:"message,omitempty"`
}

// Line is the configuration test's line in the human report.
func (c *ConfigurationTest) Line() string {
	s := fmt.Sprintf("rotation configuration test (RotateSecret, RotateImmediately=false → testSecret): %s  %s", c.Result, ms(c.MS))
	if c.Error != "" {
		s += fmt.Sprintf("\n  %s: %s", c.Error, c.Message)
	}
	return s
}

// RotationCounts count the rotations.
type RotationCounts struct {
	Requested int `json:"requested"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
}

// Latency summarises durations in milliseconds: the median (nearest rank) and the maximum.
type Latency struct {
	P50 int64 `json:"p50"`
	Max int64 `json:"max"`
}

// StateTime is one state of one rotation (numbered from 1).
type StateTime struct {
	Rotation int    `json:"rotation"`
	State    string `json:"state"`
	MS       int64  `json:"ms"`
}

// RotationResult is one rotation's outcome.
type RotationResult struct {
	Rotation  int    `json:"rotation"`
	Version   string `json:"version"`
	From      string `json:"from"`
	To        string `json:"to"`
	Succeeded bool   `json:"succeeded"`
	PromoteMS int64  `json:"promote_ms"`
	MS        int64  `json:"ms"`
	// Error says why a rotation failed (the failed step or the execution's error and cause).
	Error string `json:"error,omitempty"`
	// LoginFailures are the probe's failures while this rotation ran.
	LoginFailures int `json:"login_failures"`
}

// Login is one login tried at the end.
type Login struct {
	Stage  string `json:"stage"`
	User   string `json:"user"`
	Target string `json:"target"`
	OK     bool   `json:"ok"`
	Reason string `json:"reason,omitempty"`
	// Retired marks an AWSPREVIOUS login tried after its password expired (retirement):
	// it must be refused.
	Retired bool `json:"retired,omitempty"`
}

// OK reports whether the run proves what it should: every rotation succeeded, AWSCURRENT
// logs in everywhere and, for alternating users, the probe really probed both servers, not
// one login or request failed, no task crashed, and AWSPREVIOUS still logs in everywhere
// too (it must, until the next rotation) unless it was retired: then it must be refused.
func (r *Report) OK() bool {
	if r.Interrupted || r.Rotations.Succeeded != r.Rotations.Requested {
		return false
	}
	if r.ConfigurationTest != nil && r.ConfigurationTest.Result != "passed" {
		return false
	}
	for _, l := range r.LoginsAfter {
		if !r.loginAsExpected(l) {
			return false
		}
	}
	if r.Strategy == StrategyAlternating {
		return r.Connections.Primary.Attempts > 0 && r.Connections.Replica.Attempts > 0 &&
			r.Connections.Failed == 0 && r.Requests.Failed == 0 && r.Requests.Crashed == 0
	}
	return true
}

// loginAsExpected: a retired user must be refused; AWSCURRENT must log in, and for
// alternating users AWSPREVIOUS too.
func (r *Report) loginAsExpected(l Login) bool {
	if l.Retired {
		return !l.OK
	}
	return l.OK || (l.Stage != stageCurrent && r.Strategy != StrategyAlternating)
}

// latency summarises ds in milliseconds.
func latency(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	// Nearest rank: the smallest value with at least half of the values at or below it.
	return Latency{P50: s[(len(s)+1)/2-1].Milliseconds(), Max: s[len(s)-1].Milliseconds()}
}

// WriteSummary writes the report's closing lines for a human.
func (r *Report) WriteSummary(w io.Writer) {
	c := r.Connections
	fmt.Fprintf(w, "\nsummary: %s: %d/%d rotations succeeded; %d of %d fresh logins failed (primary %d/%d, replica %d/%d); %d of %d app requests failed (%d of %d in flight while draining)\n",
		r.Strategy, r.Rotations.Succeeded, r.Rotations.Requested, c.Failed, c.Attempts,
		c.Primary.Failed, c.Primary.Attempts, c.Replica.Failed, c.Replica.Attempts,
		r.Requests.Failed, r.Requests.Attempts, r.Requests.Draining.Failed, r.Requests.Draining.Attempts)
	if c := r.ConfigurationTest; c != nil {
		fmt.Fprintf(w, "         %s\n", c.Line())
	}
	if e := r.Evidence; e != nil {
		fmt.Fprintf(w, "         %s\n", e.Line())
	}
	fmt.Fprintf(w, "         promote (start → AWSCURRENT moved) p50 %s, max %s; whole rotation p50 %s, max %s\n",
		ms(r.PromoteMS.P50), ms(r.PromoteMS.Max), ms(r.RotationMS.P50), ms(r.RotationMS.Max))
	if r.Requests.Crashed > 0 {
		fmt.Fprintf(w, "         %d tasks exited on their own\n", r.Requests.Crashed)
	}
	if len(r.AdoptedRoles) > 0 {
		fmt.Fprintf(w, "         adopted existing roles not created by pgrotate (--adopt-existing-user): %s\n", strings.Join(r.AdoptedRoles, ", "))
	}
	if c.Failed > 0 {
		writeFailures(w, "failed logins", c.ByCause, loginExamples(c.Failures), len(c.Failures), c.Failed)
	}
	if r.Requests.Failed > 0 {
		writeFailures(w, "failed app requests", r.Requests.ByCause, requestExamples(r.Requests.Failures),
			len(r.Requests.Failures), r.Requests.Failed)
	}
	r.writeLoginsAfter(w)
	verdict := "OK"
	switch {
	case r.Interrupted:
		fmt.Fprintf(w, "result: interrupted\n")
		return
	case !r.OK():
		verdict = "FAILED"
	case r.Strategy == StrategySingleUser:
		verdict = "OK (the baseline: its failed logins are the gap alternating users closes)"
	}
	fmt.Fprintf(w, "result: %s, active user %s\n", verdict, r.ActiveUser)
}

// writeFailures writes the failures of one kind by cause; listed of failed were kept with their reasons.
func writeFailures(w io.Writer, what string, counts cause.Counts, examples map[cause.Cause][]string, listed, failed int) {
	fmt.Fprintf(w, "%s by cause:\n", what)
	writeCauses(w, counts, examples)
	if listed < failed {
		fmt.Fprintf(w, "  (reasons from the first %d of %d failures; the counts are exact)\n", listed, failed)
	}
}

// writeLoginsAfter writes how each user fared at the final logins.
func (r *Report) writeLoginsAfter(w io.Writer) {
	if len(r.LoginsAfter) == 0 {
		return
	}
	fmt.Fprintf(w, "logins afterwards:\n")
	for _, l := range r.LoginsAfter {
		res := "ok"
		switch {
		case l.Retired && l.OK:
			res = "LOGS IN, though retired"
		case l.Retired:
			res = "refused, retired: " + l.Reason
		case !l.OK:
			res = "REFUSED: " + l.Reason
		}
		fmt.Fprintf(w, "  %-32s %-8s %s\n", l.User+" ("+l.Stage+")", l.Target, res)
	}
}

type reasonCount struct {
	reason string
	n      int
}

// writeCauses writes one line per cause that occurred, with its exact count, then the
// distinct reasons seen for it, most frequent first.
func writeCauses(w io.Writer, counts cause.Counts, examples map[cause.Cause][]string) {
	for _, k := range cause.All {
		if counts[k] == 0 {
			continue
		}
		fmt.Fprintf(w, "  %5d× %s\n", counts[k], k.Describe())
		for _, rc := range tally(examples[k]) {
			fmt.Fprintf(w, "         %5d× %s\n", rc.n, rc.reason)
		}
	}
}

// loginExamples are the listed failed logins' target and reason, by cause.
func loginExamples(fs []probe.Failure) map[cause.Cause][]string {
	by := map[cause.Cause][]string{}
	for _, f := range fs {
		by[f.Cause] = append(by[f.Cause], f.Target+": "+f.Reason)
	}
	return by
}

// requestExamples are the listed failed requests' reason, by cause, marked when the task
// was draining.
func requestExamples(fs []fleet.RequestFailure) map[cause.Cause][]string {
	by := map[cause.Cause][]string{}
	for _, f := range fs {
		where := "running task"
		if f.Draining {
			where = "draining task"
		}
		by[f.Cause] = append(by[f.Cause], where+": "+f.Reason)
	}
	return by
}

// tally counts equal reasons, most frequent first.
func tally(reasons []string) []reasonCount {
	by := map[string]int{}
	for _, r := range reasons {
		by[r]++
	}
	var out []reasonCount
	for r, n := range by {
		out = append(out, reasonCount{r, n})
	}
	slices.SortFunc(out, func(a, b reasonCount) int {
		if a.n != b.n {
			return b.n - a.n
		}
		return strings.Compare(a.reason, b.reason)
	})
	return out
}

// ms formats milliseconds for a human.
func ms(v int64) string {
	return dur(time.Duration(v) * time.Millisecond)
}

func dur(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// WriteMarkdown writes a comparison table of reports, one row per strategy.
func WriteMarkdown(w io.Writer, reports []*Report) {
	fmt.Fprintln(w, "| strategy | rotations ok | tasks | fresh logins | failed logins | app requests | failed requests (draining) | promote p50 | promote max | rotation p50 |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range reports {
		c := r.Connections
		fmt.Fprintf(w, "| %s | %d/%d | %d | %d | %d (primary %d, replica %d) | %d | %d (%d of %d) | %s | %s | %s |\n",
			r.Strategy, r.Rotations.Succeeded, r.Rotations.Requested, r.Tasks, c.Attempts, c.Failed, c.Primary.Failed, c.Replica.Failed,
			r.Requests.Attempts, r.Requests.Failed, r.Requests.Draining.Failed, r.Requests.Draining.Attempts,
			ms(r.PromoteMS.P50), ms(r.PromoteMS.Max), ms(r.RotationMS.P50))
	}
}
