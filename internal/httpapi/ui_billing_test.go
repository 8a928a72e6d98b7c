package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
)

// billingLab is a lab whose February 2026 is invoiced: alice used the
// router for an hour and a half (18.00), missed a booking of it (a 5.00
// no-show fee) and got a 3.00 goodwill correction after the invoice; bob
// used it for an hour (12.00). The clock reads Monday 2 March 2026.
type billingLab struct {
	h                    *apiHarness
	router               fablab.Machine
	aliceInv, bobInv     fablab.Invoice
	aliceUse, aliceNoShw fablab.Charge
}

// seedSession records a closed session of a on machine m from start for d
// and bills it.
func seedSession(t testing.TB, h *apiHarness, m fablab.ID, a *apiAccount, start time.Time, d time.Duration) {
	t.Helper()
	ctx := context.Background()
	end := start.Add(d)
	if _, err := h.store.RecordSession(ctx, fablab.Session{MachineID: m, MemberID: a.ID, DeviceID: "seed", Started: start, Until: end, Ended: &end,
		EndReason: fablab.EndTapOut, Confirmed: true, Billable: true}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.store.BillSessions(ctx, 1000); err != nil {
		t.Fatal(err)
	}
}

func newBillingLab(t testing.TB, h *apiHarness) *billingLab {
	t.Helper()
	ctx := context.Background()
	prices := map[string]int64{}
	for _, g := range fablab.DefaultTariffGroups() {
		prices[g.ID] = 1200
	}
	l := &billingLab{h: h}
	l.router = apiSeedMachine(t, h.store, fablab.Machine{Name: "Router", Kind: fablab.KindCNC, Prices: prices, NoShowFeeCents: 500})
	feb := func(day, hh, mm int) time.Time { return time.Date(2026, 2, day, hh, mm, 0, 0, apiParis) }
	seedSession(t, h, l.router.ID, h.alice, feb(10, 10, 0), 90*time.Minute)
	seedSession(t, h, l.router.ID, h.bob, feb(11, 10, 0), time.Hour)
	h.seedBooking(t, l.router.ID, h.alice, feb(12, 14, 0), feb(12, 15, 0))
	if marked, err := h.store.MarkNoShows(ctx, h.clock.Now(), 30*24*time.Hour); err != nil || len(marked) != 1 {
		t.Fatalf("mark alice's booking a no-show: %v, %v", marked, err)
	}
	invs, created, err := h.store.RunInvoices(ctx, fablab.Period{Year: 2026, Month: time.February})
	if err != nil || !created || len(invs) != 2 {
		t.Fatalf("run February: %d invoices, created %v, %v", len(invs), created, err)
	}
	for _, inv := range invs {
		switch inv.Payer.ID {
		case h.alice.ID:
			l.aliceInv = inv
		case h.bob.ID:
			l.bobInv = inv
		}
	}
	if l.aliceInv.TotalInclCents != 2300 || l.bobInv.TotalInclCents != 1200 {
		t.Fatalf("February's invoices: alice %d, bob %d cents; want 2300 and 1200", l.aliceInv.TotalInclCents, l.bobInv.TotalInclCents)
	}
	charges, err := h.store.Charges(ctx, bolt.ChargeFilter{MemberID: h.alice.ID})
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range charges {
		switch ch.Kind {
		case fablab.ChargeSession:
			l.aliceUse = ch
		case fablab.ChargeNoShow:
			l.aliceNoShw = ch
		}
	}
	if _, err := h.store.AddCorrection(ctx, l.aliceUse.ID, -300, "Goodwill for a jammed spindle", h.staff.ID); err != nil {
		t.Fatal(err)
	}
	return l
}

// TestChargesPage: a maker sees their prepaid time, what they owe, their
// own charges (the no-show fee said as such, the correction as one) and
// their own invoices with the PDF and XML links, in both languages;
// nobody else's.
func TestChargesPage(t *testing.T) {
	h := newAPIHarness(t)
	l := newBillingLab(t, h)
	if _, err := h.store.UpdateMember(context.Background(), h.alice.ID, func(m *fablab.Member) error { m.PrepaidMinutes = 150; return nil }); err != nil {
		t.Fatal(err)
	}
	p := newPageClient(t, h)
	p.login(h.alice)
	id := l.aliceInv.ID.String()
	for _, c := range []struct {
		lang string
		want []string
	}{
		{"en", []string{`<h1>My charges</h1>`, `data-prepaid>2 h 30<`, `data-outstanding>€23.00<`, `data-uninvoiced>-€3.00 `,
			"Router", "€18.00", "1 h 30", "No-show: booking released", "€5.00", "Correction", "-€3.00", "Goodwill for a jammed spindle",
			l.aliceInv.Number, "February 2026", "€23.00", `href="/api/v1/invoices/` + id + `/pdf"`, `href="/api/v1/invoices/` + id + `/xml"`,
			"Invoice " + l.aliceInv.Number + " as PDF", ">Due<", "Tuesday 10 February 2026, 11:30", `aria-current="page">My charges`}},
		{"fr", []string{`<h1>Mes frais</h1>`, "data-outstanding>23,00\u00a0€<", "18,00\u00a0€", "Non-présentation : réservation libérée",
			"-3,00\u00a0€", "février 2026", "Facture " + l.aliceInv.Number + " en PDF", ">À payer<", "mardi 10 février 2026 à 11:30"}},
	} {
		status, _, body := p.get("/charges", "Accept-Language", c.lang)
		if status != http.StatusOK {
			t.Fatalf("/charges in %s: %d", c.lang, status)
		}
		for _, w := range c.want {
			if !strings.Contains(body, w) {
				t.Errorf("/charges in %s lacks %q", c.lang, w)
			}
		}
		// Only alice's: not bob's invoice, use or amount.
		for _, no := range []string{l.bobInv.Number, "/api/v1/invoices/" + l.bobInv.ID.String(), "12.00", "12,00"} {
			if strings.Contains(body, no) {
				t.Errorf("alice's /charges in %s shows bob's %q", c.lang, no)
			}
		}
	}
	// Bob's page shows his own invoice, not alice's.
	pb := newPageClient(t, h)
	pb.login(h.bob)
	_, _, body := pb.get("/charges", "Accept-Language", "en")
	if !strings.Contains(body, l.bobInv.Number) || strings.Contains(body, l.aliceInv.Number) || strings.Contains(body, "No-show") {
		t.Errorf("bob's /charges: want his invoice only")
	}
	// The PDF link's invoice is one the maker may read through the API.
	h.do(t, "GET", "/api/v1/invoices/"+id, h.alice.Token, nil).want(t, http.StatusOK, "")
	h.do(t, "GET", "/api/v1/invoices/"+id, h.bob.Token, nil).want(t, http.StatusNotFound, fablab.ENOTFOUND)
}

// TestInvoicesPages: staff and admins list, filter and open invoices in
// both languages; makers get the 403 page.
func TestInvoicesPages(t *testing.T) {
	h := newAPIHarness(t)
	l := newBillingLab(t, h)
	aliceID := l.aliceInv.ID.String()
	want := map[string][2][]string{
		"/staff/invoices": {
			{"<h1>Invoices</h1>", "Run a month&#39;s invoices", `name="period" type="month" required value="2026-02"`, l.aliceInv.Number, l.bobInv.Number,
				"Alice Maker", "Bob Maker", "€23.00", "€12.00", `href="/staff/invoices/` + aliceID + `"`,
				`/api/v1/charges?format=csv&amp;from=2026-02-01T00%3A00%3A00%2B01%3A00&amp;to=2026-03-01T00%3A00%3A00%2B01%3A00`,
				`/api/v1/invoices?format=csv&amp;period=2026-02`, "Charges of February 2026 (CSV)", `aria-current="page">Invoices`},
			{"<h1>Factures</h1>", "Émettre les factures d&#39;un mois", l.aliceInv.Number, "23,00\u00a0€", "À payer", "Frais de février 2026 (CSV)"}},
		"/staff/invoices/" + aliceID: {
			{"<h1>Invoice " + l.aliceInv.Number + "</h1>", "Utilisation — Router, 10/02/2026, 90 min", "Réservation non honorée — Router",
				"TVA non applicable", "€23.00", `data-api="POST /api/v1/invoices/` + aliceID + `/credit-notes"`, `name="amount_cents"`, `data-type="cents"`,
				`data-api="POST /api/v1/invoices/` + aliceID + `/payments"`, `<option value="transfer">Bank transfer</option>`,
				`value="2026-03-02" min="2026-03-02" max="2026-03-02"`, "€23.00 at 0\u00a0% VAT", `href="/api/v1/invoices/` + aliceID + `/pdf"`,
				`href="/staff/members/` + h.alice.ID.String() + `"`},
			{"<h1>Facture " + l.aliceInv.Number + "</h1>", "Faire un avoir", "Montant HT (EUR)", "virement", "Marquer comme payée"}},
	}
	for _, who := range []*apiAccount{h.staff, h.admin} {
		p := newPageClient(t, h)
		p.login(who)
		for path, langs := range want {
			for i, lang := range []string{"en", "fr"} {
				status, _, body := p.get(path, "Accept-Language", lang)
				if status != http.StatusOK {
					t.Errorf("%s as %s in %s: %d", path, who.Role, lang, status)
					continue
				}
				for _, w := range langs[i] {
					if !strings.Contains(body, w) {
						t.Errorf("%s as %s in %s lacks %q", path, who.Role, lang, w)
					}
				}
			}
		}
	}
	p := newPageClient(t, h)
	p.login(h.staff)
	// Filtered by payer, then by month after a run.
	_, _, body := p.get("/staff/invoices?payer=member-"+h.bob.ID.String(), "Accept-Language", "en")
	if !strings.Contains(body, l.bobInv.Number) || strings.Contains(body, l.aliceInv.Number) {
		t.Error("filtered by bob: want his invoice only")
	}
	if !regexp.MustCompile(`<option value="member-` + h.bob.ID.String() + `" selected>Bob Maker`).MatchString(body) {
		t.Error("filtered by bob: the payer select does not show him chosen")
	}
	_, _, body = p.get("/staff/invoices?period=2026-02&ran=false", "Accept-Language", "en")
	if !strings.Contains(body, "February 2026 was invoiced before: its 2 invoices are below") {
		t.Error("a second run's page does not say the month was invoiced before")
	}
	_, _, body = p.get("/staff/invoices?period=2026-01", "Accept-Language", "en")
	if !strings.Contains(body, "No invoice matches.") || strings.Contains(body, l.aliceInv.Number) {
		t.Error("January lists February's invoices")
	}
	for _, bad := range []string{"?period=2026-13", "?payer=someone"} {
		if status, _, _ := p.get("/staff/invoices"+bad, "Accept-Language", "en"); status != http.StatusBadRequest {
			t.Errorf("/staff/invoices%s: %d, want 400", bad, status)
		}
	}
	if status, _, _ := p.get("/staff/invoices/999999", "Accept-Language", "en"); status != http.StatusNotFound {
		t.Errorf("an invoice that does not exist: %d", status)
	}

	// A credit note and a payment: the invoice shows them and offers no
	// payment form any more; the credit note has its own page.
	r := h.do(t, "POST", "/api/v1/invoices/"+aliceID+"/credit-notes", h.staff.Token, map[string]any{"amount_cents": 500, "reason": "No-show forgiven"})
	r.want(t, http.StatusCreated, "")
	var cn fablab.Invoice
	r.decode(t, &cn)
	h.do(t, "POST", "/api/v1/invoices/"+aliceID+"/payments", h.staff.Token, map[string]any{"paid_on": "2026-03-02", "method": "cheque", "reference": "CHQ 1234"}).want(t, http.StatusCreated, "")
	_, _, body = p.get("/staff/invoices/"+aliceID, "Accept-Language", "en")
	for _, w := range []string{cn.Number, "No-show forgiven", "Paid on Monday 2 March 2026 by Cheque: €18.00.", "CHQ 1234", ">Paid<", "€18.00 at 0\u00a0% VAT"} {
		if !strings.Contains(body, w) {
			t.Errorf("the paid and credited invoice's page lacks %q", w)
		}
	}
	if strings.Contains(body, "/payments\"") {
		t.Error("a paid invoice still offers the payment form")
	}
	_, _, body = p.get("/staff/invoices/"+cn.ID.String(), "Accept-Language", "en")
	if !strings.Contains(body, "<h1>Credit note "+cn.Number+"</h1>") || !strings.Contains(body, `<a href="/staff/invoices/`+aliceID+`">`+l.aliceInv.Number+`</a>`) ||
		strings.Contains(body, "/credit-notes\"") {
		t.Error("the credit note's page: want its number, the invoice it credits, no forms")
	}
	_, _, body = p.get("/staff/invoices", "Accept-Language", "en")
	if !strings.Contains(body, cn.Number) || !strings.Contains(body, ">Credit note<") {
		t.Error("the list of all invoices lacks the credit note")
	}

	// Makers are refused the staff's billing pages.
	m := newPageClient(t, h)
	m.login(h.alice)
	for _, path := range []string{"/staff/invoices", "/staff/invoices/" + aliceID, "/staff/invoices/" + cn.ID.String()} {
		status, _, body := m.get(path, "Accept-Language", "en")
		if status != http.StatusForbidden || !strings.Contains(body, "cannot open this page") || strings.Contains(body, l.aliceInv.Number) {
			t.Errorf("maker on %s: %d, want the 403 page", path, status)
		}
	}
	if status, _, body := m.get("/charges", "Accept-Language", "en"); status != http.StatusOK || strings.Contains(body, `href="/staff/invoices"`) {
		t.Errorf("a maker's navigation offers the staff's invoices (%d)", status)
	}
}

// TestSettingsPageBilling: the lab settings page has the billing section
// with every billing setting, showing what the API stores.
func TestSettingsPageBilling(t *testing.T) {
	h := newAPIHarness(t)
	h.do(t, "PATCH", "/api/v1/settings", h.admin.Token, map[string]any{
		"legal_name": "Association Parc Tech", "address": "1 rue des Machines, 75011 Paris", "siret": "12345678901234",
		"vat_number": "FR12345678901", "payment_terms_days": 15, "late_penalty": "Pénalités : 10 %", "free_under_minutes": 5,
		"vat_rate_bp": 2000, "invoice_prefix": "PT", "billing_increment_minutes": 15,
	}).want(t, http.StatusOK, "")
	p := newPageClient(t, h)
	p.login(h.admin)
	for _, lang := range []string{"en", "fr"} {
		_, _, body := p.get("/admin/settings", "Accept-Language", lang)
		i := strings.Index(body, `id="billing"`)
		if i < 0 {
			t.Fatalf("settings in %s: no billing section", lang)
		}
		section := body[i:]
		section = section[:strings.Index(section, "</form>")]
		for _, w := range []string{
			`name="legal_name" type="text" maxlength="200" value="Association Parc Tech"`, ">1 rue des Machines, 75011 Paris</textarea>",
			`name="siret" type="text" inputmode="numeric" maxlength="14" value="12345678901234"`, `value="FR12345678901"`,
			`name="payment_terms_days"`, `value="15"`, "Pénalités : 10 %</textarea>", `name="free_under_minutes"`, `value="5"`,
			`name="vat_rate_bp"`, `value="20"`, `name="vat_mention"`, `name="invoice_prefix"`, `value="PT"`, `name="billing_increment_minutes"`,
			`data-error-for="siret"`, `data-error-for="payment_terms_days"`, `data-error-for="free_under_minutes"`,
		} {
			if !strings.Contains(section, w) {
				t.Errorf("the billing section in %s lacks %q", lang, w)
			}
		}
	}
	_, _, body := p.get("/admin/settings", "Accept-Language", "fr")
	if !strings.Contains(body, "<h2>Facturation</h2>") || !strings.Contains(body, "Raison sociale") {
		t.Error("the billing section is not in French")
	}
	// The refusals the section's fields can get name those fields.
	for field, v := range map[string]any{"siret": "123", "payment_terms_days": 90, "free_under_minutes": -1, "late_penalty": strings.Repeat("x", 501)} {
		r := h.do(t, "PATCH", "/api/v1/settings", h.admin.Token, map[string]any{field: v})
		r.want(t, http.StatusBadRequest, fablab.EINVALID)
		if f := r.problem(t).Field; f != field {
			t.Errorf("a bad %s is refused on field %q", field, f)
		}
	}
}

// pageAPI sends an API request as the pages' script does: with the
// client's cookies (session, language) and the CSRF token it was given.
func (p *pageClient) pageAPI(method, path string, body any) apiResp {
	p.t.Helper()
	u, _ := url.Parse(p.h.srv.URL)
	csrf := ""
	for _, c := range p.http.Jar.Cookies(u) {
		if c.Name == csrfCookie {
			csrf = c.Value
		}
	}
	return apiSendWith(p.t, p.http, p.h.srv.URL, apiReq{method: method, path: path, body: body, header: http.Header{csrfHeader: {csrf}}})
}

// TestBillingProblemsInFrench: staff who chose French read the billing
// forms' refusals in French — dates, months, amounts and VAT rates written
// the French way — next to the field at fault, and the error page of a
// bad filter too; an API client asking for no language gets the English.
// The clock reads Monday 2 March 2026; February is invoiced.
func TestBillingProblemsInFrench(t *testing.T) {
	h := newAPIHarness(t)
	l := newBillingLab(t, h)
	p := newPageClient(t, h)
	p.login(h.staff)
	if status, _, _ := p.get("/lang/fr?next=/staff/invoices"); status != http.StatusSeeOther {
		t.Fatalf("switch to French: %d", status)
	}
	// The run form of the invoices page, as the page shows it.
	_, _, body := p.get("/staff/invoices", "Accept-Language", "en")
	if !strings.Contains(body, `<h1>Factures</h1>`) || !strings.Contains(body, `data-api="POST /api/v1/invoices/run?period={period}"`) {
		t.Fatal("the French invoices page lacks its run form")
	}
	inv := "/api/v1/invoices/" + l.aliceInv.ID.String()
	for _, c := range []struct {
		name, method, path string
		body               any
		status             int
		field, fr          string
	}{
		{"a month not over", "POST", "/api/v1/invoices/run?period=2026-03", map[string]any{"period": "2026-03"}, http.StatusBadRequest, "period",
			"Le mois de mars 2026 n'est pas terminé : ses factures pourront être émises à partir du mercredi 1er avril 2026."},
		{"a credit note larger than the invoice", "POST", inv + "/credit-notes", map[string]any{"amount_cents": 3000, "reason": "Spindle jammed"}, http.StatusBadRequest, "amount_cents",
			"Un avoir de 30,00\u00a0€ dépasse ce qui reste à créditer sur la facture " + l.aliceInv.Number + " à ce taux de TVA : indiquez au plus 23,00\u00a0€ HT."},
		{"a VAT rate the invoice lacks", "POST", inv + "/credit-notes", map[string]any{"amount_cents": 100, "vat_rate_bp": 550, "reason": "Spindle jammed"}, http.StatusBadRequest, "vat_rate_bp",
			"La facture " + l.aliceInv.Number + " n'a aucune ligne à 5,5\u00a0% de TVA : choisissez l'un de ses taux."},
		{"a payment tomorrow", "POST", inv + "/payments", map[string]any{"paid_on": "2026-03-03", "method": "cheque"}, http.StatusBadRequest, "paid_on",
			"Le paiement ne peut pas être daté du mardi 3 mars 2026, qui est dans le futur (nous sommes le lundi 2 mars 2026) : indiquez le jour où il a été reçu."},
		{"a correction below zero", "POST", "/api/v1/charges/" + l.aliceUse.ID.String() + "/corrections", map[string]any{"amount_cents": -2000, "note": "Refund"}, http.StatusBadRequest, "amount_cents",
			"Un avoir de 20,00\u00a0€ ferait passer la ligne de frais n° " + l.aliceUse.ID.String() + " sous zéro : indiquez au plus 15,00\u00a0€."},
		{"an invoice that does not exist", "GET", "/api/v1/invoices/999999", nil, http.StatusNotFound, "",
			"La facture n° 999999 n'existe pas."},
		{"a report's range backwards", "GET", "/api/v1/reports/revenue?from=2026-03-10&to=2026-03-01", nil, http.StatusBadRequest, "to",
			"La fin de la période doit être après son début."},
		{"a report's start not a time", "GET", "/api/v1/reports/usage?from=yesterday", nil, http.StatusBadRequest, "from",
			"« yesterday » n'est pas une heure RFC 3339 comme 2026-03-02T09:00:00+01:00 (dans une adresse, écrivez + sous la forme %2B)."},
		{"charges over more than a year", "GET", "/api/v1/charges?from=2025-01-01T00:00:00Z&to=2026-03-01T00:00:00Z", nil, http.StatusBadRequest, "to",
			"La période du mercredi 1er janvier 2025 au dimanche 1er mars 2026 dépasse un an : demandez une période plus courte."},
	} {
		r := p.pageAPI(c.method, c.path, c.body)
		if r.status != c.status {
			t.Errorf("%s: %d, want %d (%s)", c.name, r.status, c.status, r.body)
			continue
		}
		if pr := r.problem(t); pr.Detail != c.fr || pr.Field != c.field {
			t.Errorf("%s in French: %q on field %q\nwant %q on %q", c.name, pr.Detail, pr.Field, c.fr, c.field)
		}
	}
	if st, _ := h.store.InvoiceState(context.Background(), l.aliceInv.ID); len(st.Credits) != 0 || st.Payment != nil {
		t.Fatalf("a refused request changed alice's invoice: %+v", st)
	}
	// An API client that asks for no language reads the English message.
	r := h.do(t, "POST", "/api/v1/invoices/run?period=2026-03", h.staff.Token, nil)
	r.want(t, http.StatusBadRequest, fablab.EINVALID)
	if pr := r.problem(t); pr.Detail != "period 2026-03 has not ended: its invoices can be run from 2026-04-01" || pr.Field != "period" {
		t.Errorf("English problem: %q on field %q", pr.Detail, pr.Field)
	}
	r = h.do(t, "POST", inv+"/credit-notes", h.staff.Token, map[string]any{"amount_cents": 3000, "reason": "Spindle jammed"})
	r.want(t, http.StatusBadRequest, fablab.EINVALID)
	if d := r.problem(t).Detail; d != "a credit of 30.00 exceeds what is left of invoice "+l.aliceInv.Number+" at that rate: 23.00 excluding VAT" {
		t.Errorf("English credit note problem: %q", d)
	}

	// A bad filter of the invoices page: the error page says why in French,
	// in English to an English page.
	status, _, body := p.get("/staff/invoices?period=2026-13", "Accept-Language", "en")
	if status != http.StatusBadRequest || !strings.Contains(body, "Le mois « 2026-13 » doit s&#39;écrire AAAA-MM, par exemple 2026-03.") {
		t.Errorf("a bad month on the French page: %d, want the French reason", status)
	}
	e := newPageClient(t, h)
	e.login(h.staff)
	if _, _, body := e.get("/staff/invoices?period=2026-13", "Accept-Language", "en"); !strings.Contains(body, "period &#34;2026-13&#34; must be a month as YYYY-MM") {
		t.Error("a bad month on the English page: want the English reason")
	}
}
