package invoice

import (
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/go-pdf/fpdf"

	"github.com/fabgate/fabgate/internal/fablab"
)

// Page layout, in millimetres (A4 portrait).
const (
	pageW      = 210.0
	pageH      = 297.0
	margin     = 15.0
	contentW   = pageW - 2*margin
	bottomKeep = 20.0 // space kept for the footer
	lineH      = 4.5
	font       = "Helvetica"
)

// The table's columns: date, description, minutes, unit price, amount, VAT.
var (
	colW     = [...]float64{21, 77, 16, 25, 26, 15}
	colHead  = [...]string{"Date", "Description", "Minutes", "Prix unit. HT", "Montant HT", "TVA"}
	colAlign = [...]string{"L", "L", "R", "R", "R", "R"}
)

// PDF writes inv as an A4 PDF in French to w: an invoice ("Facture") or a
// credit note ("Avoir"), dates in loc (the lab's zone). See the package
// documentation for the mentions it carries. The same input gives the same
// bytes. Errors: EINVALID when the invoice cannot be shown (see prepare),
// else w's.
func PDF(inv fablab.Invoice, loc *time.Location, opt Options, w io.Writer) error {
	d, err := prepare(inv, loc, opt)
	if err != nil {
		return err
	}
	r := newPDFRenderer(d)
	r.render()
	if err := r.f.Error(); err != nil {
		return fablab.Internal(err, "render invoice %s", inv.Number)
	}
	return r.f.Output(w)
}

type pdfRenderer struct {
	d   *document
	f   *fpdf.Fpdf
	enc func(string) string
}

func newPDFRenderer(d *document) *pdfRenderer {
	f := fpdf.New("P", "mm", "A4", "")
	f.SetMargins(margin, margin, margin)
	f.SetAutoPageBreak(true, bottomKeep)
	f.SetCompression(true)
	f.SetCatalogSort(true)
	f.SetCreationDate(d.inv.IssuedAt.UTC())
	f.SetModificationDate(d.inv.IssuedAt.UTC())
	r := &pdfRenderer{d: d, f: f}
	tr := f.UnicodeTranslatorFromDescriptor("")
	r.enc = func(s string) string {
		var b strings.Builder
		for _, c := range s {
			switch {
			case c == '\u202f' || c == '\u2009' || c == '\u2007':
				c = '\u00a0'
			case c == '\u2212':
				c = '-'
			case unicode.IsControl(c) || c == '\u2028' || c == '\u2029':
				c = ' '
			}
			if c < 0x80 {
				b.WriteRune(c)
				continue
			}
			if t := tr(string(c)); t != "." {
				b.WriteString(t)
			} else {
				b.WriteByte('?')
			}
		}
		return b.String()
	}
	// fpdf reads the metadata as UTF-8 (and panics on invalid bytes).
	meta := func(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
	f.SetTitle(meta(r.title()+" "+d.inv.Number), true)
	f.SetAuthor(meta(d.inv.Seller.Name), true)
	f.SetSubject(meta(r.title()+" "+d.inv.Number+" — "+d.inv.Buyer.Name), true)
	f.SetCreator("FabGate", true)
	f.AliasNbPages("{nb}")
	f.SetHeaderFunc(func() {
		if f.PageNo() == 1 {
			return
		}
		f.SetFont(font, "", 8)
		f.SetX(margin)
		r.cell(contentW, 6, r.title()+" "+d.inv.Number+" (suite)", "L")
		f.Ln(7)
	})
	f.SetFooterFunc(func() {
		f.SetY(-12)
		f.SetFont(font, "", 8)
		f.SetTextColor(90, 90, 90)
		f.CellFormat(0, 4, r.enc(d.inv.Seller.Name+" — "+r.title()+" "+d.inv.Number+" — page "+strconv.Itoa(f.PageNo())+"/{nb}"), "", 0, "C", false, 0, "")
		f.SetTextColor(0, 0, 0)
	})
	return r
}

func (r *pdfRenderer) title() string {
	if r.d.credit {
		return "Avoir"
	}
	return "Facture"
}

// cell writes s at the current position as one cell of width w.
func (r *pdfRenderer) cell(w, h float64, s, align string) {
	r.f.CellFormat(w, h, r.enc(s), "", 0, align, false, 0, "")
}

// block writes lines of text in a column at x, starting at y, and returns
// the y below it. Long lines wrap within w.
func (r *pdfRenderer) block(x, y, w float64, lines []string) float64 {
	for _, l := range lines {
		for _, part := range r.split(l, w) {
			r.f.SetXY(x, y)
			r.f.CellFormat(w, lineH, part, "", 0, "L", false, 0, "")
			y += lineH
		}
	}
	return y
}

// split encodes s and cuts it into lines no wider than w. (fpdf's
// SplitText reads UTF-8; the encoded text is cp1252 bytes.)
func (r *pdfRenderer) split(s string, w float64) []string {
	var out []string
	for _, b := range r.f.SplitLines([]byte(r.enc(s)), w) {
		out = append(out, string(b))
	}
	return out
}

// addressLines splits a free-text address into its lines.
func addressLines(a string) []string {
	var out []string
	for _, l := range strings.Split(strings.ReplaceAll(a, "\r\n", "\n"), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func (r *pdfRenderer) render() {
	f, d, inv := r.f, r.d, r.d.inv
	f.AddPage()

	// The seller, top left.
	f.SetFont(font, "B", 12)
	y := r.block(margin, margin, 95, []string{inv.Seller.Name})
	f.SetFont(font, "", 9)
	seller := addressLines(inv.Seller.Address)
	if inv.Seller.SIRET != "" {
		seller = append(seller, "SIRET : "+inv.Seller.SIRET)
	}
	if inv.Seller.VATNumber != "" {
		seller = append(seller, "N° TVA intracommunautaire : "+inv.Seller.VATNumber)
	}
	if inv.Seller.Email != "" {
		seller = append(seller, inv.Seller.Email)
	}
	yLeft := r.block(margin, y, 95, seller)

	// The document, top right.
	const rx, rw = 120.0, pageW - margin - 120.0
	f.SetFont(font, "B", 18)
	f.SetXY(rx, margin)
	r.cell(rw, 9, r.title(), "L")
	f.SetFont(font, "", 9)
	head := []string{"N° " + inv.Number, "Date d'émission : " + frenchDate(inv.IssuedAt, d.loc)}
	if !d.credit {
		head = append(head, "Date d'échéance : "+frenchDate(inv.DueAt, d.loc))
	}
	if d.period != nil {
		head = append(head, "Période : "+frenchPeriod(*d.period))
	}
	if d.credit {
		head = append(head, "Avoir sur la facture "+d.corrects)
	}
	yRight := r.block(rx, margin+10, rw, head)

	// The buyer, right, below the document's identity.
	yRight += 4
	f.SetFont(font, "", 8)
	f.SetTextColor(90, 90, 90)
	yRight = r.block(rx, yRight, rw, []string{"Client"})
	f.SetTextColor(0, 0, 0)
	f.SetFont(font, "B", 10)
	yRight = r.block(rx, yRight, rw, []string{inv.Buyer.Name})
	f.SetFont(font, "", 9)
	buyer := addressLines(inv.Buyer.Address)
	if inv.Buyer.SIRET != "" {
		buyer = append(buyer, "SIRET : "+inv.Buyer.SIRET)
	}
	if inv.Buyer.VATNumber != "" {
		buyer = append(buyer, "N° TVA intracommunautaire : "+inv.Buyer.VATNumber)
	}
	yRight = r.block(rx, yRight, rw, buyer)

	y = max(yLeft, yRight) + 6
	if d.credit && strings.TrimSpace(inv.Reason) != "" {
		f.SetFont(font, "", 9)
		y = r.block(margin, y, contentW, []string{"Motif : " + inv.Reason}) + 2
	}
	f.SetY(y)
	r.table()
	r.totals()
	r.mentions()
}

// tableHeader draws the table's header row at the current y.
func (r *pdfRenderer) tableHeader() {
	f := r.f
	f.SetFont(font, "B", 8)
	f.SetFillColor(230, 230, 230)
	f.SetX(margin)
	for i, h := range colHead {
		f.CellFormat(colW[i], 6, r.enc(h), "B", 0, colAlign[i], true, 0, "")
	}
	f.Ln(6)
	f.SetFont(font, "", 8)
}

// table draws one row per line, starting a new page (with the header
// again) when a row would not fit.
func (r *pdfRenderer) table() {
	f, d := r.f, r.d
	cur := d.inv.Currency
	r.tableHeader()
	limit := pageH - bottomKeep
	for _, l := range d.inv.Lines {
		desc := r.split(l.Description, colW[1]-2)
		if len(desc) == 0 {
			desc = []string{""}
		}
		h := float64(len(desc))*lineH + 1
		if f.GetY()+h > limit {
			f.AddPage()
			r.tableHeader()
		}
		y := f.GetY()
		minutes, unit := "", frenchMoney(abs(l.UnitCents), cur)
		if l.Minutes != 0 {
			minutes = strconv.FormatInt(abs(l.Minutes), 10)
			unit += "/h"
		}
		cols := [...]string{frenchDate(l.At, d.loc), "", minutes, unit, frenchMoney(l.AmountCents, cur), frenchRate(l.VATRateBP)}
		x := margin
		for i, c := range cols {
			if i == 1 {
				for j, part := range desc {
					f.SetXY(x, y+0.5+float64(j)*lineH)
					f.CellFormat(colW[i], lineH, part, "", 0, "L", false, 0, "")
				}
			} else {
				f.SetXY(x, y+0.5)
				r.cell(colW[i], lineH, c, colAlign[i])
			}
			x += colW[i]
		}
		f.SetDrawColor(210, 210, 210)
		f.Line(margin, y+h, margin+contentW, y+h)
		f.SetDrawColor(0, 0, 0)
		f.SetXY(margin, y+h)
	}
}

// totals draws Total HT, the VAT per rate (or the exemption mention) and
// Total TTC, right-aligned below the table.
func (r *pdfRenderer) totals() {
	f, inv := r.f, r.d.inv
	cur := inv.Currency
	mention := strings.TrimSpace(inv.VATMention)
	onlyExempt := mention != "" && inv.TotalVATCents == 0
	for _, v := range inv.VAT {
		onlyExempt = onlyExempt && v.RateBP == 0
	}
	rows := 2 + len(inv.VAT) + 1
	if f.GetY()+4+float64(rows)*6 > pageH-bottomKeep {
		f.AddPage()
	}
	const lw, bw, aw = 45.0, 35.0, 35.0
	x := margin + contentW - lw - bw - aw
	f.SetY(f.GetY() + 4)
	row := func(style, label, base, amount string) {
		f.SetFont(font, style, 9)
		f.SetX(x)
		r.cell(lw, 6, label, "L")
		r.cell(bw, 6, base, "R")
		r.cell(aw, 6, amount, "R")
		f.Ln(6)
	}
	f.SetFont(font, "", 7)
	f.SetTextColor(90, 90, 90)
	f.SetX(x + lw)
	r.cell(bw, 4, "Base HT", "R")
	r.cell(aw, 4, "Montant", "R")
	f.Ln(4)
	f.SetTextColor(0, 0, 0)
	row("", "Total HT", "", frenchMoney(inv.TotalExclCents, cur))
	if onlyExempt {
		f.SetFont(font, "", 9)
		f.SetX(x)
		r.cell(lw+bw+aw, 6, mention, "R")
		f.Ln(6)
	} else {
		for _, v := range inv.VAT {
			row("", "TVA "+frenchRate(v.RateBP), frenchMoney(v.BaseCents, cur), frenchMoney(v.VATCents, cur))
		}
	}
	f.SetDrawColor(0, 0, 0)
	f.Line(x, f.GetY(), margin+contentW, f.GetY())
	row("B", "Total TTC", "", frenchMoney(inv.TotalInclCents, cur))
	if !onlyExempt && mention != "" {
		for _, v := range inv.VAT {
			if v.RateBP == 0 {
				f.SetFont(font, "", 8)
				f.SetX(x)
				r.cell(lw+bw+aw, 5, "TVA 0"+nbsp+"% : "+mention, "R")
				f.Ln(5)
			}
		}
	}
}

// mentions writes the payment terms and the legal mentions below the
// totals.
func (r *pdfRenderer) mentions() {
	f, d, inv := r.f, r.d, r.d.inv
	var lines []string
	if d.credit {
		lines = append(lines, "Avoir sur la facture "+d.corrects+" : montant à déduire ou à rembourser")
	} else {
		terms := paymentTerms(inv.IssuedAt, inv.DueAt, d.loc)
		lines = append(lines, terms+", échéance le "+frenchDate(inv.DueAt, d.loc))
		if p := strings.TrimSpace(inv.PaymentTerms); p != "" && p != terms {
			lines = append(lines, p)
		}
	}
	lines = append(lines, latePenalty(inv))
	if inv.Business {
		lines = append(lines, indemnityMention, noDiscountMention)
	}
	f.SetY(f.GetY() + 6)
	f.SetFont(font, "", 8)
	for _, l := range lines {
		f.SetX(margin)
		f.MultiCell(contentW, 4, r.enc(sentence(l)), "", "L", false)
		f.Ln(1)
	}
}

// sentence ends s with a full stop unless it ends with punctuation.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" || strings.ContainsAny(s[len(s)-1:], ".!?)") {
		return s
	}
	return s + "."
}
