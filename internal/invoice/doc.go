// Package invoice renders an issued fablab.Invoice as the documents a lab
// hands out: a PDF in French for the payer (PDF), the structured
// UN/CEFACT Cross Industry Invoice of EN 16931 for accounting software and
// e-invoicing platforms (CII), and a CSV of invoices for the accountant
// (InvoicesCSV). The renderers never change an invoice: they read what was
// fixed at issue.
//
// # Legal mentions on the PDF (France)
//
// Code de commerce L441-9 and R123-237, CGI art. 242 nonies A:
//   - "Facture" or "Avoir", the number (gap-free, from the store), the issue
//     date, the due date and the period of the uses, dates in the lab's zone;
//   - the seller's name, address, SIRET and VAT number when it has one; the
//     buyer's name, address and VAT number when given;
//   - per line: the date, what was used, the minutes, the unit price excluding
//     VAT (per hour, or the fee), the amount excluding VAT and the VAT rate;
//   - Total HT, the VAT per rate with its base, or the exemption mention
//     ("TVA non applicable, art. 293 B du CGI") when no VAT is charged,
//     Total TTC;
//   - the payment terms ("Paiement à 30 jours", "Paiement à réception" when
//     due on the issue date), the late-payment penalty (the invoice's own, or
//     fablab.DefaultLatePenalty, the legal minimum) and, for a business buyer,
//     the 40 € fixed recovery indemnity (L441-10, D441-5) and the absence of
//     discount for early payment;
//   - for a credit note, the number of the invoice it corrects
//     (Options.CorrectsNumber, required) and its reason.
//
// The PDF uses fpdf's core fonts with the cp1252 code page: French accents,
// the euro sign and the no-break space print; a character outside cp1252
// prints as "?" (the CII keeps the exact text). Output is deterministic: the
// document dates are the issue instant and catalogs are sorted.
//
// # EN 16931 choices in the CII
//
//   - Profile: urn:cen.eu:en16931:2017 (Factur-X "EN 16931").
//   - Credit notes: TypeCode 381 with positive amounts equal to the credited
//     values, and the corrected invoice in InvoiceReferencedDocument. The
//     ledger writes corrections as negative lines, so a credit note may be
//     stored with a negative total: every document (PDF and CII alike) then
//     shows its amounts negated, so that a credit note always reads as the
//     positive amount credited. An invoice (380) keeps its signs: an
//     invoice whose corrections exceed its charges has a negative total,
//     which EN 16931 allows.
//   - Lines: BilledQuantity 1 (or -1 for a negative line) with unit code
//     C62 ("one", the line as a whole) and NetPriceProductTradePrice the
//     line's absolute amount, so that quantity × net price equals the line
//     total exactly in cents (BR-LIN rules) and the net price is never
//     negative (BR-27). A price per minute would not do: an amount is
//     minutes × hourly rate rounded to the cent, or a minimum charge. The
//     minutes and the hourly rate are in the line's note (BT-127), the date
//     of the use in the line's period (BT-134/135).
//   - VAT: category S for a positive rate; E (exempt) with the invoice's
//     mention as ExemptionReason when the rate is 0 and a mention is set
//     (with the code VATEX-FR-FRANCHISE when the mention cites art. 293 B);
//     Z (zero rated) for a rate of 0 without a mention. One header
//     ApplicableTradeTax per rate, equal to the invoice's VAT lines, which
//     fablab.Invoice.Totals computes once per rate as EN 16931 does.
//   - Parties: BT-30 (SpecifiedLegalOrganization) is the SIREN with scheme
//     0002, taken from a 14-digit SIRET's first 9 digits (or a 9-digit
//     SIREN as given); a 14-digit SIRET is also the party's GlobalID with
//     scheme 0009. The VAT number is the SpecifiedTaxRegistration with
//     scheme VA. Addresses are free text: the last line "75011 Paris" gives
//     the postcode and city, the lines before it the street lines; the
//     country is FR.
//   - Notes: the late-payment penalty with subject code PMD, the 40 €
//     indemnity with PMT and "no discount" with AAB for a business buyer
//     (the French practice for these mentions), a credit note's reason.
//   - A lab exempt under art. 293 B has no VAT number: BR-E-2 asks for one
//     (or a tax registration, BT-32) on an invoice with exempt lines, and
//     none is written then; validators that enforce BR-E-2 will report it.
//
// Amounts are written with fablab.FormatDecimal ("1234.56"); all text goes
// through encoding/xml's escaping, and characters XML 1.0 cannot carry are
// replaced by U+FFFD.
//
// # CSV
//
// InvoicesCSV writes one row per invoice and VAT rate (an invoice without
// lines still gets one row, so the numbering has no holes in the
// accountant's list), signed as revenue: a credit note's amounts are
// negative, so that summing a column gives the net.
package invoice
