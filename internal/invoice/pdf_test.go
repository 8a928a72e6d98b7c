package invoice

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/fablab"
)

// poppler returns the path of a poppler-utils tool, skipping the test
// when it is missing (failing it under FABGATE_REQUIRE_ALL=1).
func poppler(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("FABGATE_REQUIRE_ALL") == "1" {
			t.Fatalf("%s (poppler-utils) is required: %v", tool, err)
		}
		t.Skipf("%s (poppler-utils) is not installed", tool)
	}
	return p
}

// runPoppler feeds pdf to tool on standard input and returns its output.
func runPoppler(t *testing.T, tool string, pdf []byte, args ...string) string {
	t.Helper()
	cmd := exec.Command(poppler(t, tool), args...)
	cmd.Stdin = bytes.NewReader(pdf)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", tool, err, errb.String())
	}
	return out.String()
}

// pdfText is a rendered PDF's text as pdftotext -layout reads it.
type pdfText struct {
	raw   string
	lines []string // whitespace collapsed
	flat  string   // all lines, whitespace collapsed, joined by "\n"
}

var spaces = regexp.MustCompile(`[\s\x{00a0}\x{202f}]+`)

// collapse turns every run of white space (no-break spaces included)
// into one space.
func collapse(s string) string { return strings.TrimSpace(spaces.ReplaceAllString(s, " ")) }

// squash removes all white space: pdftotext sometimes drops the space of a
// short word ("0 %" reads "0%"), so amounts are compared without spaces.
func squash(s string) string { return spaces.ReplaceAllString(s, "") }

func renderPDF(t *testing.T, inv fablab.Invoice, opt Options) ([]byte, pdfText) {
	t.Helper()
	var buf bytes.Buffer
	if err := PDF(inv, paris(t), opt, &buf); err != nil {
		t.Fatalf("PDF(%s): %v", inv.Number, err)
	}
	b := buf.Bytes()
	if !bytes.HasPrefix(b, []byte("%PDF-")) {
		t.Fatalf("PDF(%s) does not start with %%PDF-: %q", inv.Number, b[:min(len(b), 16)])
	}
	raw := runPoppler(t, "pdftotext", b, "-layout", "-enc", "UTF-8", "-", "-")
	pt := pdfText{raw: raw}
	for _, l := range strings.Split(raw, "\n") {
		if l = collapse(l); l != "" {
			pt.lines = append(pt.lines, l)
		}
	}
	pt.flat = strings.Join(pt.lines, "\n")
	return b, pt
}

// must fails unless the text shows s (white space collapsed).
func (p pdfText) must(t *testing.T, s string) {
	t.Helper()
	if !strings.Contains(p.flat, collapse(s)) {
		t.Errorf("the PDF does not show %q; it reads:\n%s", s, p.raw)
	}
}

// mustNot fails if the text shows s.
func (p pdfText) mustNot(t *testing.T, s string) {
	t.Helper()
	if strings.Contains(squash(p.flat), squash(s)) {
		t.Errorf("the PDF shows %q and must not", s)
	}
}

// line returns the first text line that contains s.
func (p pdfText) line(t *testing.T, s string) string {
	t.Helper()
	for _, l := range p.lines {
		if strings.Contains(l, collapse(s)) {
			return l
		}
	}
	t.Fatalf("no line of the PDF shows %q; it reads:\n%s", s, p.raw)
	return ""
}

// lineHas fails unless the line that shows label also shows every one of
// values.
func (p pdfText) lineHas(t *testing.T, label string, values ...string) {
	t.Helper()
	l := p.line(t, label)
	for _, v := range values {
		if !strings.Contains(squash(l), squash(v)) {
			t.Errorf("the line with %q shows %q, not %q", label, l, v)
		}
	}
}

// checkInvoicePDF checks what every invoice or credit note must show:
// its number, dates, lines with their amounts, totals and mentions.
func checkInvoicePDF(t *testing.T, inv fablab.Invoice, p pdfText, sign int64) {
	t.Helper()
	loc := paris(t)
	cur := inv.Currency
	p.must(t, inv.Number)
	p.must(t, "Date d'émission : "+inv.IssuedAt.In(loc).Format("02/01/2006"))
	p.must(t, inv.Seller.Name)
	p.must(t, inv.Buyer.Name)
	if inv.Seller.SIRET != "" {
		p.must(t, "SIRET : "+inv.Seller.SIRET)
	}
	if inv.Buyer.VATNumber != "" {
		p.must(t, inv.Buyer.VATNumber)
	}
	for _, l := range inv.Lines {
		p.lineHas(t, l.Description, l.At.In(loc).Format("02/01/2006"), frenchMoney(sign*l.AmountCents, cur), frenchRate(l.VATRateBP))
	}
	p.lineHas(t, "Total HT", frenchMoney(sign*inv.TotalExclCents, cur))
	p.lineHas(t, "Total TTC", frenchMoney(sign*inv.TotalInclCents, cur))
	penalty := inv.LatePenalty
	if penalty == "" {
		penalty = fablab.DefaultLatePenalty
	}
	p.must(t, penalty)
	const indemnity = "Indemnité forfaitaire pour frais de recouvrement : 40 €"
	if inv.Business {
		p.must(t, indemnity)
	} else {
		p.mustNot(t, indemnity)
		p.mustNot(t, "40 €")
	}
}

func TestPDFAssociationExemptFromVAT(t *testing.T) {
	inv := associationInvoice(t)
	_, p := renderPDF(t, inv, Options{})
	checkInvoicePDF(t, inv, p, 1)
	p.must(t, "Facture")
	// Issued at 00:05 in Paris on 1 April (31 March in UTC).
	p.must(t, "Date d'émission : 01/04/2026")
	p.must(t, "Date d'échéance : 01/05/2026")
	p.must(t, "Période : mars 2026")
	p.must(t, "Paiement à 30 jours, échéance le 01/05/2026")
	p.must(t, "TVA non applicable, art. 293 B du CGI")
	p.mustNot(t, "TVA 0 %")
	p.lineHas(t, "Total HT", "69,00 €")
	p.lineHas(t, "Découpe laser — Trotec Speedy 300", "90", "30,00 €/h", "45,00 €")
	p.lineHas(t, "Absence sans annulation", "15,00 €")
	// Accents of names and addresses, the euro sign.
	for _, s := range []string{"Atelier Numérique de Bègles", "12 rue de l'Église", "Élodie Çaron", "3 allée des Pins", "Période", "€"} {
		p.must(t, s)
	}
	p.mustNot(t, "?")
}

func TestPDFBusinessWithVAT(t *testing.T) {
	inv := smeInvoice(t)
	_, p := renderPDF(t, inv, Options{})
	checkInvoicePDF(t, inv, p, 1)
	if len(inv.VAT) != 1 || inv.VAT[0].RateBP != 2000 {
		t.Fatalf("the SME invoice should have one VAT rate, 20 %%: %+v", inv.VAT)
	}
	v := inv.VAT[0]
	p.lineHas(t, "TVA 20 %", frenchMoney(v.BaseCents, "EUR"), frenchMoney(v.VATCents, "EUR"))
	// 3000 min at 45 €/h: thousands are grouped.
	p.lineHas(t, "Fraiseuse CNC", "3000", "45,00 €/h", "2 250,00 €")
	p.lineHas(t, "Total HT", "2 295,55 €")
	p.lineHas(t, "TVA 20 %", "459,11 €")
	p.lineHas(t, "Total TTC", "2 754,66 €")
	p.must(t, "Paiement à réception")
	p.must(t, "Date d'échéance : 01/02/2026")
	p.must(t, "Période : janvier 2026")
	p.must(t, "N° TVA intracommunautaire : FR 32 987654321")
	p.must(t, "Escompte pour paiement anticipé : néant")
	p.must(t, "Société d'Usinage Fine & Fils <SARL>")
	p.mustNot(t, "TVA non applicable")
}

func TestPDFCreditNote(t *testing.T) {
	inv := creditNote(t)
	if inv.TotalInclCents >= 0 {
		t.Fatalf("the credit note is meant to be stored negative: %d", inv.TotalInclCents)
	}
	_, p := renderPDF(t, inv, Options{CorrectsNumber: creditedNumber})
	checkInvoicePDF(t, inv, p, -1)
	p.must(t, "Avoir")
	p.mustNot(t, "Facture FG")
	p.must(t, "Avoir sur la facture "+creditedNumber)
	p.must(t, "Motif : Séance facturée deux fois")
	p.lineHas(t, "Total TTC", "54,00 €")
	p.lineHas(t, "séance comptée deux fois", "60", "45,00 €/h", "45,00 €")
	// A credit note reads as the positive amount credited.
	p.mustNot(t, "-45,00")
	p.mustNot(t, "-54,00")
	p.mustNot(t, "Date d'échéance")

	// Stored positive, it reads the same.
	pos := inv
	pos.Lines = []fablab.InvoiceLine{inv.Lines[0]}
	pos.Lines[0].AmountCents = -pos.Lines[0].AmountCents
	pos.Totals()
	_, q := renderPDF(t, pos, Options{CorrectsNumber: creditedNumber})
	if squash(q.flat) != squash(p.flat) {
		t.Errorf("a credit note stored positive reads\n%s\nand stored negative\n%s", q.raw, p.raw)
	}
}

func TestPDFManyLinesSpanPages(t *testing.T) {
	inv := longInvoice(t, 120)
	b, p := renderPDF(t, inv, Options{})
	checkInvoicePDF(t, inv, p, 1)
	for _, v := range inv.VAT {
		p.lineHas(t, "TVA "+frenchRate(v.RateBP), frenchMoney(v.BaseCents, "EUR"), frenchMoney(v.VATCents, "EUR"))
	}
	info := runPoppler(t, "pdfinfo", b, "-")
	m := regexp.MustCompile(`(?m)^Pages:\s+(\d+)$`).FindStringSubmatch(info)
	if m == nil {
		t.Fatalf("pdfinfo shows no page count:\n%s", info)
	}
	pages, _ := strconv.Atoi(m[1])
	if pages < 2 {
		t.Fatalf("120 lines fit on %d page", pages)
	}
	// Every page after the first says whose it is; every page with rows
	// starts them with the table's header; every page is numbered.
	pageTexts := strings.Split(strings.TrimRight(p.raw, "\f\n"), "\f")
	if len(pageTexts) != pages {
		t.Fatalf("pdftotext read %d pages, pdfinfo %d", len(pageTexts), pages)
	}
	rows := 0
	for i, pg := range pageTexts {
		flat := collapse(pg)
		if want := "Facture FG-2026-000042 (suite)"; (i > 0) != strings.Contains(flat, want) {
			t.Errorf("page %d: continuation heading %q shown: %v", i+1, want, i == 0)
		}
		if !strings.Contains(flat, "page "+strconv.Itoa(i+1)+"/"+strconv.Itoa(pages)) {
			t.Errorf("page %d is not numbered %d/%d", i+1, i+1, pages)
		}
		first := -1
		for _, l := range inv.Lines {
			if j := strings.Index(flat, l.Description); j >= 0 {
				rows++
				if first < 0 || j < first {
					first = j
				}
			}
		}
		head := strings.Index(flat, "Date Description Minutes Prix unit. HT Montant HT TVA")
		if first >= 0 && (head < 0 || head > first) {
			t.Errorf("page %d has rows without the table's header first", i+1)
		}
	}
	if rows != len(inv.Lines) {
		t.Errorf("%d rows found on the pages, want %d", rows, len(inv.Lines))
	}
	// Lines stay in order across pages.
	last := -1
	for _, l := range inv.Lines {
		i := strings.Index(p.flat, l.Description)
		if i <= last {
			t.Fatalf("line %q is out of order", l.Description)
		}
		last = i
	}
}

func TestPDFIsDeterministic(t *testing.T) {
	for _, inv := range []fablab.Invoice{associationInvoice(t), longInvoice(t, 40)} {
		var a, b bytes.Buffer
		if err := PDF(inv, paris(t), Options{}, &a); err != nil {
			t.Fatal(err)
		}
		if err := PDF(inv, paris(t), Options{}, &b); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Errorf("%s: two renderings differ", inv.Number)
		}
		if !bytes.Contains(a.Bytes(), []byte("/CreationDate (D:"+inv.IssuedAt.UTC().Format("20060102150405"))) {
			t.Errorf("%s: the creation date is not the issue instant", inv.Number)
		}
		if bytes.Contains(a.Bytes(), []byte("Total TTC")) {
			t.Errorf("%s: the page content is not compressed", inv.Number)
		}
	}
}

func TestPDFLongTextWraps(t *testing.T) {
	inv := associationInvoice(t)
	long := strings.Repeat("très longue description de la découpe ", 6) + "fin"
	inv.Lines[0].Description = long
	inv.Buyer.Address = "Résidence des Tilleuls, bâtiment C, escalier 4, appartement 42, " + strings.Repeat("lieu-dit ", 8) + "\n33000 Bordeaux"
	inv.Totals()
	_, p := renderPDF(t, inv, Options{})
	for _, w := range strings.Fields(long) {
		p.must(t, w)
	}
	p.must(t, "fin")
	p.must(t, "Total TTC")
	// Not one line of the text is wider than the page (the wrap kept the
	// description in its column).
	if strings.Contains(p.flat, collapse(long)) {
		t.Errorf("a description of %d characters was not wrapped", len(long))
	}
}

func TestPDFRejects(t *testing.T) {
	loc := paris(t)
	cases := map[string]struct {
		inv  func() fablab.Invoice
		loc  *time.Location
		opt  Options
		want string
	}{
		"credit note without the corrected invoice": {inv: func() fablab.Invoice { return creditNote(t) }, loc: loc, want: "must name the invoice it corrects"},
		"no zone":           {inv: func() fablab.Invoice { return smeInvoice(t) }, want: "time zone"},
		"unknown kind":      {inv: func() fablab.Invoice { i := smeInvoice(t); i.Kind = "quote"; return i }, loc: loc, want: "kind"},
		"totals off by one": {inv: func() fablab.Invoice { i := smeInvoice(t); i.TotalInclCents++; return i }, loc: loc, want: "do not add up"},
		"VAT line changed": {inv: func() fablab.Invoice {
			i := smeInvoice(t)
			i.VAT[0].VATCents--
			i.TotalVATCents--
			i.TotalInclCents--
			return i
		}, loc: loc, want: "do not add up"},
		"due before issued": {inv: func() fablab.Invoice { i := smeInvoice(t); i.DueAt = i.IssuedAt.AddDate(0, 0, -1); return i }, loc: loc, want: "due before"},
		"bad currency":      {inv: func() fablab.Invoice { i := smeInvoice(t); i.Currency = "€"; return i }, loc: loc, want: "currency"},
		"no buyer":          {inv: func() fablab.Invoice { i := smeInvoice(t); i.Buyer.Name = " "; return i }, loc: loc, want: "buyer"},
		"bad period":        {inv: func() fablab.Invoice { i := smeInvoice(t); i.Period = "2026-13"; return i }, loc: loc, want: "period"},
		"no issue date":     {inv: func() fablab.Invoice { i := smeInvoice(t); i.IssuedAt = time.Time{}; return i }, loc: loc, want: "issue and due dates"},
		"no number":         {inv: func() fablab.Invoice { i := smeInvoice(t); i.Number = ""; return i }, loc: loc, want: "number"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			for doc, render := range map[string]func() error{
				"pdf": func() error { return PDF(c.inv(), c.loc, c.opt, &bytes.Buffer{}) },
				"cii": func() error { return CII(c.inv(), c.loc, c.opt, &bytes.Buffer{}) },
			} {
				err := render()
				if fablab.ErrorCode(err) != fablab.EINVALID || !strings.Contains(fablab.ErrorMessage(err), c.want) {
					t.Errorf("%s: got %v, want %s saying %q", doc, err, fablab.EINVALID, c.want)
				}
			}
		})
	}
}
