package bolt

import (
	"bytes"
	"context"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/fabgate/fabgate/internal/fablab"
)

// appendAudit writes events to the audit log inside tx, giving each its id
// and a UTC time in place. Keys are the event's time then the bucket's
// sequence, so the log reads in time order.
func appendAudit(tx *bbolt.Tx, events []fablab.AuditEvent) error {
	b := tx.Bucket(bAudit)
	for i := range events {
		e := &events[i]
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		e.ID = fablab.ID(seq)
		e.At = e.At.UTC()
		if err := putJSON(b, cat(tkey(e.At), u64(seq)), e); err != nil {
			return err
		}
	}
	return nil
}

// aboutSession fills the session's ids into events that lack them.
func aboutSession(events []fablab.AuditEvent, s fablab.Session) {
	for i := range events {
		e := &events[i]
		e.SessionID = s.ID
		if e.MachineID == 0 {
			e.MachineID = s.MachineID
		}
		if e.MemberID == 0 {
			e.MemberID = s.MemberID
		}
		if e.DeviceID == "" {
			e.DeviceID = s.DeviceID
		}
	}
}

// Audit appends events to the audit log (shared commit with concurrent
// writers).
func (s *Store) Audit(ctx context.Context, events ...fablab.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	return s.batch(ctx, func(tx *bbolt.Tx) error { return appendAudit(tx, events) })
}

// AuditFilter selects audit events in [From, To), optionally of one kind,
// machine, member or device.
type AuditFilter struct {
	From, To  time.Time
	Kind      string
	Action    string // e.g. "denied": the refused taps
	MachineID fablab.ID
	MemberID  fablab.ID
	DeviceID  string
	Limit     int // at most this many, newest first
}

// AuditEvents returns the events matching f, newest first.
func (s *Store) AuditEvents(ctx context.Context, f AuditFilter) ([]fablab.AuditEvent, error) {
	out := []fablab.AuditEvent{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		from := tkey(f.From)
		c := tx.Bucket(bAudit).Cursor()
		k, v := lastBefore(c, tkey(f.To))
		for ; k != nil && bytes.Compare(k[:8], from) >= 0 && len(out) < f.Limit; k, v = c.Prev() {
			var e fablab.AuditEvent
			if err := getJSONBytes(v, &e); err != nil {
				return err
			}
			if (f.Kind == "" || e.Kind == f.Kind) && (f.Action == "" || e.Action == f.Action) && (f.MachineID == 0 || e.MachineID == f.MachineID) &&
				(f.MemberID == 0 || e.MemberID == f.MemberID) && (f.DeviceID == "" || e.DeviceID == f.DeviceID) {
				out = append(out, e)
			}
		}
		return nil
	})
	return out, err
}
