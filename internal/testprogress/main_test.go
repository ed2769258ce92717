package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// A recorded `go test -json` stream (trimmed): one package passes, one has a failing test,
// one does not build.
const stream = `{"Action":"start","Package":"github.com/pgrotate/pgrotate/a"}
{"Action":"run","Package":"github.com/pgrotate/pgrotate/a","Test":"TestOK"}
{"Action":"output","Package":"github.com/pgrotate/pgrotate/a","Test":"TestOK","Output":"=== RUN   TestOK\n"}
{"Action":"pass","Package":"github.com/pgrotate/pgrotate/a","Test":"TestOK","Elapsed":0.1}
{"Action":"skip","Package":"github.com/pgrotate/pgrotate/a","Test":"TestSkipped","Elapsed":0}
{"Action":"pass","Package":"github.com/pgrotate/pgrotate/a","Elapsed":1.25}
{"Action":"start","Package":"github.com/pgrotate/pgrotate/b"}
{"Action":"output","Package":"github.com/pgrotate/pgrotate/b","Test":"TestBad","Output":"    b_test.go:9: want 1, got 2\n"}
{"Action":"fail","Package":"github.com/pgrotate/pgrotate/b","Test":"TestBad","Elapsed":0.2}
{"Action":"fail","Package":"github.com/pgrotate/pgrotate/b","Elapsed":3}
{"ImportPath":"github.com/pgrotate/pgrotate/c","Action":"build-output","Output":"c/c.go:3:1: syntax error\n"}
{"ImportPath":"github.com/pgrotate/pgrotate/c","Action":"build-fail"}
{"Action":"fail","Package":"github.com/pgrotate/pgrotate/c","Elapsed":0,"FailedBuild":"github.com/pgrotate/pgrotate/c"}
not json: printed as it is
`

func TestProgress(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		ok     bool
		wants  []string
		absent []string
	}{
		{"failures", stream, false, []string{
			"ok   ./a                                  1.2s  1 passed, 1 skipped\n",
			"--- FAIL ./b TestBad (0.20s)\n        b_test.go:9: want 1, got 2\n",
			"FAIL ./b                                  3.0s  0 passed, 1 failed\n",
			"BUILD FAILED github.com/pgrotate/pgrotate/c\nc/c.go:3:1: syntax error\n",
			"FAIL ./c" + strings.Repeat(" ", 29) + " build failed (./c)\n",
			"not json: printed as it is\n",
			"1 passed, 1 failed, 1 skipped (tests and subtests, in 3 packages of which 2 failed; 0s)\n",
		}, []string{"=== RUN   TestOK"}},
		{"all passed", strings.Join(strings.Split(stream, "\n")[:6], "\n"), true, []string{
			"1 passed, 0 failed, 1 skipped (tests and subtests, in 1 packages of which 0 failed; 0s)\n",
		}, nil},
		{"no package result: go test failed", "go: no Go files\n", false, []string{"0 passed, 0 failed"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			at := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
			p := newProgress(&out, func() time.Time { return at })
			if err := p.read(strings.NewReader(tt.in)); err != nil {
				t.Fatal(err)
			}
			if ok := p.summary(); ok != tt.ok {
				t.Errorf("summary ok = %v, want %v", ok, tt.ok)
			}
			for _, w := range tt.wants {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(out.String(), a) {
					t.Errorf("output has %q (a passing test's output):\n%s", a, out.String())
				}
			}
		})
	}
}

func TestHeartbeatNamesRunningPackages(t *testing.T) {
	var out bytes.Buffer
	at := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	p := newProgress(&out, func() time.Time { return at })
	p.heartbeat()
	p.handle(event{Action: "start", Package: "github.com/pgrotate/pgrotate/local/demo"})
	at = at.Add(90 * time.Second)
	p.heartbeat()
	for _, w := range []string{"… 0s: building the test binaries\n", "… 1m30s: still running ./local/demo (1m30s)\n"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, out.String())
		}
	}
}
