package access

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/wire"
)

// decideNow is a Tuesday afternoon in Paris.
var decideNow = time.Date(2026, 3, 3, 14, 0, 0, 0, time.UTC)

func mins(n int) time.Duration { return time.Duration(n) * time.Minute }

// facts builds the facts of a tap by maker 7 on an available laser that
// needs training 1, which the maker holds; edit changes them per case.
func facts(edit func(f *fablab.AccessFacts)) *fablab.AccessFacts {
	rules := fablab.DefaultBookingRules() // check-in 15, walk-in ≤ 120, min 30
	f := &fablab.AccessFacts{
		Settings:  fablab.DefaultSettings(),
		Machine:   fablab.Machine{ID: 3, Name: "Laser", State: fablab.MachineAvailable, RequiredTrainings: []fablab.ID{1}, Rules: rules},
		Member:    &fablab.Member{ID: 7, Role: fablab.RoleMaker, Status: fablab.StatusActive},
		Quals:     []fablab.Qualification{{MemberID: 7, TrainingID: 1}},
		Trainings: map[fablab.ID]string{1: "Laser safety"},
	}
	if edit != nil {
		edit(f)
	}
	return f
}

func booking(id, member fablab.ID, from, to time.Duration) fablab.Booking {
	return fablab.Booking{ID: id, MemberID: member, Start: decideNow.Add(from), End: decideNow.Add(to), State: fablab.BookingConfirmed}
}

func TestDecide(t *testing.T) {
	expired := decideNow.Add(-time.Hour)
	tests := []struct {
		name string
		edit func(f *fablab.AccessFacts)
		want Decision
	}{
		{"1 unknown badge", func(f *fablab.AccessFacts) { f.Member = nil },
			Decision{Outcome: Deny, Reason: wire.ReasonUnknownBadge}},
		{"2 tap-out of one's own session, even suspended since", func(f *fablab.AccessFacts) {
			f.Open = &fablab.Session{ID: 9, MemberID: 7}
			f.Member.Status = fablab.StatusSuspended
			f.Machine.State = fablab.MachineMaintenance
		}, Decision{Outcome: TapOut}},
		{"3 suspended", func(f *fablab.AccessFacts) { f.Member.Status = fablab.StatusSuspended },
			Decision{Outcome: Deny, Reason: wire.ReasonMemberInactive}},
		{"3 membership expired", func(f *fablab.AccessFacts) { f.Member.MembershipUntil = &expired },
			Decision{Outcome: Deny, Reason: wire.ReasonMemberInactive}},
		{"4 machine in maintenance", func(f *fablab.AccessFacts) { f.Machine.State = fablab.MachineMaintenance },
			Decision{Outcome: Deny, Reason: wire.ReasonMachineUnavailable}},
		{"4 retired, even for staff", func(f *fablab.AccessFacts) { f.Machine.State = fablab.MachineRetired; f.Member.Role = fablab.RoleStaff },
			Decision{Outcome: Deny, Reason: wire.ReasonMachineUnavailable}},
		{"4 staff may unlock a machine in maintenance", func(f *fablab.AccessFacts) {
			f.Machine.State = fablab.MachineMaintenance
			f.Member.Role = fablab.RoleStaff
		}, Decision{Outcome: Grant, Until: decideNow.Add(mins(120)), Override: true}},
		{"5 training missing", func(f *fablab.AccessFacts) { f.Quals = nil },
			Decision{Outcome: Deny, Reason: wire.ReasonTrainingRequired, Detail: "Laser safety"}},
		{"5 training expired", func(f *fablab.AccessFacts) { f.Quals[0].ExpiresAt = &expired },
			Decision{Outcome: Deny, Reason: wire.ReasonTrainingRequired, Detail: "Laser safety"}},
		{"5 qualification of another member does not count", func(f *fablab.AccessFacts) { f.Quals[0].MemberID = 8 },
			Decision{Outcome: Deny, Reason: wire.ReasonTrainingRequired, Detail: "Laser safety"}},
		{"6 in use by another", func(f *fablab.AccessFacts) { f.Open = &fablab.Session{ID: 9, MemberID: 8} },
			Decision{Outcome: Deny, Reason: wire.ReasonInUse}},
		{"6 staff tap force-closes another's session", func(f *fablab.AccessFacts) {
			f.Open = &fablab.Session{ID: 9, MemberID: 8}
			f.Member.Role = fablab.RoleStaff
		}, Decision{Outcome: ForceClose}},
		{"7 own booking covering now: until its end", func(f *fablab.AccessFacts) { f.Bookings = []fablab.Booking{booking(5, 7, -mins(30), mins(90))} },
			Decision{Outcome: Grant, Until: decideNow.Add(mins(90)), BookingID: 5}},
		{"7 check-in opens 15 min before start when free", func(f *fablab.AccessFacts) { f.Bookings = []fablab.Booking{booking(5, 7, mins(15), mins(75))} },
			Decision{Outcome: Grant, Until: decideNow.Add(mins(75)), BookingID: 5}},
		{"7 check-in not open 16 min before: walk-in until then", func(f *fablab.AccessFacts) {
			f.Bookings = []fablab.Booking{booking(5, 7, mins(45), mins(105))}
			st := decideNow.Add(mins(45))
			f.NextStart = &st
		}, Decision{Outcome: Grant, Until: decideNow.Add(mins(45))}},
		{"7 no early check-in while another's booking runs", func(f *fablab.AccessFacts) {
			f.Bookings = []fablab.Booking{booking(4, 8, -mins(60), mins(10)), booking(5, 7, mins(10), mins(70))}
			st := decideNow.Add(mins(10))
			f.NextStart = &st
		}, Decision{Outcome: Deny, Reason: wire.ReasonBookedByOther, Detail: "15:10"}},
		{"8 walk-in capped by max walk-in", nil, Decision{Outcome: Grant, Until: decideNow.Add(mins(120))}},
		{"8 walk-in capped by the next booking", func(f *fablab.AccessFacts) {
			f.Bookings = []fablab.Booking{booking(4, 8, mins(60), mins(120))}
			st := decideNow.Add(mins(60))
			f.NextStart = &st
		}, Decision{Outcome: Grant, Until: decideNow.Add(mins(60))}},
		{"8 walk-in shorter than the minimum", func(f *fablab.AccessFacts) {
			f.Bookings = []fablab.Booking{booking(4, 8, mins(20), mins(80))}
			st := decideNow.Add(mins(20))
			f.NextStart = &st
		}, Decision{Outcome: Deny, Reason: wire.ReasonBookedSoon, Detail: "15:20"}},
		{"8 walk-ins not allowed", func(f *fablab.AccessFacts) { f.Machine.Rules.WalkIn = false },
			Decision{Outcome: Deny, Reason: wire.ReasonBookedByOther}},
		{"9 booked by another now", func(f *fablab.AccessFacts) { f.Bookings = []fablab.Booking{booking(4, 8, -mins(30), mins(30))} },
			Decision{Outcome: Deny, Reason: wire.ReasonBookedByOther, Detail: "15:30"}},
		{"9 next free time after back-to-back bookings", func(f *fablab.AccessFacts) {
			f.Bookings = []fablab.Booking{booking(4, 8, -mins(30), mins(30)), booking(6, 9, mins(30), mins(90)), booking(7, 9, mins(120), mins(150))}
		}, Decision{Outcome: Deny, Reason: wire.ReasonBookedByOther, Detail: "16:30"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Decide(facts(tt.edit), decideNow); got != tt.want {
				t.Fatalf("Decide = %+v\n          want %+v", got, tt.want)
			}
		})
	}
}

func TestMessageSpeaksTheMembersLanguage(t *testing.T) {
	for _, r := range []string{wire.ReasonUnknownBadge, wire.ReasonMemberInactive, wire.ReasonMachineUnavailable, wire.ReasonTrainingRequired, wire.ReasonInUse, wire.ReasonBookedSoon, wire.ReasonBookedByOther, wire.ReasonSessionEnding, wire.ReasonNoMachine} {
		fr, en := Message("fr", r, "x"), Message("en", r, "x")
		if fr == en || fr == r || en == r || len(fr) > 200 || len(en) > 200 {
			t.Errorf("%s: fr %q, en %q", r, fr, en)
		}
	}
}

func TestMessageFitsTheContract(t *testing.T) {
	long := strings.Repeat("é", 150) // 300 bytes
	m := Message("fr", wire.ReasonTrainingRequired, long)
	if len(m) > wire.MaxMessageLen || !utf8.ValidString(m) {
		t.Fatalf("message of %d bytes (valid UTF-8: %v)", len(m), utf8.ValidString(m))
	}
}
