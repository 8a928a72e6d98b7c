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
