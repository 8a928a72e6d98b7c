package bolt_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
)

// checkNoOverlap fails if two occupying bookings of machine overlap anywhere
// near t0, or if Occupied disagrees with the occupying bookings.
func checkNoOverlap(t testing.TB, s *bolt.Store, machine fablab.ID) {
	t.Helper()
	from, to := t0.Add(-30*24*time.Hour), t0.Add(30*24*time.Hour)
	bs, err := s.Bookings(t.Context(), bolt.BookingFilter{MachineID: machine, From: from, To: to, OnlyOccupying: true})
	if err != nil {
		t.Fatal(err)
	}
	if msg := overlapping(bs); msg != "" {
		t.Fatalf("machine %s: %s", machine, msg)
	}
	occ, err := s.Occupied(t.Context(), machine, from, to)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]fablab.Interval, len(bs))
	for i, b := range bs {
		want[i] = b.Interval()
	}
	if !sameIntervals(occ, want) {
		t.Fatalf("machine %s: Occupied = %v, occupying bookings = %v", machine, occ, want)
	}
}

func TestCreateBookingOverlap(t *testing.T) {
	// On machine "a": cancelled [-60,0), confirmed [60,180), confirmed [240,300).
	tests := []struct {
		name    string
		machine string
		iv      fablab.Interval
		code    string
	}{
		{name: "touching the end of nothing, over a cancelled booking", machine: "a", iv: span(-60, 0)},
		{name: "touching before", machine: "a", iv: span(0, 60)},
		{name: "fills the gap exactly", machine: "a", iv: span(180, 240)},
		{name: "touching after the last", machine: "a", iv: span(300, 360)},
		{name: "same interval", machine: "a", iv: span(60, 180), code: fablab.CodeBookingConflict},
		{name: "inside", machine: "a", iv: span(90, 120), code: fablab.CodeBookingConflict},
		{name: "same start, shorter", machine: "a", iv: span(60, 90), code: fablab.CodeBookingConflict},
		{name: "same end, shorter", machine: "a", iv: span(150, 180), code: fablab.CodeBookingConflict},
		{name: "covering", machine: "a", iv: span(0, 240), code: fablab.CodeBookingConflict},
		{name: "covering both", machine: "a", iv: span(30, 330), code: fablab.CodeBookingConflict},
		{name: "overlapping the start", machine: "a", iv: span(30, 90), code: fablab.CodeBookingConflict},
		{name: "overlapping the end", machine: "a", iv: span(150, 210), code: fablab.CodeBookingConflict},
		{name: "one second over the start", machine: "a", iv: fablab.Interval{Start: at(0), End: at(60).Add(time.Second)}, code: fablab.CodeBookingConflict},
		{name: "one second over the end", machine: "a", iv: fablab.Interval{Start: at(180).Add(-time.Second), End: at(240)}, code: fablab.CodeBookingConflict},
		{name: "gap plus the next", machine: "a", iv: span(180, 250), code: fablab.CodeBookingConflict},
		{name: "same interval on another machine", machine: "b", iv: span(60, 180)},
		{name: "ends before it starts", machine: "a", iv: span(400, 390), code: fablab.EINVALID},
		{name: "empty", machine: "a", iv: span(400, 400), code: fablab.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, clock := newStore(t)
			ada, grace := mustMember(t, s, "Ada"), mustMember(t, s, "Grace")
			machines := map[string]fablab.Machine{"a": mustMachine(t, s, "A"), "b": mustMachine(t, s, "B")}
			a := machines["a"].ID
			cancelled := mustBook(t, s, a, ada.ID, span(-60, 0))
			mustSetState(t, s, cancelled.ID, fablab.BookingCancelled)
			mustBook(t, s, a, ada.ID, span(60, 180))
			mustBook(t, s, a, ada.ID, span(240, 300))
			before, _ := s.Occupied(t.Context(), a, at(-600), at(600))

			b, err := book(t, s, machines[tt.machine].ID, grace.ID, tt.iv)
			wantCode(t, err, tt.code)
			after, _ := s.Occupied(t.Context(), a, at(-600), at(600))
			if err != nil {
				if !sameIntervals(before, after) {
					t.Errorf("refused booking changed the slots: %v → %v", before, after)
				}
			} else {
				if b.ID == 0 || b.State != fablab.BookingConfirmed || !b.CreatedAt.Equal(clock.Now()) || !b.Start.Equal(tt.iv.Start) || !b.End.Equal(tt.iv.End) {
					t.Errorf("created booking = %+v", b)
				}
				if stored, err := s.Booking(t.Context(), b.ID); err != nil || stored.State != fablab.BookingConfirmed || stored.MemberID != grace.ID {
					t.Errorf("stored booking = %+v, %v", stored, err)
				}
			}
			for _, m := range machines {
				checkNoOverlap(t, s, m.ID)
			}
		})
	}
}

func TestCreateBookingCheck(t *testing.T) {
	errPlain := errors.New("disk on fire")
	tests := []struct {
		name  string
		check func(bolt.BookingContext) error
		code  string
		is    error
	}{
		{name: "rule refuses", check: func(bolt.BookingContext) error {
			return fablab.Errorf(fablab.CodeWeeklyQuota, "quota")
		}, code: fablab.CodeWeeklyQuota},
		{name: "plain error", check: func(bolt.BookingContext) error { return errPlain }, code: fablab.EINTERNAL, is: errPlain},
		{name: "wrapped error", check: func(bc bolt.BookingContext) error {
			_, err := bc.MemberMinutes(at(0), at(60))
			return errors.Join(err, fablab.Errorf(fablab.CodeTrainingRequired, "laser safety"))
		}, code: fablab.CodeTrainingRequired},
		{name: "accepts", check: accept},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStore(t)
			laser := mustTraining(t, s, "Laser safety")
			ada := mustMember(t, s, "Ada")
			m := mustMachine(t, s, "Laser", laser.ID)
			if _, err := s.GrantQualification(t.Context(), fablab.Qualification{MemberID: ada.ID, TrainingID: laser.ID, GrantedBy: ada.ID}); err != nil {
				t.Fatal(err)
			}
			var seen bolt.BookingContext
			b, err := s.CreateBooking(t.Context(), fablab.Booking{MachineID: m.ID, MemberID: ada.ID, Start: at(0), End: at(60), CreatedBy: ada.ID},
				func(bc bolt.BookingContext) error {
					seen = bc
					return tt.check(bc)
				})
			wantCode(t, err, tt.code)
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v does not wrap %v", err, tt.is)
			}
			if seen.Machine == nil || seen.Machine.ID != m.ID || seen.Member == nil || seen.Member.ID != ada.ID ||
				seen.Settings == nil || seen.Settings.TimeZone != "Europe/Paris" ||
				len(seen.Qualifications) != 1 || seen.Qualifications[0].TrainingID != laser.ID {
				t.Errorf("check saw %+v", seen)
			}
			bs, _ := s.Bookings(t.Context(), bolt.BookingFilter{MachineID: m.ID, From: at(-600), To: at(600)})
			occ, _ := s.Occupied(t.Context(), m.ID, at(-600), at(600))
			mine, _ := s.Bookings(t.Context(), bolt.BookingFilter{MemberID: ada.ID, From: at(-600), To: at(600)})
			if tt.code != "" {
				if len(bs) != 0 || len(occ) != 0 || len(mine) != 0 {
					t.Errorf("refused booking was written: bookings %v, occupied %v, by member %v", bs, occ, mine)
				}
				// Nothing was allocated either: the next booking gets the first id.
				next := mustBook(t, s, m.ID, ada.ID, span(0, 60))
				if next.ID != 1 {
					t.Errorf("next booking id = %s, want 1", next.ID)
				}
				return
			}
			if len(bs) != 1 || bs[0].ID != b.ID || len(occ) != 1 || len(mine) != 1 {
				t.Errorf("accepted booking: bookings %v, occupied %v, by member %v", bs, occ, mine)
			}
		})
	}
}

func TestSetBookingState(t *testing.T) {
	tests := []struct {
		name      string
		state     string
		wantFreed bool
	}{
		{name: "cancel", state: fablab.BookingCancelled, wantFreed: true},
		{name: "no-show", state: fablab.BookingNoShow, wantFreed: true},
		{name: "complete", state: fablab.BookingCompleted},
		{name: "confirm again", state: fablab.BookingConfirmed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, clock := newStore(t)
			ada, staff := mustMember(t, s, "Ada"), mustMember(t, s, "Staff")
			m := mustMachine(t, s, "Laser")
			b := mustBook(t, s, m.ID, ada.ID, span(60, 120))
			_, err := book(t, s, m.ID, ada.ID, span(60, 120))
			wantCode(t, err, fablab.CodeBookingConflict)

			// A refusing check changes nothing.
			errNo := fablab.Errorf(fablab.CodeCancellationCutoff, "too late")
			_, err = s.SetBookingState(t.Context(), b.ID, tt.state, staff.ID, func(fablab.Machine, fablab.Booking) error { return errNo })
			wantCode(t, err, fablab.CodeCancellationCutoff)
			if got, _ := s.Booking(t.Context(), b.ID); got.State != fablab.BookingConfirmed || got.CancelledAt != nil {
				t.Fatalf("refused state change stored %+v", got)
			}

			clock.Advance(time.Hour)
			var sawMachine fablab.Machine
			var sawBooking fablab.Booking
			got, err := s.SetBookingState(t.Context(), b.ID, tt.state, staff.ID, func(m fablab.Machine, b fablab.Booking) error {
				sawMachine, sawBooking = m, b
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if sawMachine.ID != m.ID || sawBooking.ID != b.ID || sawBooking.State != fablab.BookingConfirmed {
				t.Errorf("check saw machine %s and booking %+v", sawMachine.ID, sawBooking)
			}
			stored, _ := s.Booking(t.Context(), b.ID)
			if got.State != tt.state || stored.State != tt.state {
				t.Errorf("state returned %q, stored %q; want %q", got.State, stored.State, tt.state)
			}
			if tt.state == fablab.BookingCancelled {
				if stored.CancelledAt == nil || !stored.CancelledAt.Equal(clock.Now()) || stored.CancelledBy != staff.ID {
					t.Errorf("cancelled at %v by %s, want %v by %s", stored.CancelledAt, stored.CancelledBy, clock.Now(), staff.ID)
				}
			} else if stored.CancelledAt != nil {
				t.Errorf("%s booking has cancelled_at %v", tt.state, stored.CancelledAt)
			}

			occ, _ := s.Occupied(t.Context(), m.ID, at(0), at(600))
			if freed := len(occ) == 0; freed != tt.wantFreed {
				t.Errorf("after %s: occupied %v, want freed=%v", tt.state, occ, tt.wantFreed)
			}
			again, err := book(t, s, m.ID, staff.ID, span(60, 120))
			if tt.wantFreed {
				if err != nil {
					t.Fatalf("booking the freed slot: %v", err)
				}
				if occ, _ := s.Occupied(t.Context(), m.ID, at(0), at(600)); len(occ) != 1 {
					t.Errorf("occupied after rebooking = %v", occ)
				}
				// The released booking is still listed (by machine and member), the new one too.
				all, _ := s.Bookings(t.Context(), bolt.BookingFilter{MachineID: m.ID, From: at(0), To: at(600)})
				if !slices.Equal(ids(all), []fablab.ID{b.ID, again.ID}) {
					t.Errorf("bookings = %v, want [%s %s]", ids(all), b.ID, again.ID)
				}
				occupying, _ := s.Bookings(t.Context(), bolt.BookingFilter{MachineID: m.ID, From: at(0), To: at(600), OnlyOccupying: true})
				if !slices.Equal(ids(occupying), []fablab.ID{again.ID}) {
					t.Errorf("occupying bookings = %v, want [%s]", ids(occupying), again.ID)
				}
			} else {
				wantCode(t, err, fablab.CodeBookingConflict)
			}
			checkNoOverlap(t, s, m.ID)
		})
	}
}

// A booking that released its slot must not take it back while another
// booking holds it, or the slot index and the bookings disagree.
func TestSetBookingStateReoccupy(t *testing.T) {
	tests := []struct {
		name string
		// taken: another booking holds the slot when the released one comes back.
		taken bool
		from  string
		to    string
		code  string
	}{
		{name: "cancelled to completed, slot taken", taken: true, from: fablab.BookingCancelled, to: fablab.BookingCompleted, code: fablab.CodeBookingConflict},
		{name: "no-show to confirmed, slot taken", taken: true, from: fablab.BookingNoShow, to: fablab.BookingConfirmed, code: fablab.CodeBookingConflict},
		{name: "no-show to completed, slot free", from: fablab.BookingNoShow, to: fablab.BookingCompleted},
		{name: "cancelled to confirmed, slot free", from: fablab.BookingCancelled, to: fablab.BookingConfirmed},
		{name: "released to released", taken: true, from: fablab.BookingCancelled, to: fablab.BookingNoShow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStore(t)
			ada, grace := mustMember(t, s, "Ada"), mustMember(t, s, "Grace")
			m := mustMachine(t, s, "Laser")
			a := mustBook(t, s, m.ID, ada.ID, span(60, 120))
			mustSetState(t, s, a.ID, tt.from)
			if tt.taken {
				mustBook(t, s, m.ID, grace.ID, span(90, 150)) // a different start: a different slot key
				mustBook(t, s, m.ID, grace.ID, span(150, 180))
			}
			_, err := s.SetBookingState(t.Context(), a.ID, tt.to, 0, allow)
			wantCode(t, err, tt.code)
			checkNoOverlap(t, s, m.ID)
			want := tt.to
			if err != nil {
				want = tt.from
			}
			if got, _ := s.Booking(t.Context(), a.ID); got.State != want {
				t.Errorf("state = %q, want %q", got.State, want)
			}
			// Whatever happened, the slot is not free for a third booking.
			if !tt.taken && tt.code == "" {
				_, err := book(t, s, m.ID, grace.ID, span(60, 120))
				wantCode(t, err, fablab.CodeBookingConflict)
			}
			// Releasing a again never drops someone else's slot.
			mustSetState(t, s, a.ID, fablab.BookingCancelled)
			checkNoOverlap(t, s, m.ID)
			if tt.taken {
				occ, _ := s.Occupied(t.Context(), m.ID, at(0), at(600))
				if !sameIntervals(occ, []fablab.Interval{span(90, 150), span(150, 180)}) {
					t.Errorf("occupied = %v, want Grace's bookings", occ)
				}
			}
		})
	}
}

// The same trap with the same start, where the slot keys collide.
func TestSetBookingStateReoccupySameStart(t *testing.T) {
	s, _ := newStore(t)
	ada, grace := mustMember(t, s, "Ada"), mustMember(t, s, "Grace")
	m := mustMachine(t, s, "Laser")
	a := mustBook(t, s, m.ID, ada.ID, span(60, 120))
	mustSetState(t, s, a.ID, fablab.BookingCancelled)
	g := mustBook(t, s, m.ID, grace.ID, span(60, 120))
	if _, err := s.SetBookingState(t.Context(), a.ID, fablab.BookingCompleted, 0, allow); fablab.ErrorCode(err) != fablab.CodeBookingConflict {
		t.Errorf("re-occupying a taken slot: %v, want %s", err, fablab.CodeBookingConflict)
	}
	mustSetState(t, s, a.ID, fablab.BookingCancelled)
	_, err := book(t, s, m.ID, ada.ID, span(60, 120))
	wantCode(t, err, fablab.CodeBookingConflict)
	occ, _ := s.Occupied(t.Context(), m.ID, at(0), at(600))
	if !sameIntervals(occ, []fablab.Interval{g.Interval()}) {
		t.Errorf("occupied = %v, want Grace's booking", occ)
	}
	checkNoOverlap(t, s, m.ID)
}

func TestSetBookingStateUnknownState(t *testing.T) {
	s, _ := newStore(t)
	ada := mustMember(t, s, "Ada")
	m := mustMachine(t, s, "Laser")
	b := mustBook(t, s, m.ID, ada.ID, span(60, 120))
	for _, state := range []string{"", "deleted", "Cancelled"} {
		_, err := s.SetBookingState(t.Context(), b.ID, state, 0, allow)
		wantCode(t, err, fablab.EINVALID)
	}
	if got, _ := s.Booking(t.Context(), b.ID); got.State != fablab.BookingConfirmed {
		t.Errorf("state = %q after refused changes", got.State)
	}
	if occ, _ := s.Occupied(t.Context(), m.ID, at(0), at(600)); len(occ) != 1 {
		t.Errorf("occupied = %v, want the booking", occ)
	}
}

// bookingSet is the data of TestBookingsRange and TestOccupied: machines M
// and N, members Ada and Grace, range of interest [0, 240).
type bookingSet struct {
	m, n       fablab.ID
	ada, grace fablab.ID
	b          map[string]fablab.Booking
}

func newBookingSet(t *testing.T, s *bolt.Store) bookingSet {
	t.Helper()
	d := bookingSet{
		m: mustMachine(t, s, "M").ID, n: mustMachine(t, s, "N").ID,
		ada: mustMember(t, s, "Ada").ID, grace: mustMember(t, s, "Grace").ID,
		b: map[string]fablab.Booking{},
	}
	week := fablab.MaxBookingMinutes
	for _, x := range []struct {
		name            string
		machine, member fablab.ID
		iv              fablab.Interval
		state           string
	}{
		{"ends before", d.m, d.ada, span(-120, -60), ""},
		{"runs into range", d.m, d.ada, span(-60, 30), ""},
		{"inside", d.m, d.grace, span(30, 90), fablab.BookingCompleted},
		{"cancelled", d.m, d.ada, span(90, 150), fablab.BookingCancelled},
		{"no-show", d.m, d.grace, span(150, 180), fablab.BookingNoShow},
		{"ends at to", d.m, d.ada, span(180, 240), ""},
		{"starts at to", d.m, d.grace, span(240, 300), ""},
		{"week long on N", d.n, d.ada, span(-week+30, 30), ""},
		{"on N", d.n, d.ada, span(60, 120), ""},
	} {
		b := mustBook(t, s, x.machine, x.member, x.iv)
		if x.state != "" {
			b = mustSetState(t, s, b.ID, x.state)
		}
		d.b[x.name] = b
	}
	return d
}

func TestBookingsRange(t *testing.T) {
	s, _ := newStore(t)
	d := newBookingSet(t, s)
	tests := []struct {
		name string
		f    bolt.BookingFilter
		want []string
		code string
	}{
		{name: "machine", f: bolt.BookingFilter{MachineID: d.m, From: at(0), To: at(240)},
			want: []string{"runs into range", "inside", "cancelled", "no-show", "ends at to"}},
		{name: "machine, occupying", f: bolt.BookingFilter{MachineID: d.m, From: at(0), To: at(240), OnlyOccupying: true},
			want: []string{"runs into range", "inside", "ends at to"}},
		{name: "member", f: bolt.BookingFilter{MemberID: d.ada, From: at(0), To: at(240)},
			want: []string{"week long on N", "runs into range", "on N", "cancelled", "ends at to"}},
		{name: "other member", f: bolt.BookingFilter{MemberID: d.grace, From: at(0), To: at(240)},
			want: []string{"inside", "no-show"}},
		{name: "other member, occupying", f: bolt.BookingFilter{MemberID: d.grace, From: at(0), To: at(240), OnlyOccupying: true},
			want: []string{"inside"}},
		{name: "machine with a week-long booking", f: bolt.BookingFilter{MachineID: d.n, From: at(0), To: at(240)},
			want: []string{"week long on N", "on N"}},
		{name: "touching neighbours excluded", f: bolt.BookingFilter{MachineID: d.m, From: at(30), To: at(90)},
			want: []string{"inside"}},
		{name: "one minute", f: bolt.BookingFilter{MachineID: d.m, From: at(29), To: at(30)},
			want: []string{"runs into range"}},
		{name: "nothing there", f: bolt.BookingFilter{MachineID: d.m, From: at(1000), To: at(2000)}, want: []string{}},
		{name: "both machine and member", f: bolt.BookingFilter{MachineID: d.m, MemberID: d.ada, From: at(0), To: at(240)}, code: fablab.EINVALID},
		{name: "neither", f: bolt.BookingFilter{From: at(0), To: at(240)}, code: fablab.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Bookings(t.Context(), tt.f)
			wantCode(t, err, tt.code)
			if err != nil {
				return
			}
			want := make([]fablab.ID, len(tt.want))
			for i, name := range tt.want {
				want[i] = d.b[name].ID
			}
			if !slices.Equal(ids(got), want) {
				t.Errorf("ids = %v, want %v (%v)", ids(got), want, tt.want)
			}
			if got == nil {
				t.Errorf("Bookings returned nil, want an empty slice")
			}
		})
	}
}

func TestOccupied(t *testing.T) {
	s, _ := newStore(t)
	d := newBookingSet(t, s)
	week := fablab.MaxBookingMinutes
	tests := []struct {
		name     string
		machine  fablab.ID
		from, to int
		want     []fablab.Interval
	}{
		{name: "range", machine: d.m, from: 0, to: 240, want: []fablab.Interval{span(-60, 30), span(30, 90), span(180, 240)}},
		{name: "starts inside the first", machine: d.m, from: 29, to: 31, want: []fablab.Interval{span(-60, 30), span(30, 90)}},
		{name: "touching neighbours excluded", machine: d.m, from: 30, to: 90, want: []fablab.Interval{span(30, 90)}},
		{name: "released only", machine: d.m, from: 90, to: 180, want: nil},
		{name: "from at a start", machine: d.m, from: 180, to: 181, want: []fablab.Interval{span(180, 240)}},
		{name: "before everything", machine: d.m, from: -1000, to: -120, want: nil},
		{name: "everything", machine: d.m, from: -1000, to: 1000, want: []fablab.Interval{span(-120, -60), span(-60, 30), span(30, 90), span(180, 240), span(240, 300)}},
		{name: "week-long booking from its last minute", machine: d.n, from: 29, to: 60, want: []fablab.Interval{span(-week+30, 30)}},
		{name: "other machine", machine: d.n, from: 0, to: 240, want: []fablab.Interval{span(-week+30, 30), span(60, 120)}},
		{name: "unknown machine", machine: 999, from: -1000, to: 1000, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Occupied(t.Context(), tt.machine, at(tt.from), at(tt.to))
			if err != nil {
				t.Fatal(err)
			}
			if !sameIntervals(got, tt.want) {
				t.Errorf("Occupied = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMemberMinutes(t *testing.T) {
	s, _ := newStore(t)
	m, n := mustMachine(t, s, "M").ID, mustMachine(t, s, "N").ID
	ada, grace := mustMember(t, s, "Ada").ID, mustMember(t, s, "Grace").ID
	day := 24 * 60
	for _, x := range []struct {
		machine, member fablab.ID
		iv              fablab.Interval
		state           string
	}{
		{m, ada, span(-30, 0), ""},                               // starts before the range
		{m, ada, span(0, 60), ""},                                // 60
		{m, ada, span(120, 150), fablab.BookingCancelled},        // released
		{m, ada, span(200, 230), fablab.BookingCompleted},        // 30, still occupying
		{m, ada, span(300, 330), fablab.BookingNoShow},           // released
		{m, ada, span(day, day+120), ""},                         // 120, next day
		{n, ada, span(0, 90), ""},                                // another machine
		{m, grace, span(400, 460), ""},                           // another member
		{m, grace, span(day+200, day+230), ""},                   // another member
		{m, ada, span(2*day-10, 2*day+50), ""},                   // starts in day 2, ends in day 3: 60
		{n, grace, span(2*day+100, 2*day+200), ""},               // another member, another machine
		{m, ada, span(3*day, 3*day+30), fablab.BookingCompleted}, // 30
	} {
		b := mustBook(t, s, x.machine, x.member, x.iv)
		if x.state != "" {
			mustSetState(t, s, b.ID, x.state)
		}
	}
	tests := []struct {
		name     string
		machine  fablab.ID
		member   fablab.ID
		from, to int
		want     int
	}{
		{name: "first day", machine: m, member: ada, from: 0, to: day, want: 90},
		{name: "two days", machine: m, member: ada, from: 0, to: 2 * day, want: 270},
		{name: "including the one before", machine: m, member: ada, from: -60, to: 2 * day, want: 300},
		{name: "started before from is not counted", machine: m, member: ada, from: -29, to: 1, want: 60},
		{name: "booking starting at to is not counted", machine: m, member: ada, from: 60, to: 200, want: 0},
		{name: "booking starting at from is counted", machine: m, member: ada, from: 200, to: 201, want: 30},
		{name: "starts in range, ends after", machine: m, member: ada, from: 2*day - 10, to: 2 * day, want: 60},
		{name: "everything", machine: m, member: ada, from: -day, to: 4 * day, want: 330},
		{name: "other machine", machine: n, member: ada, from: -day, to: 4 * day, want: 90},
		{name: "other member", machine: m, member: grace, from: -day, to: 4 * day, want: 90},
		{name: "other member, other machine", machine: n, member: grace, from: -day, to: 4 * day, want: 100},
		{name: "empty range", machine: m, member: ada, from: 0, to: 0, want: 0},
	}
	errDone := errors.New("measured")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got int
			_, err := s.CreateBooking(t.Context(), fablab.Booking{MachineID: tt.machine, MemberID: tt.member, Start: at(10 * day), End: at(10*day + 30), CreatedBy: tt.member},
				func(bc bolt.BookingContext) error {
					var err error
					got, err = bc.MemberMinutes(at(tt.from), at(tt.to))
					if err != nil {
						return err
					}
					return errDone
				})
			if !errors.Is(err, errDone) {
				t.Fatalf("CreateBooking: %v", err)
			}
			if got != tt.want {
				t.Errorf("MemberMinutes = %d, want %d", got, tt.want)
			}
		})
	}
}

// An actor id of zero (a system grant, a seeded booking) must not leave a
// record behind that cannot be read back: either the store refuses it, or
// it stays readable.
func TestZeroActorIsNotPoison(t *testing.T) {
	tests := []struct {
		name  string
		write func(s *bolt.Store, member, machine, training fablab.ID) error
	}{
		{name: "qualification granted by nobody", write: func(s *bolt.Store, member, _, training fablab.ID) error {
			_, err := s.GrantQualification(t.Context(), fablab.Qualification{MemberID: member, TrainingID: training})
			return err
		}},
		{name: "booking created by nobody", write: func(s *bolt.Store, member, machine, _ fablab.ID) error {
			_, err := s.CreateBooking(t.Context(), fablab.Booking{MachineID: machine, MemberID: member, Start: at(0), End: at(60)}, accept)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStore(t)
			ada := mustMember(t, s, "Ada")
			m := mustMachine(t, s, "Laser")
			tr := mustTraining(t, s, "Laser safety")
			if err := tt.write(s, ada.ID, m.ID, tr.ID); err != nil {
				wantCode(t, err, fablab.EINVALID)
			}
			if _, err := s.Qualifications(t.Context(), ada.ID); err != nil {
				t.Errorf("Qualifications: %v", err)
			}
			if _, err := s.Bookings(t.Context(), bolt.BookingFilter{MachineID: m.ID, From: at(-60), To: at(120)}); err != nil {
				t.Errorf("Bookings: %v", err)
			}
			if _, err := book(t, s, m.ID, ada.ID, span(120, 180)); err != nil {
				t.Errorf("a later booking of the member: %v", err)
			}
		})
	}
}

// Range listings look back at most fablab.MaxBookingMinutes, so a longer
// booking must either be refused or still be found.
func TestBookingLongerThanMaxSpan(t *testing.T) {
	week := fablab.MaxBookingMinutes
	tests := []struct {
		name    string
		minutes int
	}{
		{name: "exactly the cap", minutes: week},
		{name: "one minute over", minutes: week + 1},
		{name: "a month", minutes: 30 * 24 * 60},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStore(t)
			ada := mustMember(t, s, "Ada")
			m := mustMachine(t, s, "Laser")
			b, err := book(t, s, m.ID, ada.ID, span(0, tt.minutes))
			if tt.minutes <= week && err != nil {
				t.Fatalf("booking of %d minutes: %v", tt.minutes, err)
			}
			if err != nil {
				wantCode(t, err, fablab.CodeTooLong)
				return
			}
			last := fablab.Interval{Start: at(tt.minutes - 1), End: at(tt.minutes)}
			for name, f := range map[string]bolt.BookingFilter{
				"machine": {MachineID: m.ID, From: last.Start, To: last.End},
				"member":  {MemberID: ada.ID, From: last.Start, To: last.End},
			} {
				got, err := s.Bookings(t.Context(), f)
				if err != nil || !slices.Equal(ids(got), []fablab.ID{b.ID}) {
					t.Errorf("Bookings by %s over the last minute = %v, %v; want [%s]", name, ids(got), err, b.ID)
				}
			}
			if occ, _ := s.Occupied(t.Context(), m.ID, last.Start, last.End); len(occ) != 1 {
				t.Errorf("Occupied over the last minute = %v", occ)
			}
		})
	}
}
