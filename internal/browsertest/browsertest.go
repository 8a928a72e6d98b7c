// Package browsertest drives a real headless Chromium for the tests of
// FabGate's web pages: Start finds and starts the browser, Browser.NewTab
// opens an isolated tab (own cookies, viewport, language, time zone) that
// records console errors and uncaught exceptions, and the Tab helpers
// navigate, click, fill, wait, screenshot and run the axe-core accessibility
// rules.
//
// A page test reads like what a user does:
//
//	tab := browsertest.Start(t).NewTab(t, browsertest.TabOptions{BaseURL: srv.URL, Lang: "fr"})
//	tab.Go("/machines")
//	tab.Click("#book-laser")
//	tab.Fill("#start", "2026-03-03T14:00")
//	tab.Click("button[type=submit]")
//	tab.WaitText("#bookings", "Laser")
//	tab.Screenshot("booked")
//	tab.CheckAccessibility(t, "machines")
//	tab.NoJSErrors(t)
//
// Every helper fails the test, with a screenshot, when its step does not
// succeed within TabOptions.Timeout. A tab belongs to the test that opened
// it: call its helpers from that test's goroutine.
//
// Screenshots and accessibility reports go under
// artifacts/screenshots/<TestName>/ at the module root (or
// $FABGATE_ARTIFACTS/screenshots/...), numbered in the order they were taken.
//
// Without Chromium the tests skip, and fail when FABGATE_REQUIRE_ALL=1.
//
// A package whose tests open many pages starts one browser for all of them
// with a TestMain:
//
//	func TestMain(m *testing.M) { browsertest.Main(m) }
//
// Without it, Start starts a browser per test. Every tab lives in its own
// browser context, so tests sharing a browser may run in parallel without
// sharing cookies.
//
// This package is for tests only: production code must not import it.
package browsertest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// StartTimeout bounds the start of the browser, generous for a loaded
// two-core machine running other test packages at the same time.
const StartTimeout = 60 * time.Second

// Browser is a running headless Chromium.
type Browser struct {
	ctx    context.Context // the browser's first chromedp context; tabs derive from it
	path   string
	close  func()
	output *lockedBuffer // the browser's stdout and stderr, shown when it fails

	pid int // the browser process, 0 if unknown

	// StartupTime is how long the browser took to start and answer.
	StartupTime time.Duration
}

// Path is the browser binary in use.
func (b *Browser) Path() string { return b.path }

// shared is the browser of a package whose TestMain calls Main.
var shared struct {
	sync.Mutex
	enabled bool
	b       *Browser
	dirs    []string // profile directories, removed by Main
}

// Main runs the tests of a package with one browser shared by all of them,
// started by the first Start and stopped after the last test. Call it from
// TestMain; it does not return.
func Main(m *testing.M) {
	shared.Lock()
	shared.enabled = true
	shared.Unlock()
	code := m.Run()
	shared.Lock()
	if shared.b != nil {
		shared.b.close()
		shared.b = nil
	}
	for _, dir := range shared.dirs {
		_ = os.RemoveAll(dir)
	}
	shared.Unlock()
	os.Exit(code)
}

// Start returns a running browser: the package's shared one under Main,
// otherwise one started for t and stopped when t ends. Without Chromium the
// test is skipped, or fails when FABGATE_REQUIRE_ALL=1.
func Start(t testing.TB) *Browser {
	t.Helper()
	d := Find(os.Getenv)
	switch d.Action {
	case Fail:
		t.Fatal("browsertest: " + d.Reason)
	case Skip:
		t.Skip("browsertest: " + d.Reason)
	}

	shared.Lock()
	defer shared.Unlock()
	if !shared.enabled {
		return startOwn(t, d.Path)
	}
	if shared.b != nil && shared.b.ctx.Err() == nil {
		return shared.b
	}
	if shared.b != nil { // it died (crash, OOM kill): start a new one
		shared.b.close()
	}
	// A fresh profile each time: a crashed browser may have left its lock.
	dir, err := os.MkdirTemp("", "fabgate-chromium-")
	if err != nil {
		t.Fatalf("browsertest: %v", err)
	}
	shared.dirs = append(shared.dirs, dir)
	b, err := launch(d.Path, dir)
	if err != nil {
		t.Fatalf("browsertest: %v", err)
	}
	shared.b = b
	return b
}

// startOwn starts a browser for t alone, stopped when t ends.
func startOwn(t testing.TB, path string) *Browser {
	t.Helper()
	dir := t.TempDir() // removed after the browser's stop, registered later
	b, err := launch(path, dir)
	if err != nil {
		t.Fatalf("browsertest: %v", err)
	}
	t.Cleanup(b.close)
	return b
}

// flags are Chromium's command line: headless, with nothing in the
// background that reaches the network or competes for the CPU.
func flags(path, dataDir string) []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(dataDir),
		chromedp.Headless, // also hides scrollbars, as a phone does
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		// Tabs of parallel tests are in windows of their own; none of them
		// may be slowed down for being in the background.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-hang-monitor", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("lang", "en-US"),
		chromedp.WindowSize(1280, 800),
	}
}

// launch starts Chromium and waits until it answers.
func launch(path, dataDir string) (*Browser, error) {
	out := &lockedBuffer{}
	opts := append(flags(path, dataDir), chromedp.CombinedOutput(out))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	b := &Browser{ctx: ctx, path: path, output: out}
	var once sync.Once
	b.close = func() {
		once.Do(func() {
			// Close the browser gracefully; if it does not exit in time,
			// cancelling its context kills it. cancelAlloc then waits for
			// the process, so that its data directory can be removed.
			done := make(chan struct{})
			go func() {
				_ = chromedp.Cancel(ctx)
				close(done)
			}()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				cancel()
				<-done
			}
			cancel()
			cancelAlloc()
		})
	}
	// The first Run starts the process, and its context must be the
	// browser's own (a timeout on it would stop the browser later), so the
	// start is bounded by a timer instead.
	timer := time.AfterFunc(StartTimeout, cancel)
	began := time.Now()
	err := chromedp.Do(ctx)
	stopped := timer.Stop()
	if err != nil {
		b.close()
		if !stopped {
			err = fmt.Errorf("no answer within %v", StartTimeout)
		}
		return nil, fmt.Errorf("start %s: %w\n%s", path, err, out.String())
	}
	b.StartupTime = time.Since(began)
	if c := chromedp.FromContext(ctx); c != nil && c.Browser != nil && c.Browser.Process() != nil {
		b.pid = c.Browser.Process().Pid
	}
	return b, nil
}

// lockedBuffer collects the browser's output, written by chromedp's
// goroutines and read by the test's.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len() > 64<<10 { // keep the start, which says why it failed
		return len(p), nil
	}
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
