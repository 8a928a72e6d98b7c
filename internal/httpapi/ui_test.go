package httpapi

import (
	"github.com/fabgate/fabgate/internal/fablab"
	"io"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/fabgate/fabgate/internal/i18n"
	"github.com/fabgate/fabgate/web"
)

// TestMessagesComplete: both languages have the same messages, and every
// message a template asks for by name exists.
func TestMessagesComplete(t *testing.T) {
	vs, err := pageViews()
	if err != nil {
		t.Fatal(err)
	}
	en, fr := vs.cat.IDs("en"), vs.cat.IDs("fr")
	if len(en) < 50 {
		t.Fatalf("only %d English messages: the catalog did not load", len(en))
	}
	for _, id := range en {
		if !vs.cat.Has("fr", id) {
			t.Errorf("message %q has no French text", id)
		}
	}
	for _, id := range fr {
		// The API's refusals are in English in the code itself.
		if strings.HasPrefix(id, "problem_") {
			continue
		}
		if !vs.cat.Has("en", id) {
			t.Errorf("message %q has no English text", id)
		}
	}
	asked := regexp.MustCompile(`\.T "([a-z0-9_.-]+)"`)
	names, _ := fs.Glob(web.Templates(), "*.html")
	for _, name := range names {
		src, _ := fs.ReadFile(web.Templates(), name)
		for _, m := range asked.FindAllStringSubmatch(string(src), -1) {
			for _, l := range i18n.Languages {
				if !vs.cat.Has(l, m[1]) {
					t.Errorf("%s asks for message %q, which %s lacks", name, m[1], l)
				}
			}
		}
	}
}

// TestTemplatesHaveNoBareText: every word a page shows comes from the
// message files, so that nothing stays in one language. Text between tags,
// outside template actions, must be punctuation only.
func TestTemplatesHaveNoBareText(t *testing.T) {
	actions := regexp.MustCompile(`(?s)\{\{.*?\}\}`)
	tags := regexp.MustCompile(`(?s)<[^>]*>`)
	letters := regexp.MustCompile(`\p{L}{2,}`)
	// Words that read the same in every language: the product's name and
	// the languages' own names in the language switch.
	allowed := map[string]bool{"FabGate": true, "English": true, "Français": true}
	names, _ := fs.Glob(web.Templates(), "*.html")
	for _, name := range names {
		src, _ := fs.ReadFile(web.Templates(), name)
		text := tags.ReplaceAllString(actions.ReplaceAllString(string(src), " "), " ")
		for _, w := range letters.FindAllString(text, -1) {
			if !allowed[w] {
				t.Errorf("%s shows %q outside the message files", name, w)
			}
		}
	}
}

// pageClient is a browser-like client of the harness: it keeps cookies
// and asks for HTML.
type pageClient struct {
	t    testing.TB
	h    *apiHarness
	http *http.Client
}

func newPageClient(t testing.TB, h *apiHarness) *pageClient {
	jar, _ := cookiejar.New(nil)
	c := *h.client
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &pageClient{t: t, h: h, http: &c}
}

// get fetches a page and returns its status, Location and body.
func (p *pageClient) get(path string, header ...string) (int, string, string) {
	p.t.Helper()
	req, err := http.NewRequest("GET", p.h.srv.URL+path, nil)
	if err != nil {
		p.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := p.http.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 500 {
		p.t.Errorf("GET %s: %d: %s", path, res.StatusCode, body)
	}
	if strings.Contains(string(body), "⟦") {
		p.t.Errorf("GET %s shows a missing message: %s", path, regexp.MustCompile(`⟦[^⟧]*⟧`).FindString(string(body)))
	}
	return res.StatusCode, res.Header.Get("Location"), string(body)
}

// login logs the client in as a through the API, as the login page does.
func (p *pageClient) login(a *apiAccount) {
	p.t.Helper()
	res, err := p.http.Post(p.h.srv.URL+"/api/v1/auth/login", "application/json",
		strings.NewReader(`{"email":"`+a.Email+`","password":"`+a.Password+`"}`))
	if err != nil {
		p.t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		p.t.Fatalf("login %s: %d", a.Email, res.StatusCode)
	}
}

func TestPagesNeedLogin(t *testing.T) {
	h := newAPIHarness(t)
	p := newPageClient(t, h)
	status, loc, _ := p.get("/machines?x=1")
	if status != http.StatusSeeOther || loc != "/login?next="+url.QueryEscape("/machines?x=1") {
		t.Fatalf("anonymous /machines: %d to %q, want 303 to the login page coming back", status, loc)
	}
	status, _, body := p.get("/login?next=/machines")
	if status != http.StatusOK || !strings.Contains(body, `data-next="/machines"`) || !strings.Contains(body, `name="password"`) {
		t.Fatalf("login page: %d\n%s", status, body)
	}
	// A next address elsewhere is never followed.
	for _, next := range []string{"//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"} {
		_, _, body := p.get("/login?next=" + url.QueryEscape(next))
		if !strings.Contains(body, `data-next="/"`) {
			t.Errorf("login with next=%q keeps it: the page must go to / instead", next)
		}
	}
	status, _, body = p.get("/no-such-page")
	if status != http.StatusNotFound || !strings.Contains(body, "<main") {
		t.Errorf("unknown page: %d, want the 404 page", status)
	}
}

func TestMachinesPage(t *testing.T) {
	h := newAPIHarness(t)
	p := newPageClient(t, h)
	p.login(h.bob) // bob lacks the laser training
	status, _, body := p.get("/machines", "Accept-Language", "en-GB,en;q=0.8")
	if status != http.StatusOK {
		t.Fatalf("/machines: %d", status)
	}
	for _, want := range []string{"Laser", "Printer", "CNC", "Laser safety", "Laser cutter", `href="/machines/` + h.laser.ID.String() + `"`, "Bob Maker", `<html lang="en"`} {
		if !strings.Contains(body, want) {
			t.Errorf("/machines lacks %q", want)
		}
	}
	// Alice holds the training: nothing is missing for her.
	a := newPageClient(t, h)
	a.login(h.alice)
	_, _, body = a.get("/machines", "Accept-Language", "fr-FR")
	if strings.Contains(body, "Laser safety") || !strings.Contains(body, "Découpeuse laser") || !strings.Contains(body, `<html lang="fr"`) {
		t.Errorf("alice's French machines page: wrong language or lists a training she holds")
	}
	// Staff and admin pages are refused to a maker.
	if status, _, _ := a.get("/staff"); status != http.StatusForbidden && status != http.StatusNotFound {
		t.Errorf("maker on /staff: %d", status)
	}
}

func TestLanguageSwitch(t *testing.T) {
	h := newAPIHarness(t)
	p := newPageClient(t, h)
	p.login(h.alice)
	_, _, body := p.get("/machines", "Accept-Language", "en")
	if !strings.Contains(body, `<html lang="en"`) {
		t.Fatal("English browser does not get English")
	}
	status, loc, _ := p.get("/lang/fr?next=" + url.QueryEscape("/machines"))
	if status != http.StatusSeeOther || loc != "/machines" {
		t.Fatalf("switch: %d to %q", status, loc)
	}
	_, _, body = p.get("/machines", "Accept-Language", "en")
	if !strings.Contains(body, `<html lang="fr"`) || !strings.Contains(body, "Mes réservations") {
		t.Error("the French choice is not remembered over the browser's English")
	}
	if status, loc, _ := p.get("/lang/en?next=https://evil.example"); status != http.StatusSeeOther || loc != "/" {
		t.Errorf("switch with a foreign next: %d to %q", status, loc)
	}
	if status, _, _ := p.get("/lang/de"); status != http.StatusNotFound {
		t.Errorf("unknown language: %d", status)
	}
}

// TestProblemsTranslated: every refusal the code gives a translation key
// has its French text, and a French client reads it in French, dates
// included, while an API client without a language keeps the English.
func TestProblemsTranslated(t *testing.T) {
	vs, err := pageViews()
	if err != nil {
		t.Fatal(err)
	}
	said := regexp.MustCompile(`Say\("(problem_[a-z_]+)"`)
	keys := map[string]bool{
		// Keys built from a state or a weekday rule.
		"problem_machine_unavailable_maintenance": true, "problem_machine_unavailable_retired": true,
		"problem_not_cancellable_cancelled": true, "problem_not_cancellable_no_show": true, "problem_not_cancellable_completed": true,
		"problem_closed_weekday": true, "problem_outside_hours": true,
	}
	for _, dir := range []string{"../booking", "../bolt", "../fablab", "."} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, f := range files {
			src, _ := os.ReadFile(f)
			for _, m := range said.FindAllStringSubmatch(string(src), -1) {
				if !strings.HasSuffix(m[1], "_") {
					keys[m[1]] = true
				}
			}
		}
	}
	if len(keys) < 20 {
		t.Fatalf("found %d translated refusals: the scan is broken", len(keys))
	}
	for k := range keys {
		if !vs.cat.Has("fr", k) {
			t.Errorf("refusal %q has no French text in web/i18n/*problems.fr.toml", k)
		}
	}

	h := newAPIHarness(t)
	// Sunday: the lab is closed all day.
	body := apiBookingBody(h.printer.ID, apiAt(6, 10, 0), apiAt(6, 11, 0))
	en := h.send(t, apiReq{method: "POST", path: "/api/v1/bookings", token: h.alice.Token, body: body})
	en.want(t, http.StatusUnprocessableEntity, fablab.CodeOutsideOpeningHours)
	if d := en.problem(t).Detail; !strings.Contains(d, "opening hours") {
		t.Errorf("English detail %q", d)
	}
	fr := h.send(t, apiReq{method: "POST", path: "/api/v1/bookings", token: h.alice.Token, body: body, header: http.Header{"Accept-Language": {"fr-FR,fr;q=0.9"}}})
	fr.want(t, http.StatusUnprocessableEntity, fablab.CodeOutsideOpeningHours)
	if d := fr.problem(t).Detail; d != "La réservation doit tenir dans les heures d'ouverture du lab, qui est fermé ce jour-là (dimanche 8 mars 2026)." {
		t.Errorf("French detail %q", d)
	}
	// A conflict names the taken range in French dates.
	h.seedBooking(t, h.printer.ID, h.bob, apiAt(1, 10, 0), apiAt(1, 12, 0))
	c := h.send(t, apiReq{method: "POST", path: "/api/v1/bookings", token: h.alice.Token,
		body: apiBookingBody(h.printer.ID, apiAt(1, 11, 0), apiAt(1, 13, 0)), header: http.Header{"Accept-Language": {"fr"}}})
	c.want(t, http.StatusConflict, fablab.CodeBookingConflict)
	if d := c.problem(t).Detail; !strings.Contains(d, "mardi 3 mars 2026 à 10:00") || !strings.Contains(d, "choisissez un créneau libre") {
		t.Errorf("French conflict detail %q", d)
	}
}
