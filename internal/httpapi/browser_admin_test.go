package httpapi

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/fabgate/fabgate/internal/browsertest"
	"github.com/fabgate/fabgate/internal/devicesim"
	"github.com/fabgate/fabgate/internal/fablab"
)

// browserLogin logs a in through the login page, which then goes to next.
func browserLogin(t *testing.T, tab *browsertest.Tab, a *apiAccount, next string) {
	t.Helper()
	browserLoginTo(t, tab, a, next, `body[data-me="`+a.ID.String()+`"]`)
	waitLoaded(t, tab) // the page's deferred scripts have run
}

// waitLoaded waits until the tab's page has loaded whole, scripts included.
// Probes while a page is being replaced may fail; they are retried.
func waitLoaded(t *testing.T, tab *browsertest.Tab) {
	t.Helper()
	eventually(t, "the page loaded", func() bool {
		ctx, cancel := context.WithTimeout(tab.Context(), 5*time.Second)
		defer cancel()
		done, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.fabgateOldPage === undefined && document.readyState === "complete"`))
		return err == nil && done
	})
}

// acceptConfirms answers yes to the page's confirmation questions, as the
// user would.
func acceptConfirms(tab *browsertest.Tab) {
	tab.Eval(`window.confirm = () => true; true`, nil)
}

// noJSErrorsBut fails t on the tab's JavaScript errors, except the
// browser's report of the API refusals the test asked for: "status" is the
// refused answer's status and path its address's path.
func noJSErrorsBut(t *testing.T, tab *browsertest.Tab, refusals ...string) {
	t.Helper()
	for _, e := range tab.JSErrors() {
		expected := false
		for i := 0; i+1 < len(refusals); i += 2 {
			if strings.Contains(e, "the server responded with a status of "+refusals[i]) && strings.Contains(e, refusals[i+1]+")") {
				expected = true
			}
		}
		if !expected {
			t.Errorf("JavaScript error on %s: %s", tab.URL(), e)
		}
	}
}

// eventually polls cond until it holds, for a change a page makes and then
// reloads itself after: the test cannot wait on a page being replaced.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(browsertest.ActionTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not so after %s", what, browsertest.ActionTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clickAndReload clicks sel, whose action reloads the page, and waits
// until the new page has loaded: a mark left on the old page is gone.
// Probes while the page is being replaced may fail; they are retried.
func clickAndReload(t *testing.T, tab *browsertest.Tab, sel string) {
	t.Helper()
	tab.Eval(`window.fabgateOldPage = true; true`, nil)
	tab.Click(sel)
	waitLoaded(t, tab)
}

// checkPage takes the screenshot and the accessibility check of a page.
func checkPage(t *testing.T, tab *browsertest.Tab, name string) {
	t.Helper()
	tab.Screenshot(name)
	tab.CheckAccessibility(t, name)
}

// TestBrowserAdminDevices: an admin registers a device bound to a machine
// and sees its secret and bridge configuration once; after a reload they
// are gone; a new secret is shown once again; disabling shows on the list.
func TestBrowserAdminDevices(t *testing.T) {
	t.Parallel()
	h := newAPIAccessHarness(t, false)
	tab := browsertest.Start(t).NewTab(t, browsertest.TabOptions{BaseURL: h.srv.URL})
	browserLogin(t, tab, h.admin, "/admin/devices")
	tab.WaitText("main h1", "Devices")
	checkPage(t, tab, "devices-empty")

	tab.Fill("#dev-id", "Mill 7") // refused: the problem shows next to the id, what was typed stays
	tab.Click(`form[data-admin-api="POST /api/v1/devices"] button[type=submit]`)
	tab.WaitText("#dev-id-error", "device id must be")
	var typed string
	tab.Eval(`document.querySelector("#dev-id").value`, &typed)
	if typed != "Mill 7" {
		t.Errorf("the refused id became %q", typed)
	}

	tab.Fill("#dev-id", "mill-7")
	tab.Fill("#dev-machine", h.printer.ID.String())
	tab.Click(`form[data-admin-api="POST /api/v1/devices"] button[type=submit]`)
	tab.WaitVisible("#secret-panel")
	secret := tab.Text("#secret-value")
	config := tab.Text("#bridge-config")
	if len(secret) < 20 {
		t.Fatalf("the secret shown is %q", secret)
	}
	for _, want := range []string{`"id": "mill-7"`, `"secret": "` + secret + `"`, `"url": "tcp://fablab.test:1883"`, `"badge_key"`, `"allowlist_key"`, `"allowlist_key_id"`, `"relay"`, `"reader"`} {
		if !strings.Contains(config, want) {
			t.Errorf("bridge configuration lacks %s:\n%s", want, config)
		}
	}
	checkPage(t, tab, "devices-secret")
	d, err := h.store.Device(context.Background(), "mill-7")
	if err != nil || d.MachineID != h.printer.ID {
		t.Fatalf("registered device: %+v, %v; want it bound to the printer", d, err)
	}

	// The bridge, configured with what the page showed, logs in: the list
	// shows it online as it happens.
	tab.Go("/admin/devices")
	tab.WaitText(`tr[data-device="mill-7"] [data-online]`, "Offline")
	eventually(t, "the page listens to the live events", func() bool {
		var open bool
		tab.Eval(`!!(FabGate.adminLive && FabGate.adminLive.readyState === EventSource.OPEN)`, &open)
		return open
	})
	dev, err := devicesim.Start(context.Background(), devicesim.Config{Broker: h.lab.URL, ID: "mill-7", Secret: secret, Now: h.clock.Now})
	if err != nil {
		t.Fatalf("the device cannot log in with the secret the page showed: %v", err)
	}
	tab.WaitText(`tr[data-device="mill-7"] [data-online]`, "Online")
	dev.Close()
	tab.WaitText(`tr[data-device="mill-7"] [data-online]`, "Offline")

	tab.Go("/admin/devices")
	tab.WaitVisible(`tr[data-device="mill-7"]`)
	if n := tab.Count("#secret-panel:not([hidden])"); n != 0 {
		t.Error("the secret panel is shown again after a reload")
	}
	var html string
	tab.Eval(`document.documentElement.outerHTML`, &html)
	if strings.Contains(html, secret) {
		t.Fatal("the secret is on the page after a reload")
	}
	tab.WaitText(`tr[data-device="mill-7"]`, "Printer")
	checkPage(t, tab, "devices-list")

	acceptConfirms(tab)
	// A server whose bridges connect over TLS: the configuration names the
	// lab's CA file as docs/deploy.md has it copied.
	tab.Eval(`document.getElementById("secret-panel").dataset.broker = "ssl://fablab.test:8883"`, nil)
	tab.Click(`form[data-admin-api="POST /api/v1/devices/mill-7/secret"] button[type=submit]`)
	tab.WaitVisible("#secret-panel")
	if again := tab.Text("#secret-value"); again == secret || len(again) < 20 {
		t.Errorf("the new secret is %q (the old one was %q)", again, secret)
	}
	if config := tab.Text("#bridge-config"); !strings.Contains(config, `"url": "ssl://fablab.test:8883",`+"\n"+`    "ca_file": "/etc/fabgate-bridge/ca.pem"`) {
		t.Errorf("an ssl:// broker's bridge configuration lacks its ca_file:\n%s", config)
	}

	clickAndReload(t, tab, `button[data-api="POST /api/v1/devices/mill-7/disable"]`)
	if d, _ := h.store.Device(context.Background(), "mill-7"); !d.Disabled {
		t.Error("the device is not disabled")
	}
	tab.WaitVisible(`button[data-api="POST /api/v1/devices/mill-7/enable"]`)
	tab.WaitText(`tr[data-device="mill-7"]`, "Disabled")

	// Unbind through the row's machine choice.
	tab.Fill("#bind-mill-7", "")
	clickAndReload(t, tab, `form[data-admin-api="PATCH /api/v1/devices/mill-7"] button[type=submit]`)
	if d, _ := h.store.Device(context.Background(), "mill-7"); d.MachineID != 0 {
		t.Errorf("the device still drives machine %s", d.MachineID)
	}
	tab.WaitText(`tr[data-device="mill-7"] td[data-label="Machine"]`, "None")
	noJSErrorsBut(t, tab, "400", "/api/v1/devices")

	// At 375 px the device list and the machine list fit the screen.
	phone := browsertest.Start(t).NewTab(t, browsertest.TabOptions{BaseURL: h.srv.URL, Viewport: browsertest.Phone, Lang: "fr"})
	browserLogin(t, phone, h.admin, "/admin/devices")
	phone.WaitVisible(`tr[data-device="mill-7"]`)
	phone.Screenshot("devices-phone")
	phone.NoHorizontalOverflow(t)
	phone.CheckAccessibility(t, "devices-phone")
	phone.Go("/staff/machines")
	phone.WaitText("main table", "Laser")
	phone.Screenshot("machines-phone")
	phone.NoHorizontalOverflow(t)
	phone.Go("/staff/machines/" + h.laser.ID.String() + "/label")
	phone.WaitVisible(".label-qr")
	phone.NoHorizontalOverflow(t)
	phone.NoJSErrors(t)

	acceptConfirms(tab) // the page was reloaded since
	clickAndReload(t, tab, `button[data-api="DELETE /api/v1/devices/mill-7"]`)
	if _, err := h.store.Device(context.Background(), "mill-7"); fablab.ErrorCode(err) != fablab.ENOTFOUND {
		t.Errorf("the deleted device: %v", err)
	}
	tab.WaitText("main table", "No devices registered yet.")
}

// TestBrowserSettings: an admin gives Sunday two opening ranges and sees
// them saved; a refused form shows the problem next to its field and keeps
// what was typed; a closure is added.
func TestBrowserSettings(t *testing.T) {
	t.Parallel()
	h := newAPIHarness(t)
	tab := browsertest.Start(t).NewTab(t, browsertest.TabOptions{BaseURL: h.srv.URL, Lang: "fr"})
	browserLogin(t, tab, h.admin, "/admin/settings")
	tab.WaitText("main h1", "Réglages du lab")
	checkPage(t, tab, "settings")

	tab.Click(`[data-add-row="day-sunday"]`)
	tab.Fill(`#day-sunday li[data-row]:nth-child(1) input[data-field="open"]`, "10:00")
	tab.Fill(`#day-sunday li[data-row]:nth-child(1) input[data-field="close"]`, "13:00")
	tab.Click(`[data-add-row="day-sunday"]`)
	tab.Fill(`#day-sunday li[data-row]:nth-child(2) input[data-field="open"]`, "14:00")
	tab.Fill(`#day-sunday li[data-row]:nth-child(2) input[data-field="close"]`, "18:30")
	tab.Click(`#hours button[type=submit]`)
	tab.WaitText(`#hours [data-form-status]`, "Enregistré")
	st, err := h.store.Settings(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sunday := st.OpeningHours.Day(time.Sunday)
	if len(sunday) != 2 || sunday[0].Open.String() != "10:00" || sunday[1].Close.String() != "18:30" {
		t.Fatalf("Sunday saved as %v", sunday)
	}
	if len(st.OpeningHours.Day(time.Monday)) != 1 {
		t.Errorf("Monday changed: %v", st.OpeningHours.Day(time.Monday))
	}

	// Friday closing before it opens: refused next to Friday, kept as typed.
	tab.Fill(`#day-friday li[data-row]:nth-child(1) input[data-field="close"]`, "08:00")
	tab.Click(`#hours button[type=submit]`)
	tab.WaitText(`[data-error-for="opening_hours.friday"]`, "doit fermer après son ouverture")
	var kept string
	tab.Eval(`document.querySelector('#day-friday li[data-row] input[data-field="close"]').value`, &kept)
	if kept != "08:00" {
		t.Errorf("the refused closing time became %q", kept)
	}
	checkPage(t, tab, "settings-refused")

	tab.Fill("#s-tz", "Mars/Olympus")
	tab.Click(`#general button[type=submit]`)
	tab.WaitText("#s-tz-error", "IANA")
	var invalid string
	tab.Eval(`document.querySelector("#s-tz").getAttribute("aria-invalid")`, &invalid)
	if invalid != "true" {
		t.Error("the refused time zone is not marked invalid")
	}

	tab.Click(`[data-add-row="closure-list"]`)
	tab.Fill(`#closure-list li[data-row]:nth-child(1) input[data-field="from"]`, "2026-12-24")
	tab.Fill(`#closure-list li[data-row]:nth-child(1) input[data-field="to"]`, "2027-01-01")
	tab.Fill(`#closure-list li[data-row]:nth-child(1) input[data-field="reason"]`, "Fêtes")
	tab.Click(`#closures button[type=submit]`)
	tab.WaitText(`#closures [data-form-status]`, "Enregistré")

	tab.Go("/admin/settings")
	tab.WaitVisible(`#day-sunday li[data-row]:nth-child(2)`)
	var values []string
	tab.Eval(`[...document.querySelectorAll('#day-sunday input, #closure-list [data-rows] input')].map(e => e.value)`, &values)
	if strings.Join(values, " ") != "10:00 13:00 14:00 18:30 2026-12-24 2027-01-01 Fêtes" {
		t.Errorf("after a reload the page shows %v", values)
	}
	st, _ = h.store.Settings(context.Background())
	if len(st.Closures) != 1 || st.Closures[0].Reason != "Fêtes" {
		t.Errorf("closures saved as %+v", st.Closures)
	}

	// A tariff group added (one added by mistake removed again), one renamed.
	tab.Click(`[data-add-row="group-list"]`)
	tab.Fill(`#group-list li[data-row]:last-child input[data-field="id"]`, "oops")
	tab.Click(`#group-list li[data-row]:last-child [data-remove-row]`)
	tab.Click(`[data-add-row="group-list"]`)
	tab.Fill(`#group-list li[data-row]:last-child input[data-field="id"]`, "makerspace")
	tab.Fill(`#group-list li[data-row]:last-child input[data-field="name"]`, "Makerspace")
	tab.Fill(`#group-list li[data-row]:first-child input[data-field="name"]`, "Étudiants")
	tab.Click(`#tariffs button[type=submit]`)
	tab.WaitText(`#tariffs [data-form-status]`, "Enregistré")
	groups, err := h.store.TariffGroups(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, g := range groups {
		ids = append(ids, g.ID)
	}
	if got := strings.Join(ids, " "); got != "student academic sme association non-member staff makerspace" || groups[0].Name != "Étudiants" {
		t.Errorf("tariff groups saved as %s (%+v)", got, groups)
	}
	noJSErrorsBut(t, tab, "400", "/api/v1/settings")

	phone := browsertest.Start(t).NewTab(t, browsertest.TabOptions{BaseURL: h.srv.URL, Viewport: browsertest.Phone})
	browserLogin(t, phone, h.admin, "/admin/settings")
	phone.WaitVisible("#hours")
	phone.Screenshot("settings-phone")
	phone.NoHorizontalOverflow(t)
}

// TestBrowserMachineEdit: an admin changes a machine's rule and price; staff
// change a rule with the prices shown read-only, and add a maintenance
// block; a new machine is created.
func TestBrowserMachineEdit(t *testing.T) {
	t.Parallel()
	h := newAPIHarness(t)
	id := h.laser.ID.String()
	tab := browsertest.Start(t).NewTab(t, browsertest.TabOptions{BaseURL: h.srv.URL})
	browserLogin(t, tab, h.admin, "/staff/machines")
	tab.WaitText("main table", "Laser")
	checkPage(t, tab, "machines-list")

	tab.Go("/staff/machines/" + id)
	tab.Fill("#rules-ahead", "14")
	tab.Fill("#price-student", "7.5")
	tab.Fill("#price-sme", "")
	tab.Click(`form[data-admin-api="PATCH /api/v1/machines/` + id + `"] button[type=submit]`)
	tab.WaitText("form [data-form-status]", "Saved")
	m, err := h.store.Machine(context.Background(), h.laser.ID)
	if err != nil {
		t.Fatal(err)
	}
	if m.Rules.MaxAheadDays != 14 || m.Prices["student"] != 750 || len(m.Prices) != 1 {
		t.Fatalf("saved rules %+v, prices %v; want 14 days ahead and 7.50 for students only", m.Rules, m.Prices)
	}
	checkPage(t, tab, "machine-edit-admin")

	// A refused rule shows next to its field.
	tab.Fill("#rules-slot", "7")
	tab.Click(`form[data-admin-api="PATCH /api/v1/machines/` + id + `"] button[type=submit]`)
	tab.WaitText("#rules-slot-error", "slot_minutes must divide a day")

	staff := browsertest.Start(t).NewTab(t, browsertest.TabOptions{BaseURL: h.srv.URL, Lang: "fr"})
	browserLogin(t, staff, h.staff, "/staff/machines/"+id)
	var disabled bool
	staff.Eval(`document.querySelector("#price-student").matches(":disabled")`, &disabled)
	if !disabled {
		t.Error("staff may edit the price on the page")
	}
	staff.Fill("#rules-ahead", "21")
	staff.Click(`[data-add-row="maint-list"]`)
	staff.Fill(`#maint-list li[data-row]:nth-child(1) input[data-field="start"]`, "2026-03-10T09:00")
	staff.Fill(`#maint-list li[data-row]:nth-child(1) input[data-field="end"]`, "2026-03-10T12:00")
	staff.Fill(`#maint-list li[data-row]:nth-child(1) input[data-field="reason"]`, "Nettoyage")
	staff.Click(`form.card:first-of-type button[type=submit]`)
	staff.WaitText("form [data-form-status]", "Enregistré")
	staff.Click(`form:has(#maint-list) button[type=submit]`)
	staff.WaitText(`form:has(#maint-list) [data-form-status]`, "Enregistré")
	checkPage(t, staff, "machine-edit-staff")
	m, _ = h.store.Machine(context.Background(), h.laser.ID)
	if m.Rules.MaxAheadDays != 21 || m.Prices["student"] != 750 {
		t.Errorf("after staff's save: %d days ahead, prices %v", m.Rules.MaxAheadDays, m.Prices)
	}
	want := fablab.MaintenanceBlock{Start: apiAt(8, 9, 0).UTC(), End: apiAt(8, 12, 0).UTC(), Reason: "Nettoyage"}
	if len(m.Maintenance) != 1 || !m.Maintenance[0].Start.Equal(want.Start) || !m.Maintenance[0].End.Equal(want.End) || m.Maintenance[0].Reason != want.Reason {
		t.Errorf("maintenance saved as %+v, want %+v (lab time)", m.Maintenance, want)
	}
	staff.NoJSErrors(t)

	tab.Go("/staff/machines/new")
	tab.Fill("#m-name", "Band saw")
	tab.Fill("#m-kind", "band-saw")
	tab.Click(`#m-t-` + h.training.ID.String())
	tab.Click(`form[data-admin-api="POST /api/v1/machines"] button[type=submit]`)
	var saw *fablab.Machine
	eventually(t, "band saw created", func() bool {
		ms, _ := h.store.Machines(context.Background(), 0, 100)
		for i := range ms.Items {
			if ms.Items[i].Name == "Band saw" {
				saw = &ms.Items[i]
			}
		}
		return saw != nil
	})
	if saw.Kind != "band-saw" || len(saw.RequiredTrainings) != 1 || saw.Rules.MaxAheadDays != 28 {
		t.Errorf("new machine: %+v", saw)
	}
	// The page goes on to the new machine's settings.
	eventually(t, "the new machine's page", func() bool { return strings.HasSuffix(tab.URL(), "/staff/machines/"+saw.ID.String()) })
	tab.WaitText("form h2", "Band saw")
	checkPage(t, tab, "machine-new-saved")
	noJSErrorsBut(t, tab, "400", "/api/v1/machines/"+id)
}

// TestBrowserMachineLabel: staff open a machine's label and its QR code
// image loads; the page prints the address in words too.
func TestBrowserMachineLabel(t *testing.T) {
	t.Parallel()
	h := newAPIHarness(t)
	tab := browsertest.Start(t).NewTab(t, browsertest.TabOptions{BaseURL: h.srv.URL})
	browserLogin(t, tab, h.staff, "/staff/machines/"+h.printer.ID.String()+"/label")
	tab.WaitText(".label-url", apiPublicURL+"/machines/"+h.printer.ID.String())
	var width int
	tab.Eval(`new Promise(ok => { const i = document.querySelector(".label-qr"); i.complete ? ok(i.naturalWidth) : i.onload = () => ok(i.naturalWidth); i.onerror = () => ok(0); })`, &width)
	if width < 300 {
		t.Errorf("the QR code image is %d px wide: it did not load", width)
	}
	checkPage(t, tab, "label")
	// Printed, the label is alone on its page: no navigation, no buttons.
	do := func(media string) {
		if _, err := chromedp.Run(tab.Context(), chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Media: media})
			return err
		})); err != nil {
			t.Fatal(err)
		}
	}
	do("print")
	var shown []string
	tab.Eval(`["header.top", ".no-print", "main > h1", ".label-name", ".label-qr", ".label-url"].map(s => getComputedStyle(document.querySelector(s)).display)`, &shown)
	if shown[0] != "none" || shown[1] != "none" || shown[2] != "none" || shown[3] == "none" || shown[4] == "none" || shown[5] == "none" {
		t.Errorf("printed label: display of header, buttons, title, name, code, address = %v", shown)
	}
	tab.Screenshot("label-print")
	do("")
	tab.Go("/staff/machines/labels")
	tab.WaitText("main", "CNC")
	if n := tab.Count(".label-card"); n != 3 {
		t.Errorf("%d labels on the print-all page, want 3", n)
	}
	checkPage(t, tab, "labels")
	tab.Go("/staff/outbox")
	tab.WaitVisible(`[data-outbox][aria-busy="false"]`)
	checkPage(t, tab, "outbox")
	noJSErrorsBut(t, tab, "404", "/api/v1/outbox") // no outbox on a server without mail
}

// TestBrowserOutbox: staff read the mail the server kept, here the
// invitation of a member they created, in the page's language and the
// lab's time.
func TestBrowserOutbox(t *testing.T) {
	t.Parallel()
	h := newAPIHarness(t)
	r := h.do(t, "POST", "/api/v1/members", h.staff.Token, map[string]any{"email": "newcomer@fablab.test", "name": "Nora Newcomer", "group": "student", "language": "en"})
	if r.status != 201 {
		t.Fatalf("create member: %d %s", r.status, r.body)
	}
	invitation, _ := h.mailTo(t, "newcomer@fablab.test", 1)

	tab := browsertest.Start(t).NewTab(t, browsertest.TabOptions{BaseURL: h.srv.URL, Lang: "fr"})
	browserLogin(t, tab, h.staff, "/staff/outbox")
	tab.WaitVisible(`[data-outbox][aria-busy="false"]`)
	tab.WaitText("[data-outbox]", invitation.Subject)
	tab.WaitText("[data-outbox]", "Nora Newcomer <newcomer@fablab.test>")
	tab.WaitText("[data-outbox] pre", apiPublicURL+"/reset?token=")
	if n := tab.Count("[data-outbox] article"); n < 1 {
		t.Errorf("%d messages shown", n)
	}
	checkPage(t, tab, "outbox-invitation")
	tab.NoJSErrors(t)

	// Makers have no outbox page.
	maker := browsertest.Start(t).NewTab(t, browsertest.TabOptions{BaseURL: h.srv.URL})
	browserLogin(t, maker, h.alice, "/machines")
	if status := maker.GoStatus("/staff/outbox"); status != 403 {
		t.Errorf("maker on the outbox page: %d", status)
	}
}
