package browsertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// ActionTimeout is how long one step of a tab (a navigation, a wait, a
// click) may take by default: long, because a loaded two-core machine may
// stall a page for seconds, and a step that succeeds returns at once.
const ActionTimeout = 30 * time.Second

// Viewport is the size of a tab's window, in CSS pixels.
type Viewport struct {
	Width, Height int64
	// Mobile turns on phone emulation: the page's <meta name="viewport">
	// applies (a page without one is laid out 980 px wide, as on a real
	// phone) and the touch events are on.
	Mobile bool
}

// The viewports of the tests.
var (
	Desktop = Viewport{Width: 1280, Height: 800}
	Phone   = Viewport{Width: 375, Height: 740, Mobile: true}
)

// TabOptions configure a tab. The zero value is an English desktop tab.
type TabOptions struct {
	Viewport Viewport // Desktop when zero
	// Lang is the browser's language, "en" (default) or "fr": it sets
	// Accept-Language, navigator.language and the Intl locale.
	Lang string
	// TimeZone is the browser's IANA time zone, UTC by default. Pick one
	// other than the lab's to show that a page prints times in the lab's
	// zone and not in the browser's.
	TimeZone string
	// BaseURL is put before the paths given to Go that start with "/".
	BaseURL string
	// Timeout bounds each step; ActionTimeout when zero.
	Timeout time.Duration
}

// Tab is one browser tab, bound to the test that opened it.
type Tab struct {
	t           testing.TB
	ctx         context.Context
	opts        TabOptions
	closed      atomic.Bool // set when t ends; later calls must not wait on a dead tab
	shotFailure atomic.Bool // a failed step took its screenshot already

	mu       sync.Mutex
	jsErrors []string // console errors, uncaught exceptions, browser log errors
}

// languages maps TabOptions.Lang to Accept-Language and the ICU locale.
var languages = map[string][2]string{
	"en": {"en-US,en;q=0.9", "en_US"},
	"fr": {"fr-FR,fr;q=0.9", "fr_FR"},
}

// NewTab opens a tab in a browser context of its own (no cookies or storage
// shared with other tabs), closed when t ends.
func (b *Browser) NewTab(t testing.TB, opts TabOptions) *Tab {
	t.Helper()
	if opts.Viewport == (Viewport{}) {
		opts.Viewport = Desktop
	}
	if opts.Lang == "" {
		opts.Lang = "en"
	}
	lang, ok := languages[opts.Lang]
	if !ok {
		t.Fatalf("browsertest: TabOptions.Lang %q: use \"en\" or \"fr\"", opts.Lang)
	}
	if opts.TimeZone == "" {
		opts.TimeZone = "UTC"
	}
	if opts.Timeout == 0 {
		opts.Timeout = ActionTimeout
	}
	tab := &Tab{t: t, opts: opts}
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext(), chromedp.WithListener(tab.listen))
	tab.ctx = ctx
	t.Cleanup(func() {
		tab.closed.Store(true)
		cancel()
	})
	t.Cleanup(func() {
		// Registered last, so it runs while the tab is still open.
		if t.Failed() && !tab.shotFailure.Load() {
			if p, err := tab.screenshot("at-failure", failureShotTimeout); err == nil {
				t.Logf("browsertest: screenshot of the failed test's tab: %s", p)
			}
		}
	})

	vp := opts.Viewport
	emulate := []chromedp.EmulateViewportOption{chromedp.EmulatePortrait}
	if vp.Mobile {
		emulate = append(emulate, chromedp.EmulateMobile, chromedp.EmulateTouch)
	}
	setup := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		ua, err := chromedp.Evaluate[string]("navigator.userAgent")(ctx, tg)
		if err != nil {
			return err
		}
		if _, err := cdp.Call(ctx, tg, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{UserAgent: ua, AcceptLanguage: lang[0]}); err != nil {
			return fmt.Errorf("set the language: %w", err)
		}
		if _, err := cdp.Call(ctx, tg, emulation.SetLocaleOverride, emulation.SetLocaleOverrideParams{Locale: lang[1]}); err != nil {
			return fmt.Errorf("set the locale: %w", err)
		}
		if _, err := cdp.Call(ctx, tg, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: opts.TimeZone}); err != nil {
			return fmt.Errorf("set the time zone %q: %w", opts.TimeZone, err)
		}
		_, err = chromedp.EmulateViewport(vp.Width, vp.Height, emulate...)(ctx, tg)
		return err
	})
	// The first Run opens the tab and its context must be the tab's own (a
	// timeout on it would close the tab later), so a timer bounds it.
	timer := time.AfterFunc(opts.Timeout, cancel)
	err := chromedp.Do(ctx, setup)
	if !timer.Stop() {
		err = fmt.Errorf("no tab within %v (%v)", opts.Timeout, err)
	}
	if err != nil {
		t.Fatalf("browsertest: open a tab: %v\n%s", err, b.output.String())
	}
	return tab
}

// listen runs on chromedp's reading goroutine for every event of the tab,
// in order: it must only record.
func (tab *Tab) listen(ev any) {
	var msg string
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type != runtime.ConsoleAPICalledTypeError && ev.Type != runtime.ConsoleAPICalledTypeAssert {
			return
		}
		args := make([]string, 0, len(ev.Args))
		for _, a := range ev.Args {
			args = append(args, remoteText(a))
		}
		msg = "console." + string(ev.Type) + ": " + strings.Join(args, " ") + stackPlace(ev.StackTrace)
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg = "uncaught exception: " + d.Text
		if d.Exception != nil {
			desc, _, _ := strings.Cut(remoteText(d.Exception), "\n")
			msg += " " + desc
		}
		if d.URL != "" {
			msg += fmt.Sprintf(" (%s:%d)", d.URL, d.LineNumber+1)
		} else {
			msg += stackPlace(d.StackTrace)
		}
	case *log.EventEntryAdded:
		if ev.Entry == nil || ev.Entry.Level != log.EntryLevelError || automaticFavicon(ev.Entry) {
			return
		}
		msg = "browser log (" + string(ev.Entry.Source) + "): " + ev.Entry.Text
		if ev.Entry.URL != "" {
			msg += " (" + ev.Entry.URL + ")"
		}
	default:
		return
	}
	if len(msg) > maxErrorLen { // a blocked data: URI is quoted whole
		msg = msg[:maxErrorLen] + "…"
	}
	tab.mu.Lock()
	tab.jsErrors = append(tab.jsErrors, msg)
	tab.mu.Unlock()
}

// maxErrorLen bounds one recorded error's text.
const maxErrorLen = 600

// automaticFavicon reports whether e is the failure of the request the
// browser makes for /favicon.ico on its own: a page did not ask for it, so
// it is not the page's error.
func automaticFavicon(e *log.Entry) bool {
	if e.Source != log.EntrySourceNetwork {
		return false
	}
	u, err := url.Parse(e.URL)
	return err == nil && u.Path == "/favicon.ico"
}

// remoteText is how the console shows a value: a string as is, another
// value by its description.
func remoteText(o *runtime.RemoteObject) string {
	if o == nil {
		return ""
	}
	if len(o.Value) > 0 {
		var s string
		if json.Unmarshal(o.Value, &s) == nil {
			return s
		}
		return string(o.Value)
	}
	if o.UnserializableValue != "" {
		return string(o.UnserializableValue)
	}
	return o.Description
}

// stackPlace is " (url:line)" of a stack's top frame, or "".
func stackPlace(st *runtime.StackTrace) string {
	if st == nil || len(st.CallFrames) == 0 {
		return ""
	}
	f := st.CallFrames[0]
	return fmt.Sprintf(" (%s:%d)", f.URL, f.LineNumber+1)
}

// JSErrors returns the console errors, uncaught exceptions and browser log
// errors (such as a script that failed to load) recorded so far.
func (tab *Tab) JSErrors() []string {
	// Events that arrived before this round trip's answer have been
	// recorded by the time the answer comes back: chromedp hands a tab's
	// messages to the listener in order.
	ctx, cancel := context.WithTimeout(tab.ctx, tab.opts.Timeout)
	defer cancel()
	_, _ = chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void]("0"))
	tab.mu.Lock()
	defer tab.mu.Unlock()
	return append([]string(nil), tab.jsErrors...)
}

// NoJSErrors fails t if the page logged a console error, threw an
// uncaught exception or failed to load a resource since the tab opened.
func (tab *Tab) NoJSErrors(t testing.TB) {
	t.Helper()
	if errs := tab.JSErrors(); len(errs) > 0 {
		t.Errorf("browsertest: %d JavaScript error(s) on %s:\n  %s", len(errs), tab.URL(), strings.Join(errs, "\n  "))
	}
}

// Context is the tab's chromedp context, for actions the helpers do not
// cover; bound each call with context.WithTimeout.
func (tab *Tab) Context() context.Context { return tab.ctx }

// do runs a step within the tab's timeout and fails the test if it fails.
func do[T any](tab *Tab, what string, a chromedp.Action[T]) T {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, tab.opts.Timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("not done within %v", tab.opts.Timeout)
		}
		tab.fail(what, err)
	}
	return v
}

// fail ends the test with what went wrong, the page and its JavaScript
// errors, and a screenshot of the moment.
func (tab *Tab) fail(what string, err error) {
	tab.t.Helper()
	msg := fmt.Sprintf("browsertest: %s: %v\n  page: %s", what, err, tab.URL())
	if p, serr := tab.screenshot("failed", failureShotTimeout); serr == nil {
		tab.shotFailure.Store(true)
		msg += "\n  screenshot: " + p
	}
	tab.mu.Lock()
	if len(tab.jsErrors) > 0 {
		msg += "\n  JavaScript errors:\n    " + strings.Join(tab.jsErrors, "\n    ")
	}
	tab.mu.Unlock()
	tab.t.Fatal(msg)
}

// URL is the address of the tab's page, or "" if it cannot tell.
func (tab *Tab) URL() string {
	if tab.closed.Load() {
		return ""
	}
	ctx, cancel := context.WithTimeout(tab.ctx, 5*time.Second)
	defer cancel()
	u, _ := chromedp.Run(ctx, chromedp.Location())
	return u
}

// resolve puts BaseURL before a path starting with "/".
func (tab *Tab) resolve(addr string) string {
	if strings.HasPrefix(addr, "/") && tab.opts.BaseURL != "" {
		return strings.TrimSuffix(tab.opts.BaseURL, "/") + addr
	}
	return addr
}

// Go loads addr (a path starting with "/" is put after TabOptions.BaseURL)
// and waits for its load event. It fails the test if the answer is an HTTP
// error; use GoStatus to look at an error page.
func (tab *Tab) Go(addr string) {
	tab.t.Helper()
	if status := tab.GoStatus(addr); status >= 400 {
		tab.fail("go to "+addr, fmt.Errorf("HTTP status %d", status))
	}
}

// GoStatus loads addr like Go and returns the HTTP status of the document.
func (tab *Tab) GoStatus(addr string) int64 {
	tab.t.Helper()
	resp := do(tab, "go to "+addr, chromedp.NavigateResponse(tab.resolve(addr)))
	if resp == nil {
		return 0
	}
	return resp.Status
}

// Click clicks the first element matching the CSS selector sel, once it is
// visible.
func (tab *Tab) Click(sel string) {
	tab.t.Helper()
	do(tab, "click "+sel, chromedp.Click(chromedp.CSS(sel)))
}

// Fill sets the value of the form field sel (input, textarea or select) and
// fires its input and change events, as a user's edit does. Use Type to
// send real key strokes.
func (tab *Tab) Fill(sel, value string) {
	tab.t.Helper()
	do(tab, "fill "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
	const js = `(sel, value) => {
		const el = document.querySelector(sel);
		if (!el || !("value" in el)) return "no form field";
		el.focus();
		el.value = value;
		if (el.value !== value) return "the field refused the value (now " + JSON.stringify(el.value) + ")";
		el.dispatchEvent(new Event("input", {bubbles: true}));
		el.dispatchEvent(new Event("change", {bubbles: true}));
		return "";
	}`
	problem := do(tab, "fill "+sel, chromedp.Evaluate[string](fmt.Sprintf("(%s)(%s, %s)", js, jsString(sel), jsString(value))))
	if problem != "" {
		tab.fail(fmt.Sprintf("fill %s with %q", sel, value), errors.New(problem))
	}
}

// Type sends text as key strokes to the element sel, once it is visible.
func (tab *Tab) Type(sel, text string) {
	tab.t.Helper()
	do(tab, "type into "+sel, chromedp.SendKeys(chromedp.CSS(sel), text))
}

// WaitVisible waits until an element matching sel is visible.
func (tab *Tab) WaitVisible(sel string) {
	tab.t.Helper()
	do(tab, "wait for "+sel+" to be visible", chromedp.WaitVisible(chromedp.CSS(sel)))
}

// WaitText waits until the text of the first element matching sel contains
// substring, polling the page.
func (tab *Tab) WaitText(sel, substring string) {
	tab.t.Helper()
	const js = `(sel, sub) => { const el = document.querySelector(sel); return !!el && el.innerText.includes(sub); }`
	ctx, cancel := context.WithTimeout(tab.ctx, tab.opts.Timeout)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.PollFunction[bool](js,
		chromedp.WithPollingArgs(sel, substring),
		chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(tab.opts.Timeout)))
	if err != nil {
		now := tab.textNow(sel)
		tab.fail(fmt.Sprintf("wait for %q in %s", substring, sel), fmt.Errorf("%v; its text is now %s", err, now))
	}
}

// textNow is the text of sel for an error message, without waiting.
func (tab *Tab) textNow(sel string) string {
	ctx, cancel := context.WithTimeout(tab.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(
		`(() => { const el = document.querySelector(%s); return el ? JSON.stringify(el.innerText) : "(no such element)"; })()`, jsString(sel))))
	if err != nil {
		return "(unknown: " + err.Error() + ")"
	}
	return s
}

// Text returns the rendered text (innerText) of the first element matching
// sel, once it is visible.
func (tab *Tab) Text(sel string) string {
	tab.t.Helper()
	return do(tab, "read the text of "+sel, chromedp.Text(chromedp.CSS(sel)))
}

// Eval evaluates the JavaScript expression js (awaiting it when it is a
// promise) and decodes its JSON value into out, unless out is nil.
func (tab *Tab) Eval(js string, out any) {
	tab.t.Helper()
	raw := do(tab, "evaluate "+abbrev(js), chromedp.Evaluate[[]byte](js, chromedp.EvalAwaitPromise))
	if out == nil {
		return
	}
	if err := json.Unmarshal(raw, out); err != nil {
		tab.fail("evaluate "+abbrev(js), fmt.Errorf("decode %s into %T: %w", abbrev(string(raw)), out, err))
	}
}

// Screenshot saves a PNG of the whole page as
// <artifacts>/screenshots/<TestName>/<NN>-<name>.png and returns its path.
func (tab *Tab) Screenshot(name string) string {
	tab.t.Helper()
	p, err := tab.screenshot(name, tab.opts.Timeout)
	if err != nil {
		tab.fail("screenshot "+name, err)
	}
	return p
}

// failureShotTimeout bounds the screenshot taken when a test fails: the
// failure may be a browser that no longer answers.
const failureShotTimeout = 10 * time.Second

func (tab *Tab) screenshot(name string, timeout time.Duration) (string, error) {
	if tab.closed.Load() {
		return "", errors.New("the tab is closed")
	}
	ctx, cancel := context.WithTimeout(tab.ctx, timeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return "", err
	}
	p, err := nextArtifact(tab.t, name, ".png")
	if err != nil {
		return "", err
	}
	return p, os.WriteFile(p, png, 0o644)
}

// NoHorizontalOverflow fails t if the page is wider than the viewport, the
// usual sign of a layout that breaks on a phone, naming the elements that
// stick out. On a phone tab it also fails if the page has no viewport meta
// tag, which makes a phone lay it out for a desktop screen.
func (tab *Tab) NoHorizontalOverflow(t testing.TB) {
	t.Helper()
	var r struct {
		ScrollWidth, InnerWidth int
		Culprits                []string
	}
	tab.Eval(`(() => {
		const w = window.innerWidth, out = [];
		for (const el of document.body.querySelectorAll("*")) {
			const r = el.getBoundingClientRect();
			if (r.right > w + 0.5 && out.length < 10) {
				out.push(el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
					(el.className && typeof el.className === "string" ? "." + el.className.trim().split(/\s+/).join(".") : "") +
					" (right edge at " + Math.round(r.right) + " px)");
			}
		}
		return {ScrollWidth: document.documentElement.scrollWidth, InnerWidth: w, Culprits: out};
	})()`, &r)
	if vp := tab.opts.Viewport; vp.Mobile && int64(r.InnerWidth) > vp.Width {
		t.Errorf(`browsertest: %s is laid out %d px wide on a %d px phone: it needs <meta name="viewport" content="width=device-width, initial-scale=1">`,
			tab.URL(), r.InnerWidth, vp.Width)
	}
	if r.ScrollWidth > r.InnerWidth {
		t.Errorf("browsertest: %s is %d px wide in a %d px viewport; too wide: %s",
			tab.URL(), r.ScrollWidth, r.InnerWidth, strings.Join(r.Culprits, ", "))
	}
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// abbrev shortens a script or value for an error message.
func abbrev(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

// SetCookies gives the tab cookies for TabOptions.BaseURL, for example the
// session cookies of a login made over the API, so that a test starts
// signed in without going through the login page.
func (tab *Tab) SetCookies(cookies ...*http.Cookie) {
	tab.t.Helper()
	if tab.opts.BaseURL == "" {
		tab.t.Fatal("browsertest: SetCookies needs TabOptions.BaseURL")
	}
	do(tab, "set cookies", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		for _, c := range cookies {
			p := network.SetCookieParams{Name: c.Name, Value: c.Value, URL: tab.opts.BaseURL, Path: c.Path}
			if c.HttpOnly {
				p.HTTPOnly = new(true)
			}
			if _, err := cdp.Call(ctx, tg, network.SetCookie, p); err != nil {
				return fmt.Errorf("cookie %s: %w", c.Name, err)
			}
		}
		return nil
	}))
}

// WaitGone waits until no element matches sel, for example a dialog that
// closes or a row that a deletion removed.
func (tab *Tab) WaitGone(sel string) {
	tab.t.Helper()
	do(tab, "wait for "+sel+" to go", chromedp.WaitNotPresent(chromedp.CSS(sel)))
}

// Count returns how many elements match sel now, without waiting.
func (tab *Tab) Count(sel string) int {
	tab.t.Helper()
	return do(tab, "count "+sel, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%s).length", jsString(sel))))
}

// Press sends key strokes to the focused element, for the keyboard tests:
// "\t" is Tab and "\r" is Enter (see chromedp's kb package for the others).
func (tab *Tab) Press(keys string) {
	tab.t.Helper()
	do(tab, fmt.Sprintf("press %q", keys), chromedp.KeyEvent(keys))
}

// Focused describes the focused element as tag#id.class, or "body" when
// nothing has the focus.
func (tab *Tab) Focused() string {
	tab.t.Helper()
	return do(tab, "read the focus", chromedp.Evaluate[string](`(() => {
		const el = document.activeElement;
		if (!el) return "";
		return el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
			(typeof el.className === "string" && el.className.trim() ? "." + el.className.trim().split(/\s+/).join(".") : "");
	})()`))
}
