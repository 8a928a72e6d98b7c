package fablab

import (
	"slices"
	"testing"
	"time"
)

// TestSessionCharge takes the billing rule clause by clause (DESIGN §2):
// each case changes one thing of a base use, a 45-minute session of a
// student maker on a laser at 12 €/h, and states the whole charge expected.
func TestSessionCharge(t *testing.T) {
	start := time.Date(2026, 3, 10, 14, 0, 0, 0, time.UTC)
	session := func(d time.Duration) Session {
		end := start.Add(d)
		return Session{ID: 41, MachineID: 3, MemberID: 7, BookingID: 9, Started: start, Ended: &end, Billable: true, Confirmed: true}
	}
	org := &Organisation{ID: 5, Name: "Acme", Group: "sme"}
	base := func() BillingContext {
		st := DefaultSettings()
		st.VATRateBasisPoints = 2000
		return BillingContext{
			Settings: st,
			Machine:  Machine{ID: 3, Name: "Laser", Prices: map[string]int64{"student": 1200, "sme": 3000, "academic": 0, "staff": 600}},
			Member:   Member{ID: 7, Role: RoleMaker, Group: "student", Payer: PayerSelf},
		}
	}
	self := Payer{Kind: PayerIsMember, ID: 7}
	type want struct {
		minutes, prepaid, unit, amount int64
		free                           string
		payer                          Payer
		group                          string
	}
	tests := []struct {
		name    string
		used    time.Duration
		prepaid int64
		edit    func(*Session, *BillingContext)
		want    want
	}{
		{name: "billed at the group's rate", used: 45 * time.Minute,
			want: want{minutes: 45, unit: 1200, amount: 900, payer: self, group: "student"}},
		{name: "not billable (relay never confirmed) is free and takes no prepaid", used: 45 * time.Minute, prepaid: 30,
			edit: func(s *Session, _ *BillingContext) { s.Billable, s.Confirmed = false, false },
			want: want{minutes: 45, free: FreeNotBillable, payer: self, group: "student"}},
		{name: "staff role is free", used: 45 * time.Minute, prepaid: 30,
			edit: func(_ *Session, bc *BillingContext) { bc.Member.Role = RoleStaff },
			want: want{minutes: 45, free: FreeStaff, payer: self, group: "student"}},
		{name: "admin role is free", used: 45 * time.Minute,
			edit: func(_ *Session, bc *BillingContext) { bc.Member.Role = RoleAdmin },
			want: want{minutes: 45, free: FreeStaff, payer: self, group: "student"}},
		{name: "staff tariff group is free even with a staff price", used: 45 * time.Minute,
			edit: func(_ *Session, bc *BillingContext) { bc.Member.Group = "staff" },
			want: want{minutes: 45, free: FreeStaff, payer: self, group: "staff"}},
		{name: "staff group through the organisation is free", used: 45 * time.Minute,
			edit: func(_ *Session, bc *BillingContext) {
				bc.Member.Group, bc.Member.OrganisationID = "", 5
				bc.Organisation = &Organisation{ID: 5, Group: "staff"}
			},
			want: want{minutes: 45, free: FreeStaff, payer: self, group: "staff"}},
		{name: "shorter than the threshold is free", used: 5*time.Minute - time.Second, prepaid: 30,
			edit: func(_ *Session, bc *BillingContext) { bc.FreeUnderMinutes = 5 },
			want: want{minutes: 5, free: FreeShort, payer: self, group: "student"}},
		{name: "exactly the threshold is billed", used: 5 * time.Minute,
			edit: func(_ *Session, bc *BillingContext) { bc.FreeUnderMinutes = 5 },
			want: want{minutes: 5, unit: 1200, amount: 100, payer: self, group: "student"}},
		{name: "increment 1: a started minute is due", used: 45*time.Minute + time.Second,
			want: want{minutes: 46, unit: 1200, amount: 920, payer: self, group: "student"}},
		{name: "increment 5: rounded up", used: 41 * time.Minute,
			edit: func(_ *Session, bc *BillingContext) { bc.Settings.BillingIncrementMin = 5 },
			want: want{minutes: 45, unit: 1200, amount: 900, payer: self, group: "student"}},
		{name: "increment 5: exact multiple kept", used: 40 * time.Minute,
			edit: func(_ *Session, bc *BillingContext) { bc.Settings.BillingIncrementMin = 5 },
			want: want{minutes: 40, unit: 1200, amount: 800, payer: self, group: "student"}},
		{name: "increment 15: one nanosecond over starts an increment", used: 30*time.Minute + time.Nanosecond,
			edit: func(_ *Session, bc *BillingContext) { bc.Settings.BillingIncrementMin = 15 },
			want: want{minutes: 45, unit: 1200, amount: 900, payer: self, group: "student"}},
		{name: "prepaid covers part", used: 45 * time.Minute, prepaid: 20,
			want: want{minutes: 45, prepaid: 20, unit: 1200, amount: 500, payer: self, group: "student"}},
		{name: "prepaid covers all", used: 45 * time.Minute, prepaid: 60,
			want: want{minutes: 45, prepaid: 45, unit: 1200, free: FreePrepaid, payer: self, group: "student"}},
		{name: "prepaid exactly the use", used: 45 * time.Minute, prepaid: 45,
			want: want{minutes: 45, prepaid: 45, unit: 1200, free: FreePrepaid, payer: self, group: "student"}},
		{name: "prepaid covers the rounded use", used: 44*time.Minute + time.Second, prepaid: 45,
			edit: func(_ *Session, bc *BillingContext) { bc.Settings.BillingIncrementMin = 15 },
			want: want{minutes: 45, prepaid: 45, unit: 1200, free: FreePrepaid, payer: self, group: "student"}},
		{name: "a negative prepaid balance is ignored", used: 45 * time.Minute, prepaid: -10,
			want: want{minutes: 45, unit: 1200, amount: 900, payer: self, group: "student"}},
		{name: "no price for the group is free and takes no prepaid", used: 45 * time.Minute, prepaid: 30,
			edit: func(_ *Session, bc *BillingContext) { bc.Member.Group = "association" },
			want: want{minutes: 45, free: FreeNoPrice, payer: self, group: "association"}},
		{name: "a zero price is free and takes no prepaid", used: 45 * time.Minute, prepaid: 30,
			edit: func(_ *Session, bc *BillingContext) { bc.Member.Group = "academic" },
			want: want{minutes: 45, free: FreeNoPrice, payer: self, group: "academic"}},
		{name: "minimum charge applied", used: 10 * time.Minute,
			edit: func(_ *Session, bc *BillingContext) { bc.Machine.MinimumChargeCents = 300 },
			want: want{minutes: 10, unit: 1200, amount: 300, payer: self, group: "student"}},
		{name: "minimum charge below the use", used: 45 * time.Minute,
			edit: func(_ *Session, bc *BillingContext) { bc.Machine.MinimumChargeCents = 300 },
			want: want{minutes: 45, unit: 1200, amount: 900, payer: self, group: "student"}},
		{name: "minimum charge on what prepaid leaves", used: 45 * time.Minute, prepaid: 40,
			edit: func(_ *Session, bc *BillingContext) { bc.Machine.MinimumChargeCents = 300 },
			want: want{minutes: 45, prepaid: 40, unit: 1200, amount: 300, payer: self, group: "student"}},
		{name: "minimum charge not applied when prepaid covers all", used: 45 * time.Minute, prepaid: 45,
			edit: func(_ *Session, bc *BillingContext) { bc.Machine.MinimumChargeCents = 300 },
			want: want{minutes: 45, prepaid: 45, unit: 1200, free: FreePrepaid, payer: self, group: "student"}},
		{name: "nothing used: no minimum charge", used: 0,
			edit: func(_ *Session, bc *BillingContext) { bc.Machine.MinimumChargeCents = 300 },
			want: want{minutes: 0, unit: 1200, free: FreeShort, payer: self, group: "student"}},
		{name: "organisation pays for its maker at its group's rate", used: 45 * time.Minute,
			edit: func(_ *Session, bc *BillingContext) {
				bc.Member.Group, bc.Member.OrganisationID, bc.Member.Payer = "", 5, PayerOrganisation
				bc.Organisation = org
			},
			want: want{minutes: 45, unit: 3000, amount: 2250, payer: Payer{Kind: PayerIsOrganisation, ID: 5}, group: "sme"}},
		{name: "organisation pays, the member's own group applies", used: 45 * time.Minute,
			edit: func(_ *Session, bc *BillingContext) {
				bc.Member.OrganisationID, bc.Member.Payer = 5, PayerOrganisation
				bc.Organisation = org
			},
			want: want{minutes: 45, unit: 1200, amount: 900, payer: Payer{Kind: PayerIsOrganisation, ID: 5}, group: "student"}},
		{name: "member of an organisation paying themselves", used: 45 * time.Minute,
			edit: func(_ *Session, bc *BillingContext) {
				bc.Member.Group, bc.Member.OrganisationID, bc.Member.Payer = "", 5, PayerSelf
				bc.Organisation = org
			},
			want: want{minutes: 45, unit: 3000, amount: 2250, payer: self, group: "sme"}},
		{name: "organisation payer without the organisation's record falls back to the member", used: 45 * time.Minute,
			edit: func(_ *Session, bc *BillingContext) { bc.Member.OrganisationID, bc.Member.Payer = 5, PayerOrganisation },
			want: want{minutes: 45, unit: 1200, amount: 900, payer: self, group: "student"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, bc := session(tt.used), base()
			if tt.edit != nil {
				tt.edit(&s, &bc)
			}
			c, took := SessionCharge(s, bc, tt.prepaid)
			got := want{minutes: c.Minutes, prepaid: c.PrepaidMinutes, unit: c.UnitCents, amount: c.AmountCents, free: c.Free, payer: c.Payer, group: c.Group}
			if got != tt.want {
				t.Errorf("charge = %+v\nwant     %+v", got, tt.want)
			}
			if took != c.PrepaidMinutes {
				t.Errorf("consumed %d prepaid minutes, the charge says %d", took, c.PrepaidMinutes)
			}
			if c.Kind != ChargeSession || c.SessionID != 41 || c.MachineID != 3 || c.MemberID != 7 || c.BookingID != 9 {
				t.Errorf("charge identifies %s session %s machine %s member %s booking %s", c.Kind, c.SessionID, c.MachineID, c.MemberID, c.BookingID)
			}
			if !c.At.Equal(*s.Ended) || c.At.Location() != time.UTC {
				t.Errorf("at = %v, want the session's end in UTC %v", c.At, *s.Ended)
			}
			if c.VATRateBP != 2000 {
				t.Errorf("vat_rate_bp = %d, want the lab's 2000", c.VATRateBP)
			}
		})
	}
}

func TestNoShowCharge(t *testing.T) {
	start := time.Date(2026, 3, 10, 14, 0, 0, 0, time.Local)
	b := Booking{ID: 4, MachineID: 3, MemberID: 7, Start: start, End: start.Add(time.Hour)}
	bc := BillingContext{Settings: DefaultSettings(), Machine: Machine{ID: 3, NoShowFeeCents: 500},
		Member: Member{ID: 7, Role: RoleMaker, Group: "student", OrganisationID: 5, Payer: PayerOrganisation}, Organisation: &Organisation{ID: 5, Group: "sme"}}
	c, ok := NoShowCharge(b, bc)
	want := Charge{Kind: ChargeNoShow, Payer: Payer{Kind: PayerIsOrganisation, ID: 5}, MemberID: 7, MachineID: 3, BookingID: 4, Group: "student", AmountCents: 500, At: start.UTC()}
	if !ok || c != want {
		t.Errorf("no-show charge = %+v, %v\nwant %+v", c, ok, want)
	}
	staff := bc
	staff.Member.Role = RoleStaff
	if _, ok := NoShowCharge(b, staff); ok {
		t.Error("staff charged a no-show fee")
	}
	none := bc
	none.Machine.NoShowFeeCents = 0
	if _, ok := NoShowCharge(b, none); ok {
		t.Error("a machine without a no-show fee charged one")
	}
}

func TestPerHour(t *testing.T) {
	tests := []struct{ minutes, rate, want int64 }{
		{0, 1200, 0},
		{60, 1234, 1234},
		{1, 100, 2},      // 1.67
		{1, 90, 2},       // 1.5: half up
		{1, 89, 1},       // 1.48
		{1, 29, 0},       // 0.48
		{1, 30, 1},       // 0.5
		{90, 1001, 1502}, // 1501.5
		{45, 1200, 900},
		{7, 1000, 117}, // 116.67
	}
	for _, tt := range tests {
		if got := PerHour(tt.minutes, tt.rate); got != tt.want {
			t.Errorf("PerHour(%d, %d) = %d, want %d", tt.minutes, tt.rate, got, tt.want)
		}
	}
}

func TestBillableMinutes(t *testing.T) {
	tests := []struct {
		d         time.Duration
		increment int
		want      int64
	}{
		{0, 1, 0},
		{0, 15, 0},
		{-time.Minute, 5, 0},
		{time.Nanosecond, 1, 1},
		{time.Nanosecond, 15, 15},
		{59 * time.Second, 1, 1},
		{time.Minute, 1, 1},
		{time.Minute + time.Nanosecond, 1, 2},
		{10 * time.Minute, 5, 10},
		{10*time.Minute + time.Nanosecond, 5, 15},
		{15 * time.Minute, 15, 15},
		{15*time.Minute + time.Nanosecond, 15, 30},
		{time.Hour, 60, 60},
		{time.Hour + time.Nanosecond, 60, 120},
		{90 * time.Second, 0, 2},  // an unset increment is one minute
		{90 * time.Second, -3, 2}, // so is a negative one
	}
	for _, tt := range tests {
		if got := BillableMinutes(tt.d, tt.increment); got != tt.want {
			t.Errorf("BillableMinutes(%v, %d) = %d, want %d", tt.d, tt.increment, got, tt.want)
		}
	}
}

func TestPeriod(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		p          Period
		start, end string // RFC 3339 in Paris
		hours      int    // the month's length, DST included
		prev, next Period
	}{
		{Period{2026, time.March}, "2026-03-01T00:00:00+01:00", "2026-04-01T00:00:00+02:00", 31*24 - 1,
			Period{2026, time.February}, Period{2026, time.April}},
		{Period{2026, time.October}, "2026-10-01T00:00:00+02:00", "2026-11-01T00:00:00+01:00", 31*24 + 1,
			Period{2026, time.September}, Period{2026, time.November}},
		{Period{2026, time.December}, "2026-12-01T00:00:00+01:00", "2027-01-01T00:00:00+01:00", 31 * 24,
			Period{2026, time.November}, Period{2027, time.January}},
		{Period{2027, time.January}, "2027-01-01T00:00:00+01:00", "2027-02-01T00:00:00+01:00", 31 * 24,
			Period{2026, time.December}, Period{2027, time.February}},
		{Period{2028, time.February}, "2028-02-01T00:00:00+01:00", "2028-03-01T00:00:00+01:00", 29 * 24,
			Period{2028, time.January}, Period{2028, time.March}},
	}
	for _, tt := range tests {
		t.Run(tt.p.String(), func(t *testing.T) {
			start, end := tt.p.Start(paris), tt.p.End(paris)
			if got := start.Format(time.RFC3339); got != tt.start {
				t.Errorf("start = %s, want %s", got, tt.start)
			}
			if got := end.Format(time.RFC3339); got != tt.end {
				t.Errorf("end = %s, want %s", got, tt.end)
			}
			if got := end.Sub(start); got != time.Duration(tt.hours)*time.Hour {
				t.Errorf("length = %v, want %dh", got, tt.hours)
			}
			if tt.p.Prev() != tt.prev || tt.p.Next() != tt.next {
				t.Errorf("prev, next = %v, %v; want %v, %v", tt.p.Prev(), tt.p.Next(), tt.prev, tt.next)
			}
			if tt.p.Next().Prev() != tt.p || tt.p.Prev().Next() != tt.p {
				t.Error("Next and Prev are not inverse")
			}
			if !tt.p.Prev().Before(tt.p) || !tt.p.Before(tt.p.Next()) || tt.p.Before(tt.p) || tt.p.Next().Before(tt.p) {
				t.Error("Before disagrees with Prev/Next")
			}
			// The first and last instants belong to the period, the ones
			// just outside to its neighbours.
			if got := PeriodOf(start, paris); got != tt.p {
				t.Errorf("PeriodOf(start) = %v", got)
			}
			if got := PeriodOf(end.Add(-time.Nanosecond), paris); got != tt.p {
				t.Errorf("PeriodOf(end-1ns) = %v", got)
			}
			if got := PeriodOf(end, paris); got != tt.next {
				t.Errorf("PeriodOf(end) = %v", got)
			}
			if got := PeriodOf(start.Add(-time.Nanosecond), paris); got != tt.prev {
				t.Errorf("PeriodOf(start-1ns) = %v", got)
			}
			back, err := ParsePeriod(tt.p.String())
			if err != nil || back != tt.p {
				t.Errorf("ParsePeriod(%q) = %v, %v", tt.p.String(), back, err)
			}
		})
	}
	// An instant late on the last day in UTC is already next month in Paris.
	if got := PeriodOf(time.Date(2026, 12, 31, 23, 30, 0, 0, time.UTC), paris); got != (Period{2027, time.January}) {
		t.Errorf("PeriodOf(2026-12-31T23:30Z, Paris) = %v, want 2027-01", got)
	}
	if got := PeriodOf(time.Date(2026, 12, 31, 23, 30, 0, 0, time.UTC), time.UTC); got != (Period{2026, time.December}) {
		t.Errorf("PeriodOf(2026-12-31T23:30Z, UTC) = %v, want 2026-12", got)
	}
	if got := (Period{987, time.May}).String(); got != "0987-05" {
		t.Errorf("String = %q, want 0987-05", got)
	}
}

func TestParsePeriod(t *testing.T) {
	if p, err := ParsePeriod("2026-03"); err != nil || p != (Period{2026, time.March}) {
		t.Errorf("ParsePeriod(2026-03) = %v, %v", p, err)
	}
	if p, err := ParsePeriod("2026-12"); err != nil || p != (Period{2026, time.December}) {
		t.Errorf("ParsePeriod(2026-12) = %v, %v", p, err)
	}
	for _, s := range []string{"", "2026", "2026-3", "2026-13", "2026-00", "26-03", "2026/03", "2026-03-01", " 2026-03", "2026-03 ",
		"abcd-ef", "2026-1a", "+026-03", "-026-03", "2026-+3", "２０２６-03", "March 2026"} {
		p, err := ParsePeriod(s)
		if ErrorCode(err) != EINVALID || ErrorField(err) != "period" {
			t.Errorf("ParsePeriod(%q) = %v, %v; want EINVALID on period", s, p, err)
		}
	}
}

func TestInvoiceTotals(t *testing.T) {
	inv := Invoice{Lines: []InvoiceLine{
		{AmountCents: 1000, VATRateBP: 2000},
		{AmountCents: 1999, VATRateBP: 550},
		{AmountCents: -250, VATRateBP: 2000}, // a correction
		{AmountCents: 500, VATRateBP: 0},
		{AmountCents: 333, VATRateBP: 2000},
	}}
	inv.Totals()
	// 20 % of 10.83 is 2.166; 5.5 % of 19.99 is 1.09945: VAT per rate on
	// the rate's sum, not per line.
	wantVAT := []VATLine{{RateBP: 0, BaseCents: 500, VATCents: 0}, {RateBP: 550, BaseCents: 1999, VATCents: 110}, {RateBP: 2000, BaseCents: 1083, VATCents: 217}}
	if !slices.Equal(inv.VAT, wantVAT) {
		t.Errorf("vat = %+v, want %+v", inv.VAT, wantVAT)
	}
	if inv.TotalExclCents != 3582 || inv.TotalVATCents != 327 || inv.TotalInclCents != 3909 {
		t.Errorf("totals = %d + %d = %d, want 3582 + 327 = 3909", inv.TotalExclCents, inv.TotalVATCents, inv.TotalInclCents)
	}
	// Totals recomputes from the lines: calling it twice changes nothing.
	again := inv
	again.VAT = slices.Clone(inv.VAT)
	again.Totals()
	if !slices.Equal(again.VAT, wantVAT) || again.TotalInclCents != 3909 {
		t.Errorf("second Totals = %+v, %d", again.VAT, again.TotalInclCents)
	}

	// A negative total (a credit): VAT rounds half away from zero.
	neg := Invoice{Lines: []InvoiceLine{{AmountCents: -1003, VATRateBP: 2000}, {AmountCents: -1, VATRateBP: 5000}}}
	neg.Totals()
	wantVAT = []VATLine{{RateBP: 2000, BaseCents: -1003, VATCents: -201}, {RateBP: 5000, BaseCents: -1, VATCents: -1}}
	if !slices.Equal(neg.VAT, wantVAT) || neg.TotalExclCents != -1004 || neg.TotalVATCents != -202 || neg.TotalInclCents != -1206 {
		t.Errorf("negative invoice: vat %+v, totals %d %d %d", neg.VAT, neg.TotalExclCents, neg.TotalVATCents, neg.TotalInclCents)
	}

	empty := Invoice{TotalExclCents: 5, TotalVATCents: 1, TotalInclCents: 6, VAT: []VATLine{{RateBP: 1}}}
	empty.Totals()
	if empty.VAT != nil || empty.TotalExclCents != 0 || empty.TotalVATCents != 0 || empty.TotalInclCents != 0 {
		t.Errorf("no lines: %+v", empty)
	}
}

func TestRoundDiv(t *testing.T) {
	tests := []struct{ a, b, want int64 }{
		{0, 7, 0}, {5, 2, 3}, {-5, 2, -3}, {4, 3, 1}, {-4, 3, -1}, {5, 3, 2}, {-5, 3, -2},
		{1, 2, 1}, {-1, 2, -1}, {1, 3, 0}, {-1, 3, 0}, {21660, 10000, 2}, {-15000, 10000, -2}, {-14999, 10000, -1},
	}
	for _, tt := range tests {
		if got := RoundDiv(tt.a, tt.b); got != tt.want {
			t.Errorf("RoundDiv(%d, %d) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestParsePayer(t *testing.T) {
	for _, p := range []Payer{{PayerIsMember, 1}, {PayerIsMember, 12}, {PayerIsOrganisation, 3}, {PayerIsOrganisation, ID(^uint64(0))}} {
		got, err := ParsePayer(p.String())
		if err != nil || got != p {
			t.Errorf("ParsePayer(%q) = %v, %v; want %v", p.String(), got, err, p)
		}
	}
	if got := (Payer{PayerIsOrganisation, 3}).String(); got != "organisation-3" {
		t.Errorf("String = %q", got)
	}
	for _, s := range []string{"", "member", "member-", "member-0", "member-012", "member-abc", "member-12x", "member--3", "-3",
		"org-3", "Member-12", "organisation-3-4", "member-18446744073709551616", " member-1"} {
		if p, err := ParsePayer(s); ErrorCode(err) != EINVALID {
			t.Errorf("ParsePayer(%q) = %v, %v; want EINVALID", s, p, err)
		}
	}
	if !(Payer{PayerIsOrganisation, 3}).Business() || (Payer{PayerIsMember, 3}).Business() {
		t.Error("Business: only organisations are businesses")
	}
}

func TestInvoiceNumber(t *testing.T) {
	if got := InvoiceNumber("FG", 2026, 42); got != "FG-2026-000042" {
		t.Errorf("InvoiceNumber = %q, want FG-2026-000042", got)
	}
	if got := InvoiceNumber("LAB-X", 2027, 1234567); got != "LAB-X-2027-1234567" {
		t.Errorf("InvoiceNumber = %q", got)
	}
}

func TestFormatDecimal(t *testing.T) {
	for cents, want := range map[int64]string{0: "0.00", 5: "0.05", -50: "-0.50", 123456: "1234.56", -100: "-1.00"} {
		if got := FormatDecimal(cents); got != want {
			t.Errorf("FormatDecimal(%d) = %q, want %q", cents, got, want)
		}
	}
}
