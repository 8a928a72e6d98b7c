package httpapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/fabgate/fabgate/internal/browsertest"
)

// TestBrowserLanding opens the landing page of the real server in headless
// Chromium, in English on a desktop, in French, and on a phone.
func TestBrowserLanding(t *testing.T) {
	t.Parallel()
	h := newAPIHarness(t)
	b := browsertest.Start(t)

	tab := b.NewTab(t, browsertest.TabOptions{BaseURL: h.srv.URL})
	tab.Go("/")
	if got := tab.Text("header .brand"); got != apiLabName {
		t.Errorf("header names %q, want the lab's name %q", got, apiLabName)
	}
	tab.WaitText("main", "badge in at the machine")
	for _, m := range []string{"Laser", "Printer", "CNC"} {
		tab.WaitText("main ul", m)
	}
	tab.Screenshot("landing-en")
	tab.CheckAccessibility(t, "landing-en")
	tab.NoJSErrors(t)

	fr := b.NewTab(t, browsertest.TabOptions{BaseURL: h.srv.URL, Lang: "fr"})
	fr.Go("/")
	fr.WaitText("main", "badgez à la machine")
	var lang string
	fr.Eval(`document.documentElement.lang`, &lang)
	if lang != "fr" {
		t.Errorf(`French page has lang=%q`, lang)
	}
	fr.Screenshot("landing-fr")
	fr.CheckAccessibility(t, "landing-fr")
	fr.NoJSErrors(t)

	phone := b.NewTab(t, browsertest.TabOptions{BaseURL: h.srv.URL, Viewport: browsertest.Phone})
	phone.Go("/")
	phone.WaitVisible("h1")
	phone.Screenshot("landing-phone")
	phone.NoHorizontalOverflow(t)
	phone.CheckAccessibility(t, "landing-phone")
	phone.NoJSErrors(t)
}

// TestVendoredAssetsServed checks that the browser libraries the pages use
// are served, and that axe-core, vendored for the tests only, is not.
func TestVendoredAssetsServed(t *testing.T) {
	t.Parallel()
	h := newAPIHarness(t)
	for path, want := range map[string]int{
		"/static/vendor/htmx.org/htmx.min.js":                http.StatusOK,
		"/static/vendor/fullcalendar/index.global.min.js":    http.StatusOK,
		"/static/vendor/@fullcalendar/core/fr.global.min.js": http.StatusOK,
		"/static/vendor/VERSIONS":                            http.StatusOK,
		"/static/vendor/axe-core/axe.min.js":                 http.StatusNotFound,
		"/static/../testdata/vendor/axe-core/axe.min.js":     http.StatusNotFound,
		"/static/vendor/fullcalendar/../../../web.go":        http.StatusNotFound,
	} {
		r := h.do(t, "GET", path, "", nil)
		if r.status != want {
			t.Errorf("GET %s: %d, want %d", path, r.status, want)
		}
		if want == http.StatusOK && strings.HasSuffix(path, ".js") && !strings.Contains(r.header.Get("Content-Type"), "javascript") {
			t.Errorf("GET %s: Content-Type %q", path, r.header.Get("Content-Type"))
		}
	}
}
