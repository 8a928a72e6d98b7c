package httpapi

import (
	"bytes"
	"encoding/csv"
	"encoding/xml"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/fablab"
)

// TestAPIChargesVisibility: makers list their own charges only; staff list
// anyone's, and the CSV for the accountant holds the same lines.
func TestAPIChargesVisibility(t *testing.T) {
	h := newAPIHarness(t)
	pa := h.seedUninvoiced(t, h.alice)
	h.seedUninvoiced(t, h.bob)
	enc := func(t time.Time) string { return strings.ReplaceAll(t.Format(time.RFC3339), "+", "%2B") }
	q := "?from=" + enc(pa.Start(apiParis)) + "&to=" + enc(pa.Next().Next().Start(apiParis))

	var mine []fablab.Charge
	r := h.do(t, "GET", "/api/v1/charges"+q, h.alice.Token, nil)
	r.want(t, http.StatusOK, "")
	r.decode(t, &mine)
	if len(mine) != 1 || mine[0].MemberID != h.alice.ID || mine[0].AmountCents != 1200 {
		t.Fatalf("alice's charges: %+v, want her one hour at 12.00", mine)
	}
	h.do(t, "GET", "/api/v1/charges?member_id="+h.bob.ID.String(), h.alice.Token, nil).want(t, http.StatusForbidden, fablab.EFORBIDDEN)
	h.do(t, "GET", "/api/v1/charges?payer=member-"+h.bob.ID.String(), h.alice.Token, nil).want(t, http.StatusForbidden, fablab.EFORBIDDEN)

	var all []fablab.Charge
	r = h.do(t, "GET", "/api/v1/charges"+q, h.staff.Token, nil)
	r.want(t, http.StatusOK, "")
	r.decode(t, &all)
	if len(all) != 2 {
		t.Fatalf("staff see %d charges, want alice's and bob's", len(all))
	}
	r = h.do(t, "GET", "/api/v1/charges"+q+"&format=csv", h.staff.Token, nil)
	r.want(t, http.StatusOK, "")
	rows, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[0][0] != "charge_id" {
		t.Fatalf("CSV: %d rows (%v), want a header and 2 lines", len(rows), rows)
	}
	var sum int64
	col := slicesIndex(rows[0], "amount_excl_vat")
	for _, row := range rows[1:] {
		f, err := strconv.ParseFloat(row[col], 64)
		if err != nil {
			t.Fatal(err)
		}
		sum += int64(f*100 + 0.5)
	}
	if sum != all[0].AmountCents+all[1].AmountCents {
		t.Errorf("CSV amounts sum to %d cents, the ledger to %d", sum, all[0].AmountCents+all[1].AmountCents)
	}
	h.do(t, "GET", "/api/v1/charges?format=xml", h.staff.Token, nil).want(t, http.StatusBadRequest, fablab.EINVALID)

	// A note a spreadsheet would run as a formula is written as text.
	h.do(t, "POST", "/api/v1/charges/"+all[0].ID.String()+"/corrections", h.staff.Token, map[string]any{"amount_cents": -100, "note": "=HYPERLINK(1)"}).want(t, http.StatusCreated, "")
	r = h.do(t, "GET", "/api/v1/charges?format=csv&from=2026-03-01T00:00:00Z&to=2026-04-01T00:00:00Z", h.staff.Token, nil)
	r.want(t, http.StatusOK, "")
	rows, err = csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if err != nil || len(rows) != 2 || rows[1][slicesIndex(rows[0], "note")] != "'=HYPERLINK(1)" {
		t.Errorf("the correction's note in the CSV: %v (%v)", rows, err)
	}
}

func slicesIndex(row []string, name string) int {
	for i, v := range row {
		if v == name {
			return i
		}
	}
	return -1
}

// TestAPIInvoicesBadInput: the refusals of the issue, each a clear 4xx
// that writes nothing.
func TestAPIInvoicesBadInput(t *testing.T) {
	h := newAPIHarness(t)
	p := h.seedUninvoiced(t, h.alice)

	for _, bad := range []string{"", "2026-3", "March", "2026-13", "2026-03-01"} {
		r := h.do(t, "POST", "/api/v1/invoices/run?period="+bad, h.staff.Token, nil)
		r.want(t, http.StatusBadRequest, fablab.EINVALID)
		if pr := r.problem(t); pr.Field != "period" {
			t.Errorf("period %q: field %q, want period", bad, pr.Field)
		}
	}
	// The current month has not ended (the clock is in March 2026).
	r := h.do(t, "POST", "/api/v1/invoices/run?period=2026-03", h.staff.Token, nil)
	r.want(t, http.StatusBadRequest, fablab.EINVALID)
	if !strings.Contains(r.problem(t).Detail, "2026-04-01") {
		t.Errorf("a period not ended should say when it can run: %s", r.problem(t).Detail)
	}

	var first, again struct {
		Created  bool             `json:"created"`
		Invoices []fablab.Invoice `json:"invoices"`
	}
	r = h.do(t, "POST", "/api/v1/invoices/run?period="+p.String(), h.staff.Token, nil)
	r.want(t, http.StatusCreated, "")
	r.decode(t, &first)
	r = h.do(t, "POST", "/api/v1/invoices/run?period="+p.String(), h.staff.Token, nil)
	r.want(t, http.StatusOK, "")
	r.decode(t, &again)
	if !first.Created || again.Created || len(first.Invoices) != 1 || len(again.Invoices) != 1 || again.Invoices[0].Number != first.Invoices[0].Number {
		t.Fatalf("second run: created %v, %d invoices; want the first run's one invoice again", again.Created, len(again.Invoices))
	}
	inv := first.Invoices[0]
	if inv.TotalInclCents != 1200 || inv.Payer.ID != h.alice.ID || !strings.HasPrefix(inv.Number, "FG-") {
		t.Errorf("invoice %+v", inv)
	}
	id := inv.ID.String()

	// A credit note larger than what is left of the invoice.
	before := h.state(t)
	r = h.do(t, "POST", "/api/v1/invoices/"+id+"/credit-notes", h.staff.Token, map[string]any{"amount_cents": 1201, "reason": "too much"})
	r.want(t, http.StatusBadRequest, fablab.EINVALID)
	if r.problem(t).Field != "amount_cents" {
		t.Errorf("credit too large: field %q", r.problem(t).Field)
	}
	h.do(t, "POST", "/api/v1/invoices/"+id+"/credit-notes", h.staff.Token, map[string]any{"amount_cents": -5, "reason": "negative"}).want(t, http.StatusBadRequest, fablab.EINVALID)
	h.do(t, "POST", "/api/v1/invoices/"+id+"/credit-notes", h.staff.Token, map[string]any{"amount_cents": 100}).want(t, http.StatusBadRequest, fablab.EINVALID)
	h.unchanged(t, before)
	var cn fablab.Invoice
	r = h.do(t, "POST", "/api/v1/invoices/"+id+"/credit-notes", h.staff.Token, map[string]any{"amount_cents": 1200, "reason": "machine broken"})
	r.want(t, http.StatusCreated, "")
	r.decode(t, &cn)
	if cn.Kind != fablab.InvoiceKindCreditNote || cn.Corrects != inv.ID || cn.TotalInclCents != 1200 {
		t.Errorf("credit note %+v", cn)
	}
	h.do(t, "POST", "/api/v1/invoices/"+id+"/credit-notes", h.staff.Token, map[string]any{"amount_cents": 1, "reason": "nothing left"}).want(t, http.StatusBadRequest, fablab.EINVALID)

	// Paying: a bad date or method, then twice.
	h.do(t, "POST", "/api/v1/invoices/"+id+"/payments", h.staff.Token, map[string]any{"paid_on": "02/03/2026", "method": "transfer"}).want(t, http.StatusBadRequest, fablab.EINVALID)
	h.do(t, "POST", "/api/v1/invoices/"+id+"/payments", h.staff.Token, map[string]any{"paid_on": "2026-03-02", "method": "bitcoin"}).want(t, http.StatusBadRequest, fablab.EINVALID)
	h.do(t, "POST", "/api/v1/invoices/"+id+"/payments", h.staff.Token, map[string]any{"paid_on": "2027-01-01", "method": "cash"}).want(t, http.StatusBadRequest, fablab.EINVALID)
	h.do(t, "POST", "/api/v1/invoices/"+cn.ID.String()+"/payments", h.staff.Token, map[string]any{"paid_on": "2026-03-02", "method": "cash"}).want(t, http.StatusBadRequest, fablab.EINVALID)
	h.do(t, "POST", "/api/v1/invoices/"+id+"/payments", h.staff.Token, map[string]any{"paid_on": "2026-03-02", "method": "cash"}).want(t, http.StatusCreated, "")
	r = h.do(t, "POST", "/api/v1/invoices/"+id+"/payments", h.staff.Token, map[string]any{"paid_on": "2026-03-02", "method": "cash"})
	r.want(t, http.StatusConflict, fablab.ECONFLICT)
	if !strings.Contains(r.problem(t).Detail, "paid already") {
		t.Errorf("paying twice: %s", r.problem(t).Detail)
	}

	// The invoice and its state; the maker sees it, another maker does not.
	var got struct {
		Invoice fablab.Invoice `json:"invoice"`
		State   struct {
			Credits []fablab.Invoice `json:"credit_notes"`
			Payment *fablab.Payment  `json:"payment"`
			Due     int64            `json:"due_cents"`
		} `json:"state"`
	}
	r = h.do(t, "GET", "/api/v1/invoices/"+id, h.alice.Token, nil)
	r.want(t, http.StatusOK, "")
	r.decode(t, &got)
	if got.Invoice.Number != inv.Number || len(got.State.Credits) != 1 || got.State.Payment == nil || got.State.Due != 0 || got.State.Payment.AmountCents != 0 {
		t.Errorf("state after a full credit and a payment: %+v", got.State)
	}
	h.do(t, "GET", "/api/v1/invoices/"+id, h.bob.Token, nil).want(t, http.StatusNotFound, fablab.ENOTFOUND)
	var list []fablab.Invoice
	r = h.do(t, "GET", "/api/v1/invoices", h.bob.Token, nil)
	r.want(t, http.StatusOK, "")
	r.decode(t, &list)
	if len(list) != 0 {
		t.Errorf("bob lists %d invoices of others", len(list))
	}

	// Balances: alice owes nothing; an unknown payer is 404.
	var bal struct {
		Balance struct {
			Outstanding int64 `json:"outstanding_cents"`
			Invoiced    int64 `json:"invoiced_cents"`
			Credited    int64 `json:"credited_cents"`
		} `json:"balance"`
	}
	r = h.do(t, "GET", "/api/v1/me/balance", h.alice.Token, nil)
	r.want(t, http.StatusOK, "")
	r.decode(t, &bal)
	if bal.Balance.Outstanding != 0 || bal.Balance.Invoiced != 1200 || bal.Balance.Credited != 1200 {
		t.Errorf("alice's balance %+v", bal.Balance)
	}
	h.do(t, "GET", "/api/v1/balances/member-999999", h.staff.Token, nil).want(t, http.StatusNotFound, fablab.ENOTFOUND)
	h.do(t, "GET", "/api/v1/balances/somebody", h.staff.Token, nil).want(t, http.StatusNotFound, fablab.ENOTFOUND)

	// CSV of invoices: one row per invoice and rate.
	r = h.do(t, "GET", "/api/v1/invoices?format=csv", h.staff.Token, nil)
	r.want(t, http.StatusOK, "")
	rows, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if err != nil || len(rows) != 3 {
		t.Fatalf("invoices CSV: %v rows, %v", len(rows), err)
	}
}

// TestAPIChargeCorrection: a correction is a line of its own; the charge
// is never edited, and may not be credited below zero.
func TestAPIChargeCorrection(t *testing.T) {
	h := newAPIHarness(t)
	inv := h.seedInvoice(t, h.alice)
	id := inv.Lines[0].ChargeID.String()
	before := h.state(t)
	h.do(t, "POST", "/api/v1/charges/"+id+"/corrections", h.staff.Token, map[string]any{"amount_cents": -1201, "note": "too much"}).want(t, http.StatusBadRequest, fablab.EINVALID)
	h.do(t, "POST", "/api/v1/charges/"+id+"/corrections", h.staff.Token, map[string]any{"amount_cents": 0, "note": "zero"}).want(t, http.StatusBadRequest, fablab.EINVALID)
	h.do(t, "POST", "/api/v1/charges/"+id+"/corrections", h.staff.Token, map[string]any{"amount_cents": -100}).want(t, http.StatusBadRequest, fablab.EINVALID)
	h.do(t, "POST", "/api/v1/charges/"+id+"/corrections", h.alice.Token, map[string]any{"amount_cents": -100, "note": "mine"}).want(t, http.StatusForbidden, fablab.EFORBIDDEN)
	h.unchanged(t, before)
	orig, err := h.store.Charge(t.Context(), inv.Lines[0].ChargeID)
	if err != nil {
		t.Fatal(err)
	}
	var corr fablab.Charge
	r := h.do(t, "POST", "/api/v1/charges/"+id+"/corrections", h.staff.Token, map[string]any{"amount_cents": -200, "note": "wrong machine"})
	r.want(t, http.StatusCreated, "")
	r.decode(t, &corr)
	after, err := h.store.Charge(t.Context(), inv.Lines[0].ChargeID)
	if err != nil {
		t.Fatal(err)
	}
	if corr.Kind != fablab.ChargeCorrection || corr.Corrects != orig.ID || corr.AmountCents != -200 || after != orig {
		t.Errorf("correction %+v; the charge before %+v after %+v", corr, orig, after)
	}
}

// TestAPIInvoiceDocuments: the PDF and the CII XML of an invoice and of
// its credit note, for the maker it is addressed to; others get 404.
func TestAPIInvoiceDocuments(t *testing.T) {
	h := newAPIHarness(t)
	inv := h.seedInvoice(t, h.alice)
	id := inv.ID.String()
	r := h.do(t, "GET", "/api/v1/invoices/"+id+"/pdf", h.alice.Token, nil)
	r.want(t, http.StatusOK, "")
	if !bytes.HasPrefix(r.body, []byte("%PDF-")) || r.header.Get("Content-Type") != "application/pdf" ||
		!strings.Contains(r.header.Get("Content-Disposition"), inv.Number+".pdf") {
		t.Errorf("PDF: %q, %s, %s", r.body[:min(8, len(r.body))], r.header.Get("Content-Type"), r.header.Get("Content-Disposition"))
	}
	r = h.do(t, "GET", "/api/v1/invoices/"+id+"/xml", h.alice.Token, nil)
	r.want(t, http.StatusOK, "")
	var doc struct {
		ID    string `xml:"ExchangedDocument>ID"`
		Type  string `xml:"ExchangedDocument>TypeCode"`
		Grand string `xml:"SupplyChainTradeTransaction>ApplicableHeaderTradeSettlement>SpecifiedTradeSettlementHeaderMonetarySummation>GrandTotalAmount"`
	}
	if err := xml.Unmarshal(r.body, &doc); err != nil {
		t.Fatalf("XML: %v", err)
	}
	if doc.ID != inv.Number || doc.Type != "380" || doc.Grand != fablab.FormatDecimal(inv.TotalInclCents) {
		t.Errorf("XML says %+v; the invoice is %s for %d cents", doc, inv.Number, inv.TotalInclCents)
	}
	h.do(t, "GET", "/api/v1/invoices/"+id+"/pdf", h.bob.Token, nil).want(t, http.StatusNotFound, fablab.ENOTFOUND)

	var cn fablab.Invoice
	r = h.do(t, "POST", "/api/v1/invoices/"+id+"/credit-notes", h.staff.Token, map[string]any{"amount_cents": 200, "reason": "goodwill"})
	r.want(t, http.StatusCreated, "")
	r.decode(t, &cn)
	r = h.do(t, "GET", "/api/v1/invoices/"+cn.ID.String()+"/xml", h.alice.Token, nil)
	r.want(t, http.StatusOK, "")
	var credit struct {
		Type string `xml:"ExchangedDocument>TypeCode"`
		Ref  string `xml:"SupplyChainTradeTransaction>ApplicableHeaderTradeSettlement>InvoiceReferencedDocument>IssuerAssignedID"`
	}
	if err := xml.Unmarshal(r.body, &credit); err != nil {
		t.Fatal(err)
	}
	if credit.Type != "381" || credit.Ref != inv.Number {
		t.Errorf("credit note XML: %+v, want type 381 referring to %s", credit, inv.Number)
	}
	h.do(t, "GET", "/api/v1/invoices/"+cn.ID.String()+"/pdf", h.alice.Token, nil).want(t, http.StatusOK, "")
}
