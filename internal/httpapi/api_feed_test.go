package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"strings"
	"sync"
	"testing"
	"time"

	goical "github.com/emersion/go-ical"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
)

// feedBase is where feed URLs point: the public URL, or without one the
// request's host.
func (h *apiHarness) feedBase() string {
	if h.server.publicURL != "" {
		return h.server.publicURL
	}
	return h.srv.URL
}

// apiFeedURL makes a's calendar feed over HTTP and returns its URL.
func (h *apiHarness) apiFeedURL(t *testing.T, a *apiAccount) string {
	t.Helper()
	res := h.do(t, "POST", "/api/v1/me/calendar-feed", a.Token, nil)
	res.want(t, http.StatusCreated, "")
	var fc calendarFeedCreated
	res.decode(t, &fc)
	base := h.feedBase()
	if !strings.HasPrefix(fc.URL, base+"/feed/") || !strings.HasSuffix(fc.URL, ".ics") {
		t.Fatalf("feed URL %q, want %s/feed/<token>.ics", fc.URL, base)
	}
	return fc.URL
}

// apiFeedEvent is one VEVENT as an independent parser reads it.
type apiFeedEvent struct {
	UID, Summary, Location, URL, Status, Description string
	Start, End                                       time.Time
}

// apiParseFeed checks a feed response and parses it with go-ical. It
// returns the events by UID and the calendar's name.
func apiParseFeed(t *testing.T, res apiResp) (map[string]apiFeedEvent, string) {
	t.Helper()
	if res.status != http.StatusOK {
		t.Fatalf("feed: status %d: %s", res.status, apiShort(res.body))
	}
	if ct := res.header.Get("Content-Type"); ct != "text/calendar; charset=utf-8" {
		t.Errorf("feed Content-Type %q, want text/calendar; charset=utf-8", ct)
	}
	if cc := res.header.Get("Cache-Control"); cc != "private, max-age=300" {
		t.Errorf("feed Cache-Control %q, want private, max-age=300 (never a shared cache: the URL is a secret)", cc)
	}
	if res.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("feed lacks the security headers: %v", res.header)
	}
	cal, err := goical.NewDecoder(bytes.NewReader(res.body)).Decode()
	if err != nil {
		t.Fatalf("the feed does not parse as iCalendar: %v\n%s", err, res.body)
	}
	if m := cal.Props.Get(goical.PropMethod); m != nil {
		t.Errorf("a subscribed feed has no METHOD, got %q", m.Value)
	}
	name, _ := cal.Props.Text("X-WR-CALNAME")
	out := map[string]apiFeedEvent{}
	for _, e := range cal.Events() {
		var ev apiFeedEvent
		ev.UID, _ = e.Props.Text(goical.PropUID)
		ev.Summary, _ = e.Props.Text(goical.PropSummary)
		ev.Location, _ = e.Props.Text(goical.PropLocation)
		ev.Description, _ = e.Props.Text(goical.PropDescription)
		if p := e.Props.Get(goical.PropURL); p != nil {
			ev.URL = p.Value
		}
		if p := e.Props.Get(goical.PropStatus); p != nil {
			ev.Status = p.Value
		}
		if p := e.Props.Get(goical.PropDateTimeStamp); p == nil {
			t.Errorf("event %s has no DTSTAMP", ev.UID)
		}
		if ev.Start, err = e.DateTimeStart(time.UTC); err != nil {
			t.Fatalf("event %s: DTSTART: %v", ev.UID, err)
		}
		if ev.End, err = e.DateTimeEnd(time.UTC); err != nil {
			t.Fatalf("event %s: DTEND: %v", ev.UID, err)
		}
		if _, dup := out[ev.UID]; dup {
			t.Errorf("UID %s appears twice", ev.UID)
		}
		out[ev.UID] = ev
	}
	return out, name
}

// apiGetFeed fetches a feed URL of this harness's server, without credentials.
func (h *apiHarness) apiGetFeed(t *testing.T, url string) apiResp {
	t.Helper()
	return h.send(t, apiReq{method: "GET", path: url[strings.Index(url, "/feed/"):]})
}

// TestAPICalendarFeed books for alice (over HTTP and in the store, in every
// state, inside and outside the feed's window, and for bob at the same
// times), then reads alice's feed back with go-ical: each of her bookings
// in the window is there with its UID, times, machine, lab and status, and
// nothing else is.
func TestAPICalendarFeed(t *testing.T) {
	h := newAPIHarness(t)
	ctx := context.Background()

	// Bookings at fixed lab times; the clock stands at apiStart.
	viaHTTP := h.book(t, h.alice, h.printer.ID, apiAt(1, 10, 0), apiAt(1, 11, 0))
	viaHTTP.want(t, http.StatusCreated, "")
	var booked fablab.Booking
	viaHTTP.decode(t, &booked)
	cancelled := h.seedBooking(t, h.laser.ID, h.alice, apiAt(2, 14, 0), apiAt(2, 15, 30))
	h.do(t, "DELETE", "/api/v1/bookings/"+cancelled.ID.String(), h.alice.Token, nil).want(t, http.StatusOK, "")
	completed := h.seedBooking(t, h.laser.ID, h.alice, apiAt(-3, 10, 0), apiAt(-3, 12, 0))
	noShow := h.seedBooking(t, h.cnc.ID, h.alice, apiAt(-80, 9, 0), apiAt(-80, 9, 30))
	for id, state := range map[fablab.ID]string{completed.ID: fablab.BookingCompleted, noShow.ID: fablab.BookingNoShow} {
		if _, err := h.store.SetBookingState(ctx, id, state, h.staff.ID, func(fablab.Machine, fablab.Booking) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	ahead := h.seedBooking(t, h.cnc.ID, h.alice, apiAt(300, 10, 0), apiAt(300, 11, 0))
	tooOld := h.seedBooking(t, h.printer.ID, h.alice, apiAt(-100, 10, 0), apiAt(-100, 11, 0))
	tooFar := h.seedBooking(t, h.printer.ID, h.alice, apiAt(400, 10, 0), apiAt(400, 11, 0))
	var bobs []fablab.Booking
	for _, d := range []int{-3, 1, 2, 300} {
		bobs = append(bobs, h.seedBooking(t, h.printer.ID, h.bob, apiAt(d, 16, 0), apiAt(d, 17, 0)))
	}

	url := h.apiFeedURL(t, h.alice)
	events, name := apiParseFeed(t, h.apiGetFeed(t, url))
	if name != apiLabName+" — "+h.alice.Name {
		t.Errorf("X-WR-CALNAME %q, want the lab's and alice's names", name)
	}
	u, err := neturl.Parse(h.feedBase())
	if err != nil {
		t.Fatal(err)
	}
	host := u.Hostname()
	machines := map[fablab.ID]fablab.Machine{h.laser.ID: h.laser, h.printer.ID: h.printer, h.cnc.ID: h.cnc}
	want := []struct {
		b      fablab.Booking
		status string
	}{
		{booked, "CONFIRMED"}, {cancelled, "CANCELLED"}, {completed, "CONFIRMED"}, {noShow, "CONFIRMED"}, {ahead, "CONFIRMED"},
	}
	for _, w := range want {
		uid := fmt.Sprintf("booking-%s@%s", w.b.ID, host)
		e, ok := events[uid]
		if !ok {
			t.Errorf("booking %s (%s) is not in the feed (UIDs %v)", w.b.ID, w.b.State, keysOf(events))
			continue
		}
		m := machines[w.b.MachineID]
		if !e.Start.Equal(w.b.Start) || !e.End.Equal(w.b.End) || e.Summary != m.Name || e.Status != w.status ||
			e.Location != apiLabName || e.URL != h.feedBase()+"/machines/"+m.ID.String() {
			t.Errorf("booking %s reads back as %+v; want %v–%v, summary %q, status %s, location %q, URL %s/machines/%s",
				w.b.ID, e, w.b.Start, w.b.End, m.Name, w.status, apiLabName, h.feedBase(), m.ID)
		}
	}
	if len(events) != len(want) {
		t.Errorf("the feed has %d events, want alice's %d in the window (not %s, %s, nor bob's %v)",
			len(events), len(want), tooOld.ID, tooFar.ID, bobs)
	}

	// Bob's feed holds his bookings only.
	bobEvents, _ := apiParseFeed(t, h.apiGetFeed(t, h.apiFeedURL(t, h.bob)))
	if len(bobEvents) != len(bobs) {
		t.Errorf("bob's feed has %d events, want his %d", len(bobEvents), len(bobs))
	}
	for _, b := range bobs {
		if _, ok := bobEvents[fmt.Sprintf("booking-%s@%s", b.ID, host)]; !ok {
			t.Errorf("bob's booking %s is not in his feed", b.ID)
		}
	}

	// A new booking shows at the next poll; the clock moving on drops what
	// fell out of the window.
	later := h.book(t, h.alice, h.printer.ID, apiAt(3, 10, 0), apiAt(3, 10, 30))
	later.want(t, http.StatusCreated, "")
	var lb fablab.Booking
	later.decode(t, &lb)
	h.clock.Set(apiAt(0, 8, 0).AddDate(0, 0, 78)) // noShow (day -80) is now more than 90 days ago
	events, _ = apiParseFeed(t, h.apiGetFeed(t, url))
	if _, ok := events[fmt.Sprintf("booking-%s@%s", lb.ID, host)]; !ok {
		t.Errorf("the booking made after the feed is not in it")
	}
	if _, ok := events[fmt.Sprintf("booking-%s@%s", noShow.ID, host)]; ok {
		t.Errorf("a booking more than 90 days old is still in the feed")
	}
}

func keysOf[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestAPICalendarFeedLifecycle: the status never shows the URL; a new URL
// replaces the old one at once; a revocation ends it (and is idempotent);
// a suspension ends it too; unknown and malformed tokens answer 404.
func TestAPICalendarFeedLifecycle(t *testing.T) {
	h := newAPIHarness(t)
	status := func(a *apiAccount) calendarFeedStatus {
		t.Helper()
		res := h.do(t, "GET", "/api/v1/me/calendar-feed", a.Token, nil)
		res.want(t, http.StatusOK, "")
		var st calendarFeedStatus
		res.decode(t, &st)
		if bytes.Contains(res.body, []byte("/feed/")) {
			t.Errorf("the feed status shows the URL: %s", res.body)
		}
		return st
	}
	if st := status(h.alice); st.Active || st.CreatedAt != nil {
		t.Errorf("before any feed: %+v, want inactive", st)
	}

	first := h.apiFeedURL(t, h.alice)
	if st := status(h.alice); !st.Active || st.CreatedAt == nil || !st.CreatedAt.Equal(apiStart) {
		t.Errorf("after making a feed: %+v, want active since %v", st, apiStart)
	}
	h.apiGetFeed(t, first).want(t, http.StatusOK, "")

	h.clock.Advance(time.Minute)
	second := h.apiFeedURL(t, h.alice)
	if second == first {
		t.Fatal("rotating the feed gave the same URL")
	}
	h.apiGetFeed(t, first).want(t, http.StatusNotFound, fablab.ENOTFOUND)
	h.apiGetFeed(t, second).want(t, http.StatusOK, "")
	if st := status(h.alice); !st.CreatedAt.Equal(apiStart.Add(time.Minute)) {
		t.Errorf("after rotation: created_at %v, want %v", st.CreatedAt, apiStart.Add(time.Minute))
	}

	// Bob's feed is not touched by alice's.
	bobs := h.apiFeedURL(t, h.bob)
	h.do(t, "DELETE", "/api/v1/me/calendar-feed", h.alice.Token, nil).want(t, http.StatusNoContent, "")
	h.apiGetFeed(t, second).want(t, http.StatusNotFound, fablab.ENOTFOUND)
	h.apiGetFeed(t, bobs).want(t, http.StatusOK, "")
	if st := status(h.alice); st.Active {
		t.Errorf("after revocation: %+v, want inactive", st)
	}
	h.do(t, "DELETE", "/api/v1/me/calendar-feed", h.alice.Token, nil).want(t, http.StatusNoContent, "")

	// A suspension ends bob's feed; lifting it does not bring it back.
	h.do(t, "PATCH", "/api/v1/members/"+h.bob.ID.String(), h.staff.Token, map[string]any{"status": "suspended"}).want(t, http.StatusOK, "")
	h.apiGetFeed(t, bobs).want(t, http.StatusNotFound, fablab.ENOTFOUND)
	h.do(t, "PATCH", "/api/v1/members/"+h.bob.ID.String(), h.staff.Token, map[string]any{"status": "active"}).want(t, http.StatusOK, "")
	h.apiGetFeed(t, bobs).want(t, http.StatusNotFound, fablab.ENOTFOUND)

	// A role change ends the feed too.
	alices := h.apiFeedURL(t, h.alice)
	h.do(t, "PATCH", "/api/v1/members/"+h.alice.ID.String(), h.admin.Token, map[string]any{"role": "staff"}).want(t, http.StatusOK, "")
	h.apiGetFeed(t, alices).want(t, http.StatusNotFound, fablab.ENOTFOUND)

	for _, path := range []string{
		"/feed/" + strings.TrimSuffix(strings.TrimPrefix(second, h.feedBase()+"/feed/"), ".ics"), // without .ics
		"/feed/.ics",
		"/feed/not-a-token.ics",
		"/feed/" + strings.Repeat("A", 43) + ".ics",
	} {
		h.do(t, "GET", path, "", nil).want(t, http.StatusNotFound, fablab.ENOTFOUND)
	}

	// Without a login, the management routes answer 401; the feed needs none.
	for _, m := range []string{"GET", "POST", "DELETE"} {
		h.do(t, m, "/api/v1/me/calendar-feed", "", nil).want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)
	}
	// A session cookie without the CSRF header cannot make a feed.
	h.send(t, apiReq{method: "POST", path: "/api/v1/me/calendar-feed", header: http.Header{"Cookie": {sessionCookie + "=" + h.staff.Token}}}).
		want(t, http.StatusForbidden, fablab.EFORBIDDEN)
}

// TestAPICalendarFeedPublicURL: with a public URL configured, the feed URL,
// the events' UIDs and their links use it, not the request's host.
func TestAPICalendarFeedPublicURL(t *testing.T) {
	h := newAPIHarness(t)
	s, err := New(Config{Store: h.store, Now: h.clock.Now, Registry: prometheus.NewRegistry(), Password: apiCheapPassword, PublicURL: "https://lab.example/"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	b := h.seedBooking(t, h.printer.ID, h.alice, apiAt(1, 10, 0), apiAt(1, 11, 0))

	res := apiSendWith(t, srv.Client(), srv.URL, apiReq{method: "POST", path: "/api/v1/me/calendar-feed", token: h.alice.Token})
	res.want(t, http.StatusCreated, "")
	var fc calendarFeedCreated
	res.decode(t, &fc)
	path, ok := strings.CutPrefix(fc.URL, "https://lab.example/feed/")
	if !ok || !strings.HasSuffix(path, ".ics") {
		t.Fatalf("feed URL %q, want https://lab.example/feed/<token>.ics", fc.URL)
	}
	events, _ := apiParseFeed(t, apiSendWith(t, srv.Client(), srv.URL, apiReq{method: "GET", path: "/feed/" + path}))
	e, ok := events["booking-"+b.ID.String()+"@lab.example"]
	if !ok || e.URL != "https://lab.example/machines/"+h.printer.ID.String() {
		t.Errorf("events %+v, want booking-%s@lab.example linking to https://lab.example/machines/%s", events, b.ID, h.printer.ID)
	}
}

// TestAPICalendarFeedBounded: a member with more bookings in the window than
// the feed's limit gets exactly the limit, the ones ahead first.
func TestAPICalendarFeedBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds over a thousand bookings")
	}
	h := newAPIHarness(t)
	// Half-hour bookings on three machines, one every four hours on each,
	// from 60 days back to a week ahead.
	const n = feedLimit + 200
	machines := []fablab.ID{h.printer.ID, h.laser.ID, h.cnc.ID}
	first := apiAt(-60, 9, 0)
	latest := first.Add(time.Duration((n-1)/len(machines)) * 4 * time.Hour)
	// Seeded by several writers at once, which the store commits together.
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				start := first.Add(time.Duration(i/len(machines)) * 4 * time.Hour)
				_, err := h.store.CreateBooking(context.Background(),
					fablab.Booking{MachineID: machines[i%len(machines)], MemberID: h.alice.ID, Start: start, End: start.Add(30 * time.Minute), CreatedBy: h.alice.ID},
					func(bolt.BookingContext) error { return nil })
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("seed bookings: %v", err)
	}
	if !latest.After(apiStart) {
		t.Fatalf("the seeded bookings end at %v, before now: they would not test the order", latest)
	}
	events, _ := apiParseFeed(t, h.apiGetFeed(t, h.apiFeedURL(t, h.alice)))
	if len(events) != feedLimit {
		t.Fatalf("the feed has %d events, want the limit %d", len(events), feedLimit)
	}
	var newest time.Time
	for _, e := range events {
		if e.Start.After(newest) {
			newest = e.Start
		}
	}
	if !newest.Equal(latest) {
		t.Errorf("the latest event starts %v, want the last booking ahead, %v", newest, latest)
	}
}
