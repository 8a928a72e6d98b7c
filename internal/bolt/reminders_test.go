package bolt_test

import (
	"context"
	"testing"

	"github.com/fabgate/fabgate/internal/fablab"
)

// TestBookingsStartingAndMarkReminded: the reminder job's reads and its
// once-only mark.
func TestBookingsStartingAndMarkReminded(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	m := mustMember(t, s, "ada")
	laser, printer := mustMachine(t, s, "laser"), mustMachine(t, s, "printer")
	book := func(machine fablab.ID, from, to int) fablab.Booking {
		b, err := s.CreateBooking(ctx, fablab.Booking{MachineID: machine, MemberID: m.ID, Start: at(from), End: at(to), CreatedBy: m.ID}, accept)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	early := book(laser.ID, 60, 90)
	onPrinter := book(printer.ID, 70, 100)
	cancelled := book(laser.ID, 100, 120)
	if _, err := s.SetBookingState(ctx, cancelled.ID, fablab.BookingCancelled, m.ID, allow); err != nil {
		t.Fatal(err)
	}
	book(laser.ID, 120, 150) // starts at the end of the range: not in it

	got, err := s.BookingsStarting(ctx, at(60), at(120))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != early.ID || got[1].ID != onPrinter.ID {
		t.Fatalf("BookingsStarting = %+v, want the laser's and the printer's confirmed bookings", got)
	}

	for i, want := range []bool{true, false} {
		first, err := s.MarkReminded(ctx, early.ID, at(1))
		if err != nil || first != want {
			t.Fatalf("MarkReminded #%d = %v, %v; want %v", i+1, first, err, want)
		}
	}
	if b, _ := s.Booking(ctx, early.ID); b.RemindedAt == nil || !b.RemindedAt.Equal(at(1)) {
		t.Errorf("reminded_at = %v", b.RemindedAt)
	}
	if first, err := s.MarkReminded(ctx, cancelled.ID, at(1)); err != nil || first {
		t.Errorf("a cancelled booking marked reminded: %v, %v", first, err)
	}
	if _, err := s.MarkReminded(ctx, 999, at(1)); fablab.ErrorCode(err) != fablab.ENOTFOUND {
		t.Errorf("unknown booking: %v", err)
	}
}
