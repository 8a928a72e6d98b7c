package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
)

// apiFuzzPost posts body to path through the real handler as as and checks
// what must hold for any input: no 5xx, errors as problem+json, success as
// JSON. It returns the status and body.
func apiFuzzPost(t *testing.T, h *apiHarness, path string, as *apiAccount, body []byte) (int, []byte) {
	t.Helper()
	return apiFuzzSend(t, h, "POST", path, as, body)
}

// apiFuzzSend is apiFuzzPost for any method; a nil body sends none.
func apiFuzzSend(t *testing.T, h *apiHarness, method, path string, as *apiAccount, body []byte) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+as.Token)
	rec := httptest.NewRecorder()
	h.server.Handler().ServeHTTP(rec, req)
	apiCheckAlways(t, method+" "+path, rec.Code, rec.Header(), rec.Body.Bytes())
	if rec.Code < 400 && strings.Contains(rec.Header().Get("Content-Type"), "json") && !json.Valid(rec.Body.Bytes()) {
		t.Errorf("status %d with a body that is not JSON: %q", rec.Code, apiShort(rec.Body.Bytes()))
	}
	return rec.Code, rec.Body.Bytes()
}

// bookingCount counts every stored booking of the harness's machines.
func (h *apiHarness) bookingCount(t testing.TB) int {
	t.Helper()
	n := 0
	for _, m := range []fablab.ID{h.laser.ID, h.printer.ID, h.cnc.ID} {
		bs, err := h.store.Bookings(context.Background(), bolt.BookingFilter{MachineID: m, From: time.Unix(0, 0), To: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)})
		if err != nil {
			t.Fatal(err)
		}
		n += len(bs)
	}
	return n
}

// FuzzBookingRequest posts arbitrary bodies to POST /api/v1/bookings, as a
// maker or as staff.
func FuzzBookingRequest(f *testing.F) {
	h := newAPIHarness(f)
	printer, laser := h.printer.ID.String(), h.laser.ID.String()
	at := func(day, hh, mm int) string { return apiAt(day, hh, mm).Format(time.RFC3339) }
	seeds := []string{
		`{"machine_id":"` + printer + `","start":"` + at(1, 10, 0) + `","end":"` + at(1, 11, 0) + `"}`,
		`{"machine_id":"` + laser + `","start":"` + at(1, 10, 0) + `","end":"` + at(1, 11, 0) + `"}`,
		`{"machine_id":"` + printer + `","member_id":"` + h.bob.ID.String() + `","start":"` + at(2, 10, 0) + `","end":"` + at(2, 11, 0) + `"}`,
		`{"machine_id":"` + printer + `","start":"2026-03-03T09:00:00Z","end":"2026-03-03T09:30:00Z"}`,
		`{"machine_id":"` + printer + `","start":"2026-03-03T10:00:00.5+01:00","end":"2026-03-03T11:00:00+01:00"}`,
		`{"machine_id":"` + printer + `","start":"` + at(1, 11, 0) + `","end":"` + at(1, 10, 0) + `"}`,
		`{"machine_id":"` + printer + `","start":"` + at(40, 10, 0) + `","end":"` + at(40, 11, 0) + `"}`,
		`{"machine_id":"` + printer + `","start":"9999-12-31T10:00:00-23:00","end":"9999-12-31T11:00:00-23:00"}`,
		`{"machine_id":"` + printer + `","start":"0000-01-01T00:00:00+23:59","end":"0000-01-01T01:00:00+23:59"}`,
		`{"machine_id":"` + printer + `","start":"2026-03-03 10:00","end":"2026-03-03 11:00"}`,
		`{"machine_id":` + printer + `,"start":"` + at(1, 10, 0) + `","end":"` + at(1, 11, 0) + `"}`,
		`{"machine_id":"18446744073709551615","start":"` + at(1, 10, 0) + `","end":"` + at(1, 11, 0) + `"}`,
		`{"machine_id":"18446744073709551616"}`,
		`{"machine_id":"0"}`,
		`{"machine_id":"` + printer + `","member_id":"999","start":"` + at(1, 12, 0) + `","end":"` + at(1, 13, 0) + `"}`,
		`{"machine_id":"` + printer + `","start":"` + at(1, 10, 0) + `","end":"` + at(1, 11, 0) + `","extra":1}`,
		`{"machine_id":"` + printer + `","start":"` + at(1, 10, 0) + `","end":"` + at(1, 11, 0) + `"} {}`,
		`{"machine_id":"` + printer + `","start":null,"end":[]}`,
		`{"machine_id":"` + printer + `","start":"` + at(1, 10, 0) + `",`,
		`{"machine_id":"\u0031","start":"\ud800","end":"` + "\xff\xfe" + `"}`,
		`{}`, `null`, `[]`, `"x"`, `1`, `true`, ``, ` `, `{`, `}`, `{"":""}`,
		strings.Repeat("[", 20000) + strings.Repeat("]", 20000),
		`{"machine_id":"` + printer + `","start":"` + at(1, 10, 0) + `","end":"` + at(1, 11, 0) + `"}` + strings.Repeat(" ", 100),
	}
	for _, s := range seeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, asStaff bool) {
		as := h.alice
		if asStaff {
			as = h.staff
		}
		before := h.bookingCount(t)
		status, resp := apiFuzzPost(t, h, "/api/v1/bookings", as, body)
		after := h.bookingCount(t)
		switch {
		case status == http.StatusCreated:
			var b fablab.Booking
			if err := json.Unmarshal(resp, &b); err != nil || b.ID == 0 || b.State != fablab.BookingConfirmed || !b.End.After(b.Start) {
				t.Errorf("201 with %q (%v)", resp, err)
			}
			if after != before+1 {
				t.Errorf("201 but %d bookings before and %d after", before, after)
			}
		case status >= 400 && status < 500:
			if after != before {
				t.Errorf("%d but %d bookings before and %d after", status, before, after)
			}
		default:
			t.Errorf("status %d: %q", status, apiShort(resp))
		}
	})
}

// FuzzMemberRequest posts arbitrary bodies to POST /api/v1/members, as staff
// or as admin.
func FuzzMemberRequest(f *testing.F) {
	h := newAPIHarness(f)
	seeds := []string{
		`{"email":"carol@fablab.test","name":"Carol","role":"maker","group":"student","password":"a long password"}`,
		`{"email":"dave@fablab.test","name":"Dave","group":"sme"}`,
		`{"email":"erin@fablab.test","name":"Erin","role":"staff","group":"staff","password":"a long password"}`,
		`{"email":"frank@fablab.test","name":"Frank","role":"admin","group":"staff"}`,
		`{"email":"gina@fablab.test","name":"Gina","group":"student","membership_until":"2027-01-01T00:00:00+01:00","language":"en","payer":"self","status":"active"}`,
		`{"email":"hugo@fablab.test","name":"Hugo","group":"student","membership_until":"9999-12-31T23:00:00-23:00"}`,
		`{"email":"ivy@fablab.test","name":"Ivy","group":"student","membership_until":"0000-01-01T00:00:00+23:59"}`,
		`{"email":"ALICE@fablab.test","name":"Alice again","group":"student"}`,
		`{"email":"jo@fablab.test","name":"Jo","organisation_id":"999"}`,
		`{"email":"jo@fablab.test","name":"Jo","payer":"organisation","group":"student"}`,
		`{"email":"kim@fablab.test","name":"Kim","group":"student","password":"short"}`,
		`{"email":"lea@fablab.test","name":"Lea","group":"student","password":"` + strings.Repeat("p", 1025) + `"}`,
		`{"email":"not an email","name":"X","group":"student"}`,
		`{"email":"max@fablab.test","name":"` + strings.Repeat("n", 300) + `","group":"student"}`,
		`{"email":"ned@fablab.test","name":"Ned","role":"root","group":"student"}`,
		`{"email":"ola@fablab.test","name":"Ola","group":"student","password_hash":"$argon2id$v=19$m=64,t=1,p=1$c2FsdA$a2V5"}`,
		`{"email":"pia@fablab.test","name":"Pia","group":"student","prepaid_minutes":100}`,
		`{"email":"quinn@fablab.test","name":"Quinn","group":"student","id":"1"}`,
		`{"email":12,"name":true,"role":[],"group":{}}`,
		`{"email":"rae@fablab.test","name":"Rae","group":"student"} []`,
		`{"email":"sam@fablab.test","name":"` + "\xff\xfe\u0000" + `","group":"student"}`,
		`{"email":"tom@fablab.test",`,
		`{}`, `null`, `[]`, `""`, `0`, ``, `{"email":null,"name":null}`,
		strings.Repeat(`{"a":`, 12000) + `1` + strings.Repeat(`}`, 12000),
	}
	for _, s := range seeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, asAdmin bool) {
		as := h.staff
		if asAdmin {
			as = h.admin
		}
		ctx := context.Background()
		before, err := h.store.CountMembers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		status, resp := apiFuzzPost(t, h, "/api/v1/members", as, body)
		after, err := h.store.CountMembers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case status == http.StatusCreated:
			var m map[string]any
			if err := json.Unmarshal(resp, &m); err != nil || m["id"] == nil {
				t.Errorf("201 with %q (%v)", resp, err)
			}
			if bytes.Contains(resp, []byte("argon2")) || m["password_hash"] != nil {
				t.Errorf("the response shows the password hash: %s", resp)
			}
			if role := m["role"]; role != "maker" && !asAdmin {
				t.Errorf("staff created a member with role %v", role)
			}
			if after != before+1 {
				t.Errorf("201 but %d members before and %d after", before, after)
			}
		case status >= 400 && status < 500:
			if after != before {
				t.Errorf("%d but %d members before and %d after", status, before, after)
			}
		default:
			t.Errorf("status %d: %q", status, apiShort(resp))
		}
	})
}
