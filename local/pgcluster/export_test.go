package pgcluster

import "time"

// SetStopTimeout shortens Close's wait before it kills a server, for a test.
func SetStopTimeout(d time.Duration) (restore func()) {
	old := stopTimeout
	stopTimeout = d
	return func() { stopTimeout = old }
}
