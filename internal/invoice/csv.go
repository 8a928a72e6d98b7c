package invoice

import (
	"encoding/csv"
	"io"
	"strings"
	"time"

	"github.com/fabgate/fabgate/internal/fablab"
)

// InvoicesHeader is the header row InvoicesCSV writes.
var InvoicesHeader = []string{"number", "kind", "issued_on", "due_on", "period", "payer", "buyer_name",
	"currency", "vat_rate_percent", "base_excl", "vat", "total_incl"}

// InvoicesCSV writes invs for the accountant: a header row, then one row
// per invoice and VAT rate, in the order given. Dates are the lab's (loc),
// YYYY-MM-DD; amounts are plain decimals ("1234.56"), signed as revenue: a
// credit note's are negative whatever sign it is stored with. total_incl is
// the row's base plus its VAT, so that every amount column sums to the
// period's totals. An invoice without lines gets one row of zeros with no
// rate. A number or buyer name that a spreadsheet would read as a formula
// is prefixed with "'" (SpreadsheetSafe). Errors: EINVALID for an invoice that cannot be shown
// (see PDF), else w's.
func InvoicesCSV(w io.Writer, invs []fablab.Invoice, loc *time.Location) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(InvoicesHeader); err != nil {
		return err
	}
	for _, inv := range invs {
		// The corrected invoice's number is not shown here: any will do.
		d, err := prepare(inv, loc, Options{CorrectsNumber: "-"})
		if err != nil {
			return err
		}
		sign := int64(1)
		if d.credit {
			sign = -1
		}
		vat := d.inv.VAT
		if len(vat) == 0 {
			vat = []fablab.VATLine{{RateBP: -1}}
		}
		for _, v := range vat {
			rate := ""
			if v.RateBP >= 0 {
				rate = fablab.FormatDecimal(int64(v.RateBP))
			}
			row := []string{
				SpreadsheetSafe(inv.Number), inv.Kind,
				inv.IssuedAt.In(loc).Format(time.DateOnly), inv.DueAt.In(loc).Format(time.DateOnly),
				inv.Period, inv.Payer.String(), SpreadsheetSafe(inv.Buyer.Name), inv.Currency, rate,
				fablab.FormatDecimal(sign * v.BaseCents), fablab.FormatDecimal(sign * v.VATCents),
				fablab.FormatDecimal(sign * (v.BaseCents + v.VATCents)),
			}
			if err := cw.Write(row); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// SpreadsheetSafe keeps a spreadsheet from reading text as a formula
// (OWASP "CSV injection"): text starting with = + - @, a tab or a carriage
// return gets a leading apostrophe, which spreadsheets show as text.
func SpreadsheetSafe(s string) string {
	if s != "" && strings.ContainsAny(s[:1], "=+-@\t\r") {
		return "'" + s
	}
	return s
}
