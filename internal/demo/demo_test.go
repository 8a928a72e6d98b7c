package demo

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/access"
	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/bolt/bolttest"
	"github.com/fabgate/fabgate/internal/booking"
	"github.com/fabgate/fabgate/internal/fablab"
)

// cheap keeps argon2id fast in tests; production uses auth.OWASPParams.
var cheap = auth.Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

var paris = func() *time.Location {
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		panic(err)
	}
	return loc
}()

// snapshot is what a second Seed must leave unchanged.
type snapshot struct {
	settings      fablab.Settings
	trainings     []fablab.Training
	organisations []fablab.Organisation
	machines      []fablab.Machine
	members       []fablab.Member
	bookings      map[fablab.ID][]fablab.Booking // by machine, the whole demo week ±1 year
}

func takeSnapshot(t *testing.T, s *bolt.Store, now time.Time) snapshot {
	t.Helper()
	ctx := context.Background()
	var sn snapshot
	var err error
	if sn.settings, err = s.Settings(ctx); err != nil {
		t.Fatal(err)
	}
	tr, err := s.Trainings(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	orgs, err := s.Organisations(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := s.Machines(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := s.Members(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	sn.trainings, sn.organisations, sn.machines, sn.members = tr.Items, orgs.Items, ms.Items, mem.Items
	sn.bookings = map[fablab.ID][]fablab.Booking{}
	for _, m := range sn.machines {
		bs, err := s.Bookings(ctx, bolt.BookingFilter{MachineID: m.ID, From: now.AddDate(-1, 0, 0), To: now.AddDate(1, 0, 0)})
		if err != nil {
			t.Fatal(err)
		}
		sn.bookings[m.ID] = bs
	}
	return sn
}

func (sn snapshot) bookingCount() int {
	n := 0
	for _, bs := range sn.bookings {
		n += len(bs)
	}
	return n
}

func TestSeed(t *testing.T) {
	for _, tc := range []struct {
		name string
		now  time.Time
	}{
		{"wednesday afternoon", time.Date(2026, 5, 13, 15, 7, 0, 0, paris)},
		{"monday before opening", time.Date(2026, 6, 8, 7, 30, 0, 0, paris)},
		{"sunday of the spring DST change", time.Date(2026, 3, 29, 12, 0, 0, 0, paris)},
		{"week of the autumn DST change", time.Date(2026, 10, 23, 20, 45, 0, 0, paris)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s := bolttest.Open(t, func() time.Time { return tc.now })

			seeded, err := Seed(ctx, s, tc.now, cheap)
			if err != nil {
				t.Fatalf("Seed: %v", err)
			}
			if !seeded {
				t.Fatal("Seed on an empty lab returned false")
			}
			sn := takeSnapshot(t, s, tc.now)
			checkLab(t, sn, tc.now)
			checkAccounts(t, s)
			checkBookings(t, s, sn, tc.now)
			checkHistory(t, s, sn, tc.now)

			again, err := Seed(ctx, s, tc.now.Add(48*time.Hour), cheap)
			if err != nil {
				t.Fatalf("second Seed: %v", err)
			}
			if again {
				t.Fatal("second Seed returned true")
			}
			after := takeSnapshot(t, s, tc.now)
			if len(after.trainings) != len(sn.trainings) || len(after.organisations) != len(sn.organisations) ||
				len(after.machines) != len(sn.machines) || len(after.members) != len(sn.members) ||
				after.bookingCount() != sn.bookingCount() || after.settings.Name != sn.settings.Name {
				t.Errorf("second Seed changed the lab: trainings %d→%d, organisations %d→%d, machines %d→%d, members %d→%d, bookings %d→%d, name %q→%q",
					len(sn.trainings), len(after.trainings), len(sn.organisations), len(after.organisations),
					len(sn.machines), len(after.machines), len(sn.members), len(after.members),
					sn.bookingCount(), after.bookingCount(), sn.settings.Name, after.settings.Name)
			}
		})
	}
}

func checkLab(t *testing.T, sn snapshot, now time.Time) {
	t.Helper()
	if sn.settings.Name != LabName || sn.settings.TimeZone != "Europe/Paris" || sn.settings.Currency != "EUR" {
		t.Errorf("settings: name %q, zone %q, currency %q", sn.settings.Name, sn.settings.TimeZone, sn.settings.Currency)
	}
	if len(sn.trainings) < 3 {
		t.Errorf("%d trainings, want at least 3", len(sn.trainings))
	}

	kinds, devices, available := map[string]bool{}, map[string]bool{}, 0
	for _, m := range sn.machines {
		kinds[m.Kind] = true
		if !fablab.ValidDeviceID(m.DeviceID) || devices[m.DeviceID] {
			t.Errorf("machine %s: device id %q missing or repeated", m.Name, m.DeviceID)
		}
		devices[m.DeviceID] = true
		if m.State == fablab.MachineAvailable {
			available++
		}
		for _, g := range fablab.DefaultTariffGroups() {
			if _, ok := m.Prices[g.ID]; !ok {
				t.Errorf("machine %s has no price for %s", m.Name, g.ID)
			}
		}
		if m.Prices["non-member"] <= m.Prices["student"] || m.MinimumChargeCents <= 0 {
			t.Errorf("machine %s: prices %v, minimum charge %d look wrong", m.Name, m.Prices, m.MinimumChargeCents)
		}
	}
	if len(sn.machines) < 6 || len(kinds) < 3 || available < 5 {
		t.Errorf("%d machines of %d kinds, %d available; want ≥6 of ≥3 kinds, ≥5 available", len(sn.machines), len(kinds), available)
	}
	required := map[string]string{"laser-1": tLaser, "cnc-1": tCNC, "fdm-1": tPrinting, "fdm-2": tPrinting, "fdm-3": tPrinting}
	names := map[fablab.ID]string{}
	for _, tr := range sn.trainings {
		names[tr.ID] = tr.Name
	}
	for _, m := range sn.machines {
		if want, ok := required[m.DeviceID]; ok && !slices.ContainsFunc(m.RequiredTrainings, func(id fablab.ID) bool { return names[id] == want }) {
			t.Errorf("machine %s does not require %q", m.Name, want)
		}
		if m.DeviceID == "laser-1" && m.Rules.SlotMinutes != 60 {
			t.Errorf("laser slot %d minutes, want 60", m.Rules.SlotMinutes)
		}
	}

	if len(sn.organisations) != 3 {
		t.Errorf("%d organisations, want 3", len(sn.organisations))
	}
	orgGroup := map[fablab.ID]string{}
	for _, o := range sn.organisations {
		orgGroup[o.ID] = o.Group
		if o.BillingAddress == "" {
			t.Errorf("organisation %s has no billing address", o.Name)
		}
	}
	groups := map[string]bool{}
	for _, o := range sn.organisations {
		groups[o.Group] = true
	}
	for _, g := range []string{"sme", "academic", "association"} {
		if !groups[g] {
			t.Errorf("no organisation in group %s", g)
		}
	}

	if len(sn.members) < 18 {
		t.Errorf("%d members, want at least 18", len(sn.members))
	}
	var suspended, expired, orgPaid int
	for _, m := range sn.members {
		g := m.Group
		if g == "" {
			g = orgGroup[m.OrganisationID]
		}
		groups[g] = true
		if m.Status == fablab.StatusSuspended {
			suspended++
		}
		if m.Status == fablab.StatusActive && !m.ActiveAt(now) {
			expired++
		}
		if m.Payer == fablab.PayerOrganisation {
			orgPaid++
		}
	}
	if len(groups) < 5 {
		t.Errorf("tariff groups in use %v, want at least 5", groups)
	}
	if suspended != 1 || expired != 1 || orgPaid < 3 {
		t.Errorf("%d suspended, %d with an expired membership, %d paid by their organisation; want 1, 1, ≥3", suspended, expired, orgPaid)
	}
	for _, spec := range members {
		if spec.badge == "" {
			continue
		}
		if uid, err := fablab.NormalizeUID(spec.badge); err != nil || uid != spec.badge || len(uid) != 14 {
			t.Errorf("%s: badge %q is not 7 bytes of upper-case hex", spec.email, spec.badge)
		}
	}
}

func checkAccounts(t *testing.T, s *bolt.Store) {
	t.Helper()
	ctx := context.Background()
	if len(Accounts) != 3 {
		t.Errorf("%d documented accounts, want 3", len(Accounts))
	}
	for _, a := range Accounts {
		m, err := s.MemberByEmail(ctx, a.Email)
		if err != nil {
			t.Errorf("%s: %v", a.Email, err)
			continue
		}
		if m.Role != a.Role {
			t.Errorf("%s: role %s, documented %s", a.Email, m.Role, a.Role)
		}
		if ok, err := auth.VerifyPassword(m.PasswordHash, a.Password); err != nil || !ok {
			t.Errorf("%s: documented password does not verify (ok=%v, err=%v)", a.Email, ok, err)
		}
		if ok, _ := auth.VerifyPassword(m.PasswordHash, a.Password+"x"); ok {
			t.Errorf("%s: a wrong password verifies", a.Email)
		}
	}
	other, err := s.MemberByEmail(ctx, "thomas.bernard@lumen-proto.example")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := auth.VerifyPassword(other.PasswordHash, sharedPassword); err != nil || !ok {
		t.Errorf("other demo members should log in with %q (ok=%v, err=%v)", sharedPassword, ok, err)
	}

	owner, err := s.BadgeOwner(ctx, auth.BadgeHash(s.BadgeSecret(), MakerBadgeUID))
	if err != nil {
		t.Fatalf("maker badge: %v", err)
	}
	if owner.Email != "maker@fabgate.demo" {
		t.Errorf("badge %s belongs to %s, want maker@fabgate.demo", MakerBadgeUID, owner.Email)
	}
	quals, err := s.Qualifications(ctx, owner.ID)
	if err != nil {
		t.Fatal(err)
	}
	trs, err := s.Trainings(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	held := map[string]bool{}
	for _, q := range quals {
		for _, tr := range trs.Items {
			if tr.ID == q.TrainingID && q.ValidAt(owner.CreatedAt) {
				held[tr.Name] = true
			}
		}
	}
	if !held[tPrinting] || !held[tLaser] {
		t.Errorf("the demo maker holds %v; want %q and %q", held, tPrinting, tLaser)
	}
}

// checkBookings checks the demo week: several machines, no overlaps, and
// every booking one the real rules would accept from staff at its start.
func checkBookings(t *testing.T, s *bolt.Store, sn snapshot, now time.Time) {
	t.Helper()
	ctx := context.Background()
	week := booking.WeekOf(&sn.settings, now)
	booked, members, total := 0, map[fablab.ID]bool{}, 0
	weekMinutes := map[[2]fablab.ID]int{}
	for _, m := range sn.machines {
		bs, err := s.Bookings(ctx, bolt.BookingFilter{MachineID: m.ID, From: week.Start, To: week.End})
		if err != nil {
			t.Fatal(err)
		}
		ahead := 0 // the history lies before the week; nothing is booked after it
		for _, b := range sn.bookings[m.ID] {
			if b.End.After(week.Start) {
				ahead++
			}
		}
		if len(bs) != ahead {
			t.Errorf("machine %s has bookings after the current week", m.Name)
		}
		if len(bs) > 0 {
			booked++
		}
		total += len(bs)
		for i, b := range bs {
			members[b.MemberID] = true
			if b.State != fablab.BookingConfirmed {
				t.Errorf("booking %s is %s, want confirmed", b.ID, b.State)
			}
			if b.Start.Before(week.Start) || b.End.After(week.End) {
				t.Errorf("booking %s %s–%s is outside the week %s–%s", b.ID, b.Start, b.End, week.Start, week.End)
			}
			if i > 0 && bs[i-1].Interval().Overlaps(b.Interval()) {
				t.Errorf("%s: bookings %s and %s overlap", m.Name, bs[i-1].ID, b.ID)
			}
			member, err := s.Member(ctx, b.MemberID)
			if err != nil {
				t.Fatal(err)
			}
			quals, err := s.Qualifications(ctx, b.MemberID)
			if err != nil {
				t.Fatal(err)
			}
			req := booking.Request{Start: b.Start, End: b.End, Machine: &m, Member: &member, Qualifications: quals, ByStaff: true}
			if err := booking.Check(&sn.settings, req, b.Start, 0); err != nil {
				t.Errorf("%s booking %s–%s by %s breaks the rules: %v", m.Name,
					b.Start.In(paris).Format("Mon 15:04"), b.End.In(paris).Format("15:04"), member.Email, err)
			}
			key := [2]fablab.ID{b.MemberID, m.ID}
			weekMinutes[key] += int(b.End.Sub(b.Start) / time.Minute)
			if q := m.Rules.WeeklyQuotaMinutes; q > 0 && weekMinutes[key] > q {
				t.Errorf("%s: %s booked %d minutes this week, over the quota of %d", m.Name, member.Email, weekMinutes[key], q)
			}
		}
	}
	if booked < 3 || len(members) < 5 {
		t.Errorf("bookings on %d machines by %d members; want ≥3 machines and ≥5 members", booked, len(members))
	}
	t.Logf("%d bookings on %d machines by %d members", total, booked, len(members))
}

// A lab that already has a member is not a fresh lab: Seed leaves it alone.
func TestSeedKeepsExistingLab(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 5, 13, 15, 7, 0, 0, paris)
	s := bolttest.Open(t, func() time.Time { return now })
	if _, err := s.CreateMember(ctx, fablab.Member{Email: "boss@lab.example", Name: "Boss", Role: fablab.RoleAdmin, Group: "staff"}); err != nil {
		t.Fatal(err)
	}
	seeded, err := Seed(ctx, s, now, cheap)
	if err != nil || seeded {
		t.Fatalf("Seed = %v, %v; want false, nil", seeded, err)
	}
	sn := takeSnapshot(t, s, now)
	if len(sn.members) != 1 || len(sn.machines) != 0 || len(sn.trainings) != 0 || len(sn.organisations) != 0 || sn.settings.Name == LabName {
		t.Errorf("Seed changed an existing lab: %d members, %d machines, %d trainings, %d organisations, name %q",
			len(sn.members), len(sn.machines), len(sn.trainings), len(sn.organisations), sn.settings.Name)
	}
}

// Seed honours a cancelled context instead of half-seeding.
func TestSeedCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	now := time.Date(2026, 5, 13, 15, 7, 0, 0, paris)
	s := bolttest.Open(t, func() time.Time { return now })
	if seeded, err := Seed(ctx, s, now, cheap); err == nil || seeded {
		t.Fatalf("Seed with a cancelled context = %v, %v; want an error", seeded, err)
	}
}

// labTimes are the lab times the demo and its tour are proved at: 08:45 and
// 20:55 on a weekday and on a Sunday (the lab is closed on Sundays), plus a
// Monday and a Tuesday, where the tour's "next Tuesday" is one and seven
// days ahead.
var labTimes = []struct {
	name string
	now  time.Time
}{
	{"wednesday 08:45", time.Date(2026, 5, 13, 8, 45, 0, 0, paris)},
	{"wednesday 20:55", time.Date(2026, 5, 13, 20, 55, 0, 0, paris)},
	{"sunday 08:45", time.Date(2026, 5, 17, 8, 45, 0, 0, paris)},
	{"sunday 20:55", time.Date(2026, 5, 17, 20, 55, 0, 0, paris)},
	{"monday 08:45", time.Date(2026, 5, 18, 8, 45, 0, 0, paris)},
	{"tuesday 20:55", time.Date(2026, 5, 19, 20, 55, 0, 0, paris)},
}

// TestTourAtAnyLabTime seeds the demo at each of labTimes and checks what
// the README's tour relies on, at that time and at every 10 minutes of the
// 8 days after: the demo maker's tap on TourDevice is a walk-in granted for
// at least the machine's minimum booking (never booked_soon, whatever the
// hour or day), and the tour's booking of the laser next Tuesday
// 14:00–16:00 is one the maker may make under the API's rules.
func TestTourAtAnyLabTime(t *testing.T) {
	for _, tc := range labTimes {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := bolttest.Open(t, func() time.Time { return tc.now })
			if _, err := Seed(ctx, s, tc.now, cheap); err != nil {
				t.Fatal(err)
			}
			maker, err := s.MemberByEmail(ctx, "maker@fabgate.demo")
			if err != nil {
				t.Fatal(err)
			}
			tour, err := s.MachineOfDevice(ctx, TourDevice)
			if err != nil {
				t.Fatal(err)
			}
			hash := auth.BadgeHash(s.BadgeSecret(), MakerBadgeUID)
			for at := tc.now; at.Before(tc.now.AddDate(0, 0, 8)); at = at.Add(10 * time.Minute) {
				f, err := s.AccessFacts(ctx, TourDevice, hash, at, 24*time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				d := access.Decide(&f, at)
				if d.Outcome != access.Grant || d.BookingID != 0 || d.Until.Sub(at) < time.Duration(tour.Rules.MinMinutes)*time.Minute {
					t.Fatalf("the maker's tap on %s at %s: %+v; want a walk-in of at least %d minutes",
						TourDevice, at.In(paris).Format("Mon 2006-01-02 15:04"), d, tour.Rules.MinMinutes)
				}
			}

			laser, err := s.MachineOfDevice(ctx, "laser-1")
			if err != nil {
				t.Fatal(err)
			}
			// GNU date's "next tuesday": the first Tuesday after today.
			day := fablab.DateOf(tc.now.In(paris)).AddDays(1)
			for day.Weekday() != time.Tuesday {
				day = day.AddDays(1)
			}
			{
				start := day.At(hm(14, 0), paris)
				_, err := s.CreateBooking(ctx, fablab.Booking{MachineID: laser.ID, MemberID: maker.ID, Start: start, End: start.Add(2 * time.Hour), CreatedBy: maker.ID},
					func(bc bolt.BookingContext) error { // as POST /api/v1/bookings checks a maker's booking
						week := booking.WeekOf(bc.Settings, start)
						used, err := bc.MemberMinutes(week.Start, week.End)
						if err != nil {
							return err
						}
						r := booking.Request{Start: start, End: start.Add(2 * time.Hour), Machine: bc.Machine, Member: bc.Member, Qualifications: bc.Qualifications}
						return booking.Check(bc.Settings, r, tc.now, used)
					})
				if err != nil {
					t.Errorf("the tour's booking of the laser on %s: %v", start.In(paris).Format("Mon 2006-01-02 15:04"), err)
				}
			}
		})
	}
}

// checkHistory: the two months before now's hold used, cancelled and
// unclaimed bookings, every session is billed, the older month is invoiced
// (the demo maker among the payers) and the last one is left to staff.
func checkHistory(t *testing.T, s *bolt.Store, sn snapshot, now time.Time) {
	t.Helper()
	ctx := context.Background()
	loc := sn.settings.Location()
	this := fablab.PeriodOf(now, loc)
	week := booking.WeekOf(&sn.settings, now)
	states := map[string]int{}
	for _, bs := range sn.bookings {
		for _, b := range bs {
			if !b.End.After(week.Start) {
				if b.Start.Before(this.Prev().Prev().Start(loc)) {
					t.Errorf("booking %s at %s is older than the history's two months", b.ID, b.Start)
				}
				states[b.State]++
			}
		}
	}
	if states[fablab.BookingCompleted] < 20 || states[fablab.BookingCancelled] == 0 || states[fablab.BookingNoShow] == 0 || states[fablab.BookingConfirmed] != 0 {
		t.Errorf("history bookings by state %v: want used, cancelled and no-show ones, none left confirmed", states)
	}
	if n, err := s.UnbilledSessions(ctx); err != nil || n != 0 {
		t.Errorf("%d sessions not billed (%v)", n, err)
	}
	older, err := s.Invoices(ctx, bolt.InvoiceFilter{Period: this.Prev().Prev().String()})
	if err != nil {
		t.Fatal(err)
	}
	if ran, err := s.InvoicesRun(ctx, this.Prev()); err != nil || ran {
		t.Errorf("the last month's invoices were run (%v, %v): staff run them", ran, err)
	}
	maker, err := s.MemberByEmail(ctx, "maker@fabgate.demo")
	if err != nil {
		t.Fatal(err)
	}
	var hers bool
	for _, inv := range older {
		if inv.TotalInclCents <= 0 || len(inv.Lines) == 0 {
			t.Errorf("invoice %s: %d cents over %d lines", inv.Number, inv.TotalInclCents, len(inv.Lines))
		}
		hers = hers || inv.Payer == (fablab.Payer{Kind: fablab.PayerIsMember, ID: maker.ID})
	}
	if len(older) < 3 || !hers {
		t.Errorf("%d invoices for %s, the demo maker's among them: %v", len(older), this.Prev().Prev(), hers)
	}
	left, err := s.Charges(ctx, bolt.ChargeFilter{From: this.Prev().Start(loc), To: this.Start(loc)})
	if err != nil {
		t.Fatal(err)
	}
	if len(left) < 10 {
		t.Errorf("%d charges in the last month, left to invoice", len(left))
	}
}
