package httpapi

import (
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
)

// Values that could not be read back are refused before they are stored,
// and instants are stored in UTC whatever offset the client used.
func TestAPIStoredValuesStayReadable(t *testing.T) {
	h := newAPIHarness(t)

	t.Run("closure without dates is refused and the lab keeps working", func(t *testing.T) {
		before := h.state(t)
		for _, body := range []any{
			map[string]any{"closures": []map[string]string{{"to": "2026-12-24"}}},
			map[string]any{"closures": []map[string]string{{}}},
		} {
			h.do(t, "PATCH", "/api/v1/settings", h.admin.Token, body).want(t, 400, fablab.EINVALID)
		}
		h.unchanged(t, before)
		h.do(t, "GET", "/healthz", "", nil).want(t, 200, "")
		h.do(t, "GET", "/api/v1/settings", h.alice.Token, nil).want(t, 200, "")
	})

	t.Run("qualification expiry is stored in UTC", func(t *testing.T) {
		exp := time.Date(2027, 1, 15, 18, 0, 0, 0, time.FixedZone("", -5*3600))
		r := h.do(t, "POST", "/api/v1/members/"+h.bob.ID.String()+"/qualifications", h.staff.Token,
			map[string]any{"training_id": h.training.ID, "expires_at": exp.Format(time.RFC3339)})
		r.want(t, 201, "")
		qs, err := h.store.Qualifications(t.Context(), h.bob.ID)
		if err != nil || len(qs) != 1 {
			t.Fatalf("qualifications: %v %v", qs, err)
		}
		if got := *qs[0].ExpiresAt; got.Location() != time.UTC || !got.Equal(exp) {
			t.Fatalf("stored expiry %v, want %v in UTC", got, exp)
		}
	})

	t.Run("maintenance block is stored in UTC", func(t *testing.T) {
		from := apiAt(20, 9, 0)
		r := h.do(t, "PATCH", "/api/v1/machines/"+h.printer.ID.String(), h.staff.Token, map[string]any{
			"maintenance": []map[string]string{{"start": from.Format(time.RFC3339), "end": from.Add(time.Hour).Format(time.RFC3339), "reason": "nozzle"}},
		})
		r.want(t, 200, "")
		m, err := h.store.Machine(t.Context(), h.printer.ID)
		if err != nil || len(m.Maintenance) != 1 {
			t.Fatalf("machine: %+v %v", m, err)
		}
		if b := m.Maintenance[0]; b.Start.Location() != time.UTC || !b.Start.Equal(from) {
			t.Fatalf("stored block start %v, want %v in UTC", b.Start, from)
		}
	})

	t.Run("a booking may not outlast the membership", func(t *testing.T) {
		until := apiAt(1, 12, 0)
		r := h.do(t, "PATCH", "/api/v1/members/"+h.bob.ID.String(), h.staff.Token, map[string]any{"membership_until": until.Format(time.RFC3339)})
		r.want(t, 200, "")
		h.book(t, h.bob, h.printer.ID, apiAt(1, 11, 0), apiAt(1, 13, 0)).want(t, 422, fablab.CodeMemberInactive)
		h.book(t, h.bob, h.printer.ID, apiAt(1, 10, 0), apiAt(1, 12, 0)).want(t, 201, "")
	})
}

// Every state-changing API call that succeeds leaves an audit line saying
// who did what; refused ones and reads leave none.
func TestAPIStateChangingCallsAreAudited(t *testing.T) {
	h := newAPIHarness(t)
	h.do(t, "POST", "/api/v1/trainings", h.staff.Token, map[string]any{"name": "Soldering"}).want(t, 201, "")
	h.do(t, "POST", "/api/v1/trainings", h.staff.Token, map[string]any{"name": ""}).want(t, 400, fablab.EINVALID)
	h.do(t, "GET", "/api/v1/trainings", h.staff.Token, nil).want(t, 200, "")
	evs, err := h.store.AuditEvents(t.Context(), bolt.AuditFilter{From: apiStart.Add(-time.Hour), To: apiStart.Add(time.Hour), Kind: fablab.AuditAPI, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Action != "POST /api/v1/trainings" || evs[0].ActorID != h.staff.ID || evs[0].Detail["status"] != float64(201) {
		t.Fatalf("audit of API calls: %+v", evs)
	}
}
