package bolt_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
)

// TestConcurrentBookings starts 64 goroutines at once, each booking one of 8
// slot patterns on the same machine. Whatever the interleaving, the accepted
// bookings never overlap, every refusal is a booking_conflict with an
// accepted booking, and where the patterns form groups of mutually
// overlapping requests exactly one request per group wins.
func TestConcurrentBookings(t *testing.T) {
	const goroutines = 64
	tests := []struct {
		name     string
		patterns [8]fablab.Interval
		// wantWins is the exact number of accepted bookings, or -1 when it
		// depends on the interleaving.
		wantWins int
	}{
		{
			name:     "8 disjoint slots",
			patterns: [8]fablab.Interval{span(0, 60), span(60, 120), span(120, 180), span(180, 240), span(240, 300), span(300, 360), span(360, 420), span(420, 480)},
			wantWins: 8,
		},
		{
			name: "8 patterns around one instant",
			// All contain [179, 180) (11:59–12:00), so they overlap pairwise.
			patterns: [8]fablab.Interval{span(150, 210), span(179, 210), span(120, 240), span(170, 200), span(60, 200), span(175, 330), span(0, 181), span(179, 180)},
			wantWins: 1,
		},
		{
			name: "4 groups of 2 touching patterns",
			// [a,b) and [b,c) do not overlap: each group of identical
			// patterns has its own winner.
			patterns: [8]fablab.Interval{span(0, 30), span(30, 60), span(60, 90), span(90, 120), span(0, 30), span(30, 60), span(60, 90), span(90, 120)},
			wantWins: 4,
		},
		{
			name: "chain of half-overlapping slots",
			// Pattern k overlaps k-1 and k+1 only: 4 to 8 can win.
			patterns: [8]fablab.Interval{span(0, 60), span(30, 90), span(60, 120), span(90, 150), span(120, 180), span(150, 210), span(180, 240), span(210, 270)},
			wantWins: -1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStore(t)
			ctx := t.Context()
			machine := mustMachine(t, s, "Laser").ID
			var makers [4]fablab.ID
			for i := range makers {
				makers[i] = mustMember(t, s, fmt.Sprintf("Maker%d", i)).ID
			}

			type result struct {
				pattern int
				booking fablab.Booking
				err     error
			}
			results := make([]result, goroutines)
			start := make(chan struct{})
			var ready, done sync.WaitGroup
			for g := range goroutines {
				ready.Add(1)
				done.Go(func() {
					p := g % len(tt.patterns)
					iv := tt.patterns[p]
					b := fablab.Booking{MachineID: machine, MemberID: makers[g%len(makers)], Start: iv.Start, End: iv.End, CreatedBy: makers[g%len(makers)]}
					ready.Done()
					<-start
					booked, err := s.CreateBooking(ctx, b, accept)
					results[g] = result{pattern: p, booking: booked, err: err}
				})
			}
			ready.Wait()
			close(start)
			done.Wait()

			var wins []fablab.Booking
			for g, r := range results {
				switch code := fablab.ErrorCode(r.err); code {
				case "":
					wins = append(wins, r.booking)
				case fablab.CodeBookingConflict:
				default:
					t.Errorf("goroutine %d: %v, want success or %s", g, r.err, fablab.CodeBookingConflict)
				}
			}
			if tt.wantWins >= 0 && len(wins) != tt.wantWins {
				t.Errorf("%d bookings accepted, want %d", len(wins), tt.wantWins)
			}
			if msg := overlapping(wins); msg != "" {
				t.Fatalf("accepted bookings overlap: %s", msg)
			}
			// A request was refused only because an accepted booking overlaps
			// it (nothing is ever cancelled here), so the winners are maximal.
			for g, r := range results {
				if r.err == nil {
					continue
				}
				iv := tt.patterns[r.pattern]
				found := false
				for _, w := range wins {
					found = found || w.Interval().Overlaps(iv)
				}
				if !found {
					t.Errorf("goroutine %d refused [%v, %v) but no accepted booking overlaps it", g, iv.Start, iv.End)
				}
			}
			stored, err := s.Bookings(ctx, bolt.BookingFilter{MachineID: machine, From: at(-600), To: at(1200)})
			if err != nil {
				t.Fatal(err)
			}
			if len(stored) != len(wins) {
				t.Errorf("%d bookings stored, %d accepted", len(stored), len(wins))
			}
			seen := map[fablab.ID]bool{}
			for _, b := range stored {
				if seen[b.ID] {
					t.Errorf("booking id %s stored twice", b.ID)
				}
				seen[b.ID] = true
			}
			checkNoOverlap(t, s, machine)
		})
	}
}

// TestConcurrentBookingsRefusedByCheck mixes requests whose rule check
// refuses them into a burst on 8 disjoint slots. Concurrent creates may share
// a commit, and a refused one must neither be written nor take the others
// down with it.
func TestConcurrentBookingsRefusedByCheck(t *testing.T) {
	const goroutines = 64
	s, _ := newStore(t)
	ctx := t.Context()
	machine := mustMachine(t, s, "Laser").ID
	maker := mustMember(t, s, "Maker").ID
	quota := func(bolt.BookingContext) error { return fablab.Errorf(fablab.CodeWeeklyQuota, "quota") }

	errs := make([]error, goroutines)
	start := make(chan struct{})
	var ready, done sync.WaitGroup
	for g := range goroutines {
		ready.Add(1)
		done.Go(func() {
			check := accept
			if g%2 == 1 {
				check = quota
			}
			slot := (g / 2) % 8 // every slot gets 4 accepted and 4 refused requests
			iv := span(60*slot, 60*slot+60)
			ready.Done()
			<-start
			_, errs[g] = s.CreateBooking(ctx, fablab.Booking{MachineID: machine, MemberID: maker, Start: iv.Start, End: iv.End, CreatedBy: maker}, check)
		})
	}
	ready.Wait()
	close(start)
	done.Wait()

	count := map[string]int{}
	for g, err := range errs {
		code := fablab.ErrorCode(err)
		count[code]++
		if g%2 == 1 && code != fablab.CodeWeeklyQuota {
			t.Errorf("goroutine %d (refusing check): %v, want %s", g, err, fablab.CodeWeeklyQuota)
		}
	}
	want := map[string]int{"": 8, fablab.CodeBookingConflict: 24, fablab.CodeWeeklyQuota: 32}
	if fmt.Sprint(count) != fmt.Sprint(want) {
		t.Errorf("outcomes %v, want %v", count, want)
	}
	stored, err := s.Bookings(ctx, bolt.BookingFilter{MachineID: machine, From: at(-600), To: at(1200)})
	if err != nil || len(stored) != 8 {
		t.Errorf("%d bookings stored (%v), want 8", len(stored), err)
	}
	checkNoOverlap(t, s, machine)
}
