package bolt

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/fabgate/fabgate/internal/fablab"
)

func getMachine(tx *bbolt.Tx, id fablab.ID) (fablab.Machine, error) {
	var m fablab.Machine
	err := getJSON(tx.Bucket(bMachines), itob(id), &m, fmt.Sprintf("machine %s", id))
	return m, err
}

func validateMachine(tx *bbolt.Tx, m *fablab.Machine) error {
	gs, err := loadTariffs(tx)
	if err != nil {
		return err
	}
	if err := m.Validate(gs); err != nil {
		return err
	}
	for _, t := range m.RequiredTrainings {
		if tx.Bucket(bTrainings).Get(itob(t)) == nil {
			return fablab.Errorf(fablab.ENOTFOUND, "required training %s does not exist", t)
		}
	}
	return nil
}

// checkNewMaintenance refuses maintenance blocks, added or moved, that
// overlap bookings holding their slot: staff cancel or move those first, so
// that no confirmed booking silently falls inside a maintenance.
func checkNewMaintenance(tx *bbolt.Tx, m fablab.Machine, before []fablab.MaintenanceBlock) error {
	for _, b := range m.Maintenance {
		if slices.ContainsFunc(before, func(o fablab.MaintenanceBlock) bool { return o.Start.Equal(b.Start) && o.End.Equal(b.End) }) {
			continue
		}
		var ids []string
		occupiedIn(tx, m.ID, b.Start, b.End, func(id fablab.ID, _ fablab.Interval) { ids = append(ids, id.String()) })
		if len(ids) > 0 {
			return fablab.Errorf(fablab.CodeBookingConflict, "the maintenance from %s to %s overlaps booking(s) %s; cancel or move them first",
				b.Start.Format(time.RFC3339), b.End.Format(time.RFC3339), strings.Join(ids, ", "))
		}
	}
	return nil
}

// CreateMachine validates and stores a machine. A zero Rules takes the lab's
// default rules. Errors: EINVALID, ENOTFOUND (a required training).
func (s *Store) CreateMachine(ctx context.Context, m fablab.Machine) (fablab.Machine, error) {
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		if m.Rules == (fablab.BookingRules{}) {
			st, err := loadSettings(tx)
			if err != nil {
				return err
			}
			m.Rules = st.DefaultRules
		}
		if err := validateMachine(tx, &m); err != nil {
			return err
		}
		b := tx.Bucket(bMachines)
		var err error
		if m.ID, err = nextID(b); err != nil {
			return err
		}
		m.CreatedAt = s.now().UTC().Truncate(0)
		if err := bindDevice(tx, m, ""); err != nil {
			return err
		}
		return putJSON(b, itob(m.ID), m)
	})
	return m, err
}

// Machine returns one machine. The slices and map of the result are shared
// with the store's cache: callers must not modify them. Errors: ENOTFOUND.
func (s *Store) Machine(ctx context.Context, id fablab.ID) (fablab.Machine, error) {
	var m fablab.Machine
	err := s.view(ctx, func(tx *bbolt.Tx) (err error) {
		m, err = s.readMachine(tx, id)
		return err
	})
	return m, err
}

// readMachine is getMachine through the decode cache, for read-only use.
func (s *Store) readMachine(tx *bbolt.Tx, id fablab.ID) (fablab.Machine, error) {
	raw := tx.Bucket(bMachines).Get(itob(id))
	if raw == nil {
		return fablab.Machine{}, fablab.Errorf(fablab.ENOTFOUND, "machine %s does not exist", id)
	}
	return s.machineCache.get(id, raw)
}

// Machines lists machines by id. They come from the decode cache: callers
// read them and must not change their slices or maps.
func (s *Store) Machines(ctx context.Context, after fablab.ID, limit int) (Page[fablab.Machine], error) {
	out := Page[fablab.Machine]{Items: []fablab.Machine{}}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		c := tx.Bucket(bMachines).Cursor()
		for k, v := c.Seek(itob(after + 1)); k != nil; k, v = c.Next() {
			if len(out.Items) == limit {
				out.Next = btoi(k) - 1
				break
			}
			m, err := s.machineCache.get(btoi(k), v)
			if err != nil {
				return fablab.Internal(err, "decode stored machine %d", btoi(k))
			}
			out.Items = append(out.Items, m)
		}
		return nil
	})
	return out, err
}

// UpdateMachine applies fn to a machine and stores it if it still validates.
// Errors: ENOTFOUND, EINVALID, and whatever fn returns.
func (s *Store) UpdateMachine(ctx context.Context, id fablab.ID, fn func(*fablab.Machine) error) (fablab.Machine, error) {
	var out fablab.Machine
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		m, err := getMachine(tx, id)
		if err != nil {
			return err
		}
		before, was := m.Maintenance, m.DeviceID
		created := m.CreatedAt
		if err := fn(&m); err != nil {
			return err
		}
		m.ID, m.CreatedAt = id, created
		if err := validateMachine(tx, &m); err != nil {
			return err
		}
		if err := checkNewMaintenance(tx, m, before); err != nil {
			return err
		}
		if err := bindDevice(tx, m, was); err != nil {
			return err
		}
		out = m
		return putJSON(tx.Bucket(bMachines), itob(id), m)
	})
	return out, err
}
