package invoice

import (
	"fmt"
	"time"

	"github.com/fabgate/fabgate/internal/fablab"
)

// paris is the lab's zone in these tests.
func paris(t tb) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatalf("load Europe/Paris: %v", err)
	}
	return loc
}

// at is a wall-clock time in Paris.
func at(t tb, y int, m time.Month, d, hh, mm int) time.Time {
	return time.Date(y, m, d, hh, mm, 0, 0, paris(t))
}

func minuteLine(id fablab.ID, at time.Time, desc string, minutes, perHour int64, rate int) fablab.InvoiceLine {
	return fablab.InvoiceLine{ChargeID: id, Description: desc, At: at, Minutes: minutes, UnitCents: perHour,
		AmountCents: fablab.PerHour(minutes, perHour), VATRateBP: rate}
}

func feeLine(id fablab.ID, at time.Time, desc string, fee int64, rate int) fablab.InvoiceLine {
	return fablab.InvoiceLine{ChargeID: id, Description: desc, At: at, UnitCents: fee, AmountCents: fee, VATRateBP: rate}
}

// associationInvoice is a VAT-exempt lab (art. 293 B) billing a member.
// It is issued five minutes after midnight in Paris on 1 April, still
// 31 March in UTC: its dates must read 01/04/2026.
func associationInvoice(t tb) fablab.Invoice {
	issued := at(t, 2026, time.April, 1, 0, 5)
	inv := fablab.Invoice{
		ID: 7, Number: "FG-2026-000007", Kind: fablab.InvoiceKindInvoice,
		Payer: fablab.Payer{Kind: fablab.PayerIsMember, ID: 12}, Period: "2026-03",
		IssuedAt: issued, DueAt: issued.AddDate(0, 0, 30),
		Seller: fablab.InvoiceParty{Name: "Atelier Numérique de Bègles", Address: "12 rue de l'Église\n33130 Bègles",
			SIRET: "123 456 789 00012", Email: "contact@atelier.example"},
		Buyer:      fablab.InvoiceParty{Name: "Élodie Çaron", Address: "3 allée des Pins\n33000 Bordeaux"},
		Currency:   "EUR",
		VATMention: "TVA non applicable, art. 293 B du CGI",
		Lines: []fablab.InvoiceLine{
			minuteLine(101, at(t, 2026, time.March, 3, 18, 40), "Découpe laser — Trotec Speedy 300", 90, 3000, 0),
			minuteLine(102, at(t, 2026, time.March, 14, 11, 0), "Impression 3D — Prusa MK4", 45, 1200, 0),
			feeLine(103, at(t, 2026, time.March, 21, 9, 0), "Absence sans annulation — fraiseuse CNC", 1500, 0),
		},
	}
	inv.Totals()
	return inv
}

// smeInvoice is a lab charging 20 % VAT to a company, due on receipt,
// with amounts past a thousand euros.
func smeInvoice(t tb) fablab.Invoice {
	issued := at(t, 2026, time.February, 1, 2, 0)
	inv := fablab.Invoice{
		ID: 9, Number: "FG-2026-000009", Kind: fablab.InvoiceKindInvoice,
		Payer: fablab.Payer{Kind: fablab.PayerIsOrganisation, ID: 3}, Period: "2026-01",
		IssuedAt: issued, DueAt: issued,
		Seller: fablab.InvoiceParty{Name: "FabLab Métropole SAS", Address: "8 boulevard Voltaire, 75011 Paris",
			SIRET: "98765432100027", VATNumber: "FR 32 987654321"},
		Buyer: fablab.InvoiceParty{Name: "Société d'Usinage Fine & Fils <SARL>", Address: "Zone artisanale\nBâtiment B\n69100 Villeurbanne",
			VATNumber: "FR45123456789", SIRET: "12345678900011"},
		Business:    true,
		Currency:    "EUR",
		LatePenalty: "Pénalités de retard : 3 fois le taux d'intérêt légal.",
		Lines: []fablab.InvoiceLine{
			minuteLine(201, at(t, 2026, time.January, 12, 17, 0), "Fraiseuse CNC — usinage prototype", 3000, 4500, 2000),
			minuteLine(202, at(t, 2026, time.January, 19, 10, 0), "Découpe laser", 37, 3333, 2000),
			feeLine(203, at(t, 2026, time.January, 26, 14, 0), "Absence sans annulation", 2500, 2000),
		},
	}
	inv.Totals()
	return inv
}

// creditNote credits a session billed twice, stored as the ledger writes
// corrections: negative.
func creditNote(t tb) fablab.Invoice {
	issued := at(t, 2026, time.April, 15, 10, 0)
	line := minuteLine(301, at(t, 2026, time.March, 3, 18, 40), "Annulation : séance comptée deux fois", 60, 4500, 2000)
	line.AmountCents, line.Minutes = -line.AmountCents, -line.Minutes
	inv := fablab.Invoice{
		ID: 15, Number: "FG-2026-000015", Kind: fablab.InvoiceKindCreditNote, Corrects: 12,
		Payer: fablab.Payer{Kind: fablab.PayerIsOrganisation, ID: 3}, Period: "2026-03",
		IssuedAt: issued, DueAt: issued,
		Seller:   fablab.InvoiceParty{Name: "FabLab Métropole SAS", Address: "8 boulevard Voltaire\n75011 Paris", SIRET: "98765432100027", VATNumber: "FR32987654321"},
		Buyer:    fablab.InvoiceParty{Name: "Société d'Usinage Fine & Fils", Address: "69100 Villeurbanne", VATNumber: "FR45123456789"},
		Business: true, Currency: "EUR", Reason: "Séance facturée deux fois",
		Lines: []fablab.InvoiceLine{line},
	}
	inv.Totals()
	return inv
}

const creditedNumber = "FG-2026-000012"

// longInvoice has n lines at two rates: its table spans pages.
func longInvoice(t tb, n int) fablab.Invoice {
	inv := smeInvoice(t)
	inv.Number = "FG-2026-000042"
	inv.Lines = nil
	for i := range n {
		rate := 2000
		if i%7 == 3 {
			rate = 550
		}
		day := at(t, 2026, time.January, 1+i%28, 9+i%10, 0)
		if i%5 == 4 {
			inv.Lines = append(inv.Lines, feeLine(fablab.ID(1000+i), day, fmt.Sprintf("Absence n°%03d — imprimante résine", i), int64(500+i), rate))
			continue
		}
		inv.Lines = append(inv.Lines, minuteLine(fablab.ID(1000+i), day, fmt.Sprintf("Séance n°%03d — découpe laser Trotec", i), int64(15+i*7), 1999+int64(i), rate))
	}
	inv.Totals()
	return inv
}

// tb is what the helpers need of *testing.T and *rapid.T alike.
type tb interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}
