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

// MarkNoShows marks as no_show each confirmed booking that started within
// horizon before now and that fablab.NoShowDue finds unclaimed, which
// releases its slot, and returns the bookings it marked. It looks in a
// read transaction first, as most minutes have none; the bookings found
// are checked again and marked in one write transaction, so a session
// opened meanwhile is seen, and a booking is marked once.
func (s *Store) MarkNoShows(ctx context.Context, now time.Time, horizon time.Duration) ([]fablab.Booking, error) {
	var due []fablab.Booking
	err := s.view(ctx, func(tx *bbolt.Tx) (err error) {
		due, err = noShowsDue(tx, now, horizon)
		return err
	})
	if err != nil || len(due) == 0 {
		return nil, err
	}
	err = s.update(ctx, func(tx *bbolt.Tx) (err error) {
		if due, err = noShowsDue(tx, now, horizon); err != nil {
			return err
		}
		st, err := loadSettings(tx)
		if err != nil {
			return err
		}
		for i := range due {
			b := &due[i]
			b.State = fablab.BookingNoShow
			if err := tx.Bucket(bSlots).Delete(cat(itob(b.MachineID), tkey(b.Start))); err != nil {
				return err
			}
			if err := putJSON(tx.Bucket(bBookings), itob(b.ID), *b); err != nil {
				return err
			}
			// The machine's no-show fee, once, in the same commit.
			if err := chargeNoShowInTx(tx, st, *b, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return due, nil
}

// noShowsDue returns the occupying bookings that started within horizon
// before now and that fablab.NoShowDue finds unclaimed.
func noShowsDue(tx *bbolt.Tx, now time.Time, horizon time.Duration) ([]fablab.Booking, error) {
	var due []fablab.Booking
	mc := tx.Bucket(bMachines).Cursor()
	slots := tx.Bucket(bSlots).Cursor()
	for mk, _ := mc.First(); mk != nil; mk, _ = mc.Next() {
		m, err := getMachine(tx, btoi(mk))
		if err != nil {
			return nil, err
		}
		if m.Rules.NoShowReleaseMinutes <= 0 {
			continue
		}
		limit := cat(mk, tkey(now))
		for k, v := slots.Seek(cat(mk, tkey(now.Add(-horizon)))); k != nil && bytes.Compare(k, limit) < 0; k, v = slots.Next() {
			b, err := getBooking(tx, btoi(v[:8]))
			if err != nil {
				return nil, err
			}
			from := b.Start.Add(-time.Duration(m.Rules.CheckInMinutes) * time.Minute)
			to := b.Start.Add(time.Duration(m.Rules.NoShowReleaseMinutes)*time.Minute + time.Second)
			sessions, err := machineSessionsIn(tx, b.MachineID, from, to)
			if err != nil {
				return nil, err
			}
			if fablab.NoShowDue(&b, m.Rules, sessions, now) {
				due = append(due, b)
			}
		}
	}
	return due, nil
}

// machineSessionsIn returns a machine's sessions, ended or open, that
// started in [from, to).
func machineSessionsIn(tx *bbolt.Tx, machine fablab.ID, from, to time.Time) ([]fablab.Session, error) {
	var out []fablab.Session
	if v := tx.Bucket(bSessionsOpen).Get(itob(machine)); v != nil {
		sess, err := getSession(tx, btoi(v))
		if err != nil {
			return nil, err
		}
		if startedIn(&sess, from, to) {
			out = append(out, sess)
		}
	}
	prefix := itob(machine)
	limit := cat(prefix, tkey(to))
	c := tx.Bucket(bSessionsMach).Cursor()
	for k, _ := c.Seek(cat(prefix, tkey(from))); k != nil && bytes.Compare(k, limit) < 0; k, _ = c.Next() {
		sess, err := getSession(tx, btoi(k[16:24]))
		if err != nil {
			return nil, err
		}
		out = append(out, sess)
	}
	return out, nil
}
