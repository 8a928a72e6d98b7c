package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/fabgate/fabgate/internal/fablab"
)

// Invoices (schema 6). An invoice is written once, with its number, in the
// transaction that takes its charges out of charges_uninvoiced/: numbers
// have no gaps and no charge is on two invoices. Payments and credit notes
// are recorded beside the invoice, never in it.
//
//	invoices/         id → JSON fablab.Invoice            (invoices and credit notes)
//	invoices_number/  number → id
//	invoices_payer/   payer key | issued | id → nil
//	invoices_period/  period (YYYY-MM) | payer key → invoice id   (the monthly invoices)
//	invoice_runs/     period → JSON invoiceRun                 (a period's run happened)
//	invoice_seq/      year (uint64) → the last number issued that year
//	invoice_credits/  invoice id | credit note id → nil
//	invoice_charges/  charge id → invoice id                   (the invoice that took a charge)
//	payments/         invoice id → JSON fablab.Payment

var (
	bInvoices       = []byte("invoices")
	bInvoicesNumber = []byte("invoices_number")
	bInvoicesPayer  = []byte("invoices_payer")
	bInvoicesPeriod = []byte("invoices_period")
	bInvoiceRuns    = []byte("invoice_runs")
	bInvoiceSeq     = []byte("invoice_seq")
	bInvoiceCredits = []byte("invoice_credits")
	bInvoiceCharges = []byte("invoice_charges")
	bPayments       = []byte("payments")
)

var invoiceBuckets = [][]byte{bInvoices, bInvoicesNumber, bInvoicesPayer, bInvoicesPeriod, bInvoiceRuns, bInvoiceSeq, bInvoiceCredits, bInvoiceCharges, bPayments}

// invoiceRun records that a period's invoices were issued.
type invoiceRun struct {
	Period   string    `json:"period"`
	RunAt    time.Time `json:"run_at"`
	Invoices int       `json:"invoices"`
}

func getInvoice(tx *bbolt.Tx, id fablab.ID) (fablab.Invoice, error) {
	var inv fablab.Invoice
	err := getJSON(tx.Bucket(bInvoices), itob(id), &inv, fmt.Sprintf("invoice %s", id))
	if fablab.ErrorCode(err) == fablab.ENOTFOUND {
		return inv, fablab.Errorf(fablab.ENOTFOUND, "invoice %s does not exist", id).Say("problem_invoice_not_found", "ID", id.String())
	}
	return inv, err
}

// nextNumber allocates the next invoice number of year, gap-free: it is
// taken in the transaction that writes the invoice, so a transaction that
// fails takes no number.
func nextNumber(tx *bbolt.Tx, prefix string, year int) (string, error) {
	b := tx.Bucket(bInvoiceSeq)
	k := u64(uint64(year))
	var n uint64
	if v := b.Get(k); len(v) == 8 {
		n = binary.BigEndian.Uint64(v)
	}
	n++
	if err := b.Put(k, u64(n)); err != nil {
		return "", err
	}
	return fablab.InvoiceNumber(prefix, year, n), nil
}

// issueInTx numbers and writes a new invoice or credit note.
func issueInTx(tx *bbolt.Tx, inv *fablab.Invoice, st fablab.Settings) error {
	var err error
	if inv.Number, err = nextNumber(tx, st.InvoicePrefix, inv.IssuedAt.In(st.Location()).Year()); err != nil {
		return err
	}
	b := tx.Bucket(bInvoices)
	if inv.ID, err = nextID(b); err != nil {
		return err
	}
	if err := putJSON(b, itob(inv.ID), *inv); err != nil {
		return err
	}
	if err := tx.Bucket(bInvoicesNumber).Put([]byte(inv.Number), itob(inv.ID)); err != nil {
		return err
	}
	return tx.Bucket(bInvoicesPayer).Put(cat(payerKey(inv.Payer), tkey(inv.IssuedAt), itob(inv.ID)), nil)
}

// seller is the lab as invoices name it.
func seller(st fablab.Settings) fablab.InvoiceParty {
	return fablab.InvoiceParty{Name: st.SellerName(), Address: st.Address, VATNumber: st.VATNumber, SIRET: st.SIRET}
}

// buyer is a payer as invoices name them.
func buyer(tx *bbolt.Tx, p fablab.Payer) (fablab.InvoiceParty, error) {
	if p.Kind == fablab.PayerIsOrganisation {
		var o fablab.Organisation
		if err := getJSON(tx.Bucket(bOrganisations), itob(p.ID), &o, fmt.Sprintf("organisation %s", p.ID)); err != nil {
			return fablab.InvoiceParty{}, err
		}
		return fablab.InvoiceParty{Name: o.Name, Address: o.BillingAddress, VATNumber: o.VATNumber}, nil
	}
	r, err := getMember(tx, p.ID)
	if err != nil {
		return fablab.InvoiceParty{}, err
	}
	return fablab.InvoiceParty{Name: r.Name, Email: r.Email}, nil
}

// newInvoice is an invoice's frame: parties, dates and terms.
func newInvoice(tx *bbolt.Tx, st fablab.Settings, p fablab.Payer, period string, now time.Time) (fablab.Invoice, error) {
	b, err := buyer(tx, p)
	if err != nil {
		return fablab.Invoice{}, err
	}
	inv := fablab.Invoice{
		Kind: fablab.InvoiceKindInvoice, Payer: p, Period: period, IssuedAt: now.UTC(),
		DueAt: now.UTC().AddDate(0, 0, st.PaymentTermsDays), Seller: seller(st), Buyer: b,
		Business: p.Business(), Currency: st.Currency, LatePenalty: st.LatePenalty,
	}
	if inv.LatePenalty == "" {
		inv.LatePenalty = fablab.DefaultLatePenalty
	}
	if st.PaymentTermsDays == 0 {
		inv.PaymentTerms = "Paiement à réception"
	} else {
		inv.PaymentTerms = fmt.Sprintf("Paiement à %d jours", st.PaymentTermsDays)
	}
	return inv, nil
}

// lineOf describes a charge as an invoice line, in French (invoices are
// French documents), with the machine's name.
func lineOf(tx *bbolt.Tx, c fablab.Charge, loc *time.Location) fablab.InvoiceLine {
	name := "machine"
	if m, err := getMachine(tx, c.MachineID); err == nil {
		name = m.Name
	}
	day := c.At.In(loc).Format("02/01/2006")
	var d string
	switch c.Kind {
	case fablab.ChargeNoShow:
		d = fmt.Sprintf("Réservation non honorée — %s, %s", name, day)
	case fablab.ChargeCorrection:
		d = fmt.Sprintf("Correction — %s, %s", name, day)
		if c.Note != "" {
			d += " : " + c.Note
		}
	default:
		d = fmt.Sprintf("Utilisation — %s, %s, %d min", name, day, c.Minutes)
		if c.PrepaidMinutes > 0 {
			d += fmt.Sprintf(" (dont %d min prépayées)", c.PrepaidMinutes)
		}
	}
	unit := c.UnitCents
	if c.Kind == fablab.ChargeNoShow {
		unit = c.AmountCents
	}
	return fablab.InvoiceLine{ChargeID: c.ID, Description: d, At: c.At, Minutes: c.Minutes - c.PrepaidMinutes, UnitCents: unit, AmountCents: c.AmountCents, VATRateBP: c.VATRateBP}
}

// RunInvoices issues the invoices of period: for each payer, one invoice of
// their charges not invoiced yet whose use falls before the period's end
// (late charges of earlier months included). A payer whose charges total
// zero gets none (the charges are settled); one whose charges total less
// than zero (credits) gets none and keeps them for the next run. A period
// runs once: a second run returns the invoices of the first and issues
// nothing (created false). Errors: EINVALID (the period has not ended).
func (s *Store) RunInvoices(ctx context.Context, period fablab.Period) (invs []fablab.Invoice, created bool, err error) {
	now := s.now()
	err = s.update(ctx, func(tx *bbolt.Tx) error {
		invs, created = nil, false
		st, err := loadSettings(tx)
		if err != nil {
			return err
		}
		loc := st.Location()
		end := period.End(loc)
		if now.Before(end) {
			return fablab.Errorf(fablab.EINVALID, "period %s has not ended: its invoices can be run from %s", period, end.Format("2006-01-02")).On("period").
				Say("problem_period_not_ended", "Period", period, "From", fablab.DateOf(end))
		}
		runs := tx.Bucket(bInvoiceRuns)
		if runs.Get([]byte(period.String())) != nil {
			invs, err = periodInvoices(tx, period)
			return err
		}
		created = true
		// Group the uninvoiced charges by payer, in key order.
		type batch struct {
			payer   fablab.Payer
			charges []fablab.Charge
			keys    [][]byte
		}
		var batches []*batch
		c := tx.Bucket(bChargesUninvoiced).Cursor()
		endKey := tkey(end)
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if bytes.Compare(k[9:17], endKey) >= 0 {
				continue
			}
			p := payerOfKey(k[:9])
			if len(batches) == 0 || batches[len(batches)-1].payer != p {
				batches = append(batches, &batch{payer: p})
			}
			ch, err := getCharge(tx, btoi(k[17:25]))
			if err != nil {
				return err
			}
			bt := batches[len(batches)-1]
			bt.charges, bt.keys = append(bt.charges, ch), append(bt.keys, bytes.Clone(k))
		}
		for _, bt := range batches {
			var total int64
			for _, ch := range bt.charges {
				total += ch.AmountCents
			}
			if total < 0 {
				continue // credits wait for charges to set against
			}
			var inv fablab.Invoice
			if total > 0 {
				if inv, err = newInvoice(tx, st, bt.payer, period.String(), now); err != nil {
					return err
				}
				for _, ch := range bt.charges {
					if ch.AmountCents != 0 {
						inv.Lines = append(inv.Lines, lineOf(tx, ch, loc))
					}
				}
				inv.Totals()
				if inv.TotalVATCents == 0 && st.VATMention != "" {
					inv.VATMention = st.VATMention
				}
				if err := issueInTx(tx, &inv, st); err != nil {
					return err
				}
				if err := tx.Bucket(bInvoicesPeriod).Put(cat([]byte(period.String()), payerKey(bt.payer)), itob(inv.ID)); err != nil {
					return err
				}
				invs = append(invs, inv)
			}
			for i, ch := range bt.charges {
				if err := tx.Bucket(bChargesUninvoiced).Delete(bt.keys[i]); err != nil {
					return err
				}
				if inv.ID != 0 {
					if err := tx.Bucket(bInvoiceCharges).Put(itob(ch.ID), itob(inv.ID)); err != nil {
						return err
					}
				}
			}
		}
		return putJSON(runs, []byte(period.String()), invoiceRun{Period: period.String(), RunAt: now.UTC(), Invoices: len(invs)})
	})
	return invs, created, err
}

// InvoicesRun reports whether period's invoices were run.
func (s *Store) InvoicesRun(ctx context.Context, period fablab.Period) (bool, error) {
	var ran bool
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		ran = tx.Bucket(bInvoiceRuns).Get([]byte(period.String())) != nil
		return nil
	})
	return ran, err
}

// periodInvoices returns the monthly invoices of period, by payer.
func periodInvoices(tx *bbolt.Tx, period fablab.Period) ([]fablab.Invoice, error) {
	out := []fablab.Invoice{}
	prefix := []byte(period.String())
	c := tx.Bucket(bInvoicesPeriod).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		inv, err := getInvoice(tx, btoi(v))
		if err != nil {
			return nil, err
		}
		out = append(out, inv)
	}
	return out, nil
}

// Invoice returns one invoice or credit note. Errors: ENOTFOUND.
func (s *Store) Invoice(ctx context.Context, id fablab.ID) (fablab.Invoice, error) {
	var inv fablab.Invoice
	err := s.view(ctx, func(tx *bbolt.Tx) (err error) {
		inv, err = getInvoice(tx, id)
		return err
	})
	return inv, err
}

// InvoiceFilter selects invoices: one payer's, or every one, issued in
// [From, To) (zero: no bound).
type InvoiceFilter struct {
	Payer    *fablab.Payer
	From, To time.Time
	Period   string // YYYY-MM: only the monthly invoices of that period
}

// Invoices lists invoices and credit notes, newest first for one payer,
// by id otherwise.
func (s *Store) Invoices(ctx context.Context, f InvoiceFilter) ([]fablab.Invoice, error) {
	out := []fablab.Invoice{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		out = out[:0]
		keep := func(inv fablab.Invoice) bool {
			return (f.From.IsZero() || !inv.IssuedAt.Before(f.From)) && (f.To.IsZero() || inv.IssuedAt.Before(f.To))
		}
		switch {
		case f.Period != "":
			p, err := fablab.ParsePeriod(f.Period)
			if err != nil {
				return err
			}
			invs, err := periodInvoices(tx, p)
			for _, inv := range invs {
				if f.Payer == nil || inv.Payer == *f.Payer {
					out = append(out, inv)
				}
			}
			return err
		case f.Payer != nil:
			prefix := payerKey(*f.Payer)
			c := tx.Bucket(bInvoicesPayer).Cursor()
			for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
				inv, err := getInvoice(tx, btoi(k[17:25]))
				if err != nil {
					return err
				}
				if keep(inv) {
					out = append(out, inv)
				}
			}
			slices.Reverse(out)
			return nil
		default:
			return tx.Bucket(bInvoices).ForEach(func(_, v []byte) error {
				var inv fablab.Invoice
				if err := getJSONBytes(v, &inv); err != nil {
					return err
				}
				if keep(inv) {
					out = append(out, inv)
				}
				return nil
			})
		}
	})
	return out, err
}

// creditedOf returns the credit notes issued against an invoice.
func creditedOf(tx *bbolt.Tx, id fablab.ID) ([]fablab.Invoice, error) {
	var out []fablab.Invoice
	prefix := itob(id)
	c := tx.Bucket(bInvoiceCredits).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		cn, err := getInvoice(tx, btoi(k[8:16]))
		if err != nil {
			return nil, err
		}
		out = append(out, cn)
	}
	return out, nil
}

// CreditNote issues a credit note against invoice id for amount cents
// excluding VAT at the VAT rate rate (basis points; the invoice's own when
// it has one rate and rate is negative), with a reason. The ledger gets a
// credit line for it, already invoiced (by the credit note). Errors:
// ENOTFOUND, EINVALID (a credit note of a credit note, an amount not
// positive or larger than what is left of the invoice at that rate).
func (s *Store) CreditNote(ctx context.Context, id fablab.ID, amount int64, rate int, reason string, by fablab.ID) (fablab.Invoice, error) {
	reason = strings.TrimSpace(reason)
	if amount <= 0 {
		return fablab.Invoice{}, fablab.Errorf(fablab.EINVALID, "amount_cents must be a positive amount excluding VAT to credit").On("amount_cents").Say("problem_credit_amount")
	}
	if reason == "" || len(reason) > 500 {
		return fablab.Invoice{}, fablab.Errorf(fablab.EINVALID, "reason must say why, in 1–500 characters").On("reason").Say("problem_credit_reason")
	}
	now := s.now()
	var out fablab.Invoice
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		inv, err := getInvoice(tx, id)
		if err != nil {
			return err
		}
		if inv.Kind != fablab.InvoiceKindInvoice {
			return fablab.Errorf(fablab.EINVALID, "%s is a credit note: credit the invoice it corrects", inv.Number).Say("problem_credit_of_credit_note", "Number", inv.Number)
		}
		if rate < 0 {
			if len(inv.VAT) != 1 {
				return fablab.Errorf(fablab.EINVALID, "invoice %s has several VAT rates: give vat_rate_bp, one of its rates", inv.Number).On("vat_rate_bp").
					Say("problem_credit_vat_needed", "Number", inv.Number)
			}
			rate = inv.VAT[0].RateBP
		}
		var base int64 = -1
		for _, v := range inv.VAT {
			if v.RateBP == rate {
				base = v.BaseCents
			}
		}
		if base < 0 {
			return fablab.Errorf(fablab.EINVALID, "invoice %s has no line at VAT rate %d bp", inv.Number, rate).On("vat_rate_bp").
				Say("problem_credit_vat_rate", "Number", inv.Number, "Rate", fablab.VATRate(rate))
		}
		credits, err := creditedOf(tx, id)
		if err != nil {
			return err
		}
		for _, cn := range credits {
			for _, l := range cn.Lines {
				if l.VATRateBP == rate {
					base -= l.AmountCents
				}
			}
		}
		if amount > base {
			return fablab.Errorf(fablab.EINVALID, "a credit of %s exceeds what is left of invoice %s at that rate: %s excluding VAT", fablab.FormatDecimal(amount), inv.Number, fablab.FormatDecimal(base)).On("amount_cents").
				Say("problem_credit_exceeds", "Amount", fablab.Money{Cents: amount, Currency: inv.Currency}, "Number", inv.Number, "Left", fablab.Money{Cents: base, Currency: inv.Currency})
		}
		st, err := loadSettings(tx)
		if err != nil {
			return err
		}
		cn := inv
		cn.ID, cn.Number, cn.Kind, cn.Corrects, cn.Reason = 0, "", fablab.InvoiceKindCreditNote, inv.ID, reason
		cn.IssuedAt, cn.DueAt = now.UTC(), now.UTC()
		cn.Seller = seller(st)
		// The ledger's credit line, taken by the credit note at once.
		ledger := fablab.Charge{Kind: fablab.ChargeCorrection, Payer: inv.Payer, AmountCents: -amount, VATRateBP: rate, At: now, Note: "avoir sur " + inv.Number + " : " + reason}
		if len(inv.Lines) > 0 {
			if first, err := getCharge(tx, inv.Lines[0].ChargeID); err == nil {
				ledger.MemberID = first.MemberID
			}
		}
		if err := putCharge(tx, &ledger, now); err != nil {
			return err
		}
		if err := tx.Bucket(bChargesUninvoiced).Delete(cat(payerKey(ledger.Payer), tkey(ledger.At), itob(ledger.ID))); err != nil {
			return err
		}
		cn.Lines = []fablab.InvoiceLine{{ChargeID: ledger.ID, Description: "Avoir sur la facture " + inv.Number + " — " + reason, At: now.UTC(), UnitCents: amount, AmountCents: amount, VATRateBP: rate}}
		cn.Totals()
		if cn.TotalVATCents != 0 {
			cn.VATMention = ""
		}
		if err := issueInTx(tx, &cn, st); err != nil {
			return err
		}
		if err := tx.Bucket(bInvoiceCharges).Put(itob(ledger.ID), itob(cn.ID)); err != nil {
			return err
		}
		if err := tx.Bucket(bInvoiceCredits).Put(cat(itob(inv.ID), itob(cn.ID)), nil); err != nil {
			return err
		}
		out = cn
		return appendAudit(tx, []fablab.AuditEvent{{
			At: now, Kind: fablab.AuditAPI, Action: "credit_note_issued", ActorID: by,
			Detail: map[string]any{"invoice": inv.Number, "credit_note": cn.Number, "amount_cents": amount, "reason": reason},
		}})
	})
	return out, err
}

// InvoiceState is what happened to an invoice since it was issued.
type InvoiceState struct {
	Credits []fablab.Invoice `json:"credit_notes"`
	Payment *fablab.Payment  `json:"payment,omitempty"`
	// DueCents is what is left to pay, VAT included: the total less the
	// credit notes (0 once paid, and for a credit note).
	DueCents int64 `json:"due_cents"`
}

// InvoiceState returns an invoice's credit notes, payment and amount due.
func (s *Store) InvoiceState(ctx context.Context, id fablab.ID) (InvoiceState, error) {
	var st InvoiceState
	err := s.view(ctx, func(tx *bbolt.Tx) (err error) {
		st, err = invoiceState(tx, id)
		return err
	})
	return st, err
}

func invoiceState(tx *bbolt.Tx, id fablab.ID) (InvoiceState, error) {
	var st InvoiceState
	inv, err := getInvoice(tx, id)
	if err != nil {
		return st, err
	}
	if inv.Kind != fablab.InvoiceKindInvoice {
		return st, nil
	}
	if st.Credits, err = creditedOf(tx, id); err != nil {
		return st, err
	}
	st.DueCents = inv.TotalInclCents
	for _, cn := range st.Credits {
		st.DueCents -= cn.TotalInclCents
	}
	if raw := tx.Bucket(bPayments).Get(itob(id)); raw != nil {
		var p fablab.Payment
		if err := getJSONBytes(raw, &p); err != nil {
			return st, err
		}
		st.Payment, st.DueCents = &p, 0
	}
	return st, nil
}

// MarkPaid records that invoice id was paid in full (what is left of it
// after its credit notes) on a lab date, by a method. Errors: ENOTFOUND,
// ECONFLICT (paid already), EINVALID (a credit note; a method or date that
// does not parse; a date in the future).
func (s *Store) MarkPaid(ctx context.Context, id fablab.ID, paidOn fablab.Date, method, reference string, by fablab.ID) (fablab.Payment, error) {
	if !slices.Contains(fablab.PaymentMethods, method) {
		return fablab.Payment{}, fablab.Errorf(fablab.EINVALID, "method %q must be one of %s", fablab.Truncate(method, 40), strings.Join(fablab.PaymentMethods, ", ")).On("method").Say("problem_payment_method")
	}
	if len(reference) > 200 {
		return fablab.Payment{}, fablab.Errorf(fablab.EINVALID, "reference is limited to 200 characters").On("reference").Say("problem_payment_reference")
	}
	now := s.now()
	var out fablab.Payment
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		inv, err := getInvoice(tx, id)
		if err != nil {
			return err
		}
		if inv.Kind != fablab.InvoiceKindInvoice {
			return fablab.Errorf(fablab.EINVALID, "%s is a credit note: only invoices are paid", inv.Number).Say("problem_pay_credit_note", "Number", inv.Number)
		}
		st, err := loadSettings(tx)
		if err != nil {
			return err
		}
		today := fablab.DateOf(now.In(st.Location()))
		if today.Before(paidOn) {
			return fablab.Errorf(fablab.EINVALID, "paid_on %s is in the future (today is %s)", paidOn, today).On("paid_on").
				Say("problem_paid_in_future", "PaidOn", paidOn, "Today", today)
		}
		if issued := fablab.DateOf(inv.IssuedAt.In(st.Location())); paidOn.Before(issued) {
			return fablab.Errorf(fablab.EINVALID, "paid_on %s is before the invoice was issued", paidOn).On("paid_on").
				Say("problem_paid_before_issue", "PaidOn", paidOn, "Issued", issued)
		}
		state, err := invoiceState(tx, id)
		if err != nil {
			return err
		}
		if state.Payment != nil {
			var paidOn any = state.Payment.PaidOn
			if d, perr := fablab.ParseDate(state.Payment.PaidOn); perr == nil {
				paidOn = d
			}
			return fablab.Errorf(fablab.ECONFLICT, "invoice %s was paid already, on %s (%s)", inv.Number, state.Payment.PaidOn, state.Payment.Method).
				Say("problem_paid_already", "Number", inv.Number, "PaidOn", paidOn)
		}
		out = fablab.Payment{InvoiceID: id, PaidOn: paidOn.String(), Method: method, Reference: reference, AmountCents: state.DueCents, RecordedBy: by, RecordedAt: now.UTC()}
		if err := putJSON(tx.Bucket(bPayments), itob(id), out); err != nil {
			return err
		}
		return appendAudit(tx, []fablab.AuditEvent{{
			At: now, Kind: fablab.AuditAPI, Action: "invoice_paid", ActorID: by,
			Detail: map[string]any{"invoice": inv.Number, "amount_cents": out.AmountCents, "method": method},
		}})
	})
	return out, err
}

// Balance is what a payer owes: invoices less credit notes and payments,
// VAT included, and what is charged but not invoiced yet (excluding VAT).
type Balance struct {
	Payer            fablab.Payer `json:"payer"`
	InvoicedCents    int64        `json:"invoiced_cents"`
	CreditedCents    int64        `json:"credited_cents"`
	PaidCents        int64        `json:"paid_cents"`
	OutstandingCents int64        `json:"outstanding_cents"`
	UninvoicedCents  int64        `json:"uninvoiced_cents"`
}

// PayerBalance returns a payer's balance.
func (s *Store) PayerBalance(ctx context.Context, p fablab.Payer) (Balance, error) {
	b := Balance{Payer: p}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		b = Balance{Payer: p}
		if _, err := buyer(tx, p); err != nil {
			return err // no such member or organisation
		}
		prefix := payerKey(p)
		c := tx.Bucket(bInvoicesPayer).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			inv, err := getInvoice(tx, btoi(k[17:25]))
			if err != nil {
				return err
			}
			if inv.Kind == fablab.InvoiceKindCreditNote {
				b.CreditedCents += inv.TotalInclCents
				continue
			}
			b.InvoicedCents += inv.TotalInclCents
			if raw := tx.Bucket(bPayments).Get(itob(inv.ID)); raw != nil {
				var pay fablab.Payment
				if err := getJSONBytes(raw, &pay); err != nil {
					return err
				}
				b.PaidCents += pay.AmountCents
			}
		}
		b.OutstandingCents = b.InvoicedCents - b.CreditedCents - b.PaidCents
		u := tx.Bucket(bChargesUninvoiced).Cursor()
		for k, _ := u.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = u.Next() {
			ch, err := getCharge(tx, btoi(k[17:25]))
			if err != nil {
				return err
			}
			b.UninvoicedCents += ch.AmountCents
		}
		return nil
	})
	return b, err
}

// InvoiceOfCharge returns the invoice that took a charge (0: none yet).
func (s *Store) InvoiceOfCharge(ctx context.Context, charge fablab.ID) (fablab.ID, error) {
	var id fablab.ID
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		if v := tx.Bucket(bInvoiceCharges).Get(itob(charge)); len(v) == 8 {
			id = btoi(v)
		}
		return nil
	})
	return id, err
}

// kInvoicingSince is the meta/ key holding when the lab started invoicing
// monthly (Unix seconds): the monthly run catches up on the months that
// ended since then, never on the months before FabGate billed anything.
var kInvoicingSince = []byte("invoicing_since")

// InvoicingSince returns when monthly invoicing started, recording now the
// first time it is asked.
func (s *Store) InvoicingSince(ctx context.Context, now time.Time) (time.Time, error) {
	var since time.Time
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		if v := tx.Bucket(bMeta).Get(kInvoicingSince); len(v) == 8 {
			since = time.Unix(int64(binary.BigEndian.Uint64(v)), 0).UTC()
		}
		return nil
	})
	if err != nil || !since.IsZero() {
		return since, err
	}
	err = s.update(ctx, func(tx *bbolt.Tx) error {
		m := tx.Bucket(bMeta)
		if v := m.Get(kInvoicingSince); len(v) == 8 {
			since = time.Unix(int64(binary.BigEndian.Uint64(v)), 0).UTC()
			return nil
		}
		since = now.UTC().Truncate(time.Second)
		return m.Put(kInvoicingSince, u64(uint64(since.Unix())))
	})
	return since, err
}
