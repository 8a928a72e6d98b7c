package httpapi

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/fablab"
)

// TestAPIMakerVisibility checks that a maker sees and changes only their own
// bookings and profile, and sees other people's bookings only as busy time.
func TestAPIMakerVisibility(t *testing.T) {
	h := newAPIHarness(t)
	mine := h.seedBooking(t, h.printer.ID, h.alice, apiAt(1, 9, 0), apiAt(1, 10, 0))
	mine2 := h.seedBooking(t, h.laser.ID, h.alice, apiAt(2, 9, 0), apiAt(2, 10, 0))
	theirs := h.seedBooking(t, h.printer.ID, h.bob, apiAt(1, 14, 0), apiAt(1, 15, 30))
	byStaff := h.seedBooking(t, h.printer.ID, h.staff, apiAt(1, 16, 0), apiAt(1, 17, 0))

	ids := func(t *testing.T, res apiResp) []fablab.ID {
		t.Helper()
		res.want(t, http.StatusOK, "")
		var bs []fablab.Booking
		res.decode(t, &bs)
		out := []fablab.ID{}
		for _, b := range bs {
			out = append(out, b.ID)
		}
		return out
	}
	week := "from=" + url.QueryEscape(apiAt(0, 0, 0).Format(time.RFC3339)) + "&to=" + url.QueryEscape(apiAt(7, 0, 0).Format(time.RFC3339))

	t.Run("list shows only own bookings", func(t *testing.T) {
		got := ids(t, h.do(t, "GET", "/api/v1/bookings?"+week, h.alice.Token, nil))
		if want := []fablab.ID{mine.ID, mine2.ID}; !slices.Equal(got, want) {
			t.Errorf("alice sees %v, want %v", got, want)
		}
	})
	t.Run("list by machine shows only own bookings", func(t *testing.T) {
		got := ids(t, h.do(t, "GET", "/api/v1/bookings?machine_id="+h.printer.ID.String()+"&"+week, h.alice.Token, nil))
		if want := []fablab.ID{mine.ID}; !slices.Equal(got, want) {
			t.Errorf("alice sees %v on the printer, want %v", got, want)
		}
	})
	t.Run("own member_id is fine", func(t *testing.T) {
		got := ids(t, h.do(t, "GET", "/api/v1/bookings?member_id="+h.alice.ID.String()+"&"+week, h.alice.Token, nil))
		if want := []fablab.ID{mine.ID, mine2.ID}; !slices.Equal(got, want) {
			t.Errorf("alice sees %v, want %v", got, want)
		}
	})
	t.Run("member_id of another is forbidden", func(t *testing.T) {
		h.do(t, "GET", "/api/v1/bookings?member_id="+h.bob.ID.String(), h.alice.Token, nil).want(t, http.StatusForbidden, fablab.EFORBIDDEN)
	})
	t.Run("staff see anyone's", func(t *testing.T) {
		got := ids(t, h.do(t, "GET", "/api/v1/bookings?member_id="+h.bob.ID.String()+"&"+week, h.staff.Token, nil))
		if want := []fablab.ID{theirs.ID}; !slices.Equal(got, want) {
			t.Errorf("staff see %v for bob, want %v", got, want)
		}
		got = ids(t, h.do(t, "GET", "/api/v1/bookings?machine_id="+h.printer.ID.String()+"&"+week, h.staff.Token, nil))
		if want := []fablab.ID{mine.ID, theirs.ID, byStaff.ID}; !slices.Equal(got, want) {
			t.Errorf("staff see %v on the printer, want %v", got, want)
		}
	})
	t.Run("get another's booking is not found", func(t *testing.T) {
		h.do(t, "GET", "/api/v1/bookings/"+theirs.ID.String(), h.alice.Token, nil).want(t, http.StatusNotFound, fablab.ENOTFOUND)
		h.do(t, "GET", "/api/v1/bookings/"+mine.ID.String(), h.alice.Token, nil).want(t, http.StatusOK, "")
	})
	t.Run("cancel another's booking is not found", func(t *testing.T) {
		before := h.state(t)
		h.do(t, "DELETE", "/api/v1/bookings/"+theirs.ID.String(), h.alice.Token, nil).want(t, http.StatusNotFound, fablab.ENOTFOUND)
		h.unchanged(t, before)
		var b fablab.Booking
		res := h.do(t, "GET", "/api/v1/bookings/"+theirs.ID.String(), h.bob.Token, nil)
		res.want(t, http.StatusOK, "")
		res.decode(t, &b)
		if b.State != fablab.BookingConfirmed {
			t.Errorf("bob's booking is %s after alice tried to cancel it", b.State)
		}
	})
	t.Run("another member is not found", func(t *testing.T) {
		for _, path := range []string{
			"/api/v1/members/" + h.bob.ID.String(),
			"/api/v1/members/" + h.staff.ID.String(),
			"/api/v1/members/" + h.bob.ID.String() + "/qualifications",
		} {
			h.do(t, "GET", path, h.alice.Token, nil).want(t, http.StatusNotFound, fablab.ENOTFOUND)
		}
		res := h.do(t, "GET", "/api/v1/members/"+h.alice.ID.String(), h.alice.Token, nil)
		res.want(t, http.StatusOK, "")
		var m fablab.Member
		res.decode(t, &m)
		if m.ID != h.alice.ID || m.Email != h.alice.Email {
			t.Errorf("alice reads %+v", m)
		}
	})
	t.Run("availability shows others as busy time only", func(t *testing.T) {
		path := "/api/v1/machines/" + h.printer.ID.String() + "/availability?from=" +
			url.QueryEscape(apiAt(1, 0, 0).Format(time.RFC3339)) + "&to=" + url.QueryEscape(apiAt(2, 0, 0).Format(time.RFC3339))
		res := h.do(t, "GET", path, h.alice.Token, nil)
		res.want(t, http.StatusOK, "")
		var doc map[string]json.RawMessage
		res.decode(t, &doc)
		for k := range doc {
			if !slices.Contains([]string{"machine_id", "from", "to", "time_zone", "free", "busy"}, k) {
				t.Errorf("availability has a field %q", k)
			}
		}
		var busy, free []map[string]any
		if err := json.Unmarshal(doc["busy"], &busy); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(doc["free"], &free); err != nil {
			t.Fatal(err)
		}
		for _, iv := range append(busy, free...) {
			if len(iv) != 2 || iv["start"] == nil || iv["end"] == nil {
				t.Errorf("an interval shows more than start and end: %v", iv)
			}
		}
		var parsed struct{ Busy, Free []fablab.Interval }
		res.decode(t, &parsed)
		want := []fablab.Interval{
			{Start: apiAt(1, 9, 0), End: apiAt(1, 10, 0)},
			{Start: apiAt(1, 14, 0), End: apiAt(1, 15, 30)},
			{Start: apiAt(1, 16, 0), End: apiAt(1, 17, 0)},
		}
		if !apiSameIntervals(parsed.Busy, want) {
			t.Errorf("busy %v, want %v", parsed.Busy, want)
		}
		wantFree := []fablab.Interval{
			{Start: apiAt(1, 10, 0), End: apiAt(1, 14, 0)},
			{Start: apiAt(1, 15, 30), End: apiAt(1, 16, 0)},
			{Start: apiAt(1, 17, 0), End: apiAt(1, 21, 0)},
		}
		if !apiSameIntervals(parsed.Free, wantFree) {
			t.Errorf("free %v, want %v", parsed.Free, wantFree)
		}
	})
}

func apiSameIntervals(a, b []fablab.Interval) bool {
	return slices.EqualFunc(a, b, func(x, y fablab.Interval) bool { return x.Start.Equal(y.Start) && x.End.Equal(y.End) })
}
