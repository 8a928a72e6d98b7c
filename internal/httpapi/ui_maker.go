package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
)

// The makers' pages: a machine's calendar, finding a free slot, my
// bookings, my sessions and my profile. They read the store with the API's
// visibility rules (a member sees their own bookings and sessions; others'
// bookings only as busy time, which the calendar reads from the
// availability API) and change nothing: booking, cancelling and the
// password go through the JSON API from the browser.

// makerPages registers the pages of the maker area (members with fablab.RoleMaker
// or above; the group already checks it).
func (s *Server) makerPages(g *gin.RouterGroup) {
	g.GET("/machines/:id", s.cached(s.machinePage))
	g.GET("/find", s.cached(s.findPage))
	g.GET("/bookings", s.cached(s.bookingsPage))
	g.GET("/sessions", s.cached(s.sessionsPage))
	g.GET("/profile", s.cached(s.profilePage))
}

// labWall writes t as the lab's wall-clock time without offset, the
// "floating" time the calendar is fed with (it runs in UTC whatever the
// browser's zone, so that it shows the lab's hours).
func labWall(t time.Time, loc *time.Location) string {
	return t.In(loc).Format("2006-01-02T15:04:05")
}

// machinePageData is what the machine page shows.
type machinePageData struct {
	Card machineCard
	// Calendar settings, for calendar.js.
	SlotMinutes, MinMinutes, MaxMinutes int
	SlotSeconds                         int    // the time inputs' step
	Now                                 string // the lab's wall-clock time now
	Today                               string // the lab's date today, YYYY-MM-DD
	BusinessHours                       string // JSON: FullCalendar businessHours
	Maintenance                         string // JSON: [{start,end}] lab wall times of maintenance blocks
	MinTime, MaxTime                    string // the earliest opening and latest closing of the week
	Durations                           []int  // booking lengths offered by the next-slot list
	DefaultMinutes                      int
}

// machinePage shows one machine: its state, price and the trainings the
// viewer lacks, its next free slots and a calendar to book on.
func (s *Server) machinePage(c *gin.Context) {
	ctx := c.Request.Context()
	id, err := pathID(c, "id")
	if err != nil {
		s.pageFail(c, err)
		return
	}
	m, err := s.store.Machine(ctx, id)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	if m.State == fablab.MachineRetired && !isStaff(c) {
		s.pageFail(c, fablab.Errorf(fablab.ENOTFOUND, "machine %s is retired", id))
		return
	}
	me := member(c)
	card, err := s.machineCard(ctx, me, m)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	st, err := s.store.Settings(ctx)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	loc := st.Location()
	now := s.now().In(loc)
	d := machinePageData{
		Card:        card,
		SlotMinutes: m.Rules.SlotMinutes, SlotSeconds: 60 * m.Rules.SlotMinutes, MinMinutes: m.Rules.MinMinutes, MaxMinutes: m.Rules.MaxMinutes,
		Now: labWall(now, loc), Today: now.Format(time.DateOnly),
	}
	d.BusinessHours, d.MinTime, d.MaxTime = businessHours(&st.OpeningHours)
	d.Maintenance = maintenanceTimes(&st, &m, now)
	for n := m.Rules.MinMinutes; n <= m.Rules.MaxMinutes && n <= 8*60 && len(d.Durations) < 12; n += m.Rules.SlotMinutes {
		d.Durations = append(d.Durations, n)
	}
	d.DefaultMinutes = m.Rules.MinMinutes
	if m.Rules.MinMinutes < 60 && 60 <= m.Rules.MaxMinutes && 60%m.Rules.SlotMinutes == 0 {
		d.DefaultMinutes = 60
	}
	v, err := s.newView(c, "machine", "machine_title", d)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	v.Title = m.Name // the page is the machine's own: its QR label leads here
	s.write(c, http.StatusOK, v)
}

// machineCard is one machine's price for me and the trainings I lack, by
// the same rule as the machines page.
func (s *Server) machineCard(ctx context.Context, me fablab.Member, m fablab.Machine) (machineCard, error) {
	card := machineCard{Machine: m, PriceCents: -1}
	group, err := s.memberGroup(ctx, me)
	if err != nil {
		return card, err
	}
	if p, ok := m.Prices[group]; ok {
		card.PriceCents = p
	}
	if len(m.RequiredTrainings) == 0 {
		return card, nil
	}
	quals, err := s.store.Qualifications(ctx, me.ID)
	if err != nil {
		return card, err
	}
	now := s.now()
	for _, id := range m.RequiredTrainings {
		one := fablab.Machine{RequiredTrainings: []fablab.ID{id}}
		if _, _, ok := fablab.Qualified(&one, me.ID, quals, now); ok {
			continue
		}
		t, err := s.store.Training(ctx, id)
		if fablab.ErrorCode(err) == fablab.ENOTFOUND {
			continue
		}
		if err != nil {
			return card, err
		}
		card.Missing = append(card.Missing, t)
	}
	return card, nil
}

// businessHours writes the opening hours as FullCalendar's businessHours
// (JSON), with the earliest opening and latest closing of the week, to
// bound the calendar's grid.
func businessHours(o *fablab.OpeningHours) (js, minTime, maxTime string) {
	type bh struct {
		Days  []int  `json:"daysOfWeek"`
		Start string `json:"startTime"`
		End   string `json:"endTime"`
	}
	out := []bh{}
	lo, hi := fablab.ClockTime(24*60), fablab.ClockTime(0)
	for w := time.Sunday; w <= time.Saturday; w++ {
		for _, r := range o.Day(w) {
			out = append(out, bh{Days: []int{int(w)}, Start: r.Open.String(), End: r.Close.String()})
			lo, hi = min(lo, r.Open), max(hi, r.Close)
		}
	}
	if hi <= lo { // closed all week: show a working day
		lo, hi = 8*60, 20*60
	}
	b, _ := json.Marshal(out)
	return string(b), lo.String() + ":00", hi.String() + ":00"
}

// maintenanceTimes lists the machine's maintenance blocks from a week ago
// on, as lab wall times (JSON): the calendar labels them (the availability
// API counts them as busy time).
func maintenanceTimes(st *fablab.Settings, m *fablab.Machine, now time.Time) string {
	type span struct {
		Start string `json:"start"`
		End   string `json:"end"`
	}
	out := []span{}
	loc := st.Location()
	since := now.AddDate(0, 0, -7)
	for _, b := range m.Maintenance {
		if b.End.After(since) {
			out = append(out, span{Start: labWall(b.Start, loc), End: labWall(b.End, loc)})
		}
	}
	j, _ := json.Marshal(out)
	return string(j)
}

// findChoice is one "when" of the find page, as an instant range computed
// with the server's clock in the lab's zone.
type findChoice struct {
	ID       string // today, week, next_week
	From, To time.Time
}

// findPageData is what the find page shows.
type findPageData struct {
	Kinds    []string
	Minutes  []int
	Whens    []findChoice
	Selected struct {
		Kind    string
		Minutes int
		When    string
	}
}

// findPage offers a search for the next free slots of a kind of machine;
// find.js asks GET /api/v1/slots and lists them with a Book button each.
func (s *Server) findPage(c *gin.Context) {
	ctx := c.Request.Context()
	ms, err := s.store.Machines(ctx, 0, 10_000)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	st, err := s.store.Settings(ctx)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	d := findPageData{Minutes: []int{30, 60, 90, 120, 180, 240}}
	seen := map[string]bool{}
	for _, m := range ms.Items {
		if m.State != fablab.MachineRetired && !seen[m.Kind] {
			seen[m.Kind] = true
			d.Kinds = append(d.Kinds, m.Kind)
		}
	}
	sort.Strings(d.Kinds)
	loc := st.Location()
	now := s.now().In(loc)
	midnight := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, loc)
	monday := midnight.AddDate(0, 0, -((int(now.Weekday()) + 6) % 7))
	d.Whens = []findChoice{
		{"today", now, midnight.AddDate(0, 0, 1)},
		{"week", now, monday.AddDate(0, 0, 7)},
		{"next_week", monday.AddDate(0, 0, 7), monday.AddDate(0, 0, 14)},
	}
	d.Selected.Kind = c.Query("kind")
	if !seen[d.Selected.Kind] {
		d.Selected.Kind = ""
		if seen[fablab.KindLaserCutter] {
			d.Selected.Kind = fablab.KindLaserCutter
		}
	}
	d.Selected.Minutes = 60
	for _, n := range d.Minutes {
		if c.Query("minutes") == strconv.Itoa(n) {
			d.Selected.Minutes = n
		}
	}
	d.Selected.When = "week"
	for _, w := range d.Whens {
		if c.Query("when") == w.ID {
			d.Selected.When = w.ID
		}
	}
	s.render(c, http.StatusOK, "find", "find_title", d)
}

// bookingRow is one of my bookings as the bookings page shows it.
type bookingRow struct {
	Booking     fablab.Booking
	MachineName string
	// Cancellable: confirmed and not started; the API decides the rest
	// (the cancellation cutoff) when asked.
	Cancellable bool
	// Texts in the page's language, prepared once (a page of many rows
	// renders fast when the template only copies fields).
	Start, End, StartISO, EndISO, State string
}

// key names everything the row shows, for the page's row cache (with the
// lab's time zone tz, which its times are written in): a row whose booking
// changes (cancelled, started, over) gets a new key.
func (r *bookingRow) key(tz string) string {
	b := &r.Booking
	// The state's words follow from these and the row's template (a
	// confirmed booking not cancellable is under way among the upcoming
	// ones, over among the past ones).
	return fmt.Sprintf("%d\x00%d\x00%s\x00%d\x00%d\x00%s\x00%t\x00%s", b.ID, b.MachineID, r.MachineName,
		b.Start.Unix(), b.End.Unix(), b.State, r.Cancellable, tz)
}

// texts fills a row's texts for view v.
func (r *bookingRow) texts(v *view) {
	b := &r.Booking
	r.Start, r.End, r.StartISO, r.EndISO = v.DateTime(b.Start), v.Time(b.End), v.ISO(b.Start), v.ISO(b.End)
	switch {
	case b.State == fablab.BookingConfirmed && r.Cancellable:
		r.State = v.T("booking_state_confirmed")
	case b.State == fablab.BookingConfirmed && b.End.After(v.now):
		r.State = v.T("booking_state_running")
	case b.State == fablab.BookingConfirmed:
		r.State = v.T("booking_state_past")
	default:
		r.State = v.TOr("booking_state_"+b.State, b.State)
	}
}

// bookingsPageData is what the bookings page shows: its rows, rendered
// (through the page's row cache).
type bookingsPageData struct {
	Upcoming, Past         []bookingRow
	UpcomingHTML, PastHTML template.HTML
}

// How far back and ahead the bookings and sessions pages look, and how many
// rows they show: a member who books every day still gets a page that
// renders at once (older and further bookings are in the calendar feed
// and the API).
const (
	pagePast     = 90 * 24 * time.Hour
	pageAhead    = 90 * 24 * time.Hour
	pageBookings = 20 // upcoming bookings shown
	pagePastRows = 10 // past bookings shown
	pageSessions = 30
)

// bookingsPage lists my bookings, upcoming first (the next pageBookings),
// then the latest pagePastRows past ones (the calendar feed has them all), and the calendar feed section.
// It reads a week each way first and looks further only when that week
// holds too few, so that a member with a booking every day costs no more
// than one with a few.
func (s *Server) bookingsPage(c *gin.Context) {
	ctx := c.Request.Context()
	me := member(c)
	now := s.now()
	upcoming := func(b fablab.Booking) bool { return b.End.After(now) && b.State == fablab.BookingConfirmed }
	var d bookingsPageData
	var cancelled []bookingRow
	names, err := s.machineNames(ctx)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	for _, span := range []time.Duration{7 * 24 * time.Hour, 31 * 24 * time.Hour, pageAhead} {
		bs, err := s.store.Bookings(ctx, bolt.BookingFilter{MemberID: me.ID, From: now, To: now.Add(span)})
		if err != nil {
			s.pageFail(c, err)
			return
		}
		d.Upcoming, cancelled = d.Upcoming[:0], cancelled[:0]
		for _, b := range bs {
			switch {
			case upcoming(b) && len(d.Upcoming) < pageBookings:
				d.Upcoming = append(d.Upcoming, bookingRow{Booking: b, MachineName: names[b.MachineID], Cancellable: b.Start.After(now)})
			case !upcoming(b) && b.Start.After(now) && len(cancelled) < pagePastRows:
				// Cancelled before they began: listed with the past ones.
				cancelled = append(cancelled, bookingRow{Booking: b, MachineName: names[b.MachineID]})
			}
		}
		if len(d.Upcoming) == pageBookings {
			break
		}
	}
	for _, span := range []time.Duration{7 * 24 * time.Hour, 31 * 24 * time.Hour, pagePast} {
		bs, err := s.store.Bookings(ctx, bolt.BookingFilter{MemberID: me.ID, From: now.Add(-span), To: now.Add(time.Minute)})
		if err != nil {
			s.pageFail(c, err)
			return
		}
		d.Past = d.Past[:0]
		for i := len(bs) - 1; i >= 0 && len(d.Past) < pagePastRows; i-- { // latest first
			if !upcoming(bs[i]) && bs[i].Start.Before(now) {
				d.Past = append(d.Past, bookingRow{Booking: bs[i], MachineName: names[bs[i].MachineID]})
			}
		}
		if len(d.Past) == pagePastRows {
			break
		}
	}
	slices.Reverse(cancelled)
	d.Past = append(cancelled, d.Past...)
	v, err := s.newView(c, "bookings", "bookings_title", nil)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	for _, part := range []struct {
		rows []bookingRow
		name string
		out  *template.HTML
	}{{d.Upcoming, "booking_upcoming", &d.UpcomingHTML}, {d.Past, "booking_past", &d.PastHTML}} {
		var list strings.Builder
		for i := range part.rows {
			r := &part.rows[i]
			h, err := s.fragmentOf(v, part.name, r.key(v.Lab.TimeZone), func() any { r.texts(v); return r })
			if err != nil {
				s.pageFail(c, err)
				return
			}
			list.WriteString(string(h))
		}
		*part.out = template.HTML(list.String())
	}
	v.Data = d
	s.write(c, http.StatusOK, v)
}

// machineNames maps every machine's id to its name.
func (s *Server) machineNames(ctx context.Context) (map[fablab.ID]string, error) {
	ms, err := s.store.Machines(ctx, 0, 10_000)
	if err != nil {
		return nil, err
	}
	out := make(map[fablab.ID]string, len(ms.Items))
	for _, m := range ms.Items {
		out[m.ID] = m.Name
	}
	return out, nil
}

// sessionRow is one of my sessions as the sessions page shows it, its
// texts ready in the page's language.
type sessionRow struct {
	Session                                fablab.Session
	MachineName                            string
	Start, End, StartISO, EndISO, Duration string
	Reason                                 string // "" while in progress
}

// sessionsPage lists my latest pageSessions sessions of the last 90 days,
// latest first; an open one shows as in progress.
func (s *Server) sessionsPage(c *gin.Context) {
	ctx := c.Request.Context()
	me := member(c)
	now := s.now()
	ss, err := s.store.SessionsOfMember(ctx, me.ID, now.Add(-pagePast), now.Add(24*time.Hour))
	if err != nil {
		s.pageFail(c, err)
		return
	}
	names, err := s.machineNames(ctx)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	v, err := s.newView(c, "sessions", "sessions_title", nil)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	sort.SliceStable(ss, func(i, j int) bool { return ss[i].Started.After(ss[j].Started) })
	if len(ss) > pageSessions {
		ss = ss[:pageSessions]
	}
	rows := make([]sessionRow, 0, len(ss))
	for _, se := range ss {
		r := sessionRow{Session: se, MachineName: names[se.MachineID], Start: v.DateTime(se.Started), StartISO: v.ISO(se.Started)}
		end := now
		if se.Ended != nil {
			end = *se.Ended
			r.End, r.EndISO = v.DateTime(end), v.ISO(end)
			r.Reason = v.TOr("end_reason_"+string(se.EndReason), string(se.EndReason))
		}
		r.Duration = v.Minutes(int(end.Sub(se.Started).Round(time.Minute) / time.Minute))
		rows = append(rows, r)
	}
	v.Data = rows
	s.write(c, http.StatusOK, v)
}

// qualificationRow is one of my qualifications with its training's name.
type qualificationRow struct {
	Q        fablab.Qualification
	Training string
	Expired  bool
}

// profilePageData is what the profile page shows.
type profilePageData struct {
	Member         fablab.Member
	Group          string // the tariff group paid, the organisation's when the member has none
	Organisation   string
	Badges         []fablab.Badge
	Qualifications []qualificationRow
	PasswordDone   bool
}

// profilePage shows my account, badges and qualifications, with the
// password change form (POST /api/v1/me/password).
func (s *Server) profilePage(c *gin.Context) {
	ctx := c.Request.Context()
	me := member(c)
	d := profilePageData{Member: me, PasswordDone: c.Query("password") == "changed"}
	var err error
	if d.Group, err = s.memberGroup(ctx, me); err != nil {
		s.pageFail(c, err)
		return
	}
	if me.OrganisationID != 0 {
		o, err := s.store.Organisation(ctx, me.OrganisationID)
		if err != nil {
			s.pageFail(c, err)
			return
		}
		d.Organisation = o.Name
	}
	if d.Badges, err = s.store.Badges(ctx, me.ID); err != nil {
		s.pageFail(c, err)
		return
	}
	quals, err := s.store.Qualifications(ctx, me.ID)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	now := s.now()
	for _, q := range quals {
		row := qualificationRow{Q: q, Expired: !q.ValidAt(now)}
		t, err := s.store.Training(ctx, q.TrainingID)
		switch {
		case err == nil:
			row.Training = t.Name
		case fablab.ErrorCode(err) != fablab.ENOTFOUND:
			s.pageFail(c, err)
			return
		}
		d.Qualifications = append(d.Qualifications, row)
	}
	s.render(c, http.StatusOK, "profile", "profile_title", d)
}
