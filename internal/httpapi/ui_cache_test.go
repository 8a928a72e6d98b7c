package httpapi

import (
	"html/template"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

var (
	pageNonce = regexp.MustCompile(`name="csp-nonce" content="([^"]+)"`)
	pageMain  = regexp.MustCompile(`(?s)<main id="main" tabindex="-1">.*</main>`)
)

// cacheProbe fetches path and reports whether the pages' cache served it.
func cacheProbe(t *testing.T, h *apiHarness, p *pageClient, path string, header ...string) (body string, hit bool) {
	t.Helper()
	hits := h.server.pages.hits.Load()
	status, _, body := p.get(path, header...)
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d", path, status)
	}
	return body, h.server.pages.hits.Load() > hits
}

// TestPageCacheFollowsChanges: a page reloaded while nothing changed comes
// from the cache with a fresh layout (nonce), and any write to the store,
// another viewer, another language, another query or the next minute
// renders it afresh.
func TestPageCacheFollowsChanges(t *testing.T) {
	h := newAPIHarness(t)
	st := newPageClient(t, h)
	st.login(h.staff)

	first, hit := cacheProbe(t, h, st, "/staff/members", "Accept-Language", "en")
	if hit {
		t.Fatal("the first view of a page came from the cache")
	}
	again, hit := cacheProbe(t, h, st, "/staff/members", "Accept-Language", "en")
	if !hit {
		t.Fatal("a page reloaded with nothing changed was rendered again")
	}
	if pageMain.FindString(first) != pageMain.FindString(again) {
		t.Error("the cached content differs from the content it keeps")
	}
	if n1, n2 := pageNonce.FindStringSubmatch(first), pageNonce.FindStringSubmatch(again); n1 == nil || n2 == nil || n1[1] == n2[1] {
		t.Error("the layout around cached content is not written afresh: the nonce repeats")
	}

	// A write through the API shows at once.
	r := h.do(t, "POST", "/api/v1/members", h.staff.Token, map[string]any{"email": "zoe@fablab.test", "name": "Zoé Newcomer", "group": "student"})
	r.want(t, http.StatusCreated, "")
	body, hit := cacheProbe(t, h, st, "/staff/members", "Accept-Language", "en")
	if hit || !strings.Contains(body, "Zoé Newcomer") {
		t.Errorf("after a member was created the page came from the cache (%v) or lacks them", hit)
	}

	// Language, query and viewer are each a page of their own.
	if body, hit := cacheProbe(t, h, st, "/staff/members", "Accept-Language", "fr"); hit || !strings.Contains(body, `<html lang="fr"`) {
		t.Errorf("the French page came from the English one's cache (%v)", hit)
	}
	if _, hit := cacheProbe(t, h, st, "/staff/members?q=zo", "Accept-Language", "en"); hit {
		t.Error("a search came from the cache of the whole list")
	}
	ad := newPageClient(t, h)
	ad.login(h.admin)
	if _, hit := cacheProbe(t, h, ad, "/staff/members", "Accept-Language", "en"); hit {
		t.Error("an admin was served the page cached for staff (its forms differ)")
	}

	// Makers see their own bookings only, cached or not.
	start := apiAt(4, 10, 0)
	h.book(t, h.alice, h.printer.ID, start, start.Add(time.Hour)).want(t, http.StatusCreated, "")
	alice, bob := newPageClient(t, h), newPageClient(t, h)
	alice.login(h.alice)
	bob.login(h.bob)
	cacheProbe(t, h, alice, "/bookings", "Accept-Language", "en")
	body, hit = cacheProbe(t, h, alice, "/bookings", "Accept-Language", "en")
	if !hit || !strings.Contains(body, "Printer") {
		t.Errorf("alice's bookings reloaded: from the cache %v, want it, with her booking", hit)
	}
	if body, hit := cacheProbe(t, h, bob, "/bookings", "Accept-Language", "en"); hit || strings.Contains(body, `href="/machines/`+h.printer.ID.String()+`"`) {
		t.Errorf("bob's bookings came from alice's cache (%v) or show her booking", hit)
	}

	// The next minute renders afresh: pages follow the clock.
	h.clock.Advance(time.Minute)
	if _, hit := cacheProbe(t, h, alice, "/bookings", "Accept-Language", "en"); hit {
		t.Error("a page cached a minute ago was served again")
	}
}

// TestPageCacheFollowsDevices: a device coming online leaves the
// dashboard's offline list at the next view, though the store did not
// change.
func TestPageCacheFollowsDevices(t *testing.T) {
	h := newAPIAccessHarness(t, false)
	d := h.registerDevice(t, "saw-1", h.printer.ID)
	st := newPageClient(t, h)
	st.login(h.staff)
	offline := `data-offline-device="saw-1"`
	cacheProbe(t, h, st, "/staff", "Accept-Language", "en")
	body, hit := cacheProbe(t, h, st, "/staff", "Accept-Language", "en")
	if !hit || !strings.Contains(body, offline) {
		t.Fatalf("dashboard reloaded: from the cache %v, want it, listing saw-1 offline", hit)
	}
	h.startDevice(t, d)
	body, hit = cacheProbe(t, h, st, "/staff", "Accept-Language", "en")
	if hit || strings.Contains(body, offline) {
		t.Errorf("after saw-1 came online the dashboard came from the cache (%v) or still lists it offline", hit)
	}
}

// TestPageCacheBounded: the cache never keeps more than its bound, and a
// server without it renders every view.
func TestPageCacheBounded(t *testing.T) {
	var p pageCache
	p.max = 1000
	for i := 0; i < 50; i++ {
		p.put(strings.Repeat("k", i+1), cachedPage{html: "<p>0123456789012345678901234567890123456789</p>"})
		if p.bytes > p.max {
			t.Fatalf("after %d entries the cache holds %d bytes, bound %d", i+1, p.bytes, p.max)
		}
	}
	p.put("big", cachedPage{html: template.HTML("<p>" + strings.Repeat("y", 400) + "</p>")})
	if _, ok := p.get("big"); ok {
		t.Error("an entry of more than a quarter of the bound was kept")
	}
	var off pageCache
	off.put("k", cachedPage{html: "<p>x</p>"})
	if _, ok := off.get("k"); ok {
		t.Error("a cache with no bytes kept an entry")
	}
}
