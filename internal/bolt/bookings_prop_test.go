package bolt_test

import (
	"cmp"
	"fmt"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/bolt/bolttest"
	"github.com/fabgate/fabgate/internal/fablab"
)

// modelBooking is the property test's idea of one stored booking.
type modelBooking struct {
	id      fablab.ID
	machine int
	iv      fablab.Interval
	state   string
}

func (b modelBooking) occupies() bool {
	return b.state == fablab.BookingConfirmed || b.state == fablab.BookingCompleted
}

// bookingModel is a plain slice of bookings: it predicts what the store must
// answer without any index.
type bookingModel struct {
	bookings []modelBooking
}

// conflicts reports whether iv overlaps an occupying booking of machine other than skip.
func (m *bookingModel) conflicts(machine int, iv fablab.Interval, skip fablab.ID) bool {
	return slices.ContainsFunc(m.bookings, func(b modelBooking) bool {
		return b.id != skip && b.machine == machine && b.occupies() && b.iv.Overlaps(iv)
	})
}

// occupied returns the occupying intervals of machine that overlap [from, to), by start.
func (m *bookingModel) occupied(machine int, from, to time.Time) []fablab.Interval {
	var out []fablab.Interval
	win := fablab.Interval{Start: from, End: to}
	for _, b := range m.bookings {
		if b.machine == machine && b.occupies() && b.iv.Overlaps(win) {
			out = append(out, b.iv)
		}
	}
	slices.SortFunc(out, func(a, b fablab.Interval) int { return a.Start.Compare(b.Start) })
	return out
}

// ofMachine returns the ids and states of every booking of machine, in the
// store's listing order (start, then id).
func (m *bookingModel) ofMachine(machine int) []string {
	var bs []modelBooking
	for _, b := range m.bookings {
		if b.machine == machine {
			bs = append(bs, b)
		}
	}
	slices.SortFunc(bs, func(a, b modelBooking) int {
		return cmp.Or(a.iv.Start.Compare(b.iv.Start), cmp.Compare(a.id, b.id))
	})
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = fmt.Sprintf("%s:%s", b.id, b.state)
	}
	return out
}

// TestBookingStateMachine drives the store with random creates, cancels and
// completions on two machines and checks it against bookingModel after
// every step: the same bookings succeed, the slot index matches, and no two
// occupying bookings of a machine overlap.
//
// The store skips fsync here (NoSync): the property is about transactions and
// indexes, not durability, and 100 runs of ~30 commits each would otherwise
// take 5–20 s on a busy disk. The file is still checked for consistency at
// cleanup, like bolttest.Open does.
func TestBookingStateMachine(t *testing.T) {
	s, _ := openFile(t, tempDBPath(t), bolt.Options{NoSync: true, Now: bolttest.NewClock(t0.Add(-24 * time.Hour)).Now})
	ctx := t.Context()
	var members [3]fablab.ID
	for i := range members {
		members[i] = mustMember(t, s, fmt.Sprintf("Maker%d", i)).ID
	}
	const (
		days    = 3
		grid    = 30 * time.Minute
		maxLen  = 8 // grid steps: 240 minutes
		horizon = days*48 + maxLen
	)
	// The window every check reads covers all bookings with a day to spare.
	winFrom, winTo := t0.Add(-24*time.Hour), t0.Add(horizon*grid+24*time.Hour)
	checks := 0

	rapid.Check(t, func(rt *rapid.T) {
		checks++
		// Fresh machines for each run, so runs (and shrinking) do not see each
		// other's bookings; the file is shared to keep the test fast.
		var machines [2]fablab.ID
		for i := range machines {
			m, err := s.CreateMachine(ctx, fablab.Machine{Name: fmt.Sprintf("run %d machine %d", checks, i), Kind: fablab.KindCNC})
			if err != nil {
				rt.Fatalf("create machine: %v", err)
			}
			machines[i] = m.ID
		}
		model := &bookingModel{}

		pick := func(rt *rapid.T) *modelBooking {
			if len(model.bookings) == 0 {
				rt.Skip("no bookings yet")
			}
			return &model.bookings[rapid.IntRange(0, len(model.bookings)-1).Draw(rt, "booking")]
		}
		// setState moves b to state and checks the store agrees with the model.
		setState := func(rt *rapid.T, b *modelBooking, state string) {
			next := *b
			next.state = state
			wantConflict := !b.occupies() && next.occupies() && model.conflicts(b.machine, b.iv, b.id)
			got, err := s.SetBookingState(ctx, b.id, state, members[0], allow)
			switch {
			case wantConflict && fablab.ErrorCode(err) != fablab.CodeBookingConflict:
				rt.Fatalf("booking %s %s → %s over a taken slot: got %v, want %s", b.id, b.state, state, err, fablab.CodeBookingConflict)
			case wantConflict:
				return
			case err != nil:
				rt.Fatalf("booking %s %s → %s: %v", b.id, b.state, state, err)
			case got.State != state || got.ID != b.id:
				rt.Fatalf("booking %s → %s returned %+v", b.id, state, got)
			}
			*b = next
		}

		rt.Repeat(map[string]func(*rapid.T){
			"create": func(rt *rapid.T) {
				machine := rapid.IntRange(0, len(machines)-1).Draw(rt, "machine")
				member := rapid.IntRange(0, len(members)-1).Draw(rt, "member")
				start := t0.Add(time.Duration(rapid.IntRange(0, days*48-1).Draw(rt, "start")) * grid)
				iv := fablab.Interval{Start: start, End: start.Add(time.Duration(rapid.IntRange(1, maxLen).Draw(rt, "length")) * grid)}
				wantConflict := model.conflicts(machine, iv, 0)
				b, err := book(t, s, machines[machine], members[member], iv)
				if wantConflict {
					if fablab.ErrorCode(err) != fablab.CodeBookingConflict {
						rt.Fatalf("machine %d [%v, %v): got %v, want %s", machine, iv.Start, iv.End, err, fablab.CodeBookingConflict)
					}
					return
				}
				if err != nil {
					rt.Fatalf("machine %d [%v, %v) is free in the model: %v", machine, iv.Start, iv.End, err)
				}
				if b.ID == 0 || b.State != fablab.BookingConfirmed || b.MachineID != machines[machine] || b.MemberID != members[member] {
					rt.Fatalf("created booking = %+v", b)
				}
				model.bookings = append(model.bookings, modelBooking{id: b.ID, machine: machine, iv: iv, state: fablab.BookingConfirmed})
			},
			"cancel": func(rt *rapid.T) {
				setState(rt, pick(rt), fablab.BookingCancelled)
			},
			"finish": func(rt *rapid.T) {
				b := pick(rt)
				setState(rt, b, rapid.SampledFrom([]string{fablab.BookingCompleted, fablab.BookingNoShow}).Draw(rt, "state"))
			},
			"occupied in a window": func(rt *rapid.T) {
				machine := rapid.IntRange(0, len(machines)-1).Draw(rt, "machine")
				from := t0.Add(time.Duration(rapid.IntRange(-2, horizon).Draw(rt, "from")) * grid / 2)
				to := from.Add(time.Duration(rapid.IntRange(1, 16).Draw(rt, "width")) * grid / 2)
				got, err := s.Occupied(ctx, machines[machine], from, to)
				if err != nil {
					rt.Fatal(err)
				}
				if want := model.occupied(machine, from, to); !sameIntervals(got, want) {
					rt.Fatalf("Occupied(machine %d, %v, %v) = %v, want %v", machine, from, to, got, want)
				}
			},
			"": func(rt *rapid.T) {
				for i, id := range machines {
					occ, err := s.Occupied(ctx, id, winFrom, winTo)
					if err != nil {
						rt.Fatal(err)
					}
					if want := model.occupied(i, winFrom, winTo); !sameIntervals(occ, want) {
						rt.Fatalf("machine %d: Occupied = %v, model = %v", i, occ, want)
					}
					occupying, err := s.Bookings(ctx, bolt.BookingFilter{MachineID: id, From: winFrom, To: winTo, OnlyOccupying: true})
					if err != nil {
						rt.Fatal(err)
					}
					if msg := overlapping(occupying); msg != "" {
						rt.Fatalf("machine %d: %s", i, msg)
					}
					all, err := s.Bookings(ctx, bolt.BookingFilter{MachineID: id, From: winFrom, To: winTo})
					if err != nil {
						rt.Fatal(err)
					}
					got := make([]string, len(all))
					for j, b := range all {
						got[j] = fmt.Sprintf("%s:%s", b.ID, b.State)
					}
					if want := model.ofMachine(i); !slices.Equal(got, want) {
						rt.Fatalf("machine %d: bookings %v, model %v", i, got, want)
					}
				}
			},
		})
	})
}
