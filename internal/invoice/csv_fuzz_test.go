package invoice

import (
	"bytes"
	"encoding/csv"
	"slices"
	"strings"
	"testing"

	"github.com/fabgate/fabgate/internal/fablab"
)

// FuzzInvoicesCSV writes an invoice and a credit note whose buyer name
// and number come from outside (a member's or organisation's name, the
// lab's invoice prefix) and reads the file back: every row as wide as the
// header, the text as written but for a leading apostrophe before what a
// spreadsheet would run as a formula, and each row's amounts adding up.
func FuzzInvoicesCSV(f *testing.F) {
	f.Add("Élodie Çaron", "FG-2026-000007", int64(90), int64(3000), uint16(2000), int64(500))
	f.Add("=HYPERLINK(\"http://x\")", "-FG-2026-000001", int64(1), int64(1), uint16(550), int64(1))
	f.Add("@Acme, \"Fils\"\r\nSARL", "+1", int64(0), int64(0), uint16(0), int64(0))
	f.Add("\tTab\rCR", "=", int64(-30), int64(-100), uint16(10000), int64(-7))
	f.Add("\xff not UTF-8", "FG\n2026", int64(1e6), int64(1e6), uint16(1), int64(1e9))
	loc := paris(f)
	f.Fuzz(func(t *testing.T, buyer, number string, minutes, perHour int64, rate uint16, credit int64) {
		// Amounts stay within what a ledger holds: this is about text.
		minutes, perHour, credit = minutes%1e6, perHour%1e6, credit%1e9
		inv := associationInvoice(t)
		inv.Number, inv.Buyer.Name = number, buyer
		inv.Lines = append(inv.Lines, minuteLine(104, inv.IssuedAt.AddDate(0, 0, -3), "fuzz", minutes, perHour, int(rate)))
		inv.Totals()
		cn := fablab.Invoice{ID: 8, Number: number + "-A", Kind: fablab.InvoiceKindCreditNote, Corrects: inv.ID, Payer: inv.Payer, Period: inv.Period,
			IssuedAt: inv.IssuedAt, DueAt: inv.DueAt, Seller: inv.Seller, Buyer: inv.Buyer, Currency: inv.Currency,
			Lines: []fablab.InvoiceLine{feeLine(0, inv.IssuedAt, "credit", credit, int(rate))}}
		cn.Totals()
		invs := []fablab.Invoice{inv, cn}

		var buf bytes.Buffer
		err := InvoicesCSV(&buf, invs, loc)
		if err != nil {
			// Only an invoice that cannot be shown is refused: a blank
			// number or buyer.
			if fablab.ErrorCode(err) != fablab.EINVALID || strings.TrimSpace(number) != "" && strings.TrimSpace(buyer) != "" {
				t.Fatalf("refused: %v", err)
			}
			return
		}
		r := csv.NewReader(&buf)
		r.FieldsPerRecord = len(InvoicesHeader)
		rows, err := r.ReadAll()
		if err != nil {
			t.Fatalf("the CSV does not read back: %v", err)
		}
		if !slices.Equal(rows[0], InvoicesHeader) {
			t.Fatalf("header %q", rows[0])
		}
		col := map[string]int{}
		for i, h := range InvoicesHeader {
			col[h] = i
		}
		want := len(inv.VAT) + len(cn.VAT)
		if len(rows)-1 != want {
			t.Fatalf("%d rows, want one per invoice and rate: %d", len(rows)-1, want)
		}
		for _, row := range rows[1:] {
			for _, c := range []struct{ name, v string }{{"buyer_name", buyer}} {
				if got := row[col[c.name]]; got != sheetText(c.v) {
					t.Errorf("%s %q, want %q", c.name, got, sheetText(c.v))
				}
			}
			if n := row[col["number"]]; n != sheetText(number) && n != sheetText(number+"-A") {
				t.Errorf("number %q, want %q or its credit note's", n, sheetText(number))
			}
			for _, name := range []string{"number", "buyer_name"} {
				if v := row[col[name]]; v != "" && strings.ContainsAny(v[:1], "=+-@\t\r") {
					t.Errorf("%s %q starts like a formula", name, v)
				}
			}
			base, vat, incl := cents(t, "base", row[col["base_excl"]]), cents(t, "vat", row[col["vat"]]), cents(t, "incl", row[col["total_incl"]])
			if incl != base+vat {
				t.Errorf("row %q: total %d ≠ %d + %d", row, incl, base, vat)
			}
		}
	})
}

// sheetText is what a text cell written from v reads back as: an
// apostrophe before a formula's first character, CR LF as LF (the CSV
// reader folds a quoted cell's line ends).
func sheetText(v string) string {
	if v != "" && strings.IndexByte("=+-@\t\r", v[0]) >= 0 {
		v = "'" + v
	}
	return strings.ReplaceAll(v, "\r\n", "\n")
}
