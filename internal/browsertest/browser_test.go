package browsertest

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

func TestMain(m *testing.M) { Main(m) }

// The pages the harness is tried on.
const (
	goodPage = `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Good</title>
<script src="/good.js" defer></script></head>
<body><main><h1>Good page</h1>
<form><label for="name">Name</label> <input id="name" name="name">
<label for="kind">Kind</label> <select id="kind"><option value="laser">Laser</option><option value="cnc">CNC</option></select>
<button type="button" id="greet">Greet</button></form>
<p id="out" aria-live="polite"></p></main></body></html>`
	goodJS = `document.getElementById("greet").addEventListener("click", () => {
	const name = document.getElementById("name").value, kind = document.getElementById("kind").value;
	setTimeout(() => { document.getElementById("out").textContent = "Hello " + name + " (" + kind + ")"; }, 200);
});`
	badPage = `<!doctype html><html><head><title>Bad</title></head>
<body><img src="/missing.png"><input type="text">
<div style="width:2000px" class="wide band">too wide</div>
<script>console.error("boom", 42); null.x;</script></body></html>`
)

// pageServer serves the test pages (and no /favicon.ico, which the browser
// asks for by itself: its 404 must not count as a page error) and returns
// a func giving the headers of the last page request.
func pageServer(t *testing.T) (*httptest.Server, func() http.Header) {
	var mu sync.Mutex
	var last http.Header
	mux := http.NewServeMux()
	page := func(body, ctype string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			last = r.Header.Clone()
			mu.Unlock()
			w.Header().Set("Content-Type", ctype)
			fmt.Fprint(w, body)
		}
	}
	mux.HandleFunc("/good", page(goodPage, "text/html; charset=utf-8"))
	mux.HandleFunc("/good.js", page(goodJS, "text/javascript"))
	mux.HandleFunc("/bad", page(badPage, "text/html; charset=utf-8"))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, func() http.Header {
		mu.Lock()
		defer mu.Unlock()
		return last
	}
}

func TestTabDrivesAPage(t *testing.T) {
	t.Parallel()
	srv, _ := pageServer(t)
	b := Start(t)
	t.Logf("Chromium %s started in %v", b.Path(), b.StartupTime)
	tab := b.NewTab(t, TabOptions{BaseURL: srv.URL})

	tab.Go("/good")
	if got := tab.Text("h1"); got != "Good page" {
		t.Errorf("h1 = %q", got)
	}
	tab.Fill("#name", "Ada")
	tab.Fill("#kind", "cnc")
	tab.Click("#greet")
	tab.WaitText("#out", "Hello Ada (cnc)")
	tab.Type("#name", " L.")
	var value string
	tab.Eval(`document.getElementById("name").value`, &value)
	if value != "Ada L." {
		t.Errorf("after typing, the field holds %q", value)
	}
	var sum int
	tab.Eval(`Promise.resolve(40 + 2)`, &sum)
	if sum != 42 {
		t.Errorf("awaited promise = %d", sum)
	}

	shot := tab.Screenshot("greeted")
	if filepath.Base(shot) != "01-greeted.png" || !strings.Contains(shot, filepath.Join("screenshots", "TestTabDrivesAPage")) {
		t.Errorf("screenshot path %s", shot)
	}
	if png, err := os.ReadFile(shot); err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Errorf("screenshot %s is not a PNG: %v", shot, err)
	}
	if v := tab.CheckAccessibility(t, "good page"); len(v) != 0 {
		t.Errorf("the good page has violations: %+v", v)
	}
	report := filepath.Join(filepath.Dir(shot), "02-good-page.axe.json")
	if b, err := os.ReadFile(report); err != nil || !bytes.Contains(b, []byte(`"passes"`)) {
		t.Errorf("accessibility report %s: %v", report, err)
	}
	tab.NoHorizontalOverflow(t)
	tab.NoJSErrors(t)
}

// recorder is a test that records its errors instead of failing, to show
// that the checks do fail on a bad page.
type recorder struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recorder) take() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := strings.Join(r.errs, "\n")
	r.errs = nil
	return s
}

func TestChecksFailOnABadPage(t *testing.T) {
	t.Parallel()
	srv, _ := pageServer(t)
	tab := Start(t).NewTab(t, TabOptions{BaseURL: srv.URL})
	rec := &recorder{TB: t}

	if status := tab.GoStatus("/bad"); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	tab.NoJSErrors(rec)
	got := rec.take()
	for _, want := range []string{"console.error: boom 42", "uncaught exception", "Cannot read properties of null", "missing.png"} {
		if !strings.Contains(got, want) {
			t.Errorf("NoJSErrors did not report %q:\n%s", want, got)
		}
	}

	tab.CheckAccessibility(rec, "bad page")
	got = rec.take()
	for _, want := range []string{"image-alt (critical)", "label (critical)", `["img"]`} {
		if !strings.Contains(got, want) {
			t.Errorf("CheckAccessibility did not report %q:\n%s", want, got)
		}
	}

	tab.NoHorizontalOverflow(rec)
	if got := rec.take(); !strings.Contains(got, "div.wide.band") {
		t.Errorf("NoHorizontalOverflow did not name the wide div: %q", got)
	}

	phone := Start(t).NewTab(t, TabOptions{BaseURL: srv.URL, Viewport: Phone})
	phone.Go("/bad")
	phone.NoHorizontalOverflow(rec)
	if got := rec.take(); !strings.Contains(got, "px wide on a 375 px phone: it needs <meta name=\"viewport\"") {
		t.Errorf("NoHorizontalOverflow did not see the missing viewport tag: %q", got)
	}

	if status := tab.GoStatus("/nothing-here"); status != http.StatusNotFound {
		t.Errorf("GoStatus of a missing page = %d", status)
	}
}

func TestTabLanguageTimeZoneAndPhone(t *testing.T) {
	t.Parallel()
	srv, lastHeader := pageServer(t)
	b := Start(t)
	tab := b.NewTab(t, TabOptions{BaseURL: srv.URL, Lang: "fr", TimeZone: "America/New_York", Viewport: Phone})
	tab.Go("/good")
	if got := lastHeader().Get("Accept-Language"); !strings.HasPrefix(got, "fr-FR") {
		t.Errorf("Accept-Language = %q, want fr-FR first", got)
	}
	var env struct {
		Lang, Zone      string
		Width, MaxTouch int
		Date            string
	}
	tab.Eval(`({Lang: navigator.language, Zone: Intl.DateTimeFormat().resolvedOptions().timeZone,
		Width: window.innerWidth, MaxTouch: navigator.maxTouchPoints,
		Date: new Date(Date.UTC(2026, 2, 2, 12)).toLocaleString()})`, &env)
	if env.Lang != "fr-FR" || env.Zone != "America/New_York" || env.Width != 375 || env.MaxTouch == 0 {
		t.Errorf("phone tab in French: %+v", env)
	}
	if env.Date != "02/03/2026 07:00:00" { // noon UTC in New York, written the French way
		t.Errorf("toLocaleString = %q", env.Date)
	}
	tab.NoHorizontalOverflow(t)

	// Another tab has its own language and its own cookies.
	en := b.NewTab(t, TabOptions{BaseURL: srv.URL})
	tab.Eval(`document.cookie = "who=fr"`, nil)
	en.Go("/good")
	var cookie, lang string
	en.Eval(`document.cookie`, &cookie)
	en.Eval(`navigator.language`, &lang)
	if cookie != "" || lang != "en-US" {
		t.Errorf("second tab sees cookie %q and language %q", cookie, lang)
	}
}

// TestOwnBrowser starts a browser for one test, as Start does in a package
// without Main, and checks that it stops with the test: t.TempDir's removal
// of the profile directory, which runs after, fails the test if Chromium
// still writes there.
func TestOwnBrowser(t *testing.T) {
	t.Parallel()
	d := Find(os.Getenv)
	if d.Action != Run {
		Start(t) // skips or fails as any browser test does
	}
	srv, _ := pageServer(t)
	var b *Browser
	t.Run("use", func(t *testing.T) {
		b = startOwn(t, d.Path)
		t.Logf("Chromium started in %v", b.StartupTime)
		tab := b.NewTab(t, TabOptions{BaseURL: srv.URL})
		tab.Go("/good")
		tab.WaitText("h1", "Good page")
	})
	if b.pid == 0 {
		t.Fatal("no browser process id")
	}
	if err := syscall.Kill(b.pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the browser process %d is still there after its test ended (kill 0: %v)", b.pid, err)
	}
}

func TestTabKeyboardCookiesAndCounts(t *testing.T) {
	t.Parallel()
	srv, lastHeader := pageServer(t)
	tab := Start(t).NewTab(t, TabOptions{BaseURL: srv.URL})
	tab.SetCookies(&http.Cookie{Name: "fabgate_session", Value: "s3cret", Path: "/", HttpOnly: true})
	tab.Go("/good")
	if got := lastHeader().Get("Cookie"); got != "fabgate_session=s3cret" {
		t.Errorf("the server got Cookie %q", got)
	}
	var visible string
	tab.Eval(`document.cookie`, &visible)
	if visible != "" {
		t.Errorf("an HttpOnly cookie is visible to the page: %q", visible)
	}

	if n := tab.Count("select option"); n != 2 {
		t.Errorf("Count = %d, want 2", n)
	}
	tab.Click("#name")
	if got := tab.Focused(); got != "input#name" {
		t.Errorf("focus after the click: %q", got)
	}
	tab.Press("\t")
	if got := tab.Focused(); got != "select#kind" {
		t.Errorf("focus after Tab: %q", got)
	}
	tab.Fill("#name", "Bo")
	tab.Click("#greet")
	tab.WaitText("#out", "Hello Bo")
	tab.Eval(`document.getElementById("out").remove()`, nil)
	tab.WaitGone("#out")
	tab.NoJSErrors(t)
}
