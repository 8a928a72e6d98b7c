package bolt_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/bolt/bolttest"
	"github.com/fabgate/fabgate/internal/fablab"
)

// t0 is a Monday morning in March 2026, the origin of every test timeline.
var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// at returns t0 plus m minutes.
func at(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }

// span returns [t0+from, t0+to) in minutes.
func span(from, to int) fablab.Interval { return fablab.Interval{Start: at(from), End: at(to)} }

// newStore opens a fresh store whose clock stands one day before t0.
func newStore(t *testing.T) (*bolt.Store, *bolttest.Clock) {
	t.Helper()
	clock := bolttest.NewClock(t0.Add(-24 * time.Hour))
	return bolttest.Open(t, clock.Now), clock
}

// openFile opens the store at path. The returned function runs the
// consistency check and the invariants' and closes the store; it runs at cleanup too unless the
// test called it first.
func openFile(t *testing.T, path string, opts bolt.Options) (*bolt.Store, func()) {
	t.Helper()
	s, err := bolt.Open(path, opts)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	var once sync.Once
	closeFn := func() {
		once.Do(func() {
			if err := s.Check(); err != nil {
				t.Errorf("store consistency check: %v", err)
			}
			if err := s.CheckInvariants(context.Background()); err != nil {
				t.Errorf("store invariants: %v", err)
			}
			if err := s.Close(); err != nil {
				t.Errorf("close store: %v", err)
			}
		})
	}
	t.Cleanup(closeFn)
	return s, closeFn
}

func tempDBPath(t *testing.T) string { return filepath.Join(t.TempDir(), "fabgate.db") }

var emailSeq atomic.Int64

// mustMember creates a maker in the student group with a unique email.
func mustMember(t testing.TB, s *bolt.Store, name string) fablab.Member {
	t.Helper()
	m, err := s.CreateMember(t.Context(), fablab.Member{
		Email: fmt.Sprintf("%s.%d@example.org", strings.ToLower(name), emailSeq.Add(1)),
		Name:  name, Group: "student",
	})
	if err != nil {
		t.Fatalf("create member %s: %v", name, err)
	}
	return m
}

// mustMachine creates an available laser cutter with the lab's default rules.
func mustMachine(t testing.TB, s *bolt.Store, name string, trainings ...fablab.ID) fablab.Machine {
	t.Helper()
	m, err := s.CreateMachine(t.Context(), fablab.Machine{Name: name, Kind: fablab.KindLaserCutter, RequiredTrainings: trainings})
	if err != nil {
		t.Fatalf("create machine %s: %v", name, err)
	}
	return m
}

func mustTraining(t testing.TB, s *bolt.Store, name string) fablab.Training {
	t.Helper()
	tr, err := s.CreateTraining(t.Context(), fablab.Training{Name: name})
	if err != nil {
		t.Fatalf("create training %s: %v", name, err)
	}
	return tr
}

// accept is a booking check that accepts everything.
func accept(bolt.BookingContext) error { return nil }

// allow is a state-change check that accepts everything.
func allow(fablab.Machine, fablab.Booking) error { return nil }

// book creates a booking of machine by member over iv with no rule check.
func book(t testing.TB, s *bolt.Store, machine, member fablab.ID, iv fablab.Interval) (fablab.Booking, error) {
	t.Helper()
	return s.CreateBooking(t.Context(), fablab.Booking{MachineID: machine, MemberID: member, Start: iv.Start, End: iv.End, CreatedBy: member}, accept)
}

func mustBook(t testing.TB, s *bolt.Store, machine, member fablab.ID, iv fablab.Interval) fablab.Booking {
	t.Helper()
	b, err := book(t, s, machine, member, iv)
	if err != nil {
		t.Fatalf("book %v–%v: %v", iv.Start, iv.End, err)
	}
	return b
}

func mustSetState(t testing.TB, s *bolt.Store, id fablab.ID, state string) fablab.Booking {
	t.Helper()
	b, err := s.SetBookingState(t.Context(), id, state, 0, allow)
	if err != nil {
		t.Fatalf("set booking %s to %s: %v", id, state, err)
	}
	return b
}

// wantCode fails the test unless err carries code ("" means no error).
func wantCode(t testing.TB, err error, code string) {
	t.Helper()
	if got := fablab.ErrorCode(err); got != code {
		t.Fatalf("error code = %q, want %q (err: %v)", got, code, err)
	}
}

// ids returns the ids of bookings, in order.
func ids(bs []fablab.Booking) []fablab.ID {
	out := make([]fablab.ID, len(bs))
	for i, b := range bs {
		out[i] = b.ID
	}
	return out
}

// sameIntervals compares interval lists by instant, not by location.
func sameIntervals(a, b []fablab.Interval) bool {
	return slices.EqualFunc(a, b, func(x, y fablab.Interval) bool {
		return x.Start.Equal(y.Start) && x.End.Equal(y.End)
	})
}

// overlapping returns a description of the first pair of overlapping bookings, or "".
func overlapping(bs []fablab.Booking) string {
	for i := range bs {
		for j := i + 1; j < len(bs); j++ {
			if bs[i].Interval().Overlaps(bs[j].Interval()) {
				return fmt.Sprintf("booking %s [%v, %v) overlaps booking %s [%v, %v)",
					bs[i].ID, bs[i].Start, bs[i].End, bs[j].ID, bs[j].Start, bs[j].End)
			}
		}
	}
	return ""
}
