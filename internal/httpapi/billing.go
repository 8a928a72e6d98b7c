package httpapi

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/invoice"
)

// Billing: the ledger of charges, invoices, credit notes, payments and
// balances. The rules live in the store (internal/bolt/charges.go,
// invoices.go) and in fablab.SessionCharge; these handlers check who may
// see and do what. A maker sees their own charges, the invoices addressed
// to them and their balance; staff see and run everything.

// billingRoutes registers the billing API on the role groups.
func (s *Server) billingRoutes(anyone, staff *gin.RouterGroup) {
	anyone.GET("/charges", s.listCharges)
	staff.POST("/charges/:id/corrections", s.correctCharge)
	anyone.GET("/invoices", s.listInvoices)
	staff.POST("/invoices/run", s.runInvoices)
	anyone.GET("/invoices/:id", s.getInvoice)
	anyone.GET("/invoices/:id/pdf", s.invoiceDocument)
	anyone.GET("/invoices/:id/xml", s.invoiceDocument)
	staff.POST("/invoices/:id/credit-notes", s.creditNote)
	staff.POST("/invoices/:id/payments", s.payInvoice)
	anyone.GET("/me/balance", s.myBalance)
	staff.GET("/balances/:payer", s.payerBalance)
}

// queryPayer reads an optional ?payer=member-12|organisation-3.
func queryPayer(c *gin.Context) (*fablab.Payer, error) {
	v := c.Query("payer")
	if v == "" {
		return nil, nil
	}
	p, err := fablab.ParsePayer(v)
	if err != nil {
		return nil, fablab.Errorf(fablab.EINVALID, "query payer: %s", fablab.ErrorMessage(err)).On("payer").
			Say("problem_payer", "Got", fablab.Truncate(v, 60))
	}
	return &p, nil
}

// listCharges lists charges by the time of their use: a maker's own;
// for staff, everyone's, one member's or one payer's.
// GET /charges?from=&to=&member_id=&payer=&format=json|csv
func (s *Server) listCharges(c *gin.Context) {
	ctx := c.Request.Context()
	me := member(c)
	memberID, err := queryID(c, "member_id")
	if err != nil {
		s.fail(c, err)
		return
	}
	payer, err := queryPayer(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	format, err := reportFormat(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	if !isStaff(c) {
		if memberID != 0 && memberID != me.ID || payer != nil {
			s.fail(c, fablab.Errorf(fablab.EFORBIDDEN, "makers see only their own charges").Say("problem_charges_own"))
			return
		}
		memberID = me.ID
	}
	from, to, err := queryRange(c, s.now().UTC().AddDate(0, -1, 0), 32*24*time.Hour)
	if err != nil {
		s.fail(c, err)
		return
	}
	charges, err := s.store.Charges(ctx, bolt.ChargeFilter{From: from, To: to, MemberID: memberID, Payer: payer, Limit: 100_000})
	if err != nil {
		s.fail(c, err)
		return
	}
	if charges == nil {
		charges = []fablab.Charge{}
	}
	if format == "csv" {
		s.chargesCSV(c, charges)
		return
	}
	c.JSON(http.StatusOK, charges)
}

// chargesCSV writes charges for the accountant: one row per ledger line,
// amounts as decimals excluding VAT.
func (s *Server) chargesCSV(c *gin.Context, charges []fablab.Charge) {
	ctx := c.Request.Context()
	st, err := s.store.Settings(ctx)
	if err != nil {
		s.fail(c, err)
		return
	}
	machines, err := s.machineNames(ctx)
	if err != nil {
		s.fail(c, err)
		return
	}
	ids := make([]fablab.ID, len(charges))
	for i, ch := range charges {
		ids[i] = ch.MemberID
	}
	members, err := s.store.MemberNames(ctx, ids)
	if err != nil {
		s.fail(c, err)
		return
	}
	var buf bytes.Buffer
	if err := writeChargesCSV(&buf, charges, members, machines, st.Location()); err != nil {
		s.fail(c, fablab.Internal(err, "write charges CSV"))
		return
	}
	s.sendCSV(c, "charges.csv", buf.Bytes())
}

// chargesHeader is the header row of writeChargesCSV.
var chargesHeader = []string{"charge_id", "kind", "at", "payer", "member_id", "member", "machine", "session_id", "booking_id", "corrects",
	"tariff_group", "minutes", "prepaid_minutes", "unit_per_hour", "amount_excl_vat", "vat_rate_percent", "free", "note"}

// writeChargesCSV writes a header and one row per charge, with the names
// of members and machines by id and times in loc.
func writeChargesCSV(out io.Writer, charges []fablab.Charge, members, machines map[fablab.ID]string, loc *time.Location) error {
	w := csv.NewWriter(out)
	_ = w.Write(chargesHeader)
	for _, ch := range charges {
		_ = w.Write([]string{
			ch.ID.String(), ch.Kind, ch.At.In(loc).Format(time.RFC3339), ch.Payer.String(), ch.MemberID.String(), csvText(members[ch.MemberID]),
			csvText(machines[ch.MachineID]), idOrEmpty(ch.SessionID), idOrEmpty(ch.BookingID), idOrEmpty(ch.Corrects), csvText(ch.Group),
			strconv.FormatInt(ch.Minutes, 10), strconv.FormatInt(ch.PrepaidMinutes, 10), fablab.FormatDecimal(ch.UnitCents),
			fablab.FormatDecimal(ch.AmountCents), percent(ch.VATRateBP), ch.Free, csvText(ch.Note),
		})
	}
	w.Flush()
	return w.Error()
}

func idOrEmpty(id fablab.ID) string {
	if id == 0 {
		return ""
	}
	return id.String()
}

// percent writes basis points as a percentage: 2000 → "20.00".
func percent(bp int) string { return fablab.FormatDecimal(int64(bp)) }

type correctionRequest struct {
	AmountCents *int64 `json:"amount_cents"`
	Note        string `json:"note"`
}

// correctCharge appends a correction line (a credit when negative) to a
// charge. POST /charges/:id/corrections {amount_cents, note}
func (s *Server) correctCharge(c *gin.Context) {
	id, err := pathID(c, "id")
	if err != nil {
		s.fail(c, err)
		return
	}
	var req correctionRequest
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if req.AmountCents == nil {
		s.fail(c, fablab.Errorf(fablab.EINVALID, "amount_cents is required: the amount to add, negative for a credit").On("amount_cents").
			Say("problem_correction_amount"))
		return
	}
	ch, err := s.store.AddCorrection(c.Request.Context(), id, *req.AmountCents, req.Note, member(c).ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, ch)
}

// listInvoices lists invoices and credit notes: a maker's own (addressed
// to them); for staff, everyone's, one payer's or one period's.
// GET /invoices?payer=&period=&format=json|csv
func (s *Server) listInvoices(c *gin.Context) {
	ctx := c.Request.Context()
	payer, err := queryPayer(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	format, err := reportFormat(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	if !isStaff(c) {
		mine := fablab.Payer{Kind: fablab.PayerIsMember, ID: member(c).ID}
		if payer != nil && *payer != mine {
			s.fail(c, fablab.Errorf(fablab.EFORBIDDEN, "makers see only the invoices addressed to them").Say("problem_invoices_own"))
			return
		}
		payer = &mine
	}
	f := bolt.InvoiceFilter{Payer: payer}
	if p := c.Query("period"); p != "" {
		if _, err := fablab.ParsePeriod(p); err != nil {
			s.fail(c, err)
			return
		}
		f.Period = p
	}
	invs, err := s.store.Invoices(ctx, f)
	if err != nil {
		s.fail(c, err)
		return
	}
	if format == "csv" {
		s.invoicesCSV(c, invs)
		return
	}
	c.JSON(http.StatusOK, invs)
}

// invoicesCSV writes one row per invoice and VAT rate (invoice.InvoicesCSV).
func (s *Server) invoicesCSV(c *gin.Context, invs []fablab.Invoice) {
	st, err := s.store.Settings(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	var buf bytes.Buffer
	if err := invoice.InvoicesCSV(&buf, invs, st.Location()); err != nil {
		s.fail(c, fablab.Internal(err, "write invoices CSV"))
		return
	}
	s.sendCSV(c, "invoices.csv", buf.Bytes())
}

// runInvoices issues a period's invoices: 201 with them, or 200 with the
// invoices the period already had (a second run issues nothing).
// POST /invoices/run?period=YYYY-MM
func (s *Server) runInvoices(c *gin.Context) {
	p := c.Query("period")
	if p == "" {
		s.fail(c, fablab.Errorf(fablab.EINVALID, "period is required: the month to invoice, as YYYY-MM").On("period").Say("problem_period_required"))
		return
	}
	period, err := fablab.ParsePeriod(p)
	if err != nil {
		s.fail(c, err)
		return
	}
	invs, created, err := s.store.RunInvoices(c.Request.Context(), period)
	if err != nil {
		s.fail(c, err)
		return
	}
	if invs == nil {
		invs = []fablab.Invoice{}
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	c.JSON(status, gin.H{"period": period.String(), "created": created, "invoices": invs})
}

// visibleInvoice is the invoice of the :id path parameter, when the
// caller may see it: staff, or the maker it is addressed to (others get
// 404, as for bookings).
func (s *Server) visibleInvoice(c *gin.Context) (fablab.Invoice, error) {
	id, err := pathID(c, "id")
	if err != nil {
		return fablab.Invoice{}, err
	}
	inv, err := s.store.Invoice(c.Request.Context(), id)
	if err != nil {
		return inv, err
	}
	if !isStaff(c) && inv.Payer != (fablab.Payer{Kind: fablab.PayerIsMember, ID: member(c).ID}) {
		return fablab.Invoice{}, fablab.Errorf(fablab.ENOTFOUND, "invoice %s does not exist", id).Say("problem_invoice_not_found", "ID", id.String())
	}
	return inv, nil
}

// getInvoice returns an invoice with what happened to it since: its
// credit notes, its payment and what is left to pay.
func (s *Server) getInvoice(c *gin.Context) {
	inv, err := s.visibleInvoice(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	st, err := s.store.InvoiceState(c.Request.Context(), inv.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	if st.Credits == nil {
		st.Credits = []fablab.Invoice{}
	}
	c.JSON(http.StatusOK, gin.H{"invoice": inv, "state": st})
}

// invoiceDocument writes an invoice or credit note as a PDF
// (GET /invoices/:id/pdf) or as UN/CEFACT CII XML, EN 16931
// (GET /invoices/:id/xml), for the people who may see it.
func (s *Server) invoiceDocument(c *gin.Context) {
	inv, err := s.visibleInvoice(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	ctx := c.Request.Context()
	st, err := s.store.Settings(ctx)
	if err != nil {
		s.fail(c, err)
		return
	}
	var opt invoice.Options
	if inv.Corrects != 0 {
		orig, err := s.store.Invoice(ctx, inv.Corrects)
		if err != nil {
			s.fail(c, err)
			return
		}
		opt.CorrectsNumber = orig.Number
	}
	var buf bytes.Buffer
	render, ext, ctype := invoice.PDF, "pdf", "application/pdf"
	if strings.HasSuffix(c.FullPath(), "/xml") {
		render, ext, ctype = invoice.CII, "xml", "application/xml"
	}
	if err := render(inv, st.Location(), opt, &buf); err != nil {
		s.fail(c, fablab.Internal(err, "render invoice %s", inv.Number))
		return
	}
	c.Header("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.%s"`, inv.Number, ext))
	c.Data(http.StatusOK, ctype, buf.Bytes())
}

type creditNoteRequest struct {
	AmountCents *int64 `json:"amount_cents"`
	VATRateBP   *int   `json:"vat_rate_bp"`
	Reason      string `json:"reason"`
}

// creditNote issues a credit note against an invoice.
// POST /invoices/:id/credit-notes {amount_cents, vat_rate_bp?, reason}
func (s *Server) creditNote(c *gin.Context) {
	id, err := pathID(c, "id")
	if err != nil {
		s.fail(c, err)
		return
	}
	var req creditNoteRequest
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if req.AmountCents == nil {
		s.fail(c, fablab.Errorf(fablab.EINVALID, "amount_cents is required: the amount excluding VAT to credit").On("amount_cents").Say("problem_credit_amount"))
		return
	}
	rate := -1
	if req.VATRateBP != nil {
		if *req.VATRateBP < 0 {
			s.fail(c, fablab.Errorf(fablab.EINVALID, "vat_rate_bp must be one of the invoice's VAT rates in basis points (2000 = 20 %%)").On("vat_rate_bp").
				Say("problem_credit_vat_rate_bp"))
			return
		}
		rate = *req.VATRateBP
	}
	cn, err := s.store.CreditNote(c.Request.Context(), id, *req.AmountCents, rate, req.Reason, member(c).ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, cn)
}

type paymentRequest struct {
	PaidOn    string `json:"paid_on"`
	Method    string `json:"method"`
	Reference string `json:"reference"`
}

// payInvoice records that an invoice was paid.
// POST /invoices/:id/payments {paid_on: YYYY-MM-DD, method, reference?}
func (s *Server) payInvoice(c *gin.Context) {
	id, err := pathID(c, "id")
	if err != nil {
		s.fail(c, err)
		return
	}
	var req paymentRequest
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	on, err := fablab.ParseDate(req.PaidOn)
	if err != nil {
		s.fail(c, fablab.Errorf(fablab.EINVALID, "paid_on %q must be a date as YYYY-MM-DD", fablab.Truncate(req.PaidOn, 40)).On("paid_on").
			Say("problem_paid_on", "Got", fablab.Truncate(req.PaidOn, 40)))
		return
	}
	p, err := s.store.MarkPaid(c.Request.Context(), id, on, req.Method, req.Reference, member(c).ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, p)
}

// myBalance is the caller's prepaid minutes and what they owe as a payer.
func (s *Server) myBalance(c *gin.Context) {
	me := member(c)
	b, err := s.store.PayerBalance(c.Request.Context(), fablab.Payer{Kind: fablab.PayerIsMember, ID: me.ID})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"prepaid_minutes": me.PrepaidMinutes, "balance": b})
}

// payerBalance is a payer's balance. GET /balances/:payer (member-12,
// organisation-3)
func (s *Server) payerBalance(c *gin.Context) {
	p, err := fablab.ParsePayer(c.Param("payer"))
	if err != nil {
		s.fail(c, fablab.Errorf(fablab.ENOTFOUND, "no payer %q: payers are member-<id> or organisation-<id>", fablab.Truncate(c.Param("payer"), 40)).
			Say("problem_payer", "Got", fablab.Truncate(c.Param("payer"), 40)))
		return
	}
	b, err := s.store.PayerBalance(c.Request.Context(), p)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, b)
}
