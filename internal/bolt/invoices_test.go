package bolt_test

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/bolt/bolttest"
	"github.com/fabgate/fabgate/internal/fablab"
)

// paris is the lab's zone in these tests (a new lab's default).
var paris = func() *time.Location {
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		panic(err)
	}
	return loc
}()

// inParis is a wall-clock instant in the lab's zone.
func inParis(y int, m time.Month, d, h, min int) time.Time {
	return time.Date(y, m, d, h, min, 0, 0, paris)
}

// newLedger opens a store with a lab charging 20 % VAT and a laser at
// 12 €/h for students, 30 €/h for SMEs.
func newLedger(t *testing.T) (*bolt.Store, *bolttest.Clock, fablab.Machine) {
	t.Helper()
	s, clock := newStore(t)
	if _, err := s.UpdateSettings(t.Context(), func(st *fablab.Settings) error {
		st.VATRateBasisPoints, st.VATMention = 2000, ""
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	m, err := s.CreateMachine(t.Context(), fablab.Machine{Name: "Laser", Kind: fablab.KindLaserCutter, Prices: map[string]int64{"student": 1200, "sme": 3000}})
	if err != nil {
		t.Fatal(err)
	}
	return s, clock, m
}

// use records a session of member on machine from start for minutes and
// bills every session waiting; it returns the session's charge.
func use(t *testing.T, s *bolt.Store, machine, member fablab.ID, start time.Time, minutes int) fablab.Charge {
	t.Helper()
	end := start.Add(time.Duration(minutes) * time.Minute)
	sess, err := s.RecordSession(t.Context(), fablab.Session{MachineID: machine, MemberID: member, DeviceID: "laser-1", Started: start, Until: end,
		Ended: &end, EndReason: fablab.EndTapOut, Confirmed: true, Billable: true}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	billAll(t, s)
	return chargeOfSession(t, s, sess.ID)
}

func billAll(t *testing.T, s *bolt.Store) {
	t.Helper()
	if _, left, err := s.BillSessions(t.Context(), 100); err != nil || left != 0 {
		t.Fatalf("bill sessions: %d left, %v", left, err)
	}
}

func chargeOfSession(t *testing.T, s *bolt.Store, id fablab.ID) fablab.Charge {
	t.Helper()
	sess, err := s.Session(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if sess.ChargeID == 0 {
		t.Fatalf("session %s is not billed", id)
	}
	c, err := s.Charge(t.Context(), sess.ChargeID)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// run runs period's invoices with the clock at now.
func run(t *testing.T, s *bolt.Store, clock *bolttest.Clock, period string, now time.Time) ([]fablab.Invoice, bool) {
	t.Helper()
	clock.Set(now)
	p, err := fablab.ParsePeriod(period)
	if err != nil {
		t.Fatal(err)
	}
	invs, created, err := s.RunInvoices(t.Context(), p)
	if err != nil {
		t.Fatalf("run %s at %v: %v", period, now, err)
	}
	return invs, created
}

func member(t *testing.T, s *bolt.Store, m fablab.Member) fablab.Member {
	t.Helper()
	if m.Email == "" {
		m.Email = fmt.Sprintf("m%d@example.org", emailSeq.Add(1))
	}
	if m.Name == "" {
		m.Name = "Maker"
	}
	got, err := s.CreateMember(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func numbers(invs []fablab.Invoice) []string {
	out := make([]string, len(invs))
	for i, inv := range invs {
		out[i] = inv.Number
	}
	return out
}

// seq is the last invoice number of year, read from invoice_seq/.
func seq(s *bolt.Store, year int) uint64 {
	v := bolt.RawValue(s, "invoice_seq", bolt.YearKey(year))
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func allCharges(t *testing.T, s *bolt.Store) []fablab.Charge {
	t.Helper()
	cs, err := s.Charges(t.Context(), bolt.ChargeFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestRunInvoicesRefusesPeriodNotEnded(t *testing.T) {
	s, clock, laser := newLedger(t)
	ada := member(t, s, fablab.Member{Group: "student"})
	use(t, s, laser.ID, ada.ID, inParis(2026, 3, 10, 14, 0), 60)
	march := fablab.Period{Year: 2026, Month: time.March}
	// March ends at midnight in Paris, 22:00 UTC (summer time since the 29th).
	for _, now := range []time.Time{inParis(2026, 3, 31, 23, 59), inParis(2026, 3, 15, 12, 0)} {
		clock.Set(now)
		invs, created, err := s.RunInvoices(t.Context(), march)
		if fablab.ErrorCode(err) != fablab.EINVALID || fablab.ErrorField(err) != "period" || invs != nil || created {
			t.Fatalf("run March at %v: %v, %v, %v; want EINVALID on period", now, invs, created, err)
		}
	}
	clock.Set(inParis(2026, 4, 1, 0, 0))
	for _, p := range []fablab.Period{{Year: 2026, Month: time.April}, {Year: 2027, Month: time.January}} {
		if _, _, err := s.RunInvoices(t.Context(), p); fablab.ErrorCode(err) != fablab.EINVALID || fablab.ErrorField(err) != "period" {
			t.Fatalf("run of the future period %s: %v, want EINVALID on period", p, err)
		}
		if ran, _ := s.InvoicesRun(t.Context(), p); ran {
			t.Fatalf("a refused run of %s was recorded", p)
		}
	}
	if ran, _ := s.InvoicesRun(t.Context(), march); ran || seq(s, 2026) != 0 {
		t.Fatal("a refused run was recorded or took a number")
	}
	invs, created := run(t, s, clock, "2026-03", inParis(2026, 4, 1, 0, 0))
	if !created || len(invs) != 1 || invs[0].Number != "FG-2026-000001" {
		t.Fatalf("run at the first instant of April: %v %v", numbers(invs), created)
	}
}

func TestRunInvoicesSecondRunIssuesNothing(t *testing.T) {
	s, clock, laser := newLedger(t)
	ada := member(t, s, fablab.Member{Group: "student"})
	bob := member(t, s, fablab.Member{Group: "sme"})
	use(t, s, laser.ID, ada.ID, inParis(2026, 3, 10, 14, 0), 60)
	use(t, s, laser.ID, bob.ID, inParis(2026, 3, 11, 14, 0), 30)
	first, created := run(t, s, clock, "2026-03", inParis(2026, 4, 1, 8, 0))
	if !created || len(first) != 2 {
		t.Fatalf("first run: %d invoices, created %v", len(first), created)
	}
	if got := numbers(first); got[0] != "FG-2026-000001" || got[1] != "FG-2026-000002" {
		t.Fatalf("numbers %v", got)
	}
	// A charge arriving between the runs is not taken by the second run.
	use(t, s, laser.ID, ada.ID, inParis(2026, 3, 20, 14, 0), 60)
	again, created := run(t, s, clock, "2026-03", inParis(2026, 4, 2, 8, 0))
	if created || !reflect.DeepEqual(again, first) {
		t.Fatalf("second run: created %v, invoices %v; want the first run's %v", created, numbers(again), numbers(first))
	}
	if seq(s, 2026) != 2 {
		t.Fatalf("invoice_seq for 2026 = %d after the second run, want 2", seq(s, 2026))
	}
	// The next month continues the numbering without a gap, with the late
	// March charge.
	april, _ := run(t, s, clock, "2026-04", inParis(2026, 5, 1, 8, 0))
	if len(april) != 1 || april[0].Number != "FG-2026-000003" || april[0].Period != "2026-04" || april[0].TotalExclCents != 1200 {
		t.Fatalf("April: %+v", april)
	}
	if l := april[0].Lines; len(l) != 1 || !l[0].At.Equal(inParis(2026, 3, 20, 15, 0)) {
		t.Fatalf("April's line should be the late March use: %+v", l)
	}
}

func TestInvoiceNumbersAcrossYearChange(t *testing.T) {
	s, clock, laser := newLedger(t)
	ada := member(t, s, fablab.Member{Group: "student"})
	bob := member(t, s, fablab.Member{Group: "sme"})
	use(t, s, laser.ID, ada.ID, inParis(2026, 11, 10, 14, 0), 60)
	use(t, s, laser.ID, bob.ID, inParis(2026, 11, 12, 14, 0), 60)
	nov, _ := run(t, s, clock, "2026-11", inParis(2026, 12, 1, 8, 0))
	use(t, s, laser.ID, ada.ID, inParis(2026, 12, 10, 14, 0), 60)
	use(t, s, laser.ID, bob.ID, inParis(2026, 12, 31, 23, 0), 30) // the last hour of the year, in Paris
	// December's invoices are issued on 1 January at 00:30 in Paris, still
	// 2026 in UTC: the lab's year numbers them.
	dec, _ := run(t, s, clock, "2026-12", inParis(2027, 1, 1, 0, 30))
	cn, err := s.CreditNote(t.Context(), dec[0].ID, 100, -1, "geste", ada.ID)
	if err != nil {
		t.Fatal(err)
	}
	use(t, s, laser.ID, ada.ID, inParis(2027, 1, 10, 14, 0), 60)
	jan, _ := run(t, s, clock, "2027-01", inParis(2027, 2, 1, 8, 0))
	got := []string{}
	for _, invs := range [][]fablab.Invoice{nov, dec, {cn}, jan} {
		got = append(got, numbers(invs)...)
	}
	want := []string{"FG-2026-000001", "FG-2026-000002", "FG-2027-000001", "FG-2027-000002", "FG-2027-000003", "FG-2027-000004"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("numbers %v, want %v", got, want)
	}
	if seq(s, 2026) != 2 || seq(s, 2027) != 4 {
		t.Fatalf("invoice_seq: 2026 → %d, 2027 → %d", seq(s, 2026), seq(s, 2027))
	}
	if len(dec) != 2 || dec[1].TotalExclCents != 1500 {
		t.Fatalf("December's invoices %+v: Bob's use of the year's last hour belongs to December", dec)
	}
}

func TestRunInvoicesZeroNegativeAndLateCharges(t *testing.T) {
	s, clock, laser := newLedger(t)
	staff := member(t, s, fablab.Member{Role: fablab.RoleStaff, Group: "staff"})
	ada := member(t, s, fablab.Member{Group: "student"})
	bob := member(t, s, fablab.Member{Group: "student"})
	adaPayer := fablab.Payer{Kind: fablab.PayerIsMember, ID: ada.ID}
	bobPayer := fablab.Payer{Kind: fablab.PayerIsMember, ID: bob.ID}

	// Ada's use is credited in full: her March charges total zero.
	c := use(t, s, laser.ID, ada.ID, inParis(2026, 3, 10, 14, 0), 60)
	if _, err := s.AddCorrection(t.Context(), c.ID, -1200, "laser out of focus", staff.ID); err != nil {
		t.Fatal(err)
	}
	bobMarch := use(t, s, laser.ID, bob.ID, inParis(2026, 3, 12, 14, 0), 60)
	march, _ := run(t, s, clock, "2026-03", inParis(2026, 4, 1, 8, 0))
	if len(march) != 1 || march[0].Payer != bobPayer {
		t.Fatalf("March: %+v, want Bob's invoice only", march)
	}
	left, err := s.Charges(t.Context(), bolt.ChargeFilter{Payer: &adaPayer, Uninvoiced: true})
	if err != nil || len(left) != 0 {
		t.Fatalf("Ada's settled charges still uninvoiced: %v, %v", left, err)
	}

	// In April Bob gets a credit on his invoiced March use: his April
	// charges total less than zero and wait.
	clock.Set(inParis(2026, 4, 10, 9, 0))
	credit, err := s.AddCorrection(t.Context(), bobMarch.ID, -300, "wrong rate", staff.ID)
	if err != nil {
		t.Fatal(err)
	}
	april, created := run(t, s, clock, "2026-04", inParis(2026, 5, 1, 8, 0))
	if !created || len(april) != 0 {
		t.Fatalf("April: %+v, want no invoice", april)
	}
	bal, err := s.PayerBalance(t.Context(), bobPayer)
	if err != nil || bal.UninvoicedCents != -300 {
		t.Fatalf("Bob's balance %+v, %v: the credit should wait uninvoiced", bal, err)
	}
	// A late April use (replayed in May) and a May use: the May invoice
	// sets the credit against them.
	clock.Set(inParis(2026, 5, 5, 9, 0))
	late := use(t, s, laser.ID, bob.ID, inParis(2026, 4, 30, 20, 0), 30)
	may := use(t, s, laser.ID, bob.ID, inParis(2026, 5, 6, 14, 0), 60)
	invs, _ := run(t, s, clock, "2026-05", inParis(2026, 6, 1, 8, 0))
	if len(invs) != 1 {
		t.Fatalf("May: %d invoices", len(invs))
	}
	var lines []fablab.ID
	for _, l := range invs[0].Lines {
		lines = append(lines, l.ChargeID)
	}
	if want := []fablab.ID{credit.ID, late.ID, may.ID}; !reflect.DeepEqual(lines, want) {
		t.Fatalf("May's lines are charges %v, want %v", lines, want)
	}
	if inv := invs[0]; inv.TotalExclCents != 1200+600-300 || inv.TotalVATCents != 300 || inv.TotalInclCents != 1800 {
		t.Fatalf("May's totals %d + %d = %d", inv.TotalExclCents, inv.TotalVATCents, inv.TotalInclCents)
	}
	for _, id := range lines {
		if got, _ := s.InvoiceOfCharge(t.Context(), id); got != invs[0].ID {
			t.Fatalf("charge %s is on invoice %s, want %s", id, got, invs[0].ID)
		}
	}
}

func TestRunInvoicesOrganisationPaysForMakers(t *testing.T) {
	s, clock, laser := newLedger(t)
	acme, err := s.CreateOrganisation(t.Context(), fablab.Organisation{Name: "Acme SAS", Group: "sme", BillingAddress: "1 rue de la Paix"})
	if err != nil {
		t.Fatal(err)
	}
	ada := member(t, s, fablab.Member{OrganisationID: acme.ID, Payer: fablab.PayerOrganisation})
	bob := member(t, s, fablab.Member{Group: "student", OrganisationID: acme.ID, Payer: fablab.PayerOrganisation})
	cid := member(t, s, fablab.Member{OrganisationID: acme.ID, Payer: fablab.PayerSelf})
	a := use(t, s, laser.ID, ada.ID, inParis(2026, 3, 10, 14, 0), 60)
	b := use(t, s, laser.ID, bob.ID, inParis(2026, 3, 11, 14, 0), 60)
	c := use(t, s, laser.ID, cid.ID, inParis(2026, 3, 12, 14, 0), 60)
	invs, _ := run(t, s, clock, "2026-03", inParis(2026, 4, 1, 8, 0))
	if len(invs) != 2 {
		t.Fatalf("%d invoices, want Acme's and Cid's", len(invs))
	}
	byPayer := map[fablab.Payer]fablab.Invoice{}
	for _, inv := range invs {
		byPayer[inv.Payer] = inv
	}
	org := byPayer[fablab.Payer{Kind: fablab.PayerIsOrganisation, ID: acme.ID}]
	if len(org.Lines) != 2 || org.Lines[0].ChargeID != a.ID || org.Lines[1].ChargeID != b.ID || org.TotalExclCents != 3000+1200 {
		t.Fatalf("Acme's invoice %+v, want Ada's (sme rate) and Bob's (student rate) uses", org)
	}
	if !org.Business || org.Buyer.Name != "Acme SAS" || org.Buyer.Address != "1 rue de la Paix" {
		t.Fatalf("Acme's invoice names %+v, business %v", org.Buyer, org.Business)
	}
	self := byPayer[fablab.Payer{Kind: fablab.PayerIsMember, ID: cid.ID}]
	if len(self.Lines) != 1 || self.Lines[0].ChargeID != c.ID || self.Business || self.TotalExclCents != 3000 {
		t.Fatalf("Cid's own invoice %+v", self)
	}
}

// issueOne makes one March invoice of ada's: 60 then 30 minutes at 12 €/h,
// 18 € excluding VAT, 21.60 € with it.
func issueOne(t *testing.T) (*bolt.Store, *bolttest.Clock, fablab.Member, fablab.Invoice) {
	t.Helper()
	s, clock, laser := newLedger(t)
	ada := member(t, s, fablab.Member{Group: "student"})
	use(t, s, laser.ID, ada.ID, inParis(2026, 3, 10, 14, 0), 60)
	use(t, s, laser.ID, ada.ID, inParis(2026, 3, 11, 14, 0), 30)
	invs, _ := run(t, s, clock, "2026-03", inParis(2026, 4, 1, 8, 0))
	if len(invs) != 1 || invs[0].TotalExclCents != 1800 || invs[0].TotalInclCents != 2160 {
		t.Fatalf("invoice %+v", invs)
	}
	return s, clock, ada, invs[0]
}

func TestCreditNote(t *testing.T) {
	s, _, ada, inv := issueOne(t)
	ctx := t.Context()
	chargesBefore := len(allCharges(t, s))

	refused := func(amount int64, rate int, reason, field string) {
		t.Helper()
		n := seq(s, 2026)
		cn, err := s.CreditNote(ctx, inv.ID, amount, rate, reason, ada.ID)
		if fablab.ErrorCode(err) != fablab.EINVALID || fablab.ErrorField(err) != field {
			t.Fatalf("credit of %d at %d (%q): %+v, %v; want EINVALID on %q", amount, rate, reason, cn, err, field)
		}
		if seq(s, 2026) != n || len(allCharges(t, s)) != chargesBefore {
			t.Fatalf("a refused credit of %d wrote a number (%d → %d) or a ledger line (%d → %d)", amount, n, seq(s, 2026), chargesBefore, len(allCharges(t, s)))
		}
	}
	refused(1801, -1, "too much", "amount_cents")
	refused(0, -1, "nothing", "amount_cents")
	refused(-5, -1, "negative", "amount_cents")
	refused(100, -1, "  ", "reason")
	refused(100, -1, strings.Repeat("x", 501), "reason")
	refused(100, 550, "no line at that rate", "vat_rate_bp")
	if st, _ := s.InvoiceState(ctx, inv.ID); len(st.Credits) != 0 || st.DueCents != 2160 {
		t.Fatalf("state after refusals: %+v", st)
	}

	// Credits up to exactly what the invoice is worth.
	var credits []fablab.Invoice
	for i, amount := range []int64{1000, 500, 300} {
		cn, err := s.CreditNote(ctx, inv.ID, amount, -1, fmt.Sprintf("reason %d", i), ada.ID)
		if err != nil {
			t.Fatalf("credit %d of %d: %v", i, amount, err)
		}
		if cn.Kind != fablab.InvoiceKindCreditNote || cn.Corrects != inv.ID || cn.Number != fmt.Sprintf("FG-2026-%06d", i+2) ||
			cn.TotalExclCents != amount || cn.TotalInclCents != amount*12/10 || cn.Payer != inv.Payer {
			t.Fatalf("credit note %+v", cn)
		}
		// Its ledger line: a credit, already invoiced by the credit note.
		line, err := s.Charge(ctx, cn.Lines[0].ChargeID)
		if err != nil || line.AmountCents != -amount || line.Kind != fablab.ChargeCorrection || line.Payer != inv.Payer || line.MemberID != ada.ID {
			t.Fatalf("credit note's ledger line %+v, %v", line, err)
		}
		if got, _ := s.InvoiceOfCharge(ctx, line.ID); got != cn.ID {
			t.Fatalf("the credit line is on invoice %s, want the credit note %s", got, cn.ID)
		}
		credits = append(credits, cn)
		chargesBefore = len(allCharges(t, s))
		if i == 0 {
			refused(801, -1, "more than is left", "amount_cents")
		}
	}
	refused(1, -1, "nothing left", "amount_cents")
	st, err := s.InvoiceState(ctx, inv.ID)
	if err != nil || st.DueCents != 0 || !reflect.DeepEqual(st.Credits, credits) {
		t.Fatalf("state %+v, %v", st, err)
	}
	// A credit note is not credited.
	n := seq(s, 2026)
	if _, err := s.CreditNote(ctx, credits[0].ID, 100, -1, "credit the credit", ada.ID); fablab.ErrorCode(err) != fablab.EINVALID || seq(s, 2026) != n {
		t.Fatalf("credit of a credit note: %v", err)
	}
	if _, err := s.CreditNote(ctx, 999, 100, -1, "none", ada.ID); fablab.ErrorCode(err) != fablab.ENOTFOUND {
		t.Fatalf("credit of a missing invoice: %v", err)
	}
	// Credit notes' ledger lines are not invoiced again.
	ap := fablab.Payer{Kind: fablab.PayerIsMember, ID: ada.ID}
	if left, _ := s.Charges(ctx, bolt.ChargeFilter{Payer: &ap, Uninvoiced: true}); len(left) != 0 {
		t.Fatalf("credit lines left uninvoiced: %+v", left)
	}
}

func TestCreditNoteMultiRate(t *testing.T) {
	s, clock, laser := newLedger(t)
	ada := member(t, s, fablab.Member{Group: "student"})
	use(t, s, laser.ID, ada.ID, inParis(2026, 3, 10, 14, 0), 60) // 12 € at 20 %
	if _, err := s.UpdateSettings(t.Context(), func(st *fablab.Settings) error { st.VATRateBasisPoints = 550; return nil }); err != nil {
		t.Fatal(err)
	}
	use(t, s, laser.ID, ada.ID, inParis(2026, 3, 11, 14, 0), 30) // 6 € at 5.5 %
	invs, _ := run(t, s, clock, "2026-03", inParis(2026, 4, 1, 8, 0))
	inv := invs[0]
	wantVAT := []fablab.VATLine{{RateBP: 550, BaseCents: 600, VATCents: 33}, {RateBP: 2000, BaseCents: 1200, VATCents: 240}}
	if !reflect.DeepEqual(inv.VAT, wantVAT) || inv.TotalInclCents != 2073 {
		t.Fatalf("invoice VAT %+v, total %d", inv.VAT, inv.TotalInclCents)
	}
	if _, err := s.CreditNote(t.Context(), inv.ID, 100, -1, "which rate?", ada.ID); fablab.ErrorCode(err) != fablab.EINVALID || fablab.ErrorField(err) != "vat_rate_bp" {
		t.Fatalf("credit without a rate on a two-rate invoice: %v", err)
	}
	if _, err := s.CreditNote(t.Context(), inv.ID, 601, 550, "more than the 5.5 % base", ada.ID); fablab.ErrorCode(err) != fablab.EINVALID || fablab.ErrorField(err) != "amount_cents" {
		t.Fatalf("credit beyond the rate's base: %v", err)
	}
	cn, err := s.CreditNote(t.Context(), inv.ID, 600, 550, "the 5.5 % use", ada.ID)
	if err != nil || cn.TotalExclCents != 600 || cn.TotalVATCents != 33 || len(cn.VAT) != 1 || cn.VAT[0].RateBP != 550 {
		t.Fatalf("credit at 5.5 %%: %+v, %v", cn, err)
	}
	if _, err := s.CreditNote(t.Context(), inv.ID, 1200, 2000, "the 20 % use", ada.ID); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.InvoiceState(t.Context(), inv.ID); st.DueCents != 0 {
		t.Fatalf("due after crediting both rates: %d", st.DueCents)
	}
}

func TestMarkPaid(t *testing.T) {
	s, clock, ada, inv := issueOne(t)
	ctx := t.Context()
	clock.Set(inParis(2026, 4, 20, 10, 0))
	if _, err := s.CreditNote(ctx, inv.ID, 500, -1, "geste", ada.ID); err != nil {
		t.Fatal(err)
	}
	today := fablab.Date{Year: 2026, Month: time.April, Day: 20}
	for _, tt := range []struct {
		name, method string
		on           fablab.Date
		field        string
	}{
		{"unknown method", "bitcoin", today, "method"},
		{"no method", "", today, "method"},
		{"tomorrow", "transfer", today.AddDays(1), "paid_on"},
		{"before the invoice", "transfer", fablab.Date{Year: 2026, Month: time.March, Day: 31}, "paid_on"},
	} {
		if _, err := s.MarkPaid(ctx, inv.ID, tt.on, tt.method, "", ada.ID); fablab.ErrorCode(err) != fablab.EINVALID || fablab.ErrorField(err) != tt.field {
			t.Fatalf("%s: %v, want EINVALID on %s", tt.name, err, tt.field)
		}
	}
	if st, _ := s.InvoiceState(ctx, inv.ID); st.Payment != nil {
		t.Fatal("a refused payment was recorded")
	}
	cns, _ := s.InvoiceState(ctx, inv.ID)
	if _, err := s.MarkPaid(ctx, cns.Credits[0].ID, today, "transfer", "", ada.ID); fablab.ErrorCode(err) != fablab.EINVALID {
		t.Fatalf("paying a credit note: %v", err)
	}
	p, err := s.MarkPaid(ctx, inv.ID, today, "card", "TPE-1", ada.ID)
	if err != nil || p.AmountCents != 2160-600 || p.PaidOn != "2026-04-20" || p.Method != "card" {
		t.Fatalf("payment %+v, %v", p, err)
	}
	_, err = s.MarkPaid(ctx, inv.ID, today, "cash", "", ada.ID)
	if fablab.ErrorCode(err) != fablab.ECONFLICT {
		t.Fatalf("second payment: %v, want ECONFLICT", err)
	}
	st, _ := s.InvoiceState(ctx, inv.ID)
	if st.Payment == nil || *st.Payment != p || st.DueCents != 0 {
		t.Fatalf("state after a refused second payment: %+v", st)
	}
	if _, err := s.MarkPaid(ctx, 999, today, "cash", "", ada.ID); fablab.ErrorCode(err) != fablab.ENOTFOUND {
		t.Fatalf("paying a missing invoice: %v", err)
	}
}

func TestInvoiceImmutable(t *testing.T) {
	s, clock, ada, inv := issueOne(t)
	ctx := t.Context()
	raw := bolt.RawValue(s, "invoices", bolt.IDKey(inv.ID))
	if raw == nil {
		t.Fatal("no stored invoice")
	}
	clock.Set(inParis(2026, 4, 10, 10, 0))
	if _, err := s.CreditNote(ctx, inv.ID, 300, -1, "geste", ada.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MarkPaid(ctx, inv.ID, fablab.Date{Year: 2026, Month: time.April, Day: 9}, "transfer", "VIR-1", ada.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreditNote(ctx, inv.ID, 200, -1, "after payment", ada.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.RunInvoices(ctx, fablab.Period{Year: 2026, Month: time.March}); err != nil {
		t.Fatal(err)
	}
	if got := bolt.RawValue(s, "invoices", bolt.IDKey(inv.ID)); !bytes.Equal(got, raw) {
		t.Fatalf("the invoice changed after being issued:\n%s\nwas\n%s", got, raw)
	}
	again, err := s.Invoice(ctx, inv.ID)
	if err != nil || !reflect.DeepEqual(again, inv) {
		t.Fatalf("invoice read back %+v, %v", again, err)
	}
}

func TestPayerBalance(t *testing.T) {
	s, clock, laser := newLedger(t)
	ctx := t.Context()
	ada := member(t, s, fablab.Member{Group: "student"})
	ap := fablab.Payer{Kind: fablab.PayerIsMember, ID: ada.ID}
	use(t, s, laser.ID, ada.ID, inParis(2026, 3, 10, 14, 0), 60)                        // 12 €
	march, _ := run(t, s, clock, "2026-03", inParis(2026, 4, 1, 8, 0))                  // 14.40 € incl.
	use(t, s, laser.ID, ada.ID, inParis(2026, 4, 10, 14, 0), 30)                        // 6 €
	april, _ := run(t, s, clock, "2026-04", inParis(2026, 5, 1, 8, 0))                  // 7.20 € incl.
	late := use(t, s, laser.ID, ada.ID, inParis(2026, 5, 10, 14, 0), 45)                // 9 €, not invoiced yet
	if _, err := s.CreditNote(ctx, march[0].ID, 200, -1, "geste", ada.ID); err != nil { // 2.40 € incl.
		t.Fatal(err)
	}
	if _, err := s.MarkPaid(ctx, march[0].ID, fablab.Date{Year: 2026, Month: time.May, Day: 1}, "transfer", "", ada.ID); err != nil {
		t.Fatal(err)
	}
	b, err := s.PayerBalance(ctx, ap)
	if err != nil {
		t.Fatal(err)
	}
	want := bolt.Balance{Payer: ap, InvoicedCents: 1440 + 720, CreditedCents: 240, PaidCents: 1440 - 240, OutstandingCents: 720, UninvoicedCents: late.AmountCents}
	if b != want || late.AmountCents != 900 {
		t.Fatalf("balance %+v, want %+v", b, want)
	}
	if b.InvoicedCents-b.CreditedCents-b.PaidCents != b.OutstandingCents {
		t.Fatal("outstanding is not invoiced less credited less paid")
	}
	if st, _ := s.InvoiceState(ctx, april[0].ID); st.DueCents != b.OutstandingCents {
		t.Fatalf("April's due %d, the balance's outstanding %d", st.DueCents, b.OutstandingCents)
	}
	// An organisation with the member's id is another payer: it does not
	// exist here, and never shares her balance.
	if other, err := s.PayerBalance(ctx, fablab.Payer{Kind: fablab.PayerIsOrganisation, ID: ada.ID}); fablab.ErrorCode(err) != fablab.ENOTFOUND {
		t.Fatalf("the balance of an organisation that does not exist: %+v, %v; want not_found", other, err)
	}
}

// sessionTotal is the sum of a session's charge and its corrections.
func sessionTotal(t *testing.T, s *bolt.Store, member, session fablab.ID) (minutes, prepaid, amount int64, n int) {
	t.Helper()
	cs, err := s.Charges(t.Context(), bolt.ChargeFilter{MemberID: member})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.SessionID == session {
			minutes, prepaid, amount, n = minutes+c.Minutes, prepaid+c.PrepaidMinutes, amount+c.AmountCents, n+1
		}
	}
	return minutes, prepaid, amount, n
}

func TestRebillWhenEndMovesEarlier(t *testing.T) {
	s, _, laser := newLedger(t)
	ctx := t.Context()
	ada := member(t, s, fablab.Member{Group: "student", PrepaidMinutes: 30})
	start := inParis(2026, 3, 10, 14, 0)
	first := use(t, s, laser.ID, ada.ID, start, 90)
	if first.Minutes != 90 || first.PrepaidMinutes != 30 || first.AmountCents != 1200 {
		t.Fatalf("first charge %+v", first)
	}
	steps := []struct {
		endMin                  int
		minutes, prepaid, total int64
		balance                 int64
	}{
		{40, 40, 30, 200, 0}, // 10 minutes billed
		{20, 20, 20, 0, 10},  // prepaid covers it: 10 minutes given back
		{20, 20, 20, 0, 10},  // same end again: refused, nothing changes
		{0, 0, 0, 0, 30},     // nothing used: all given back
	}
	for i, st := range steps {
		_, err := s.EndSessionBy(ctx, first.SessionID, start.Add(time.Duration(st.endMin)*time.Minute), fablab.EndDeviceOffline, nil)
		if i == 2 {
			wantCode(t, err, fablab.ECONFLICT)
		} else if err != nil {
			t.Fatal(err)
		}
		minutes, prepaid, amount, _ := sessionTotal(t, s, ada.ID, first.SessionID)
		if minutes != st.minutes || prepaid != st.prepaid || amount != st.total {
			t.Fatalf("end at +%d min: the session's charges add up to %d min, %d prepaid, %d cents; want %d, %d, %d",
				st.endMin, minutes, prepaid, amount, st.minutes, st.prepaid, st.total)
		}
		m, _ := s.Member(ctx, ada.ID)
		if m.PrepaidMinutes != st.balance {
			t.Fatalf("end at +%d min: prepaid balance %d, want %d", st.endMin, m.PrepaidMinutes, st.balance)
		}
		// The totals are the rule applied to the session as it is now, with
		// the balance it had before it.
		sess, _ := s.Session(ctx, first.SessionID)
		lab, _ := s.Settings(ctx)
		m.PrepaidMinutes = 30
		want, _ := fablab.SessionCharge(sess, fablab.BillingContext{Settings: lab, Machine: laser, Member: m}, 30)
		if want.AmountCents != amount || want.Minutes != minutes || want.PrepaidMinutes != prepaid {
			t.Fatalf("end at +%d min: the rule says %+v", st.endMin, want)
		}
	}
	cs := allCharges(t, s)
	slices.SortFunc(cs, func(a, b fablab.Charge) int { return cmp.Compare(a.ID, b.ID) })
	if len(cs) != 4 || cs[0].ID != first.ID {
		t.Fatalf("%d charges, want the first and three corrections", len(cs))
	}
	if c := cs[1]; c.Kind != fablab.ChargeCorrection || c.Corrects != first.ID || c.AmountCents != -1000 || c.Minutes != -50 || c.PrepaidMinutes != 0 {
		t.Fatalf("first correction %+v", c)
	}
	if again, _ := s.Charge(ctx, first.ID); again != first {
		t.Fatalf("the first charge was edited: %+v", again)
	}
}

// A device that was offline for days reports a session far shorter than
// the server had it: the correction goes back more than a day, and a
// second correction must still see the first.
func TestRebillLongSession(t *testing.T) {
	s, _, laser := newLedger(t)
	ctx := t.Context()
	ada := member(t, s, fablab.Member{Group: "student", PrepaidMinutes: 60})
	start := inParis(2026, 3, 9, 9, 0)
	first := use(t, s, laser.ID, ada.ID, start, 3*24*60)
	for _, end := range []int{60, 90, 30} {
		at := start.Add(time.Duration(end) * time.Minute)
		if _, err := s.EndSessionBy(ctx, first.SessionID, at, fablab.EndDeviceOffline, nil); err != nil {
			if end == 90 {
				wantCode(t, err, fablab.ECONFLICT) // later than the current end
				continue
			}
			t.Fatal(err)
		}
		minutes, prepaid, amount, _ := sessionTotal(t, s, ada.ID, first.SessionID)
		if minutes != int64(end) || prepaid != int64(end) || amount != 0 {
			t.Fatalf("end at +%d min: charges add up to %d min, %d prepaid, %d cents; want all prepaid, free", end, minutes, prepaid, amount)
		}
		if m, _ := s.Member(ctx, ada.ID); m.PrepaidMinutes != 60-int64(end) {
			t.Fatalf("end at +%d min: prepaid balance %d, want %d", end, m.PrepaidMinutes, 60-end)
		}
	}
	// Staff see the corrections too: nothing is left to credit.
	staff := member(t, s, fablab.Member{Role: fablab.RoleStaff, Group: "staff"})
	if _, err := s.AddCorrection(ctx, first.ID, -1, "credit", staff.ID); fablab.ErrorCode(err) != fablab.EINVALID || fablab.ErrorField(err) != "amount_cents" {
		t.Fatalf("a credit of a session whose charges total zero: %v, want EINVALID", err)
	}
}

func TestNoShowFee(t *testing.T) {
	s, _, _ := newLedger(t)
	ctx := t.Context()
	st, _ := s.Settings(ctx)
	fee, err := s.CreateMachine(ctx, fablab.Machine{Name: "Laser with fee", Kind: fablab.KindLaserCutter, Rules: st.DefaultRules, NoShowFeeCents: 500})
	if err != nil {
		t.Fatal(err)
	}
	free, err := s.CreateMachine(ctx, fablab.Machine{Name: "Printer", Kind: fablab.Kind3DPrinter, Rules: st.DefaultRules})
	if err != nil {
		t.Fatal(err)
	}
	ada := member(t, s, fablab.Member{Group: "student"})
	sam := member(t, s, fablab.Member{Role: fablab.RoleStaff, Group: "staff"})
	b1 := mustBook(t, s, fee.ID, ada.ID, span(60, 120))
	mustBook(t, s, fee.ID, sam.ID, span(180, 240))
	mustBook(t, s, free.ID, ada.ID, span(60, 120))
	for _, now := range []time.Time{at(76), at(76), at(196), at(300)} {
		if _, err := s.MarkNoShows(ctx, now, 6*time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	cs := allCharges(t, s)
	if len(cs) != 1 {
		t.Fatalf("%d charges, want Ada's one fee on the laser: %+v", len(cs), cs)
	}
	c := cs[0]
	if c.Kind != fablab.ChargeNoShow || c.BookingID != b1.ID || c.AmountCents != 500 || c.MemberID != ada.ID || !c.At.Equal(b1.Start) {
		t.Fatalf("fee %+v", c)
	}
}

func TestNegativePricesRefused(t *testing.T) {
	s, _, laser := newLedger(t)
	ctx := t.Context()
	for name, m := range map[string]fablab.Machine{
		"negative rate":           {Name: "A", Kind: fablab.KindCNC, Prices: map[string]int64{"student": -1}},
		"negative minimum charge": {Name: "B", Kind: fablab.KindCNC, MinimumChargeCents: -100},
		"negative no-show fee":    {Name: "C", Kind: fablab.KindCNC, NoShowFeeCents: -500},
	} {
		if _, err := s.CreateMachine(ctx, m); fablab.ErrorCode(err) != fablab.EINVALID {
			t.Errorf("%s: %v, want EINVALID", name, err)
		}
	}
	_, err := s.UpdateMachine(ctx, laser.ID, func(m *fablab.Machine) error { m.Prices["sme"] = -3000; return nil })
	if fablab.ErrorCode(err) != fablab.EINVALID {
		t.Fatalf("a negative rate by update: %v, want EINVALID", err)
	}
	if got, _ := s.Machine(ctx, laser.ID); got.Prices["sme"] != 3000 {
		t.Fatalf("the refused update was written: %v", got.Prices)
	}
}
