package invoice

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fabgate/fabgate/internal/fablab"
)

// Options are what a document shows beyond the invoice itself.
type Options struct {
	// CorrectsNumber is the number of the invoice a credit note corrects
	// (the store knows it from Invoice.Corrects). A credit note needs it.
	CorrectsNumber string
}

// nbsp is the no-break space between thousands and before units.
const nbsp = "\u00a0"

// document is an invoice as its documents show it: checked, with a credit
// note's amounts positive.
type document struct {
	inv      fablab.Invoice
	loc      *time.Location
	credit   bool
	corrects string
	period   *fablab.Period
}

// prepare checks that inv can be shown and returns it as documents show
// it. Errors: EINVALID, saying what is wrong with the invoice.
func prepare(inv fablab.Invoice, loc *time.Location, opt Options) (*document, error) {
	if loc == nil {
		return nil, fablab.Errorf(fablab.EINVALID, "the lab's time zone is needed to date an invoice")
	}
	d := &document{loc: loc, corrects: strings.TrimSpace(opt.CorrectsNumber)}
	switch inv.Kind {
	case fablab.InvoiceKindInvoice:
	case fablab.InvoiceKindCreditNote:
		d.credit = true
		if d.corrects == "" {
			return nil, fablab.Errorf(fablab.EINVALID, "credit note %s must name the invoice it corrects", inv.Number).On("corrects")
		}
	default:
		return nil, fablab.Errorf(fablab.EINVALID, "invoice kind %q must be %s or %s", inv.Kind, fablab.InvoiceKindInvoice, fablab.InvoiceKindCreditNote).On("kind")
	}
	if strings.TrimSpace(inv.Number) == "" {
		return nil, fablab.Errorf(fablab.EINVALID, "an invoice needs its number").On("number")
	}
	if !validCurrency(inv.Currency) {
		return nil, fablab.Errorf(fablab.EINVALID, "invoice %s: currency %q must be an ISO 4217 code such as EUR", inv.Number, inv.Currency).On("currency")
	}
	if strings.TrimSpace(inv.Seller.Name) == "" || strings.TrimSpace(inv.Buyer.Name) == "" {
		return nil, fablab.Errorf(fablab.EINVALID, "invoice %s must name its seller and its buyer", inv.Number)
	}
	if inv.IssuedAt.IsZero() || inv.DueAt.IsZero() {
		return nil, fablab.Errorf(fablab.EINVALID, "invoice %s needs its issue and due dates", inv.Number)
	}
	if dateOf(inv.DueAt, loc).Before(dateOf(inv.IssuedAt, loc)) {
		return nil, fablab.Errorf(fablab.EINVALID, "invoice %s is due before it is issued", inv.Number).On("due_at")
	}
	if inv.Period != "" {
		p, err := fablab.ParsePeriod(inv.Period)
		if err != nil {
			return nil, err
		}
		d.period = &p
	}
	want := inv
	want.Lines = slices.Clone(inv.Lines)
	want.Totals()
	if !slices.Equal(want.VAT, inv.VAT) || want.TotalExclCents != inv.TotalExclCents ||
		want.TotalVATCents != inv.TotalVATCents || want.TotalInclCents != inv.TotalInclCents {
		return nil, fablab.Errorf(fablab.EINVALID, "invoice %s: its totals do not add up from its lines", inv.Number)
	}
	if d.credit && inv.TotalInclCents < 0 {
		want.Lines = make([]fablab.InvoiceLine, len(inv.Lines))
		for i, l := range inv.Lines {
			l.AmountCents = -l.AmountCents
			want.Lines[i] = l
		}
		want.Totals()
	}
	d.inv = want
	return d, nil
}

func validCurrency(c string) bool {
	if len(c) != 3 {
		return false
	}
	for _, r := range c {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}

// dateOf is t's calendar date in loc, at midnight UTC (for comparisons).
func dateOf(t time.Time, loc *time.Location) time.Time {
	y, m, d := t.In(loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// daysBetween is the number of calendar days in loc from a to b.
func daysBetween(a, b time.Time, loc *time.Location) int {
	return int(dateOf(b, loc).Sub(dateOf(a, loc)).Hours() / 24)
}

// frenchDate is t in loc as dd/mm/yyyy.
func frenchDate(t time.Time, loc *time.Location) string { return t.In(loc).Format("02/01/2006") }

var frenchMonths = [...]string{"janvier", "février", "mars", "avril", "mai", "juin", "juillet",
	"août", "septembre", "octobre", "novembre", "décembre"}

// frenchPeriod is "mars 2026".
func frenchPeriod(p fablab.Period) string {
	return frenchMonths[p.Month-1] + " " + strconv.Itoa(p.Year)
}

// frenchNumber writes cents as "1 234,56" (no-break spaces between
// thousands).
func frenchNumber(cents int64) string {
	sign := ""
	u := uint64(cents)
	if cents < 0 {
		sign, u = "-", uint64(-(cents+1))+1
	}
	units := strconv.FormatUint(u/100, 10)
	var b strings.Builder
	b.WriteString(sign)
	for i, r := range units {
		if i > 0 && (len(units)-i)%3 == 0 {
			b.WriteString(nbsp)
		}
		b.WriteRune(r)
	}
	frac := u % 100
	b.WriteByte(',')
	b.WriteByte(byte('0' + frac/10))
	b.WriteByte(byte('0' + frac%10))
	return b.String()
}

// frenchMoney writes cents as "1 234,56 €" (or "1 234,56 CHF").
func frenchMoney(cents int64, currency string) string {
	return frenchNumber(cents) + nbsp + currencySymbol(currency)
}

func currencySymbol(c string) string {
	if c == "EUR" {
		return "€"
	}
	return c
}

// frenchRate writes basis points as a French percentage: "20 %", "5,5 %".
func frenchRate(bp int) string {
	s := strconv.Itoa(bp / 100)
	if f := bp % 100; f != 0 {
		if f < 0 {
			f = -f
		}
		s += "," + strings.TrimRight(strconv.Itoa(100 + f)[1:], "0")
	}
	return s + nbsp + "%"
}

// paymentTerms is "Paiement à réception" or "Paiement à 30 jours".
func paymentTerms(issued, due time.Time, loc *time.Location) string {
	switch n := daysBetween(issued, due, loc); n {
	case 0:
		return "Paiement à réception"
	case 1:
		return "Paiement à 1 jour"
	default:
		return "Paiement à " + strconv.Itoa(n) + " jours"
	}
}

// indemnityMention is the fixed recovery indemnity a business buyer owes on
// late payment (Code de commerce L441-10, D441-5).
const indemnityMention = "Indemnité forfaitaire pour frais de recouvrement : 40" + nbsp + "€ (art. L441-10 et D441-5 du Code de commerce)"

// noDiscountMention states the (absent) discount for early payment
// (L441-9).
const noDiscountMention = "Escompte pour paiement anticipé : néant"

// latePenalty is the invoice's late-payment penalty, or the legal minimum.
func latePenalty(inv fablab.Invoice) string {
	if s := strings.TrimSpace(inv.LatePenalty); s != "" {
		return s
	}
	return fablab.DefaultLatePenalty
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}
