package bolt_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/bolt/bolttest"
	"github.com/fabgate/fabgate/internal/fablab"
)

// seedLab makes the same priced machine, organisation and members (some
// with prepaid minutes, some paid for by the organisation) in s, and
// returns the sessions both ways of storing them are given.
func seedLab(t *testing.T, s *bolt.Store) []fablab.Session {
	t.Helper()
	ctx := t.Context()
	org, err := s.CreateOrganisation(ctx, fablab.Organisation{Name: "Acme", Group: "sme"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.CreateMachine(ctx, fablab.Machine{Name: "Laser", Kind: fablab.KindLaserCutter,
		Prices: map[string]int64{"student": 1000, "sme": 3000}, MinimumChargeCents: 200})
	if err != nil {
		t.Fatal(err)
	}
	var members []fablab.ID
	for i := 0; i < 6; i++ {
		mm := fablab.Member{Email: fmt.Sprintf("m%d@example.org", i), Name: "Maker", Group: "student"}
		if i%3 == 1 {
			mm.Group, mm.OrganisationID, mm.Payer = "", org.ID, fablab.PayerOrganisation
		}
		if i%2 == 0 {
			mm.PrepaidMinutes = 90
		}
		got, err := s.CreateMember(ctx, mm)
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, got.ID)
	}
	var out []fablab.Session
	for i := 0; i < 40; i++ {
		st := t0.Add(time.Duration(i) * 50 * time.Minute)
		end := st.Add(time.Duration(1+i*7%100) * time.Minute)
		out = append(out, fablab.Session{MachineID: m.ID, MemberID: members[i%len(members)], DeviceID: "laser-1",
			Started: st, Until: st.Add(2 * time.Hour), Ended: &end, EndReason: fablab.EndTapOut, Confirmed: true, Billable: i%9 != 0})
	}
	return out
}

// TestSeedBilledSessionsAsRecordAndBill: seeding billed sessions leaves the
// file as recording each session and then running the billing does:
// the same sessions, charges, members' prepaid minutes and reports.
func TestSeedBilledSessionsAsRecordAndBill(t *testing.T) {
	ctx := t.Context()
	clock := bolttest.NewClock(t0.Add(30 * 24 * time.Hour))
	recorded, seeded := bolttest.Open(t, clock.Now), bolttest.Open(t, clock.Now)

	sessions := seedLab(t, recorded)
	for _, sess := range sessions {
		if _, err := recorded.RecordSession(ctx, sess, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n, left, err := recorded.BillSessions(ctx, 100); err != nil || n != len(sessions) || left != 0 {
		t.Fatalf("billed %d (%d left): %v", n, left, err)
	}
	if err := seeded.SeedBilledSessions(ctx, seedLab(t, seeded)); err != nil {
		t.Fatal(err)
	}

	if n, err := seeded.UnbilledSessions(ctx); err != nil || n != 0 {
		t.Errorf("seeded: %d sessions left unbilled (%v)", n, err)
	}
	from, to := t0.Add(-time.Hour), t0.Add(40*24*time.Hour)
	read := func(s *bolt.Store) (any, any, any, any, any) {
		t.Helper()
		ss, err := s.SessionsStarted(ctx, from, to, 1000)
		if err != nil {
			t.Fatal(err)
		}
		cs, err := s.Charges(ctx, bolt.ChargeFilter{From: from, To: to})
		if err != nil {
			t.Fatal(err)
		}
		var prepaid []int64
		for _, sess := range ss[:6] {
			m, err := s.Member(ctx, sess.MemberID)
			if err != nil {
				t.Fatal(err)
			}
			prepaid = append(prepaid, m.PrepaidMinutes)
		}
		usage, err := s.UsageReport(ctx, from, to, bolt.ByMember)
		if err != nil {
			t.Fatal(err)
		}
		revenue, err := s.RevenueReport(ctx, from, to)
		if err != nil {
			t.Fatal(err)
		}
		return ss, cs, prepaid, usage, revenue
	}
	rs, rc, rp, ru, rr := read(recorded)
	ss, sc, sp, su, sr := read(seeded)
	if len(rc.([]fablab.Charge)) != len(sessions) {
		t.Fatalf("%d charges recorded, want %d", len(rc.([]fablab.Charge)), len(sessions))
	}
	for _, c := range []struct {
		name       string
		rec, seeds any
	}{{"sessions", rs, ss}, {"charges", rc, sc}, {"prepaid minutes", rp, sp}, {"usage report", ru, su}, {"revenue report", rr, sr}} {
		if !reflect.DeepEqual(c.rec, c.seeds) {
			t.Errorf("%s differ:\nrecorded and billed %+v\nseeded              %+v", c.name, c.rec, c.seeds)
		}
	}
}

// TestSeedBilledSessionsRefusesOpen: a seeded session must have ended.
func TestSeedBilledSessionsRefusesOpen(t *testing.T) {
	s := bolttest.Open(t, bolttest.NewClock(t0).Now)
	sessions := seedLab(t, s)
	sessions[3].Ended = nil
	if err := s.SeedBilledSessions(context.Background(), sessions); fablab.ErrorCode(err) != fablab.EINVALID {
		t.Fatalf("seeding an open session: %v, want EINVALID", err)
	}
	if n, err := s.UnbilledSessions(context.Background()); err != nil || n != 0 {
		t.Fatalf("a refused seed left %d sessions (%v)", n, err)
	}
}
