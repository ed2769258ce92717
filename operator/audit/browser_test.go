package audit

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/pgrotate/pgrotate/internal/testctx"
)

// chromium is Debian's chromium, which scripts/setup installs. Outside CI a machine without
// it skips the test; in CI (CI set) it fails.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed: scripts/setup installs it (apt-get install chromium)")
	}
	t.Skip("chromium is not installed: run scripts/setup (this test fails in CI without it)")
	return ""
}

// browserLog collects what the page must not cause: console errors, uncaught exceptions,
// browser log errors (a Content-Security-Policy violation is one), failed requests, and any
// request for something other than the page itself.
type browserLog struct {
	mu       sync.Mutex
	page     string
	problems []string
}

func (b *browserLog) add(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, fmt.Sprintf(format, args...))
}

func (b *browserLog) listen(ev any) {
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			b.add("console %s", ev.Type)
		}
	case *runtime.EventExceptionThrown:
		b.add("exception: %s", ev.ExceptionDetails.Text)
	case *cdplog.EventEntryAdded:
		if ev.Entry.Level == cdplog.EntryLevelError || ev.Entry.Level == cdplog.EntryLevelWarning {
			b.add("log %s: %s %s", ev.Entry.Level, ev.Entry.Source, ev.Entry.Text)
		}
	case *network.EventLoadingFailed:
		b.add("request failed: %s %s", ev.ErrorText, ev.BlockedReason)
	case *network.EventRequestWillBeSent:
		if ev.Request.URL != b.page {
			b.add("request for %s", ev.Request.URL)
		}
	}
}

// rendered is what the page shows, read in the browser.
type rendered struct {
	Text           string    `json:"text"`
	SVGWidth       float64   `json:"svgWidth"`
	SVGHeight      float64   `json:"svgHeight"`
	Marks          []float64 `json:"marks"` // on-screen width of each rotation mark
	MarkColors     []string  `json:"markColors"`
	Failures       int       `json:"failures"`
	Overdue        float64   `json:"overdue"` // on-screen width of the overdue bands
	Ticks          int       `json:"ticks"`
	Rows           int       `json:"rows"`
	StyleSheets    int       `json:"styleSheets"`
	ExternalAssets int       `json:"externalAssets"`
}

const inspect = `(() => {
  const svg = document.querySelector('svg.timeline');
  const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  const marks = svg ? [...svg.querySelectorAll('circle.mark')] : [];
  const overdue = svg ? [...svg.querySelectorAll('rect.overdue')] : [];
  return {
    text: document.body.innerText,
    svgWidth: box.width, svgHeight: box.height,
    marks: marks.map(m => m.getBoundingClientRect().width),
    markColors: marks.map(m => getComputedStyle(m).fill),
    failures: svg ? svg.querySelectorAll('path.fmark').length : 0,
    overdue: overdue.reduce((w, r) => w + r.getBoundingClientRect().width, 0),
    ticks: svg ? svg.querySelectorAll('text.ticklabel').length : 0,
    rows: document.querySelectorAll('#rotations tbody tr').length,
    styleSheets: document.styleSheets.length,
    externalAssets: document.querySelectorAll('link[rel=stylesheet], script[src], img[src]:not([src^="data:"]), iframe').length,
  };
})()`

// TestHTMLInChromium renders the HTML report in a real headless Chromium: no console
// error, no failed or outside request, and the SVG timeline drawn with a mark per rotation.
func TestHTMLInChromium(t *testing.T) {
	path := chromium(t)
	r := sampleReport()
	file := filepath.Join(t.TempDir(), "audit.html")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Write(f, "html"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.UserDataDir(t.TempDir()), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true), chromedp.WindowSize(1280, 900))
	// The test's deadline but not t.Context(), which ends before the cleanups below close
	// Chromium in order.
	ctx, cancel := context.Background(), context.CancelFunc(func() {})
	if d, ok := testctx.Deadline(t); ok {
		ctx, cancel = context.WithDeadline(ctx, d)
	}
	t.Cleanup(cancel)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	log := &browserLog{page: "file://" + file}
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx, chromedp.WithListener(log.listen))
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(browserCtx, chromedp.Navigate(log.page), chromedp.WaitVisible("#rotations")); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	// An SVG element has no offsetWidth, which chromedp's visibility test reads: the table
	// after it is waited for, and the SVG's drawn size is read below.
	got, err := chromedp.Run(browserCtx, chromedp.Evaluate[rendered](inspect))
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	// Let the events of the load arrive: a closed browser context delivers all it had.
	cancelBrowser()

	log.mu.Lock()
	for _, p := range log.problems {
		t.Errorf("the page caused %s", p)
	}
	log.mu.Unlock()
	if got.SVGWidth < 600 || got.SVGHeight < 100 {
		t.Errorf("the timeline is drawn %.0f×%.0f px", got.SVGWidth, got.SVGHeight)
	}
	if len(got.Marks) != len(r.Rotations) || got.Failures != len(r.Failures) || got.Rows != len(r.Rotations) {
		t.Errorf("%d marks, %d failure marks, %d rows for %d rotations and %d failures", len(got.Marks), got.Failures, got.Rows, len(r.Rotations), len(r.Failures))
	}
	for i, w := range got.Marks {
		if w < 5 {
			t.Errorf("mark %d is %.1f px wide", i, w)
		}
	}
	colors := map[string]string{OutcomeSucceeded: "rgb(26, 127, 55)", OutcomeRedriven: "rgb(9, 105, 218)", OutcomeSuperseded: "rgb(140, 149, 159)", OutcomeFailed: "rgb(207, 34, 46)"}
	for i, c := range got.MarkColors {
		if want := colors[r.Rotations[i].Outcome]; c != want {
			t.Errorf("mark of %s (%s) is %s, want %s", r.Rotations[i].Version, r.Rotations[i].Outcome, c, want)
		}
	}
	if got.Overdue < 20 || got.Ticks < 3 || got.StyleSheets != 1 || got.ExternalAssets != 0 {
		t.Errorf("overdue band %.0f px, %d ticks, %d style sheets, %d external assets", got.Overdue, got.Ticks, got.StyleSheets, got.ExternalAssets)
	}
	for _, rot := range r.Rotations {
		if !strings.Contains(got.Text, rot.Version) {
			t.Errorf("the page does not show version %s", rot.Version)
		}
	}
	if !strings.Contains(got.Text, `<script>alert("x")</script>`) {
		t.Error("the hostile cause is not shown as text")
	}
}
