package httpapi

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
)

// The fuzzers of the query parameters of the lists and reports: whatever
// the values, the answer is never a 5xx, a 400 names the parameter to fix
// as the problem's field, and a 200 is JSON, or CSV whose rows are all as
// wide as its header and whose text cells cannot start a formula.

// apiFuzzParams are a request's query parameters, in order.
type apiFuzzParams [][2]string

// apiFuzzQuery GETs path with params as as and checks what holds for any
// values; names lists the parameters the endpoint reads. It returns the
// status and body.
func apiFuzzQuery(t *testing.T, h *apiHarness, path string, as *apiAccount, params apiFuzzParams) (int, []byte) {
	t.Helper()
	q := url.Values{}
	var names []string
	for _, p := range params {
		q.Add(p[0], p[1])
		names = append(names, p[0])
	}
	req := httptest.NewRequest("GET", path+"?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+as.Token)
	rec := httptest.NewRecorder()
	h.server.Handler().ServeHTTP(rec, req)
	status, body, ct := rec.Code, rec.Body.Bytes(), rec.Header().Get("Content-Type")
	apiCheckAlways(t, "GET "+req.URL.String(), status, rec.Header(), body)
	switch {
	case status == http.StatusBadRequest:
		var p Problem
		_ = json.Unmarshal(body, &p)
		if !slices.Contains(names, p.Field) {
			t.Errorf("GET %s: 400 with field %q, not one of the parameters %v: %s", req.URL, p.Field, names, p.Detail)
		}
	case status >= 400 && status < 500:
	case status != http.StatusOK:
		t.Errorf("GET %s: status %d", req.URL, status)
	case strings.HasPrefix(ct, "text/csv"):
		recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
		if err != nil || len(recs) == 0 {
			t.Errorf("GET %s: the CSV does not read back (%v): %q", req.URL, err, apiShort(body))
		}
		for _, rec := range recs {
			for _, cell := range rec {
				if cell != "" && strings.IndexByte("=+@\t\r", cell[0]) >= 0 || strings.HasPrefix(cell, "-") && !csvDecimal.MatchString(cell) && !isInteger(cell) {
					t.Errorf("GET %s: cell %q starts like a formula", req.URL, cell)
				}
			}
		}
	case !strings.Contains(ct, "json") || !json.Valid(body):
		t.Errorf("GET %s: 200 as %q: %q", req.URL, ct, apiShort(body))
	}
	return status, body
}

func isInteger(s string) bool {
	s = strings.TrimPrefix(s, "-")
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// newAPIQueryFuzz is a harness with something to report: billed sessions,
// a no-show, corrections, and names a spreadsheet would run as formulas.
func newAPIQueryFuzz(f *testing.F) *apiHarness {
	h := newAPIHarness(f)
	h.seedReports(f)
	ctx := context.Background()
	if _, err := h.store.UpdateMachine(ctx, h.printer.ID, func(m *fablab.Machine) error { m.Name = "-2+3+cmd|' /C calc'!A0"; return nil }); err != nil {
		f.Fatal(err)
	}
	cs, err := h.store.Charges(ctx, bolt.ChargeFilter{MemberID: h.bob.ID})
	if err != nil || len(cs) == 0 {
		f.Fatalf("bob's charges: %v %v", cs, err)
	}
	if _, err := h.store.AddCorrection(ctx, cs[0].ID, 100, "=HYPERLINK(\"http://evil\")", h.staff.ID); err != nil {
		f.Fatal(err)
	}
	return h
}

// apiFuzzTimes are values of from and to worth starting from.
var apiFuzzTimes = []string{"", "2026-03-01", "2026-04-01", "2026-03-02T00:00:00+01:00", "2026-03-09T00:00:00Z", "2026-02-30", "March",
	"0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-03-02T09:00:00 01:00", "2026-03-02T09:00:00.123456789-23:59", "2020-01-01", "2031-01-01"}

// FuzzReportsQuery: GET /reports/usage and /reports/revenue?from=&to=&by=&format=, as staff.
func FuzzReportsQuery(f *testing.F) {
	h := newAPIQueryFuzz(f)
	for i, from := range apiFuzzTimes {
		to := apiFuzzTimes[(i+2)%len(apiFuzzTimes)]
		by := []string{"", "machine", "group", "member", "organisation", "payer", "MACHINE"}[i%7]
		format := []string{"", "json", "csv", "xlsx", "CSV"}[i%5]
		f.Add(i%2 == 0, from, to, by, format)
		f.Add(i%2 == 1, "2026-03-01", "2026-04-30", by, "csv")
	}
	f.Fuzz(func(t *testing.T, revenue bool, from, to, by, format string) {
		path := "/api/v1/reports/usage"
		if revenue {
			path = "/api/v1/reports/revenue"
		}
		apiFuzzQuery(t, h, path, h.staff, apiFuzzParams{{"from", from}, {"to", to}, {"by", by}, {"format", format}})
	})
}

// FuzzChargesQuery: GET /charges?from=&to=&member_id=&payer=&format=, as
// staff or as a maker (who sees only their own).
func FuzzChargesQuery(f *testing.F) {
	h := newAPIQueryFuzz(f)
	alice, bob := h.alice.ID.String(), h.bob.ID.String()
	for i, from := range apiFuzzTimes {
		to := apiFuzzTimes[(i+1)%len(apiFuzzTimes)]
		member := []string{"", alice, bob, "0", "-1", "x", "18446744073709551616"}[i%7]
		payer := []string{"", "member-" + alice, "organisation-1", "member-", "member-x", "person-1", "member-0"}[i%7]
		format := []string{"", "json", "csv", "pdf"}[i%4]
		f.Add(i%2 == 0, from, to, member, payer, format)
	}
	f.Add(false, "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z", "", "", "csv")
	f.Add(false, "", "", "", "", "")
	f.Add(true, "", "", alice, "", "csv")
	f.Add(false, "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z", "", "member-"+bob, "json")
	f.Fuzz(func(t *testing.T, asMaker bool, from, to, member, payer, format string) {
		as := h.staff
		if asMaker {
			as = h.alice
		}
		apiFuzzQuery(t, h, "/api/v1/charges", as, apiFuzzParams{{"from", from}, {"to", to}, {"member_id", member}, {"payer", payer}, {"format", format}})
	})
}

// FuzzInvoicesQuery: GET /invoices?payer=&period=&format=, as staff or as
// a maker.
func FuzzInvoicesQuery(f *testing.F) {
	h := newAPIQueryFuzz(f)
	h.seedInvoice(f, h.alice)
	for i, period := range []string{"", "2015-01", "2026-03", "2026-3", "2026-13", "March", "0000-01", "9999-12"} {
		payer := []string{"", "member-" + h.alice.ID.String(), "organisation-1", "member-x"}[i%4]
		format := []string{"", "json", "csv", "xml"}[i%4]
		f.Add(i%2 == 0, payer, period, format)
	}
	f.Add(false, "", "", "csv")
	f.Add(true, "", "", "")
	f.Fuzz(func(t *testing.T, asMaker bool, payer, period, format string) {
		as := h.staff
		if asMaker {
			as = h.alice
		}
		apiFuzzQuery(t, h, "/api/v1/invoices", as, apiFuzzParams{{"payer", payer}, {"period", period}, {"format", format}})
	})
}

// FuzzAvailabilityQuery: GET /machines/{id}/availability?from=&to=, as a
// maker; the free and busy intervals lie within the range asked.
func FuzzAvailabilityQuery(f *testing.F) {
	h := newAPIQueryFuzz(f)
	for i, from := range apiFuzzTimes {
		id := []string{h.laser.ID.String(), h.printer.ID.String(), "999", "0", "x"}[i%5]
		f.Add(id, from, apiFuzzTimes[(i+3)%len(apiFuzzTimes)])
	}
	f.Add(h.laser.ID.String(), "", "")
	f.Add(h.printer.ID.String(), "2026-03-03T00:00:00+01:00", "2026-03-10T00:00:00+01:00")
	f.Fuzz(func(t *testing.T, id, from, to string) {
		seg, ok := apiFuzzPathID(id)
		if !ok {
			return
		}
		status, body := apiFuzzQuery(t, h, "/api/v1/machines/"+seg+"/availability", h.alice, apiFuzzParams{{"from", from}, {"to", to}})
		if status != http.StatusOK {
			return
		}
		var av availabilityResponse
		if err := json.Unmarshal(body, &av); err != nil {
			t.Fatalf("availability %q: %v", apiShort(body), err)
		}
		for _, iv := range append(av.Free, av.Busy...) {
			if !iv.End.After(iv.Start) || iv.Start.Before(av.From) || iv.End.After(av.To) {
				t.Errorf("interval %v–%v outside %v–%v or empty", iv.Start, iv.End, av.From, av.To)
			}
		}
	})
}

// FuzzBookingsQuery: GET /bookings?machine_id=&member_id=&from=&to=, as
// staff or as a maker; the bookings listed overlap the range.
func FuzzBookingsQuery(f *testing.F) {
	h := newAPIQueryFuzz(f)
	for i, from := range apiFuzzTimes {
		machine := []string{"", h.laser.ID.String(), "999", "x"}[i%4]
		member := []string{"", h.alice.ID.String(), h.bob.ID.String(), "-1", "01"}[i%5]
		f.Add(i%2 == 0, machine, member, from, apiFuzzTimes[(i+4)%len(apiFuzzTimes)])
	}
	f.Add(false, "", "", "", "")
	f.Add(true, h.laser.ID.String(), h.alice.ID.String(), "2026-03-01T00:00:00Z", "2026-03-31T00:00:00Z")
	f.Add(false, h.laser.ID.String(), "", "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z")
	f.Fuzz(func(t *testing.T, asMaker bool, machine, member, from, to string) {
		as := h.staff
		if asMaker {
			as = h.alice
		}
		status, body := apiFuzzQuery(t, h, "/api/v1/bookings", as, apiFuzzParams{{"machine_id", machine}, {"member_id", member}, {"from", from}, {"to", to}})
		if status != http.StatusOK {
			return
		}
		var bs []fablab.Booking
		if err := json.Unmarshal(body, &bs); err != nil {
			t.Fatal(err)
		}
		for _, b := range bs {
			if asMaker && b.MemberID != h.alice.ID {
				t.Errorf("a maker sees booking %s of member %s", b.ID, b.MemberID)
			}
		}
	})
}

// FuzzAuditQuery: GET /audit with every filter, as staff.
func FuzzAuditQuery(f *testing.F) {
	h := newAPIQueryFuzz(f)
	for i, from := range apiFuzzTimes {
		kind := []string{"", "api", "tap", "x"}[i%4]
		num := []string{"", "1", "0", "5000", "5001", "+5", "x"}[i%7]
		f.Add(kind, "POST /api/v1/bookings", "laser-1", num, num, num, from, apiFuzzTimes[(i+5)%len(apiFuzzTimes)])
	}
	f.Add("", "", "", "", "", "", "", "")
	f.Add("api", "", "", h.laser.ID.String(), h.alice.ID.String(), "50", "2026-02-25T00:00:00Z", "2026-03-03T00:00:00Z")
	f.Fuzz(func(t *testing.T, kind, action, device, machine, member, limit, from, to string) {
		apiFuzzQuery(t, h, "/api/v1/audit", h.staff, apiFuzzParams{{"kind", kind}, {"action", action}, {"device_id", device},
			{"machine_id", machine}, {"member_id", member}, {"limit", limit}, {"from", from}, {"to", to}})
	})
}

// FuzzSlotsQuery: GET /slots, as a maker.
func FuzzSlotsQuery(f *testing.F) {
	h := newAPIQueryFuzz(f)
	for i, from := range apiFuzzTimes {
		kind := []string{"", "laser-cutter", "3d-printer", "Laser"}[i%4]
		machine := []string{"", h.printer.ID.String(), "999"}[i%3]
		minutes := []string{"", "60", "0", "10081", "x"}[i%5]
		f.Add(kind, machine, minutes, []string{"", "5", "51"}[i%3], []string{"", "true", "yes"}[i%3], from, apiFuzzTimes[(i+1)%len(apiFuzzTimes)])
	}
	f.Add("laser-cutter", "", "60", "5", "", "", "")
	f.Add("", h.printer.ID.String(), "30", "", "true", "2026-03-03T09:00:00+01:00", "2026-03-05T00:00:00+01:00")
	f.Fuzz(func(t *testing.T, kind, machine, minutes, limit, qualified, from, to string) {
		apiFuzzQuery(t, h, "/api/v1/slots", h.alice, apiFuzzParams{{"kind", kind}, {"machine_id", machine}, {"minutes", minutes},
			{"limit", limit}, {"qualified", qualified}, {"from", from}, {"to", to}})
	})
}

// FuzzSessionsQuery: GET /sessions, as staff or as a maker.
func FuzzSessionsQuery(f *testing.F) {
	h := newAPIQueryFuzz(f)
	for i, from := range apiFuzzTimes {
		f.Add(i%2 == 0, []string{"", "true", "false", "1"}[i%4], []string{"", h.laser.ID.String(), "x"}[i%3],
			[]string{"", h.alice.ID.String(), "0"}[i%3], from, apiFuzzTimes[(i+6)%len(apiFuzzTimes)])
	}
	f.Fuzz(func(t *testing.T, asMaker bool, active, machine, member, from, to string) {
		as := h.staff
		if asMaker {
			as = h.alice
		}
		status, body := apiFuzzQuery(t, h, "/api/v1/sessions", as, apiFuzzParams{{"active", active}, {"machine_id", machine},
			{"member_id", member}, {"from", from}, {"to", to}})
		if status != http.StatusOK || !asMaker {
			return
		}
		var ss []fablab.Session
		if err := json.Unmarshal(body, &ss); err != nil {
			t.Fatal(err)
		}
		for _, s := range ss {
			if s.MemberID != h.alice.ID {
				t.Errorf("a maker sees session %s of member %s", s.ID, s.MemberID)
			}
		}
	})
}
