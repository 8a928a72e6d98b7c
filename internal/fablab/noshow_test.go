package fablab

import (
	"testing"
	"time"
)

func TestNoShowDue(t *testing.T) {
	start := time.Date(2026, 12, 2, 13, 30, 0, 0, time.UTC)
	min := func(n int) time.Time { return start.Add(time.Duration(n) * time.Minute) }
	rules := BookingRules{NoShowReleaseMinutes: 15, CheckInMinutes: 10}
	b := Booking{ID: 1, MachineID: 7, MemberID: 3, Start: start, End: min(60), State: BookingConfirmed}
	sess := func(machine, member ID, at int) Session {
		return Session{MachineID: machine, MemberID: member, Started: min(at)}
	}
	for _, tc := range []struct {
		name     string
		edit     func(*Booking, *BookingRules)
		sessions []Session
		now      int // minutes after the start
		want     bool
	}{
		{"nobody came", nil, nil, 15, true},
		{"not yet released", nil, nil, 14, false},
		{"came at the start", nil, []Session{sess(7, 3, 0)}, 30, false},
		{"came in the check-in window", nil, []Session{sess(7, 3, -10)}, 30, false},
		{"came before the check-in window", nil, []Session{sess(7, 3, -11)}, 30, true},
		{"came at the release", nil, []Session{sess(7, 3, 15)}, 30, false},
		{"came after the release", nil, []Session{sess(7, 3, 16)}, 30, true},
		{"someone else came", nil, []Session{sess(7, 4, 0)}, 30, true},
		{"came to another machine", nil, []Session{sess(8, 3, 0)}, 30, true},
		{"machine never releases", func(_ *Booking, r *BookingRules) { r.NoShowReleaseMinutes = 0 }, nil, 60, false},
		{"cancelled", func(b *Booking, _ *BookingRules) { b.State = BookingCancelled }, nil, 60, false},
		{"already a no-show", func(b *Booking, _ *BookingRules) { b.State = BookingNoShow }, nil, 60, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, r := b, rules
			if tc.edit != nil {
				tc.edit(&b, &r)
			}
			if got := NoShowDue(&b, r, tc.sessions, min(tc.now)); got != tc.want {
				t.Errorf("NoShowDue = %v, want %v", got, tc.want)
			}
		})
	}
}
