package httpapi

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/invoice"
)

// usageRow is one row of GET /reports/usage.
type usageRow struct {
	Key           string  `json:"key"`
	Name          string  `json:"name"`
	BookedMinutes int64   `json:"booked_minutes"`
	UsedMinutes   int64   `json:"used_minutes"`
	OpenMinutes   int64   `json:"open_minutes"`
	Bookings      int     `json:"bookings"`
	NoShows       int     `json:"no_shows"`
	NoShowRate    float64 `json:"no_show_rate"`
	Sessions      int     `json:"sessions"`
	// BusiestHours: used minutes by weekday (0 Sunday) and hour of the
	// lab's wall clock, 7 arrays of 24.
	BusiestHours [7][24]int64 `json:"busiest_hours"`
}

// usageReport is the body of GET /reports/usage.
type usageReport struct {
	From     time.Time  `json:"from"`
	To       time.Time  `json:"to"`
	By       string     `json:"by"`
	TimeZone string     `json:"time_zone"`
	Rows     []usageRow `json:"rows"`
	Total    usageRow   `json:"total"`
}

// revenueRow is one row of GET /reports/revenue.
type revenueRow struct {
	Month           string `json:"month"`
	MachineID       string `json:"machine_id"` // "0": none (a credit note's line)
	Machine         string `json:"machine"`
	Group           string `json:"group"`
	GroupName       string `json:"group_name"`
	OrganisationID  string `json:"organisation_id"` // "0": none
	Organisation    string `json:"organisation"`
	Charges         int    `json:"charges"`
	Minutes         int64  `json:"minutes"`
	AmountExclCents int64  `json:"amount_excl_cents"`
}

// revenueReport is the body of GET /reports/revenue.
type revenueReport struct {
	From            time.Time    `json:"from"`
	To              time.Time    `json:"to"`
	TimeZone        string       `json:"time_zone"`
	Currency        string       `json:"currency"`
	Rows            []revenueRow `json:"rows"`
	Charges         int          `json:"charges"`
	Minutes         int64        `json:"minutes"`
	AmountExclCents int64        `json:"amount_excl_cents"`
}

// reportRange reads ?from=&to= of a report: RFC 3339 instants or lab days
// (YYYY-MM-DD: from the start of from's day to the start of to's, to
// exclusive). Both default to the current month in the lab's zone.
func reportRange(c *gin.Context, st *fablab.Settings, now time.Time) (from, to time.Time, err error) {
	loc := st.Location()
	month := fablab.PeriodOf(now, loc)
	if from, err = reportInstant(c, "from", month.Start(loc), loc); err != nil {
		return
	}
	to, err = reportInstant(c, "to", month.End(loc), loc)
	return
}

func reportInstant(c *gin.Context, name string, def time.Time, loc *time.Location) (time.Time, error) {
	v := c.Query(name)
	if v == "" {
		return def, nil
	}
	if len(v) == len(time.DateOnly) {
		d, err := fablab.ParseDate(v)
		if err != nil {
			return time.Time{}, fablab.Errorf(fablab.EINVALID, "query %s must be a date such as 2026-03-01 or an RFC 3339 time", name).On(name).
				Say("problem_report_date", "Got", v)
		}
		return d.In(loc), nil
	}
	return queryTime(c, name, def)
}

// reportFormat reads ?format=json|csv.
func reportFormat(c *gin.Context) (string, error) {
	switch f := c.DefaultQuery("format", "json"); f {
	case "json", "csv":
		return f, nil
	default:
		return "", fablab.Errorf(fablab.EINVALID, "format must be json or csv").On("format").Say("problem_format")
	}
}

// usageReport answers GET /reports/usage (staff).
func (s *Server) usageReport(c *gin.Context) {
	ctx := c.Request.Context()
	format, err := reportFormat(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	st, err := s.store.Settings(ctx)
	if err != nil {
		s.fail(c, err)
		return
	}
	from, to, err := reportRange(c, &st, s.now())
	if err != nil {
		s.fail(c, err)
		return
	}
	by := c.DefaultQuery("by", bolt.ByMachine)
	rep, err := s.store.UsageReport(ctx, from, to, by)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := usageReport{From: rep.From, To: rep.To, By: rep.By, TimeZone: rep.TimeZone, Rows: make([]usageRow, 0, len(rep.Rows)), Total: usageRowOf(rep.Total)}
	for _, r := range rep.Rows {
		out.Rows = append(out.Rows, usageRowOf(r))
	}
	if format == "json" {
		c.JSON(http.StatusOK, out)
		return
	}
	var buf bytes.Buffer
	if err := writeUsageCSV(&buf, by, out.Rows); err != nil {
		s.fail(c, fablab.Internal(err, "write usage CSV"))
		return
	}
	s.sendCSV(c, fmt.Sprintf("fabgate-usage-by-%s-%s.csv", by, reportSpan(rep.From, rep.To, st.Location())), buf.Bytes())
}

// writeUsageCSV writes a usage report's rows under a header whose first
// column is the grouping.
func writeUsageCSV(out io.Writer, by string, rows []usageRow) error {
	w := csv.NewWriter(out)
	_ = w.Write([]string{by, "name", "booked_minutes", "used_minutes", "open_minutes", "bookings", "no_shows", "no_show_rate", "sessions"})
	for _, r := range rows {
		_ = w.Write([]string{csvText(r.Key), csvText(r.Name), i64(r.BookedMinutes), i64(r.UsedMinutes), i64(r.OpenMinutes),
			strconv.Itoa(r.Bookings), strconv.Itoa(r.NoShows), strconv.FormatFloat(r.NoShowRate, 'f', 4, 64), strconv.Itoa(r.Sessions)})
	}
	w.Flush()
	return w.Error()
}

func usageRowOf(r bolt.UsageRow) usageRow {
	return usageRow{
		Key: r.Key, Name: r.Name, BookedMinutes: r.BookedMinutes, UsedMinutes: r.UsedMinutes, OpenMinutes: r.OpenMinutes,
		Bookings: r.Bookings, NoShows: r.NoShows, NoShowRate: r.NoShowRate(), Sessions: r.Sessions, BusiestHours: r.BusiestHours,
	}
}

// revenueReport answers GET /reports/revenue (staff).
func (s *Server) revenueReport(c *gin.Context) {
	ctx := c.Request.Context()
	format, err := reportFormat(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	st, err := s.store.Settings(ctx)
	if err != nil {
		s.fail(c, err)
		return
	}
	from, to, err := reportRange(c, &st, s.now())
	if err != nil {
		s.fail(c, err)
		return
	}
	rep, err := s.store.RevenueReport(ctx, from, to)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := revenueReport{From: rep.From, To: rep.To, TimeZone: rep.TimeZone, Currency: st.Currency, Rows: make([]revenueRow, 0, len(rep.Rows)),
		Charges: rep.Charges, Minutes: rep.Minutes, AmountExclCents: rep.AmountCents}
	for _, r := range rep.Rows {
		out.Rows = append(out.Rows, revenueRow{
			Month: r.Month, MachineID: r.MachineID.String(), Machine: r.MachineName, Group: r.Group, GroupName: r.GroupName,
			OrganisationID: r.OrganisationID.String(), Organisation: r.OrganisationName, Charges: r.Charges, Minutes: r.Minutes, AmountExclCents: r.AmountCents,
		})
	}
	if format == "json" {
		c.JSON(http.StatusOK, out)
		return
	}
	var buf bytes.Buffer
	if err := writeRevenueCSV(&buf, out.Rows); err != nil {
		s.fail(c, fablab.Internal(err, "write revenue CSV"))
		return
	}
	s.sendCSV(c, fmt.Sprintf("fabgate-revenue-%s.csv", reportSpan(rep.From, rep.To, st.Location())), buf.Bytes())
}

// revenueHeader is the header row of writeRevenueCSV.
var revenueHeader = []string{"month", "machine_id", "machine", "group", "group_name", "organisation_id", "organisation", "charges", "minutes", "amount_excl_vat"}

// writeRevenueCSV writes a revenue report's rows, amounts as decimals.
func writeRevenueCSV(out io.Writer, rows []revenueRow) error {
	w := csv.NewWriter(out)
	_ = w.Write(revenueHeader)
	for _, r := range rows {
		_ = w.Write([]string{r.Month, r.MachineID, csvText(r.Machine), csvText(r.Group), csvText(r.GroupName), r.OrganisationID, csvText(r.Organisation),
			strconv.Itoa(r.Charges), i64(r.Minutes), fablab.FormatDecimal(r.AmountExclCents)})
	}
	w.Flush()
	return w.Error()
}

// sendCSV answers a CSV attachment.
func (s *Server) sendCSV(c *gin.Context, name string, body []byte) {
	c.Header("Content-Disposition", `attachment; filename="`+name+`"`)
	c.Data(http.StatusOK, "text/csv; charset=utf-8", body)
}

// reportSpan names a report's range in a file name: its first and last
// lab days.
func reportSpan(from, to time.Time, loc *time.Location) string {
	last := to.Add(-time.Second).In(loc)
	return strings.Join([]string{from.In(loc).Format(time.DateOnly), last.Format(time.DateOnly)}, "_")
}

func i64(n int64) string { return strconv.FormatInt(n, 10) }

// csvText keeps text that people wrote (a name, a note, a group id) from
// being read as a formula by a spreadsheet (invoice.SpreadsheetSafe).
func csvText(v string) string { return invoice.SpreadsheetSafe(v) }
