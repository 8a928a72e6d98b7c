package invoice

import (
	"bytes"
	"encoding/csv"
	"slices"
	"testing"

	"github.com/fabgate/fabgate/internal/fablab"
)

func TestInvoicesCSV(t *testing.T) {
	assoc, sme, credit := associationInvoice(t), smeInvoice(t), creditNote(t)
	long := longInvoice(t, 30) // two rates: two rows
	empty := smeInvoice(t)
	empty.Number, empty.Lines = "FG-2026-000010", nil
	empty.Buyer.Name = "=HYPERLINK(\"http://x\")"
	empty.Totals()
	invs := []fablab.Invoice{assoc, sme, credit, long, empty}

	var buf bytes.Buffer
	if err := InvoicesCSV(&buf, invs, paris(t)); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatalf("the CSV does not parse: %v\n%s", err, buf.String())
	}
	if !slices.Equal(rows[0], InvoicesHeader) {
		t.Fatalf("header %q", rows[0])
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	rows = rows[1:]
	if want := 1 + 1 + 1 + 2 + 1; len(rows) != want {
		t.Fatalf("%d rows, want %d:\n%s", len(rows), want, buf.String())
	}

	// Per invoice: the rows' amounts add up to its totals (negated for
	// the credit note), and each row is base + VAT.
	type sums struct{ base, vat, incl int64 }
	got := map[string]*sums{}
	for _, r := range rows {
		s := got[r[col["number"]]]
		if s == nil {
			s = &sums{}
			got[r[col["number"]]] = s
		}
		base, vat, incl := cents(t, "base", r[col["base_excl"]]), cents(t, "vat", r[col["vat"]]), cents(t, "incl", r[col["total_incl"]])
		if incl != base+vat {
			t.Errorf("row %q: total %d ≠ %d + %d", r, incl, base, vat)
		}
		s.base, s.vat, s.incl = s.base+base, s.vat+vat, s.incl+incl
	}
	for _, inv := range invs {
		want := sums{inv.TotalExclCents, inv.TotalVATCents, inv.TotalInclCents}
		if inv.Kind == fablab.InvoiceKindCreditNote {
			// Stored negative already: revenue-signed it stays negative.
			if inv.TotalInclCents > 0 {
				want = sums{-want.base, -want.vat, -want.incl}
			}
		}
		if s := got[inv.Number]; s == nil || *s != want {
			t.Errorf("%s: rows sum to %+v, want %+v", inv.Number, s, want)
		}
	}

	first := rows[0]
	for name, want := range map[string]string{
		"number": assoc.Number, "kind": "invoice", "issued_on": "2026-04-01", "due_on": "2026-05-01",
		"period": "2026-03", "payer": "member-12", "buyer_name": "Élodie Çaron", "currency": "EUR",
		"vat_rate_percent": "0.00", "base_excl": "69.00", "vat": "0.00", "total_incl": "69.00",
	} {
		if first[col[name]] != want {
			t.Errorf("first row %s = %q, want %q", name, first[col[name]], want)
		}
	}
	cn := rows[2]
	if cn[col["kind"]] != fablab.InvoiceKindCreditNote || cn[col["total_incl"]] != "-54.00" || cn[col["vat_rate_percent"]] != "20.00" {
		t.Errorf("credit note row %q", cn)
	}
	if r := rows[3]; r[col["vat_rate_percent"]] != "5.50" || rows[4][col["vat_rate_percent"]] != "20.00" {
		t.Errorf("the long invoice's rates: %q, %q", r[col["vat_rate_percent"]], rows[4][col["vat_rate_percent"]])
	}
	last := rows[5]
	if last[col["number"]] != empty.Number || last[col["vat_rate_percent"]] != "" || last[col["total_incl"]] != "0.00" {
		t.Errorf("an invoice without lines: %q", last)
	}
	if n := last[col["buyer_name"]]; n != "'"+empty.Buyer.Name {
		t.Errorf("a formula-like name reads %q", n)
	}
	if n := rows[1][col["buyer_name"]]; n != sme.Buyer.Name {
		t.Errorf("buyer name %q, want %q", n, sme.Buyer.Name)
	}
}

func TestInvoicesCSVRejectsBadInvoice(t *testing.T) {
	bad := smeInvoice(t)
	bad.TotalExclCents++
	err := InvoicesCSV(&bytes.Buffer{}, []fablab.Invoice{associationInvoice(t), bad}, paris(t))
	if fablab.ErrorCode(err) != fablab.EINVALID {
		t.Fatalf("got %v, want %s", err, fablab.EINVALID)
	}
}
