package httpapi

import (
	"cmp"
	"context"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/i18n"
)

// The billing pages: a maker's charges, balance and invoices (/charges),
// and for staff the invoices (/staff/invoices: run a month, list, CSV) and
// one invoice (/staff/invoices/:id: its lines, credit notes and payment,
// with the forms that credit it and mark it paid). They read the store
// with the billing API's visibility rules (a maker sees the charges of
// their own use and the invoices addressed to them); every change — an
// invoice run, a credit note, a payment — goes through the JSON API from
// the browser (internal/httpapi/billing.go).

// billingPages registers the billing pages on the makers' and the staff's
// page groups.
func (s *Server) billingPages(maker, staff *gin.RouterGroup) {
	maker.GET("/charges", s.cached(s.chargesPage))
	staff.GET("/staff/invoices", s.cached(s.invoicesPage))
	staff.GET("/staff/invoices/:id", s.cached(s.invoicePage))
}

// How much of a maker's ledger /charges shows: the current month and the
// five before it, the latest pageCharges lines (the API and the invoices
// have the rest).
const (
	pageChargeMonths = 6
	pageCharges      = 300
	pageInvoices     = 200 // invoices listed on /staff/invoices
)

// invoicePDF and invoiceXML are where an invoice's documents are served.
func invoicePDF(id fablab.ID) string { return "/api/v1/invoices/" + id.String() + "/pdf" }
func invoiceXML(id fablab.ID) string { return "/api/v1/invoices/" + id.String() + "/xml" }

// PeriodName names a month (YYYY-MM) in the page's language: "February
// 2026", "février 2026".
func (v *view) PeriodName(period string) string {
	p, err := fablab.ParsePeriod(period)
	if err != nil {
		return period
	}
	return periodName(v.cat, v.Lang, p)
}

// periodName names month p in lang.
func periodName(cat *i18n.Catalog, lang string, p fablab.Period) string {
	return cat.T(lang, "bill_month_"+strconv.Itoa(int(p.Month))) + " " + strconv.Itoa(p.Year)
}

// VATPercent writes a VAT rate in basis points as a percent: "20 %", "5.5 %".
func (v *view) VATPercent(bp int) string { return vatPercentIn(v.Lang, bp) }

// vatPercentIn writes a VAT rate in basis points as a percent in lang:
// "5,5 %" (fr), "5.5 %" (en).
func vatPercentIn(lang string, bp int) string {
	if lang == "fr" {
		return vatPercentFr(bp) + "\u00a0%"
	}
	return vatPercent(bp) + "\u00a0%"
}

func vatPercentFr(bp int) string {
	s := []byte(vatPercent(bp))
	for i, c := range s {
		if c == '.' {
			s[i] = ','
		}
	}
	return string(s)
}

// chargeRow is one line of a maker's ledger, its texts in the page's
// language.
type chargeRow struct {
	Charge           fablab.Charge
	When, WhenISO    string
	Machine          string
	Minutes, Prepaid string
	Amount           string
	// What the line is: a use, a no-show fee (the booking was released), a
	// correction or a credit note; Free says why a use cost nothing.
	What, Free string
	NoShow     bool
	Correction bool
}

// invoiceRow is an invoice with what happened to it, its texts in the
// page's language.
type invoiceRow struct {
	Invoice        fablab.Invoice
	State          bolt.InvoiceState
	Issued, Due    string
	IssuedISO      string
	Period         string
	Total, Left    string
	Status, Class  string // the status in words and its badge's class
	PDF, XML, Page string
	// PDFLabel and XMLLabel name the documents ("Invoice FG-2026-000001
	// as PDF"), for the links' accessible names.
	PDFLabel, XMLLabel string
}

// invoiceStatus says where an invoice stands: a credit note; paid; wholly
// credited; overdue; due.
func invoiceStatus(v *view, inv *fablab.Invoice, st *bolt.InvoiceState) (text, class string) {
	switch {
	case inv.Kind == fablab.InvoiceKindCreditNote:
		return v.T("bill_status_credit_note"), "state-offline"
	case st.Payment != nil:
		return v.T("bill_status_paid"), "state-available"
	case st.DueCents <= 0:
		return v.T("bill_status_credited"), "state-offline"
	case v.now.After(inv.DueAt):
		return v.T("bill_status_overdue"), "state-maintenance"
	}
	return v.T("bill_status_due"), "state-in_use"
}

// newInvoiceRow prepares an invoice's row for view v.
func newInvoiceRow(v *view, inv fablab.Invoice, st bolt.InvoiceState) invoiceRow {
	r := invoiceRow{Invoice: inv, State: st, Issued: v.Date(inv.IssuedAt), IssuedISO: v.ISO(inv.IssuedAt), Due: v.Date(inv.DueAt),
		Period: v.PeriodName(inv.Period), Total: v.Money(inv.TotalInclCents), Left: v.Money(st.DueCents),
		PDF: invoicePDF(inv.ID), XML: invoiceXML(inv.ID), Page: "/staff/invoices/" + inv.ID.String()}
	r.Status, r.Class = invoiceStatus(v, &inv, &st)
	doc := "bill_"
	if inv.Kind == fablab.InvoiceKindCreditNote {
		doc = "bill_cn_"
	}
	r.PDFLabel, r.XMLLabel = v.T(doc+"pdf_of", "Number", inv.Number), v.T(doc+"xml_of", "Number", inv.Number)
	return r
}

// invoiceRows reads the state of each invoice and prepares its row.
func (s *Server) invoiceRows(ctx context.Context, v *view, invs []fablab.Invoice) ([]invoiceRow, error) {
	rows := make([]invoiceRow, 0, len(invs))
	for _, inv := range invs {
		st, err := s.store.InvoiceState(ctx, inv.ID)
		if err != nil {
			return nil, err
		}
		rows = append(rows, newInvoiceRow(v, inv, st))
	}
	return rows, nil
}

// chargesPageData is what a maker's charges page shows.
type chargesPageData struct {
	PrepaidMinutes string
	Balance        bolt.Balance
	Since          string // the first day the charges are listed from
	Charges        []chargeRow
	More           bool // older lines of the months shown are left out
	Invoices       []invoiceRow
}

// chargesPage shows my prepaid minutes and what I owe, the charges of my
// use over the last months and the invoices addressed to me.
func (s *Server) chargesPage(c *gin.Context) {
	ctx := c.Request.Context()
	me := member(c)
	v, err := s.newView(c, "charges", "bill_charges_title", nil)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	mine := fablab.Payer{Kind: fablab.PayerIsMember, ID: me.ID}
	d := chargesPageData{PrepaidMinutes: v.Minutes(int(me.PrepaidMinutes))}
	if d.Balance, err = s.store.PayerBalance(ctx, mine); err != nil {
		s.pageFail(c, err)
		return
	}
	loc := v.Lab.Location()
	first := fablab.PeriodOf(v.now, loc)
	for range pageChargeMonths - 1 {
		first = first.Prev()
	}
	since := first.Start(loc)
	d.Since = v.Date(since)
	charges, err := s.store.Charges(ctx, bolt.ChargeFilter{MemberID: me.ID, From: since, To: v.now.Add(24 * time.Hour)})
	if err != nil {
		s.pageFail(c, err)
		return
	}
	if len(charges) > pageCharges {
		charges, d.More = charges[len(charges)-pageCharges:], true
	}
	names, err := s.machineNames(ctx)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	d.Charges = make([]chargeRow, 0, len(charges))
	for i := len(charges) - 1; i >= 0; i-- { // latest first
		d.Charges = append(d.Charges, newChargeRow(v, charges[i], names))
	}
	invs, err := s.store.Invoices(ctx, bolt.InvoiceFilter{Payer: &mine})
	if err != nil {
		s.pageFail(c, err)
		return
	}
	if d.Invoices, err = s.invoiceRows(ctx, v, invs); err != nil {
		s.pageFail(c, err)
		return
	}
	v.Data = d
	s.write(c, http.StatusOK, v)
}

// newChargeRow prepares a ledger line for view v.
func newChargeRow(v *view, ch fablab.Charge, machines map[fablab.ID]string) chargeRow {
	r := chargeRow{Charge: ch, When: v.DateTime(ch.At), WhenISO: v.ISO(ch.At), Machine: machines[ch.MachineID],
		Amount: v.Money(ch.AmountCents)}
	switch ch.Kind {
	case fablab.ChargeSession:
		r.What = v.T("bill_kind_session")
		r.Minutes = v.Minutes(int(ch.Minutes))
		if ch.PrepaidMinutes > 0 {
			r.Prepaid = v.Minutes(int(ch.PrepaidMinutes))
		}
	case fablab.ChargeNoShow:
		r.What, r.NoShow = v.T("bill_kind_no_show"), true
	case fablab.ChargeCorrection:
		r.Correction = true
		r.What = v.T("bill_kind_correction")
		if ch.Corrects == 0 && ch.MachineID == 0 {
			r.What = v.T("bill_kind_credit_note")
		}
	default:
		r.What = ch.Kind
	}
	if ch.Free != "" {
		r.Free = v.TOr("bill_free_"+ch.Free, ch.Free)
	}
	return r
}

// payerOption is a payer the invoices page can filter by.
type payerOption struct {
	Value, Name string
	Selected    bool
}

// invoicesPageData is what the staff's invoices page shows.
type invoicesPageData struct {
	Period, PeriodName string // the filter ("" all)
	Payer              string // the filter ("" all)
	Payers             []payerOption
	Rows               template.HTML
	Count, Shown       int
	// RunPeriod is the month the run form proposes: the last one ended.
	RunPeriod string
	// Ran: the page follows an invoice run of Period (Created: it issued
	// the invoices; else they had been issued before).
	Ran, Created bool
	// CSVPeriod is the month the CSV links export, with the links.
	CSVPeriod, CSVPeriodName string
	ChargesCSV, InvoicesCSV  string
}

// invoicesPage lists the invoices (by month and payer), runs a month's
// invoices and links the month's charges and invoices as CSV.
func (s *Server) invoicesPage(c *gin.Context) {
	ctx := c.Request.Context()
	v, err := s.newView(c, "invoices", "bill_invoices_title", nil)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	loc := v.Lab.Location()
	last := fablab.PeriodOf(v.now, loc).Prev()
	d := invoicesPageData{RunPeriod: last.String()}
	f := bolt.InvoiceFilter{}
	if p := c.Query("period"); p != "" {
		period, err := fablab.ParsePeriod(p)
		if err != nil {
			s.pageFail(c, err)
			return
		}
		d.Period, d.PeriodName, f.Period = period.String(), v.PeriodName(period.String()), period.String()
		_, d.Ran = c.GetQuery("ran")
		d.Created = c.Query("ran") == "true"
	}
	payer, err := queryPayer(c)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	invs, err := s.store.Invoices(ctx, f)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	// The payers to filter by are those of the month's (or all) invoices.
	seen := map[fablab.Payer]bool{}
	kept := invs[:0:0]
	for _, inv := range invs {
		if !seen[inv.Payer] {
			seen[inv.Payer] = true
			d.Payers = append(d.Payers, payerOption{Value: inv.Payer.String(), Name: inv.Buyer.Name, Selected: payer != nil && inv.Payer == *payer})
		}
		if payer == nil || inv.Payer == *payer {
			kept = append(kept, inv)
		}
	}
	if payer != nil {
		d.Payer = payer.String()
		if !seen[*payer] {
			d.Payers = append(d.Payers, payerOption{Value: payer.String(), Name: payer.String(), Selected: true})
		}
	}
	slices.SortFunc(d.Payers, func(a, b payerOption) int { return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Value, b.Value)) })
	slices.SortStableFunc(kept, func(a, b fablab.Invoice) int { return b.IssuedAt.Compare(a.IssuedAt) }) // newest first
	d.Count = len(kept)
	if len(kept) > pageInvoices {
		kept = kept[:pageInvoices]
	}
	d.Shown = len(kept)
	rows, err := s.invoiceRows(ctx, v, kept)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	d.Rows = staffInvoiceRows(v, rows)

	csv := last
	if d.Period != "" {
		csv, _ = fablab.ParsePeriod(d.Period)
	}
	d.CSVPeriod, d.CSVPeriodName = csv.String(), v.PeriodName(csv.String())
	d.ChargesCSV = "/api/v1/charges?" + url.Values{"format": {"csv"},
		"from": {csv.Start(loc).Format(time.RFC3339)}, "to": {csv.End(loc).Format(time.RFC3339)}}.Encode()
	d.InvoicesCSV = "/api/v1/invoices?" + url.Values{"format": {"csv"}, "period": {csv.String()}}.Encode()
	v.Data = d
	s.write(c, http.StatusOK, v)
}

// staffInvoiceRows writes the rows of the invoices list (a lab's year is
// hundreds of them).
func staffInvoiceRows(v *view, rows []invoiceRow) template.HTML {
	var r htmlRows
	cNumber, cPayer, cDate, cPeriod := v.T("bill_col_number"), v.T("bill_col_payer"), v.T("bill_col_date"), v.T("bill_col_period")
	cTotal, cDue, cStatus := v.T("bill_col_total"), v.T("bill_col_due"), v.T("bill_col_status")
	for _, row := range rows {
		inv := &row.Invoice
		r.raw(`<tr data-invoice="`, inv.ID.String(), `">`)
		r.cell(cNumber, func() {
			r.raw(`<a href="`, row.Page, `">`)
			r.text(inv.Number)
			r.raw(`</a>`)
		})
		r.cell(cPayer, func() {
			r.text(inv.Buyer.Name)
			r.raw(` <span class="muted">`)
			r.text(inv.Payer.String())
			r.raw(`</span>`)
		})
		r.cell(cDate, func() {
			r.raw(`<time datetime="`, row.IssuedISO, `">`)
			r.text(row.Issued)
			r.raw(`</time>`)
		})
		r.cell(cPeriod, func() { r.text(row.Period) })
		r.cell(cTotal, func() { r.text(row.Total) })
		r.cell(cDue, func() {
			if inv.Kind == fablab.InvoiceKindInvoice {
				r.text(row.Left)
			}
		})
		r.cell(cStatus, func() {
			r.raw(`<span class="badge `, row.Class, `">`)
			r.text(row.Status)
			r.raw(`</span>`)
		})
		r.raw("</tr>\n")
	}
	return r.html()
}

// invoiceLineRow is one line of an invoice, its texts in the page's
// language.
type invoiceLineRow struct {
	Line                  fablab.InvoiceLine
	Date, Minutes         string
	Unit, Amount, VATRate string
}

// rateLeft is what can still be credited of an invoice at one VAT rate.
type rateLeft struct {
	RateBP    int
	Rate      string
	LeftCents int64
	Left      string
}

// invoicePageData is what an invoice's page shows.
type invoicePageData struct {
	Row      invoiceRow
	Lines    []invoiceLineRow
	VAT      []rateLeft // the invoice's VAT lines (Left: the VAT amount)
	Corrects *fablab.Invoice
	Credits  []invoiceRow
	Payment  *fablab.Payment
	PaidOn   string
	// The forms: what is left to credit per rate, the payment methods, and
	// the dates a payment may have (issue day to today, in the lab's zone).
	Left      []rateLeft
	CanCredit bool
	CanPay    bool
	Methods   []string
	Today     string
	IssuedDay string
	PayerURL  string // the payer's page, when a member
}

// invoicePage shows one invoice or credit note with its credit notes and
// payment, and the forms that credit it and mark it paid.
func (s *Server) invoicePage(c *gin.Context) {
	ctx := c.Request.Context()
	id, err := pathID(c, "id")
	if err != nil {
		s.pageFail(c, err)
		return
	}
	inv, err := s.store.Invoice(ctx, id)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	st, err := s.store.InvoiceState(ctx, id)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	v, err := s.newView(c, "invoice", "", nil)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	loc := v.Lab.Location()
	title := "bill_invoice_title"
	if inv.Kind == fablab.InvoiceKindCreditNote {
		title = "bill_credit_note_title"
	}
	v.Title = v.T(title, "Number", inv.Number)
	d := invoicePageData{Row: newInvoiceRow(v, inv, st), Payment: st.Payment, Methods: fablab.PaymentMethods,
		Today: v.now.In(loc).Format(time.DateOnly), IssuedDay: inv.IssuedAt.In(loc).Format(time.DateOnly)}
	if inv.Payer.Kind == fablab.PayerIsMember {
		d.PayerURL = "/staff/members/" + inv.Payer.ID.String()
	}
	for _, l := range inv.Lines {
		row := invoiceLineRow{Line: l, Date: v.Date(l.At), Unit: v.Money(l.UnitCents), Amount: v.Money(l.AmountCents), VATRate: v.VATPercent(l.VATRateBP)}
		if l.Minutes > 0 {
			row.Minutes = v.Minutes(int(l.Minutes))
		}
		d.Lines = append(d.Lines, row)
	}
	for _, vl := range inv.VAT {
		d.VAT = append(d.VAT, rateLeft{RateBP: vl.RateBP, Rate: v.VATPercent(vl.RateBP), LeftCents: vl.BaseCents, Left: v.Money(vl.VATCents)})
	}
	if st.Payment != nil {
		if day, err := fablab.ParseDate(st.Payment.PaidOn); err == nil {
			d.PaidOn = v.Date(time.Date(day.Year, day.Month, day.Day, 12, 0, 0, 0, loc))
		}
	}
	if inv.Corrects != 0 {
		orig, err := s.store.Invoice(ctx, inv.Corrects)
		if err != nil && fablab.ErrorCode(err) != fablab.ENOTFOUND {
			s.pageFail(c, err)
			return
		}
		if err == nil {
			d.Corrects = &orig
		}
	}
	for _, cn := range st.Credits {
		d.Credits = append(d.Credits, newInvoiceRow(v, cn, bolt.InvoiceState{}))
	}
	if inv.Kind == fablab.InvoiceKindInvoice {
		// What is left to credit at each rate: the store's rule, shown.
		for _, vl := range inv.VAT {
			left := vl.BaseCents
			for _, cn := range st.Credits {
				for _, l := range cn.Lines {
					if l.VATRateBP == vl.RateBP {
						left -= l.AmountCents
					}
				}
			}
			d.Left = append(d.Left, rateLeft{RateBP: vl.RateBP, Rate: v.VATPercent(vl.RateBP), LeftCents: left, Left: v.Money(left)})
			d.CanCredit = d.CanCredit || left > 0
		}
		d.CanPay = st.Payment == nil
	}
	v.Data = d
	s.write(c, http.StatusOK, v)
}
