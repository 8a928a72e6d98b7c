package bench

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
)

// billSessions is how many closed sessions one billing run takes.
const billSessions = 1000

// BenchmarkBilling bills 1 000 closed sessions in one job run (one write
// transaction: per session, its charge, the indexes, the session marked,
// prepaid minutes, the usage record) against one raw bbolt transaction
// writing the same 1 000 charge records, each measured on its own file in
// the same rounds, both with fsync. Target: ratio ≤ 3.
func BenchmarkBilling(b *testing.B) {
	ctx := context.Background()
	now := time.Date(2026, 3, 31, 22, 0, 0, 0, time.UTC)
	rounds := max(b.N, 5)
	var billT, rawT time.Duration
	var sample []fablab.Charge
	b.ResetTimer()
	for r := 0; r < rounds; r++ {
		b.StopTimer()
		s := seedClosedSessions(b, now, billSessions)
		b.StartTimer()
		t0 := time.Now()
		n, left, err := s.BillSessions(ctx, billSessions)
		billT += time.Since(t0)
		b.StopTimer()
		if err != nil || n != billSessions || left != 0 {
			b.Fatalf("billed %d, %d left: %v", n, left, err)
		}
		if sample == nil {
			if sample, err = s.Charges(ctx, bolt.ChargeFilter{Limit: billSessions}); err != nil {
				b.Fatal(err)
			}
		}
		s.Close()
		rawT += rawChargeWrite(b, sample)
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(billT.Microseconds())/float64(rounds)/1000, "bill-ms")
	b.ReportMetric(float64(rawT.Microseconds())/float64(rounds)/1000, "raw-ms")
	b.ReportMetric(billT.Seconds()/rawT.Seconds(), "ratio(target≤3)")
}

// seedClosedSessions opens a new data file with a priced machine, members
// in several groups (some with prepaid minutes, some paid for by an
// organisation) and n closed, unbilled sessions.
func seedClosedSessions(b *testing.B, now time.Time, n int) *bolt.Store {
	b.Helper()
	ctx := context.Background()
	// Seeded without fsync, then reopened as a server opens it.
	path := filepath.Join(b.TempDir(), "fabgate.db")
	clock := func() time.Time { return now }
	s, err := bolt.Open(path, bolt.Options{Now: clock, NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	org, err := s.CreateOrganisation(ctx, fablab.Organisation{Name: "Acme", Group: "sme"})
	if err != nil {
		b.Fatal(err)
	}
	m, err := s.CreateMachine(ctx, fablab.Machine{Name: "Laser", Kind: fablab.KindLaserCutter, Rules: fablab.DefaultBookingRules(),
		Prices: map[string]int64{"student": 1000, "sme": 3000, "academic": 2000}, MinimumChargeCents: 200})
	if err != nil {
		b.Fatal(err)
	}
	var members []fablab.ID
	for i := 0; i < 50; i++ {
		mm := fablab.Member{Email: fmt.Sprintf("m%d@bench.test", i), Name: "Maker", Group: []string{"student", "academic", ""}[i%3]}
		if mm.Group == "" {
			mm.OrganisationID, mm.Payer = org.ID, fablab.PayerOrganisation
		}
		if i%5 == 0 {
			mm.PrepaidMinutes = 600
		}
		got, err := s.CreateMember(ctx, mm)
		if err != nil {
			b.Fatal(err)
		}
		members = append(members, got.ID)
	}
	start := now.AddDate(0, -1, 0)
	for i := 0; i < n; i++ {
		st := start.Add(time.Duration(i) * 40 * time.Minute)
		end := st.Add(time.Duration(20+i%90) * time.Minute)
		if _, err := s.RecordSession(ctx, fablab.Session{MachineID: m.ID, MemberID: members[i%len(members)], DeviceID: "laser-1",
			Started: st, Until: st.Add(2 * time.Hour), Ended: &end, EndReason: fablab.EndTapOut, Confirmed: true, Billable: true}, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	if s, err = bolt.Open(path, bolt.Options{Now: clock}); err != nil {
		b.Fatal(err)
	}
	return s
}

// rawChargeWrite writes the charges as JSON under their ids in one bbolt
// Update on a file of its own, and returns how long the transaction took.
func rawChargeWrite(b *testing.B, charges []fablab.Charge) time.Duration {
	b.Helper()
	db, err := bbolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o600, &bbolt.Options{FreelistType: bbolt.FreelistMapType})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	name := []byte("charges")
	if err := db.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucket(name); return err }); err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	err = db.Update(func(tx *bbolt.Tx) error {
		bk := tx.Bucket(name)
		for _, c := range charges {
			v, err := json.Marshal(c)
			if err != nil {
				return err
			}
			var k [8]byte
			binary.BigEndian.PutUint64(k[:], uint64(c.ID))
			if err := bk.Put(k[:], v); err != nil {
				return err
			}
		}
		return nil
	})
	d := time.Since(t0)
	if err != nil {
		b.Fatal(err)
	}
	return d
}
