package httpapi

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
)

// apiRouteCase says who may call one route and how to build a request that
// succeeds for a caller who may.
type apiRouteCase struct {
	min  fablab.Role // lowest role admitted; "" for public routes
	want int         // status of the request when admitted
	// prep builds the request for caller as (nil for anonymous). It need not
	// set the token: the caller's bearer token is used when it leaves it empty.
	prep func(t *testing.T, h *apiHarness, as *apiAccount) apiReq
}

// apiGet is a prep for a GET of a fixed path.
func apiGet(path func(h *apiHarness) string) func(*testing.T, *apiHarness, *apiAccount) apiReq {
	return func(_ *testing.T, h *apiHarness, _ *apiAccount) apiReq {
		return apiReq{method: "GET", path: path(h)}
	}
}

// apiSelfOr returns as's own id for makers and alice's for everyone else, so
// that every admitted caller may see the member addressed.
func apiSelfOr(h *apiHarness, as *apiAccount) fablab.ID {
	if as != nil && as.Role == fablab.RoleMaker {
		return as.ID
	}
	return h.alice.ID
}

// apiRouteTable has one case per route under /api/v1. TestAPIRouteRoleTable
// fails for a route without a case, so a new route must say who may call it.
var apiRouteTable = map[string]apiRouteCase{
	"GET /api/v1/openapi.json": {"", http.StatusOK, apiGet(func(*apiHarness) string { return "/api/v1/openapi.json" })},
	"POST /api/v1/auth/login": {"", http.StatusOK, func(_ *testing.T, h *apiHarness, _ *apiAccount) apiReq {
		return apiReq{method: "POST", path: "/api/v1/auth/login", body: map[string]string{"email": h.bob.Email, "password": h.bob.Password}}
	}},
	"POST /api/v1/auth/reset-password": {"", http.StatusNoContent, func(t *testing.T, h *apiHarness, _ *apiAccount) apiReq {
		token := auth.NewToken()
		if err := h.store.PutPasswordReset(t.Context(), auth.TokenKey(token), bolt.PasswordReset{MemberID: h.bob.ID, ExpiresAt: apiStart.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		return apiReq{method: "POST", path: "/api/v1/auth/reset-password", body: map[string]string{"token": token, "password": h.bob.Password}}
	}},
	"POST /api/v1/auth/forgot-password": {"", http.StatusAccepted, func(_ *testing.T, h *apiHarness, _ *apiAccount) apiReq {
		// An address of its own each time: the requests per account are throttled.
		return apiReq{method: "POST", path: "/api/v1/auth/forgot-password", body: map[string]string{"email": fmt.Sprintf("someone-%d@fablab.test", h.uniq())}}
	}},
	"GET /api/v1/outbox": {fablab.RoleStaff, http.StatusOK, apiGet(func(*apiHarness) string { return "/api/v1/outbox" })},
	"GET /api/v1/jobs":   {fablab.RoleStaff, http.StatusOK, apiGet(func(*apiHarness) string { return "/api/v1/jobs" })},
	"POST /api/v1/jobs/:name/run": {fablab.RoleAdmin, http.StatusOK, func(*testing.T, *apiHarness, *apiAccount) apiReq {
		return apiReq{method: "POST", path: "/api/v1/jobs/allowlists/run"}
	}},
	"GET /api/v1/reports/usage": {fablab.RoleStaff, http.StatusOK, apiGet(func(*apiHarness) string {
		return "/api/v1/reports/usage?from=2026-03-01&to=2026-04-01&by=member"
	})},
	"GET /api/v1/reports/revenue": {fablab.RoleStaff, http.StatusOK, apiGet(func(*apiHarness) string {
		return "/api/v1/reports/revenue?from=2026-03-01T00:00:00%2B01:00&to=2026-04-01"
	})},
	"POST /api/v1/auth/logout": {fablab.RoleMaker, http.StatusNoContent, func(t *testing.T, h *apiHarness, as *apiAccount) apiReq {
		rq := apiReq{method: "POST", path: "/api/v1/auth/logout"}
		if as != nil { // a session of its own, so that the harness's token survives
			rq.token, _ = h.login(t, as)
		}
		return rq
	}},
	"GET /api/v1/me": {fablab.RoleMaker, http.StatusOK, apiGet(func(*apiHarness) string { return "/api/v1/me" })},
	"POST /api/v1/me/password": {fablab.RoleMaker, http.StatusOK, func(t *testing.T, h *apiHarness, as *apiAccount) apiReq {
		rq := apiReq{method: "POST", path: "/api/v1/me/password", body: map[string]string{"current_password": "old password 1", "new_password": "new password 2"}}
		if as != nil { // an account of its own: the change ends the member's sessions
			acc := apiSeedMember(t, h.store, fmt.Sprintf("pw%d@fablab.test", h.uniq()), "Pat Password", as.Role, "staff", "old password 1")
			rq.token, _ = h.login(t, acc)
		}
		return rq
	}},

	"GET /api/v1/me/calendar-feed": {fablab.RoleMaker, http.StatusOK, apiGet(func(*apiHarness) string { return "/api/v1/me/calendar-feed" })},
	"POST /api/v1/me/calendar-feed": {fablab.RoleMaker, http.StatusCreated, func(*testing.T, *apiHarness, *apiAccount) apiReq {
		return apiReq{method: "POST", path: "/api/v1/me/calendar-feed"}
	}},
	"DELETE /api/v1/me/calendar-feed": {fablab.RoleMaker, http.StatusNoContent, func(*testing.T, *apiHarness, *apiAccount) apiReq {
		return apiReq{method: "DELETE", path: "/api/v1/me/calendar-feed"}
	}},

	"GET /api/v1/machines":        {fablab.RoleMaker, http.StatusOK, apiGet(func(*apiHarness) string { return "/api/v1/machines" })},
	"GET /api/v1/machines/status": {fablab.RoleMaker, http.StatusOK, apiGet(func(*apiHarness) string { return "/api/v1/machines/status" })},
	"GET /api/v1/slots":           {fablab.RoleMaker, http.StatusOK, apiGet(func(*apiHarness) string { return "/api/v1/slots?kind=laser-cutter&minutes=60" })},
	"POST /api/v1/machines": {fablab.RoleStaff, http.StatusCreated, func(_ *testing.T, h *apiHarness, _ *apiAccount) apiReq {
		return apiReq{method: "POST", path: "/api/v1/machines", body: map[string]any{"name": fmt.Sprintf("Router %d", h.uniq()), "kind": "cnc"}}
	}},
	"GET /api/v1/machines/:id": {fablab.RoleMaker, http.StatusOK, apiGet(func(h *apiHarness) string { return "/api/v1/machines/" + h.printer.ID.String() })},
	"PATCH /api/v1/machines/:id": {fablab.RoleStaff, http.StatusOK, func(_ *testing.T, h *apiHarness, _ *apiAccount) apiReq {
		return apiReq{method: "PATCH", path: "/api/v1/machines/" + h.printer.ID.String(), body: map[string]any{"description": "Prusa MK4"}}
	}},
	"GET /api/v1/machines/:id/availability": {fablab.RoleMaker, http.StatusOK, apiGet(func(h *apiHarness) string {
		return "/api/v1/machines/" + h.laser.ID.String() + "/availability"
	})},

	"GET /api/v1/bookings": {fablab.RoleMaker, http.StatusOK, apiGet(func(*apiHarness) string { return "/api/v1/bookings" })},
	"POST /api/v1/bookings": {fablab.RoleMaker, http.StatusCreated, func(_ *testing.T, h *apiHarness, _ *apiAccount) apiReq {
		start := h.nextSlot(apiAt(1, 9, 0)) // a fresh half hour each time
		return apiReq{method: "POST", path: "/api/v1/bookings", body: apiBookingBody(h.printer.ID, start, start.Add(apiMinutes(30)))}
	}},
	"GET /api/v1/bookings/:id": {fablab.RoleMaker, http.StatusOK, func(t *testing.T, h *apiHarness, _ *apiAccount) apiReq {
		start := apiAt(2, 9, 0).Add(apiMinutes(30 * int(h.uniq())))
		b := h.seedBooking(t, h.laser.ID, h.alice, start, start.Add(apiMinutes(30)))
		return apiReq{method: "GET", path: "/api/v1/bookings/" + b.ID.String()}
	}},
	"DELETE /api/v1/bookings/:id": {fablab.RoleMaker, http.StatusOK, func(t *testing.T, h *apiHarness, _ *apiAccount) apiReq {
		start := apiAt(3, 9, 0).Add(apiMinutes(30 * int(h.uniq())))
		b := h.seedBooking(t, h.laser.ID, h.alice, start, start.Add(apiMinutes(30)))
		return apiReq{method: "DELETE", path: "/api/v1/bookings/" + b.ID.String()}
	}},

	"GET /api/v1/members": {fablab.RoleStaff, http.StatusOK, apiGet(func(*apiHarness) string { return "/api/v1/members" })},
	"POST /api/v1/members": {fablab.RoleStaff, http.StatusCreated, func(_ *testing.T, h *apiHarness, _ *apiAccount) apiReq {
		n := h.uniq()
		return apiReq{method: "POST", path: "/api/v1/members", body: map[string]any{
			"email": fmt.Sprintf("new%d@fablab.test", n), "name": "New Maker", "role": "maker", "group": "student", "password": "a long password"}}
	}},
	"GET /api/v1/members/:id": {fablab.RoleMaker, http.StatusOK, func(_ *testing.T, h *apiHarness, as *apiAccount) apiReq {
		return apiReq{method: "GET", path: "/api/v1/members/" + apiSelfOr(h, as).String()}
	}},
	"PATCH /api/v1/members/:id": {fablab.RoleStaff, http.StatusOK, func(_ *testing.T, h *apiHarness, _ *apiAccount) apiReq {
		return apiReq{method: "PATCH", path: "/api/v1/members/" + h.bob.ID.String(), body: map[string]any{"name": "Bob Builder"}}
	}},
	"GET /api/v1/members/:id/badges": {fablab.RoleStaff, http.StatusOK, apiGet(func(h *apiHarness) string { return "/api/v1/members/" + h.bob.ID.String() + "/badges" })},
	"POST /api/v1/members/:id/badges": {fablab.RoleStaff, http.StatusCreated, func(_ *testing.T, h *apiHarness, _ *apiAccount) apiReq {
		return apiReq{method: "POST", path: "/api/v1/members/" + h.bob.ID.String() + "/badges", body: map[string]any{"uid": fmt.Sprintf("04:A2:%04X", h.uniq())}}
	}},
	"DELETE /api/v1/members/:id/badges/:hash": {fablab.RoleStaff, http.StatusNoContent, func(t *testing.T, h *apiHarness, _ *apiAccount) apiReq {
		b, err := h.store.AddBadge(t.Context(), fablab.Badge{Hash: fmt.Sprintf("%064x", h.uniq()), MemberID: h.bob.ID})
		if err != nil {
			t.Fatal(err)
		}
		return apiReq{method: "DELETE", path: "/api/v1/members/" + h.bob.ID.String() + "/badges/" + b.Hash}
	}},
	"POST /api/v1/members/:id/password-reset": {fablab.RoleStaff, http.StatusCreated, func(_ *testing.T, h *apiHarness, _ *apiAccount) apiReq {
		return apiReq{method: "POST", path: "/api/v1/members/" + h.bob.ID.String() + "/password-reset"}
	}},
	"GET /api/v1/members/:id/qualifications": {fablab.RoleMaker, http.StatusOK, func(_ *testing.T, h *apiHarness, as *apiAccount) apiReq {
		return apiReq{method: "GET", path: "/api/v1/members/" + apiSelfOr(h, as).String() + "/qualifications"}
	}},
	"POST /api/v1/members/:id/qualifications": {fablab.RoleStaff, http.StatusCreated, func(_ *testing.T, h *apiHarness, _ *apiAccount) apiReq {
		return apiReq{method: "POST", path: "/api/v1/members/" + h.bob.ID.String() + "/qualifications",
			body: map[string]any{"training_id": h.training.ID.String(), "expires_at": apiAt(365, 0, 0).Format(time.RFC3339)}}
	}},
	"DELETE /api/v1/members/:id/qualifications/:training_id": {fablab.RoleStaff, http.StatusNoContent, func(t *testing.T, h *apiHarness, _ *apiAccount) apiReq {
		tr, err := h.store.CreateTraining(t.Context(), fablab.Training{Name: fmt.Sprintf("Revoked %d", h.uniq())})
		if err == nil {
			_, err = h.store.GrantQualification(t.Context(), fablab.Qualification{MemberID: h.bob.ID, TrainingID: tr.ID, GrantedBy: h.admin.ID})
		}
		if err != nil {
			t.Fatal(err)
		}
		return apiReq{method: "DELETE", path: "/api/v1/members/" + h.bob.ID.String() + "/qualifications/" + tr.ID.String()}
	}},

	"GET /api/v1/trainings": {fablab.RoleMaker, http.StatusOK, apiGet(func(*apiHarness) string { return "/api/v1/trainings" })},
	"POST /api/v1/trainings": {fablab.RoleStaff, http.StatusCreated, func(_ *testing.T, h *apiHarness, _ *apiAccount) apiReq {
		return apiReq{method: "POST", path: "/api/v1/trainings", body: map[string]any{"name": fmt.Sprintf("CNC basics %d", h.uniq()), "validity_months": 24}}
	}},
	"GET /api/v1/organisations": {fablab.RoleStaff, http.StatusOK, apiGet(func(*apiHarness) string { return "/api/v1/organisations" })},
	"POST /api/v1/organisations": {fablab.RoleStaff, http.StatusCreated, func(_ *testing.T, h *apiHarness, _ *apiAccount) apiReq {
		return apiReq{method: "POST", path: "/api/v1/organisations", body: map[string]any{"name": fmt.Sprintf("Acme %d", h.uniq()), "group": "sme"}}
	}},
	"GET /api/v1/tariffs": {fablab.RoleMaker, http.StatusOK, apiGet(func(*apiHarness) string { return "/api/v1/tariffs" })},
	"PUT /api/v1/tariffs": {fablab.RoleAdmin, http.StatusOK, func(*testing.T, *apiHarness, *apiAccount) apiReq {
		return apiReq{method: "PUT", path: "/api/v1/tariffs", body: map[string]any{"groups": fablab.DefaultTariffGroups()}}
	}},
	"GET /api/v1/settings": {fablab.RoleMaker, http.StatusOK, apiGet(func(*apiHarness) string { return "/api/v1/settings" })},
	"PATCH /api/v1/settings": {fablab.RoleAdmin, http.StatusOK, func(*testing.T, *apiHarness, *apiAccount) apiReq {
		return apiReq{method: "PATCH", path: "/api/v1/settings", body: map[string]any{"vat_mention": "TVA non applicable, art. 293 B du CGI"}}
	}},

	"POST /api/v1/backup": {fablab.RoleAdmin, http.StatusOK, func(*testing.T, *apiHarness, *apiAccount) apiReq {
		return apiReq{method: "POST", path: "/api/v1/backup"}
	}},

	"GET /api/v1/devices": {fablab.RoleAdmin, http.StatusOK, apiGet(func(*apiHarness) string { return "/api/v1/devices" })},
	"POST /api/v1/devices": {fablab.RoleAdmin, http.StatusCreated, func(_ *testing.T, h *apiHarness, _ *apiAccount) apiReq {
		return apiReq{method: "POST", path: "/api/v1/devices", body: map[string]any{"id": fmt.Sprintf("reader-%d", h.uniq()), "kind": "bridge"}}
	}},
	"GET /api/v1/devices/:id": {fablab.RoleAdmin, http.StatusOK, func(t *testing.T, h *apiHarness, _ *apiAccount) apiReq {
		d := h.seedDevice(t, fmt.Sprintf("reader-%d", h.uniq()), 0)
		return apiReq{method: "GET", path: "/api/v1/devices/" + d.ID}
	}},
	"PATCH /api/v1/devices/:id": {fablab.RoleAdmin, http.StatusOK, func(t *testing.T, h *apiHarness, _ *apiAccount) apiReq {
		d := h.seedDevice(t, fmt.Sprintf("reader-%d", h.uniq()), 0)
		return apiReq{method: "PATCH", path: "/api/v1/devices/" + d.ID, body: map[string]any{"kind": "tasmota"}}
	}},
	"POST /api/v1/devices/:id/secret": {fablab.RoleAdmin, http.StatusOK, func(t *testing.T, h *apiHarness, _ *apiAccount) apiReq {
		d := h.seedDevice(t, fmt.Sprintf("reader-%d", h.uniq()), 0)
		return apiReq{method: "POST", path: "/api/v1/devices/" + d.ID + "/secret"}
	}},
	"POST /api/v1/devices/:id/disable": {fablab.RoleAdmin, http.StatusOK, func(t *testing.T, h *apiHarness, _ *apiAccount) apiReq {
		d := h.seedDevice(t, fmt.Sprintf("reader-%d", h.uniq()), 0)
		return apiReq{method: "POST", path: "/api/v1/devices/" + d.ID + "/disable"}
	}},
	"POST /api/v1/devices/:id/enable": {fablab.RoleAdmin, http.StatusOK, func(t *testing.T, h *apiHarness, _ *apiAccount) apiReq {
		d := h.seedDevice(t, fmt.Sprintf("reader-%d", h.uniq()), 0)
		return apiReq{method: "POST", path: "/api/v1/devices/" + d.ID + "/enable"}
	}},
	"DELETE /api/v1/devices/:id": {fablab.RoleAdmin, http.StatusNoContent, func(t *testing.T, h *apiHarness, _ *apiAccount) apiReq {
		d := h.seedDevice(t, fmt.Sprintf("reader-%d", h.uniq()), 0)
		return apiReq{method: "DELETE", path: "/api/v1/devices/" + d.ID}
	}},
	"POST /api/v1/badge-key/rotate": {fablab.RoleAdmin, http.StatusOK, func(t *testing.T, h *apiHarness, _ *apiAccount) apiReq {
		return apiReq{method: "POST", path: "/api/v1/badge-key/rotate"}
	}},
	// A device bound to no machine: the tap is decided (deny no_machine) and
	// changes nothing.
	"POST /api/v1/devices/:id/tap": {fablab.RoleStaff, http.StatusOK, func(t *testing.T, h *apiHarness, _ *apiAccount) apiReq {
		d := h.seedDevice(t, fmt.Sprintf("reader-%d", h.uniq()), 0)
		return apiReq{method: "POST", path: "/api/v1/devices/" + d.ID + "/tap", body: map[string]any{"uid": "04:A2:B3:C4"}}
	}},
	"GET /api/v1/sessions": {fablab.RoleMaker, http.StatusOK, apiGet(func(*apiHarness) string { return "/api/v1/sessions" })},
	"POST /api/v1/sessions/:id/end": {fablab.RoleStaff, http.StatusOK, func(t *testing.T, h *apiHarness, _ *apiAccount) apiReq {
		sess := h.openSession(t, h.alice)
		return apiReq{method: "POST", path: "/api/v1/sessions/" + sess.ID.String() + "/end"}
	}},
	"GET /api/v1/taps/unknown": {fablab.RoleStaff, http.StatusOK, apiGet(func(*apiHarness) string { return "/api/v1/taps/unknown" })},
	"GET /api/v1/audit":        {fablab.RoleStaff, http.StatusOK, apiGet(func(*apiHarness) string { return "/api/v1/audit" })},
	"GET /api/v1/events":       {fablab.RoleMaker, http.StatusOK, apiGet(func(*apiHarness) string { return "/api/v1/events" })},

	"GET /api/v1/charges":    {fablab.RoleMaker, http.StatusOK, apiGet(func(*apiHarness) string { return "/api/v1/charges" })},
	"GET /api/v1/me/balance": {fablab.RoleMaker, http.StatusOK, apiGet(func(*apiHarness) string { return "/api/v1/me/balance" })},
	"GET /api/v1/balances/:payer": {fablab.RoleStaff, http.StatusOK, apiGet(func(h *apiHarness) string {
		return "/api/v1/balances/member-" + h.alice.ID.String()
	})},
	"GET /api/v1/invoices": {fablab.RoleMaker, http.StatusOK, apiGet(func(*apiHarness) string { return "/api/v1/invoices" })},
	"GET /api/v1/invoices/:id": {fablab.RoleMaker, http.StatusOK, func(t *testing.T, h *apiHarness, as *apiAccount) apiReq {
		inv := h.seedInvoice(t, apiSelfOrAccount(h, as))
		return apiReq{method: "GET", path: "/api/v1/invoices/" + inv.ID.String()}
	}},
	"GET /api/v1/invoices/:id/pdf": {fablab.RoleMaker, http.StatusOK, func(t *testing.T, h *apiHarness, as *apiAccount) apiReq {
		inv := h.seedInvoice(t, apiSelfOrAccount(h, as))
		return apiReq{method: "GET", path: "/api/v1/invoices/" + inv.ID.String() + "/pdf"}
	}},
	"GET /api/v1/invoices/:id/xml": {fablab.RoleMaker, http.StatusOK, func(t *testing.T, h *apiHarness, as *apiAccount) apiReq {
		inv := h.seedInvoice(t, apiSelfOrAccount(h, as))
		return apiReq{method: "GET", path: "/api/v1/invoices/" + inv.ID.String() + "/xml"}
	}},
	"POST /api/v1/invoices/run": {fablab.RoleStaff, http.StatusCreated, func(t *testing.T, h *apiHarness, _ *apiAccount) apiReq {
		p := h.seedUninvoiced(t, h.alice)
		return apiReq{method: "POST", path: "/api/v1/invoices/run?period=" + p.String()}
	}},
	"POST /api/v1/invoices/:id/credit-notes": {fablab.RoleStaff, http.StatusCreated, func(t *testing.T, h *apiHarness, _ *apiAccount) apiReq {
		inv := h.seedInvoice(t, h.alice)
		return apiReq{method: "POST", path: "/api/v1/invoices/" + inv.ID.String() + "/credit-notes", body: map[string]any{"amount_cents": 100, "reason": "goodwill"}}
	}},
	"POST /api/v1/invoices/:id/payments": {fablab.RoleStaff, http.StatusCreated, func(t *testing.T, h *apiHarness, _ *apiAccount) apiReq {
		inv := h.seedInvoice(t, h.alice)
		return apiReq{method: "POST", path: "/api/v1/invoices/" + inv.ID.String() + "/payments", body: map[string]any{"paid_on": "2026-03-02", "method": "transfer"}}
	}},
	"POST /api/v1/charges/:id/corrections": {fablab.RoleStaff, http.StatusCreated, func(t *testing.T, h *apiHarness, _ *apiAccount) apiReq {
		inv := h.seedInvoice(t, h.alice)
		return apiReq{method: "POST", path: "/api/v1/charges/" + inv.Lines[0].ChargeID.String() + "/corrections", body: map[string]any{"amount_cents": -100, "note": "wrong machine"}}
	}},
}

// apiSelfOrAccount is as for makers and alice for everyone else (see apiSelfOr).
func apiSelfOrAccount(h *apiHarness, as *apiAccount) *apiAccount {
	if as != nil && as.Role == fablab.RoleMaker {
		return as
	}
	return h.alice
}

// TestAPIRouteRoleTable calls every route under /api/v1 as anonymous, maker,
// staff and admin: 401 without credentials, 403 forbidden below the route's
// role, success otherwise. The server runs the access side with simulated
// taps, and the event stream is read up to its first block.
func TestAPIRouteRoleTable(t *testing.T) {
	h := newAPIAccessHarness(t, true)
	callers := []struct {
		name string
		as   *apiAccount
	}{{"anonymous", nil}, {"maker", h.alice}, {"staff", h.staff}, {"admin", h.admin}}

	served := map[string]bool{}
	for _, r := range h.server.Routes() {
		if !strings.HasPrefix(r.Path, "/api/v1/") {
			continue
		}
		key := r.Method + " " + r.Path
		served[key] = true
		tc, ok := apiRouteTable[key]
		if !ok {
			t.Errorf("route %s has no case in apiRouteTable: say who may call it", key)
			continue
		}
		t.Run(strings.ReplaceAll(key, "/", "_"), func(t *testing.T) {
			for _, c := range callers {
				t.Run(c.name, func(t *testing.T) {
					rq := tc.prep(t, h, c.as)
					if rq.token == "" && c.as != nil {
						rq.token = c.as.Token
					}
					res := h.sendCut(t, rq)
					switch {
					case tc.min == "":
						res.want(t, tc.want, "")
					case c.as == nil:
						res.want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)
					case !c.as.Role.AtLeast(tc.min):
						res.want(t, http.StatusForbidden, fablab.EFORBIDDEN)
					default:
						res.want(t, tc.want, "")
						apiWantSuccessBody(t, key, res)
					}
				})
			}
		})
	}
	for key := range apiRouteTable {
		if !served[key] {
			t.Errorf("apiRouteTable has a case for %s, which is not a route", key)
		}
	}
}

// apiWantSuccessBody checks the body of a successful response: JSON except
// for the backup (a bbolt file), the event stream and 204s.
func apiWantSuccessBody(t *testing.T, key string, res apiResp) {
	t.Helper()
	ct := res.header.Get("Content-Type")
	switch {
	case res.status == http.StatusNoContent:
		if len(res.body) != 0 {
			t.Errorf("%s: 204 with a body %q", key, apiShort(res.body))
		}
	case key == "POST /api/v1/backup":
		if ct != "application/octet-stream" || len(res.body) == 0 {
			t.Errorf("%s: Content-Type %q, %d bytes", key, ct, len(res.body))
		}
	case key == "GET /api/v1/events":
		if ct != "text/event-stream" || !strings.HasPrefix(string(res.body), ":") {
			t.Errorf("%s: Content-Type %q, first block %q; want an event stream opening with a comment", key, ct, res.body)
		}
	case key == "GET /api/v1/invoices/:id/pdf":
		if ct != "application/pdf" || !bytes.HasPrefix(res.body, []byte("%PDF-")) {
			t.Errorf("%s: Content-Type %q, body %q", key, ct, apiShort(res.body))
		}
	case key == "GET /api/v1/invoices/:id/xml":
		if ct != "application/xml" || !bytes.Contains(res.body, []byte("CrossIndustryInvoice")) {
			t.Errorf("%s: Content-Type %q, body %q", key, ct, apiShort(res.body))
		}
	case !strings.HasPrefix(ct, "application/json"):
		t.Errorf("%s: Content-Type %q, want JSON", key, ct)
	}
}

// TestAPIAuthorizationHeader checks malformed credentials: 401, never a pass.
func TestAPIAuthorizationHeader(t *testing.T) {
	h := newAPIHarness(t)
	for _, tc := range []struct{ name, header string }{
		{"basic scheme", "Basic YWxpY2U6cGFzc3dvcmQ="},
		{"bearer without token", "Bearer"},
		{"bearer with blanks only", "Bearer   "},
		{"unknown token", "Bearer not-a-token"},
		{"token of another scheme", "Token " + h.alice.Token},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := h.send(t, apiReq{method: "GET", path: "/api/v1/me", header: http.Header{"Authorization": {tc.header}}})
			res.want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)
		})
	}
	t.Run("lower-case scheme", func(t *testing.T) {
		res := h.send(t, apiReq{method: "GET", path: "/api/v1/me", header: http.Header{"Authorization": {"bearer " + h.alice.Token}}})
		res.want(t, http.StatusOK, "")
	})
}

// TestAPIStaffAdminBoundary extends the role table to the rule inside the
// staff routes: staff act on makers; admin and staff accounts (their own
// included), roles, prices, tariff groups and device bindings are the
// admins'. Each refusal writes nothing; each case then succeeds for an
// admin, and the staff's ordinary work on makers and machines still does.
func TestAPIStaffAdminBoundary(t *testing.T) {
	h := newAPIAccessHarness(t, false)
	h.seedDevice(t, "laser-reader", h.laser.ID)
	laser, printer := "/api/v1/machines/"+h.laser.ID.String(), "/api/v1/machines/"+h.printer.ID.String()
	badges := func(a *apiAccount) string { return "/api/v1/members/" + a.ID.String() + "/badges" }
	quals := func(a *apiAccount) string { return "/api/v1/members/" + a.ID.String() + "/qualifications" }
	adminBadge, err := h.store.AddBadge(t.Context(), fablab.Badge{Hash: fmt.Sprintf("%064x", 1), MemberID: h.admin.ID})
	if err != nil {
		t.Fatal(err)
	}
	qual := map[string]any{"training_id": h.training.ID.String()}
	adminSlot := h.nextSlot(apiAt(3, 10, 0))
	adminBooking := h.seedBooking(t, h.printer.ID, h.admin, adminSlot, adminSlot.Add(30*time.Minute))
	forAdmin := apiBookingBody(h.printer.ID, adminSlot.Add(time.Hour), adminSlot.Add(90*time.Minute))
	forAdmin["member_id"] = h.admin.ID.String()
	team, err := h.store.CreateOrganisation(t.Context(), fablab.Organisation{Name: "Lab team", Group: "staff"})
	if err != nil {
		t.Fatal(err)
	}

	type boundary struct {
		name  string
		rq    apiReq
		admin int // the admin's status for the same request
	}
	cases := []boundary{
		{"move the laser's reader to the printer", apiReq{method: "PATCH", path: printer, body: map[string]any{"device_id": "laser-reader"}}, 0},
		{"unbind the laser's reader", apiReq{method: "PATCH", path: laser, body: map[string]any{"device_id": ""}}, http.StatusOK},
		{"create a machine bound to a device", apiReq{method: "POST", path: "/api/v1/machines", body: map[string]any{"name": "Laser 2", "kind": "laser-cutter", "device_id": "spare-reader"}}, http.StatusCreated},
		{"change prices", apiReq{method: "PATCH", path: printer, body: map[string]any{"prices": map[string]int64{"student": 1}}}, http.StatusOK},
		{"create a machine with prices", apiReq{method: "POST", path: "/api/v1/machines", body: map[string]any{"name": "Router 9", "kind": "cnc", "prices": map[string]int64{"sme": 4000}}}, http.StatusCreated},
		{"change the minimum charge", apiReq{method: "PATCH", path: printer, body: map[string]any{"minimum_charge_cents": 1}}, http.StatusOK},
		{"change the no-show fee", apiReq{method: "PATCH", path: printer, body: map[string]any{"no_show_fee_cents": 1}}, http.StatusOK},
		{"enrol a badge on an admin", apiReq{method: "POST", path: badges(h.admin), body: map[string]any{"uid": "04:AD:01"}}, http.StatusCreated},
		{"enrol a badge on staff", apiReq{method: "POST", path: badges(h.staff), body: map[string]any{"uid": "04:AD:02"}}, http.StatusCreated},
		{"remove an admin's badge", apiReq{method: "DELETE", path: badges(h.admin) + "/" + adminBadge.Hash}, http.StatusNoContent},
		{"qualify oneself", apiReq{method: "POST", path: quals(h.staff), body: qual}, http.StatusCreated},
		{"qualify an admin", apiReq{method: "POST", path: quals(h.admin), body: qual}, http.StatusCreated},
		{"move a maker into the staff group", apiReq{method: "PATCH", path: "/api/v1/members/" + h.bob.ID.String(), body: map[string]any{"group": "staff"}}, http.StatusOK},
		{"create a maker in the staff group", apiReq{method: "POST", path: "/api/v1/members", body: map[string]any{"email": "free@fablab.test", "name": "Free Rider", "group": "staff"}}, http.StatusCreated},
		{"create an organisation in the staff group", apiReq{method: "POST", path: "/api/v1/organisations", body: map[string]any{"name": "Team Ltd", "group": "staff"}}, http.StatusCreated},
		{"move a maker into a staff-group organisation", apiReq{method: "PATCH", path: "/api/v1/members/" + h.bob.ID.String(), body: map[string]any{"organisation_id": team.ID.String()}}, http.StatusOK},
		{"create a maker in a staff-group organisation", apiReq{method: "POST", path: "/api/v1/members", body: map[string]any{"email": "team@fablab.test", "name": "Team Rider", "organisation_id": team.ID.String()}}, http.StatusCreated},
		{"promote a maker", apiReq{method: "PATCH", path: "/api/v1/members/" + h.alice.ID.String(), body: map[string]any{"role": "staff"}}, http.StatusOK},
		{"reset an admin's password", apiReq{method: "POST", path: "/api/v1/members/" + h.admin.ID.String() + "/password-reset"}, http.StatusCreated},
		{"book for an admin", apiReq{method: "POST", path: "/api/v1/bookings", body: forAdmin}, http.StatusCreated},
		{"cancel an admin's booking", apiReq{method: "DELETE", path: "/api/v1/bookings/" + adminBooking.ID.String()}, http.StatusOK},
		{"change an admin's email", apiReq{method: "PATCH", path: "/api/v1/members/" + h.admin.ID.String(), body: map[string]any{"email": "staff-owned@fablab.test"}}, http.StatusOK},
	}
	var refusals []apiRefusal
	for _, c := range cases {
		refusals = append(refusals, apiRefusal{c.name, h.staff, c.rq, http.StatusForbidden, fablab.EFORBIDDEN})
	}
	t.Run("staff", func(t *testing.T) { apiCheckRefusals(t, h, refusals, nil) })
	t.Run("admin", func(t *testing.T) {
		for _, c := range cases {
			if c.admin == 0 {
				continue // the laser's reader is bound once; "unbind" covers the admin
			}
			rq := c.rq
			rq.token = h.admin.Token
			t.Run(c.name, func(t *testing.T) { h.send(t, rq).want(t, c.admin, "") })
		}
	})
	t.Run("staff on makers and machines", func(t *testing.T) {
		carol := apiSeedMember(t, h.store, "carol@fablab.test", "Carol Maker", fablab.RoleMaker, "student", "")
		for _, rq := range []apiReq{
			{method: "POST", path: badges(carol), body: map[string]any{"uid": "04:B0:01"}},
			{method: "POST", path: quals(carol), body: qual},
			{method: "PATCH", path: "/api/v1/members/" + carol.ID.String(), body: map[string]any{"group": "academic", "role": "maker"}},
			{method: "POST", path: "/api/v1/members/" + carol.ID.String() + "/password-reset"},
			// Values as they are count as no change.
			{method: "PATCH", path: printer, body: map[string]any{"description": "Prusa", "device_id": "", "prices": map[string]int64{"student": 1}, "no_show_fee_cents": 1}},
		} {
			rq.token = h.staff.Token
			if res := h.send(t, rq); res.status >= 300 {
				t.Errorf("staff %s %s: %d %s", rq.method, rq.path, res.status, apiShort(res.body))
			}
		}
	})
}
