package httpapi

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
)

// The staff's reports page (/staff/reports): over a range of lab days,
// the use of each machine (booked, used and open hours, no-show rate),
// the revenue by month and tariff group, and the week × hour heat map of
// use, each as a table and — web/static/reports.js, with Chart.js — as a
// chart; with the CSV downloads of the reports API. It reads the same
// store reports as GET /api/v1/reports/usage and /reports/revenue, so the
// page, the API and the CSVs agree to the cent.

// reportMonths is how many months the page shows when no range is asked
// for: the current one and the two before it.
const reportMonths = 3

// heatLevels is how many shades of use the heat map has (beyond "none").
const heatLevels = 5

// reportsPageData is what reports.html shows.
type reportsPageData struct {
	From, To    string // the range's first and last lab days, YYYY-MM-DD
	Span        string // the range in words
	FromError   string // why from was refused, in the page's language
	ToError     string
	HasReport   bool // false when the range was refused
	Usage       []usagePageRow
	UsageTotal  usagePageRow
	Groups      []string // the revenue table's columns: tariff group names
	Revenue     []revenuePageRow
	RevenueSum  revenuePageRow
	Heat        []heatRow
	HeatMax     string // the busiest hour's use, in words
	Charts      reportCharts
	UsageCSV    []csvLink
	RevenueCSV  string
	Currency    string
	NoSessions  bool // no machine was used in the range
	NoCharges   bool // nothing was charged in the range
	MonthsShown int
}

// usagePageRow is a machine's line of the usage table.
type usagePageRow struct {
	Name                        string
	Booked, Used, Open          string // hours and minutes
	Utilisation, NoShowRate     string // percents, "—" when undefined
	Bookings, NoShows, Sessions int
}

// revenuePageRow is a month's line of the revenue table: its amount per
// tariff group (in Groups' order) and in all.
type revenuePageRow struct {
	Month   string
	Amounts []string
	Total   string
}

// heatRow is a weekday's line of the heat map: 24 hours of the lab's
// clock.
type heatRow struct {
	Day   string
	Cells [24]heatCell
}

// heatCell is an hour of the heat map: its shade (0 none … heatLevels)
// and its use in words.
type heatCell struct {
	Level int
	Used  string
}

// csvLink is a download of the page.
type csvLink struct {
	Label, Href string
}

// reportCharts is the data reports.js draws, in the page as JSON.
type reportCharts struct {
	Lang        string    `json:"lang"`
	Currency    string    `json:"currency"`
	Utilisation chartData `json:"utilisation"`
	Revenue     chartData `json:"revenue"`
	HoursTitle  string    `json:"hours_title"`
	AmountTitle string    `json:"amount_title"`
}

// chartData is one chart's labels and series.
type chartData struct {
	Labels   []string      `json:"labels"`
	Datasets []chartSeries `json:"datasets"`
}

// chartSeries is one series: hours of use, or amounts in the currency's
// units.
type chartSeries struct {
	Label string    `json:"label"`
	Data  []float64 `json:"data"`
}

// reportsPages registers the reports page on the staff's page group.
func (s *Server) reportsPages(staff *gin.RouterGroup) {
	staff.GET("/staff/reports", s.cached(s.reportsPage))
}

func (s *Server) reportsPage(c *gin.Context) {
	ctx := c.Request.Context()
	d := &reportsPageData{}
	v, err := s.newView(c, "reports", "rep_title", d)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	loc := v.Lab.Location()
	d.Currency = v.Lab.Currency
	month := fablab.PeriodOf(v.now, loc)
	first := month
	for range reportMonths - 1 {
		first = first.Prev()
	}
	fromDay := fablab.DateOf(first.Start(loc).In(loc))
	toDay := fablab.DateOf(month.End(loc).In(loc)).AddDays(-1)
	d.From, d.To = fromDay.String(), toDay.String()
	day := func(name string, def fablab.Date, shown *string, refused *string) fablab.Date {
		q := c.Query(name)
		if q == "" {
			return def
		}
		*shown = q
		got, err := fablab.ParseDate(q)
		if err != nil {
			*refused = v.T("rep_bad_date", "Example", def.String())
			return def
		}
		return got
	}
	fromDay = day("from", fromDay, &d.From, &d.FromError)
	toDay = day("to", toDay, &d.To, &d.ToError)
	from, to := fromDay.In(loc), toDay.AddDays(1).In(loc)
	switch {
	case d.FromError != "" || d.ToError != "":
	case !to.After(from):
		d.ToError = v.T("rep_to_before_from")
	case to.Sub(from) > bolt.MaxReportSpan:
		d.ToError = v.T("rep_too_long")
	}
	if d.FromError != "" || d.ToError != "" {
		s.write(c, http.StatusBadRequest, v)
		return
	}
	d.Span = v.T("rep_span", "From", v.Date(from), "To", v.Date(to.Add(-time.Second)))

	usage, err := s.store.UsageReport(ctx, from, to, bolt.ByMachine)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	revenue, err := s.store.RevenueReport(ctx, from, to)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	d.HasReport = true
	d.fillUsage(v, usage)
	groups, err := s.store.TariffGroups(ctx)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	d.fillRevenue(v, revenue, groups, from, to)
	d.fillHeat(v, usage.Total.BusiestHours)
	d.Charts.Lang, d.Charts.Currency = v.Lang, v.Lab.Currency
	d.Charts.HoursTitle, d.Charts.AmountTitle = v.T("rep_hours_axis"), v.T("rep_amount_axis", "Currency", v.Lab.Currency)

	api := func(path string, q url.Values) string {
		q.Set("format", "csv")
		q.Set("from", fromDay.String())
		q.Set("to", toDay.AddDays(1).String())
		return path + "?" + q.Encode()
	}
	for _, by := range bolt.UsageGroupings {
		d.UsageCSV = append(d.UsageCSV, csvLink{Label: v.T("rep_csv_usage_" + by), Href: api("/api/v1/reports/usage", url.Values{"by": {by}})})
	}
	d.RevenueCSV = api("/api/v1/reports/revenue", url.Values{})
	s.write(c, http.StatusOK, v)
}

// fillUsage makes the usage table and chart.
func (d *reportsPageData) fillUsage(v *view, rep bolt.UsageReport) {
	row := func(r bolt.UsageRow) usagePageRow {
		return usagePageRow{
			Name: r.Name, Booked: v.Minutes(int(r.BookedMinutes)), Used: v.Minutes(int(r.UsedMinutes)), Open: v.Minutes(int(r.OpenMinutes)),
			Utilisation: v.percentOf(r.UsedMinutes, r.OpenMinutes), NoShowRate: v.percentOf(int64(r.NoShows), int64(r.Bookings)),
			Bookings: r.Bookings, NoShows: r.NoShows, Sessions: r.Sessions,
		}
	}
	booked := chartSeries{Label: v.T("rep_booked"), Data: []float64{}}
	used := chartSeries{Label: v.T("rep_used"), Data: []float64{}}
	open := chartSeries{Label: v.T("rep_open"), Data: []float64{}}
	d.Charts.Utilisation.Labels = []string{}
	for _, r := range rep.Rows {
		d.Usage = append(d.Usage, row(r))
		d.Charts.Utilisation.Labels = append(d.Charts.Utilisation.Labels, r.Name)
		booked.Data = append(booked.Data, hours(r.BookedMinutes))
		used.Data = append(used.Data, hours(r.UsedMinutes))
		open.Data = append(open.Data, hours(r.OpenMinutes))
	}
	d.Charts.Utilisation.Datasets = []chartSeries{booked, used, open}
	d.UsageTotal = row(rep.Total)
	d.UsageTotal.Name = v.T("rep_total")
	d.NoSessions = rep.Total.Sessions == 0
}

// fillRevenue makes the revenue table (a line per month of the range, a
// column per tariff group met) and its stacked chart.
func (d *reportsPageData) fillRevenue(v *view, rep bolt.RevenueReport, labGroups []fablab.TariffGroup, from, to time.Time) {
	loc := v.Lab.Location()
	var months []string
	for p := fablab.PeriodOf(from, loc); p.Start(loc).Before(to); p = p.Next() {
		months = append(months, p.String())
	}
	monthIdx := map[string]int{}
	for i, m := range months {
		monthIdx[m] = i
	}
	// The lab's groups in its order, then any other met in the charges
	// (a group since removed), then charges with none (a credit line).
	var groups []string
	groupIdx := map[string]int{}
	addGroup := func(id string) {
		if _, ok := groupIdx[id]; !ok {
			groupIdx[id] = len(groups)
			groups = append(groups, id)
		}
	}
	names := map[string]string{"": v.T("rep_no_group")}
	for _, g := range labGroups {
		names[g.ID] = g.Name
	}
	for _, r := range rep.Rows {
		if _, ok := names[r.Group]; !ok {
			names[r.Group] = r.GroupName
		}
	}
	for _, g := range labGroups {
		addGroup(g.ID)
	}
	for _, r := range rep.Rows {
		addGroup(r.Group)
	}
	cells := make([][]int64, len(months))
	for i := range cells {
		cells[i] = make([]int64, len(groups))
	}
	for _, r := range rep.Rows {
		if i, ok := monthIdx[r.Month]; ok {
			cells[i][groupIdx[r.Group]] += r.AmountCents
		}
	}
	// Columns for groups that earned nothing in the range are left out.
	var kept []int
	for j := range groups {
		for i := range months {
			if cells[i][j] != 0 {
				kept = append(kept, j)
				break
			}
		}
	}
	sums := make([]int64, len(groups))
	d.Charts.Revenue.Labels = []string{}
	for i, m := range months {
		row := revenuePageRow{Month: v.PeriodName(m)}
		var total int64
		for _, j := range kept {
			row.Amounts = append(row.Amounts, v.Money(cells[i][j]))
			total += cells[i][j]
			sums[j] += cells[i][j]
		}
		row.Total = v.Money(total)
		d.Revenue = append(d.Revenue, row)
		d.Charts.Revenue.Labels = append(d.Charts.Revenue.Labels, row.Month)
	}
	d.RevenueSum = revenuePageRow{Month: v.T("rep_total"), Total: v.Money(rep.AmountCents)}
	d.Charts.Revenue.Datasets = []chartSeries{}
	for _, j := range kept {
		d.Groups = append(d.Groups, names[groups[j]])
		d.RevenueSum.Amounts = append(d.RevenueSum.Amounts, v.Money(sums[j]))
		series := chartSeries{Label: names[groups[j]], Data: make([]float64, len(months))}
		for i := range months {
			series.Data[i] = float64(cells[i][j]) / 100
		}
		d.Charts.Revenue.Datasets = append(d.Charts.Revenue.Datasets, series)
	}
	d.NoCharges = rep.Charges == 0
	d.MonthsShown = len(months)
}

// fillHeat makes the week × hour heat map, Monday first: each hour's
// shade is its share of the busiest hour's use, in heatLevels steps.
func (d *reportsPageData) fillHeat(v *view, cells [7][24]int64) {
	var most int64
	for _, day := range cells {
		for _, m := range day {
			most = max(most, m)
		}
	}
	d.HeatMax = v.Minutes(int(most))
	days := []string{"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"}
	for i := range 7 {
		wd := (i + 1) % 7 // Monday first
		row := heatRow{Day: v.T("adm_day_" + days[wd])}
		for h, m := range cells[wd] {
			level := 0
			if m > 0 {
				level = int((m*heatLevels + most - 1) / most) // 1 … heatLevels
			}
			row.Cells[h] = heatCell{Level: level, Used: v.Minutes(int(m))}
		}
		d.Heat = append(d.Heat, row)
	}
}

// percentOf writes part/whole as a percent in the page's language, to a
// tenth under 10 % ("0.3%", "0,3 %") and whole above, "—" when whole is
// zero.
func (v *view) percentOf(part, whole int64) string {
	if whole == 0 {
		return "—"
	}
	tenths := (part*1000 + whole/2) / whole
	p := strconv.FormatInt((tenths+5)/10, 10)
	if tenths > 0 && tenths < 100 {
		p = strconv.FormatInt(tenths/10, 10) + "." + strconv.FormatInt(tenths%10, 10)
	}
	if v.Lang == "fr" {
		return strings.Replace(p, ".", ",", 1) + "\u00a0%"
	}
	return p + "%"
}

// hours is minutes as hours with one decimal, for a chart's axis.
func hours(minutes int64) float64 { return float64((minutes*10+30)/60) / 10 }
