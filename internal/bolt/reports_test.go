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

// paAt is a wall-clock time in Paris.
func paAt(mo time.Month, d, h, m int) time.Time { return time.Date(2026, mo, d, h, m, 0, 0, paris) }

// reportLab is a lab seeded over March and April 2026 (Europe/Paris, whose
// clocks go forward on Sunday 29 March), with what was seeded kept for
// recomputing every figure of the reports the simple way.
type reportLab struct {
	s     *bolt.Store
	clock *bolttest.Clock
	st    fablab.Settings

	machines map[fablab.ID]fablab.Machine
	members  map[fablab.ID]fablab.Member
	orgs     map[fablab.ID]fablab.Organisation
	sessions []fablab.Session // every recorded session, billed
	bookings []fablab.ID      // every booking, read back in its final state
}

func newReportLab(t *testing.T) *reportLab {
	t.Helper()
	ctx := t.Context()
	clock := bolttest.NewClock(paAt(time.February, 20, 12, 0))
	l := &reportLab{s: bolttest.Open(t, clock.Now), clock: clock,
		machines: map[fablab.ID]fablab.Machine{}, members: map[fablab.ID]fablab.Member{}, orgs: map[fablab.ID]fablab.Organisation{}}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var err error
	l.st, err = l.s.UpdateSettings(ctx, func(st *fablab.Settings) error {
		// Easter Monday closed; the default hours otherwise.
		st.Closures = []fablab.Closure{{From: fablab.Date{Year: 2026, Month: time.April, Day: 6}, To: fablab.Date{Year: 2026, Month: time.April, Day: 6}, Reason: "Pâques"}}
		return nil
	})
	must(err)

	acme, err := l.s.CreateOrganisation(ctx, fablab.Organisation{Name: "Acme SAS", Group: "sme"})
	must(err)
	uni, err := l.s.CreateOrganisation(ctx, fablab.Organisation{Name: "Université", Group: "academic"})
	must(err)
	l.orgs[acme.ID], l.orgs[uni.ID] = acme, uni
	member := func(m fablab.Member) fablab.Member {
		m.Email = fmt.Sprintf("%s@example.org", m.Name)
		m, err := l.s.CreateMember(ctx, m)
		must(err)
		l.members[m.ID] = m
		return m
	}
	alice := member(fablab.Member{Name: "alice", Group: "student"})
	ada := member(fablab.Member{Name: "ada", OrganisationID: acme.ID, Payer: fablab.PayerOrganisation}) // sme through Acme, Acme pays
	rui := member(fablab.Member{Name: "rui", Group: "student", OrganisationID: uni.ID, Payer: fablab.PayerSelf})
	sam := member(fablab.Member{Name: "sam", Group: "staff", Role: fablab.RoleStaff})
	machine := func(m fablab.Machine) fablab.Machine {
		m.Kind = fablab.KindLaserCutter
		m, err := l.s.CreateMachine(ctx, m)
		must(err)
		l.machines[m.ID] = m
		return m
	}
	laser := machine(fablab.Machine{Name: "Laser", Prices: map[string]int64{"student": 1200, "sme": 3000, "academic": 1800}, NoShowFeeCents: 500, MinimumChargeCents: 100})
	printer := machine(fablab.Machine{Name: "Printer", Prices: map[string]int64{"student": 600, "sme": 900}})
	machine(fablab.Machine{Name: "Lathe"}) // never used: still a row by machine

	accept := func(bolt.BookingContext) error { return nil }
	book := func(m fablab.Machine, who fablab.Member, start, end time.Time) fablab.Booking {
		b, err := l.s.CreateBooking(ctx, fablab.Booking{MachineID: m.ID, MemberID: who.ID, Start: start, End: end, CreatedBy: who.ID}, accept)
		must(err)
		l.bookings = append(l.bookings, b.ID)
		return b
	}
	use := func(m fablab.Machine, who fablab.Member, b fablab.ID, start, end time.Time) {
		sess, err := l.s.RecordSession(ctx, fablab.Session{MachineID: m.ID, MemberID: who.ID, BookingID: b, DeviceID: "dev",
			Started: start, Until: end, Ended: &end, EndReason: fablab.EndTapOut, Confirmed: true, Billable: true}, nil, nil)
		must(err)
		l.sessions = append(l.sessions, sess)
	}

	// March, before the change of time.
	b := book(laser, alice, paAt(time.March, 3, 10, 0), paAt(time.March, 3, 12, 0))
	use(laser, alice, b.ID, paAt(time.March, 3, 10, 5), paAt(time.March, 3, 11, 47))
	b = book(laser, ada, paAt(time.March, 10, 14, 0), paAt(time.March, 10, 15, 0))
	use(laser, ada, b.ID, paAt(time.March, 10, 14, 0), paAt(time.March, 10, 15, 0))
	use(printer, rui, 0, paAt(time.March, 12, 20, 30), paAt(time.March, 12, 22, 10)) // walk-in, past closing time
	use(printer, sam, 0, paAt(time.March, 13, 9, 0), paAt(time.March, 13, 10, 0))    // staff: free
	noShow1 := book(laser, rui, paAt(time.March, 17, 9, 0), paAt(time.March, 17, 10, 0))
	noShow2 := book(printer, ada, paAt(time.March, 20, 16, 0), paAt(time.March, 20, 18, 0))
	cancelled := book(laser, alice, paAt(time.March, 24, 9, 0), paAt(time.March, 24, 11, 0))
	// Across the change of time: 01:30 CET to 03:30 CEST is one hour.
	use(printer, alice, 0, paAt(time.March, 29, 1, 30), paAt(time.March, 29, 3, 30))
	// Across the end of March (midnight) and a booking across it.
	b = book(laser, rui, paAt(time.March, 31, 23, 0), paAt(time.April, 1, 1, 0))
	use(laser, rui, b.ID, paAt(time.March, 31, 23, 30), paAt(time.April, 1, 0, 45))
	// April.
	b = book(printer, alice, paAt(time.April, 2, 10, 0), paAt(time.April, 2, 13, 0))
	use(printer, alice, b.ID, paAt(time.April, 2, 10, 10), paAt(time.April, 2, 12, 55))
	book(laser, ada, paAt(time.April, 15, 9, 30), paAt(time.April, 15, 11, 0)) // confirmed, not used
	use(laser, ada, 0, paAt(time.April, 21, 17, 0), paAt(time.April, 21, 19, 20))
	use(laser, alice, 0, paAt(time.April, 30, 20, 0), paAt(time.April, 30, 23, 59))

	clock.Set(paAt(time.May, 2, 8, 0))
	billed, left, err := l.s.BillSessions(ctx, 1000)
	must(err)
	if billed != len(l.sessions) || left != 0 {
		t.Fatalf("billed %d, %d left; want %d, 0", billed, left, len(l.sessions))
	}
	for _, nb := range []fablab.Booking{noShow1, noShow2} {
		marked, err := l.s.MarkNoShows(ctx, nb.Start.Add(20*time.Minute), 30*time.Minute)
		must(err)
		if len(marked) != 1 || marked[0].ID != nb.ID {
			t.Fatalf("no-shows marked %v, want booking %s", marked, nb.ID)
		}
	}
	_, err = l.s.SetBookingState(ctx, cancelled.ID, fablab.BookingCancelled, sam.ID, func(fablab.Machine, fablab.Booking) error { return nil })
	must(err)
	// Corrections: a credit on Ada's March session (written in May) and on
	// a no-show fee.
	sess, err := l.s.Session(ctx, l.sessions[1].ID)
	must(err)
	_, err = l.s.AddCorrection(ctx, sess.ChargeID, -700, "lens cleaning", sam.ID)
	must(err)
	fees, err := l.s.Charges(ctx, bolt.ChargeFilter{MemberID: rui.ID})
	must(err)
	for _, c := range fees {
		if c.Kind == fablab.ChargeNoShow {
			clock.Set(paAt(time.April, 10, 12, 0))
			_, err = l.s.AddCorrection(ctx, c.ID, -250, "half the fee: a late bus", sam.ID)
			must(err)
		}
	}
	return l
}

// wantUsage recomputes a usage report from what was seeded, minute by
// minute on the wall clock of Paris.
func (l *reportLab) wantUsage(t *testing.T, from, to time.Time, by string) (map[string]bolt.UsageRow, int64) {
	t.Helper()
	rows := map[string]bolt.UsageRow{}
	row := func(key string) *bolt.UsageRow {
		r, ok := rows[key]
		if !ok {
			r = bolt.UsageRow{Key: key}
		}
		rows[key] = r
		return &r
	}
	set := func(r *bolt.UsageRow) { rows[r.Key] = *r }
	// Sessions: grouped as billed (the member's group and organisation then,
	// unchanged since).
	memberKey := func(id fablab.ID) string {
		m := l.members[id]
		switch by {
		case bolt.ByMember:
			return id.String()
		case bolt.ByOrganisation:
			return m.OrganisationID.String()
		}
		if m.Group == "" {
			return l.orgs[m.OrganisationID].Group
		}
		return m.Group
	}
	for _, s := range l.sessions {
		key := memberKey(s.MemberID)
		if by == bolt.ByMachine {
			key = s.MachineID.String()
		}
		r := row(key)
		if !s.Started.Before(from) && s.Started.Before(to) {
			r.Sessions++
		}
		for m := s.Started; m.Before(*s.Ended); m = m.Add(time.Minute) {
			if !m.Before(from) && m.Before(to) {
				r.UsedMinutes++
				lm := m.In(paris)
				r.BusiestHours[lm.Weekday()][lm.Hour()]++
			}
		}
		set(r)
	}
	for _, id := range l.bookings {
		b, err := l.s.Booking(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		key := memberKey(b.MemberID)
		if by == bolt.ByMachine {
			key = b.MachineID.String()
		}
		r := row(key)
		if b.Occupies() {
			for m := b.Start; m.Before(b.End); m = m.Add(time.Minute) {
				if !m.Before(from) && m.Before(to) {
					r.BookedMinutes++
				}
			}
		}
		if !b.Start.Before(from) && b.Start.Before(to) && b.State != fablab.BookingCancelled {
			r.Bookings++
			if b.State == fablab.BookingNoShow {
				r.NoShows++
			}
		}
		set(r)
	}
	// Open minutes: each minute of the range the lab's hours cover.
	var open int64
	for m := from; m.Before(to); m = m.Add(time.Minute) {
		lm := m.In(paris)
		if l.st.ClosedOn(fablab.DateOf(lm)) {
			continue
		}
		wall := fablab.ClockTime(lm.Hour()*60 + lm.Minute())
		for _, tr := range l.st.OpeningHours.Day(lm.Weekday()) {
			if wall >= tr.Open && wall < tr.Close {
				open++
			}
		}
	}
	if by == bolt.ByMachine {
		for id := range l.machines {
			r := row(id.String())
			r.OpenMinutes = open
			set(r)
		}
	}
	return rows, open
}

func TestUsageReportMatchesRecomputation(t *testing.T) {
	l := newReportLab(t)
	ranges := []struct {
		name     string
		from, to time.Time
	}{
		{"march and april", paAt(time.March, 1, 0, 0), paAt(time.May, 1, 0, 0)},
		{"march", paAt(time.March, 1, 0, 0), paAt(time.April, 1, 0, 0)},
		{"april", paAt(time.April, 1, 0, 0), paAt(time.May, 1, 0, 0)},
		{"the week of the change of time", paAt(time.March, 23, 0, 0), paAt(time.March, 30, 0, 0)},
		{"inside sessions", paAt(time.March, 3, 11, 0), paAt(time.April, 21, 18, 0)},
	}
	for _, rg := range ranges {
		for _, by := range bolt.UsageGroupings {
			t.Run(rg.name+"/"+by, func(t *testing.T) {
				rep, err := l.s.UsageReport(t.Context(), rg.from, rg.to, by)
				if err != nil {
					t.Fatal(err)
				}
				want, open := l.wantUsage(t, rg.from, rg.to, by)
				got := map[string]bolt.UsageRow{}
				var total bolt.UsageRow
				for _, r := range rep.Rows {
					if r.Key != "0" && r.Name == "" {
						t.Errorf("row %s has no name", r.Key)
					}
					total.BookedMinutes += r.BookedMinutes
					total.UsedMinutes += r.UsedMinutes
					total.Bookings += r.Bookings
					total.NoShows += r.NoShows
					total.Sessions += r.Sessions
					r.Name = ""
					got[r.Key] = r
				}
				for key, w := range want {
					if w == (bolt.UsageRow{Key: key}) {
						delete(want, key) // nothing in this range
						delete(got, key)
					}
				}
				for key, g := range got {
					if g == (bolt.UsageRow{Key: key}) && by != bolt.ByMachine {
						t.Errorf("row %s is empty", key)
					}
				}
				if !reflect.DeepEqual(got, want) {
					for k := range want {
						if !reflect.DeepEqual(got[k], want[k]) {
							t.Errorf("row %s:\n got  %+v\n want %+v", k, got[k], want[k])
						}
					}
					for k := range got {
						if _, ok := want[k]; !ok {
							t.Errorf("row %s is not expected: %+v", k, got[k])
						}
					}
				}
				if rep.Total.OpenMinutes != open || rep.Total.UsedMinutes != total.UsedMinutes || rep.Total.BookedMinutes != total.BookedMinutes ||
					rep.Total.Sessions != total.Sessions || rep.Total.Bookings != total.Bookings || rep.Total.NoShows != total.NoShows {
					t.Errorf("total %+v, want the rows' sums %+v and %d open minutes", rep.Total, total, open)
				}
				if rep.TimeZone != "Europe/Paris" || rep.By != by || !rep.From.Equal(rg.from) || !rep.To.Equal(rg.to) {
					t.Errorf("report header %s %s %v %v", rep.TimeZone, rep.By, rep.From, rep.To)
				}
			})
		}
	}
}

// TestUsageReportChangeOfTime checks the hours of the night the clocks go
// forward by hand: 01:30 CET to 03:30 CEST is 30 minutes in the hour of 1
// and 30 in the hour of 3; there is no hour of 2.
func TestUsageReportChangeOfTime(t *testing.T) {
	l := newReportLab(t)
	rep, err := l.s.UsageReport(t.Context(), paAt(time.March, 29, 0, 0), paAt(time.March, 30, 0, 0), bolt.ByMachine)
	if err != nil {
		t.Fatal(err)
	}
	sun := rep.Total.BusiestHours[time.Sunday]
	if sun[1] != 30 || sun[2] != 0 || sun[3] != 30 || rep.Total.UsedMinutes != 60 {
		t.Errorf("Sunday 29 March: hours 1–3 %v, used %d; want 30, 0, 30 and 60", sun[1:4], rep.Total.UsedMinutes)
	}
	if rep.Total.OpenMinutes != 0 {
		t.Errorf("open %d minutes on a Sunday, want 0", rep.Total.OpenMinutes)
	}
	// A Saturday 10:00–18:00 and Easter Monday closed.
	rep, err = l.s.UsageReport(t.Context(), paAt(time.April, 4, 0, 0), paAt(time.April, 7, 0, 0), bolt.ByGroup)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Total.OpenMinutes != 8*60 {
		t.Errorf("open %d minutes from Saturday to Easter Monday, want %d", rep.Total.OpenMinutes, 8*60)
	}
}

// TestUsageReportTotalAddsUpRoundedRows: each row rounds its own seconds
// to the nearest minute, and the total is the sum of the rows as shown:
// two sessions of 90 seconds on two machines are 2 minutes each, 4 in
// all (not the 3 minutes of their 180 seconds rounded once).
func TestUsageReportTotalAddsUpRoundedRows(t *testing.T) {
	ctx := t.Context()
	clock := bolttest.NewClock(paAt(time.March, 2, 8, 0))
	s := bolttest.Open(t, clock.Now)
	who, err := s.CreateMember(ctx, fablab.Member{Name: "alice", Email: "alice@example.org", Group: "student"})
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"Laser", "Printer"} {
		m, err := s.CreateMachine(ctx, fablab.Machine{Name: name, Kind: fablab.KindLaserCutter})
		if err != nil {
			t.Fatal(err)
		}
		start := paAt(time.March, 2, 10+i, 0)
		end := start.Add(90 * time.Second)
		if _, err := s.RecordSession(ctx, fablab.Session{MachineID: m.ID, MemberID: who.ID, DeviceID: "dev", Started: start, Until: end, Ended: &end,
			EndReason: fablab.EndTapOut, Confirmed: true, Billable: true}, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	clock.Set(paAt(time.March, 2, 12, 0))
	if billed, _, err := s.BillSessions(ctx, 10); err != nil || billed != 2 {
		t.Fatalf("billed %d sessions (%v), want 2", billed, err)
	}
	rep, err := s.UsageReport(ctx, paAt(time.March, 2, 0, 0), paAt(time.March, 3, 0, 0), bolt.ByMachine)
	if err != nil {
		t.Fatal(err)
	}
	var used, cell int64
	for _, r := range rep.Rows {
		if r.UsedMinutes != 2 || r.Sessions != 1 {
			t.Errorf("row %s (%s): %d minutes used in %d sessions, want 2 in 1", r.Key, r.Name, r.UsedMinutes, r.Sessions)
		}
		used += r.UsedMinutes
		cell += r.BusiestHours[time.Monday][10] + r.BusiestHours[time.Monday][11]
	}
	if len(rep.Rows) != 2 || rep.Total.UsedMinutes != used || used != 4 || rep.Total.Sessions != 2 {
		t.Errorf("%d rows of %d minutes; total %d minutes in %d sessions, want 4 in 2", len(rep.Rows), used, rep.Total.UsedMinutes, rep.Total.Sessions)
	}
	tot := rep.Total.BusiestHours[time.Monday]
	if tot[10] != 2 || tot[11] != 2 || cell != 4 {
		t.Errorf("total's Monday hours 10 and 11: %d and %d (rows %d), want 2 and 2", tot[10], tot[11], cell)
	}
}

// wantRevenue sums every charge of the ledger over [from, to) by month,
// machine, group and organisation, from the charges themselves.
func (l *reportLab) wantRevenue(t *testing.T, from, to time.Time) (map[string]bolt.RevenueRow, int64) {
	t.Helper()
	cs, err := l.s.Charges(t.Context(), bolt.ChargeFilter{From: from, To: to})
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]bolt.RevenueRow{}
	var total int64
	for _, c := range cs {
		m := l.members[c.MemberID]
		r := bolt.RevenueRow{Month: c.At.In(paris).Format("2006-01"), MachineID: c.MachineID, Group: c.Group, OrganisationID: m.OrganisationID}
		key := fmt.Sprint(r.Month, r.MachineID, r.Group, r.OrganisationID)
		if got, ok := rows[key]; ok {
			r = got
		}
		r.Charges++
		r.Minutes += c.Minutes
		r.AmountCents += c.AmountCents
		rows[key] = r
		total += c.AmountCents
	}
	return rows, total
}

func TestRevenueReportMatchesLedger(t *testing.T) {
	l := newReportLab(t)
	for _, rg := range []struct {
		name     string
		from, to time.Time
	}{
		{"everything", paAt(time.January, 1, 0, 0), paAt(time.June, 1, 0, 0)},
		{"march", paAt(time.March, 1, 0, 0), paAt(time.April, 1, 0, 0)},
		{"mid-march to mid-april", paAt(time.March, 15, 0, 0), paAt(time.April, 15, 0, 0)},
	} {
		t.Run(rg.name, func(t *testing.T) {
			rep, err := l.s.RevenueReport(t.Context(), rg.from, rg.to)
			if err != nil {
				t.Fatal(err)
			}
			want, total := l.wantRevenue(t, rg.from, rg.to)
			if rep.AmountCents != total {
				t.Errorf("total %s, want the sum of the charges %s", fablab.FormatDecimal(rep.AmountCents), fablab.FormatDecimal(total))
			}
			var sum int64
			n := 0
			got := map[string]bolt.RevenueRow{}
			for _, r := range rep.Rows {
				sum += r.AmountCents
				n += r.Charges
				if r.MachineID != 0 && r.MachineName != l.machines[r.MachineID].Name {
					t.Errorf("row %+v: machine name %q", r, r.MachineName)
				}
				if r.OrganisationID != 0 && r.OrganisationName != l.orgs[r.OrganisationID].Name {
					t.Errorf("row %+v: organisation name %q", r, r.OrganisationName)
				}
				if r.Group != "" && r.GroupName == "" {
					t.Errorf("row %+v: no group name", r)
				}
				r.MachineName, r.OrganisationName, r.GroupName = "", "", ""
				got[fmt.Sprint(r.Month, r.MachineID, r.Group, r.OrganisationID)] = r
			}
			if sum != rep.AmountCents || n != rep.Charges {
				t.Errorf("rows sum to %d cents in %d charges; the report says %d in %d", sum, n, rep.AmountCents, rep.Charges)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("rows\n got  %+v\n want %+v", got, want)
			}
		})
	}
	// The whole ledger has what the seeding wrote: sessions in both
	// months, no-show fees, corrections, organisations.
	rep, err := l.s.RevenueReport(t.Context(), paAt(time.January, 1, 0, 0), paAt(time.June, 1, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	months, orgs := map[string]bool{}, map[fablab.ID]bool{}
	for _, r := range rep.Rows {
		months[r.Month], orgs[r.OrganisationID] = true, true
	}
	if !months["2026-03"] || !months["2026-04"] || !months["2026-05"] || len(orgs) != 3 || rep.Charges != len(l.sessions)+1+2 {
		t.Errorf("months %v, organisations %v, %d charges: the seeding is not what the test expects", months, orgs, rep.Charges)
	}
}

// TestReportsInChunks reads the reports a few keys per transaction: the
// result is the same as in one.
func TestReportsInChunks(t *testing.T) {
	l := newReportLab(t)
	ctx := t.Context()
	from, to := paAt(time.January, 1, 0, 0), paAt(time.June, 1, 0, 0)
	read := func() ([]bolt.UsageReport, bolt.RevenueReport) {
		var us []bolt.UsageReport
		for _, by := range bolt.UsageGroupings {
			u, err := l.s.UsageReport(ctx, from, to, by)
			if err != nil {
				t.Fatal(err)
			}
			us = append(us, u)
		}
		r, err := l.s.RevenueReport(ctx, from, to)
		if err != nil {
			t.Fatal(err)
		}
		return us, r
	}
	whole, wholeRev := read()
	if whole[0].Total.Sessions <= 3 || wholeRev.Charges <= 3 {
		t.Fatalf("%d sessions, %d charges: too few for chunks of 2", whole[0].Total.Sessions, wholeRev.Charges)
	}
	for _, n := range []int{1, 2, 3} {
		restore := bolt.SetReportChunk(n)
		chunked, chunkedRev := read()
		restore()
		if !reflect.DeepEqual(chunked, whole) || !reflect.DeepEqual(chunkedRev, wholeRev) {
			t.Errorf("in chunks of %d the reports differ:\n%+v\n%+v", n, chunked, whole)
		}
	}
}

func TestReportsRefuseBadInput(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	from := paAt(time.March, 1, 0, 0)
	for _, c := range []struct {
		name, by, field string
		from, to        time.Time
	}{
		{"no from", bolt.ByMachine, "from", time.Time{}, from},
		{"to before from", bolt.ByMachine, "to", from, from.Add(-time.Hour)},
		{"empty range", bolt.ByMachine, "to", from, from},
		{"more than 5 years", bolt.ByMachine, "to", from, from.AddDate(5, 0, 10)},
		{"unknown grouping", "payer", "by", from, from.AddDate(0, 1, 0)},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.UsageReport(ctx, c.from, c.to, c.by)
			if fablab.ErrorCode(err) != fablab.EINVALID || fablab.ErrorField(err) != c.field {
				t.Errorf("usage: %v (field %q), want invalid on %s", err, fablab.ErrorField(err), c.field)
			}
			if c.field == "by" {
				return
			}
			_, err = s.RevenueReport(ctx, c.from, c.to)
			if fablab.ErrorCode(err) != fablab.EINVALID || fablab.ErrorField(err) != c.field {
				t.Errorf("revenue: %v (field %q), want invalid on %s", err, fablab.ErrorField(err), c.field)
			}
		})
	}
	if _, err := s.UsageReport(ctx, from, from.AddDate(5, 0, 0), bolt.ByMember); err != nil {
		t.Errorf("5 years: %v", err)
	}
}
