package httpapi

import (
	"strings"
	"testing"
)

func TestAPIScratch(t *testing.T) {
	h := newAPIHarness(t)
	r := h.do(t, "POST", "/api/v1/bookings", h.staff.Token, map[string]any{"machine_id": h.printer.ID.String(), "start": "9999-12-31T10:00:00-23:00", "end": "9999-12-31T11:00:00-23:00"})
	t.Logf("booking y10000: %d %s", r.status, r.body)
	r = h.do(t, "POST", "/api/v1/members", h.staff.Token, map[string]any{"email": "x@y.test", "name": "X", "group": "student", "membership_until": "9999-12-31T23:00:00-23:00"})
	t.Logf("member y10000: %d %s", r.status, r.body)
	r = h.do(t, "GET", "/api/v1/machines/"+h.printer.ID.String()+"/availability?from=9999-12-30T00:00:00Z", h.alice.Token, nil)
	t.Logf("avail y10000: %d %q %v", r.status, r.body, r.header)
	r = h.send(t, apiReq{method: "POST", path: "/api/v1/bookings", token: h.alice.Token, body: `{"machine_id":"2"}` + strings.Repeat(" ", maxBody+100)})
	t.Logf("padding: %d %s", r.status, r.body)
	r = h.send(t, apiReq{method: "POST", path: "/api/v1/bookings", token: h.alice.Token, body: `{}`, contentType: "Application/JSON"})
	t.Logf("ct: %d %s", r.status, r.body)
	r = h.do(t, "GET", "/api/v1/bookings?from=9999-12-30T00:00:00Z", h.alice.Token, nil)
	t.Logf("list: %d %q", r.status, r.body)
}
