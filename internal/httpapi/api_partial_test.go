package httpapi

import (
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/fablab"
)

// Partial objects in machine and settings bodies update only what they name.
func TestAPIPartialObjects(t *testing.T) {
	h := newAPIHarness(t)
	defaults := fablab.DefaultBookingRules()

	t.Run("machine created with some rules keeps the lab defaults for the rest", func(t *testing.T) {
		r := h.do(t, "POST", "/api/v1/machines", h.staff.Token, map[string]any{
			"name": "Router", "kind": "cnc", "rules": map[string]any{"slot_minutes": 60, "min_minutes": 60},
		})
		r.want(t, 201, "")
		var m fablab.Machine
		r.decode(t, &m)
		want := defaults
		want.SlotMinutes, want.MinMinutes = 60, 60
		if m.Rules != want {
			t.Fatalf("rules = %+v, want %+v", m.Rules, want)
		}
	})

	t.Run("machine patch of one rule keeps the others", func(t *testing.T) {
		r := h.do(t, "PATCH", "/api/v1/machines/"+h.cnc.ID.String(), h.staff.Token, map[string]any{
			"rules": map[string]any{"max_ahead_days": 10},
		})
		r.want(t, 200, "")
		var m fablab.Machine
		r.decode(t, &m)
		want := h.cnc.Rules
		want.MaxAheadDays = 10
		if m.Rules != want {
			t.Fatalf("rules = %+v, want %+v", m.Rules, want)
		}
	})

	t.Run("unknown or mistyped rule is refused and nothing changes", func(t *testing.T) {
		before := h.state(t)
		h.do(t, "PATCH", "/api/v1/machines/"+h.cnc.ID.String(), h.staff.Token, map[string]any{"rules": map[string]any{"slot_minute": 10}}).want(t, 400, fablab.EINVALID)
		h.do(t, "PATCH", "/api/v1/machines/"+h.cnc.ID.String(), h.staff.Token, map[string]any{"rules": map[string]any{"slot_minutes": "ten"}}).want(t, 400, fablab.EINVALID)
		h.do(t, "PATCH", "/api/v1/machines/"+h.cnc.ID.String(), h.staff.Token, map[string]any{"rules": map[string]any{"slot_minutes": 7}}).want(t, 400, fablab.EINVALID)
		h.unchanged(t, before)
	})

	t.Run("settings patch of one day keeps the other days", func(t *testing.T) {
		r := h.do(t, "PATCH", "/api/v1/settings", h.admin.Token, map[string]any{
			"opening_hours": map[string]any{"sunday": []map[string]string{{"open": "10:00", "close": "16:00"}}},
			"default_rules": map[string]any{"weekly_quota_minutes": 600},
		})
		r.want(t, 200, "")
		var st fablab.Settings
		r.decode(t, &st)
		if got := st.OpeningHours.Sunday; len(got) != 1 || got[0].Open != 10*60 || got[0].Close != 16*60 {
			t.Fatalf("sunday = %+v", got)
		}
		if got := st.OpeningHours.Monday; len(got) != 1 || got[0].Open != 9*60 || got[0].Close != 21*60 {
			t.Fatalf("monday changed: %+v", got)
		}
		want := defaults
		want.WeeklyQuotaMinutes = 600
		if st.DefaultRules != want {
			t.Fatalf("default rules = %+v, want %+v", st.DefaultRules, want)
		}
	})
}

// A day given in an opening-hours patch is replaced whole: a range without a
// close is refused, not completed from the day's old range.
func TestAPIOpeningHoursDayReplacedWhole(t *testing.T) {
	h := newAPIHarness(t)
	before := h.state(t)
	h.do(t, "PATCH", "/api/v1/settings", h.admin.Token, map[string]any{
		"opening_hours": map[string]any{"monday": []map[string]string{{"open": "10:00"}}},
	}).want(t, 400, fablab.EINVALID)
	h.do(t, "PATCH", "/api/v1/settings", h.admin.Token, map[string]any{
		"opening_hours": map[string]any{"funday": []map[string]string{{"open": "10:00", "close": "11:00"}}},
	}).want(t, 400, fablab.EINVALID)
	h.unchanged(t, before)
	r := h.do(t, "PATCH", "/api/v1/settings", h.admin.Token, map[string]any{
		"opening_hours": map[string]any{"monday": []map[string]string{{"open": "08:00", "close": "12:00"}, {"open": "14:00", "close": "22:00"}}, "tuesday": []string{}},
	})
	r.want(t, 200, "")
	var st fablab.Settings
	r.decode(t, &st)
	if got := st.OpeningHours.Monday; len(got) != 2 || got[0].Open != 8*60 || got[1].Close != 22*60 {
		t.Fatalf("monday = %+v", got)
	}
	if got := st.OpeningHours.Tuesday; len(got) != 0 {
		t.Fatalf("tuesday = %+v, want closed", got)
	}
	if got := st.OpeningHours.Wednesday; len(got) != 1 || got[0].Open != 9*60 {
		t.Fatalf("wednesday changed: %+v", got)
	}
}

// Field names are taken exactly as documented: encoding/json alone would
// accept them in any case.
func TestAPIFieldNamesAreCaseSensitive(t *testing.T) {
	h := newAPIHarness(t)
	before := h.state(t)
	start := apiAt(1, 10, 0)
	tests := []struct {
		name, method, path string
		body               any
	}{
		{"booking field", "POST", "/api/v1/bookings", map[string]any{"Machine_ID": h.printer.ID, "start": start, "end": start.Add(time.Hour)}},
		{"member field", "POST", "/api/v1/members", map[string]any{"EMAIL": "x@fablab.test", "name": "X", "group": "student"}},
		{"nested rules field", "PATCH", "/api/v1/machines/" + h.printer.ID.String(), map[string]any{"rules": map[string]any{"Slot_Minutes": 60}}},
		{"nested opening hours range", "PATCH", "/api/v1/settings", map[string]any{"opening_hours": map[string]any{"monday": []map[string]string{{"Open": "10:00", "close": "12:00"}}}}},
		{"field inside a list", "PATCH", "/api/v1/machines/" + h.printer.ID.String(), map[string]any{"maintenance": []map[string]string{{"Start": start.Format(time.RFC3339), "end": start.Add(time.Hour).Format(time.RFC3339)}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do(t, tt.method, tt.path, h.admin.Token, tt.body)
			r.want(t, 400, fablab.EINVALID)
			if p := r.problem(t); !strings.Contains(p.Detail, "write it") {
				t.Errorf("detail %q does not say how to write the field", p.Detail)
			}
		})
	}
	h.unchanged(t, before)
}
