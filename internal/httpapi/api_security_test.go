package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/events"
	"github.com/fabgate/fabgate/internal/fablab"
)

// apiMetricsToken is the metrics token of the servers that serve /metrics.
const apiMetricsToken = "test-metrics-token-0123456789"

// reconfigure serves h's store (and so its logins) from a new Server built
// as newAPIHarness builds it, with mod applied to the configuration; the
// previous server is closed.
func (h *apiHarness) reconfigure(t testing.TB, mod func(*Config)) {
	t.Helper()
	h.srv.Close()
	cfg := Config{Store: h.store, Now: h.clock.Now, Registry: prometheus.NewRegistry(), Version: "test", Password: apiCheapPassword}
	mod(&cfg)
	var err error
	if h.server, err = New(cfg); err != nil {
		t.Fatalf("new server: %v", err)
	}
	h.srv = httptest.NewServer(h.server.Handler())
	h.client = h.srv.Client()
	t.Cleanup(h.srv.Close)
}

// scrape reads /metrics with the metrics token.
func (h *apiHarness) scrape(t testing.TB) string {
	t.Helper()
	res := h.send(t, apiReq{method: "GET", path: "/metrics", header: http.Header{"Authorization": {"Bearer " + apiMetricsToken}}})
	res.want(t, http.StatusOK, "")
	return string(res.body)
}

// TestAPIMetricsLabelsBounded: requests with made-up methods (short and
// 4 KiB long) on made-up paths add no series: they are counted under
// method "other" and route "unmatched", and the scrape stays small.
func TestAPIMetricsLabelsBounded(t *testing.T) {
	h := newAPIHarness(t)
	h.reconfigure(t, func(c *Config) { c.MetricsToken = apiMetricsToken })
	before := strings.Count(h.scrape(t), "\nfabgate_http_requests_total{")
	for i := range 300 {
		method := fmt.Sprintf("BOGUS%03d", i)
		if i%10 == 0 {
			method = strings.Repeat("X", 4096) + fmt.Sprint(i)
		}
		path := "/healthz" // known path, unknown method: 405
		if i%2 == 1 {
			path = fmt.Sprintf("/made/up/%d", i) // 404
		}
		r, err := apiRoundTrip(h.client, h.srv.URL, apiReq{method: method, path: path})
		if err != nil {
			t.Fatal(err)
		}
		if r.status != 404 && r.status != 405 {
			t.Fatalf("%.20s %s: %d", method, path, r.status)
		}
	}
	text := h.scrape(t)
	series := strings.Count(text, "\nfabgate_http_requests_total{")
	if strings.Contains(text, "BOGUS") || strings.Contains(text, "XXXX") || strings.Contains(text, "/made/up") {
		t.Fatal("a client's method or path became a label")
	}
	// Before: the first scrape's own series. After: that, the 405s and
	// 404s of "other", and the first scrape counted.
	if series > before+3 {
		t.Errorf("%d request series after 300 made-up methods (%d before)", series, before)
	}
	for _, want := range []string{
		`fabgate_http_requests_total{method="other",route="unmatched",status="405"} 150`,
		`fabgate_http_requests_total{method="other",route="unmatched",status="404"} 150`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if len(text) > 64<<10 {
		t.Errorf("the scrape is %d bytes", len(text))
	}
}

// TestAPIMetricsAccess: /metrics answers only the metrics token; without
// one configured, or with metrics on an address of their own, the main
// handler serves it to nobody.
func TestAPIMetricsAccess(t *testing.T) {
	h := newAPIHarness(t)
	scrape := func(token string) apiResp {
		rq := apiReq{method: "GET", path: "/metrics"}
		if token != "" {
			rq.header = http.Header{"Authorization": {"Bearer " + token}}
		}
		return h.send(t, rq)
	}
	h.do(t, "GET", "/metrics", h.admin.Token, nil).want(t, http.StatusNotFound, fablab.ENOTFOUND)
	scrape(apiMetricsToken).want(t, http.StatusNotFound, fablab.ENOTFOUND)

	h.reconfigure(t, func(c *Config) { c.MetricsToken = apiMetricsToken })
	for _, bad := range []string{"", "wrong", apiMetricsToken + "x", h.admin.Token} {
		res := scrape(bad)
		res.want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)
		if res.header.Get("WWW-Authenticate") == "" {
			t.Errorf("401 without WWW-Authenticate")
		}
	}
	if res := scrape(apiMetricsToken); res.status != 200 || !bytes.Contains(res.body, []byte("fabgate_http_requests_total")) {
		t.Errorf("scrape with the token: %d %s", res.status, apiShort(res.body))
	}

	h.reconfigure(t, func(c *Config) { c.MetricsToken = apiMetricsToken; c.MetricsOwnAddress = true })
	scrape(apiMetricsToken).want(t, http.StatusNotFound, fablab.ENOTFOUND)
	own := httptest.NewServer(h.server.MetricsHandler())
	defer own.Close()
	for token, want := range map[string]int{"": 401, "wrong": 401, apiMetricsToken: 200} {
		req, _ := http.NewRequest("GET", own.URL+"/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := own.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("metrics address, token %q: %d, want %d", token, res.StatusCode, want)
		}
	}
	if res, err := own.Client().Get(own.URL + "/api/v1/openapi.json"); err != nil || res.StatusCode != 404 {
		t.Errorf("the metrics address serves more than /metrics: %v %v", res.StatusCode, err)
	}
}

// apiBusy checks that rq is refused at once for want of a hashing slot:
// 503, code busy, Retry-After, as a problem.
func apiBusy(t *testing.T, h *apiHarness, rq apiReq) {
	t.Helper()
	r, err := apiRoundTrip(h.client, h.srv.URL, rq) // a 503 is what is wanted here
	if err != nil {
		t.Fatal(err)
	}
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "1" || r.header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("%s %s: %d, Retry-After %q, %s; want 503 busy with Retry-After: 1", rq.method, rq.path, r.status, r.header.Get("Retry-After"), apiShort(r.body))
	}
	if p := r.problem(t); p.Code != codeBusy || p.Status != 503 {
		t.Fatalf("problem %+v", p)
	}
}

// TestAPIPasswordHashingBounded: with every hashing slot taken, each route
// that hashes a password is refused at once (no hash runs beyond the
// bound) and the refusal counts as no failed login; once a slot is free,
// the same requests succeed.
func TestAPIPasswordHashingBounded(t *testing.T) {
	h := newAPIHarness(t)
	h.reconfigure(t, func(c *Config) { c.HashConcurrency = 2 })
	var releases []func()
	for range 2 {
		r, ok := h.server.hashes.TryAcquire()
		if !ok {
			t.Fatal("no free slot at start")
		}
		releases = append(releases, r)
	}
	resetToken := auth.NewToken()
	if err := h.store.PutPasswordReset(t.Context(), auth.TokenKey(resetToken), bolt.PasswordReset{MemberID: h.bob.ID, ExpiresAt: apiStart.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	newMember := map[string]any{"email": "new@fablab.test", "name": "New", "group": "student", "password": "a long password"}
	before := h.state(t)
	for range 10 { // more than the throttle's free failures
		apiBusy(t, h, apiReq{method: "POST", path: "/api/v1/auth/login", body: apiLoginBody(h.alice.Email, "wrong password")})
	}
	apiBusy(t, h, apiReq{method: "POST", path: "/api/v1/auth/reset-password", body: map[string]string{"token": resetToken, "password": "a new password"}})
	apiBusy(t, h, apiReq{method: "POST", path: "/api/v1/members", token: h.staff.Token, body: newMember})
	apiBusy(t, h, apiReq{method: "PATCH", path: "/api/v1/members/" + h.bob.ID.String(), token: h.staff.Token, body: map[string]any{"password": "another password"}})
	h.unchanged(t, before)
	if n := h.server.hashes.InUse(); n != 2 {
		t.Fatalf("%d slots in use, want the 2 the test holds", n)
	}

	releases[0]()
	// The busy refusals were not failed logins: alice still has her free ones.
	for range 5 {
		h.do(t, "POST", "/api/v1/auth/login", "", apiLoginBody(h.alice.Email, "wrong password")).want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)
	}
	h.login(t, h.bob)
	h.do(t, "POST", "/api/v1/auth/reset-password", "", map[string]string{"token": resetToken, "password": "a new password"}).want(t, http.StatusNoContent, "")
	h.do(t, "POST", "/api/v1/members", h.staff.Token, newMember).want(t, http.StatusCreated, "")
	if n := h.server.hashes.InUse(); n != 1 {
		t.Fatalf("%d slots in use after the requests, want the 1 the test holds", n)
	}
	releases[1]()
}

// TestAPILoginThrottlePerAccountAndAddress: failed logins slow down the
// account from the address they came from only: the account's owner logs in
// from elsewhere at once, and the guessing address waits a delay that
// doubles, not a lockout.
func TestAPILoginThrottlePerAccountAndAddress(t *testing.T) {
	h := newAPIHarness(t)
	h.reconfigure(t, func(c *Config) { c.TrustedProxies = []string{"127.0.0.1", "::1"} })
	from := func(addr, password string) apiResp {
		return h.send(t, apiReq{method: "POST", path: "/api/v1/auth/login", body: apiLoginBody(h.admin.Email, password),
			header: http.Header{"X-Forwarded-For": {addr}}})
	}
	const guesser, owner = "203.0.113.66", "192.0.2.10"
	for i := range 5 {
		from(guesser, fmt.Sprintf("guess %d", i)).want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)
	}
	for _, pw := range []string{"guess 6", h.admin.Password} {
		res := from(guesser, pw)
		res.want(t, http.StatusTooManyRequests, fablab.ETOOMANY)
		if ra := res.header.Get("Retry-After"); ra != "1" {
			t.Errorf("Retry-After %q, want 1 after 5 failures", ra)
		}
	}
	// The owner, from another address, is not locked out, and a mistake
	// there is an ordinary one.
	from(owner, "typo").want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)
	from(owner, h.admin.Password).want(t, http.StatusOK, "")
	// The guesser waits out a delay that doubles with each failure.
	h.clock.Advance(time.Second)
	from(guesser, "guess 7").want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)
	res := from(guesser, "guess 8")
	res.want(t, http.StatusTooManyRequests, fablab.ETOOMANY)
	if ra := res.header.Get("Retry-After"); ra != "2" {
		t.Errorf("Retry-After %q, want 2 after 6 failures", ra)
	}
	h.clock.Advance(2 * time.Second)
	from(guesser, h.admin.Password).want(t, http.StatusOK, "")
}

// TestAPIRoleChangeEndsSessionsAndResets: a reset link staff issued for a
// maker dies when the maker becomes admin (it would otherwise be a way from
// staff to admin), and so do the member's sessions, on promotion and on
// demotion alike.
func TestAPIRoleChangeEndsSessionsAndResets(t *testing.T) {
	h := newAPIHarness(t)
	res := h.do(t, "POST", "/api/v1/members/"+h.bob.ID.String()+"/password-reset", h.staff.Token, nil)
	res.want(t, http.StatusCreated, "")
	var reset passwordResetResponse
	res.decode(t, &reset)

	h.do(t, "PATCH", "/api/v1/members/"+h.bob.ID.String(), h.admin.Token, map[string]any{"role": "admin"}).want(t, http.StatusOK, "")
	h.do(t, "GET", "/api/v1/me", h.bob.Token, nil).want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)
	h.do(t, "POST", "/api/v1/auth/reset-password", "", map[string]string{"token": reset.Token, "password": "staff now owns admin"}).
		want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)
	if _, err := h.store.MemberByEmail(t.Context(), h.bob.Email); err != nil {
		t.Fatal(err)
	}
	// A password an admin sets for the promoted member works.
	h.do(t, "PATCH", "/api/v1/members/"+h.bob.ID.String(), h.admin.Token, map[string]any{"password": "set by the admin"}).want(t, http.StatusOK, "")
	token, _ := h.login(t, &apiAccount{Member: h.bob.Member, Password: "set by the admin"})
	h.do(t, "GET", "/api/v1/devices", token, nil).want(t, http.StatusOK, "")

	h.do(t, "PATCH", "/api/v1/members/"+h.bob.ID.String(), h.admin.Token, map[string]any{"role": "maker"}).want(t, http.StatusOK, "")
	h.do(t, "GET", "/api/v1/me", token, nil).want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)
	// Other changes leave sessions alone.
	h.do(t, "PATCH", "/api/v1/members/"+h.alice.ID.String(), h.staff.Token, map[string]any{"name": "Alice M."}).want(t, http.StatusOK, "")
	h.do(t, "GET", "/api/v1/me", h.alice.Token, nil).want(t, http.StatusOK, "")

	// A password staff chose for a maker does not open the account once it
	// is promoted: the promotion clears it.
	h.do(t, "PATCH", "/api/v1/members/"+h.alice.ID.String(), h.staff.Token, map[string]any{"password": "chosen by the staff"}).want(t, http.StatusOK, "")
	h.do(t, "PATCH", "/api/v1/members/"+h.alice.ID.String(), h.admin.Token, map[string]any{"role": "staff"}).want(t, http.StatusOK, "")
	h.do(t, "POST", "/api/v1/auth/login", "", apiLoginBody(h.alice.Email, "chosen by the staff")).want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)
}

// TestAPISecurityHeaders: every response carries the CSP, nosniff and
// framing headers; everything but the static files is no-store, above all
// the answers that carry a token (a login, a reset link, a device secret).
func TestAPISecurityHeaders(t *testing.T) {
	h := newAPIAccessHarness(t, false)
	check := func(t *testing.T, what string, res apiResp, cacheable bool) {
		t.Helper()
		csp := res.header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "script-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: Content-Security-Policy %q lacks %s", what, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("%s: Content-Security-Policy %q allows inline script", what, csp)
		}
		if res.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options %q", what, res.header.Get("X-Content-Type-Options"))
		}
		if cc := res.header.Get("Cache-Control"); !cacheable && cc != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", what, cc)
		}
	}
	pw := h.do(t, "POST", "/api/v1/members/"+h.bob.ID.String()+"/password-reset", h.staff.Token, nil)
	pw.want(t, http.StatusCreated, "")
	dev := h.do(t, "POST", "/api/v1/devices", h.admin.Token, map[string]any{"id": "reader-headers", "kind": "bridge"})
	dev.want(t, http.StatusCreated, "")
	for _, tc := range []struct {
		what      string
		res       apiResp
		cacheable bool
	}{
		{"landing page", h.do(t, "GET", "/", "", nil), false},
		{"login", h.do(t, "POST", "/api/v1/auth/login", "", apiLoginBody(h.alice.Email, h.alice.Password)), false},
		{"password reset link", pw, false},
		{"device secret", dev, false},
		{"rotated device secret", h.do(t, "POST", "/api/v1/devices/reader-headers/secret", h.admin.Token, nil), false},
		{"member", h.do(t, "GET", "/api/v1/me", h.alice.Token, nil), false},
		{"problem", h.do(t, "GET", "/api/v1/nothing", "", nil), false},
		{"health", h.do(t, "GET", "/healthz", "", nil), false},
		{"style sheet", h.do(t, "GET", "/static/fabgate.css", "", nil), true},
	} {
		check(t, tc.what, tc.res, tc.cacheable)
	}
}

// TestAPIPagesNeedNoInlineScript: the pages work under the CSP: no inline
// script or style, no event handler attributes, and every script and style
// sheet they load is served by the server itself.
func TestAPIPagesNeedNoInlineScript(t *testing.T) {
	h := newAPIHarness(t)
	page := string(h.do(t, "GET", "/", "", nil).body)
	inline := regexp.MustCompile(`(?i)<script(\s[^>]*)?>\s*[^<\s]|<style|\son[a-z]+\s*=|\sstyle\s*=|javascript:`)
	if m := inline.FindString(page); m != "" {
		t.Errorf("the landing page has inline code the CSP blocks: %q", m)
	}
	refs := regexp.MustCompile(`(?i)<(?:script[^>]*\ssrc|link[^>]*\shref)="([^"]+)"`).FindAllStringSubmatch(page, -1)
	if len(refs) == 0 {
		t.Fatal("the landing page loads no style sheet")
	}
	for _, ref := range refs {
		if !strings.HasPrefix(ref[1], "/") || strings.HasPrefix(ref[1], "//") {
			t.Errorf("the landing page loads %s from elsewhere", ref[1])
			continue
		}
		h.do(t, "GET", ref[1], "", nil).want(t, http.StatusOK, "")
	}
}

// TestAPIDuplicateKeysRefused: a body that names a key twice, at any depth,
// is refused with 400 naming the key, and nothing is written.
func TestAPIDuplicateKeysRefused(t *testing.T) {
	h := newAPIHarness(t)
	machine := "/api/v1/machines/" + h.printer.ID.String()
	cases := []apiRefusal{
		{"login", nil, apiReq{method: "POST", path: "/api/v1/auth/login",
			body: `{"email":"alice@fablab.test","password":"wrong","password":"alice password"}`}, 400, fablab.EINVALID},
		{"top level", h.admin, apiReq{method: "PATCH", path: machine, body: `{"name":"A","name":"B"}`}, 400, fablab.EINVALID},
		{"nested", h.admin, apiReq{method: "PATCH", path: machine, body: `{"rules":{"max_minutes":60,"max_minutes":600}}`}, 400, fablab.EINVALID},
		{"in an array", h.admin, apiReq{method: "PUT", path: "/api/v1/tariffs",
			body: `{"groups":[{"id":"student","name":"Étudiant"},{"id":"staff","name":"Équipe","id":"free"}]}`}, 400, fablab.EINVALID},
		{"opening hours", h.admin, apiReq{method: "PATCH", path: "/api/v1/settings",
			body: `{"opening_hours":{"monday":[],"monday":[{"open":"08:00","close":"20:00"}]}}`}, 400, fablab.EINVALID},
	}
	apiCheckRefusals(t, h, cases, map[string]string{
		"login":         `"password"`,
		"top level":     `"name"`,
		"nested":        `"rules.max_minutes"`,
		"in an array":   `"groups.id"`,
		"opening hours": `"opening_hours.monday"`,
	})
	// The same keys once each are fine, and the same key in two objects too.
	h.do(t, "PATCH", machine, h.admin.Token, `{"name":"B","rules":{"max_minutes":120}}`).want(t, http.StatusOK, "")
	h.do(t, "PATCH", "/api/v1/settings", h.admin.Token, `{"opening_hours":{"monday":[{"open":"08:00","close":"12:00"},{"open":"13:00","close":"20:00"}]}}`).want(t, http.StatusOK, "")
}

// TestAPIReadTimeoutKeepsEventStream: on the server's http.Server, a request
// whose body stops halfway, and one whose headers do, are cut after the
// read timeout; an event stream opened before them still delivers events
// after its own read deadline has passed.
func TestAPIReadTimeoutKeepsEventStream(t *testing.T) {
	h := newAPIAccessHarness(t, false)
	h.server.readHeader, h.server.readTimeout = 200*time.Millisecond, 300*time.Millisecond
	srv := h.server.HTTPServer(h.server.Handler())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	base := "http://" + ln.Addr().String()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+h.staff.Token)
	stream, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	sse := bufio.NewReader(stream.Body)
	if line, err := sse.ReadString('\n'); err != nil || !strings.HasPrefix(line, ":") {
		t.Fatalf("event stream opens with %q, %v", line, err)
	}

	for _, half := range []struct{ name, text string }{
		{"body", "POST /api/v1/auth/login HTTP/1.1\r\nHost: fabgate\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"email\":"},
		{"headers", "POST /api/v1/auth/login HTTP/1.1\r\nHost: fabgate\r\nContent-Ty"},
	} {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(conn, half.text); err != nil {
			t.Fatal(err)
		}
		// Generous: the server must hang up long before this.
		conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, err = io.Copy(io.Discard, conn)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("a request with half its %s sent was still open after 20 s", half.name)
		}
		conn.Close()
	}

	// Both connections above were cut by deadlines set after the stream's,
	// so the stream's read deadline has passed too: it must still stream.
	h.server.hub.Publish(events.Event{Type: "test_ping", At: apiStart, Data: map[string]string{"n": "1"}})
	got := make(chan string, 1)
	go func() {
		var block strings.Builder
		for {
			line, err := sse.ReadString('\n')
			block.WriteString(line)
			if err != nil || strings.HasPrefix(line, "data:") {
				got <- block.String()
				return
			}
		}
	}()
	select {
	case b := <-got:
		if !strings.Contains(b, "event: test_ping") {
			t.Fatalf("after the read deadline the stream gave %q, want the event", b)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no event on the stream within 20 s")
	}
}

// FuzzDuplicateKeys: the duplicate-key check never fails on a document
// encoding/json wrote (no duplicates there), and what it refuses names a
// key that is there twice.
func FuzzDuplicateKeys(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":1,"a":2}`, `{"a":{"b":[{"c":1,"c":2}]}}`, `[{"x":null},{"x":true}]`, `"s"`, `{"":1,"":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return
		}
		var v any
		if err := json.Unmarshal(data, &v); err != nil {
			return // nesting deeper than encoding/json takes
		}
		if err := checkDuplicateKeys(data); err != nil {
			msg := fablab.ErrorMessage(err)
			if !strings.Contains(msg, "is given twice") {
				t.Fatalf("%q: refused with %q", data, msg)
			}
		}
		again, err := json.Marshal(v)
		if err != nil {
			return
		}
		if err := checkDuplicateKeys(again); err != nil {
			t.Fatalf("%q (from %q) refused: %v", again, data, err)
		}
	})
}
