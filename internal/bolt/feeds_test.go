package bolt_test

import (
	"slices"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
)

// feedKey is a distinct stand-in for the SHA-256 of a feed token.
func feedKey(b byte) (k [32]byte) {
	for i := range k {
		k[i] = b
	}
	return k
}

// wideWindow holds every booking of the tests, without a useful limit.
var wideWindow = bolt.FeedWindow{From: at(-100 * 24 * 60), Now: t0, To: at(400 * 24 * 60), Limit: 1000}

// A new token replaces the member's feed at once; a revocation deletes it,
// and revoking again is no error.
func TestCalendarFeedRotateAndRevoke(t *testing.T) {
	s, clock := newStore(t)
	ctx := t.Context()
	ada := mustMember(t, s, "Ada")

	_, err := s.MemberCalendarFeed(ctx, ada.ID)
	wantCode(t, err, fablab.ENOTFOUND)
	_, err = s.CalendarFeedContents(ctx, feedKey(1), wideWindow)
	wantCode(t, err, fablab.ENOTFOUND)

	first, err := s.PutCalendarFeed(ctx, ada.ID, feedKey(1))
	wantCode(t, err, "")
	if !first.CreatedAt.Equal(clock.Now().Truncate(time.Second)) {
		t.Errorf("created_at %v, want the clock's %v", first.CreatedAt, clock.Now())
	}
	got, err := s.CalendarFeedContents(ctx, feedKey(1), wideWindow)
	wantCode(t, err, "")
	if got.Member.ID != ada.ID || got.Member.Name != "Ada" {
		t.Errorf("the feed shows member %s %q, want %s Ada", got.Member.ID, got.Member.Name, ada.ID)
	}

	clock.Advance(time.Hour)
	second, err := s.PutCalendarFeed(ctx, ada.ID, feedKey(2))
	wantCode(t, err, "")
	_, err = s.CalendarFeedContents(ctx, feedKey(1), wideWindow)
	wantCode(t, err, fablab.ENOTFOUND) // the old token is gone
	_, err = s.CalendarFeedContents(ctx, feedKey(2), wideWindow)
	wantCode(t, err, "")
	cur, err := s.MemberCalendarFeed(ctx, ada.ID)
	wantCode(t, err, "")
	if !cur.CreatedAt.Equal(second.CreatedAt) || !second.CreatedAt.After(first.CreatedAt) {
		t.Errorf("current feed created %v, want the second one's %v (after %v)", cur.CreatedAt, second.CreatedAt, first.CreatedAt)
	}

	wantCode(t, s.RevokeCalendarFeed(ctx, ada.ID), "")
	_, err = s.CalendarFeedContents(ctx, feedKey(2), wideWindow)
	wantCode(t, err, fablab.ENOTFOUND)
	_, err = s.MemberCalendarFeed(ctx, ada.ID)
	wantCode(t, err, fablab.ENOTFOUND)
	wantCode(t, s.RevokeCalendarFeed(ctx, ada.ID), "")

	_, err = s.PutCalendarFeed(ctx, 999, feedKey(3))
	wantCode(t, err, fablab.ENOTFOUND)
}

// Whatever ends a member's sessions (suspension, role change, new
// password) deletes the feed; other changes keep it. A suspended member
// cannot make a new one.
func TestCalendarFeedEndsWithTheSessions(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	for _, tc := range []struct {
		name   string
		change func(*fablab.Member)
		keeps  bool
	}{
		{"name change", func(m *fablab.Member) { m.Name += " L." }, true},
		{"suspension", func(m *fablab.Member) { m.Status = fablab.StatusSuspended }, false},
		{"role change", func(m *fablab.Member) { m.Role = fablab.RoleStaff }, false},
		{"new password", func(m *fablab.Member) { m.PasswordHash = "$argon2id$other" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mustMember(t, s, "Member")
			key := feedKey(byte(m.ID))
			_, err := s.PutCalendarFeed(ctx, m.ID, key)
			wantCode(t, err, "")
			_, err = s.UpdateMember(ctx, m.ID, func(m *fablab.Member) error { tc.change(m); return nil })
			wantCode(t, err, "")
			_, err = s.CalendarFeedContents(ctx, key, wideWindow)
			_, ferr := s.MemberCalendarFeed(ctx, m.ID)
			if tc.keeps {
				wantCode(t, err, "")
				wantCode(t, ferr, "")
			} else {
				wantCode(t, err, fablab.ENOTFOUND)
				wantCode(t, ferr, fablab.ENOTFOUND)
			}
		})
	}
	t.Run("suspended member makes none", func(t *testing.T) {
		m := mustMember(t, s, "Suspended")
		_, err := s.UpdateMember(ctx, m.ID, func(m *fablab.Member) error { m.Status = fablab.StatusSuspended; return nil })
		wantCode(t, err, "")
		_, err = s.PutCalendarFeed(ctx, m.ID, feedKey(200))
		wantCode(t, err, fablab.EFORBIDDEN)
		_, err = s.CalendarFeedContents(ctx, feedKey(200), wideWindow)
		wantCode(t, err, fablab.ENOTFOUND)
	})
}

// The feed shows the member's own bookings of every state that start in
// the window, by start, with their machines; at most Limit of them, those
// ahead first.
func TestCalendarFeedContents(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	ada, bob := mustMember(t, s, "Ada"), mustMember(t, s, "Bob")
	laser, printer := mustMachine(t, s, "Laser"), mustMachine(t, s, "Printer")
	day := 24 * 60
	var adas []fablab.ID // ada's bookings in the window, by start
	// Outside the window on both sides.
	mustBook(t, s, laser.ID, ada.ID, span(-95*day, -95*day+60))
	mustBook(t, s, laser.ID, ada.ID, span(370*day, 370*day+60))
	for i, d := range []int{-80, -2, -1, 0, 1, 2, 30, 300} {
		m := laser
		if i%2 == 1 {
			m = printer
		}
		adas = append(adas, mustBook(t, s, m.ID, ada.ID, span(d*day, d*day+60)).ID)
		mustBook(t, s, m.ID, bob.ID, span(d*day+60, d*day+120)) // bob's, right after
	}
	mustSetState(t, s, adas[2], fablab.BookingCancelled)
	mustSetState(t, s, adas[1], fablab.BookingNoShow)
	mustSetState(t, s, adas[0], fablab.BookingCompleted)
	if _, err := s.PutCalendarFeed(ctx, ada.ID, feedKey(1)); err != nil {
		t.Fatal(err)
	}
	window := bolt.FeedWindow{From: at(-90 * day), Now: t0, To: at(365 * day), Limit: 1000}

	got, err := s.CalendarFeedContents(ctx, feedKey(1), window)
	wantCode(t, err, "")
	if !slices.Equal(ids(got.Bookings), adas) {
		t.Errorf("bookings %v, want ada's in the window %v", ids(got.Bookings), adas)
	}
	for _, b := range got.Bookings {
		if b.MemberID != ada.ID {
			t.Errorf("booking %s of member %s in ada's feed", b.ID, b.MemberID)
		}
		if got.Machines[b.MachineID].ID != b.MachineID {
			t.Errorf("machine %s of booking %s is missing", b.MachineID, b.ID)
		}
	}
	if got.Bookings[2].State != fablab.BookingCancelled || got.Bookings[1].State != fablab.BookingNoShow {
		t.Errorf("states %s, %s; want cancelled and no_show kept", got.Bookings[2].State, got.Bookings[1].State)
	}
	if got.Settings.TimeZone == "" || got.Member.PasswordHash != "" {
		t.Errorf("settings time zone %q, member password hash %q", got.Settings.TimeZone, got.Member.PasswordHash)
	}

	// With a limit, what is ahead comes first, then the latest past ones.
	for _, tc := range []struct {
		limit int
		want  []fablab.ID
	}{
		{0, nil},
		{3, adas[3:6]},
		{5, adas[3:]},
		{6, adas[2:]},
		{7, adas[1:]},
	} {
		window.Limit = tc.limit
		got, err := s.CalendarFeedContents(ctx, feedKey(1), window)
		wantCode(t, err, "")
		if !slices.Equal(ids(got.Bookings), tc.want) {
			t.Errorf("limit %d: bookings %v, want %v", tc.limit, ids(got.Bookings), tc.want)
		}
	}

	// A window whose now lies outside it reads only the window.
	late := bolt.FeedWindow{From: at(-90 * day), Now: at(1000 * day), To: at(-1 * day), Limit: 1000}
	got, err = s.CalendarFeedContents(ctx, feedKey(1), late)
	wantCode(t, err, "")
	if !slices.Equal(ids(got.Bookings), adas[:2]) {
		t.Errorf("window ending at day -1: bookings %v, want %v", ids(got.Bookings), adas[:2])
	}
}
