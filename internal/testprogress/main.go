// Command testprogress turns `go test -json` on stdin into progress a person can follow
// during `make test`: one line per package as it finishes (ok, FAIL or no tests, with its
// time and test count), the output of every failed test and build, a line every minute
// naming the packages still running, and a closing "N passed, N failed" line. It exits 1
// if any test or package failed, or if the stream ends without a package result (go test
// itself failed).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

func main() {
	p := newProgress(os.Stdout, time.Now)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Minute)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				p.heartbeat()
			}
		}
	})
	err := p.read(os.Stdin)
	close(stop)
	wg.Wait()
	if err != nil {
		fmt.Fprintf(os.Stderr, "testprogress: %v\n", err)
		os.Exit(1)
	}
	if !p.summary() {
		os.Exit(1)
	}
}

// event is one line of `go test -json` (see `go doc test2json`).
type event struct {
	Action      string
	Package     string
	Test        string
	Elapsed     float64
	Output      string
	ImportPath  string // build-output and build-fail events
	FailedBuild string // a package's fail event when its build failed
}

type pkgState struct {
	started time.Time
	passed  int
	failed  int
	skipped int
	// output holds each running test's lines (by test name; "" is the package's own), kept
	// until the test passes.
	output map[string][]string
}

type progress struct {
	mu  sync.Mutex
	w   io.Writer
	now func() time.Time

	pkgs     map[string]*pkgState
	build    map[string][]string // build output by import path
	passed   int
	failed   int
	skipped  int
	pkgsOK   int
	pkgsFail int
	began    time.Time
}

func newProgress(w io.Writer, now func() time.Time) *progress {
	return &progress{w: w, now: now, pkgs: map[string]*pkgState{}, build: map[string][]string{}, began: now()}
}

func (p *progress) pkg(name string) *pkgState {
	s := p.pkgs[name]
	if s == nil {
		s = &pkgState{started: p.now(), output: map[string][]string{}}
		p.pkgs[name] = s
	}
	return s
}

// read consumes the stream. A line that is not JSON (go vet's or the toolchain's) is
// printed as it is.
func (p *progress) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var ev event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &ev) != nil {
			p.mu.Lock()
			fmt.Fprintf(p.w, "%s\n", line)
			p.mu.Unlock()
			continue
		}
		p.handle(ev)
	}
	return sc.Err()
}

func (p *progress) handle(ev event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch ev.Action {
	case "build-output":
		p.build[ev.ImportPath] = append(p.build[ev.ImportPath], ev.Output)
		return
	case "build-fail":
		fmt.Fprintf(p.w, "BUILD FAILED %s\n%s", ev.ImportPath, strings.Join(p.build[ev.ImportPath], ""))
		return
	}
	if ev.Package == "" {
		return
	}
	s := p.pkg(ev.Package)
	switch ev.Action {
	case "start":
		s.started = p.now()
	case "output":
		s.output[ev.Test] = append(s.output[ev.Test], ev.Output)
	case "pass", "fail", "skip":
		if ev.Test != "" {
			p.testDone(s, ev)
			return
		}
		p.packageDone(ev, s)
	}
}

func (p *progress) testDone(s *pkgState, ev event) {
	switch ev.Action {
	case "pass":
		s.passed++
		p.passed++
	case "skip":
		s.skipped++
		p.skipped++
	case "fail":
		s.failed++
		p.failed++
		fmt.Fprintf(p.w, "--- FAIL %s %s (%.2fs)\n%s", short(ev.Package), ev.Test, ev.Elapsed, indent(s.output[ev.Test]))
	}
	delete(s.output, ev.Test)
}

// short drops the module path from a package name.
func short(pkg string) string {
	if s := strings.TrimPrefix(pkg, modulePath+"/"); s != pkg {
		return "./" + s
	}
	return pkg
}

const modulePath = "github.com/pgrotate/pgrotate"

func (p *progress) packageDone(ev event, s *pkgState) {
	name := short(ev.Package)
	took := fmt.Sprintf("%.1fs", ev.Elapsed)
	counts := fmt.Sprintf("%d passed", s.passed)
	if s.failed > 0 {
		counts += fmt.Sprintf(", %d failed", s.failed)
	}
	if s.skipped > 0 {
		counts += fmt.Sprintf(", %d skipped", s.skipped)
	}
	switch {
	case ev.Action == "fail":
		p.pkgsFail++
		if ev.FailedBuild != "" {
			fmt.Fprintf(p.w, "FAIL %-32s build failed (%s)\n", name, short(ev.FailedBuild))
			break
		}
		if s.failed == 0 {
			// No failed test: the package itself failed (a panic, TestMain, a timeout).
			p.failed++
			fmt.Fprintf(p.w, "%s", indent(s.output[""]))
		}
		fmt.Fprintf(p.w, "FAIL %-32s %8s  %s\n", name, took, counts)
	case s.passed+s.failed+s.skipped == 0:
		p.pkgsOK++
		fmt.Fprintf(p.w, "     %-32s           no tests\n", name)
	default:
		p.pkgsOK++
		fmt.Fprintf(p.w, "ok   %-32s %8s  %s\n", name, took, counts)
	}
	delete(p.pkgs, ev.Package)
}

// heartbeat names the packages still running, for the long waits between two results.
func (p *progress) heartbeat() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.pkgs) == 0 {
		fmt.Fprintf(p.w, "… %s: building the test binaries\n", p.now().Sub(p.began).Round(time.Second))
		return
	}
	var running []string
	for name, s := range p.pkgs {
		running = append(running, fmt.Sprintf("%s (%s)", short(name), p.now().Sub(s.started).Round(time.Second)))
	}
	slices.Sort(running)
	fmt.Fprintf(p.w, "… %s: still running %s\n", p.now().Sub(p.began).Round(time.Second), strings.Join(running, ", "))
}

// summary writes the closing line and reports whether everything passed.
func (p *progress) summary() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	line := fmt.Sprintf("%d passed, %d failed", p.passed, p.failed)
	if p.skipped > 0 {
		line += fmt.Sprintf(", %d skipped", p.skipped)
	}
	fmt.Fprintf(p.w, "%s (tests and subtests, in %d packages of which %d failed; %s)\n", line, p.pkgsOK+p.pkgsFail, p.pkgsFail, p.now().Sub(p.began).Round(time.Second))
	return p.failed == 0 && p.pkgsFail == 0 && p.pkgsOK+p.pkgsFail > 0
}

func indent(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("    " + l)
	}
	return b.String()
}
