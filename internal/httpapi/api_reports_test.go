package httpapi

import (
	"bytes"
	"context"
	"encoding/csv"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
)

// seedReports gives the harness's lab priced machines, billed sessions of
// alice and bob in March and April, a no-show and a correction.
func (h *apiHarness) seedReports(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	for _, m := range []fablab.Machine{h.laser, h.printer} {
		if _, err := h.store.UpdateMachine(ctx, m.ID, func(m *fablab.Machine) error {
			m.Prices = map[string]int64{"student": 1500, "sme": 2500}
			m.NoShowFeeCents = 400
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	use := func(m fablab.ID, a *apiAccount, booking fablab.ID, start, end time.Time) {
		if _, err := h.store.RecordSession(ctx, fablab.Session{MachineID: m, MemberID: a.ID, BookingID: booking, DeviceID: "dev",
			Started: start, Until: end, Ended: &end, EndReason: fablab.EndTapOut, Confirmed: true, Billable: true}, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	b := h.seedBooking(t, h.laser.ID, h.alice, apiAt(1, 10, 0), apiAt(1, 12, 0))
	use(h.laser.ID, h.alice, b.ID, apiAt(1, 10, 0), apiAt(1, 11, 40))
	use(h.printer.ID, h.bob, 0, apiAt(3, 14, 0), apiAt(3, 15, 10))
	use(h.printer.ID, h.alice, 0, apiAt(31, 9, 0), apiAt(31, 13, 0)) // 2 April
	noShow := h.seedBooking(t, h.laser.ID, h.bob, apiAt(8, 9, 0), apiAt(8, 10, 0))
	if _, _, err := h.store.BillSessions(ctx, 100); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.MarkNoShows(ctx, noShow.Start.Add(20*time.Minute), time.Hour); err != nil {
		t.Fatal(err)
	}
	cs, err := h.store.Charges(ctx, bolt.ChargeFilter{MemberID: h.alice.ID})
	if err != nil || len(cs) == 0 {
		t.Fatalf("alice's charges: %v %v", cs, err)
	}
	if _, err := h.store.AddCorrection(ctx, cs[0].ID, -333, "laser lens dirty", h.staff.ID); err != nil {
		t.Fatal(err)
	}
}

func TestAPIUsageReport(t *testing.T) {
	h := newAPIHarness(t)
	h.seedReports(t)
	from, to := "2026-03-01", "2026-05-01"
	path := func(by, format string) string {
		return "/api/v1/reports/usage?" + url.Values{"from": {from}, "to": {to}, "by": {by}, "format": {format}}.Encode()
	}
	for _, by := range bolt.UsageGroupings {
		t.Run(by, func(t *testing.T) {
			want, err := h.store.UsageReport(t.Context(), apiAt(-1, 0, 0), time.Date(2026, 5, 1, 0, 0, 0, 0, apiParis), by)
			if err != nil {
				t.Fatal(err)
			}
			r := h.do(t, "GET", path(by, "json"), h.staff.Token, nil)
			r.want(t, http.StatusOK, "")
			var got usageReport
			r.decode(t, &got)
			if !got.From.Equal(want.From) || !got.To.Equal(want.To) || got.By != by || got.TimeZone != "Europe/Paris" {
				t.Errorf("header %v %v %s %s: the days are not read in the lab's zone", got.From, got.To, got.By, got.TimeZone)
			}
			if len(got.Rows) != len(want.Rows) || len(got.Rows) == 0 {
				t.Fatalf("%d rows, want %d (and some)", len(got.Rows), len(want.Rows))
			}
			for i, w := range want.Rows {
				if got.Rows[i] != usageRowOf(w) {
					t.Errorf("row %d: %+v, want %+v", i, got.Rows[i], usageRowOf(w))
				}
			}
			if got.Total.UsedMinutes != 100+70+240 || got.Total.Sessions != 3 || got.Total.NoShows != 1 || got.Total.Bookings != 2 {
				t.Errorf("total %+v: want 410 minutes used in 3 sessions, 2 bookings of which 1 no-show", got.Total)
			}
			// The CSV has the same rows.
			r = h.do(t, "GET", path(by, "csv"), h.admin.Token, nil)
			r.want(t, http.StatusOK, "")
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
				t.Errorf("Content-Type %q", ct)
			}
			if cd := r.header.Get("Content-Disposition"); cd != `attachment; filename="fabgate-usage-by-`+by+`-2026-03-01_2026-04-30.csv"` {
				t.Errorf("Content-Disposition %q", cd)
			}
			recs, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != len(got.Rows)+1 || recs[0][0] != by || recs[0][3] != "used_minutes" {
				t.Fatalf("CSV %q: want a header and %d rows", recs, len(got.Rows))
			}
			for i, row := range got.Rows {
				rec := recs[i+1]
				if rec[0] != row.Key || rec[1] != row.Name || rec[3] != strconv.FormatInt(row.UsedMinutes, 10) ||
					rec[6] != strconv.Itoa(row.NoShows) || rec[8] != strconv.Itoa(row.Sessions) {
					t.Errorf("CSV row %q, JSON row %+v", rec, row)
				}
				if rate, err := strconv.ParseFloat(rec[7], 64); err != nil || rate-row.NoShowRate > 1e-4 || row.NoShowRate-rate > 1e-4 {
					t.Errorf("CSV no-show rate %q, JSON %v", rec[7], row.NoShowRate)
				}
			}
		})
	}
	// Names are resolved.
	var rep usageReport
	h.do(t, "GET", path("member", "json"), h.staff.Token, nil).decode(t, &rep)
	names := map[string]string{}
	for _, r := range rep.Rows {
		names[r.Key] = r.Name
	}
	if names[h.alice.ID.String()] != "Alice Maker" || names[h.bob.ID.String()] != "Bob Maker" {
		t.Errorf("names %v", names)
	}
}

func TestAPIRevenueReport(t *testing.T) {
	h := newAPIHarness(t)
	h.seedReports(t)
	q := "from=" + url.QueryEscape("2026-03-01T00:00:00+01:00") + "&to=2026-05-01"
	r := h.do(t, "GET", "/api/v1/reports/revenue?"+q, h.staff.Token, nil)
	r.want(t, http.StatusOK, "")
	var got revenueReport
	r.decode(t, &got)
	all, err := h.store.Charges(t.Context(), bolt.ChargeFilter{From: apiAt(-1, 0, 0), To: time.Date(2026, 5, 1, 0, 0, 0, 0, apiParis)})
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, c := range all {
		sum += c.AmountCents
	}
	// laser 100 min student 25.00 − 3.33; printer 70 min sme 29.17;
	// printer 240 min student 60.00; no-show fee 4.00.
	if got.AmountExclCents != sum || sum != 2500-333+2917+6000+400 || got.Charges != len(all) || got.Currency != "EUR" {
		t.Errorf("total %d cents in %d charges (%s), want the ledger's %d in %d", got.AmountExclCents, got.Charges, got.Currency, sum, len(all))
	}
	months := map[string]int64{}
	for _, row := range got.Rows {
		months[row.Month] += row.AmountExclCents
		if row.Machine == "" || row.GroupName == "" {
			t.Errorf("row %+v: names missing", row)
		}
	}
	if months["2026-03"] != 2500-333+2917+400 || months["2026-04"] != 6000 { // the correction is dated when it was made
		t.Errorf("by month %v", months)
	}

	r = h.do(t, "GET", "/api/v1/reports/revenue?format=csv&"+q, h.staff.Token, nil)
	r.want(t, http.StatusOK, "")
	if cd := r.header.Get("Content-Disposition"); cd != `attachment; filename="fabgate-revenue-2026-03-01_2026-04-30.csv"` {
		t.Errorf("Content-Disposition %q", cd)
	}
	recs, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(got.Rows)+1 || recs[0][9] != "amount_excl_vat" {
		t.Fatalf("CSV %q", recs)
	}
	var csvSum int64
	for i, rec := range recs[1:] {
		row := got.Rows[i]
		if rec[0] != row.Month || rec[2] != row.Machine || rec[3] != row.Group || rec[9] != fablab.FormatDecimal(row.AmountExclCents) {
			t.Errorf("CSV row %q, JSON row %+v", rec, row)
		}
		whole, frac, _ := strings.Cut(strings.TrimPrefix(rec[9], "-"), ".")
		c, _ := strconv.ParseInt(whole+frac, 10, 64)
		if strings.HasPrefix(rec[9], "-") {
			c = -c
		}
		csvSum += c
	}
	if csvSum != sum {
		t.Errorf("the CSV's amounts add up to %d cents, want %d", csvSum, sum)
	}
}

func TestAPIReportsRefusals(t *testing.T) {
	h := newAPIHarness(t)
	usage, revenue := "/api/v1/reports/usage?", "/api/v1/reports/revenue?"
	get := func(path string) apiReq { return apiReq{method: "GET", path: path} }
	cases := []apiRefusal{
		{"maker usage", h.alice, get(usage), http.StatusForbidden, fablab.EFORBIDDEN},
		{"maker revenue", h.bob, get(revenue), http.StatusForbidden, fablab.EFORBIDDEN},
		{"anonymous", nil, get(revenue), http.StatusUnauthorized, fablab.EUNAUTHORIZED},
		{"bad from", h.staff, get(usage + "from=March"), http.StatusBadRequest, fablab.EINVALID},
		{"bad date", h.staff, get(revenue + "from=2026-02-30"), http.StatusBadRequest, fablab.EINVALID},
		{"to before from", h.staff, get(usage + "from=2026-04-01&to=2026-03-01"), http.StatusBadRequest, fablab.EINVALID},
		{"six years", h.staff, get(revenue + "from=2020-01-01&to=2026-01-02"), http.StatusBadRequest, fablab.EINVALID},
		{"bad by", h.staff, get(usage + "by=payer"), http.StatusBadRequest, fablab.EINVALID},
		{"bad format", h.staff, get(revenue + "format=xlsx"), http.StatusBadRequest, fablab.EINVALID},
	}
	apiCheckRefusals(t, h, cases, map[string]string{"bad by": "machine, group, member, organisation", "six years": "5 years"})
	fields := map[string]string{"bad from": "from", "bad date": "from", "to before from": "to", "six years": "to", "bad by": "by", "bad format": "format"}
	for _, c := range cases {
		if want, ok := fields[c.name]; ok {
			if p := h.do(t, "GET", c.rq.path, h.staff.Token, nil).problem(t); p.Field != want {
				t.Errorf("%s: field %q, want %q", c.name, p.Field, want)
			}
		}
	}
}
