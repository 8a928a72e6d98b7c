package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/browsertest"
	"github.com/fabgate/fabgate/internal/events"
	"github.com/fabgate/fabgate/internal/fablab"
)

// The makers' pages in a real headless Chromium, against the real server
// whose clock is set to Wednesday 4 March 2026, 10:00 in Paris, while the
// browser runs in UTC (an hour behind): the calendar must still show the
// lab's hours. Every step takes a screenshot; every page gets an
// accessibility check.

// makerBrowserLab is a harness whose clock reads Wednesday 10:00 in Paris,
// with bob's booking of the laser that afternoon (14:00–15:00).
func makerBrowserLab(t *testing.T) (*apiHarness, fablab.Booking) {
	h := newAPIHarness(t)
	// The pages follow the live event stream: give the server one (the
	// plain harness has none, and its stream answers 500).
	h.server.hub = events.NewHub()
	h.clock.Set(apiAt(2, 10, 0))
	bobs := h.seedBooking(t, h.laser.ID, h.bob, apiAt(2, 14, 0), apiAt(2, 15, 0))
	return h, bobs
}

// browserLoginTo logs in through the login page, which goes on to next;
// ready is an element of that page to wait for.
func browserLoginTo(t *testing.T, tab *browsertest.Tab, a *apiAccount, next, ready string) {
	t.Helper()
	tab.Go("/login?next=" + next)
	tab.Fill("#email", a.Email)
	tab.Fill("#password", a.Password)
	tab.Click("form button[type=submit]")
	tab.WaitVisible(ready)
}

// slotPoints are where, in the viewport, the calendar's lanes of a day at
// two wall times are: the middle of that day's column at those slots' rows.
type slotPoints struct{ X, Y1, Y2 float64 }

// calendarPoints scrolls the slots of day (YYYY-MM-DD) from from to last
// into view and returns their middles.
func calendarPoints(t *testing.T, tab *browsertest.Tab, day, from, last string) slotPoints {
	t.Helper()
	var p slotPoints
	tab.Eval(fmt.Sprintf(`(() => {
		const col = document.querySelector('td.fc-timegrid-col[data-date="%s"]');
		const a = document.querySelector('td.fc-timegrid-slot-lane[data-time="%s:00"]');
		const b = document.querySelector('td.fc-timegrid-slot-lane[data-time="%s:00"]');
		if (!col || !a || !b) return {X: -1};
		a.scrollIntoView({block: 'center'});
		const c = col.getBoundingClientRect(), ra = a.getBoundingClientRect(), rb = b.getBoundingClientRect();
		return {X: c.left + c.width / 2, Y1: ra.top + ra.height / 2, Y2: rb.top + rb.height / 2};
	})()`, day, from, last), &p)
	if p.X < 0 {
		t.Fatalf("the calendar has no slots %s %s–%s", day, from, last)
	}
	return p
}

// dragSelect selects on the calendar from the slot of day at from to the
// slot of day at last (included), with real mouse events: press, moves,
// release, as a person drags.
func dragSelect(t *testing.T, tab *browsertest.Tab, day, from, last string) {
	t.Helper()
	p := calendarPoints(t, tab, day, from, last)
	held := func(e *input.DispatchMouseEventParams) { e.Button, e.Buttons = input.MouseButtonLeft, 1 }
	actions := []chromedp.Action[chromedp.Void]{
		chromedp.MouseEvent(chromedp.MouseMoved, p.X, p.Y1),
		chromedp.MouseEvent(chromedp.MousePressed, p.X, p.Y1, chromedp.ButtonLeft, chromedp.ClickCount(1)),
	}
	const steps = 6
	for i := 1; i <= steps; i++ {
		actions = append(actions, chromedp.MouseEvent(chromedp.MouseMoved, p.X, p.Y1+(p.Y2-p.Y1)*float64(i)/steps, held))
	}
	actions = append(actions, chromedp.MouseEvent(chromedp.MouseReleased, p.X, p.Y2, chromedp.ButtonLeft, chromedp.ClickCount(1)))
	ctx, cancel := context.WithTimeout(tab.Context(), browsertest.ActionTimeout)
	defer cancel()
	for _, act := range actions {
		if _, err := chromedp.Run(ctx, act); err != nil {
			t.Fatalf("drag on the calendar: %v", err)
		}
	}
}

// TestBrowserMakerBooksOnTheCalendar: a maker logs in through the login
// page, books a free slot by selecting it on the laser's calendar, sees it
// in my bookings, is refused a slot that overlaps another member's booking
// with the reason in words, cancels the booking from the calendar, and
// switches the pages between English and French.
func TestBrowserMakerBooksOnTheCalendar(t *testing.T) {
	t.Parallel()
	h, _ := makerBrowserLab(t)
	b := browsertest.Start(t)
	tab := b.NewTab(t, browsertest.TabOptions{BaseURL: h.srv.URL})
	laser := "/machines/" + h.laser.ID.String()

	browserLoginTo(t, tab, h.alice, laser, ".fc-timegrid")
	// Bob's booking shows as busy, at the lab's 14:00 (13:00 in the browser's UTC), without his name.
	tab.WaitText(".fg-busy", "14:00")
	if txt := tab.Text("#calendar"); strings.Contains(txt, "Bob") {
		t.Errorf("the calendar shows another member's name: %q", txt)
	}
	if n := tab.Count(`td.fc-timegrid-col[data-date="2026-03-04"]`); n != 1 {
		t.Fatalf("the week view does not show Wednesday 4 March (%d columns)", n)
	}
	tab.Screenshot("calendar-week")
	tab.CheckAccessibility(t, "machine-calendar")

	// Select Thursday 11:00–12:00 with the mouse.
	dragSelect(t, tab, "2026-03-05", "11:00", "11:30")
	tab.WaitVisible("dialog[open] [data-dialog-ok]")
	tab.WaitText("dialog[open]", "Thursday 5 March, 11:00–12:00")
	if f := tab.Focused(); !strings.HasPrefix(f, "button") {
		t.Errorf("the focus is on %q, not in the dialog's buttons", f)
	}
	tab.Screenshot("book-dialog")
	tab.CheckAccessibility(t, "machine-book-dialog")
	tab.Click("dialog[open] [data-dialog-ok]")
	tab.WaitText("[data-cal-status]", "Booked: Thursday 5 March, 11:00–12:00")
	tab.WaitText(".fg-mine", "11:00")
	tab.Screenshot("booked")
	bs, err := h.store.Bookings(context.Background(), bolt.BookingFilter{MemberID: h.alice.ID, From: apiAt(-7, 0, 0), To: apiAt(30, 0, 0), OnlyOccupying: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 1 || !bs[0].Start.Equal(apiAt(3, 11, 0)) || !bs[0].End.Equal(apiAt(3, 12, 0)) {
		t.Fatalf("alice's bookings after selecting Thursday 11:00–12:00 (lab time): %+v", bs)
	}

	// Escape closes the dialog without booking.
	dragSelect(t, tab, "2026-03-05", "16:00", "16:00")
	tab.WaitVisible("dialog[open]")
	tab.Press("\x1b") // Escape
	tab.WaitGone("dialog[open]")

	// A range overlapping bob's booking is refused, in words, next to the calendar.
	dragSelect(t, tab, "2026-03-04", "13:00", "14:00")
	tab.WaitVisible("dialog[open] [data-dialog-ok]")
	tab.Click("dialog[open] [data-dialog-ok]")
	tab.WaitText("[data-cal-alert]", "already booked")
	if txt := tab.Text("[data-cal-alert]"); strings.Contains(txt, "booking_conflict") {
		t.Errorf("the refusal shows a raw code: %q", txt)
	}
	tab.Screenshot("refused")

	// My bookings lists it.
	tab.Go("/bookings")
	tab.WaitText("table.bookings", "Laser")
	tab.WaitText("table.bookings", "Thursday 5 March 2026, 11:00")
	tab.Screenshot("my-bookings")
	tab.CheckAccessibility(t, "bookings")

	// Cancel it from the calendar: select my booking, confirm.
	tab.Go(laser)
	tab.WaitVisible(".fg-mine")
	tab.Click(".fg-mine")
	tab.WaitVisible("dialog[open] [data-dialog-ok]")
	tab.WaitText("dialog[open]", "Cancel this booking?")
	tab.Screenshot("cancel-dialog")
	tab.Click("dialog[open] [data-dialog-ok]")
	tab.WaitText("[data-cal-status]", "Cancelled: Thursday 5 March, 11:00–12:00")
	tab.WaitGone(".fg-mine")
	tab.Screenshot("cancelled")
	tab.Go("/bookings")
	tab.WaitText("section[aria-labelledby=past-title]", "Cancelled")

	// Switch to French, and back.
	switchLanguage(t, tab, "fr")
	tab.WaitText("main h1", "Mes réservations")
	tab.Screenshot("bookings-fr")
	tab.CheckAccessibility(t, "bookings-fr")
	tab.Go(laser)
	tab.WaitVisible(".fc-timegrid")
	tab.WaitText(".fc-toolbar", "Semaine")
	tab.WaitText("#calendar", "mer.")
	tab.Screenshot("calendar-fr")
	tab.CheckAccessibility(t, "machine-calendar-fr")
	switchLanguage(t, tab, "en")
	tab.WaitText(".fc-toolbar", "Week")
	noPageErrors(t, tab, refusedBooking(h.srv.URL))
}

// noPageErrors fails t for each JavaScript or browser error the tab
// recorded, except the refusals the test asked for: the browser logs every
// 4xx answer as an error, and a refused booking (409 on POST
// /api/v1/bookings) is one the test provoked on purpose.
func noPageErrors(t *testing.T, tab *browsertest.Tab, expected ...string) {
	t.Helper()
	for _, e := range tab.JSErrors() {
		ok := false
		for _, x := range expected {
			ok = ok || strings.Contains(e, x)
		}
		if !ok {
			t.Errorf("page error on %s: %s", tab.URL(), e)
		}
	}
}

// refusedBooking is how the browser logs a booking the API of base refused.
func refusedBooking(base string) string {
	return "status of 409 (Conflict) (" + base + "/api/v1/bookings)"
}

// switchLanguage follows the header's link to lang. It loads the link's
// address rather than clicking it: polling a page while it navigates away
// fails in the harness ("cannot find context"), and the address is the
// same the click goes to.
func switchLanguage(t *testing.T, tab *browsertest.Tab, lang string) {
	t.Helper()
	var href string
	tab.Eval(fmt.Sprintf(`document.querySelector('header a[hreflang="%s"]').href`, lang), &href)
	if !strings.Contains(href, "/lang/"+lang+"?next=") {
		t.Fatalf("the language link to %s goes to %q", lang, href)
	}
	tab.Go(href)
}

// TestBrowserMakerPages opens the other makers' pages: sessions, profile
// (with a refused and an accepted password change), the machines list.
func TestBrowserMakerPages(t *testing.T) {
	t.Parallel()
	h, _ := makerBrowserLab(t)
	ended := apiAt(1, 11, 15)
	if _, err := h.store.RecordSession(context.Background(), fablab.Session{MachineID: h.printer.ID, MemberID: h.bob.ID, Started: apiAt(1, 10, 0), Until: apiAt(1, 12, 0), Ended: &ended, EndReason: fablab.EndTapOut, Billable: true}, nil, nil); err != nil {
		t.Fatal(err)
	}
	b := browsertest.Start(t)
	tab := b.NewTab(t, browsertest.TabOptions{BaseURL: h.srv.URL, Lang: "fr"})
	browserLoginTo(t, tab, h.bob, "/sessions", "table.sessions")
	tab.WaitText("table.sessions", "Vous avez badgé pour finir")
	tab.WaitText("table.sessions", "mardi 3 mars 2026 à 10:00")
	tab.Screenshot("sessions-fr")
	tab.CheckAccessibility(t, "sessions")

	tab.Go("/profile")
	tab.WaitText("main", "Bob Maker")
	tab.Screenshot("profile")
	tab.CheckAccessibility(t, "profile")
	tab.Fill("#current-password", "not my password")
	tab.Fill("#new-password", "a new password")
	tab.Click("form[data-api] button[type=submit]")
	tab.WaitText("#current-password-error", "wrong")
	if f := tab.Focused(); f != "input#current-password" {
		t.Errorf("after a refused change the focus is on %q, want the current password", f)
	}
	tab.Screenshot("password-refused")
	tab.Fill("#current-password", h.bob.Password)
	tab.Click("form[data-api] button[type=submit]")
	tab.WaitVisible("[data-password-done]") // on the page the form goes to next
	tab.WaitText("[data-password-done]", "Votre mot de passe est changé")
	tab.Screenshot("password-changed")
	// Still signed in, with the new session.
	tab.Go("/machines")
	tab.WaitText("main", "Laser")
	tab.WaitVisible("[data-machine] [data-state-label]")
	tab.Screenshot("machines")
	tab.CheckAccessibility(t, "machines")
	r := h.do(t, "POST", "/api/v1/auth/login", "", map[string]string{"email": h.bob.Email, "password": "a new password"})
	r.want(t, http.StatusOK, "")
	noPageErrors(t, tab, "status of 401 (Unauthorized) ("+h.srv.URL+"/api/v1/me/password)") // the wrong current password, on purpose
}

// TestBrowserMakerPhone: the booking flow at 375 px, in the day view, with
// the plain form, and no horizontal overflow on any maker page.
func TestBrowserMakerPhone(t *testing.T) {
	t.Parallel()
	h, _ := makerBrowserLab(t)
	b := browsertest.Start(t)
	tab := b.NewTab(t, browsertest.TabOptions{BaseURL: h.srv.URL, Viewport: browsertest.Phone})
	laser := "/machines/" + h.laser.ID.String()
	browserLoginTo(t, tab, h.alice, laser, ".fc-timeGridDay-view")
	tab.WaitText(".fg-busy", "14:00")
	tab.Screenshot("phone-machine")
	tab.NoHorizontalOverflow(t)
	tab.CheckAccessibility(t, "phone-machine")

	tab.Fill("#book-date", "2026-03-04")
	tab.Fill("#book-start", "16:00")
	tab.Fill("#book-end", "17:30")
	tab.Click("form[data-book-form] button[type=submit]")
	tab.WaitText("form[data-book-form] [data-form-status]", "Booked: Wednesday 4 March, 16:00–17:30")
	tab.WaitText(".fg-mine", "16:00")
	tab.Screenshot("phone-booked")
	// A refused one keeps what was typed and says why.
	tab.Fill("#book-start", "14:30")
	tab.Fill("#book-end", "15:30")
	tab.Click("form[data-book-form] button[type=submit]")
	tab.WaitText("form[data-book-form] [data-form-error]", "already booked")
	var kept string
	tab.Eval(`document.querySelector('#book-start').value`, &kept)
	if kept != "14:30" {
		t.Errorf("the refused form lost the start typed: %q", kept)
	}
	tab.Screenshot("phone-refused")
	tab.NoHorizontalOverflow(t)

	for _, path := range []string{"/bookings", "/sessions", "/profile", "/find", "/machines"} {
		tab.Go(path)
		tab.WaitVisible("main h1")
		tab.Screenshot("phone" + strings.ReplaceAll(path, "/", "-"))
		tab.NoHorizontalOverflow(t)
		tab.CheckAccessibility(t, "phone"+strings.ReplaceAll(path, "/", "-"))
	}
	noPageErrors(t, tab, refusedBooking(h.srv.URL))
}

// TestBrowserMakerFindsASlot: "any laser, 2 h, this week" lists the free
// slots with machine names and lab times; Book books the first one, which
// then shows in my bookings. The machine page lists its next free slots
// with one-tap Book buttons, at the top on a phone.
func TestBrowserMakerFindsASlot(t *testing.T) {
	t.Parallel()
	h, _ := makerBrowserLab(t)
	b := browsertest.Start(t)
	tab := b.NewTab(t, browsertest.TabOptions{BaseURL: h.srv.URL})
	browserLoginTo(t, tab, h.alice, "/find", "form[data-find-form]")
	tab.Fill("#find-kind", "laser-cutter")
	tab.Fill("#find-minutes", "120")
	tab.Click("#when-week")
	tab.Click("form[data-find-form] button[type=submit]")
	// The first free laser slot: Laser, from the lab's time now, for 2 h
	// (the page searched for 1 h on opening: its answer is replaced).
	tab.WaitText("[data-find-list] li.slot", "Wednesday 4 March, 10:00–12:00")
	tab.WaitText("[data-find-list] li.slot", "Laser")
	tab.Screenshot("find-results")
	tab.CheckAccessibility(t, "find")
	tab.Click("[data-find-list] li.slot button")
	tab.WaitText("[data-find-list] li.slot .status", "Booked Laser")
	tab.Screenshot("find-booked")
	tab.Go("/bookings")
	tab.WaitText("table.bookings", "Wednesday 4 March 2026, 10:00")
	noPageErrors(t, tab)

	// At the machine, on a phone: the next free slot, Book, confirm.
	phone := b.NewTab(t, browsertest.TabOptions{BaseURL: h.srv.URL, Viewport: browsertest.Phone})
	browserLoginTo(t, phone, h.alice, "/machines/"+h.laser.ID.String(), "[data-next-list] li.slot button")
	phone.Screenshot("phone-next-slots")
	phone.NoHorizontalOverflow(t)
	phone.Click("[data-next-list] li.slot button")
	phone.WaitVisible("dialog[open] [data-dialog-ok]")
	phone.Click("dialog[open] [data-dialog-ok]")
	phone.WaitText("[data-cal-status]", "Booked: Wednesday 4 March, 12:00–13:00")
	phone.Screenshot("phone-next-booked")
	phone.CheckAccessibility(t, "phone-next-slots")
	noPageErrors(t, phone)
}
