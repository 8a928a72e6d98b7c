package fablab

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Money is integer cents of the lab's currency, everywhere (DESIGN §2).
// Prices are excluding VAT; invoices add VAT at the rate the charge carries.

// PayerKind says who pays a charge or receives an invoice.
type PayerKind string

const (
	PayerIsMember       PayerKind = "member"
	PayerIsOrganisation PayerKind = "organisation"
)

// Payer is a member or an organisation: whoever an invoice is addressed to.
type Payer struct {
	Kind PayerKind `json:"kind"`
	ID   ID        `json:"id"`
}

// String is the payer's stable name in URLs and CSV: "member-12",
// "organisation-3".
func (p Payer) String() string { return string(p.Kind) + "-" + p.ID.String() }

// ParsePayer reads Payer.String's form. Errors: EINVALID.
func ParsePayer(s string) (Payer, error) {
	kind, id, ok := strings.Cut(s, "-")
	p := Payer{Kind: PayerKind(kind)}
	if !ok || (p.Kind != PayerIsMember && p.Kind != PayerIsOrganisation) {
		return Payer{}, Errorf(EINVALID, "payer %q must be member-<id> or organisation-<id>", truncate(s, 60)).Say("problem_payer", "Got", truncate(s, 60))
	}
	n, err := ParseID(id)
	if err != nil || n == 0 {
		return Payer{}, Errorf(EINVALID, "payer %q must be member-<id> or organisation-<id>", truncate(s, 60)).Say("problem_payer", "Got", truncate(s, 60))
	}
	p.ID = n
	return p, nil
}

// Business reports whether the payer is an organisation: invoices to one
// carry the 40 € recovery indemnity (French commercial code, L441-10).
func (p Payer) Business() bool { return p.Kind == PayerIsOrganisation }

// Charge kinds.
const (
	ChargeSession    = "session"    // a closed session's use of a machine
	ChargeNoShow     = "no_show"    // a machine's no-show fee
	ChargeCorrection = "correction" // a credit or debit line correcting an earlier charge
)

// Charge is one line of the append-only ledger. It is never changed once
// written; a correction is another line (ChargeCorrection) naming the one
// it corrects. Amounts are excluding VAT, in cents.
type Charge struct {
	ID        ID     `json:"id"`
	Kind      string `json:"kind"`
	Payer     Payer  `json:"payer"`
	MemberID  ID     `json:"member_id"`
	MachineID ID     `json:"machine_id,omitempty"`
	SessionID ID     `json:"session_id,omitempty"`
	BookingID ID     `json:"booking_id,omitempty"`
	Corrects  ID     `json:"corrects,omitempty"` // for corrections: the charge corrected
	Group     string `json:"group,omitempty"`    // the tariff group whose rate applied
	// Minutes is the billable use (rounded up to the lab's increment),
	// PrepaidMinutes the part of it taken from the member's prepaid
	// balance; the rest is billed at UnitCents per hour.
	Minutes        int64 `json:"minutes"`
	PrepaidMinutes int64 `json:"prepaid_minutes"`
	UnitCents      int64 `json:"unit_cents"` // per hour
	AmountCents    int64 `json:"amount_cents"`
	VATRateBP      int   `json:"vat_rate_bp"`
	// Free says why a use costs nothing, when it does: staff, short,
	// not_billable (the relay never confirmed), prepaid, no_price.
	Free string `json:"free,omitempty"`
	// At is when the use happened (a session's end, a no-show's start):
	// the month it falls in, in the lab's zone, is the invoice it goes to.
	At        time.Time `json:"at"`
	CreatedAt time.Time `json:"created_at"`
	Note      string    `json:"note,omitempty"`
}

// Reasons a use is free.
const (
	FreeStaff       = "staff"
	FreeShort       = "short"
	FreeNotBillable = "not_billable"
	FreePrepaid     = "prepaid"
	FreeNoPrice     = "no_price"
)

// BillingContext is what a session's charge depends on besides the session.
type BillingContext struct {
	Settings     Settings
	Machine      Machine
	Member       Member
	Organisation *Organisation // the member's, when they have one
	// FreeUnderMinutes: sessions shorter than this cost nothing (0: none).
	FreeUnderMinutes int
}

// TariffGroup is the group whose rates apply to the member: their own,
// else their organisation's.
func (bc BillingContext) TariffGroup() string {
	if bc.Member.Group != "" || bc.Organisation == nil {
		return bc.Member.Group
	}
	return bc.Organisation.Group
}

// PayerOf is who pays for a member's use: their organisation when it pays
// for its makers, else themselves.
func PayerOf(m Member, org *Organisation) Payer {
	if m.Payer == PayerOrganisation && m.OrganisationID != 0 && org != nil && org.ID == m.OrganisationID {
		return Payer{Kind: PayerIsOrganisation, ID: m.OrganisationID}
	}
	return Payer{Kind: PayerIsMember, ID: m.ID}
}

// BillableMinutes is a use of d rounded up to the lab's increment of
// minutes (a started increment is due).
func BillableMinutes(d time.Duration, increment int) int64 {
	if d <= 0 {
		return 0
	}
	if increment < 1 {
		increment = 1
	}
	inc := time.Duration(increment) * time.Minute
	n := (d + inc - 1) / inc
	return int64(n) * int64(increment)
}

// PerHour is minutes at cents per hour, rounded to the nearest cent (half
// up).
func PerHour(minutes, centsPerHour int64) int64 {
	return (minutes*centsPerHour + 30) / 60
}

// SessionCharge applies the billing rule to a closed session, with
// prepaid the member's prepaid balance in minutes before it. It returns
// the charge (without ids and creation time) and the prepaid minutes it
// consumes. The rule, in order:
//
//   - a session the relay never confirmed (not billable) is free;
//   - staff and admins, and the staff tariff group, use machines free;
//   - a session shorter than FreeUnderMinutes is free, and so is one of
//     no time at all;
//   - the use is rounded up to the lab's billing increment;
//   - a machine with no rate (or a zero one) for the member's tariff group
//     is free for them, and takes none of their prepaid minutes;
//   - prepaid minutes are consumed first;
//   - the rest costs the machine's rate for the member's tariff group per
//     hour, at least the machine's minimum charge when anything is billed.
//
// The payer is the member's organisation when it pays for its makers,
// else the member.
func SessionCharge(s Session, bc BillingContext, prepaid int64) (Charge, int64) {
	end := s.Started
	if s.Ended != nil {
		end = *s.Ended
	}
	group := bc.TariffGroup()
	c := Charge{
		Kind: ChargeSession, Payer: PayerOf(bc.Member, bc.Organisation), MemberID: s.MemberID,
		MachineID: s.MachineID, SessionID: s.ID, BookingID: s.BookingID, Group: group,
		VATRateBP: bc.Settings.VATRateBasisPoints, At: end.UTC(),
	}
	used := end.Sub(s.Started)
	c.Minutes = BillableMinutes(used, bc.Settings.BillingIncrementMin)
	switch {
	case !s.Billable:
		c.Free = FreeNotBillable
		return c, 0
	case bc.Member.Role.AtLeast(RoleStaff) || group == "staff":
		c.Free = FreeStaff
		return c, 0
	case bc.FreeUnderMinutes > 0 && used < time.Duration(bc.FreeUnderMinutes)*time.Minute:
		c.Free = FreeShort
		return c, 0
	}
	rate, ok := bc.Machine.Prices[group]
	c.UnitCents = rate
	switch {
	case c.Minutes == 0:
		// Nothing used: nothing billed, not even the minimum charge.
		c.Free = FreeShort
		return c, 0
	case !ok || rate == 0:
		// Free for the group: the member's prepaid minutes (paid for)
		// are kept for a use that costs something.
		c.Free = FreeNoPrice
		return c, 0
	}
	if prepaid > 0 {
		c.PrepaidMinutes = min(prepaid, c.Minutes)
	}
	if billed := c.Minutes - c.PrepaidMinutes; billed > 0 {
		c.AmountCents = max(PerHour(billed, rate), bc.Machine.MinimumChargeCents)
	} else {
		c.Free = FreePrepaid
	}
	return c, c.PrepaidMinutes
}

// NoShowCharge is the machine's no-show fee for a booking released as a
// no-show (ok false when the machine has none, or the member is staff).
func NoShowCharge(b Booking, bc BillingContext) (Charge, bool) {
	fee := bc.Machine.NoShowFeeCents
	if fee <= 0 || bc.Member.Role.AtLeast(RoleStaff) {
		return Charge{}, false
	}
	return Charge{
		Kind: ChargeNoShow, Payer: PayerOf(bc.Member, bc.Organisation), MemberID: b.MemberID,
		MachineID: b.MachineID, BookingID: b.ID, Group: bc.TariffGroup(),
		AmountCents: fee, VATRateBP: bc.Settings.VATRateBasisPoints, At: b.Start.UTC(),
	}, true
}

// Period is a calendar month in the lab's time zone: what one invoice of a
// payer covers.
type Period struct {
	Year  int
	Month time.Month
}

// ParsePeriod reads "YYYY-MM". Errors: EINVALID.
func ParsePeriod(s string) (Period, error) {
	t, err := time.Parse("2006-01", s)
	if err != nil || len(s) != 7 {
		return Period{}, Errorf(EINVALID, "period %q must be a month as YYYY-MM, e.g. 2026-03", truncate(s, 40)).On("period").
			Say("problem_period", "Got", truncate(s, 40))
	}
	return Period{Year: t.Year(), Month: t.Month()}, nil
}

// PeriodOf is the month t falls in, in loc.
func PeriodOf(t time.Time, loc *time.Location) Period {
	l := t.In(loc)
	return Period{Year: l.Year(), Month: l.Month()}
}

func (p Period) String() string { return fmt.Sprintf("%04d-%02d", p.Year, int(p.Month)) }

// Start is the period's first instant in loc.
func (p Period) Start(loc *time.Location) time.Time {
	return time.Date(p.Year, p.Month, 1, 0, 0, 0, 0, loc)
}

// End is the first instant after the period in loc.
func (p Period) End(loc *time.Location) time.Time { return p.Next().Start(loc) }

// Next is the month after p.
func (p Period) Next() Period {
	if p.Month == time.December {
		return Period{Year: p.Year + 1, Month: time.January}
	}
	return Period{Year: p.Year, Month: p.Month + 1}
}

// Prev is the month before p.
func (p Period) Prev() Period {
	if p.Month == time.January {
		return Period{Year: p.Year - 1, Month: time.December}
	}
	return Period{Year: p.Year, Month: p.Month - 1}
}

// Before reports whether p is earlier than q.
func (p Period) Before(q Period) bool {
	return p.Year < q.Year || p.Year == q.Year && p.Month < q.Month
}

// Invoice kinds.
const (
	InvoiceKindInvoice    = "invoice"
	InvoiceKindCreditNote = "credit_note"
)

// InvoiceParty is the identity of a seller or a buyer as an invoice shows
// it (copied at issue: the invoice never changes afterwards).
type InvoiceParty struct {
	Name      string `json:"name"`
	Address   string `json:"address,omitempty"`
	VATNumber string `json:"vat_number,omitempty"`
	SIRET     string `json:"siret,omitempty"`
	Email     string `json:"email,omitempty"`
}

// InvoiceLine is one line of an invoice: one charge.
type InvoiceLine struct {
	ChargeID    ID        `json:"charge_id"`
	Description string    `json:"description"`
	At          time.Time `json:"at"`
	Minutes     int64     `json:"minutes,omitempty"`
	UnitCents   int64     `json:"unit_cents"` // per hour, or the fee
	AmountCents int64     `json:"amount_cents"`
	VATRateBP   int       `json:"vat_rate_bp"`
}

// VATLine is the VAT of an invoice at one rate.
type VATLine struct {
	RateBP    int   `json:"rate_bp"`
	BaseCents int64 `json:"base_cents"`
	VATCents  int64 `json:"vat_cents"`
}

// Invoice is an issued invoice or credit note. It is immutable once
// issued; payments and credit notes are recorded beside it.
type Invoice struct {
	ID       ID     `json:"id"`
	Number   string `json:"number"` // FG-2026-000042, gap-free per year
	Kind     string `json:"kind"`
	Corrects ID     `json:"corrects,omitempty"` // a credit note's invoice
	Payer    Payer  `json:"payer"`
	Period   string `json:"period"` // YYYY-MM
	// IssuedAt and DueAt are instants; the invoice shows them as dates in
	// the lab's zone.
	IssuedAt time.Time     `json:"issued_at"`
	DueAt    time.Time     `json:"due_at"`
	Seller   InvoiceParty  `json:"seller"`
	Buyer    InvoiceParty  `json:"buyer"`
	Business bool          `json:"business"` // the buyer is a business: the recovery indemnity applies
	Currency string        `json:"currency"`
	Lines    []InvoiceLine `json:"lines"`
	VAT      []VATLine     `json:"vat"`
	// VATMention replaces the VAT lines when the lab charges none ("TVA non
	// applicable, art. 293 B du CGI").
	VATMention     string `json:"vat_mention,omitempty"`
	TotalExclCents int64  `json:"total_excl_cents"`
	TotalVATCents  int64  `json:"total_vat_cents"`
	TotalInclCents int64  `json:"total_incl_cents"`
	PaymentTerms   string `json:"payment_terms"`
	LatePenalty    string `json:"late_penalty"`
	Reason         string `json:"reason,omitempty"` // a credit note's reason
}

// Totals computes an invoice's VAT lines and totals from its lines: VAT is
// computed once per rate on the sum of that rate's lines, rounded half away
// from zero, as EN 16931 sums them.
func (inv *Invoice) Totals() {
	byRate := map[int]int64{}
	var rates []int
	inv.TotalExclCents = 0
	for _, l := range inv.Lines {
		if _, ok := byRate[l.VATRateBP]; !ok {
			rates = append(rates, l.VATRateBP)
		}
		byRate[l.VATRateBP] += l.AmountCents
		inv.TotalExclCents += l.AmountCents
	}
	slices.Sort(rates)
	inv.VAT, inv.TotalVATCents = nil, 0
	for _, r := range rates {
		base := byRate[r]
		v := RoundDiv(base*int64(r), 10000)
		inv.VAT = append(inv.VAT, VATLine{RateBP: r, BaseCents: base, VATCents: v})
		inv.TotalVATCents += v
	}
	inv.TotalInclCents = inv.TotalExclCents + inv.TotalVATCents
}

// RoundDiv is a/b rounded half away from zero (b > 0).
func RoundDiv(a, b int64) int64 {
	if a < 0 {
		return -((-a + b/2) / b)
	}
	return (a + b/2) / b
}

// InvoiceNumber formats the n-th number of year with the lab's prefix.
func InvoiceNumber(prefix string, year int, n uint64) string {
	return prefix + "-" + strconv.Itoa(year) + "-" + fmt.Sprintf("%06d", n)
}

// Payment records that an invoice was paid.
type Payment struct {
	InvoiceID   ID        `json:"invoice_id"`
	PaidOn      string    `json:"paid_on"` // YYYY-MM-DD, the lab's date
	Method      string    `json:"method"`  // transfer, card, cash, cheque, other
	Reference   string    `json:"reference,omitempty"`
	AmountCents int64     `json:"amount_cents"`
	RecordedBy  ID        `json:"recorded_by"`
	RecordedAt  time.Time `json:"recorded_at"`
}

// PaymentMethods are the ways an invoice can be paid.
var PaymentMethods = []string{"transfer", "card", "cash", "cheque", "direct_debit", "other"}

// Money is an amount of a currency (ISO 4217) as a refusal's parameter
// (Error.Say): each language writes it its own way, "18,00 €" or "€18.00".
type Money struct {
	Cents    int64
	Currency string
}

// VATRate is a VAT rate in basis points as a refusal's parameter: "5,5 %"
// or "5.5 %".
type VATRate int

// FormatDecimal writes cents as a plain decimal, "1234.56" or "-0.50":
// the machine-readable form CSV and XML use.
func FormatDecimal(cents int64) string {
	sign, u := "", uint64(cents)
	if cents < 0 {
		sign, u = "-", -u // in uint64, so that the smallest int64 has its opposite
	}
	return fmt.Sprintf("%s%d.%02d", sign, u/100, u%100)
}
