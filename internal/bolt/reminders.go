package bolt

import (
	"bytes"
	"context"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/fabgate/fabgate/internal/fablab"
)

// BookingsStarting lists the confirmed bookings of every machine that start
// within [from, to), by machine then start: the bookings a reminder job
// looks at. It seeks each machine's slots (the lab has tens of machines,
// not thousands), never the bookings themselves.
func (s *Store) BookingsStarting(ctx context.Context, from, to time.Time) ([]fablab.Booking, error) {
	var out []fablab.Booking
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		out = nil
		mc := tx.Bucket(bMachines).Cursor()
		slots := tx.Bucket(bSlots).Cursor()
		for mk, _ := mc.First(); mk != nil; mk, _ = mc.Next() {
			limit := cat(mk, tkey(to))
			for k, v := slots.Seek(cat(mk, tkey(from))); k != nil && bytes.Compare(k, limit) < 0; k, v = slots.Next() {
				b, err := getBooking(tx, btoi(v[:8]))
				if err != nil {
					return err
				}
				if b.State == fablab.BookingConfirmed {
					out = append(out, b)
				}
			}
		}
		return nil
	})
	return out, err
}

// MarkReminded records that a confirmed booking's reminder was sent at
// at, and reports whether this call recorded it: false when a reminder
// was already recorded or the booking is no longer confirmed. Checking
// and recording in one write transaction makes the reminder go once, even
// with two runs at once. Errors: ENOTFOUND.
func (s *Store) MarkReminded(ctx context.Context, id fablab.ID, at time.Time) (bool, error) {
	first := false
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		first = false
		b, err := getBooking(tx, id)
		if err != nil {
			return err
		}
		if b.RemindedAt != nil || b.State != fablab.BookingConfirmed {
			return nil
		}
		t := at.UTC().Truncate(time.Second)
		b.RemindedAt = &t
		first = true
		return putJSON(tx.Bucket(bBookings), itob(id), b)
	})
	return first, err
}
