package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/fabgate/fabgate/internal/fablab"
)

// staffPagePaths are the staff area's pages for h (a member's page: alice's).
func staffPagePaths(h *apiHarness) []string {
	return []string{"/staff", "/staff/members", "/staff/members/" + h.alice.ID.String(), "/staff/trainings", "/staff/audit", "/staff/reports"}
}

func TestStaffPagesRender(t *testing.T) {
	h := newAPIHarness(t)
	want := map[string][2]string{ // a word of each page, in English and French
		"/staff":                                {"Open sessions", "Sessions en cours"},
		"/staff/members":                        {"New member", "Nouveau membre"},
		"/staff/members/" + h.alice.ID.String(): {"Qualifications", "Habilitations"},
		"/staff/trainings":                      {"New training", "Nouvelle formation"},
		"/staff/audit":                          {"Events, newest first", "Événements, du plus récent au plus ancien"},
		"/staff/reports":                        {"Busiest hours", "Heures d&#39;affluence"},
	}
	for _, who := range []*apiAccount{h.staff, h.admin} {
		p := newPageClient(t, h)
		p.login(who)
		for _, path := range staffPagePaths(h) {
			for i, lang := range []string{"en", "fr"} {
				status, _, body := p.get(path, "Accept-Language", lang)
				if status != http.StatusOK {
					t.Errorf("%s as %s in %s: %d", path, who.Role, lang, status)
					continue
				}
				if !strings.Contains(body, `<html lang="`+lang+`"`) || !strings.Contains(body, want[path][i]) {
					t.Errorf("%s as %s in %s lacks %q or its language", path, who.Role, lang, want[path][i])
				}
			}
		}
	}
	// Makers are refused every staff page, with the error page.
	m := newPageClient(t, h)
	m.login(h.alice)
	for _, path := range staffPagePaths(h) {
		status, _, body := m.get(path, "Accept-Language", "en")
		if status != http.StatusForbidden || !strings.Contains(body, "cannot open this page") {
			t.Errorf("maker on %s: %d, want the 403 page", path, status)
		}
	}
	// Nobody logged in: the login page, coming back.
	anon := newPageClient(t, h)
	if status, loc, _ := anon.get("/staff/audit"); status != http.StatusSeeOther || !strings.HasPrefix(loc, "/login?next=") {
		t.Errorf("anonymous /staff/audit: %d to %q", status, loc)
	}
}

// TestStaffPagesOfferOnlyWhatTheViewerMay: staff are offered the maker
// role only and no staff tariff group; an admin's account shows staff no
// form; admins get the role select.
func TestStaffPagesOfferOnlyWhatTheViewerMay(t *testing.T) {
	h := newAPIHarness(t)
	st := newPageClient(t, h)
	st.login(h.staff)
	_, _, body := st.get("/staff/members", "Accept-Language", "en")
	if strings.Contains(body, `<option value="admin"`) || strings.Contains(body, `<option value="staff"`) || !strings.Contains(body, `<option value="maker"`) {
		t.Error("staff are offered roles or the staff tariff group they may not give")
	}
	_, _, body = st.get("/staff/members/"+h.admin.ID.String(), "Accept-Language", "en")
	if strings.Contains(body, `data-api="PATCH`) || strings.Contains(body, `data-api="POST /api/v1/members/`) || strings.Contains(body, "password-reset") || !strings.Contains(body, "Only an admin can change") {
		t.Error("an admin's page offers staff forms the API refuses them")
	}
	if strings.Contains(body, "password_hash") || strings.Contains(body, "$argon2") {
		t.Error("a member's page shows the password hash")
	}
	_, _, body = st.get("/staff/members/"+h.alice.ID.String(), "Accept-Language", "en")
	if !strings.Contains(body, `data-api="PATCH /api/v1/members/`+h.alice.ID.String()+`"`) || strings.Contains(body, `name="role"`) {
		t.Error("a maker's page for staff: want the account form without the role select")
	}
	ad := newPageClient(t, h)
	ad.login(h.admin)
	_, _, body = ad.get("/staff/members/"+h.staff.ID.String(), "Accept-Language", "en")
	if !strings.Contains(body, `name="role"`) || !strings.Contains(body, `<option value="admin"`) {
		t.Error("admins get no role select on a member's page")
	}
}

func TestMembersPageSearchAndPages(t *testing.T) {
	h := newAPIHarness(t)
	ctx := context.Background()
	for i := range membersPerPage + 5 {
		if _, err := h.store.CreateMember(ctx, fablab.Member{Email: fmt.Sprintf("zed%02d@fablab.test", i), Name: fmt.Sprintf("Zed Number %02d", i), Group: "student"}); err != nil {
			t.Fatal(err)
		}
	}
	p := newPageClient(t, h)
	p.login(h.staff)
	rows := regexp.MustCompile(`<a href="/staff/members/(\d+)">`)
	_, _, body := p.get("/staff/members?q=ZED", "Accept-Language", "en")
	first := rows.FindAllStringSubmatch(body, -1)
	if len(first) != membersPerPage {
		t.Fatalf("first page of the search: %d members, want %d", len(first), membersPerPage)
	}
	if strings.Contains(body, "Alice Maker") {
		t.Error("the search for zed lists Alice")
	}
	next := regexp.MustCompile(`href="(/staff/members\?q=ZED&amp;after=\d+)" rel="next"`).FindStringSubmatch(body)
	if next == nil {
		t.Fatal("no next page link")
	}
	_, _, body = p.get(strings.ReplaceAll(next[1], "&amp;", "&"), "Accept-Language", "en")
	second := rows.FindAllStringSubmatch(body, -1)
	if len(second) != 5 || strings.Contains(body, `rel="next"`) {
		t.Fatalf("second page: %d members (want 5) or a next link", len(second))
	}
	seen := map[string]bool{}
	for _, r := range append(first, second...) {
		if seen[r[1]] {
			t.Errorf("member %s listed twice", r[1])
		}
		seen[r[1]] = true
	}
	_, _, body = p.get("/staff/members?q=alice%40fablab", "Accept-Language", "en")
	if got := rows.FindAllStringSubmatch(body, -1); len(got) != 1 || got[0][1] != h.alice.ID.String() {
		t.Errorf("search by email: %v, want alice alone", got)
	}
}

func TestMembersSearchAPI(t *testing.T) {
	h := newAPIHarness(t)
	var page struct {
		Items []fablab.Member `json:"items"`
		Next  fablab.ID       `json:"next"`
	}
	h.do(t, "GET", "/api/v1/members?q=maker&limit=1", h.staff.Token, nil).decode(t, &page)
	if len(page.Items) != 1 || page.Items[0].ID != h.alice.ID || page.Next == 0 {
		t.Fatalf("q=maker, limit 1: %+v, want alice and a next page", page)
	}
	page.Items = nil
	after := page.Next
	page.Next = 0
	h.do(t, "GET", "/api/v1/members?q=maker&limit=1&after="+after.String(), h.staff.Token, nil).decode(t, &page)
	if len(page.Items) != 1 || page.Items[0].ID != h.bob.ID {
		t.Fatalf("q=maker, second page: %+v, want bob", page)
	}
	h.do(t, "GET", "/api/v1/members?q="+strings.Repeat("x", 201), h.staff.Token, nil).want(t, http.StatusBadRequest, fablab.EINVALID)
	h.do(t, "GET", "/api/v1/members?q=maker", h.alice.Token, nil).want(t, http.StatusForbidden, fablab.EFORBIDDEN)
}

func TestRevokeQualificationAPI(t *testing.T) {
	h := newAPIHarness(t)
	path := "/api/v1/members/" + h.alice.ID.String() + "/qualifications/" + h.training.ID.String()
	h.do(t, "DELETE", path, h.alice.Token, nil).want(t, http.StatusForbidden, fablab.EFORBIDDEN)
	// Staff cannot act on a staff account.
	h.do(t, "POST", "/api/v1/members/"+h.admin.ID.String()+"/qualifications", h.admin.Token, map[string]any{"training_id": h.training.ID}).want(t, http.StatusCreated, "")
	h.do(t, "DELETE", "/api/v1/members/"+h.admin.ID.String()+"/qualifications/"+h.training.ID.String(), h.staff.Token, nil).want(t, http.StatusForbidden, fablab.EFORBIDDEN)
	h.do(t, "DELETE", path, h.staff.Token, nil).want(t, http.StatusNoContent, "")
	qs, err := h.store.Qualifications(context.Background(), h.alice.ID)
	if err != nil || len(qs) != 0 {
		t.Fatalf("after the revoke alice holds %v (%v)", qs, err)
	}
	h.do(t, "DELETE", path, h.staff.Token, nil).want(t, http.StatusNotFound, fablab.ENOTFOUND)
	h.do(t, "DELETE", "/api/v1/members/"+h.alice.ID.String()+"/qualifications/x", h.staff.Token, nil).want(t, http.StatusNotFound, fablab.ENOTFOUND)
	// The revoke is audited like every change.
	var evs []fablab.AuditEvent
	h.do(t, "GET", "/api/v1/audit?kind=api&action="+strings.ReplaceAll("DELETE /api/v1/members/:id/qualifications/:training_id", " ", "%20"), h.staff.Token, nil).decode(t, &evs)
	if len(evs) != 1 || evs[0].ActorID != h.staff.ID {
		t.Errorf("audit of the revoke: %+v", evs)
	}
}

// TestDashboardShowsTheLab: with the access side running, the dashboard
// shows a machine in use by its member with an End button, a refused tap
// with its reason in words, and an unknown badge to enrol; enrolling it
// through the API the form uses makes the same badge known.
func TestDashboardShowsTheLab(t *testing.T) {
	h := newAPIAccessHarness(t, true)
	sess := h.openSession(t, h.alice)
	laserDev := h.seedDevice(t, "laser-1", h.laser.ID)
	// bob lacks the laser's training; a badge nobody holds is unknown.
	h.do(t, "POST", "/api/v1/members/"+h.bob.ID.String()+"/badges", h.staff.Token, map[string]any{"uid": "04B0B0B0B0B0B0"}).want(t, http.StatusCreated, "")
	var tr tapResult
	h.do(t, "POST", "/api/v1/devices/"+laserDev.ID+"/tap", h.staff.Token, map[string]any{"uid": "04B0B0B0B0B0B0"}).decode(t, &tr)
	if tr.Decision != "deny" || tr.Reason != "training_required" {
		t.Fatalf("bob on the laser: %+v", tr)
	}
	h.do(t, "POST", "/api/v1/devices/"+laserDev.ID+"/tap", h.staff.Token, map[string]any{"uid": "04DEADBEEF0001"}).decode(t, &tr)
	if tr.Decision != "deny" || tr.Reason != "unknown_badge" {
		t.Fatalf("unknown badge: %+v", tr)
	}

	p := newPageClient(t, h)
	p.login(h.staff)
	for _, lang := range []string{"en", "fr"} {
		_, _, body := p.get("/staff", "Accept-Language", lang)
		if !strings.Contains(body, `data-api="POST /api/v1/sessions/`+sess.ID.String()+`/end"`) {
			t.Errorf("%s: no End button for the open session", lang)
		}
		card := regexp.MustCompile(`(?s)<li class="card machine" data-machine="` + sess.MachineID.String() + `".*?</li>`).FindString(body)
		if !strings.Contains(card, `data-state="in_use"`) || !strings.Contains(card, "Alice Maker") {
			t.Errorf("%s: the machine of the open session is not shown in use by alice:\n%s", lang, card)
		}
		words := map[string]string{"en": "lacks a training this machine requires", "fr": "Il manque au membre une formation"}[lang]
		if !strings.Contains(body, words) {
			t.Errorf("%s: the refused tap's reason is not in words", lang)
		}
		if !strings.Contains(body, `data-demo-tap`) {
			t.Errorf("%s: no demo tap form though the server simulates taps", lang)
		}
	}
	_, _, body := p.get("/staff", "Accept-Language", "en")
	hash := regexp.MustCompile(`data-enrol data-hash="([0-9a-f]+)"`).FindStringSubmatch(body)
	if hash == nil {
		t.Fatal("no enrol form for the unknown badge")
	}
	h.do(t, "POST", "/api/v1/members/"+h.bob.ID.String()+"/badges", h.staff.Token, map[string]any{"hash": hash[1]}).want(t, http.StatusCreated, "")
	h.do(t, "POST", "/api/v1/devices/"+laserDev.ID+"/tap", h.staff.Token, map[string]any{"uid": "04DEADBEEF0001"}).decode(t, &tr)
	if tr.Reason != "training_required" {
		t.Errorf("the enrolled badge is still unknown: %+v", tr)
	}
	// The audit API lists the refused taps alone.
	var evs []fablab.AuditEvent
	h.do(t, "GET", "/api/v1/audit?kind=tap&action=denied", h.staff.Token, nil).decode(t, &evs)
	if len(evs) != 3 {
		t.Errorf("refused taps: %d, want 3", len(evs))
	}
	for _, e := range evs {
		if e.Action != "denied" {
			t.Errorf("action=denied lists %+v", e)
		}
	}
	// Without simulated taps there is no demo form.
	h2 := newAPIHarness(t)
	p2 := newPageClient(t, h2)
	p2.login(h2.admin)
	if _, _, body := p2.get("/staff"); strings.Contains(body, "data-demo-tap") {
		t.Error("the demo tap form shows on a lab that does not simulate taps")
	}
}

func TestAuditPage(t *testing.T) {
	h := newAPIHarness(t)
	ctx := context.Background()
	now := h.clock.Now()
	var evs []fablab.AuditEvent
	for i := range auditPerPage + 10 {
		evs = append(evs, fablab.AuditEvent{At: now.Add(-apiMinutes(i % 7)), Kind: fablab.AuditTap, Action: "denied", Reason: "in_use", MemberID: h.bob.ID, MachineID: h.laser.ID})
	}
	evs = append(evs, fablab.AuditEvent{At: now, Kind: fablab.AuditSession, Action: "ended", Reason: fablab.EndStaff, MemberID: h.alice.ID, ActorID: h.staff.ID, MachineID: h.printer.ID})
	if err := h.store.Audit(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	p := newPageClient(t, h)
	p.login(h.staff)
	rows := regexp.MustCompile(`<tr data-event="(\d+)">`)
	_, _, body := p.get("/staff/audit?member=bob%40fablab.test", "Accept-Language", "en")
	first := rows.FindAllStringSubmatch(body, -1)
	if len(first) != auditPerPage || strings.Contains(body, "Ended by staff") || !strings.Contains(body, "Someone else is using the machine.") {
		t.Fatalf("bob's events, first page: %d rows (want %d), or alice's event, or no reason in words", len(first), auditPerPage)
	}
	next := regexp.MustCompile(`rel="next" href="([^"]+)"`).FindStringSubmatch(body)
	if next == nil {
		t.Fatal("no link to older events")
	}
	_, _, body = p.get(strings.ReplaceAll(next[1], "&amp;", "&"), "Accept-Language", "en")
	second := rows.FindAllStringSubmatch(body, -1)
	if len(second) != 10 {
		t.Fatalf("second page: %d rows, want 10", len(second))
	}
	seen := map[string]bool{}
	for _, r := range append(first, second...) {
		if seen[r[1]] {
			t.Errorf("event %s shown twice", r[1])
		}
		seen[r[1]] = true
	}
	_, _, body = p.get("/staff/audit?kind=session", "Accept-Language", "fr")
	if got := rows.FindAllStringSubmatch(body, -1); len(got) != 1 || !strings.Contains(body, "Terminée par l&#39;équipe") || !strings.Contains(body, "Sam Staff") {
		t.Errorf("the session filter in French: %d rows, or no words for the end reason, or no actor", len(got))
	}
	if _, _, body := p.get("/staff/audit?member=nobody%40fablab.test", "Accept-Language", "en"); !strings.Contains(body, "No member has this email address.") {
		t.Error("an unknown member's email is not explained")
	}
	if status, _, _ := p.get("/staff/audit?from=yesterday"); status != http.StatusBadRequest {
		t.Errorf("a bad date: %d, want 400", status)
	}
}

// TestStaffRowsEscape: the rows written in Go escape what members typed.
func TestStaffRowsEscape(t *testing.T) {
	h := newAPIHarness(t)
	ctx := context.Background()
	evil := `<img src=x onerror=alert(1)> "Eve" & co`
	m, err := h.store.CreateMember(ctx, fablab.Member{Email: "eve@fablab.test", Name: evil, Group: "student"})
	if err != nil {
		t.Fatal(err)
	}
	h.seedBooking(t, h.printer.ID, &apiAccount{Member: m}, apiAt(0, 10, 0), apiAt(0, 11, 0))
	if err := h.store.Audit(ctx, fablab.AuditEvent{At: h.clock.Now(), Kind: fablab.AuditTap, Action: "denied", MemberID: m.ID, DeviceID: `<b>dev</b>`}); err != nil {
		t.Fatal(err)
	}
	p := newPageClient(t, h)
	p.login(h.staff)
	for _, path := range []string{"/staff/members", "/staff", "/staff/audit"} {
		_, _, body := p.get(path, "Accept-Language", "en")
		if strings.Contains(body, "<img src=x") || strings.Contains(body, "<b>dev") {
			t.Errorf("%s writes a member's or device's text unescaped", path)
		}
		if !strings.Contains(body, "&lt;img src=x onerror=alert(1)&gt; &#34;Eve&#34; &amp; co") {
			t.Errorf("%s does not show the member's name", path)
		}
	}
}
