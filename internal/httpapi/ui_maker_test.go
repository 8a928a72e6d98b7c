package httpapi

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/fablab"
)

// The makers' pages, rendered by the real server: each page for each role
// in both languages, what a maker sees of their own data, and that another
// member's name never shows on them.

// makerPagePaths are the makers' pages of harness h.
func makerPagePaths(h *apiHarness) []string {
	return []string{"/machines/" + h.laser.ID.String(), "/find", "/bookings", "/sessions", "/profile"}
}

func TestMakerPagesRenderForEveryRoleAndLanguage(t *testing.T) {
	h := newAPIHarness(t)
	titles := map[string]map[string]string{
		"en": {"/find": "Find a slot", "/bookings": "My bookings", "/sessions": "My sessions", "/profile": "My profile"},
		"fr": {"/find": "Trouver un créneau", "/bookings": "Mes réservations", "/sessions": "Mes sessions", "/profile": "Mon profil"},
	}
	for _, a := range []*apiAccount{h.alice, h.staff, h.admin} {
		p := newPageClient(t, h)
		p.login(a)
		for _, lang := range []string{"en", "fr"} {
			for _, path := range makerPagePaths(h) {
				status, _, body := p.get(path, "Accept-Language", lang)
				if status != http.StatusOK {
					t.Errorf("%s, %s, %s: %d", a.Email, lang, path, status)
					continue
				}
				if !strings.Contains(body, `<html lang="`+lang+`"`) {
					t.Errorf("%s, %s, %s: not in %s", a.Email, lang, path, lang)
				}
				if want := titles[lang][path]; want != "" && !strings.Contains(html.UnescapeString(body), "<h1>"+want+"</h1>") {
					t.Errorf("%s, %s, %s: no title %q", a.Email, lang, path, want)
				}
				if !strings.Contains(body, `aria-current="page"`) && path != "/machines/"+h.laser.ID.String() {
					t.Errorf("%s, %s: the navigation does not mark the page", lang, path)
				}
			}
		}
	}
}

func TestMakerPagesNeedLogin(t *testing.T) {
	h := newAPIHarness(t)
	p := newPageClient(t, h)
	for _, path := range makerPagePaths(h) {
		status, loc, _ := p.get(path)
		if status != http.StatusSeeOther || loc != "/login?next="+url.QueryEscape(path) {
			t.Errorf("anonymous %s: %d to %q, want 303 to the login page", path, status, loc)
		}
	}
}

func TestMachinePage(t *testing.T) {
	h := newAPIHarness(t)
	ctx := context.Background()
	// Bob books the laser; alice looks at its calendar page.
	h.seedBooking(t, h.laser.ID, h.bob, apiAt(0, 10, 0), apiAt(0, 11, 0))
	if _, err := h.store.UpdateMachine(ctx, h.laser.ID, func(m *fablab.Machine) error {
		m.Prices = map[string]int64{"student": 1250}
		m.Maintenance = []fablab.MaintenanceBlock{{Start: apiAt(1, 9, 0), End: apiAt(1, 12, 0), Reason: "Bob Maker's lens"}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	a := newPageClient(t, h)
	a.login(h.alice)
	status, _, body := a.get("/machines/"+h.laser.ID.String(), "Accept-Language", "en")
	if status != http.StatusOK {
		t.Fatalf("machine page: %d", status)
	}
	for _, want := range []string{
		"<h1>Laser</h1>", "<title>Laser · ", "Laser cutter", "€12.50 per hour for you",
		`data-slot="30"`,
		// The lab's wall-clock time of the server's clock, whatever the browser's zone.
		`data-now="2026-03-02T08:00:00"`,
		`data-min-time="09:00:00"`, `data-max-time="21:00:00"`,
		// Opening hours as FullCalendar business hours (Monday is day 1).
		html.EscapeString(`{"daysOfWeek":[1],"startTime":"09:00","endTime":"21:00"}`),
		// Maintenance as lab wall times, without its reason.
		html.EscapeString(`{"start":"2026-03-03T09:00:00","end":"2026-03-03T12:00:00"}`),
		`/static/vendor/fullcalendar/index.global.min.js`, `/static/calendar.js`, `role="alert"`,
		`<dialog`, `name="date"`, `value="2026-03-02"`, `step="1800"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("machine page lacks %q", want)
		}
	}
	if strings.Contains(body, "Laser safety") {
		t.Error("alice holds the laser training: the page must not list it as missing")
	}
	if strings.Contains(body, "Bob Maker") || strings.Contains(body, "Bob Maker&#39;s") {
		t.Error("alice's machine page shows another member's name")
	}
	// Bob lacks the training and pays another group; in French.
	b := newPageClient(t, h)
	b.login(h.bob)
	_, _, body = b.get("/machines/"+h.laser.ID.String(), "Accept-Language", "fr")
	for _, want := range []string{"Laser safety", "Découpeuse laser", "Pas de tarif pour votre groupe", "fullcalendar/core/fr.global.min.js", "Réserver"} {
		if !strings.Contains(html.UnescapeString(body), want) {
			t.Errorf("bob's French machine page lacks %q", want)
		}
	}
	// Unknown and retired machines are not found for a maker.
	if status, _, _ := a.get("/machines/999999"); status != http.StatusNotFound {
		t.Errorf("unknown machine: %d", status)
	}
	if status, _, _ := a.get("/machines/x"); status != http.StatusNotFound {
		t.Errorf("bad machine id: %d", status)
	}
	if _, err := h.store.UpdateMachine(ctx, h.cnc.ID, func(m *fablab.Machine) error { m.State = fablab.MachineRetired; return nil }); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := a.get("/machines/" + h.cnc.ID.String()); status != http.StatusNotFound {
		t.Errorf("retired machine for a maker: %d, want 404", status)
	}
}

// TestMachineCalendarDataHidesOthers: what the calendar reads for a maker
// (the availability and their own bookings, as calendar.js asks) names no
// other member.
func TestMachineCalendarDataHidesOthers(t *testing.T) {
	h := newAPIHarness(t)
	bobs := h.seedBooking(t, h.printer.ID, h.bob, apiAt(0, 10, 0), apiAt(0, 11, 0))
	alices := h.seedBooking(t, h.printer.ID, h.alice, apiAt(0, 14, 0), apiAt(0, 15, 0))
	from, to := url.QueryEscape(apiAt(0, 0, 0).Format(time.RFC3339)), url.QueryEscape(apiAt(7, 0, 0).Format(time.RFC3339))
	r := h.do(t, "GET", "/api/v1/machines/"+h.printer.ID.String()+"/availability?from="+from+"&to="+to, h.alice.Token, nil)
	r.want(t, http.StatusOK, "")
	if strings.Contains(string(r.body), h.bob.ID.String()+`"`) && strings.Contains(string(r.body), "member") {
		t.Errorf("availability names a member: %s", r.body)
	}
	if !strings.Contains(string(r.body), "busy") {
		t.Fatalf("availability without busy time: %s", r.body)
	}
	r = h.do(t, "GET", "/api/v1/bookings?machine_id="+h.printer.ID.String()+"&member_id="+h.alice.ID.String()+"&from="+from+"&to="+to, h.alice.Token, nil)
	r.want(t, http.StatusOK, "")
	var got []fablab.Booking
	r.decode(t, &got)
	if len(got) != 1 || got[0].ID != alices.ID {
		t.Errorf("alice's bookings on the printer: %+v, want only %s (not bob's %s)", got, alices.ID, bobs.ID)
	}
	// Staff asking as calendar.js does get their own only, too: the
	// calendar marks them as "mine" and offers to cancel them.
	r = h.do(t, "GET", "/api/v1/bookings?machine_id="+h.printer.ID.String()+"&member_id="+h.staff.ID.String()+"&from="+from+"&to="+to, h.staff.Token, nil)
	r.want(t, http.StatusOK, "")
	got = nil
	r.decode(t, &got)
	if len(got) != 0 {
		t.Errorf("staff's own bookings on the printer: %+v, want none", got)
	}
}

func TestFindPage(t *testing.T) {
	h := newAPIHarness(t)
	a := newPageClient(t, h)
	a.login(h.alice)
	status, _, body := a.get("/find", "Accept-Language", "en")
	if status != http.StatusOK {
		t.Fatalf("/find: %d", status)
	}
	// The clock is Monday 2 March 2026, 08:00 in Paris (07:00 UTC).
	for _, want := range []string{
		`<option value="laser-cutter" selected>Laser cutter</option>`, `<option value="3d-printer">3D printer</option>`, `<option value="cnc">CNC machine</option>`,
		`value="today" data-from="2026-03-02T07:00:00Z" data-to="2026-03-02T23:00:00Z"`,
		`value="week" data-from="2026-03-02T07:00:00Z" data-to="2026-03-08T23:00:00Z" checked`,
		`value="next_week" data-from="2026-03-08T23:00:00Z" data-to="2026-03-15T23:00:00Z"`,
		`<option value="120">2 h</option>`, `/static/find.js`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/find lacks %q", want)
		}
	}
	_, _, body = a.get("/find?kind=cnc&minutes=120&when=next_week", "Accept-Language", "fr")
	for _, want := range []string{`<option value="cnc" selected>`, `<option value="120" selected>`, `value="next_week" data-from="2026-03-08T23:00:00Z" data-to="2026-03-15T23:00:00Z" checked`, "La semaine prochaine"} {
		if !strings.Contains(html.UnescapeString(body), html.UnescapeString(want)) {
			t.Errorf("/find with a search in the address lacks %q", want)
		}
	}
	// A kind nobody has is not kept.
	_, _, body = a.get("/find?kind=spaceship", "Accept-Language", "en")
	if strings.Contains(body, `value="spaceship"`) || strings.Contains(body, "selected>spaceship") {
		t.Error("/find echoes an unknown kind")
	}
}

func TestBookingsPage(t *testing.T) {
	h := newAPIHarness(t)
	ctx := context.Background()
	soon := h.seedBooking(t, h.printer.ID, h.alice, apiAt(2, 14, 0), apiAt(2, 15, 30))
	old := h.seedBooking(t, h.cnc.ID, h.alice, apiAt(-3, 10, 0), apiAt(-3, 11, 0))
	cancelled := h.seedBooking(t, h.laser.ID, h.alice, apiAt(3, 10, 0), apiAt(3, 11, 0))
	if _, err := h.store.SetBookingState(ctx, cancelled.ID, fablab.BookingCancelled, h.alice.ID, func(fablab.Machine, fablab.Booking) error { return nil }); err != nil {
		t.Fatal(err)
	}
	bobs := h.seedBooking(t, h.laser.ID, h.bob, apiAt(2, 10, 0), apiAt(2, 11, 0))

	a := newPageClient(t, h)
	a.login(h.alice)
	status, _, body := a.get("/bookings", "Accept-Language", "en")
	if status != http.StatusOK {
		t.Fatalf("/bookings: %d", status)
	}
	upcoming, past, ok := strings.Cut(body, `id="past-title"`)
	if !ok {
		t.Fatal("/bookings has no past section")
	}
	for _, want := range []string{
		`data-booking="` + soon.ID.String() + `"`, "Printer", "Wednesday 4 March 2026, 14:00", "15:30",
		`data-api="DELETE /api/v1/bookings/` + soon.ID.String() + `"`, "Confirmed",
	} {
		if !strings.Contains(upcoming, want) {
			t.Errorf("upcoming bookings lack %q", want)
		}
	}
	for _, want := range []string{`data-booking="` + old.ID.String() + `"`, "CNC", "Over", `data-booking="` + cancelled.ID.String() + `"`, "Cancelled"} {
		if !strings.Contains(past, want) {
			t.Errorf("past bookings lack %q", want)
		}
	}
	if strings.Contains(past, "DELETE /api/v1/bookings/") {
		t.Error("a past or cancelled booking offers to cancel")
	}
	if strings.Contains(body, `data-booking="`+bobs.ID.String()+`"`) || strings.Contains(body, "Bob Maker") {
		t.Error("alice's bookings page shows bob's booking")
	}
	for _, want := range []string{"data-feed", "/static/bookings.js", "Add Subscribed Calendar"} {
		if !strings.Contains(body, want) {
			t.Errorf("/bookings lacks the calendar feed section's %q", want)
		}
	}
	_, _, body = a.get("/bookings", "Accept-Language", "fr")
	for _, want := range []string{"mercredi 4 mars 2026 à 14:00", "Confirmée", "Annulée", "Terminée"} {
		if !strings.Contains(html.UnescapeString(body), want) {
			t.Errorf("French /bookings lacks %q", want)
		}
	}
}

func TestSessionsPage(t *testing.T) {
	h := newAPIHarness(t)
	ctx := context.Background()
	ended := apiAt(-1, 11, 15)
	if _, err := h.store.RecordSession(ctx, fablab.Session{MachineID: h.printer.ID, MemberID: h.alice.ID, Started: apiAt(-1, 10, 0), Until: apiAt(-1, 12, 0), Ended: &ended, EndReason: fablab.EndPowerIdle, Billable: true}, nil, nil); err != nil {
		t.Fatal(err)
	}
	unconfirmed := apiAt(-2, 10, 1)
	if _, err := h.store.RecordSession(ctx, fablab.Session{MachineID: h.cnc.ID, MemberID: h.alice.ID, Started: apiAt(-2, 10, 0), Until: apiAt(-2, 11, 0), Ended: &unconfirmed, EndReason: fablab.EndRelayUnconfirmed}, nil, nil); err != nil {
		t.Fatal(err)
	}
	h.clock.Set(apiAt(0, 10, 30))
	if _, err := h.store.OpenSession(ctx, fablab.Session{MachineID: h.laser.ID, MemberID: h.alice.ID, Started: apiAt(0, 10, 0), Until: apiAt(0, 12, 0)}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.OpenSession(ctx, fablab.Session{MachineID: h.printer.ID, MemberID: h.bob.ID, Started: apiAt(0, 9, 0), Until: apiAt(0, 12, 0)}, nil, nil); err != nil {
		t.Fatal(err)
	}
	a := newPageClient(t, h)
	a.login(h.alice)
	status, _, body := a.get("/sessions", "Accept-Language", "en")
	if status != http.StatusOK {
		t.Fatalf("/sessions: %d", status)
	}
	for _, want := range []string{
		"Sunday 1 March 2026, 10:00", "Sunday 1 March 2026, 11:15", "1 h 15", "The machine stayed idle",
		"The machine never confirmed it switched on", "not billed",
		"Laser", "In progress", "30 min",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/sessions lacks %q", want)
		}
	}
	// Latest first: the open session, then yesterday's, then the day before's.
	if i, j := strings.Index(body, "In progress"), strings.Index(body, "stayed idle"); i < 0 || j < 0 || i > j {
		t.Error("sessions are not listed latest first")
	}
	if strings.Count(body, "data-session=") != 3 || strings.Contains(body, "Bob Maker") {
		t.Errorf("alice's sessions page shows %d sessions (want her 3), or bob's name", strings.Count(body, "data-session="))
	}
	_, _, body = a.get("/sessions", "Accept-Language", "fr")
	for _, want := range []string{"La machine est restée inactive", "En cours", "non facturée"} {
		if !strings.Contains(html.UnescapeString(body), want) {
			t.Errorf("French /sessions lacks %q", want)
		}
	}
}

// TestEveryEndReasonHasWords: the sessions page says each end reason in
// words, in both languages.
func TestEveryEndReasonHasWords(t *testing.T) {
	vs, err := pageViews()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range fablab.EndReasons() {
		for _, lang := range []string{"en", "fr"} {
			if !vs.cat.Has(lang, "end_reason_"+string(r)) {
				t.Errorf("end reason %s has no %s words", r, lang)
			}
		}
	}
	for _, st := range []string{fablab.BookingConfirmed, fablab.BookingCancelled, fablab.BookingNoShow, fablab.BookingCompleted} {
		for _, lang := range []string{"en", "fr"} {
			if !vs.cat.Has(lang, "booking_state_"+st) {
				t.Errorf("booking state %s has no %s words", st, lang)
			}
		}
	}
}

func TestProfilePage(t *testing.T) {
	h := newAPIHarness(t)
	ctx := context.Background()
	if _, err := h.store.AddBadge(ctx, fablab.Badge{Hash: fmt.Sprintf("%064x", 7), MemberID: h.alice.ID, Label: "Blue key fob"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.AddBadge(ctx, fablab.Badge{Hash: fmt.Sprintf("%064x", 8), MemberID: h.bob.ID, Label: "Bob's card"}); err != nil {
		t.Fatal(err)
	}
	cnc, err := h.store.CreateTraining(ctx, fablab.Training{Name: "CNC basics", ValidityMonths: 12})
	if err != nil {
		t.Fatal(err)
	}
	expires := apiAt(30, 0, 0)
	if _, err := h.store.GrantQualification(ctx, fablab.Qualification{MemberID: h.alice.ID, TrainingID: cnc.ID, GrantedBy: h.staff.ID, ExpiresAt: &expires}); err != nil {
		t.Fatal(err)
	}
	a := newPageClient(t, h)
	a.login(h.alice)
	status, _, body := a.get("/profile", "Accept-Language", "en")
	if status != http.StatusOK {
		t.Fatalf("/profile: %d", status)
	}
	for _, want := range []string{
		"Alice Maker", "alice@fablab.test", "Maker", "student",
		"Blue key fob", "Laser safety", "No expiry", "CNC basics", "Wednesday 1 April 2026",
		`data-api="POST /api/v1/me/password"`, `name="current_password"`, `name="new_password"`,
		`data-error-for="current_password"`, `data-error-for="new_password"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/profile lacks %q", want)
		}
	}
	if strings.Contains(body, "Bob") {
		t.Error("alice's profile shows bob's badge")
	}
	// After the qualification expired, the page says so.
	h.clock.Set(apiAt(31, 9, 0))
	a.login(h.alice)
	_, _, body = a.get("/profile", "Accept-Language", "fr")
	if !strings.Contains(html.UnescapeString(body), "Expirée le mercredi 1er avril 2026") {
		t.Error("an expired qualification is not shown as expired")
	}
}

// TestProfilePasswordChangeFlow: the profile form's request, as fabgate.js
// sends it with the session cookie and CSRF header, changes the password
// and keeps this browser signed in on the page it goes to next.
func TestProfilePasswordChangeFlow(t *testing.T) {
	h := newAPIHarness(t)
	p := newPageClient(t, h)
	p.login(h.bob)
	u, _ := url.Parse(h.srv.URL)
	csrf := ""
	for _, c := range p.http.Jar.Cookies(u) {
		if c.Name == csrfCookie {
			csrf = c.Value
		}
	}
	req, _ := http.NewRequest("POST", h.srv.URL+"/api/v1/me/password", strings.NewReader(`{"current_password":"bob password","new_password":"bob's new password"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(csrfHeader, csrf)
	res, err := p.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("password change from the page: %d", res.StatusCode)
	}
	status, _, body := p.get("/profile?password=changed", "Accept-Language", "en")
	if status != http.StatusOK || !strings.Contains(body, "Your password is changed") {
		t.Fatalf("after the change: %d, or no confirmation", status)
	}
}

func TestMachinesPageLiveState(t *testing.T) {
	h := newAPIHarness(t)
	p := newPageClient(t, h)
	p.login(h.alice)
	_, _, body := p.get("/machines", "Accept-Language", "fr")
	for _, want := range []string{"/static/machines.js", `data-msg-state-in_use="Occupée"`, `data-msg-state-offline=`, "data-state-label"} {
		if !strings.Contains(body, want) && !strings.Contains(html.UnescapeString(body), html.UnescapeString(want)) {
			t.Errorf("/machines lacks %q", want)
		}
	}
}

// TestBookingsPageBounded: a member who books every day gets the next
// pageBookings bookings, earliest first, and the latest pagePastRows past ones.
func TestBookingsPageBounded(t *testing.T) {
	h := newAPIHarness(t)
	for d := -40; d < 70; d++ {
		h.seedBooking(t, h.printer.ID, h.alice, apiAt(d, 14, 0), apiAt(d, 15, 0))
	}
	a := newPageClient(t, h)
	a.login(h.alice)
	_, _, body := a.get("/bookings", "Accept-Language", "en")
	upcoming, past, _ := strings.Cut(body, `id="past-title"`)
	if n := strings.Count(upcoming, "data-booking="); n != pageBookings {
		t.Errorf("%d upcoming bookings shown, want %d", n, pageBookings)
	}
	if n := strings.Count(past, "data-booking="); n != pagePastRows {
		t.Errorf("%d past bookings shown, want %d", n, pagePastRows)
	}
	// The clock is Monday 2 March 08:00: today's 14:00 is the first to come, yesterday's the latest past.
	if !strings.Contains(upcoming, "Monday 2 March 2026, 14:00") || strings.Contains(upcoming, "Sunday 1 March 2026") {
		t.Error("upcoming bookings do not start with today's")
	}
	if i := strings.Index(past, "Sunday 1 March 2026, 14:00"); i < 0 || i > strings.Index(past, "Saturday 28 February 2026, 14:00") {
		t.Error("past bookings are not latest first from yesterday's")
	}
}

// TestBookingsPageRowsFollowChanges: a row rendered once (and kept in the
// pages' row cache) is not shown again once its booking changed.
func TestBookingsPageRowsFollowChanges(t *testing.T) {
	h := newAPIHarness(t)
	b := h.seedBooking(t, h.printer.ID, h.alice, apiAt(2, 14, 0), apiAt(2, 15, 0))
	a := newPageClient(t, h)
	a.login(h.alice)
	_, _, body := a.get("/bookings", "Accept-Language", "en")
	if upcoming, _, _ := strings.Cut(body, `id="past-title"`); !strings.Contains(upcoming, `data-booking="`+b.ID.String()+`"`) {
		t.Fatal("the booking is not among the upcoming ones")
	}
	h.do(t, "DELETE", "/api/v1/bookings/"+b.ID.String(), h.alice.Token, nil).want(t, http.StatusOK, "")
	_, _, body = a.get("/bookings", "Accept-Language", "en")
	upcoming, past, _ := strings.Cut(body, `id="past-title"`)
	if strings.Contains(upcoming, `data-booking="`+b.ID.String()+`"`) || !strings.Contains(past, "Cancelled") {
		t.Error("after cancelling, the page still shows the booking as upcoming")
	}
	// A confirmed booking that starts meanwhile is shown under way.
	c := h.seedBooking(t, h.cnc.ID, h.alice, apiAt(0, 9, 0), apiAt(0, 12, 0))
	_, _, body = a.get("/bookings", "Accept-Language", "en")
	if !strings.Contains(body, `data-booking="`+c.ID.String()+`"`) || strings.Contains(body, "Under way") {
		t.Fatal("a booking not started yet shows as under way, or is missing")
	}
	h.clock.Set(apiAt(0, 10, 0))
	a.login(h.alice)
	_, _, body = a.get("/bookings", "Accept-Language", "en")
	if !strings.Contains(body, "Under way") {
		t.Error("a booking under way is not shown as such")
	}
}
