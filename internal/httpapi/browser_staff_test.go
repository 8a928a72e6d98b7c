package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/browsertest"
	"github.com/fabgate/fabgate/internal/devicesim"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/mqtt"
)

// browserCookieLogin logs a in over the API and gives tab the session cookie, so
// that the tab starts signed in.
func browserCookieLogin(t *testing.T, h *apiHarness, tab *browsertest.Tab, a *apiAccount) {
	t.Helper()
	r := h.do(t, "POST", "/api/v1/auth/login", "", map[string]string{"email": a.Email, "password": a.Password})
	if r.status != http.StatusOK || len(r.cookie) == 0 {
		t.Fatalf("login %s: %d, %d cookies", a.Email, r.status, len(r.cookie))
	}
	tab.SetCookies(r.cookie...)
}

// connectDevice registers a device bound to machine and connects a
// simulated one (reader and relay over the harness's broker), then waits
// until the access engine knows it is online.
func connectDevice(t *testing.T, h *apiHarness, id string, machine fablab.ID) *devicesim.Device {
	t.Helper()
	secret := auth.NewToken()
	hash, err := mqtt.MosquittoPasswordHash(secret)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.CreateDevice(context.Background(), fablab.Device{ID: id, Kind: fablab.DeviceBridge, MachineID: machine, SecretHash: hash}); err != nil {
		t.Fatalf("register device %s: %v", id, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := devicesim.Start(ctx, devicesim.Config{Broker: h.lab.URL, ID: id, Secret: secret, Prefix: h.lab.Topics.Prefix, Now: h.clock.Now})
	if err != nil {
		t.Fatalf("start device %s: %v", id, err)
	}
	t.Cleanup(d.Close)
	eventually(t, "the server to see device "+id+" online", func() bool {
		st, ok := h.lab.Engine.DeviceStates()[id]
		return ok && st.Online && st.Relay != ""
	})
	return d
}

// setClock moves the harness's clock to at and logs the accounts in again
// (their logins of the harness's start may have expired by then).
func setClock(t *testing.T, h *apiHarness, at time.Time) {
	t.Helper()
	h.clock.Set(at)
	for _, a := range []*apiAccount{h.admin, h.staff, h.alice, h.bob} {
		a.Token, a.CSRF = h.login(t, a)
	}
}

// submitAndWaitReload clicks the submit button sel of a form that reloads
// its page once the API accepted it, and waits for the new page.
func submitAndWaitReload(t *testing.T, tab *browsertest.Tab, sel string) {
	t.Helper()
	tab.Eval(`window.fabgateBefore = true`, nil)
	tab.Click(sel)
	eventually(t, "the page to reload", func() bool {
		return pageState(tab, `window.fabgateBefore === undefined && document.readyState === "complete"`)
	})
}

// waitAt waits until the tab shows path, loaded.
func waitAt(t *testing.T, tab *browsertest.Tab, path string) {
	t.Helper()
	eventually(t, "the page "+path, func() bool {
		return pageState(tab, `location.pathname === `+strconv.Quote(path)+` && document.readyState === "complete"`)
	})
}

// pageState evaluates a condition on the tab's page, false while the page
// is being replaced.
func pageState(tab *browsertest.Tab, cond string) bool {
	ctx, cancel := context.WithTimeout(tab.Context(), 5*time.Second)
	defer cancel()
	ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](cond))
	return err == nil && ok
}

// TestBrowserStaffDashboard: staff watch the dashboard while badges are
// tapped. A tap from the demo form turns the printer "in use" by its member
// without a reload; ending the session from the dashboard turns it free; an
// unknown badge tapped at the device's reader shows up, is enrolled to bob
// from the dashboard, and its next tap is bob's.
func TestBrowserStaffDashboard(t *testing.T) {
	t.Parallel()
	h := newAPIAccessHarness(t, true)
	setClock(t, h, apiAt(2, 10, 0)) // Wednesday 10:00 in Paris; the browser runs in UTC
	dev := connectDevice(t, h, "printer-1", h.printer.ID)
	const aliceUID, strangerUID = "04A11CE0000001", "04FFEEDDCCBBAA"
	h.do(t, "POST", "/api/v1/members/"+h.alice.ID.String()+"/badges", h.staff.Token, map[string]any{"uid": aliceUID}).want(t, http.StatusCreated, "")
	// A booking today is listed, at its lab time.
	h.seedBooking(t, h.laser.ID, h.alice, apiAt(2, 14, 0), apiAt(2, 16, 0))

	b := browsertest.Start(t)
	tab := b.NewTab(t, browsertest.TabOptions{BaseURL: h.srv.URL})
	browserCookieLogin(t, h, tab, h.staff)
	tab.Go("/staff")
	printer := `[data-machine="` + h.printer.ID.String() + `"]`
	tab.WaitText(printer, "Free")
	tab.WaitText("[data-live-status]", "Live")
	tab.WaitText("main", "14:00") // alice's laser booking, in Paris time though the browser is in UTC
	tab.Screenshot("dashboard")
	tab.CheckAccessibility(t, "dashboard")
	// The page must change without a reload: a reload would lose this mark.
	tab.Eval(`window.fabgateNoReload = true`, nil)

	// Tap alice's badge on the printer from the demo form.
	tab.Fill("#demo-uid", aliceUID)
	tab.Fill("#demo-device", "printer-1")
	tab.Click("[data-demo-tap] button[type=submit]")
	tab.WaitText("[data-demo-tap] [data-form-status]", "Access granted")
	tab.WaitText(printer, "In use")
	tab.WaitText(printer, "Alice Maker")
	tab.WaitText("[data-sessions]", "Alice Maker")
	tab.Screenshot("printer-in-use")
	sess, err := h.store.OpenSessionOn(context.Background(), h.printer.ID)
	if err != nil || sess.MemberID != h.alice.ID {
		t.Fatalf("open session on the printer: %+v (%v), want alice's", sess, err)
	}

	// End it from the dashboard (the confirmation answered yes).
	tab.Eval(`window.confirm = () => true`, nil)
	tab.Click(`[data-session="` + sess.ID.String() + `"] [data-end-session]`)
	tab.WaitGone(`[data-session="` + sess.ID.String() + `"]`)
	tab.WaitText(printer, "Free")
	tab.WaitText("[data-page-status]", "The session has ended")
	tab.Screenshot("session-ended")
	ended, err := h.store.Session(context.Background(), sess.ID)
	if err != nil || ended.Open() || ended.EndReason != fablab.EndStaff || ended.EndedBy != h.staff.ID {
		t.Fatalf("the session after End: %+v (%v), want ended by staff", ended, err)
	}

	// An unknown badge at the printer's reader: refused, listed live.
	if _, err := dev.Tap(context.Background(), strangerUID); err != nil {
		t.Fatal(err)
	}
	tab.WaitText("[data-denied]", "The badge belongs to no member.")
	tab.WaitVisible("[data-unknown] [data-enrol]")
	tab.Screenshot("unknown-badge")
	tab.CheckAccessibility(t, "dashboard-unknown-badge")
	// Enrol it to bob: search him, choose him, enrol.
	tab.Type("[data-unknown] [data-member-search]", "bob")
	tab.WaitText("[data-unknown] [data-member-select]", "Bob Maker")
	tab.Fill("[data-unknown] [data-member-select]", h.bob.ID.String())
	tab.Click("[data-unknown] [data-enrol] button[type=submit]")
	tab.WaitText("[data-page-status]", "The badge is enrolled.")
	tab.WaitGone("[data-unknown] [data-enrol]")
	tab.Screenshot("badge-enrolled")
	owner, err := h.store.BadgeOwner(context.Background(), auth.BadgeHash(h.store.BadgeSecret(), strangerUID))
	if err != nil || owner.ID != h.bob.ID {
		t.Fatalf("the enrolled badge belongs to %+v (%v), want bob", owner, err)
	}
	// The same badge tapped at the reader now opens the printer for bob.
	if _, err := dev.Tap(context.Background(), strangerUID); err != nil {
		t.Fatal(err)
	}
	tab.WaitText(printer, "Bob Maker")
	tab.WaitText(printer, "In use")
	tab.Screenshot("enrolled-badge-known")
	var kept bool
	tab.Eval(`window.fabgateNoReload === true`, &kept)
	if !kept {
		t.Error("the dashboard reloaded: it must follow the lab live")
	}
	tab.NoJSErrors(t)
}

// TestBrowserStaffPages opens each staff page as staff, in English and in
// French, and on a phone: screenshots, no serious accessibility violation,
// no horizontal overflow at 375 px, no script error. It creates a member
// and a training through the pages' forms, grants the training, and shows
// a refused form keeping its input with the error next to the field.
func TestBrowserStaffPages(t *testing.T) {
	t.Parallel()
	h := newAPIHarness(t)
	setClock(t, h, apiAt(2, 10, 0))
	b := browsertest.Start(t)
	pages := map[string]string{
		"members":   "/staff/members",
		"member":    "/staff/members/" + h.alice.ID.String(),
		"trainings": "/staff/trainings",
		"audit":     "/staff/audit",
		"dashboard": "/staff",
	}
	for _, lang := range []string{"en", "fr"} {
		tab := b.NewTab(t, browsertest.TabOptions{BaseURL: h.srv.URL, Lang: lang})
		browserCookieLogin(t, h, tab, h.staff)
		for name, path := range pages {
			tab.Go(path)
			tab.WaitVisible("main h1")
			tab.Screenshot(name + "-" + lang)
			tab.CheckAccessibility(t, name+"-"+lang)
		}
		tab.NoJSErrors(t)
	}
	phone := b.NewTab(t, browsertest.TabOptions{BaseURL: h.srv.URL, Viewport: browsertest.Phone})
	browserCookieLogin(t, h, phone, h.admin)
	for name, path := range pages {
		phone.Go(path)
		phone.WaitVisible("main h1")
		phone.Screenshot(name + "-phone")
		phone.NoHorizontalOverflow(t)
		phone.CheckAccessibility(t, name+"-phone")
	}
	phone.NoJSErrors(t)

	tab := b.NewTab(t, browsertest.TabOptions{BaseURL: h.srv.URL})
	browserCookieLogin(t, h, tab, h.staff)
	// A training, through its form.
	tab.Go("/staff/trainings")
	tab.Fill("#t-name", "Resin printing")
	tab.Fill("#t-validity", "12")
	submitAndWaitReload(t, tab, "[data-api] button[type=submit]")
	resin := trainingID(h, "Resin printing")
	tab.WaitText("[data-trainings]", "Resin printing")
	tab.WaitText("[data-trainings]", "12 months")
	// A member refused for an email already used keeps what was typed.
	tab.Go("/staff/members")
	tab.Fill("#new-name", "Chris New")
	tab.Fill("#new-email", h.bob.Email)
	tab.Click(`form[data-api="POST /api/v1/members"] button[type=submit]`)
	tab.WaitText(`form[data-api="POST /api/v1/members"] .form-error, form[data-api="POST /api/v1/members"] [data-error-for="email"]`, "already exists")
	var kept string
	tab.Eval(`document.querySelector("#new-name").value`, &kept)
	if kept != "Chris New" {
		t.Errorf("the refused form lost the name: %q", kept)
	}
	tab.Screenshot("member-refused")
	// Then created, which leads to the new member's page.
	tab.Fill("#new-email", "chris@fablab.test")
	tab.Click(`form[data-api="POST /api/v1/members"] button[type=submit]`)
	var chris fablab.Member
	eventually(t, "the member to be created", func() bool {
		var err error
		chris, err = h.store.MemberByEmail(context.Background(), "chris@fablab.test")
		return err == nil
	})
	// The form leads to the new member's page.
	waitAt(t, tab, "/staff/members/"+chris.ID.String())
	tab.WaitText("main h1", "Chris New")
	// Grant the new training, then make a password link, shown once.
	tab.Fill("#q-training", resin.String())
	submitAndWaitReload(t, tab, `form[data-api$="/qualifications"] button[type=submit]`)
	tab.WaitText("main table", "Resin printing")
	if qs, err := h.store.Qualifications(context.Background(), chris.ID); err != nil || len(qs) != 1 || qs[0].TrainingID != resin {
		t.Fatalf("chris's qualifications: %+v (%v), want resin printing", qs, err)
	}
	tab.Click("[data-reset-link]")
	tab.WaitVisible("[data-reset-url]")
	var link string
	tab.Eval(`document.querySelector("[data-reset-url]").value`, &link)
	if token, ok := strings.CutPrefix(link, h.srv.URL+"/reset?token="); !ok || len(token) < 20 {
		t.Errorf("password link %q", link)
	}
	tab.Screenshot("member-created")
	tab.CheckAccessibility(t, "member-created")
	// The one error the browser logged is the refused creation's answer.
	for _, e := range tab.JSErrors() {
		if !strings.Contains(e, "status of 409") || !strings.Contains(e, "/api/v1/members") {
			t.Errorf("JavaScript error: %s", e)
		}
	}
}

// trainingID finds a training by name (0 when there is none).
func trainingID(h *apiHarness, name string) fablab.ID {
	ts, err := h.store.Trainings(context.Background(), 0, 1000)
	if err != nil {
		return 0
	}
	for _, tr := range ts.Items {
		if tr.Name == name {
			return tr.ID
		}
	}
	return 0
}
