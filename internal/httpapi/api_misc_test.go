package httpapi

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
)

// TestAPIHealthz: 200 and JSON while the store answers.
func TestAPIHealthz(t *testing.T) {
	h := newAPIHarness(t)
	res := h.do(t, "GET", "/healthz", "", nil)
	res.want(t, http.StatusOK, "")
	if ct := res.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	var body map[string]string
	res.decode(t, &body)
	if body["status"] != "ok" || body["version"] != "test" {
		t.Errorf("healthz %v", body)
	}
}

// TestAPIMetrics: requests are counted by route, method and status.
func TestAPIMetrics(t *testing.T) {
	h := newAPIHarness(t)
	h.reconfigure(t, func(c *Config) { c.MetricsToken = apiMetricsToken })
	for range 4 {
		h.login(t, h.alice)
	}
	h.do(t, "GET", "/healthz", "", nil).want(t, http.StatusOK, "")
	h.do(t, "GET", "/api/v1/machines/999", h.alice.Token, nil).want(t, http.StatusNotFound, fablab.ENOTFOUND)
	h.do(t, "GET", "/no/such/page", "", nil).want(t, http.StatusNotFound, fablab.ENOTFOUND)
	text := h.scrape(t)
	for _, want := range []string{
		"# TYPE fabgate_http_requests_total counter",
		`fabgate_http_requests_total{method="GET",route="/healthz",status="200"} 1`,
		`fabgate_http_requests_total{method="GET",route="/api/v1/machines/:id",status="404"} 1`,
		`fabgate_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`fabgate_http_requests_total{method="POST",route="/api/v1/auth/login",status="200"} 4`,
		"fabgate_http_request_duration_seconds_bucket",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestAPILandingPage: the home page is HTML and names the lab.
func TestAPILandingPage(t *testing.T) {
	h := newAPIHarness(t)
	for _, tc := range []struct{ lang, want string }{
		{"", "Réservez les machines"},
		{"en-GB,en;q=0.8", "badge in at the machine"},
	} {
		rq := apiReq{method: "GET", path: "/"}
		if tc.lang != "" {
			rq.header = http.Header{"Accept-Language": {tc.lang}}
		}
		res := h.send(t, rq)
		res.want(t, http.StatusOK, "")
		if ct := res.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("Content-Type %q", ct)
		}
		page := string(res.body)
		for _, want := range []string{apiLabName, tc.want, h.laser.Name, h.printer.Name} {
			if !strings.Contains(page, want) {
				t.Errorf("Accept-Language %q: the page does not mention %q", tc.lang, want)
			}
		}
	}
}

// TestAPIUnknownRoutesAndMethods: 404 and 405 are problems too.
func TestAPIUnknownRoutesAndMethods(t *testing.T) {
	h := newAPIHarness(t)
	for _, tc := range []struct {
		method, path string
		token        string
		status       int
		code         string
	}{
		{"GET", "/api/v1/nothing", "", 404, fablab.ENOTFOUND},
		{"GET", "/api/v1/nothing", h.admin.Token, 404, fablab.ENOTFOUND},
		{"GET", "/api/v2/machines", "", 404, fablab.ENOTFOUND},
		{"GET", "/nothing.html", "", 404, fablab.ENOTFOUND},
		{"POST", "/api/v1/machines/1/availability", h.admin.Token, 405, "method_not_allowed"},
		{"PUT", "/api/v1/bookings", h.alice.Token, 405, "method_not_allowed"},
		{"DELETE", "/api/v1/members", "", 405, "method_not_allowed"},
		{"GET", "/api/v1/auth/login", "", 405, "method_not_allowed"},
		{"POST", "/healthz", "", 405, "method_not_allowed"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			res := h.do(t, tc.method, tc.path, tc.token, nil)
			res.want(t, tc.status, tc.code)
			if tc.status == 405 && res.header.Get("Allow") == "" {
				t.Errorf("405 without Allow")
			}
		})
	}
}

// TestAPIBackup: the admin's hot backup is a bbolt file that opens and holds
// the data.
func TestAPIBackup(t *testing.T) {
	h := newAPIHarness(t)
	res := h.do(t, "POST", "/api/v1/backup", h.admin.Token, nil)
	res.want(t, http.StatusOK, "")
	if ct := res.header.Get("Content-Type"); ct != "application/octet-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	if cd := res.header.Get("Content-Disposition"); !strings.HasPrefix(cd, `attachment; filename="fabgate-20260302-070000.db"`) {
		t.Errorf("Content-Disposition %q", cd)
	}
	if n, err := strconv.Atoi(res.header.Get("Content-Length")); err != nil || n != len(res.body) {
		t.Errorf("Content-Length %q for %d bytes", res.header.Get("Content-Length"), len(res.body))
	}

	path := filepath.Join(t.TempDir(), "backup.db")
	if err := os.WriteFile(path, res.body, 0o600); err != nil {
		t.Fatal(err)
	}
	copyStore, err := bolt.Open(path, bolt.Options{Now: h.clock.Now})
	if err != nil {
		t.Fatalf("open the backup: %v", err)
	}
	defer copyStore.Close()
	if err := copyStore.Check(); err != nil {
		t.Errorf("backup consistency: %v", err)
	}
	ctx := context.Background()
	for _, a := range []*apiAccount{h.admin, h.staff, h.alice, h.bob} {
		m, err := copyStore.MemberByEmail(ctx, a.Email)
		if err != nil || m.ID != a.ID || m.Role != a.Role || m.PasswordHash == "" {
			t.Errorf("member %s in the backup: %+v, %v", a.Email, m, err)
		}
	}
	if n, err := copyStore.CountMembers(ctx); err != nil || n != 4 {
		t.Errorf("the backup has %d members (%v), want 4", n, err)
	}
	if m, err := copyStore.Machine(ctx, h.laser.ID); err != nil || m.Name != h.laser.Name {
		t.Errorf("laser in the backup: %+v, %v", m, err)
	}
	if st, err := copyStore.Settings(ctx); err != nil || st.Name != apiLabName {
		t.Errorf("settings in the backup: %+v, %v", st, err)
	}
}
