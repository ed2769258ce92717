package fleet

import (
	"maps"
	"sync"

	"github.com/pgrotate/pgrotate/local/cause"
	"github.com/pgrotate/pgrotate/local/probe"
)

// maxFailures caps the request failures kept; the counts stay exact.
const maxFailures = 100

// Counts are requests sent and requests that failed.
type Counts = probe.Counts

// RequestFailure is a /work request that did not answer 200.
type RequestFailure struct {
	Task string `json:"task"`
	// Draining is true for a request that was in flight when its task got SIGTERM.
	Draining bool `json:"draining"`
	cause.Failure
}

// Stats are the /work requests the fleet sent, and the tasks that exited on their own.
type Stats struct {
	Counts
	// Draining counts the requests in flight when their task got SIGTERM: each woke up
	// during the drain and queried the primary and the replica.
	Draining Counts `json:"draining"`
	// ByCause counts every failure by its cause (exact, unlike Failures).
	ByCause  cause.Counts     `json:"by_cause"`
	Failures []RequestFailure `json:"failures"`
	Crashed  int              `json:"crashed"`
}

type stats struct {
	mu sync.Mutex
	s  Stats
}

func (s *stats) record(f RequestFailure, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.s.Attempts++
	if f.Draining {
		s.s.Draining.Attempts++
	}
	if ok {
		return
	}
	s.s.Failed++
	if s.s.ByCause == nil {
		s.s.ByCause = cause.NewCounts()
	}
	s.s.ByCause[f.Cause]++
	if f.Draining {
		s.s.Draining.Failed++
	}
	if len(s.s.Failures) < maxFailures {
		s.s.Failures = append(s.s.Failures, f)
	}
}

func (s *stats) crash() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.s.Crashed++
}

// Stats returns a copy of the request counts so far.
func (f *Fleet) Stats() Stats {
	f.stats.mu.Lock()
	defer f.stats.mu.Unlock()
	out := f.stats.s
	out.Failures = append([]RequestFailure{}, f.stats.s.Failures...)
	out.ByCause = cause.NewCounts()
	maps.Copy(out.ByCause, f.stats.s.ByCause)
	return out
}
