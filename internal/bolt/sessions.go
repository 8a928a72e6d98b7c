package bolt

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/fabgate/fabgate/internal/fablab"
)

func getSession(tx *bbolt.Tx, id fablab.ID) (fablab.Session, error) {
	var s fablab.Session
	err := getJSON(tx.Bucket(bSessions), itob(id), &s, fmt.Sprintf("session %s", id))
	return s, err
}

// OpenSession durably opens a session on a machine, with the audit events
// that go with it, in one transaction shared with concurrent writers (group
// commit). Errors: ECONFLICT when the machine already has an open session
// (two taps raced: the first one won).
//
// tap, when not nil, is the tap the session answers: it is marked handled in
// the same transaction, and a tap already handled is refused with
// EDUPLICATE (a QoS 1 duplicate raced its original).
func (s *Store) OpenSession(ctx context.Context, sess fablab.Session, tap *TapRef, events []fablab.AuditEvent) (fablab.Session, error) {
	sess.Started, sess.Until = sess.Started.UTC(), sess.Until.UTC()
	err := s.batch(ctx, func(tx *bbolt.Tx) error {
		if err := checkTap(tx, tap); err != nil {
			return err
		}
		open := tx.Bucket(bSessionsOpen)
		if cur := open.Get(itob(sess.MachineID)); cur != nil {
			return fablab.Errorf(fablab.ECONFLICT, "machine %s is in use (session %s)", sess.MachineID, btoi(cur))
		}
		b := tx.Bucket(bSessions)
		var err error
		if sess.ID, err = nextID(b); err != nil {
			return err
		}
		sess.Ended, sess.EndReason = nil, ""
		if err := putJSON(b, itob(sess.ID), sess); err != nil {
			return err
		}
		// The time indexes take the session when it ends: this commit is on
		// the way from the tap to the relay, and every bucket it writes
		// costs.
		if err := open.Put(itob(sess.MachineID), itob(sess.ID)); err != nil {
			return err
		}
		aboutSession(events, sess)
		if err := markTap(tx, tap); err != nil {
			return err
		}
		return appendAudit(tx, events)
	})
	return sess, err
}

// RecordSession stores a session that has already ended (one a device ran
// while the server was out of reach), with the tap that opened it and its
// audit events, in one shared commit. Errors: EINVALID (not ended, ended
// before it started, or an end reason outside fablab.EndReasons),
// EDUPLICATE (the tap was recorded already).
func (s *Store) RecordSession(ctx context.Context, sess fablab.Session, tap *TapRef, events []fablab.AuditEvent) (fablab.Session, error) {
	if sess.Ended == nil || sess.Ended.Before(sess.Started) {
		return sess, fablab.Errorf(fablab.EINVALID, "a recorded session must have ended, at or after its start")
	}
	if err := checkEndReason(sess.EndReason); err != nil {
		return sess, err
	}
	sess.Started, sess.Until = sess.Started.UTC(), sess.Until.UTC()
	sess.ChargeID = 0 // billed by the ledger, never by the caller
	ended := sess.Ended.UTC()
	sess.Ended = &ended
	err := s.batch(ctx, func(tx *bbolt.Tx) error {
		if err := checkTap(tx, tap); err != nil {
			return err
		}
		if err := insertClosedSession(tx, &sess); err != nil {
			return err
		}
		aboutSession(events, sess)
		if err := markTap(tx, tap); err != nil {
			return err
		}
		return appendAudit(tx, events)
	})
	return sess, err
}

// EndSessionBy makes sure a session is over by at: open, it is closed at
// at (as CloseSession); ended later than at, its end is brought back to at,
// with reason. A device that decided alone while the server was out of
// reach reports, when it is back, that a session ended earlier than the
// server had recorded. Errors: ENOTFOUND, ECONFLICT (it ended by at
// already), EINVALID (reason is not one of fablab.EndReasons).
func (s *Store) EndSessionBy(ctx context.Context, id fablab.ID, at time.Time, reason fablab.EndReason, events []fablab.AuditEvent) (fablab.Session, error) {
	if err := checkEndReason(reason); err != nil {
		return fablab.Session{}, err
	}
	var out fablab.Session
	err := s.batch(ctx, func(tx *bbolt.Tx) error {
		sess, err := getSession(tx, id)
		if err != nil {
			return err
		}
		at := at.UTC()
		if at.Before(sess.Started) {
			at = sess.Started
		}
		if !sess.Open() && !sess.Ended.After(at) {
			return fablab.Errorf(fablab.ECONFLICT, "session %s ended by then (%s)", id, sess.Ended.Format(time.RFC3339))
		}
		if sess.Open() {
			err = endInTx(tx, &sess, at, reason, 0)
		} else {
			sess.Ended, sess.EndReason = &at, reason
			if err = putJSON(tx.Bucket(bSessions), itob(id), sess); err == nil {
				err = rebillInTx(tx, sess, s.now())
			}
		}
		if err != nil {
			return err
		}
		aboutSession(events, sess)
		out = sess
		return appendAudit(tx, events)
	})
	return out, err
}

// checkEndReason refuses an end reason outside the enum, so that the file
// never holds one (a device's own codes are mapped by
// fablab.DeviceEndReason before they get here).
func checkEndReason(r fablab.EndReason) error {
	if !r.Valid() {
		return fablab.Errorf(fablab.EINVALID, "session end reason %q is not one of the end reasons", clipReason(r))
	}
	return nil
}

func clipReason(r fablab.EndReason) string {
	if len(r) > 64 {
		return string(r[:64]) + "…"
	}
	return string(r)
}

// endInTx ends an open session at at (not before its start): no longer
// open, in the time indexes, and not billable if the relay never confirmed
// it switched on.
func endInTx(tx *bbolt.Tx, sess *fablab.Session, at time.Time, reason fablab.EndReason, by fablab.ID) error {
	at = at.UTC()
	if at.Before(sess.Started) {
		at = sess.Started
	}
	sess.Ended, sess.EndReason, sess.EndedBy = &at, reason, by
	if reason == fablab.EndRelayUnconfirmed || !sess.Confirmed {
		sess.Billable = false
	}
	if err := tx.Bucket(bSessionsOpen).Delete(itob(sess.MachineID)); err != nil {
		return err
	}
	if err := putJSON(tx.Bucket(bSessions), itob(sess.ID), *sess); err != nil {
		return err
	}
	if err := tx.Bucket(bSessionsUnbilled).Put(itob(sess.ID), nil); err != nil {
		return err
	}
	return indexSession(tx, *sess)
}

// indexSession adds an ended session to the time indexes. Open sessions are
// not in them: the queries add them from sessions_open/.
func indexSession(tx *bbolt.Tx, sess fablab.Session) error {
	id, start := itob(sess.ID), tkey(sess.Started)
	if err := tx.Bucket(bSessionsMach).Put(cat(itob(sess.MachineID), start, id), nil); err != nil {
		return err
	}
	if err := tx.Bucket(bSessionsStart).Put(cat(start, id), nil); err != nil {
		return err
	}
	return tx.Bucket(bSessionsMember).Put(cat(itob(sess.MemberID), start, id), nil)
}

// openSessionsWhere returns the open sessions that keep, in index order
// (start, then id).
func openSessionsWhere(tx *bbolt.Tx, keep func(*fablab.Session) bool) ([]fablab.Session, error) {
	var out []fablab.Session
	err := tx.Bucket(bSessionsOpen).ForEach(func(_, v []byte) error {
		sess, err := getSession(tx, btoi(v))
		if err != nil {
			return err
		}
		if keep(&sess) {
			out = append(out, sess)
		}
		return nil
	})
	sortSessions(out)
	return out, err
}

// sortSessions orders sessions as the time indexes do: by start, then id.
func sortSessions(ss []fablab.Session) {
	slices.SortFunc(ss, func(a, b fablab.Session) int {
		if c := a.Started.Compare(b.Started); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
}

// startedIn reports whether a session started in [from, to), at the
// resolution of the index keys (seconds).
func startedIn(sess *fablab.Session, from, to time.Time) bool {
	k := tkey(sess.Started)
	return bytes.Compare(k, tkey(from)) >= 0 && bytes.Compare(k, tkey(to)) < 0
}

// CloseSession ends an open session once: at instant at, for reason, by
// actor (0 for the system); tap, when not nil, is the tap that ended it
// (see OpenSession). Errors: ENOTFOUND, ECONFLICT (already ended),
// EDUPLICATE, EINVALID (reason is not one of fablab.EndReasons).
func (s *Store) CloseSession(ctx context.Context, id fablab.ID, at time.Time, reason fablab.EndReason, by fablab.ID, tap *TapRef, events []fablab.AuditEvent) (fablab.Session, error) {
	if err := checkEndReason(reason); err != nil {
		return fablab.Session{}, err
	}
	var out fablab.Session
	err := s.batch(ctx, func(tx *bbolt.Tx) error {
		if err := checkTap(tx, tap); err != nil {
			return err
		}
		sess, err := getSession(tx, id)
		if err != nil {
			return err
		}
		if !sess.Open() {
			return fablab.Errorf(fablab.ECONFLICT, "session %s has already ended (%s)", id, sess.EndReason)
		}
		if err := endInTx(tx, &sess, at, reason, by); err != nil {
			return err
		}
		aboutSession(events, sess)
		out = sess
		if err := markTap(tx, tap); err != nil {
			return err
		}
		return appendAudit(tx, events)
	})
	return out, err
}

// UpdateSession changes fields of an open session that are not its
// lifecycle (confirmation, until), in a commit shared with concurrent
// writers; fn may run more than once. Errors: ENOTFOUND, ECONFLICT (ended).
//
// events are appended to the audit log in the same commit.
func (s *Store) UpdateSession(ctx context.Context, id fablab.ID, fn func(*fablab.Session), events ...fablab.AuditEvent) (fablab.Session, error) {
	var out fablab.Session
	err := s.batch(ctx, func(tx *bbolt.Tx) error {
		sess, err := getSession(tx, id)
		if err != nil {
			return err
		}
		if !sess.Open() {
			return fablab.Errorf(fablab.ECONFLICT, "session %s has already ended", id)
		}
		fn(&sess)
		sess.ID, sess.Ended = id, nil
		sess.Until = sess.Until.UTC()
		out = sess
		if err := putJSON(tx.Bucket(bSessions), itob(id), sess); err != nil {
			return err
		}
		aboutSession(events, sess)
		return appendAudit(tx, events)
	})
	return out, err
}

// Session returns one session. Errors: ENOTFOUND.
func (s *Store) Session(ctx context.Context, id fablab.ID) (fablab.Session, error) {
	var out fablab.Session
	err := s.view(ctx, func(tx *bbolt.Tx) (err error) {
		out, err = getSession(tx, id)
		return err
	})
	return out, err
}

// OpenSessions returns every open session (at most one per machine), read
// through the open-session index, in start order.
func (s *Store) OpenSessions(ctx context.Context) ([]fablab.Session, error) {
	out := []fablab.Session{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		open, err := openSessionsWhere(tx, func(*fablab.Session) bool { return true })
		out = append(out, open...)
		return err
	})
	return out, err
}

// OpenSessionOn returns the open session of a machine. Errors: ENOTFOUND.
func (s *Store) OpenSessionOn(ctx context.Context, machine fablab.ID) (fablab.Session, error) {
	var out fablab.Session
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		v := tx.Bucket(bSessionsOpen).Get(itob(machine))
		if v == nil {
			return fablab.Errorf(fablab.ENOTFOUND, "machine %s has no open session", machine)
		}
		var err error
		out, err = getSession(tx, btoi(v))
		return err
	})
	return out, err
}

// SessionsOfMachine lists a machine's sessions that started in [from, to).
func (s *Store) SessionsOfMachine(ctx context.Context, machine fablab.ID, from, to time.Time) ([]fablab.Session, error) {
	return s.sessionsIndexed(ctx, bSessionsMach, machine, func(x *fablab.Session) fablab.ID { return x.MachineID }, from, to)
}

// SessionsOfMember lists a member's sessions that started in [from, to).
func (s *Store) SessionsOfMember(ctx context.Context, member fablab.ID, from, to time.Time) ([]fablab.Session, error) {
	return s.sessionsIndexed(ctx, bSessionsMember, member, func(x *fablab.Session) fablab.ID { return x.MemberID }, from, to)
}

// sessionsIndexed reads the ended sessions of owner from index (ownerOf
// gives a session's owner in that index), and adds the open ones.
func (s *Store) sessionsIndexed(ctx context.Context, index []byte, owner fablab.ID, ownerOf func(*fablab.Session) fablab.ID, from, to time.Time) ([]fablab.Session, error) {
	out := []fablab.Session{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		open, err := openSessionsWhere(tx, func(sess *fablab.Session) bool {
			return ownerOf(sess) == owner && startedIn(sess, from, to)
		})
		if err != nil {
			return err
		}
		prefix := itob(owner)
		limit := cat(prefix, tkey(to))
		c := tx.Bucket(index).Cursor()
		for k, _ := c.Seek(cat(prefix, tkey(from))); k != nil && bytes.Compare(k, limit) < 0; k, _ = c.Next() {
			sess, err := getSession(tx, btoi(k[16:24]))
			if err != nil {
				return err
			}
			out = append(out, sess)
		}
		if len(open) > 0 {
			out = append(out, open...)
			sortSessions(out)
		}
		return nil
	})
	return out, err
}

// SessionsStarted lists sessions that started in [from, to), by start, at
// most limit of them.
func (s *Store) SessionsStarted(ctx context.Context, from, to time.Time, limit int) ([]fablab.Session, error) {
	out := []fablab.Session{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		limitKey := tkey(to)
		c := tx.Bucket(bSessionsStart).Cursor()
		for k, _ := c.Seek(tkey(from)); k != nil && bytes.Compare(k[:8], limitKey) < 0 && len(out) < limit; k, _ = c.Next() {
			sess, err := getSession(tx, btoi(k[8:16]))
			if err != nil {
				return err
			}
			out = append(out, sess)
		}
		// The first limit of the union are among the first limit indexed
		// and the open ones.
		open, err := openSessionsWhere(tx, func(sess *fablab.Session) bool { return startedIn(sess, from, to) })
		if err != nil || len(open) == 0 {
			return err
		}
		out = append(out, open...)
		sortSessions(out)
		out = out[:min(len(out), limit)]
		return nil
	})
	return out, err
}

// TapRef names a tap: the device that read it and its msg_id.
type TapRef struct {
	Device, MsgID string
	At            time.Time
}

func tapKey(t *TapRef) []byte { return cat([]byte(t.Device), []byte{0}, []byte(t.MsgID)) }

// checkTap refuses a tap already handled; it writes nothing.
func checkTap(tx *bbolt.Tx, t *TapRef) error {
	if t != nil && tx.Bucket(bTapsSeen).Get(tapKey(t)) != nil {
		return fablab.Errorf(fablab.EDUPLICATE, "tap %s of device %s was already handled", t.MsgID, t.Device)
	}
	return nil
}

func markTap(tx *bbolt.Tx, t *TapRef) error {
	if t == nil {
		return nil
	}
	return tx.Bucket(bTapsSeen).Put(tapKey(t), tkey(t.At))
}

// TapSeen reports whether a tap was already handled (a cheap read before
// deciding; the write that records the outcome checks again).
func (s *Store) TapSeen(ctx context.Context, t TapRef) (bool, error) {
	var seen bool
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		seen = tx.Bucket(bTapsSeen).Get(tapKey(&t)) != nil
		return nil
	})
	return seen, err
}

// RecordTap marks a tap handled together with its audit events, in one
// shared commit. Errors: EDUPLICATE.
func (s *Store) RecordTap(ctx context.Context, t TapRef, events ...fablab.AuditEvent) error {
	return s.batch(ctx, func(tx *bbolt.Tx) error {
		if err := checkTap(tx, &t); err != nil {
			return err
		}
		if err := markTap(tx, &t); err != nil {
			return err
		}
		return appendAudit(tx, events)
	})
}

// unknownTapTTL is how long an unknown badge's tap is remembered.
const unknownTapTTL = 24 * time.Hour

// RememberUnknownTap keeps the tap of a badge nobody holds for 24 hours,
// dropping those older than that.
func (s *Store) RememberUnknownTap(ctx context.Context, t fablab.UnknownTap) error {
	return s.batch(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bUnknownTaps)
		c := b.Cursor()
		old := tkey(s.now().Add(-unknownTapTTL))
		for k, _ := c.First(); k != nil && bytes.Compare(k[:8], old) < 0; k, _ = c.First() {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return b.Put(cat(tkey(t.At), []byte(t.Hash)), []byte(t.DeviceID))
	})
}

// UnknownTaps returns the unknown badges tapped in the last 24 hours, newest
// first, one entry per badge (its latest tap).
func (s *Store) UnknownTaps(ctx context.Context) ([]fablab.UnknownTap, error) {
	out := []fablab.UnknownTap{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		seen := map[string]bool{}
		old := tkey(s.now().Add(-unknownTapTTL))
		c := tx.Bucket(bUnknownTaps).Cursor()
		for k, v := c.Last(); k != nil && bytes.Compare(k[:8], old) >= 0; k, v = c.Prev() {
			h := string(k[8:])
			if seen[h] {
				continue
			}
			seen[h] = true
			out = append(out, fablab.UnknownTap{Hash: h, At: fromTkey(k[:8]), DeviceID: string(v)})
		}
		return nil
	})
	return out, err
}

// AccessFacts reads what deciding a tap of the badge with hash on device dev
// at now needs; ahead bounds how far ahead bookings are read. Errors:
// ENOTFOUND (the device drives no machine).
func (s *Store) AccessFacts(ctx context.Context, dev, hash string, now time.Time, ahead time.Duration) (fablab.AccessFacts, error) {
	var f fablab.AccessFacts
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		mid := tx.Bucket(bMachineDevice).Get([]byte(dev))
		if mid == nil {
			return fablab.Errorf(fablab.ENOTFOUND, "device %s drives no machine", dev)
		}
		var err error
		if f.Settings, err = s.readSettings(tx); err != nil {
			return err
		}
		if f.Machine, err = s.readMachine(tx, btoi(mid)); err != nil {
			return err
		}
		f.Trainings = map[fablab.ID]string{}
		for _, t := range f.Machine.RequiredTrainings {
			var tr fablab.Training
			switch err := getJSON(tx.Bucket(bTrainings), itob(t), &tr, "training"); {
			case err == nil:
				f.Trainings[t] = tr.Name
			case fablab.ErrorCode(err) != fablab.ENOTFOUND:
				return err // damaged storage, not a training without a name
			}
		}
		if v := tx.Bucket(bBadges).Get([]byte(hash)); v != nil {
			var b fablab.Badge
			if err := getJSONBytes(v, &b); err != nil {
				return err
			}
			r, err := s.readMember(tx, b.MemberID)
			if err != nil {
				return err
			}
			m := r.Member
			f.Member = &m
			if f.Quals, err = qualificationsOf(tx, m.ID); err != nil {
				return err
			}
		}
		if v := tx.Bucket(bSessionsOpen).Get(itob(f.Machine.ID)); v != nil {
			sess, err := getSession(tx, btoi(v))
			if err != nil {
				return err
			}
			f.Open = &sess
		}
		var ids []fablab.ID
		occupiedIn(tx, f.Machine.ID, now, now.Add(ahead), func(id fablab.ID, iv fablab.Interval) {
			ids = append(ids, id)
			if iv.Start.After(now) && f.NextStart == nil {
				st := iv.Start
				f.NextStart = &st
			}
		})
		for _, id := range ids {
			b, err := getBooking(tx, id)
			if err != nil {
				return err
			}
			f.Bookings = append(f.Bookings, b)
		}
		return nil
	})
	return f, err
}

// tapMemory is how long handled taps are remembered for de-duplication:
// longer than a device's offline queue is kept before replay.
const tapMemory = 30 * 24 * time.Hour

// PruneTaps forgets handled taps older than the tap memory, at most limit of
// them per call (a background job; it reads the whole bucket).
func (s *Store) PruneTaps(ctx context.Context, limit int) (int, error) {
	old := tkey(s.now().Add(-tapMemory))
	n := 0
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		n = 0
		b := tx.Bucket(bTapsSeen)
		var doomed [][]byte
		err := b.ForEach(func(k, v []byte) error {
			if len(doomed) < limit && bytes.Compare(v, old) < 0 {
				doomed = append(doomed, bytes.Clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range doomed {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		n = len(doomed)
		return nil
	})
	return n, err
}

// insertClosedSession writes an ended session under a new id with its
// indexes, as not billed yet.
func insertClosedSession(tx *bbolt.Tx, sess *fablab.Session) error {
	b := tx.Bucket(bSessions)
	var err error
	if sess.ID, err = nextID(b); err != nil {
		return err
	}
	if err := putJSON(b, itob(sess.ID), *sess); err != nil {
		return err
	}
	if err := indexSession(tx, *sess); err != nil {
		return err
	}
	return tx.Bucket(bSessionsUnbilled).Put(itob(sess.ID), nil)
}
