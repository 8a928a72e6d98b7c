package invoice

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"pgregory.net/rapid"

	"github.com/fabgate/fabgate/internal/fablab"
)

// The reading side: structs of the test's own, named with the namespaces
// (not the prefixes), so that a wrong namespace reads as missing.
type readInvoice struct {
	XMLName xml.Name `xml:"urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100 CrossIndustryInvoice"`
	Context struct {
		Guideline string `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 GuidelineSpecifiedDocumentContextParameter>ID"`
	} `xml:"urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100 ExchangedDocumentContext"`
	Document struct {
		ID        string     `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 ID"`
		TypeCode  string     `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 TypeCode"`
		IssueDate readDate   `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 IssueDateTime"`
		Notes     []readNote `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 IncludedNote"`
	} `xml:"urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100 ExchangedDocument"`
	Transaction struct {
		Lines  []readLine `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 IncludedSupplyChainTradeLineItem"`
		Seller readParty  `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 ApplicableHeaderTradeAgreement>SellerTradeParty"`
		Buyer  readParty  `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 ApplicableHeaderTradeAgreement>BuyerTradeParty"`
		// The element must be there, even empty.
		Delivery   *struct{} `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 ApplicableHeaderTradeDelivery"`
		Settlement struct {
			Currency string    `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 InvoiceCurrencyCode"`
			Taxes    []readTax `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 ApplicableTradeTax"`
			Period   struct {
				Start readDate `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 StartDateTime"`
				End   readDate `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 EndDateTime"`
			} `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 BillingSpecifiedPeriod"`
			Terms struct {
				Description string   `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 Description"`
				DueDate     readDate `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 DueDateDateTime"`
			} `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 SpecifiedTradePaymentTerms"`
			Sum struct {
				LineTotal     string     `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 LineTotalAmount"`
				TaxBasisTotal string     `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 TaxBasisTotalAmount"`
				TaxTotal      readAmount `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 TaxTotalAmount"`
				GrandTotal    string     `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 GrandTotalAmount"`
				DuePayable    string     `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 DuePayableAmount"`
			} `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 SpecifiedTradeSettlementHeaderMonetarySummation"`
			Referenced string `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 InvoiceReferencedDocument>IssuerAssignedID"`
		} `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 ApplicableHeaderTradeSettlement"`
	} `xml:"urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100 SupplyChainTradeTransaction"`
}

// readDate is a DateTime element: its udt:DateTimeString.
type readDate struct {
	S struct {
		Format string `xml:"format,attr"`
		Value  string `xml:",chardata"`
	} `xml:"urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100 DateTimeString"`
}

func (d readDate) is(yyyymmdd string) bool { return d.S.Format == "102" && d.S.Value == yyyymmdd }

type readNote struct {
	Content     string `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 Content"`
	SubjectCode string `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 SubjectCode"`
}

type readAmount struct {
	CurrencyID string `xml:"currencyID,attr"`
	Value      string `xml:",chardata"`
}

type readScheme struct {
	SchemeID string `xml:"schemeID,attr"`
	Value    string `xml:",chardata"`
}

type readLine struct {
	LineID   string     `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 AssociatedDocumentLineDocument>LineID"`
	Notes    []readNote `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 AssociatedDocumentLineDocument>IncludedNote"`
	Name     string     `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 SpecifiedTradeProduct>Name"`
	NetPrice string     `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 SpecifiedLineTradeAgreement>NetPriceProductTradePrice>ChargeAmount"`
	Quantity struct {
		UnitCode string `xml:"unitCode,attr"`
		Value    string `xml:",chardata"`
	} `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 SpecifiedLineTradeDelivery>BilledQuantity"`
	Tax       readTax  `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 SpecifiedLineTradeSettlement>ApplicableTradeTax"`
	Start     readDate `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 SpecifiedLineTradeSettlement>BillingSpecifiedPeriod>StartDateTime"`
	LineTotal string   `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 SpecifiedLineTradeSettlement>SpecifiedTradeSettlementLineMonetarySummation>LineTotalAmount"`
}

type readTax struct {
	CalculatedAmount    string `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 CalculatedAmount"`
	TypeCode            string `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 TypeCode"`
	ExemptionReason     string `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 ExemptionReason"`
	BasisAmount         string `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 BasisAmount"`
	CategoryCode        string `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 CategoryCode"`
	ExemptionReasonCode string `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 ExemptionReasonCode"`
	Rate                string `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 RateApplicablePercent"`
}

type readParty struct {
	GlobalID readScheme `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 GlobalID"`
	Name     string     `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 Name"`
	Legal    readScheme `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 SpecifiedLegalOrganization>ID"`
	Address  struct {
		Postcode  string `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 PostcodeCode"`
		LineOne   string `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 LineOne"`
		LineTwo   string `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 LineTwo"`
		LineThree string `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 LineThree"`
		City      string `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 CityName"`
		Country   string `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 CountryID"`
	} `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 PostalTradeAddress"`
	Email  readScheme   `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 URIUniversalCommunication>URIID"`
	TaxReg []readScheme `xml:"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 SpecifiedTaxRegistration>ID"`
}

var decimal2 = regexp.MustCompile(`^-?\d+\.\d{2}$`)

// cents reads an amount with two decimals.
func cents(t tb, what, s string) int64 {
	t.Helper()
	if !decimal2.MatchString(s) {
		t.Fatalf("%s: %q is not an amount with two decimals", what, s)
	}
	neg := strings.HasPrefix(s, "-")
	n, err := strconv.ParseInt(strings.Replace(strings.TrimPrefix(s, "-"), ".", "", 1), 10, 64)
	if err != nil {
		t.Fatalf("%s: %q: %v", what, s, err)
	}
	if neg {
		n = -n
	}
	return n
}

// rateBP reads a percentage with two decimals as basis points.
func rateBP(t tb, what, s string) int { return int(cents(t, what, s)) }

func renderCII(t tb, inv fablab.Invoice, opt Options) ([]byte, readInvoice) {
	t.Helper()
	var buf bytes.Buffer
	if err := CII(inv, paris(t), opt, &buf); err != nil {
		t.Fatalf("CII(%s): %v", inv.Number, err)
	}
	var r readInvoice
	if err := xml.Unmarshal(buf.Bytes(), &r); err != nil {
		t.Fatalf("CII(%s) does not parse: %v\n%s", inv.Number, err, buf.String())
	}
	return buf.Bytes(), r
}

// checkCII checks the arithmetic EN 16931 asks for, and that it matches
// the invoice's totals (times sign: -1 for a credit note stored negative).
func checkCII(t tb, inv fablab.Invoice, r readInvoice, sign int64) {
	t.Helper()
	if r.Context.Guideline != GuidelineEN16931 {
		t.Errorf("guideline %q, want %q", r.Context.Guideline, GuidelineEN16931)
	}
	if r.Document.ID != inv.Number {
		t.Errorf("number %q, want %q", r.Document.ID, inv.Number)
	}
	wantType := "380"
	if inv.Kind == fablab.InvoiceKindCreditNote {
		wantType = "381"
	}
	if r.Document.TypeCode != wantType {
		t.Errorf("type code %q, want %q", r.Document.TypeCode, wantType)
	}
	if d := r.Document.IssueDate; !d.is(inv.IssuedAt.In(paris(t)).Format("20060102")) {
		t.Errorf("issue date %+v", d)
	}
	tr := r.Transaction
	if tr.Delivery == nil {
		t.Errorf("no ApplicableHeaderTradeDelivery")
	}
	if len(tr.Lines) != len(inv.Lines) {
		t.Fatalf("%d lines, want %d", len(tr.Lines), len(inv.Lines))
	}
	var sum int64
	perRate := map[int]int64{}
	for i, l := range tr.Lines {
		what := fmt.Sprintf("line %d", i+1)
		if l.LineID != strconv.Itoa(i+1) {
			t.Errorf("%s: LineID %q", what, l.LineID)
		}
		total := cents(t, what, l.LineTotal)
		if want := sign * inv.Lines[i].AmountCents; total != want {
			t.Errorf("%s: total %d, want %d", what, total, want)
		}
		// quantity × net price = line total, exactly, with a price that
		// is never negative (BR-27).
		qty, err := strconv.ParseInt(l.Quantity.Value, 10, 64)
		if err != nil {
			t.Fatalf("%s: quantity %q: %v", what, l.Quantity.Value, err)
		}
		price := cents(t, what, l.NetPrice)
		if price < 0 || qty*price != total || l.Quantity.UnitCode != "C62" {
			t.Errorf("%s: %d %s × %d ≠ %d", what, qty, l.Quantity.UnitCode, price, total)
		}
		rate := rateBP(t, what, l.Tax.Rate)
		if rate != inv.Lines[i].VATRateBP || l.Tax.TypeCode != "VAT" {
			t.Errorf("%s: tax %+v, want rate %d", what, l.Tax, inv.Lines[i].VATRateBP)
		}
		checkCategory(t, what, l.Tax, rate, inv.VATMention)
		if l.Name != xmlText(inv.Lines[i].Description) {
			t.Errorf("%s: name %q, want %q", what, l.Name, inv.Lines[i].Description)
		}
		sum += total
		perRate[rate] += total
	}
	s := tr.Settlement
	if s.Currency != inv.Currency {
		t.Errorf("currency %q", s.Currency)
	}
	lineTotal := cents(t, "LineTotalAmount", s.Sum.LineTotal)
	if lineTotal != sum || lineTotal != sign*inv.TotalExclCents || cents(t, "TaxBasisTotalAmount", s.Sum.TaxBasisTotal) != lineTotal {
		t.Errorf("LineTotalAmount %d, TaxBasisTotalAmount %s; lines sum to %d, invoice %d", lineTotal, s.Sum.TaxBasisTotal, sum, sign*inv.TotalExclCents)
	}
	if len(s.Taxes) != len(inv.VAT) {
		t.Fatalf("%d header taxes, want %d", len(s.Taxes), len(inv.VAT))
	}
	var taxSum int64
	for i, tax := range s.Taxes {
		what := fmt.Sprintf("header tax %d", i)
		v := inv.VAT[i]
		rate := rateBP(t, what, tax.Rate)
		base, amount := cents(t, what, tax.BasisAmount), cents(t, what, tax.CalculatedAmount)
		if rate != v.RateBP || base != sign*v.BaseCents || amount != sign*v.VATCents || tax.TypeCode != "VAT" {
			t.Errorf("%s: %+v, want %+v", what, tax, v)
		}
		if base != perRate[rate] {
			t.Errorf("%s: basis %d, but the lines at %d bp sum to %d", what, base, rate, perRate[rate])
		}
		checkCategory(t, what, tax, rate, inv.VATMention)
		taxSum += amount
	}
	taxTotal := cents(t, "TaxTotalAmount", s.Sum.TaxTotal.Value)
	if taxTotal != taxSum || taxTotal != sign*inv.TotalVATCents || s.Sum.TaxTotal.CurrencyID != inv.Currency {
		t.Errorf("TaxTotalAmount %+v; taxes sum to %d, invoice %d", s.Sum.TaxTotal, taxSum, sign*inv.TotalVATCents)
	}
	grand := cents(t, "GrandTotalAmount", s.Sum.GrandTotal)
	if grand != lineTotal+taxTotal || grand != sign*inv.TotalInclCents {
		t.Errorf("GrandTotalAmount %d, want %d", grand, sign*inv.TotalInclCents)
	}
	if cents(t, "DuePayableAmount", s.Sum.DuePayable) != grand {
		t.Errorf("DuePayableAmount %s, want %d", s.Sum.DuePayable, grand)
	}
}

func checkCategory(t tb, what string, tax readTax, rate int, mention string) {
	t.Helper()
	switch {
	case rate > 0:
		if tax.CategoryCode != "S" || tax.ExemptionReason != "" {
			t.Errorf("%s: category %q reason %q for %d bp", what, tax.CategoryCode, tax.ExemptionReason, rate)
		}
	case strings.TrimSpace(mention) != "":
		if tax.CategoryCode != "E" || tax.ExemptionReason != xmlText(strings.TrimSpace(mention)) {
			t.Errorf("%s: category %q reason %q, want E with %q", what, tax.CategoryCode, tax.ExemptionReason, mention)
		}
	default:
		if tax.CategoryCode != "Z" {
			t.Errorf("%s: category %q, want Z", what, tax.CategoryCode)
		}
	}
	if tax.CategoryCode != "E" && tax.ExemptionReasonCode != "" {
		t.Errorf("%s: exemption code %q outside category E", what, tax.ExemptionReasonCode)
	}
}

func TestCIIAssociation(t *testing.T) {
	inv := associationInvoice(t)
	_, r := renderCII(t, inv, Options{})
	checkCII(t, inv, r, 1)
	s := r.Transaction.Settlement
	if len(s.Taxes) != 1 || s.Taxes[0].CategoryCode != "E" || s.Taxes[0].ExemptionReasonCode != "VATEX-FR-FRANCHISE" ||
		s.Taxes[0].ExemptionReason != "TVA non applicable, art. 293 B du CGI" {
		t.Errorf("exempt VAT: %+v", s.Taxes)
	}
	if d := s.Terms.DueDate; !d.is("20260501") {
		t.Errorf("due date %+v, want 20260501", d)
	}
	if s.Terms.Description != "Paiement à 30 jours" {
		t.Errorf("payment terms %q", s.Terms.Description)
	}
	// Issued at 00:05 on 1 April in Paris.
	if !r.Document.IssueDate.is("20260401") {
		t.Errorf("issue date %+v, want the lab's date 20260401", r.Document.IssueDate)
	}
	if !s.Period.Start.is("20260301") || !s.Period.End.is("20260331") {
		t.Errorf("period %+v", s.Period)
	}
	if s.Referenced != "" {
		t.Errorf("an invoice references %q", s.Referenced)
	}
	l := r.Transaction.Lines[0]
	if len(l.Notes) != 1 || l.Notes[0].Content != "90 min à 30,00\u00a0€/h" || !l.Start.is("20260303") {
		t.Errorf("line 1: notes %+v, date %+v", l.Notes, l.Start)
	}
	if n := r.Transaction.Lines[2].Notes; len(n) != 0 {
		t.Errorf("a fee has a note of minutes: %+v", n)
	}
	seller := r.Transaction.Seller
	if seller.Name != "Atelier Numérique de Bègles" || seller.Legal != (readScheme{"0002", "123456789"}) ||
		seller.GlobalID != (readScheme{"0009", "12345678900012"}) || len(seller.TaxReg) != 0 ||
		seller.Address.LineOne != "12 rue de l'Église" || seller.Address.Postcode != "33130" ||
		seller.Address.City != "Bègles" || seller.Address.Country != "FR" ||
		seller.Email != (readScheme{"EM", "contact@atelier.example"}) {
		t.Errorf("seller %+v", seller)
	}
	if hasNote(r, "PMT") || !hasNote(r, "PMD") {
		t.Errorf("notes of a member's invoice: %+v", r.Document.Notes)
	}
}

func hasNote(r readInvoice, code string) bool {
	return slices.ContainsFunc(r.Document.Notes, func(n readNote) bool { return n.SubjectCode == code })
}

func TestCIIBusiness(t *testing.T) {
	inv := smeInvoice(t)
	_, r := renderCII(t, inv, Options{})
	checkCII(t, inv, r, 1)
	if !hasNote(r, "PMT") || !hasNote(r, "PMD") || !hasNote(r, "AAB") {
		t.Errorf("notes of a business invoice: %+v", r.Document.Notes)
	}
	s := r.Transaction.Settlement
	if s.Terms.Description != "Paiement à réception" || !s.Terms.DueDate.is("20260201") {
		t.Errorf("terms %+v", s.Terms)
	}
	seller, buyer := r.Transaction.Seller, r.Transaction.Buyer
	if len(seller.TaxReg) != 1 || seller.TaxReg[0] != (readScheme{"VA", "FR32987654321"}) {
		t.Errorf("seller VAT number %+v", seller.TaxReg)
	}
	// One line "8 boulevard Voltaire, 75011 Paris".
	if seller.Address.LineOne != "8 boulevard Voltaire" || seller.Address.Postcode != "75011" || seller.Address.City != "Paris" {
		t.Errorf("seller address %+v", seller.Address)
	}
	if buyer.Name != "Société d'Usinage Fine & Fils <SARL>" || len(buyer.TaxReg) != 1 || buyer.TaxReg[0] != (readScheme{"VA", "FR45123456789"}) ||
		buyer.Legal != (readScheme{"0002", "123456789"}) {
		t.Errorf("buyer %+v", buyer)
	}
	if a := buyer.Address; a.LineOne != "Zone artisanale" || a.LineTwo != "Bâtiment B" || a.Postcode != "69100" || a.City != "Villeurbanne" {
		t.Errorf("buyer address %+v", a)
	}
}

func TestCIICreditNote(t *testing.T) {
	inv := creditNote(t)
	_, r := renderCII(t, inv, Options{CorrectsNumber: creditedNumber})
	checkCII(t, inv, r, -1)
	s := r.Transaction.Settlement
	if s.Referenced != creditedNumber {
		t.Errorf("referenced invoice %q, want %q", s.Referenced, creditedNumber)
	}
	if g := cents(t, "grand total", s.Sum.GrandTotal); g != 5400 {
		t.Errorf("a credit note of 54 € credits %d cents", g)
	}
	if !slices.ContainsFunc(r.Document.Notes, func(n readNote) bool { return n.Content == inv.Reason }) {
		t.Errorf("the reason is not in the notes: %+v", r.Document.Notes)
	}

	// Stored positive, it reads the same.
	pos := inv
	pos.Lines = slices.Clone(inv.Lines)
	pos.Lines[0].AmountCents = -pos.Lines[0].AmountCents
	pos.Totals()
	a, _ := renderCII(t, inv, Options{CorrectsNumber: creditedNumber})
	b, _ := renderCII(t, pos, Options{CorrectsNumber: creditedNumber})
	if !bytes.Equal(a, b) {
		t.Errorf("a credit note stored positive reads differently:\n%s\n%s", a, b)
	}
}

func TestCIIManyLinesAndRates(t *testing.T) {
	inv := longInvoice(t, 120)
	inv.Lines = append(inv.Lines, fablab.InvoiceLine{Description: "Correction : remboursement", At: inv.IssuedAt, AmountCents: -12345, VATRateBP: 2000},
		fablab.InvoiceLine{Description: "Stage d'initiation", At: inv.IssuedAt, AmountCents: 8000, VATRateBP: 0})
	inv.VATMention = "Exonération art. 261-4-4° du CGI"
	inv.Totals()
	_, r := renderCII(t, inv, Options{})
	checkCII(t, inv, r, 1)
	if len(r.Transaction.Settlement.Taxes) != 3 {
		t.Errorf("three rates, %d taxes", len(r.Transaction.Settlement.Taxes))
	}
	neg := r.Transaction.Lines[120]
	if neg.Quantity.Value != "-1" || neg.NetPrice != "123.45" || neg.LineTotal != "-123.45" {
		t.Errorf("a negative line: %+v", neg)
	}
}

// TestCIIRandomInvoices: whatever the lines, the XML's totals are the
// invoice's, the VAT per rate is the sum of that rate's lines, and every
// line is quantity × price.
func TestCIIRandomInvoices(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		inv := associationInvoice(rt)
		if rapid.Bool().Draw(rt, "credit") {
			inv.Kind = fablab.InvoiceKindCreditNote
		}
		inv.Business = rapid.Bool().Draw(rt, "business")
		inv.VATMention = rapid.SampledFrom([]string{"", "TVA non applicable, art. 293 B du CGI"}).Draw(rt, "mention")
		n := rapid.IntRange(0, 40).Draw(rt, "lines")
		inv.Lines = nil
		for i := range n {
			l := fablab.InvoiceLine{
				ChargeID:    fablab.ID(i + 1),
				Description: rapid.StringN(0, 30, -1).Draw(rt, "description"),
				At:          inv.IssuedAt.Add(-time.Duration(rapid.IntRange(0, 40*24).Draw(rt, "hours_before")) * time.Hour),
				VATRateBP:   rapid.SampledFrom([]int{0, 550, 1000, 2000}).Draw(rt, "rate"),
			}
			if rapid.Bool().Draw(rt, "minutes") {
				l.Minutes = rapid.Int64Range(1, 6000).Draw(rt, "minutes_n")
				l.UnitCents = rapid.Int64Range(0, 20000).Draw(rt, "per_hour")
				l.AmountCents = fablab.PerHour(l.Minutes, l.UnitCents)
			} else {
				l.UnitCents = rapid.Int64Range(0, 50000).Draw(rt, "fee")
				l.AmountCents = l.UnitCents
			}
			if rapid.IntRange(0, 4).Draw(rt, "negative") == 0 {
				l.AmountCents = -l.AmountCents
			}
			inv.Lines = append(inv.Lines, l)
		}
		inv.Totals()
		_, r := renderCII(rt, inv, Options{CorrectsNumber: creditedNumber})
		sign := int64(1)
		if inv.Kind == fablab.InvoiceKindCreditNote && inv.TotalInclCents < 0 {
			sign = -1
		}
		checkCII(rt, inv, r, sign)
	})
}

// sameXMLText reports whether got is want as XML can carry it: equal, but
// where want has a character XML 1.0 cannot hold (or a byte that is not
// UTF-8), got has U+FFFD.
func sameXMLText(want, got string) bool {
	g := []rune(got)
	i := 0
	for len(want) > 0 {
		r, size := utf8.DecodeRuneInString(want)
		want = want[size:]
		allowed := r == '\t' || r == '\n' || r == '\r' || (r >= 0x20 && r <= 0xD7FF) ||
			(r >= 0xE000 && r <= 0xFFFD && !(r == utf8.RuneError && size == 1)) || (r >= 0x10000 && r <= 0x10FFFF)
		if i >= len(g) {
			return false
		}
		if allowed && g[i] != r || !allowed && g[i] != utf8.RuneError {
			return false
		}
		i++
	}
	return i == len(g)
}

// FuzzCIIEscapes: any text in names and descriptions gives well-formed
// XML that reads back as the same text.
func FuzzCIIEscapes(f *testing.F) {
	for _, s := range [][3]string{
		{"Fab & Co <SAS>", `"Quoted" 'name'`, "]]> <![CDATA[ x ]]>"},
		{"Élodie\tÇaron\r\n", "\x00\x01\x1f", "\xff\xfe invalid UTF-8"},
		{"&amp; &#x0; &lt;", "\uFFFE\uFFFF\U0001F600", "  leading and trailing  "},
		{"</ram:Name><ram:Name>injected", "a\rb\nc", "€ — ’"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, seller, buyer, desc string) {
		inv := smeInvoice(t)
		inv.Seller.Name, inv.Buyer.Name = seller, buyer
		inv.Lines[1].Description = desc
		inv.Reason = desc
		var buf bytes.Buffer
		err := CII(inv, paris(t), Options{}, &buf)
		if strings.TrimSpace(seller) == "" || strings.TrimSpace(buyer) == "" {
			if fablab.ErrorCode(err) != fablab.EINVALID {
				t.Fatalf("a blank party name: %v", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("CII: %v", err)
		}
		var r readInvoice
		if err := xml.Unmarshal(buf.Bytes(), &r); err != nil {
			t.Fatalf("not XML: %v\n%s", err, buf.String())
		}
		for _, c := range []struct{ what, want, got string }{
			{"seller", seller, r.Transaction.Seller.Name},
			{"buyer", buyer, r.Transaction.Buyer.Name},
			{"description", desc, r.Transaction.Lines[1].Name},
		} {
			if !sameXMLText(c.want, c.got) {
				t.Errorf("%s %q reads back as %q", c.what, c.want, c.got)
			}
		}
		// The PDF takes the same text without failing.
		if err := PDF(inv, paris(t), Options{}, io.Discard); err != nil {
			t.Errorf("PDF: %v", err)
		}
	})
}
