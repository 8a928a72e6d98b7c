package bolt

import (
	"context"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/fabgate/fabgate/internal/fablab"
)

// UsageSeed is a billed session as the reports read it.
type UsageSeed struct {
	Machine, Member, Organisation fablab.ID
	Payer                         fablab.Payer
	Group                         string
	Started, Ended                time.Time
	Minutes, AmountCents          int64
}

// SeedBilledUsage writes, for each seed, the usage record and the charge
// summary (charges_at/) that billing a session writes, and nothing else: no
// session, no charge, no other index. It exists to measure the reports over
// millions of sessions without billing them one by one (bench/); on a lab's
// file the reports would count sessions and charges that do not exist.
// Seeds sorted by start write fastest. One write transaction per call.
func (s *Store) SeedBilledUsage(ctx context.Context, seeds []UsageSeed) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		usage, at := tx.Bucket(bUsage), tx.Bucket(bChargesAt)
		for _, u := range seeds {
			sid, err := nextID(tx.Bucket(bSessions))
			if err != nil {
				return err
			}
			cid, err := nextID(tx.Bucket(bCharges))
			if err != nil {
				return err
			}
			rec := usageRecord{
				Machine: u.Machine, Member: u.Member, Organisation: u.Organisation, Payer: u.Payer,
				Started: u.Started, Ended: u.Ended, Minutes: u.Minutes, AmountCents: u.AmountCents, Group: u.Group,
			}
			if err := usage.Put(cat(tkey(u.Started), itob(sid)), rec.encode()); err != nil {
				return err
			}
			cs := chargeSummary{
				Payer: u.Payer, Kind: fablab.ChargeSession, Machine: u.Machine, Member: u.Member,
				Organisation: u.Organisation, Minutes: u.Minutes, AmountCents: u.AmountCents, Group: u.Group,
			}
			if err := at.Put(cat(tkey(u.Ended), itob(cid)), cs.encode()); err != nil {
				return err
			}
		}
		return nil
	})
}

// SeedBilledSessions stores ended sessions as RecordSession does (the
// session, its time indexes, sessions_unbilled/) and bills each at once with
// the billing run's own code (its charge and the charge's indexes, the
// session marked, prepaid minutes, its usage record), all in one write
// transaction and without tap de-duplication or audit events. It exists to
// build files of a lab's size, millions of sessions, for the benchmarks
// (bench/): recording and billing them one transaction at a time takes
// hours. Seeds sorted by start write fastest. Errors: EINVALID (a session
// not ended, or ended before it started), ENOTFOUND (machine, member).
func (s *Store) SeedBilledSessions(ctx context.Context, sessions []fablab.Session) error {
	now := s.now()
	return s.update(ctx, func(tx *bbolt.Tx) error {
		st, err := loadSettings(tx)
		if err != nil {
			return err
		}
		for _, sess := range sessions {
			if sess.Ended == nil || sess.Ended.Before(sess.Started) {
				return fablab.Errorf(fablab.EINVALID, "a seeded session must have ended, at or after its start")
			}
			sess.Started, sess.Until = sess.Started.UTC(), sess.Until.UTC()
			ended := sess.Ended.UTC()
			sess.Ended, sess.ChargeID = &ended, 0
			if err := insertClosedSession(tx, &sess); err != nil {
				return err
			}
			if _, err := s.billSessionInTx(tx, st, sess.ID, now); err != nil {
				return err
			}
		}
		return nil
	})
}
