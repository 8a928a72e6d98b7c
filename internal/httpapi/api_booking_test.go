package httpapi

import (
	"net/http"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/fablab"
)

// TestAPIBookingRules books over HTTP against the machines' rules. The steps
// run in order: later ones depend on what earlier ones booked.
func TestAPIBookingRules(t *testing.T) {
	h := newAPIHarness(t)
	type step struct {
		name       string
		as         *apiAccount
		machine    fablab.ID
		member     *apiAccount // member_id, when booking for someone else
		start, end time.Time
		status     int
		code       string
	}
	printer, laser, cnc := h.printer.ID, h.laser.ID, h.cnc.ID
	steps := []step{
		{"valid", h.alice, printer, nil, apiAt(1, 10, 0), apiAt(1, 11, 0), 201, ""},
		{"overlap", h.bob, printer, nil, apiAt(1, 10, 30), apiAt(1, 11, 30), 409, fablab.CodeBookingConflict},
		{"inside", h.bob, printer, nil, apiAt(1, 10, 0), apiAt(1, 10, 30), 409, fablab.CodeBookingConflict},
		{"around", h.bob, printer, nil, apiAt(1, 9, 30), apiAt(1, 11, 30), 409, fablab.CodeBookingConflict},
		{"same slot by staff", h.staff, printer, h.bob, apiAt(1, 10, 0), apiAt(1, 11, 0), 409, fablab.CodeBookingConflict},
		{"touching before", h.bob, printer, nil, apiAt(1, 9, 0), apiAt(1, 10, 0), 201, ""},
		{"touching after", h.bob, printer, nil, apiAt(1, 11, 0), apiAt(1, 11, 30), 201, ""},
		{"same time on another machine", h.alice, laser, nil, apiAt(1, 10, 0), apiAt(1, 11, 0), 201, ""},

		{"after closing", h.alice, printer, nil, apiAt(1, 20, 30), apiAt(1, 21, 30), 422, fablab.CodeOutsideOpeningHours},
		{"before opening", h.alice, printer, nil, apiAt(1, 8, 30), apiAt(1, 9, 30), 422, fablab.CodeOutsideOpeningHours},
		{"on a Sunday", h.alice, printer, nil, apiAt(6, 10, 0), apiAt(6, 11, 0), 422, fablab.CodeOutsideOpeningHours},
		{"across the night is too long", h.staff, printer, nil, apiAt(1, 20, 0), apiAt(2, 10, 0), 422, fablab.CodeTooLong},
		{"Saturday after 18:00", h.alice, printer, nil, apiAt(5, 17, 30), apiAt(5, 18, 30), 422, fablab.CodeOutsideOpeningHours},
		{"Saturday within hours", h.alice, printer, nil, apiAt(5, 17, 0), apiAt(5, 18, 0), 201, ""},
		{"off the slot grid", h.alice, printer, nil, apiAt(1, 12, 15), apiAt(1, 13, 15), 422, fablab.CodeSlotGranularity},
		{"not a whole number of slots", h.alice, printer, nil, apiAt(1, 12, 0), apiAt(1, 12, 45), 422, fablab.CodeSlotGranularity},
		{"seconds", h.alice, printer, nil, apiAt(1, 12, 0).Add(time.Second), apiAt(1, 13, 0).Add(time.Second), 422, fablab.CodeSlotGranularity},
		{"too long", h.alice, printer, nil, apiAt(1, 12, 0), apiAt(1, 16, 30), 422, fablab.CodeTooLong},
		{"in the past", h.alice, printer, nil, apiAt(0, 7, 0), apiAt(0, 7, 30), 422, fablab.CodeInThePast},
		{"too far ahead for a maker", h.alice, printer, nil, apiAt(36, 10, 0), apiAt(36, 11, 0), 422, fablab.CodeTooFarAhead},
		{"last day ahead for a maker", h.alice, printer, nil, apiAt(25, 10, 0), apiAt(25, 11, 0), 201, ""},
		{"too far ahead is fine for staff", h.staff, printer, nil, apiAt(36, 10, 0), apiAt(36, 11, 0), 201, ""},
		{"too far ahead by staff for a maker", h.staff, printer, h.alice, apiAt(37, 10, 0), apiAt(37, 11, 0), 201, ""},
		{"maker for another member", h.alice, printer, h.bob, apiAt(2, 10, 0), apiAt(2, 11, 0), 403, fablab.EFORBIDDEN},

		{"without the training", h.bob, laser, nil, apiAt(2, 10, 0), apiAt(2, 11, 0), 422, fablab.CodeTrainingRequired},
		{"staff cannot skip the training", h.staff, laser, h.bob, apiAt(2, 10, 0), apiAt(2, 11, 0), 422, fablab.CodeTrainingRequired},
		{"with the training", h.alice, laser, nil, apiAt(2, 10, 0), apiAt(2, 11, 0), 201, ""},

		{"quota: first hour", h.alice, cnc, nil, apiAt(1, 10, 0), apiAt(1, 11, 0), 201, ""},
		{"quota: second hour", h.alice, cnc, nil, apiAt(2, 10, 0), apiAt(2, 11, 0), 201, ""},
		{"quota: one half hour more", h.alice, cnc, nil, apiAt(3, 10, 0), apiAt(3, 10, 30), 422, fablab.CodeWeeklyQuota},
		{"quota: another member has their own", h.bob, cnc, nil, apiAt(3, 10, 0), apiAt(3, 12, 0), 201, ""},
		{"quota: staff may exceed it for a maker", h.staff, cnc, h.alice, apiAt(4, 10, 0), apiAt(4, 10, 30), 201, ""},
		{"quota: next week is a new week", h.alice, cnc, nil, apiAt(7, 10, 0), apiAt(7, 12, 0), 201, ""},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			body := apiBookingBody(s.machine, s.start, s.end)
			if s.member != nil {
				body["member_id"] = s.member.ID.String()
			}
			before := h.state(t)
			res := h.do(t, "POST", "/api/v1/bookings", s.as.Token, body)
			res.want(t, s.status, s.code)
			if s.status != http.StatusCreated {
				h.unchanged(t, before)
				return
			}
			var b fablab.Booking
			res.decode(t, &b)
			member := s.as
			if s.member != nil {
				member = s.member
			}
			if b.ID == 0 || b.MachineID != s.machine || b.MemberID != member.ID || b.CreatedBy != s.as.ID ||
				b.State != fablab.BookingConfirmed || !b.Start.Equal(s.start) || !b.End.Equal(s.end) {
				t.Errorf("booking %+v", b)
			}
			if res.header.Get("Content-Type") != "application/json; charset=utf-8" {
				t.Errorf("Content-Type %q", res.header.Get("Content-Type"))
			}
		})
	}

	t.Run("machine in maintenance", func(t *testing.T) {
		patch := func(state string) {
			h.do(t, "PATCH", "/api/v1/machines/"+h.printer.ID.String(), h.staff.Token, map[string]any{"state": state}).want(t, http.StatusOK, "")
		}
		patch(fablab.MachineMaintenance)
		h.book(t, h.alice, printer, apiAt(3, 14, 0), apiAt(3, 15, 0)).want(t, 422, fablab.CodeMachineUnavailable)
		patch(fablab.MachineAvailable)
		h.book(t, h.alice, printer, apiAt(3, 14, 0), apiAt(3, 15, 0)).want(t, 201, "")
	})
	t.Run("suspended member", func(t *testing.T) {
		h.do(t, "PATCH", "/api/v1/members/"+h.bob.ID.String(), h.staff.Token, map[string]any{"status": fablab.StatusSuspended}).want(t, http.StatusOK, "")
		// The suspended member is logged out; staff booking for them are refused by the rule.
		h.book(t, h.bob, printer, apiAt(3, 16, 0), apiAt(3, 17, 0)).want(t, 401, fablab.EUNAUTHORIZED)
		body := apiBookingBody(printer, apiAt(3, 16, 0), apiAt(3, 17, 0))
		body["member_id"] = h.bob.ID
		h.do(t, "POST", "/api/v1/bookings", h.staff.Token, body).want(t, 422, fablab.CodeMemberInactive)
		h.do(t, "PATCH", "/api/v1/members/"+h.bob.ID.String(), h.staff.Token, map[string]any{"status": fablab.StatusActive}).want(t, http.StatusOK, "")
	})
}

// TestAPICancel checks the cancellation cutoff (moving the clock), staff's
// right to cancel late, and that a cancelled slot can be booked again.
func TestAPICancel(t *testing.T) {
	h := newAPIHarness(t)
	// The printer's cutoff is 120 minutes before the start.
	book := func(as *apiAccount, start, end time.Time) fablab.Booking {
		t.Helper()
		res := h.book(t, as, h.printer.ID, start, end)
		res.want(t, http.StatusCreated, "")
		var b fablab.Booking
		res.decode(t, &b)
		return b
	}
	cancel := func(as *apiAccount, b fablab.Booking) apiResp {
		t.Helper()
		return h.do(t, "DELETE", "/api/v1/bookings/"+b.ID.String(), as.Token, nil)
	}
	early := book(h.alice, apiAt(0, 15, 0), apiAt(0, 16, 0))
	atCutoff := book(h.alice, apiAt(0, 11, 0), apiAt(0, 12, 0))
	late := book(h.alice, apiAt(0, 12, 0), apiAt(0, 13, 0))

	t.Run("before the cutoff", func(t *testing.T) {
		res := cancel(h.alice, early)
		res.want(t, http.StatusOK, "")
		var b fablab.Booking
		res.decode(t, &b)
		if b.State != fablab.BookingCancelled || b.CancelledBy != h.alice.ID || b.CancelledAt == nil || !b.CancelledAt.Equal(apiStart) {
			t.Errorf("cancelled booking %+v", b)
		}
	})
	t.Run("a cancelled slot can be booked again", func(t *testing.T) {
		again := book(h.bob, apiAt(0, 15, 0), apiAt(0, 16, 0))
		if again.ID == early.ID {
			t.Errorf("rebooking reused id %s", again.ID)
		}
		// And it is taken again.
		h.book(t, h.alice, h.printer.ID, apiAt(0, 15, 30), apiAt(0, 16, 30)).want(t, 409, fablab.CodeBookingConflict)
	})
	t.Run("cancelling twice", func(t *testing.T) {
		cancel(h.alice, early).want(t, 422, fablab.CodeNotCancellable)
	})
	t.Run("exactly at the cutoff", func(t *testing.T) {
		h.clock.Set(apiAt(0, 9, 0))
		cancel(h.alice, atCutoff).want(t, http.StatusOK, "")
	})
	t.Run("after the cutoff a maker cannot", func(t *testing.T) {
		h.clock.Set(apiAt(0, 10, 1))
		before := h.state(t)
		cancel(h.alice, late).want(t, 422, fablab.CodeCancellationCutoff)
		h.unchanged(t, before)
	})
	t.Run("after the cutoff staff can", func(t *testing.T) {
		res := cancel(h.staff, late)
		res.want(t, http.StatusOK, "")
		var b fablab.Booking
		res.decode(t, &b)
		if b.State != fablab.BookingCancelled || b.CancelledBy != h.staff.ID {
			t.Errorf("cancelled booking %+v", b)
		}
	})
	t.Run("the late slot is free again", func(t *testing.T) {
		book(h.bob, apiAt(0, 12, 0), apiAt(0, 13, 0))
	})
	t.Run("availability follows", func(t *testing.T) {
		res := h.do(t, "GET", "/api/v1/machines/"+h.printer.ID.String()+"/availability", h.alice.Token, nil)
		res.want(t, http.StatusOK, "")
		var av struct{ Busy []fablab.Interval }
		res.decode(t, &av)
		want := []fablab.Interval{{Start: apiAt(0, 12, 0), End: apiAt(0, 13, 0)}, {Start: apiAt(0, 15, 0), End: apiAt(0, 16, 0)}}
		if !apiSameIntervals(av.Busy, want) {
			t.Errorf("busy %v, want %v", av.Busy, want)
		}
	})
}
