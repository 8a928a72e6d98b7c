package httpapi

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/fabgate/fabgate/internal/fablab"
)

// pageRouteCase says who may open one route outside /api/v1 (the pages,
// the static files, the health check, the metrics and the calendar feeds)
// and what an admitted request answers.
type pageRouteCase struct {
	// min is the lowest role admitted: "" for routes anyone may open,
	// tokenRoute for routes whose credential is a token of their own (no
	// role opens them without it).
	min    fablab.Role
	status int // the status of an admitted request
	// path is the request's path; with a token route, token makes the
	// admitted request (path and Authorization header).
	path  func(h *apiHarness) string
	token func(t *testing.T, h *apiHarness) (path, authorization string)
}

// tokenRoute marks the routes opened by a token, not by a role.
const tokenRoute fablab.Role = "token"

func pagePath(p string) func(*apiHarness) string { return func(*apiHarness) string { return p } }

// pageRouteTable has one case per route outside /api/v1.
// TestPageRouteRoleTable fails for a route without a case, so a new page
// must say who may open it.
var pageRouteTable = map[string]pageRouteCase{
	"GET /":                 {"", http.StatusOK, pagePath("/"), nil},
	"GET /login":            {"", http.StatusOK, pagePath("/login"), nil},
	"GET /forgot":           {"", http.StatusOK, pagePath("/forgot"), nil},
	"GET /reset":            {"", http.StatusOK, pagePath("/reset?token=x"), nil},
	"GET /lang/:lang":       {"", http.StatusSeeOther, pagePath("/lang/fr"), nil},
	"GET /healthz":          {"", http.StatusOK, pagePath("/healthz"), nil},
	"GET /static/*filepath": {"", http.StatusOK, pagePath("/static/fabgate.css"), nil},
	// HEAD is checked with GET's answer: the same handler serves both.
	"HEAD /static/*filepath": {"", http.StatusOK, pagePath("/static/reports.js"), nil},

	"GET /machines":     {fablab.RoleMaker, http.StatusOK, pagePath("/machines"), nil},
	"GET /machines/:id": {fablab.RoleMaker, http.StatusOK, func(h *apiHarness) string { return "/machines/" + h.laser.ID.String() }, nil},
	"GET /find":         {fablab.RoleMaker, http.StatusOK, pagePath("/find"), nil},
	"GET /bookings":     {fablab.RoleMaker, http.StatusOK, pagePath("/bookings"), nil},
	"GET /sessions":     {fablab.RoleMaker, http.StatusOK, pagePath("/sessions"), nil},
	"GET /charges":      {fablab.RoleMaker, http.StatusOK, pagePath("/charges"), nil},
	"GET /profile":      {fablab.RoleMaker, http.StatusOK, pagePath("/profile"), nil},

	"GET /staff":                    {fablab.RoleStaff, http.StatusOK, pagePath("/staff"), nil},
	"GET /staff/members":            {fablab.RoleStaff, http.StatusOK, pagePath("/staff/members"), nil},
	"GET /staff/members/:id":        {fablab.RoleStaff, http.StatusOK, func(h *apiHarness) string { return "/staff/members/" + h.alice.ID.String() }, nil},
	"GET /staff/trainings":          {fablab.RoleStaff, http.StatusOK, pagePath("/staff/trainings"), nil},
	"GET /staff/machines":           {fablab.RoleStaff, http.StatusOK, pagePath("/staff/machines"), nil},
	"GET /staff/machines/new":       {fablab.RoleStaff, http.StatusOK, pagePath("/staff/machines/new"), nil},
	"GET /staff/machines/labels":    {fablab.RoleStaff, http.StatusOK, pagePath("/staff/machines/labels"), nil},
	"GET /staff/machines/:id":       {fablab.RoleStaff, http.StatusOK, func(h *apiHarness) string { return "/staff/machines/" + h.laser.ID.String() }, nil},
	"GET /staff/machines/:id/label": {fablab.RoleStaff, http.StatusOK, func(h *apiHarness) string { return "/staff/machines/" + h.laser.ID.String() + "/label" }, nil},
	"GET /staff/machines/:id/qr.png": {fablab.RoleStaff, http.StatusOK, func(h *apiHarness) string {
		return "/staff/machines/" + h.laser.ID.String() + "/qr.png"
	}, nil},
	"GET /staff/invoices":     {fablab.RoleStaff, http.StatusOK, pagePath("/staff/invoices"), nil},
	"GET /staff/invoices/:id": {fablab.RoleStaff, http.StatusNotFound, pagePath("/staff/invoices/999999"), nil}, // none yet: admitted to the 404
	"GET /staff/reports":      {fablab.RoleStaff, http.StatusOK, pagePath("/staff/reports"), nil},
	"GET /staff/audit":        {fablab.RoleStaff, http.StatusOK, pagePath("/staff/audit"), nil},
	"GET /staff/outbox":       {fablab.RoleStaff, http.StatusOK, pagePath("/staff/outbox"), nil},

	"GET /admin/devices":  {fablab.RoleAdmin, http.StatusOK, pagePath("/admin/devices"), nil},
	"GET /admin/settings": {fablab.RoleAdmin, http.StatusOK, pagePath("/admin/settings"), nil},

	"GET /metrics": {tokenRoute, http.StatusOK, pagePath("/metrics"), func(t *testing.T, h *apiHarness) (string, string) {
		h.reconfigure(t, func(c *Config) { c.MetricsToken = apiMetricsToken })
		return "/metrics", "Bearer " + apiMetricsToken
	}},
	"GET /feed/:token": {tokenRoute, http.StatusOK, pagePath("/feed/not-a-token.ics"), func(t *testing.T, h *apiHarness) (string, string) {
		u := h.apiFeedURL(t, h.alice)
		return u[strings.Index(u, "/feed/"):], ""
	}},
}

// TestPageRouteRoleTable opens every route outside /api/v1 as anonymous,
// maker, staff and admin, logged in as the pages are (a session cookie):
// the anonymous are sent to log in, coming back; a role below the route's
// gets the 403 page; the admitted get the page. Routes opened by a token
// refuse every role without it and answer with it.
func TestPageRouteRoleTable(t *testing.T) {
	h := newAPIHarness(t)
	clients := map[fablab.Role]*pageClient{}
	for _, a := range []*apiAccount{h.alice, h.staff, h.admin} {
		clients[a.Role] = newPageClient(t, h)
		clients[a.Role].login(a)
	}
	anon := newPageClient(t, h)

	served := map[string]bool{}
	for _, r := range h.server.Routes() {
		if strings.HasPrefix(r.Path, "/api/v1/") {
			continue
		}
		key := r.Method + " " + r.Path
		served[key] = true
		tc, ok := pageRouteTable[key]
		if !ok {
			t.Errorf("route %s has no case in pageRouteTable: say who may open it", key)
			continue
		}
		path := tc.path(h)
		open := func(p *pageClient, path, authorization string) (int, string) {
			t.Helper()
			req, err := http.NewRequest(r.Method, h.srv.URL+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Accept", "text/html")
			if authorization != "" {
				req.Header.Set("Authorization", authorization)
			}
			res, err := p.http.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			return res.StatusCode, res.Header.Get("Location")
		}
		if tc.min == tokenRoute {
			for _, p := range []*pageClient{anon, clients[fablab.RoleMaker], clients[fablab.RoleStaff], clients[fablab.RoleAdmin]} {
				if status, _ := open(p, path, ""); status < 400 {
					t.Errorf("%s without its token: %d, want a refusal", key, status)
				}
			}
			tp, authorization := tc.token(t, h)
			if status, _ := open(anon, tp, authorization); status != tc.status {
				t.Errorf("%s with its token: %d, want %d", key, status, tc.status)
			}
			continue
		}
		for _, role := range []fablab.Role{"", fablab.RoleMaker, fablab.RoleStaff, fablab.RoleAdmin} {
			p := anon
			if role != "" {
				p = clients[role]
			}
			status, loc := open(p, path, "")
			switch {
			case tc.min == "":
				// Public; the landing page sends members on to the machines.
				want := tc.status
				if key == "GET /" && role != "" {
					want = http.StatusSeeOther
				}
				if status != want {
					t.Errorf("%s as %q: %d, want %d", key, role, status, want)
				}
			case role == "":
				if status != http.StatusSeeOther || loc != "/login?next="+url.QueryEscape(path) {
					t.Errorf("%s anonymous: %d to %q, want the login page coming back", key, status, loc)
				}
			case !role.AtLeast(tc.min):
				if status != http.StatusForbidden {
					t.Errorf("%s as %s: %d, want 403", key, role, status)
				}
			default:
				if status != tc.status {
					t.Errorf("%s as %s: %d, want %d", key, role, status, tc.status)
				}
			}
		}
	}
	for key := range pageRouteTable {
		if !served[key] {
			t.Errorf("pageRouteTable has a case for %s, which is not a route", key)
		}
	}
}
