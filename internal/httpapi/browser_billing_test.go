package httpapi

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/browsertest"
	"github.com/fabgate/fabgate/internal/fablab"
)

// TestBrowserBilling: staff run February's invoices from /staff/invoices,
// open alice's, are refused a credit note larger than the invoice (the
// reason next to the amount), issue a smaller one and mark the invoice
// paid; alice then opens /charges on a phone and finds the invoice with
// its PDF link. The clock reads Monday 2 March 2026; the uses were in
// February.
func TestBrowserBilling(t *testing.T) {
	t.Parallel()
	h := newAPIHarness(t)
	ctx := context.Background()
	prices := map[string]int64{}
	for _, g := range fablab.DefaultTariffGroups() {
		prices[g.ID] = 1200
	}
	router := apiSeedMachine(t, h.store, fablab.Machine{Name: "Router", Kind: fablab.KindCNC, Prices: prices})
	seedSession(t, h, router.ID, h.alice, time.Date(2026, 2, 10, 10, 0, 0, 0, apiParis), 90*time.Minute) // 18.00
	seedSession(t, h, router.ID, h.bob, time.Date(2026, 2, 11, 10, 0, 0, 0, apiParis), time.Hour)        // 12.00

	b := browsertest.Start(t)
	tab := b.NewTab(t, browsertest.TabOptions{BaseURL: h.srv.URL})
	browserCookieLogin(t, h, tab, h.staff)
	tab.Go("/staff/invoices")
	tab.WaitText("main h1", "Invoices")
	var month string
	tab.Eval(`document.querySelector("#run-period").value`, &month)
	if month != "2026-02" {
		t.Errorf("the run form proposes %q, want the last month ended, 2026-02", month)
	}
	tab.WaitText("main", "No invoice matches.")
	checkPage(t, tab, "invoices-empty")

	// Staff reading French who ask for March, not over yet (a page left
	// open since before midnight would not stop them: its form's max is
	// lifted here), read why next to the month, in French.
	fr := b.NewTab(t, browsertest.TabOptions{BaseURL: h.srv.URL, Lang: "fr"})
	browserCookieLogin(t, h, fr, h.staff)
	fr.Go("/staff/invoices")
	fr.WaitText("main h1", "Factures")
	fr.Eval(`document.querySelector("#run-period").removeAttribute("max")`, nil)
	fr.Fill("#run-period", "2026-03")
	fr.Click("form[data-run] button[type=submit]")
	fr.WaitText("#run-period-error", "Le mois de mars 2026 n'est pas terminé : ses factures pourront être émises à partir du mercredi 1er avril 2026.")
	var invalid string
	fr.Eval(`document.querySelector("#run-period").getAttribute("aria-invalid")`, &invalid)
	if invalid != "true" {
		t.Errorf("the refused month: aria-invalid %q, want it marked", invalid)
	}
	noPageErrors(t, fr, "status of 400 (Bad Request) ("+h.srv.URL+"/api/v1/invoices/run?period=2026-03)")

	// Run February.
	tab.Click("form[data-run] button[type=submit]")
	eventually(t, "the run's result page", func() bool {
		return pageState(tab, `location.search.includes("ran=true") && document.readyState === "complete"`)
	})
	tab.WaitText("[data-run-result]", "Invoices of February 2026 issued: 2.")
	tab.WaitText("table[data-invoices]", "Alice Maker")
	tab.WaitText("table[data-invoices]", "Bob Maker")
	checkPage(t, tab, "invoices-run")
	alice := fablab.Payer{Kind: fablab.PayerIsMember, ID: h.alice.ID}
	invs, err := h.store.Invoices(ctx, bolt.InvoiceFilter{Payer: &alice})
	if err != nil || len(invs) != 1 || invs[0].TotalInclCents != 1800 {
		t.Fatalf("alice's invoices after the run: %+v (%v), want one of 18.00", invs, err)
	}
	inv := invs[0]
	id := inv.ID.String()

	// Open it.
	tab.Click(`table[data-invoices] a[href="/staff/invoices/` + id + `"]`)
	waitAt(t, tab, "/staff/invoices/"+id)
	tab.WaitText("main h1", "Invoice "+inv.Number)
	tab.WaitText("table[data-lines]", "Utilisation — Router, 10/02/2026, 90 min")
	tab.WaitText("[data-totals]", "TVA non applicable")
	checkPage(t, tab, "invoice")

	// A credit note larger than the invoice: refused next to the amount.
	tab.Fill("#cn-amount", "30")
	tab.Fill("#cn-reason", "Spindle jammed")
	tab.Click("form[data-credit] button[type=submit]")
	tab.WaitText("#cn-amount-error", "exceeds what is left")
	var kept string
	tab.Eval(`document.querySelector("#cn-amount").getAttribute("aria-invalid")`, &invalid)
	tab.Eval(`document.querySelector("#cn-amount").value`, &kept)
	if invalid != "true" || kept != "30" {
		t.Errorf("the refused amount: aria-invalid %q, value %q; want it marked and kept", invalid, kept)
	}
	checkPage(t, tab, "invoice-credit-refused")
	if st, _ := h.store.InvoiceState(ctx, inv.ID); len(st.Credits) != 0 {
		t.Fatalf("a refused credit note was issued: %+v", st.Credits)
	}

	// A valid one: 4.50 in euros, sent as 450 cents.
	tab.Fill("#cn-amount", "4.50")
	submitAndWaitReload(t, tab, "form[data-credit] button[type=submit]")
	tab.WaitText("[data-credit-notes]", "Spindle jammed")
	tab.WaitText("[data-left]", "€13.50")
	st, err := h.store.InvoiceState(ctx, inv.ID)
	if err != nil || len(st.Credits) != 1 || st.Credits[0].TotalExclCents != 450 {
		t.Fatalf("after the credit note: %+v (%v), want one of 4.50", st, err)
	}

	// Mark it paid by transfer.
	tab.Fill("#pay-method", "transfer")
	tab.Fill("#pay-ref", "VIR-42")
	submitAndWaitReload(t, tab, "form[data-pay] button[type=submit]")
	tab.WaitText("[data-payment]", "Paid on Monday 2 March 2026 by Bank transfer: €13.50.")
	tab.WaitText("[data-status]", "Paid")
	if tab.Count("form[data-pay]") != 0 {
		t.Error("a paid invoice still offers the payment form")
	}
	checkPage(t, tab, "invoice-paid")
	if st, _ = h.store.InvoiceState(ctx, inv.ID); st.Payment == nil || st.Payment.Method != "transfer" || st.Payment.Reference != "VIR-42" || st.Payment.AmountCents != 1350 {
		t.Fatalf("the payment recorded: %+v", st.Payment)
	}
	// The credit note has its page.
	tab.Go("/staff/invoices/" + st.Credits[0].ID.String())
	tab.WaitText("main h1", "Credit note "+st.Credits[0].Number)
	checkPage(t, tab, "credit-note")
	noPageErrors(t, tab, "status of 400 (Bad Request) ("+h.srv.URL+"/api/v1/invoices/"+id+"/credit-notes)")

	// Alice, on a phone, in French: her invoice, paid, with its PDF link.
	phone := b.NewTab(t, browsertest.TabOptions{BaseURL: h.srv.URL, Viewport: browsertest.Phone, Lang: "fr"})
	browserCookieLogin(t, h, phone, h.alice)
	phone.Go("/charges")
	phone.WaitText("main h1", "Mes frais")
	phone.WaitText("table.invoices", inv.Number)
	phone.WaitText("table.invoices", "Payée")
	phone.WaitText("table.charges", "18,00\u00a0€")
	var pdf string
	phone.Eval(`document.querySelector('table.invoices tr[data-invoice="`+id+`"] a[data-pdf]').getAttribute("href")`, &pdf)
	if pdf != "/api/v1/invoices/"+id+"/pdf" {
		t.Errorf("the PDF link goes to %q", pdf)
	}
	if txt := phone.Text("main"); strings.Contains(txt, "Bob") || strings.Contains(txt, "12,00") {
		t.Errorf("alice's charges show bob's: %q", txt)
	}
	phone.NoHorizontalOverflow(t)
	checkPage(t, phone, "charges-phone")
	noPageErrors(t, phone)
	// The link's invoice is alice's to read (its document is served beside it).
	h.do(t, "GET", "/api/v1/invoices/"+id, h.alice.Token, nil).want(t, http.StatusOK, "")
}

// TestBrowserBillingSettings: an admin sets the lab's billing identity and
// terms from the settings page (a bad SIRET refused next to its field),
// and a negative machine price is refused next to that price.
func TestBrowserBillingSettings(t *testing.T) {
	t.Parallel()
	h := newAPIHarness(t)
	b := browsertest.Start(t)
	tab := b.NewTab(t, browsertest.TabOptions{BaseURL: h.srv.URL})
	browserCookieLogin(t, h, tab, h.admin)
	tab.Go("/admin/settings")
	tab.WaitVisible("#billing")
	tab.Fill("#s-legal", "Association Parc Tech")
	tab.Fill("#s-address", "1 rue des Machines\n75011 Paris")
	tab.Fill("#s-siret", "1234")
	tab.Fill("#s-terms", "15")
	tab.Fill("#s-free", "5")
	tab.Click("#billing button[type=submit]")
	tab.WaitText("#s-siret-error", "14 digits")
	checkPage(t, tab, "settings-billing-refused")
	tab.Fill("#s-siret", "12345678901234")
	tab.Click("#billing button[type=submit]")
	tab.WaitText("#billing [data-form-status]", "Saved")
	st, err := h.store.Settings(context.Background())
	if err != nil || st.LegalName != "Association Parc Tech" || st.SIRET != "12345678901234" || st.PaymentTermsDays != 15 ||
		st.FreeUnderMinutes != 5 || st.Address != "1 rue des Machines\n75011 Paris" {
		t.Fatalf("saved billing settings: %+v (%v)", st, err)
	}

	tab.Go("/staff/machines/" + h.laser.ID.String())
	tab.Fill("#price-student", "-5")
	tab.Click("form[data-admin-api] button[type=submit]")
	tab.WaitText("#price-student-error", "must be between 0")
	var describedBy string
	tab.Eval(`document.querySelector("#price-student").getAttribute("aria-describedby")`, &describedBy)
	if describedBy != "price-student-error" {
		t.Errorf("the refused price is described by %q, not its error", describedBy)
	}
	checkPage(t, tab, "machine-price-refused")
	if m, _ := h.store.Machine(context.Background(), h.laser.ID); m.Prices["student"] < 0 {
		t.Errorf("a negative price was saved: %v", m.Prices)
	}
	noPageErrors(t, tab, "status of 400 (Bad Request)")
}

// TestBrowserReports: staff open the reports page; Chart.js draws the
// utilisation and revenue charts from the page's figures (each canvas
// painted, each chart holding the table's numbers); they choose February
// alone with the range form; on a phone the page stays within the screen.
// The billing lab: February's uses and no-show, a correction on 2 March.
func TestBrowserReports(t *testing.T) {
	t.Parallel()
	h := newAPIHarness(t)
	newBillingLab(t, h)
	b := browsertest.Start(t)
	tab := b.NewTab(t, browsertest.TabOptions{BaseURL: h.srv.URL})
	browserCookieLogin(t, h, tab, h.staff)
	tab.Go("/staff/reports")
	tab.WaitText("main h1", "Reports")
	tab.WaitText("table[data-revenue]", "€35.00")

	// Each chart is drawn: Chart.js holds it, with the page's figures,
	// and its canvas has painted pixels.
	chart := func(id string) (labels []string, data [][]float64) {
		eventually(t, "the "+id+" chart drawn", func() bool {
			return pageState(tab, `document.querySelector('canvas[data-chart="`+id+`"]').dataset.drawn === "true"`)
		})
		tab.Eval(`Chart.getChart(document.querySelector('canvas[data-chart="`+id+`"]')).data.labels`, &labels)
		tab.Eval(`Chart.getChart(document.querySelector('canvas[data-chart="`+id+`"]')).data.datasets.map(d => d.data)`, &data)
		var painted int
		tab.Eval(`(() => {
			const c = document.querySelector('canvas[data-chart="`+id+`"]');
			const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
			let n = 0;
			for (let i = 3; i < px.length; i += 4) { if (px[i] > 0) n++; }
			return n;
		})()`, &painted)
		if painted < 1000 {
			t.Errorf("the %s chart's canvas has %d painted pixels: not drawn", id, painted)
		}
		return labels, data
	}
	labels, data := chart("utilisation")
	if strings.Join(labels, "|") != "Laser|Printer|CNC|Router" || len(data) != 3 || data[1][3] != 2.5 {
		t.Errorf("the utilisation chart: %v %v; want the router used 2.5 h", labels, data)
	}
	labels, data = chart("revenue")
	if strings.Join(labels, "|") != "January 2026|February 2026|March 2026" || len(data) != 2 || data[0][1]+data[1][1] != 35 || data[0][2] != -3 {
		t.Errorf("the revenue chart: %v %v; want February 35.00 and March -3.00", labels, data)
	}
	var stacked bool
	tab.Eval(`Chart.getChart(document.querySelector('canvas[data-chart="revenue"]')).options.scales.y.stacked === true`, &stacked)
	if !stacked {
		t.Error("the revenue chart is not stacked by tariff group")
	}
	if n := tab.Count("table[data-heat] td.heat-5"); n != 2 {
		t.Errorf("the heat map has %d busiest hours, want 2", n)
	}
	checkPage(t, tab, "reports")

	// February alone, from the form.
	tab.Fill("#r-from", "2026-02-01")
	tab.Fill("#r-to", "2026-02-28")
	submitAndWaitReload(t, tab, `form[action="/staff/reports"] button[type=submit]`)
	tab.WaitText("[data-span]", "From Sunday 1 February 2026 to Saturday 28 February 2026")
	labels, _ = chart("revenue")
	if strings.Join(labels, "|") != "February 2026" {
		t.Errorf("February's revenue chart: %v", labels)
	}
	noPageErrors(t, tab)

	// On a phone, in French.
	phone := b.NewTab(t, browsertest.TabOptions{BaseURL: h.srv.URL, Viewport: browsertest.Phone, Lang: "fr"})
	browserCookieLogin(t, h, phone, h.staff)
	phone.Go("/staff/reports")
	phone.WaitText("main h1", "Rapports")
	eventually(t, "the phone's revenue chart drawn", func() bool {
		return pageState(phone, `document.querySelector('canvas[data-chart="revenue"]').dataset.drawn === "true"`)
	})
	phone.NoHorizontalOverflow(t)
	checkPage(t, phone, "reports-phone")
	noPageErrors(t, phone)
}
