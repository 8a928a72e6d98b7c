package bolt

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"
	"pgregory.net/rapid"

	"github.com/fabgate/fabgate/internal/fablab"
)

// ledgerLab is a randomly drawn lab: what the billing rule reads besides
// the sessions, as the test created it (not as the store reads it back).
type ledgerLab struct {
	settings fablab.Settings
	machines []fablab.Machine
	members  []fablab.Member
	orgs     map[fablab.ID]*fablab.Organisation
}

// drawLab creates a lab in s: settings with a billing increment and a free
// threshold, organisations paying for their makers or not, machines priced
// for some tariff groups only (some at zero) with or without a minimum
// charge, and members of every role with prepaid balances.
func drawLab(rt *rapid.T, ctx context.Context, s *Store) ledgerLab {
	lab := ledgerLab{orgs: map[fablab.ID]*fablab.Organisation{}}
	groups := []string{"student", "academic", "sme", "association", "non-member", "staff"}
	var err error
	lab.settings, err = s.UpdateSettings(ctx, func(st *fablab.Settings) error {
		st.BillingIncrementMin = rapid.SampledFrom([]int{1, 5, 15, 60, 7}).Draw(rt, "increment")
		st.FreeUnderMinutes = rapid.SampledFrom([]int{0, 0, 2, 10}).Draw(rt, "free_under")
		st.VATRateBasisPoints = rapid.SampledFrom([]int{0, 2000, 550}).Draw(rt, "vat")
		return nil
	})
	if err != nil {
		rt.Fatalf("settings: %v", err)
	}
	var orgIDs []fablab.ID
	for i := range rapid.IntRange(0, 2).Draw(rt, "orgs") {
		o, err := s.CreateOrganisation(ctx, fablab.Organisation{Name: fmt.Sprintf("Org %d", i), Group: rapid.SampledFrom(groups).Draw(rt, "org_group")})
		if err != nil {
			rt.Fatalf("organisation: %v", err)
		}
		lab.orgs[o.ID] = &o
		orgIDs = append(orgIDs, o.ID)
	}
	for i := range rapid.IntRange(1, 3).Draw(rt, "machines") {
		prices := map[string]int64{}
		for _, g := range groups {
			if rapid.Bool().Draw(rt, "priced_"+g) {
				prices[g] = rapid.SampledFrom([]int64{0, 1, 90, 1200, 2999, 6000}).Draw(rt, "price_"+g)
			}
		}
		m, err := s.CreateMachine(ctx, fablab.Machine{Name: fmt.Sprintf("Machine %d", i), Kind: fablab.KindLaserCutter, Prices: prices,
			MinimumChargeCents: rapid.SampledFrom([]int64{0, 0, 150, 500}).Draw(rt, "minimum")})
		if err != nil {
			rt.Fatalf("machine: %v", err)
		}
		lab.machines = append(lab.machines, m)
	}
	for i := range rapid.IntRange(1, 5).Draw(rt, "members") {
		m := fablab.Member{
			Email: fmt.Sprintf("maker%d@example.org", i), Name: fmt.Sprintf("Maker %d", i),
			Role:           rapid.SampledFrom([]fablab.Role{fablab.RoleMaker, fablab.RoleMaker, fablab.RoleMaker, fablab.RoleStaff, fablab.RoleAdmin}).Draw(rt, "role"),
			Group:          rapid.SampledFrom(groups).Draw(rt, "group"),
			PrepaidMinutes: rapid.SampledFrom([]int64{0, 0, 1, 14, 45, 60, 300}).Draw(rt, "prepaid"),
		}
		if len(orgIDs) > 0 && rapid.Bool().Draw(rt, "in_org") {
			m.OrganisationID = rapid.SampledFrom(orgIDs).Draw(rt, "org")
			m.Payer = rapid.SampledFrom([]string{fablab.PayerOrganisation, fablab.PayerSelf}).Draw(rt, "payer")
			if rapid.Bool().Draw(rt, "org_group_only") {
				m.Group = ""
			}
		}
		created, err := s.CreateMember(ctx, m)
		if err != nil {
			rt.Fatalf("member: %v", err)
		}
		lab.members = append(lab.members, created)
	}
	return lab
}

// drawSessions creates sessions the way the server does: live ones
// (OpenSession, perhaps confirmed, CloseSession), ones a device ran alone
// and replayed (RecordSession, sometimes delivered twice), and some left
// open. It returns every session created, by id.
func drawSessions(rt *rapid.T, ctx context.Context, s *Store, lab ledgerLab) []fablab.Session {
	base := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	open := map[fablab.ID]fablab.ID{} // machine → its open session
	var out []fablab.Session
	for i := range rapid.IntRange(0, 16).Draw(rt, "sessions") {
		machine := rapid.SampledFrom(lab.machines).Draw(rt, "machine")
		member := rapid.SampledFrom(lab.members).Draw(rt, "member")
		start := base.Add(time.Duration(rapid.IntRange(0, 40000).Draw(rt, "start_min")) * time.Minute)
		// Lengths near the increments and the free threshold matter most.
		d := time.Duration(rapid.SampledFrom([]int{0, 1, 2, 5, 10, 15, 44, 45, 60, 61, 200}).Draw(rt, "minutes"))*time.Minute +
			time.Duration(rapid.SampledFrom([]int{0, 0, 1, 59}).Draw(rt, "seconds"))*time.Second
		end := start.Add(d)
		kind := rapid.SampledFrom([]string{"live", "live", "replayed", "open"}).Draw(rt, "kind")
		if _, busy := open[machine.ID]; busy && kind != "replayed" {
			kind = "replayed" // one open session per machine
		}
		switch kind {
		case "replayed":
			tap := &TapRef{Device: fmt.Sprintf("dev-%d", machine.ID), MsgID: fmt.Sprintf("off-%d", i), At: end}
			sess, err := s.RecordSession(ctx, fablab.Session{MachineID: machine.ID, MemberID: member.ID, DeviceID: tap.Device,
				Started: start, Until: end.Add(time.Hour), Ended: &end, EndReason: fablab.EndTapOut, Offline: true,
				Confirmed: true, Billable: rapid.IntRange(0, 4).Draw(rt, "replay_billable") > 0}, tap, nil)
			if err != nil {
				rt.Fatalf("record session: %v", err)
			}
			out = append(out, sess)
			if rapid.Bool().Draw(rt, "replayed_twice") {
				// The device sends its queue again: the tap is known.
				if _, err := s.RecordSession(ctx, sess, tap, nil); fablab.ErrorCode(err) != fablab.EDUPLICATE {
					rt.Fatalf("second replay of tap %s: %v, want EDUPLICATE", tap.MsgID, err)
				}
			}
		case "live", "open":
			sess, err := s.OpenSession(ctx, fablab.Session{MachineID: machine.ID, MemberID: member.ID, DeviceID: "dev", Started: start, Until: end.Add(time.Hour), Billable: true}, nil, nil)
			if err != nil {
				rt.Fatalf("open session: %v", err)
			}
			if rapid.IntRange(0, 4).Draw(rt, "confirmed") > 0 {
				if sess, err = s.UpdateSession(ctx, sess.ID, func(x *fablab.Session) { x.Confirmed = true }); err != nil {
					rt.Fatalf("confirm session: %v", err)
				}
			}
			if kind == "open" {
				open[machine.ID] = sess.ID
				out = append(out, sess)
				break
			}
			reason := rapid.SampledFrom([]fablab.EndReason{fablab.EndTapOut, fablab.EndStaff, fablab.EndBookingEnd, fablab.EndRelayUnconfirmed}).Draw(rt, "reason")
			closed, err := s.CloseSession(ctx, sess.ID, end, reason, 0, nil, nil)
			if err != nil {
				rt.Fatalf("close session: %v", err)
			}
			if want := sess.Confirmed && reason != fablab.EndRelayUnconfirmed; closed.Billable != want {
				rt.Fatalf("session %s confirmed=%v ended %s: billable %v", sess.ID, sess.Confirmed, reason, closed.Billable)
			}
			out = append(out, closed)
		}
	}
	return out
}

// expectedCharges applies fablab.SessionCharge to every closed session in
// id order, the member's prepaid balance evolving from one to the next,
// and returns the charge of each session and each member's balance after.
//
// Id order is the store's, even when several billing runs race: every run
// takes the first ids of sessions_unbilled/ (keyed by session id) and bills
// them in order in one transaction; the sessions already billed then are
// always the first ones, so what a run still bills continues them.
func expectedCharges(lab ledgerLab, sessions []fablab.Session) (map[fablab.ID]fablab.Charge, map[fablab.ID]int64) {
	prepaid := map[fablab.ID]int64{}
	members := map[fablab.ID]fablab.Member{}
	for _, m := range lab.members {
		prepaid[m.ID], members[m.ID] = m.PrepaidMinutes, m
	}
	machines := map[fablab.ID]fablab.Machine{}
	for _, m := range lab.machines {
		machines[m.ID] = m
	}
	byID := slices.Clone(sessions)
	slices.SortFunc(byID, func(a, b fablab.Session) int { return int(a.ID) - int(b.ID) })
	want := map[fablab.ID]fablab.Charge{}
	for _, sess := range byID {
		if sess.Open() {
			continue
		}
		m := members[sess.MemberID]
		m.PrepaidMinutes = prepaid[m.ID]
		bc := fablab.BillingContext{Settings: lab.settings, Machine: machines[sess.MachineID], Member: m,
			Organisation: lab.orgs[m.OrganisationID], FreeUnderMinutes: lab.settings.FreeUnderMinutes}
		c, took := fablab.SessionCharge(sess, bc, prepaid[m.ID])
		prepaid[m.ID] -= took
		want[sess.ID] = c
	}
	return want, prepaid
}

// errCrash is what the billing hook returns: the process dying there.
var errCrash = errors.New("crash injected between two writes")

// snapshot is a digest of every bucket's keys, values and sequence.
func snapshot(rt *rapid.T, s *Store) [32]byte {
	h := sha256.New()
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			fmt.Fprintf(h, "bucket %q seq %d\n", name, b.Sequence())
			return b.ForEach(func(k, v []byte) error {
				fmt.Fprintf(h, "%x=%x\n", k, v)
				return nil
			})
		})
	})
	if err != nil {
		rt.Fatalf("snapshot: %v", err)
	}
	return [32]byte(h.Sum(nil))
}

// TestLedgerBillsEachSessionOnce is the ledger's property (DESIGN §2,
// "every closed session is billed exactly once"): over a random lab and
// random sessions, billing runs that race each other, and runs that die
// between two writes of a session's billing, the ledger ends with one
// charge per closed session, each the rule applied to the session with the
// member's prepaid balance as the sessions before it left it, and nothing
// else.
func TestLedgerBillsEachSessionOnce(t *testing.T) {
	dir := t.TempDir()
	runs := 0
	rapid.Check(t, func(rt *rapid.T) {
		runs++
		ctx := context.Background()
		path := filepath.Join(dir, fmt.Sprintf("ledger-%d.db", runs))
		now := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
		// NoSync: the property is about transactions, not durability; the
		// file is checked for consistency before it is closed.
		s, err := Open(path, Options{NoSync: true, Now: func() time.Time { return now }})
		if err != nil {
			rt.Fatalf("open: %v", err)
		}
		defer func() {
			if err := s.Check(); err != nil {
				rt.Errorf("consistency check: %v", err)
			}
			if err := s.Close(); err != nil {
				rt.Errorf("close: %v", err)
			}
			_ = os.Remove(path)
		}()

		lab := drawLab(rt, ctx, s)
		sessions := drawSessions(rt, ctx, s, lab)
		closed := 0
		for _, sess := range sessions {
			if !sess.Open() {
				closed++
			}
		}
		if n, err := s.UnbilledSessions(ctx); err != nil || n != closed {
			rt.Fatalf("%d sessions unbilled before billing (%v), want the %d closed ones", n, err, closed)
		}

		// Crash points: the n-th call of the hook, counted over the whole
		// billing, fails (none: only races).
		var crashAt []int64
		for range rapid.IntRange(0, 3).Draw(rt, "crashes") {
			crashAt = append(crashAt, int64(rapid.IntRange(1, 5*closed+2).Draw(rt, "crash_at")))
		}
		var steps, crashes atomic.Int64
		s.billHook = func(step string) error {
			if slices.Contains(crashAt, steps.Add(1)) {
				crashes.Add(1)
				return fmt.Errorf("%w (%s)", errCrash, step)
			}
			return nil
		}
		var billed atomic.Int64
		var failures atomic.Int64
		if workers := rapid.IntRange(1, 3).Draw(rt, "workers"); workers == 1 {
			// One run at a time: a run that dies leaves the file exactly as
			// it found it.
			for {
				limit := rapid.IntRange(1, 4).Draw(rt, "limit")
				before := snapshot(rt, s)
				n, left, err := s.BillSessions(ctx, limit)
				if err != nil {
					if !errors.Is(err, errCrash) {
						rt.Fatalf("bill sessions: %v", err)
					}
					failures.Add(1)
					if snapshot(rt, s) != before {
						rt.Fatalf("a billing run that died between two writes changed the file")
					}
					continue
				}
				billed.Add(int64(n))
				if left == 0 {
					break
				}
			}
		} else {
			limits := make([]int, workers)
			for i := range limits {
				limits[i] = rapid.IntRange(1, 4).Draw(rt, "limit")
			}
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			for _, limit := range limits {
				wg.Go(func() {
					for {
						n, left, err := s.BillSessions(ctx, limit)
						if errors.Is(err, errCrash) {
							failures.Add(1)
							continue // the next run picks up
						}
						if err != nil {
							errs <- err
							return
						}
						billed.Add(int64(n))
						if left == 0 {
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				rt.Fatalf("bill sessions: %v", err)
			}
		}
		s.billHook = nil
		if failures.Load() != crashes.Load() {
			rt.Fatalf("%d crashes injected, %d runs failed", crashes.Load(), failures.Load())
		}
		// A last run finds nothing to do.
		if n, left, err := s.BillSessions(ctx, 100); n != 0 || left != 0 || err != nil {
			rt.Fatalf("a run after all were billed: billed %d, left %d, %v", n, left, err)
		}
		if billed.Load() != int64(closed) {
			rt.Fatalf("the runs report %d sessions billed, want the %d closed ones", billed.Load(), closed)
		}
		checkLedger(rt, ctx, s, lab, sessions)
	})
}

// checkLedger checks the ledger against the model once everything is
// billed.
func checkLedger(rt *rapid.T, ctx context.Context, s *Store, lab ledgerLab, sessions []fablab.Session) {
	want, wantPrepaid := expectedCharges(lab, sessions)

	// Every charge, read from the charges bucket itself.
	var all []fablab.Charge
	indexes := map[string]int{}
	err := s.db.View(func(tx *bbolt.Tx) error {
		err := tx.Bucket(bCharges).ForEach(func(_, v []byte) error {
			var c fablab.Charge
			if err := getJSONBytes(v, &c); err != nil {
				return err
			}
			all = append(all, c)
			return nil
		})
		if err != nil {
			return err
		}
		for _, b := range [][]byte{bChargesAt, bChargesPayer, bChargesMember, bChargesUninvoiced, bChargesSession, bUsage, bSessionsUnbilled} {
			indexes[string(b)] = tx.Bucket(b).Stats().KeyN
		}
		// Each session's entry in charges_session/ names its charge.
		for _, sess := range sessions {
			v := tx.Bucket(bChargesSession).Get(itob(sess.ID))
			stored, err := getSession(tx, sess.ID)
			if err != nil {
				return err
			}
			switch {
			case sess.Open() && (v != nil || stored.ChargeID != 0):
				return fmt.Errorf("open session %s is charged (index %x, charge_id %s)", sess.ID, v, stored.ChargeID)
			case !sess.Open() && (v == nil || btoi(v) != stored.ChargeID || stored.ChargeID == 0):
				return fmt.Errorf("session %s: charges_session says %x, the session says charge %s", sess.ID, v, stored.ChargeID)
			}
			if !sess.Open() {
				raw := tx.Bucket(bUsage).Get(cat(tkey(sess.Started), itob(sess.ID)))
				if raw == nil {
					return fmt.Errorf("session %s has no usage record", sess.ID)
				}
				u, err := decodeUsage(raw)
				if err != nil {
					return err
				}
				if w := want[sess.ID]; u.AmountCents != w.AmountCents || u.Minutes != w.Minutes || u.Free != w.Free || u.Payer != w.Payer {
					return fmt.Errorf("session %s: usage %+v, want the charge %+v", sess.ID, u, w)
				}
			}
		}
		return nil
	})
	if err != nil {
		rt.Fatal(err)
	}

	bySession := map[fablab.ID][]fablab.Charge{}
	var sum, wantSum int64
	for i, c := range all {
		if c.ID != fablab.ID(i+1) {
			rt.Fatalf("charge ids are not 1…n without gaps: the %d-th is %s (a dead run left a trace)", i+1, c.ID)
		}
		if c.Kind != fablab.ChargeSession {
			rt.Fatalf("charge %s is a %s: billing writes session charges only", c.ID, c.Kind)
		}
		bySession[c.SessionID] = append(bySession[c.SessionID], c)
		sum += c.AmountCents
	}
	for _, sess := range sessions {
		got := bySession[sess.ID]
		if sess.Open() {
			if len(got) != 0 {
				rt.Fatalf("open session %s has %d charges", sess.ID, len(got))
			}
			continue
		}
		if len(got) != 1 {
			rt.Fatalf("session %s has %d charges, want exactly one", sess.ID, len(got))
		}
		c, w := got[0], want[sess.ID]
		w.ID, w.CreatedAt = c.ID, c.CreatedAt
		if c != w {
			rt.Fatalf("session %s charged\n%+v\nwant\n%+v", sess.ID, c, w)
		}
		if c.AmountCents < 0 || c.PrepaidMinutes < 0 || c.PrepaidMinutes > c.Minutes || (c.Free != "" && c.AmountCents != 0) {
			rt.Fatalf("session %s: charge out of bounds %+v", sess.ID, c)
		}
		wantSum += w.AmountCents
	}
	if sum != wantSum {
		rt.Fatalf("charges sum to %d cents, the rule over the closed sessions to %d", sum, wantSum)
	}
	n := len(want)
	for name, got := range indexes {
		wantN := n
		if name == string(bSessionsUnbilled) {
			wantN = 0
		}
		if got != wantN {
			rt.Fatalf("%s/ has %d keys, want %d", name, got, wantN)
		}
	}
	listed, err := s.Charges(ctx, ChargeFilter{})
	if err != nil || len(listed) != n {
		rt.Fatalf("Charges lists %d charges (%v), want %d", len(listed), err, n)
	}
	for _, m := range lab.members {
		got, err := s.Member(ctx, m.ID)
		if err != nil {
			rt.Fatal(err)
		}
		if got.PrepaidMinutes != wantPrepaid[m.ID] || got.PrepaidMinutes < 0 {
			rt.Fatalf("member %s has %d prepaid minutes left of %d, want %d", m.ID, got.PrepaidMinutes, m.PrepaidMinutes, wantPrepaid[m.ID])
		}
		// What the ledger says was taken is what the balance lost.
		var taken int64
		for _, c := range all {
			if c.MemberID == m.ID {
				taken += c.PrepaidMinutes
			}
		}
		if m.PrepaidMinutes-taken != got.PrepaidMinutes {
			rt.Fatalf("member %s: the ledger takes %d prepaid minutes of %d, the balance is %d", m.ID, taken, m.PrepaidMinutes, got.PrepaidMinutes)
		}
	}
	if n, err := s.UnbilledSessions(ctx); n != 0 || err != nil {
		rt.Fatalf("%d sessions unbilled (%v)", n, err)
	}
}
