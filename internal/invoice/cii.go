package invoice

import (
	"encoding/xml"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fabgate/fabgate/internal/fablab"
)

// The namespaces of the UN/CEFACT Cross Industry Invoice (D16B).
const (
	NSRsm = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
	NSRam = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
	NSQdt = "urn:un:unece:uncefact:data:standard:QualifiedDataType:100"
	NSUdt = "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100"
	// GuidelineEN16931 is the specification identifier (BT-24) of EN 16931
	// without extension: Factur-X's EN 16931 profile.
	GuidelineEN16931 = "urn:cen.eu:en16931:2017"
)

// Document type codes (UNTDID 1001).
const (
	TypeCodeInvoice    = "380"
	TypeCodeCreditNote = "381"
)

// The elements are named with their prefix: encoding/xml writes the names
// as given, and the root declares the prefixes.
type ciiInvoice struct {
	XMLName     xml.Name           `xml:"rsm:CrossIndustryInvoice"`
	Rsm         string             `xml:"xmlns:rsm,attr"`
	Qdt         string             `xml:"xmlns:qdt,attr"`
	Ram         string             `xml:"xmlns:ram,attr"`
	Udt         string             `xml:"xmlns:udt,attr"`
	Context     ciiContext         `xml:"rsm:ExchangedDocumentContext"`
	Document    ciiDocument        `xml:"rsm:ExchangedDocument"`
	Transaction ciiTradeTransction `xml:"rsm:SupplyChainTradeTransaction"`
}

type ciiContext struct {
	Guideline ciiID `xml:"ram:GuidelineSpecifiedDocumentContextParameter"`
}

type ciiID struct {
	ID ciiText `xml:"ram:ID"`
}

// ciiText is an element's text, with an optional schemeID.
type ciiText struct {
	SchemeID string `xml:"schemeID,attr,omitempty"`
	Value    string `xml:",chardata"`
}

type ciiDocument struct {
	ID        string    `xml:"ram:ID"`
	TypeCode  string    `xml:"ram:TypeCode"`
	IssueDate ciiDate   `xml:"ram:IssueDateTime"`
	Notes     []ciiNote `xml:"ram:IncludedNote"`
}

type ciiDate struct {
	Value ciiDateString `xml:"udt:DateTimeString"`
}

type ciiDateString struct {
	Format string `xml:"format,attr"`
	Value  string `xml:",chardata"`
}

type ciiNote struct {
	Content     string `xml:"ram:Content"`
	SubjectCode string `xml:"ram:SubjectCode,omitempty"`
}

type ciiTradeTransction struct {
	Lines      []ciiLine         `xml:"ram:IncludedSupplyChainTradeLineItem"`
	Agreement  ciiAgreement      `xml:"ram:ApplicableHeaderTradeAgreement"`
	Delivery   struct{}          `xml:"ram:ApplicableHeaderTradeDelivery"`
	Settlement ciiHeaderSettlmnt `xml:"ram:ApplicableHeaderTradeSettlement"`
}

type ciiLine struct {
	Document   ciiLineDocument   `xml:"ram:AssociatedDocumentLineDocument"`
	Product    ciiProduct        `xml:"ram:SpecifiedTradeProduct"`
	Agreement  ciiLineAgreement  `xml:"ram:SpecifiedLineTradeAgreement"`
	Delivery   ciiLineDelivery   `xml:"ram:SpecifiedLineTradeDelivery"`
	Settlement ciiLineSettlement `xml:"ram:SpecifiedLineTradeSettlement"`
}

type ciiLineDocument struct {
	LineID string    `xml:"ram:LineID"`
	Notes  []ciiNote `xml:"ram:IncludedNote"`
}

type ciiProduct struct {
	Name string `xml:"ram:Name"`
}

type ciiLineAgreement struct {
	NetPrice ciiPrice `xml:"ram:NetPriceProductTradePrice"`
}

type ciiPrice struct {
	ChargeAmount string `xml:"ram:ChargeAmount"`
}

type ciiLineDelivery struct {
	BilledQuantity ciiQuantity `xml:"ram:BilledQuantity"`
}

type ciiQuantity struct {
	UnitCode string `xml:"unitCode,attr"`
	Value    string `xml:",chardata"`
}

type ciiLineSettlement struct {
	Tax       ciiTax        `xml:"ram:ApplicableTradeTax"`
	Period    *ciiPeriod    `xml:"ram:BillingSpecifiedPeriod,omitempty"`
	Summation ciiLineAmount `xml:"ram:SpecifiedTradeSettlementLineMonetarySummation"`
}

type ciiLineAmount struct {
	LineTotalAmount string `xml:"ram:LineTotalAmount"`
}

// ciiTax is a TradeTaxType; its elements in the schema's order.
type ciiTax struct {
	CalculatedAmount    string `xml:"ram:CalculatedAmount,omitempty"`
	TypeCode            string `xml:"ram:TypeCode"`
	ExemptionReason     string `xml:"ram:ExemptionReason,omitempty"`
	BasisAmount         string `xml:"ram:BasisAmount,omitempty"`
	CategoryCode        string `xml:"ram:CategoryCode"`
	ExemptionReasonCode string `xml:"ram:ExemptionReasonCode,omitempty"`
	RatePercent         string `xml:"ram:RateApplicablePercent"`
}

type ciiPeriod struct {
	Start ciiDate `xml:"ram:StartDateTime"`
	End   ciiDate `xml:"ram:EndDateTime"`
}

type ciiAgreement struct {
	Seller ciiParty `xml:"ram:SellerTradeParty"`
	Buyer  ciiParty `xml:"ram:BuyerTradeParty"`
}

type ciiParty struct {
	GlobalID *ciiText       `xml:"ram:GlobalID,omitempty"`
	Name     string         `xml:"ram:Name"`
	Legal    *ciiID         `xml:"ram:SpecifiedLegalOrganization,omitempty"`
	Address  ciiAddress     `xml:"ram:PostalTradeAddress"`
	URI      *ciiURI        `xml:"ram:URIUniversalCommunication,omitempty"`
	TaxReg   []ciiTaxRegist `xml:"ram:SpecifiedTaxRegistration"`
}

type ciiAddress struct {
	Postcode  string `xml:"ram:PostcodeCode,omitempty"`
	LineOne   string `xml:"ram:LineOne,omitempty"`
	LineTwo   string `xml:"ram:LineTwo,omitempty"`
	LineThree string `xml:"ram:LineThree,omitempty"`
	City      string `xml:"ram:CityName,omitempty"`
	CountryID string `xml:"ram:CountryID"`
}

type ciiURI struct {
	ID ciiText `xml:"ram:URIID"`
}

type ciiTaxRegist struct {
	ID ciiText `xml:"ram:ID"`
}

type ciiHeaderSettlmnt struct {
	Currency   string            `xml:"ram:InvoiceCurrencyCode"`
	Taxes      []ciiTax          `xml:"ram:ApplicableTradeTax"`
	Period     *ciiPeriod        `xml:"ram:BillingSpecifiedPeriod,omitempty"`
	Terms      ciiPaymentTerms   `xml:"ram:SpecifiedTradePaymentTerms"`
	Summation  ciiHeaderSummatn  `xml:"ram:SpecifiedTradeSettlementHeaderMonetarySummation"`
	Referenced *ciiReferencedDoc `xml:"ram:InvoiceReferencedDocument,omitempty"`
}

type ciiPaymentTerms struct {
	Description string   `xml:"ram:Description,omitempty"`
	DueDate     *ciiDate `xml:"ram:DueDateDateTime,omitempty"`
}

type ciiHeaderSummatn struct {
	LineTotalAmount     string    `xml:"ram:LineTotalAmount"`
	TaxBasisTotalAmount string    `xml:"ram:TaxBasisTotalAmount"`
	TaxTotalAmount      ciiAmount `xml:"ram:TaxTotalAmount"`
	GrandTotalAmount    string    `xml:"ram:GrandTotalAmount"`
	DuePayableAmount    string    `xml:"ram:DuePayableAmount"`
}

type ciiAmount struct {
	CurrencyID string `xml:"currencyID,attr"`
	Value      string `xml:",chardata"`
}

type ciiReferencedDoc struct {
	IssuerAssignedID string `xml:"ram:IssuerAssignedID"`
}

// CII writes inv to w as a UN/CEFACT Cross Industry Invoice following
// EN 16931 (see the package documentation for the choices made), dates in
// loc. Errors: EINVALID when the invoice cannot be shown, else w's.
func CII(inv fablab.Invoice, loc *time.Location, opt Options, w io.Writer) error {
	d, err := prepare(inv, loc, opt)
	if err != nil {
		return err
	}
	doc := buildCII(d)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	_, err = io.WriteString(w, "\n")
	return err
}

func buildCII(d *document) *ciiInvoice {
	inv := d.inv
	t := xmlText
	typeCode := TypeCodeInvoice
	if d.credit {
		typeCode = TypeCodeCreditNote
	}
	mention := strings.TrimSpace(inv.VATMention)
	x := &ciiInvoice{Rsm: NSRsm, Qdt: NSQdt, Ram: NSRam, Udt: NSUdt}
	x.Context.Guideline.ID.Value = GuidelineEN16931
	x.Document = ciiDocument{ID: t(inv.Number), TypeCode: typeCode, IssueDate: date102(inv.IssuedAt, d.loc)}
	if d.credit && strings.TrimSpace(inv.Reason) != "" {
		x.Document.Notes = append(x.Document.Notes, ciiNote{Content: t(inv.Reason)})
	}
	x.Document.Notes = append(x.Document.Notes, ciiNote{Content: t(latePenalty(inv)), SubjectCode: "PMD"})
	if inv.Business {
		x.Document.Notes = append(x.Document.Notes,
			ciiNote{Content: indemnityMention, SubjectCode: "PMT"},
			ciiNote{Content: noDiscountMention, SubjectCode: "AAB"})
	}

	tr := &x.Transaction
	for i, l := range inv.Lines {
		qty, price := "1", l.AmountCents
		if price < 0 {
			qty, price = "-1", -price
		}
		line := ciiLine{
			Document:  ciiLineDocument{LineID: strconv.Itoa(i + 1)},
			Product:   ciiProduct{Name: t(l.Description)},
			Agreement: ciiLineAgreement{NetPrice: ciiPrice{ChargeAmount: fablab.FormatDecimal(price)}},
			Delivery:  ciiLineDelivery{BilledQuantity: ciiQuantity{UnitCode: "C62", Value: qty}},
			Settlement: ciiLineSettlement{
				Tax:       lineTax(l.VATRateBP, mention),
				Summation: ciiLineAmount{LineTotalAmount: fablab.FormatDecimal(l.AmountCents)},
			},
		}
		if note := lineNote(l, inv.Currency); note != "" {
			line.Document.Notes = []ciiNote{{Content: note}}
		}
		if !l.At.IsZero() {
			day := date102(l.At, d.loc)
			line.Settlement.Period = &ciiPeriod{Start: day, End: day}
		}
		tr.Lines = append(tr.Lines, line)
	}

	tr.Agreement.Seller = ciiPartyOf(inv.Seller)
	tr.Agreement.Buyer = ciiPartyOf(inv.Buyer)

	s := &tr.Settlement
	s.Currency = inv.Currency
	for _, v := range inv.VAT {
		tax := lineTax(v.RateBP, mention)
		tax.CalculatedAmount = fablab.FormatDecimal(v.VATCents)
		tax.BasisAmount = fablab.FormatDecimal(v.BaseCents)
		s.Taxes = append(s.Taxes, tax)
	}
	if d.period != nil {
		last := d.period.Next().Start(time.UTC).AddDate(0, 0, -1)
		s.Period = &ciiPeriod{
			Start: ciiDate{ciiDateString{Format: "102", Value: d.period.Start(time.UTC).Format("20060102")}},
			End:   ciiDate{ciiDateString{Format: "102", Value: last.Format("20060102")}},
		}
	}
	if d.credit {
		s.Terms.Description = "Avoir sur la facture " + t(d.corrects)
	} else {
		due := date102(inv.DueAt, d.loc)
		s.Terms = ciiPaymentTerms{Description: paymentTerms(inv.IssuedAt, inv.DueAt, d.loc), DueDate: &due}
	}
	s.Summation = ciiHeaderSummatn{
		LineTotalAmount:     fablab.FormatDecimal(inv.TotalExclCents),
		TaxBasisTotalAmount: fablab.FormatDecimal(inv.TotalExclCents),
		TaxTotalAmount:      ciiAmount{CurrencyID: inv.Currency, Value: fablab.FormatDecimal(inv.TotalVATCents)},
		GrandTotalAmount:    fablab.FormatDecimal(inv.TotalInclCents),
		DuePayableAmount:    fablab.FormatDecimal(inv.TotalInclCents),
	}
	if d.credit {
		s.Referenced = &ciiReferencedDoc{IssuerAssignedID: t(d.corrects)}
	}
	return x
}

// lineTax is the VAT category of a rate: S for a positive rate, E with the
// mention as the reason for 0 with a mention, Z for 0 without one.
func lineTax(rateBP int, mention string) ciiTax {
	tax := ciiTax{TypeCode: "VAT", CategoryCode: "S", RatePercent: fablab.FormatDecimal(int64(rateBP))}
	if rateBP == 0 {
		tax.CategoryCode = "Z"
		if mention != "" {
			tax.CategoryCode = "E"
			tax.ExemptionReason = xmlText(mention)
			if strings.Contains(strings.ReplaceAll(mention, nbsp, " "), "293 B") {
				tax.ExemptionReasonCode = "VATEX-FR-FRANCHISE"
			}
		}
	}
	return tax
}

// lineNote says what a line's amount is made of: "90 min à 45,00 €/h".
func lineNote(l fablab.InvoiceLine, currency string) string {
	if l.Minutes == 0 {
		return ""
	}
	return strconv.FormatInt(abs(l.Minutes), 10) + " min à " + frenchMoney(abs(l.UnitCents), currency) + "/h"
}

func date102(t time.Time, loc *time.Location) ciiDate {
	return ciiDate{ciiDateString{Format: "102", Value: t.In(loc).Format("20060102")}}
}

var postcodeCity = regexp.MustCompile(`^(?:F-|FR-)?(\d{5})\s+(.+)$`)

func ciiPartyOf(p fablab.InvoiceParty) ciiParty {
	t := xmlText
	out := ciiParty{Name: t(p.Name), Address: ciiAddress{CountryID: "FR"}}
	siret := strings.Join(strings.Fields(p.SIRET), "")
	if digits(siret) {
		switch len(siret) {
		case 14:
			out.GlobalID = &ciiText{SchemeID: "0009", Value: siret}
			out.Legal = &ciiID{ID: ciiText{SchemeID: "0002", Value: siret[:9]}}
		case 9:
			out.Legal = &ciiID{ID: ciiText{SchemeID: "0002", Value: siret}}
		}
	}
	if out.Legal == nil && strings.TrimSpace(p.SIRET) != "" {
		out.Legal = &ciiID{ID: ciiText{Value: t(strings.TrimSpace(p.SIRET))}}
	}
	lines := addressLines(p.Address)
	if len(lines) == 1 {
		// "12 rue des Lilas, 75011 Paris" on one line.
		if i := strings.LastIndex(lines[0], ","); i > 0 && postcodeCity.MatchString(strings.TrimSpace(lines[0][i+1:])) {
			lines = []string{strings.TrimSpace(lines[0][:i]), strings.TrimSpace(lines[0][i+1:])}
		}
	}
	if n := len(lines); n > 0 {
		if m := postcodeCity.FindStringSubmatch(lines[n-1]); m != nil {
			out.Address.Postcode, out.Address.City = m[1], t(m[2])
			lines = lines[:n-1]
		}
	}
	if len(lines) > 3 {
		lines = append(lines[:2], strings.Join(lines[2:], ", "))
	}
	slots := []*string{&out.Address.LineOne, &out.Address.LineTwo, &out.Address.LineThree}
	for i, l := range lines {
		*slots[i] = t(l)
	}
	if e := strings.TrimSpace(p.Email); e != "" {
		out.URI = &ciiURI{ID: ciiText{SchemeID: "EM", Value: t(e)}}
	}
	if v := strings.Join(strings.Fields(p.VATNumber), ""); v != "" {
		out.TaxReg = []ciiTaxRegist{{ID: ciiText{SchemeID: "VA", Value: t(v)}}}
	}
	return out
}

func digits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// xmlText replaces what XML 1.0 cannot carry (invalid UTF-8, control
// characters other than tab, newline and carriage return, U+FFFE, U+FFFF
// and lone surrogates) with U+FFFD, so that the text read back is the text
// written, character for character, wherever it could be written at all.
func xmlText(s string) string {
	ok := true
	for _, r := range s {
		if !xmlChar(r) {
			ok = false
			break
		}
	}
	if ok && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if !xmlChar(r) {
			r = utf8.RuneError
		}
		b.WriteRune(r)
	}
	return b.String()
}

func xmlChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}
