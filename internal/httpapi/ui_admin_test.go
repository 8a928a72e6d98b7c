package httpapi

import (
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	qrcode "github.com/skip2/go-qrcode"

	"github.com/fabgate/fabgate/internal/fablab"
)

// adminPagePaths are the machine settings pages (staff) and the admin pages.
func adminPagePaths(h *apiHarness) (staffPaths, adminPaths []string) {
	id := h.laser.ID.String()
	return []string{"/staff/machines", "/staff/machines/new", "/staff/machines/" + id,
			"/staff/machines/" + id + "/label", "/staff/machines/labels", "/staff/outbox"},
		[]string{"/admin/devices", "/admin/settings"}
}

// TestAdminPagesRoles: the machine settings pages are staff's and admins',
// the device and settings pages admins' only; each renders in both
// languages with every message found (pageClient.get fails on ⟦id⟧).
func TestAdminPagesRoles(t *testing.T) {
	h := newAPIHarness(t)
	staffPaths, adminPaths := adminPagePaths(h)
	anon := newPageClient(t, h)
	for _, path := range append(append([]string{}, staffPaths...), adminPaths...) {
		status, loc, _ := anon.get(path)
		if status != http.StatusSeeOther || loc != "/login?next="+url.QueryEscape(path) {
			t.Errorf("anonymous %s: %d to %q, want the login page", path, status, loc)
		}
	}
	maker, staff, admin := newPageClient(t, h), newPageClient(t, h), newPageClient(t, h)
	maker.login(h.alice)
	staff.login(h.staff)
	admin.login(h.admin)
	for _, path := range staffPaths {
		if status, _, _ := maker.get(path); status != http.StatusForbidden {
			t.Errorf("maker on %s: %d, want 403", path, status)
		}
	}
	for _, path := range adminPaths {
		for who, p := range map[string]*pageClient{"maker": maker, "staff": staff} {
			if status, _, _ := p.get(path); status != http.StatusForbidden {
				t.Errorf("%s on %s: %d, want 403", who, path, status)
			}
		}
	}
	for _, lang := range []string{"en", "fr"} {
		for _, path := range staffPaths {
			for who, p := range map[string]*pageClient{"staff": staff, "admin": admin} {
				status, _, body := p.get(path, "Accept-Language", lang)
				if status != http.StatusOK || !strings.Contains(body, `<html lang="`+lang+`"`) {
					t.Errorf("%s on %s in %s: %d", who, path, lang, status)
				}
			}
		}
		for _, path := range adminPaths {
			status, _, body := admin.get(path, "Accept-Language", lang)
			if status != http.StatusOK || !strings.Contains(body, `<html lang="`+lang+`"`) {
				t.Errorf("admin on %s in %s: %d", path, lang, status)
			}
		}
	}
	if status, _, _ := admin.get("/staff/machines/999999"); status != http.StatusNotFound {
		t.Errorf("an unknown machine's page: %d, want 404", status)
	}
	if status, _, _ := admin.get("/staff/machines/abc/label"); status == http.StatusOK {
		t.Errorf("a malformed machine id's label: %d, want a refusal", status)
	}
}

// TestStaffMachinesPages: the list shows every machine with its trainings;
// the edit page shows the rules and prices in euros, read-only to staff
// (the API refuses them staff anyway), editable by admins, with the device
// choice for admins only.
func TestStaffMachinesPages(t *testing.T) {
	h := newAPIHarness(t)
	id := h.laser.ID.String()
	r := h.do(t, "PATCH", "/api/v1/machines/"+id, h.admin.Token, map[string]any{
		"prices": map[string]int64{"student": 1250, "sme": 4000}, "minimum_charge_cents": 300,
		"rules": map[string]any{"slot_minutes": 15, "min_minutes": 15}})
	r.want(t, http.StatusOK, "")
	h.seedDevice(t, "laser-1", 0)

	staff, admin := newPageClient(t, h), newPageClient(t, h)
	staff.login(h.staff)
	admin.login(h.admin)
	_, _, body := staff.get("/staff/machines", "Accept-Language", "en")
	for _, want := range []string{"Laser", "Printer", "CNC", "Laser safety", `href="/staff/machines/` + id + `"`, `href="/staff/machines/` + id + `/label"`, `href="/staff/machines/new"`} {
		if !strings.Contains(body, want) {
			t.Errorf("machine list lacks %q", want)
		}
	}

	_, _, body = staff.get("/staff/machines/"+id, "Accept-Language", "en")
	for _, want := range []string{`data-admin-api="PATCH /api/v1/machines/` + id + `"`, `name="rules.slot_minutes"`, `value="15"`,
		`name="prices.student"`, `value="12.50"`, `value="40.00"`, `value="3.00"`, `data-list="maintenance"`,
		`data-object="prices"`, "Only an admin can change prices and fees."} {
		if !strings.Contains(body, want) {
			t.Errorf("staff's machine page lacks %q", want)
		}
	}
	if !strings.Contains(body, `<fieldset class="grid-fields" disabled aria-describedby="prices-hint" data-object="prices">`) {
		t.Error("staff's prices are not read-only")
	}
	if strings.Contains(body, `name="device_id"`) {
		t.Error("staff are offered the device binding, which is the admins'")
	}

	_, _, body = admin.get("/staff/machines/"+id, "Accept-Language", "fr")
	if strings.Contains(body, `data-object="prices" disabled`) || strings.Contains(body, `disabled aria-describedby="prices-hint"`) {
		t.Error("the admin's prices are read-only")
	}
	for _, want := range []string{`name="device_id"`, `<option value="laser-1">laser-1</option>`, "Prix horaires", `value="12.50"`} {
		if !strings.Contains(body, want) {
			t.Errorf("admin's machine page lacks %q", want)
		}
	}

	_, _, body = staff.get("/staff/machines/new", "Accept-Language", "en")
	if !strings.Contains(body, `data-admin-api="POST /api/v1/machines"`) || !strings.Contains(body, `data-next="/staff/machines/{id}"`) {
		t.Error("the new machine page does not post the machine")
	}
	// The lab's default rules fill a new machine's form.
	if !strings.Contains(body, `name="rules.max_ahead_days" type="number" inputmode="numeric" step="1" min="0" value="28"`) {
		t.Error("the new machine page does not start from the lab's default rules")
	}
}

// TestMachineLabelQR: the label names the machine and its calendar's
// address, and its QR code is a PNG whose modules are the QR code of that
// very address.
func TestMachineLabelQR(t *testing.T) {
	h := newAPIHarness(t)
	// A server with its public address set, on the same store.
	s, err := New(Config{Store: h.store, Now: h.clock.Now, Registry: prometheus.NewRegistry(), Password: apiCheapPassword, PublicURL: "https://fablab.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	pub := httptest.NewServer(s.Handler())
	t.Cleanup(pub.Close)
	p := newPageClient(t, &apiHarness{srv: pub, client: pub.Client()})
	p.login(h.staff)
	id := h.printer.ID.String()
	want := "https://fablab.example.org/machines/" + id
	_, _, body := p.get("/staff/machines/"+id+"/label", "Accept-Language", "en")
	for _, s := range []string{"Printer", "3D printer", want, `src="/staff/machines/` + id + `/qr.png"`, "Scan to book this machine"} {
		if !strings.Contains(body, s) {
			t.Errorf("label lacks %q", s)
		}
	}
	checkQR(t, p, "/staff/machines/"+id+"/qr.png", want)

	// Without a public address, the request's own.
	bare, err := New(Config{Store: h.store, Now: h.clock.Now, Registry: prometheus.NewRegistry(), Password: apiCheapPassword})
	if err != nil {
		t.Fatal(err)
	}
	local := httptest.NewServer(bare.Handler())
	t.Cleanup(local.Close)
	q := newPageClient(t, &apiHarness{srv: local, client: local.Client()})
	q.login(h.admin)
	own := local.URL + "/machines/" + h.laser.ID.String()
	_, _, body = q.get("/staff/machines/labels", "Accept-Language", "fr")
	if !strings.Contains(body, own) || !strings.Contains(body, "Scannez pour réserver") {
		t.Errorf("labels page lacks %q", own)
	}
	checkQR(t, q, "/staff/machines/"+h.laser.ID.String()+"/qr.png", own)

	// Makers get no label.
	m := newPageClient(t, h)
	m.login(h.bob)
	if status, _, _ := m.get("/staff/machines/" + id + "/qr.png"); status != http.StatusForbidden {
		t.Errorf("maker on a QR code: %d", status)
	}
}

// checkQR fetches a QR code and compares it, module by module, with the
// QR code of want drawn by the encoder itself; a QR code of another
// address must not match, so the comparison can fail.
func checkQR(t *testing.T, p *pageClient, path, want string) {
	t.Helper()
	req, _ := http.NewRequest("GET", p.h.srv.URL+path, nil)
	res, err := p.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("GET %s: %d %s", path, res.StatusCode, res.Header.Get("Content-Type"))
	}
	img, err := png.Decode(res.Body)
	if err != nil {
		t.Fatalf("%s is not a PNG: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() < 300 || b.Dx() != b.Dy() {
		t.Fatalf("QR code is %dx%d, want a square of 300 px or more", b.Dx(), b.Dy())
	}
	if !qrMatches(t, img, want) {
		t.Errorf("%s is not the QR code of %s", path, want)
	}
	if qrMatches(t, img, want+"0") {
		t.Errorf("%s also matches the QR code of another address: the comparison proves nothing", path)
	}
}

// qrMatches reports whether img shows the modules of the QR code of text:
// each module's centre pixel is dark exactly where the code has a module.
func qrMatches(t *testing.T, img image.Image, text string) bool {
	t.Helper()
	q, err := qrcode.New(text, qrcode.Medium)
	if err != nil {
		t.Fatal(err)
	}
	bits := q.Bitmap() // with its quiet zone, as the PNG is drawn
	size := img.Bounds().Dx()
	per := size / len(bits)
	if per < 2 {
		t.Fatalf("%d px for %d modules: too small to scan", size, len(bits))
	}
	off := (size - per*len(bits)) / 2
	for y, row := range bits {
		for x, dark := range row {
			r, g, b, _ := img.At(img.Bounds().Min.X+off+x*per+per/2, img.Bounds().Min.Y+off+y*per+per/2).RGBA()
			if isDark := r+g+b < 3*0x8000; isDark != dark {
				return false
			}
		}
	}
	return true
}

// TestDevicesPageNeverShowsSecret: the device list shows what the server
// knows of each device and its actions, never a secret or key; those are
// in the registration's answer only.
func TestDevicesPageNeverShowsSecret(t *testing.T) {
	h := newAPIAccessHarness(t, false)
	r := h.do(t, "POST", "/api/v1/devices", h.admin.Token, map[string]any{"id": "laser-9", "machine_id": h.laser.ID})
	r.want(t, http.StatusCreated, "")
	var created struct {
		Secret       string `json:"mqtt_secret"`
		BadgeKey     string `json:"badge_key"`
		AllowlistKey string `json:"allowlist_key"`
	}
	r.decode(t, &created)
	if created.Secret == "" || created.BadgeKey == "" || created.AllowlistKey == "" {
		t.Fatalf("registration answer lacks its credentials: %s", r.body)
	}
	r = h.do(t, "POST", "/api/v1/devices/laser-9/disable", h.admin.Token, nil)
	r.want(t, http.StatusOK, "")
	p := newPageClient(t, h)
	p.login(h.admin)
	for _, lang := range []string{"en", "fr"} {
		_, _, body := p.get("/admin/devices", "Accept-Language", lang)
		for _, secret := range []string{created.Secret, created.BadgeKey, created.AllowlistKey} {
			if strings.Contains(body, secret) {
				t.Fatalf("the devices page shows a secret or key")
			}
		}
		for _, want := range []string{`data-device="laser-9"`, `href="/staff/machines/` + h.laser.ID.String() + `"`, "Laser",
			`data-admin-api="POST /api/v1/devices/laser-9/secret"`, `data-api="POST /api/v1/devices/laser-9/enable"`,
			`data-api="DELETE /api/v1/devices/laser-9"`, `data-admin-api="PATCH /api/v1/devices/laser-9"`,
			`data-admin-api="POST /api/v1/devices"`, `id="secret-panel" hidden`, `data-prefix="fabgate/v1"`, `data-broker="tcp://fablab.test:1883"`} {
			if !strings.Contains(body, want) {
				t.Errorf("devices page (%s) lacks %q", lang, want)
			}
		}
	}
	_, _, body := p.get("/admin/devices", "Accept-Language", "fr")
	if !strings.Contains(body, "Désactivé") || !strings.Contains(body, "Hors ligne") {
		t.Error("the French devices page does not say the device is disabled and offline")
	}
}

// TestSettingsPage: the settings page shows the lab's opening hours (with
// several ranges a day), closures, default rules and tariff groups as the
// API stores them.
func TestSettingsPage(t *testing.T) {
	h := newAPIHarness(t)
	r := h.do(t, "PATCH", "/api/v1/settings", h.admin.Token, map[string]any{
		"opening_hours": map[string]any{"tuesday": []map[string]string{{"open": "09:00", "close": "12:30"}, {"open": "14:00", "close": "24:00"}}},
		"closures":      []map[string]string{{"from": "2026-12-24", "to": "2027-01-02", "reason": "Winter break"}},
		"vat_rate_bp":   550,
	})
	r.want(t, http.StatusOK, "")
	p := newPageClient(t, h)
	p.login(h.admin)
	_, _, body := p.get("/admin/settings", "Accept-Language", "en")
	for _, want := range []string{apiLabName, `value="Europe/Paris"`, `data-list="opening_hours.tuesday"`, `value="12:30"`, `value="14:00"`, `value="24:00"`,
		`value="2026-12-24"`, `value="2027-01-02"`, `value="Winter break"`, `value="5.5"`, `data-list="groups"`, `value="student"`,
		`name="default_rules.slot_minutes"`, `data-admin-api="PUT /api/v1/tariffs"`, "Tuesday", `data-error-for="time_zone"`} {
		if !strings.Contains(body, want) {
			t.Errorf("settings page lacks %q", want)
		}
	}
	// Sunday is closed: its list has no row, only the template of one.
	sunday := body[strings.Index(body, `data-list="opening_hours.sunday"`):]
	sunday = sunday[:strings.Index(sunday, "<template")]
	if strings.Contains(sunday, "data-row>") {
		t.Error("closed Sunday shows an opening range")
	}
}

// TestAdminFormProblemsNameTheirField: what the settings and machine forms
// send, refused, names the field at fault so the page shows it there.
func TestAdminFormProblemsNameTheirField(t *testing.T) {
	h := newAPIHarness(t)
	cases := []struct {
		method, path string
		body         any
		field        string
	}{
		{"PATCH", "/api/v1/settings", map[string]any{"time_zone": "Mars/Olympus"}, "time_zone"},
		{"PATCH", "/api/v1/settings", map[string]any{"name": " "}, "name"},
		{"PATCH", "/api/v1/settings", map[string]any{"vat_rate_bp": 20000}, "vat_rate_bp"},
		{"PATCH", "/api/v1/settings", map[string]any{"currency": "euro"}, "currency"},
		{"PATCH", "/api/v1/settings", map[string]any{"invoice_prefix": "no spaces"}, "invoice_prefix"},
		{"PATCH", "/api/v1/settings", map[string]any{"billing_increment_minutes": 0}, "billing_increment_minutes"},
		{"PATCH", "/api/v1/settings", map[string]any{"opening_hours": map[string]any{"friday": []map[string]string{{"open": "18:00", "close": "09:00"}}}}, "opening_hours.friday"},
		{"PATCH", "/api/v1/settings", map[string]any{"closures": []map[string]string{{"from": "2026-05-02", "to": "2026-05-01"}}}, "closures"},
		{"PATCH", "/api/v1/settings", map[string]any{"default_rules": map[string]any{"slot_minutes": 7}}, "default_rules.slot_minutes"},
		{"PUT", "/api/v1/tariffs", map[string]any{"groups": []map[string]string{{"id": "Bad Id", "name": "x"}}}, "groups"},
		{"PATCH", "/api/v1/machines/" + h.laser.ID.String(), map[string]any{"rules": map[string]any{"max_ahead_days": 0}}, "rules.max_ahead_days"},
		{"PATCH", "/api/v1/machines/" + h.laser.ID.String(), map[string]any{"prices": map[string]int64{"student": -1}}, "prices.student"},
		{"PATCH", "/api/v1/machines/" + h.laser.ID.String(), map[string]any{"name": ""}, "name"},
		{"POST", "/api/v1/machines", map[string]any{"name": "Saw", "kind": "Band Saw"}, "kind"},
	}
	for _, c := range cases {
		r := h.do(t, c.method, c.path, h.admin.Token, c.body)
		if r.status != http.StatusBadRequest {
			t.Errorf("%s %s %v: %d, want 400", c.method, c.path, c.body, r.status)
			continue
		}
		if p := r.problem(t); p.Field != c.field {
			t.Errorf("%s %s %v: problem names field %q, want %q (%s)", c.method, c.path, c.body, p.Field, c.field, p.Detail)
		}
	}
	// A French client reads them in French, next to the same field.
	r := h.send(t, apiReq{method: "PATCH", path: "/api/v1/settings", token: h.admin.Token,
		body:   map[string]any{"closures": []map[string]string{{"from": "2026-05-02", "to": "2026-05-01"}}},
		header: http.Header{"Accept-Language": {"fr-FR"}}})
	if p := r.problem(t); p.Field != "closures" || !strings.Contains(p.Detail, "finit avant de commencer") {
		t.Errorf("French client: field %q, detail %q", p.Field, p.Detail)
	}
	r = h.send(t, apiReq{method: "PATCH", path: "/api/v1/machines/" + h.laser.ID.String(), token: h.admin.Token,
		body:   map[string]any{"rules": map[string]any{"slot_minutes": 7}},
		header: http.Header{"Accept-Language": {"fr-FR"}}})
	if p := r.problem(t); p.Field != "rules.slot_minutes" || !strings.Contains(p.Detail, "reçu : 7") {
		t.Errorf("French client: field %q, detail %q", p.Field, p.Detail)
	}
	// Nothing was saved.
	st, err := h.store.Settings(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.TimeZone != "Europe/Paris" || st.DefaultRules.SlotMinutes != fablab.DefaultBookingRules().SlotMinutes {
		t.Errorf("a refused change was saved: %+v", st)
	}
}
