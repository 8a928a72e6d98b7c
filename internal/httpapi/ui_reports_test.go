package httpapi

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/fabgate/fabgate/internal/bolt"
)

// reportChartsOf reads the figures a reports page gives its charts.
func reportChartsOf(t *testing.T, body string) reportCharts {
	t.Helper()
	m := regexp.MustCompile(`(?s)<script type="application/json" id="report-charts">(.*?)</script>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("the reports page carries no chart figures")
	}
	var c reportCharts
	if err := json.Unmarshal([]byte(m[1]), &c); err != nil {
		t.Fatalf("the chart figures are not JSON: %v\n%s", err, m[1])
	}
	return c
}

// heatLevelsOf reads the heat map's shades: weekday label → 24 levels.
func heatLevelsOf(t *testing.T, body string) map[string][24]int {
	t.Helper()
	table := regexp.MustCompile(`(?s)<table class="heat" data-heat>.*?<tbody>(.*?)</tbody>`).FindStringSubmatch(body)
	if table == nil {
		t.Fatal("the reports page has no heat map")
	}
	out := map[string][24]int{}
	for _, row := range regexp.MustCompile(`<tr><th scope="row">([^<]+)</th>(.*?)</tr>`).FindAllStringSubmatch(table[1], -1) {
		cells := regexp.MustCompile(`<td class="heat-(\d)"`).FindAllStringSubmatch(row[2], -1)
		if len(cells) != 24 {
			t.Fatalf("the heat map's %s has %d hours", row[1], len(cells))
		}
		var levels [24]int
		for i, c := range cells {
			levels[i] = int(c[1][0] - '0')
		}
		out[html.UnescapeString(row[1])] = levels
	}
	if len(out) != 7 {
		t.Fatalf("the heat map has %d weekdays", len(out))
	}
	return out
}

// withoutLabels drops the stacked tables' data-label attributes from a page.
func withoutLabels(body string) string {
	return regexp.MustCompile(` data-label="[^"]*"`).ReplaceAllString(body, "")
}

// TestReportsPage: staff see, over the last three months by default or
// the days they choose, the use of each machine, the revenue by month and
// tariff group — equal to the reports API, the ledger and the invoices to
// the cent —, the week × hour heat map, the figures the charts draw and
// the CSV links, in both languages; a bad range is refused next to its
// field; makers get the 403 page. The billing lab: in February alice used
// the router 90 min on Tuesday the 10th from 10:00 (18.00) and missed a
// booking (5.00), bob used it an hour on Wednesday the 11th from 10:00
// (12.00); alice's 3.00 correction was made on 2 March, today.
func TestReportsPage(t *testing.T) {
	h := newAPIHarness(t)
	l := newBillingLab(t, h)
	ctx := context.Background()
	p := newPageClient(t, h)
	p.login(h.staff)

	status, _, body := p.get("/staff/reports", "Accept-Language", "en")
	if status != http.StatusOK {
		t.Fatalf("/staff/reports: %d", status)
	}
	// On a phone the tables stack, each value with its column's name.
	for _, w := range []string{`<td data-label="Used">2 h 30</td>`, `<td data-label="PME">€12.00</td>`, `<td data-label="Total">€35.00</td>`} {
		if !strings.Contains(body, w) {
			t.Errorf("/staff/reports lacks %q", w)
		}
	}
	body = withoutLabels(body)
	for _, w := range []string{"<h1>Reports</h1>", `aria-current="page">Reports`,
		`name="from" type="date" required value="2026-01-01"`, `name="to" type="date" required value="2026-03-31"`,
		"From Thursday 1 January 2026 to Tuesday 31 March 2026",
		`<th scope="row">Router</th><td>0 min</td><td>2 h 30</td><td>872 h</td><td>0.3%</td><td>2</td><td>1</td><td>1 (100%)</td>`,
		`<th scope="row">Laser</th><td>0 min</td><td>0 min</td><td>872 h</td><td>0%</td><td>0</td><td>0</td><td>0 (—)</td>`,
		`<th scope="col">Month</th><th scope="col">Étudiant</th><th scope="col">PME</th><th scope="col">Total</th>`,
		`<th scope="row">January 2026</th><td>€0.00</td><td>€0.00</td><td>€0.00</td>`,
		`<th scope="row">February 2026</th><td>€23.00</td><td>€12.00</td><td>€35.00</td>`,
		`<th scope="row">March 2026</th><td>-€3.00</td><td>€0.00</td><td>-€3.00</td>`,
		`<tr data-revenue-total><th scope="row">Total</th><td>€20.00</td><td>€12.00</td><td>€32.00</td>`,
		"the darkest is the busiest, 1 h.",
		`href="/api/v1/reports/usage?by=machine&amp;format=csv&amp;from=2026-01-01&amp;to=2026-04-01"`,
		`href="/api/v1/reports/usage?by=member&amp;format=csv&amp;from=2026-01-01&amp;to=2026-04-01"`,
		`href="/api/v1/reports/revenue?format=csv&amp;from=2026-01-01&amp;to=2026-04-01"`,
		`<canvas id="chart-utilisation"`, `<canvas id="chart-revenue"`, `<script src="/static/vendor/chart.js/chart.umd.js" defer>`} {
		if !strings.Contains(body, w) {
			t.Errorf("/staff/reports lacks %q", w)
		}
	}

	// The heat map: Tuesday 10:00 and Wednesday 10:00 the busiest (an
	// hour each), Tuesday 11:00 half as busy; every other hour empty.
	heat := heatLevelsOf(t, body)
	for day, levels := range heat {
		for hour, level := range levels {
			want := 0
			switch {
			case day == "Tuesday" && hour == 10, day == "Wednesday" && hour == 10:
				want = 5
			case day == "Tuesday" && hour == 11:
				want = 3
			}
			if level != want {
				t.Errorf("heat map %s %d:00: level %d, want %d", day, hour, level, want)
			}
		}
	}

	// The charts draw the tables' figures.
	charts := reportChartsOf(t, body)
	if got := charts.Revenue.Labels; strings.Join(got, "|") != "January 2026|February 2026|March 2026" {
		t.Errorf("revenue chart months: %v", got)
	}
	revenue := map[string][]float64{}
	for _, s := range charts.Revenue.Datasets {
		revenue[s.Label] = s.Data
	}
	if len(revenue) != 2 || !slices.Equal(revenue["Étudiant"], []float64{0, 23, -3}) || !slices.Equal(revenue["PME"], []float64{0, 12, 0}) {
		t.Errorf("revenue chart series: %v", revenue)
	}
	usage := map[string][]float64{}
	for _, s := range charts.Utilisation.Datasets {
		usage[s.Label] = s.Data
	}
	if strings.Join(charts.Utilisation.Labels, "|") != "Laser|Printer|CNC|Router" || !slices.Equal(usage["Used"], []float64{0, 0, 0, 2.5}) ||
		!slices.Equal(usage["Booked"], []float64{0, 0, 0, 0}) || !slices.Equal(usage["Open"], []float64{872, 872, 872, 872}) {
		t.Errorf("utilisation chart: %v %v", charts.Utilisation.Labels, usage)
	}
	if charts.Lang != "en" || charts.Currency != "EUR" || charts.AmountTitle != "Excl. VAT (EUR)" {
		t.Errorf("chart texts: %+v", charts)
	}

	// The page's total is the reports API's, the ledger's and, for
	// February, the invoices'.
	r := h.do(t, "GET", "/api/v1/reports/revenue?from=2026-01-01&to=2026-04-01", h.staff.Token, nil)
	r.want(t, http.StatusOK, "")
	var api revenueReport
	r.decode(t, &api)
	charges, err := h.store.Charges(ctx, bolt.ChargeFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var ledger int64
	for _, ch := range charges {
		ledger += ch.AmountCents
	}
	if api.AmountExclCents != 3200 || ledger != 3200 {
		t.Errorf("revenue: the API says %d cents, the ledger %d; the page 32.00", api.AmountExclCents, ledger)
	}
	if feb := l.aliceInv.TotalExclCents + l.bobInv.TotalExclCents; feb != 3500 {
		t.Errorf("February's invoices total %d cents; the page 35.00", feb)
	}

	// In French.
	_, _, body = p.get("/staff/reports", "Accept-Language", "fr")
	body = withoutLabels(body)
	for _, w := range []string{"<h1>Rapports</h1>", "Du jeudi 1er janvier 2026 au mardi 31 mars 2026", "<td>0,3\u00a0%</td>",
		"<th scope=\"row\">février 2026</th><td>23,00\u00a0€</td><td>12,00\u00a0€</td><td>35,00\u00a0€</td>", "Recettes par mois et groupe tarifaire",
		"Utilisation par membre (CSV)"} {
		if !strings.Contains(body, w) {
			t.Errorf("/staff/reports in French lacks %q", w)
		}
	}
	if _, ok := heatLevelsOf(t, body)["Mardi"]; !ok {
		t.Error("the French heat map has no Mardi")
	}
	if c := reportChartsOf(t, body); c.Lang != "fr" || c.Revenue.Labels[1] != "février 2026" {
		t.Errorf("the French charts: %+v", c)
	}

	// A chosen range: February alone; its first day included, its last too.
	_, _, body = p.get("/staff/reports?from=2026-02-01&to=2026-02-28", "Accept-Language", "en")
	body = withoutLabels(body)
	for _, w := range []string{`value="2026-02-01"`, `value="2026-02-28"`, "From Sunday 1 February 2026 to Saturday 28 February 2026",
		`<tr data-revenue-total><th scope="row">Total</th><td>€23.00</td><td>€12.00</td><td>€35.00</td>`,
		`href="/api/v1/reports/revenue?format=csv&amp;from=2026-02-01&amp;to=2026-03-01"`} {
		if !strings.Contains(body, w) {
			t.Errorf("February's report lacks %q", w)
		}
	}
	if strings.Contains(body, "January 2026") || strings.Contains(body, "March 2026") {
		t.Error("February's report shows other months")
	}
	// A range without use or charges says so.
	_, _, body = p.get("/staff/reports?from=2025-06-01&to=2025-06-30", "Accept-Language", "en")
	if !strings.Contains(body, "Nothing was charged in this range.") || !strings.Contains(body, "No machine was used in this range.") ||
		strings.Contains(body, `<canvas id="chart-revenue"`) {
		t.Error("an empty range: want it said, and no revenue chart")
	}

	// Bad ranges: refused next to the field, what was typed kept.
	for _, c := range []struct{ query, field, want string }{
		{"from=2026-02-30", "r-from", "Give a date such as 2026-01-01."},
		{"from=2026-03-01&to=2026-02-01", "r-to", "The last day must be on or after the first."},
		{"from=2020-01-01&to=2026-02-01", "r-to", "A report covers at most 5 years: choose a closer last day."},
	} {
		status, _, body := p.get("/staff/reports?"+c.query, "Accept-Language", "en")
		if status != http.StatusBadRequest || !strings.Contains(body, `<p class="error" id="`+c.field+`-error">`+html.EscapeString(c.want)+`</p>`) ||
			!strings.Contains(body, `id="`+c.field+`" name="`) || !regexp.MustCompile(`id="`+c.field+`"[^>]*aria-invalid="true"`).MatchString(body) ||
			strings.Contains(body, "data-usage") {
			t.Errorf("/staff/reports?%s: %d; want 400 with %q next to %s and no report", c.query, status, c.want, c.field)
		}
	}
	if _, _, body := p.get("/staff/reports?from=2026-02-30", "Accept-Language", "fr"); !strings.Contains(body, "Indiquez une date comme 2026-01-01.") ||
		!strings.Contains(body, `value="2026-02-30"`) {
		t.Error("a bad date in French: want the French reason and the date typed kept")
	}

	// Makers are refused; the anonymous are sent to log in.
	m := newPageClient(t, h)
	m.login(h.alice)
	if status, _, body := m.get("/staff/reports", "Accept-Language", "en"); status != http.StatusForbidden || strings.Contains(body, "€35.00") {
		t.Errorf("a maker on /staff/reports: %d, want the 403 page", status)
	}
	if _, _, body := m.get("/charges", "Accept-Language", "en"); strings.Contains(body, `href="/staff/reports"`) {
		t.Error("a maker's navigation offers the reports")
	}
	anon := newPageClient(t, h)
	if status, loc, _ := anon.get("/staff/reports"); status != http.StatusSeeOther || !strings.HasPrefix(loc, "/login?next=") {
		t.Errorf("anonymous /staff/reports: %d to %q", status, loc)
	}
}
