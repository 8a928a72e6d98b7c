package bolt

import (
	"bytes"
	"context"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/fabgate/fabgate/internal/fablab"
)

// BookingContext is what a booking's rule check sees, read inside the same
// write transaction that stores the booking.
type BookingContext struct {
	Settings       *fablab.Settings
	Machine        *fablab.Machine
	Member         *fablab.Member
	Qualifications []fablab.Qualification
	// MemberMinutes returns the minutes of the member's occupying bookings on
	// this machine that start within [from, to).
	MemberMinutes func(from, to time.Time) (int, error)
}

// maxBookingSpan bounds how far before a range a booking that overlaps it may
// start; it lets range listings seek instead of scanning.
const maxBookingSpan = fablab.MaxBookingMinutes * time.Minute

func getBooking(tx *bbolt.Tx, id fablab.ID) (fablab.Booking, error) {
	var b fablab.Booking
	err := getJSON(tx.Bucket(bBookings), itob(id), &b, fmt.Sprintf("booking %s", id))
	return b, err
}

// slotConflict returns the occupying booking of machine that overlaps iv, or 0.
// Occupying bookings never overlap, so only the last one starting before
// iv.End can overlap iv.
func slotConflict(tx *bbolt.Tx, machine fablab.ID, iv fablab.Interval) (fablab.ID, fablab.Interval) {
	k, v := lastBefore(tx.Bucket(bSlots).Cursor(), cat(itob(machine), tkey(iv.End)))
	if k == nil || !bytes.HasPrefix(k, itob(machine)) {
		return 0, fablab.Interval{}
	}
	if end := fromTkey(v[8:16]); end.After(iv.Start) {
		return btoi(v[:8]), fablab.Interval{Start: fromTkey(k[8:16]), End: end}
	}
	return 0, fablab.Interval{}
}

// lastBefore positions c on the last key strictly below key.
func lastBefore(c *bbolt.Cursor, key []byte) (k, v []byte) {
	if k, _ = c.Seek(key); k == nil {
		return c.Last()
	}
	return c.Prev()
}

// CreateBooking stores a confirmed booking if check accepts it and it overlaps
// no occupying booking of the machine. Both the check and the write happen in
// one write transaction, so concurrent requests cannot double-book. The
// transaction may be shared with other concurrent bookings (group commit,
// see group.go), and check may then run more than once: it must have no effect but its verdict.
// Errors: EINVALID, CodeTooLong (longer than fablab.MaxBookingMinutes, which
// range listings rely on), ENOTFOUND (machine, member), CodeBookingConflict,
// whatever check returns.
func (s *Store) CreateBooking(ctx context.Context, b fablab.Booking, check func(BookingContext) error) (fablab.Booking, error) {
	b.Start, b.End = b.Start.UTC().Truncate(time.Second), b.End.UTC().Truncate(time.Second)
	if !b.End.After(b.Start) {
		return b, fablab.Errorf(fablab.EINVALID, "end must be after start")
	}
	if b.End.Sub(b.Start) > maxBookingSpan {
		return b, fablab.Errorf(fablab.CodeTooLong, "a booking lasts at most %d minutes", fablab.MaxBookingMinutes)
	}
	if b.CreatedBy == 0 {
		// fablab.ID refuses to decode 0: the stored booking could not be read back.
		return b, fablab.Errorf(fablab.EINVALID, "created_by is required")
	}
	err := s.batch(ctx, func(tx *bbolt.Tx) error {
		st, err := s.readSettings(tx)
		if err != nil {
			return err
		}
		m, err := s.readMachine(tx, b.MachineID)
		if err != nil {
			return err
		}
		mr, err := s.readMember(tx, b.MemberID)
		if err != nil {
			return err
		}
		quals, err := qualificationsOf(tx, b.MemberID)
		if err != nil {
			return err
		}
		bc := BookingContext{
			Settings: &st, Machine: &m, Member: &mr.Member, Qualifications: quals,
			MemberMinutes: func(from, to time.Time) (int, error) {
				return memberMinutes(tx, b.MemberID, b.MachineID, from, to)
			},
		}
		if err := check(bc); err != nil {
			return err
		}
		if other, taken := slotConflict(tx, b.MachineID, b.Interval()); other != 0 {
			loc := st.Location()
			return fablab.Errorf(fablab.CodeBookingConflict, "%s is already booked from %s to %s; pick a free slot",
				m.Name, taken.Start.In(loc).Format("2006-01-02 15:04"), taken.End.In(loc).Format("2006-01-02 15:04")).
				Say("problem_booking_conflict", "Machine", m.Name, "From", taken.Start.In(loc), "To", taken.End.In(loc))
		}
		bk := tx.Bucket(bBookings)
		if b.ID, err = nextID(bk); err != nil {
			return err
		}
		b.State = fablab.BookingConfirmed
		b.CreatedAt = s.now().UTC().Truncate(0)
		if err := putJSON(bk, itob(b.ID), b); err != nil {
			return err
		}
		return indexBooking(tx, b)
	})
	return b, err
}

func indexBooking(tx *bbolt.Tx, b fablab.Booking) error {
	id, start := itob(b.ID), tkey(b.Start)
	if err := tx.Bucket(bBookingsMach).Put(cat(itob(b.MachineID), start, id), nil); err != nil {
		return err
	}
	if err := tx.Bucket(bBookingsMember).Put(cat(itob(b.MemberID), start, id), nil); err != nil {
		return err
	}
	if b.Occupies() {
		return tx.Bucket(bSlots).Put(cat(itob(b.MachineID), start), cat(id, tkey(b.End)))
	}
	return nil
}

// memberMinutes sums the member's occupying bookings of machine starting in [from,to).
func memberMinutes(tx *bbolt.Tx, member, machine fablab.ID, from, to time.Time) (int, error) {
	total := 0
	err := forEachIndexed(tx, bBookingsMember, member, from, to, func(b fablab.Booking) bool {
		if b.MachineID == machine && b.Occupies() {
			total += int(b.End.Sub(b.Start) / time.Minute)
		}
		return true
	})
	return total, err
}

// forEachIndexed calls fn for bookings whose index entry under owner has a
// start in [from, to), in start order, until fn returns false.
func forEachIndexed(tx *bbolt.Tx, index []byte, owner fablab.ID, from, to time.Time, fn func(fablab.Booking) bool) error {
	prefix := itob(owner)
	limit := cat(prefix, tkey(to))
	c := tx.Bucket(index).Cursor()
	bk := tx.Bucket(bBookings)
	for k, _ := c.Seek(cat(prefix, tkey(from))); k != nil && bytes.Compare(k, limit) < 0; k, _ = c.Next() {
		var b fablab.Booking
		if err := getJSON(bk, k[16:24], &b, "booking"); err != nil {
			return err
		}
		if !fn(b) {
			return nil
		}
	}
	return nil
}

// Booking returns one booking. Errors: ENOTFOUND.
func (s *Store) Booking(ctx context.Context, id fablab.ID) (fablab.Booking, error) {
	var b fablab.Booking
	err := s.view(ctx, func(tx *bbolt.Tx) (err error) {
		b, err = getBooking(tx, id)
		return err
	})
	return b, err
}

// BookingFilter selects bookings overlapping [From, To) of one machine or one
// member (exactly one of MachineID and MemberID is set).
type BookingFilter struct {
	MachineID fablab.ID
	MemberID  fablab.ID
	From, To  time.Time
	// OnlyOccupying drops cancelled and no-show bookings.
	OnlyOccupying bool
}

// Bookings lists bookings matching f, by start. Errors: EINVALID.
func (s *Store) Bookings(ctx context.Context, f BookingFilter) ([]fablab.Booking, error) {
	index, owner := bBookingsMach, f.MachineID
	if f.MemberID != 0 {
		index, owner = bBookingsMember, f.MemberID
	}
	if (f.MachineID == 0) == (f.MemberID == 0) {
		return nil, fablab.Errorf(fablab.EINVALID, "filter by machine or by member")
	}
	out := []fablab.Booking{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		out = out[:0]
		iv := fablab.Interval{Start: f.From, End: f.To}
		return forEachIndexed(tx, index, owner, f.From.Add(-maxBookingSpan), f.To, func(b fablab.Booking) bool {
			if (f.MachineID == 0 || b.MachineID == f.MachineID) && b.Interval().Overlaps(iv) && (!f.OnlyOccupying || b.Occupies()) {
				out = append(out, b)
			}
			return true
		})
	})
	return out, err
}

// Occupied returns the intervals of machine's occupying bookings that overlap
// [from, to), by start, read from the slot index alone.
func (s *Store) Occupied(ctx context.Context, machine fablab.ID, from, to time.Time) ([]fablab.Interval, error) {
	var out []fablab.Interval
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		out = nil
		occupiedIn(tx, machine, from, to, func(_ fablab.ID, iv fablab.Interval) {
			out = append(out, iv)
		})
		return nil
	})
	return out, err
}

// occupiedIn calls fn, by start, for each occupying booking of machine that
// overlaps [from, to).
func occupiedIn(tx *bbolt.Tx, machine fablab.ID, from, to time.Time, fn func(fablab.ID, fablab.Interval)) {
	prefix := itob(machine)
	c := tx.Bucket(bSlots).Cursor()
	// The one booking starting before from may still run into the range.
	if k, v := lastBefore(c, cat(prefix, tkey(from))); k != nil && bytes.HasPrefix(k, prefix) && fromTkey(v[8:16]).After(from) {
		fn(btoi(v[:8]), fablab.Interval{Start: fromTkey(k[8:16]), End: fromTkey(v[8:16])})
	}
	limit := cat(prefix, tkey(to))
	for k, v := c.Seek(cat(prefix, tkey(from))); k != nil && bytes.Compare(k, limit) < 0; k, v = c.Next() {
		fn(btoi(v[:8]), fablab.Interval{Start: fromTkey(k[8:16]), End: fromTkey(v[8:16])})
	}
}

// SetBookingState moves a booking to a new state (cancel, no-show, complete)
// after check accepts it, updating the slot index. A booking that released
// its slot (cancelled, no-show) takes it back only if it is still free.
// Errors: EINVALID (unknown state), ENOTFOUND, CodeBookingConflict, whatever
// check returns.
func (s *Store) SetBookingState(ctx context.Context, id fablab.ID, state string, by fablab.ID, check func(fablab.Machine, fablab.Booking) error) (fablab.Booking, error) {
	switch state {
	case fablab.BookingConfirmed, fablab.BookingCancelled, fablab.BookingNoShow, fablab.BookingCompleted:
	default:
		return fablab.Booking{}, fablab.Errorf(fablab.EINVALID, "booking state must be confirmed, cancelled, no_show or completed")
	}
	var out fablab.Booking
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b, err := getBooking(tx, id)
		if err != nil {
			return err
		}
		m, err := getMachine(tx, b.MachineID)
		if err != nil {
			return err
		}
		if err := check(m, b); err != nil {
			return err
		}
		wasOccupying := b.Occupies()
		b.State = state
		if state == fablab.BookingCancelled {
			now := s.now().UTC().Truncate(0)
			b.CancelledAt, b.CancelledBy = &now, by
		}
		switch {
		case wasOccupying && !b.Occupies():
			if err := tx.Bucket(bSlots).Delete(cat(itob(b.MachineID), tkey(b.Start))); err != nil {
				return err
			}
		case !wasOccupying && b.Occupies():
			if other, _ := slotConflict(tx, b.MachineID, b.Interval()); other != 0 {
				return fablab.Errorf(fablab.CodeBookingConflict, "%s has been booked by someone else since this booking released its slot", m.Name)
			}
			if err := tx.Bucket(bSlots).Put(cat(itob(b.MachineID), tkey(b.Start)), cat(itob(b.ID), tkey(b.End))); err != nil {
				return err
			}
		}
		out = b
		return putJSON(tx.Bucket(bBookings), itob(id), b)
	})
	return out, err
}

// Calendar is what an availability read needs, read in one transaction.
type Calendar struct {
	Settings fablab.Settings
	Machine  fablab.Machine
	Occupied []fablab.Interval // occupying bookings overlapping the range, by start
}

// Calendar reads a machine, the lab settings and the machine's occupying
// bookings over [from, to) in one transaction. The settings' and machine's
// slices are shared with the store's cache: callers must not modify them.
// Errors: ENOTFOUND.
func (s *Store) Calendar(ctx context.Context, machine fablab.ID, from, to time.Time) (Calendar, error) {
	var c Calendar
	err := s.view(ctx, func(tx *bbolt.Tx) (err error) {
		if c.Machine, err = s.readMachine(tx, machine); err != nil {
			return err
		}
		if c.Settings, err = s.readSettings(tx); err != nil {
			return err
		}
		// A busy machine's week holds tens of bookings: start with room
		// for them rather than growing the slice one doubling at a time.
		c.Occupied = make([]fablab.Interval, 0, 64)
		occupiedIn(tx, machine, from, to, func(_ fablab.ID, iv fablab.Interval) { c.Occupied = append(c.Occupied, iv) })
		return nil
	})
	return c, err
}
