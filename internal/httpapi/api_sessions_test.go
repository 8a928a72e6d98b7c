package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/fablab"
)

// Parallel wrong guesses cannot slip past the throttle while their
// passwords are being checked (with a hashing slot for each of them).
func TestAPIThrottleHoldsUnderParallelGuesses(t *testing.T) {
	h := newAPIHarness(t)
	h.reconfigure(t, func(c *Config) { c.HashConcurrency = 64 })
	const n = 40
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r, err := apiRoundTrip(h.client, h.srv.URL, apiReq{method: "POST", path: "/api/v1/auth/login", body: apiLoginBody(h.bob.Email, "not the password")})
			if err != nil {
				t.Error(err)
				return
			}
			statuses <- r.status
		}()
	}
	close(start)
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for st := range statuses {
		count[st]++
	}
	if count[http.StatusUnauthorized] != 5 || count[http.StatusTooManyRequests] != n-5 {
		t.Fatalf("statuses %v, want exactly 5 × 401 and %d × 429", count, n-5)
	}
}

// Successful logins do not count against the client's address.
func TestAPIThrottleIgnoresSuccesses(t *testing.T) {
	h := newAPIHarness(t)
	for i := 0; i < 30; i++ {
		h.do(t, "POST", "/api/v1/auth/login", "", apiLoginBody(h.alice.Email, h.alice.Password)).want(t, http.StatusOK, "")
	}
}

func TestAPILoginRefusesOversizedEmail(t *testing.T) {
	h := newAPIHarness(t)
	h.do(t, "POST", "/api/v1/auth/login", "", apiLoginBody(strings.Repeat("a", 300)+"@x.org", "whatever")).want(t, http.StatusBadRequest, fablab.EINVALID)
}

// A new password or a suspension ends the member's sessions; reactivation
// does not bring them back.
func TestAPISessionsEndOnPasswordChangeAndSuspension(t *testing.T) {
	h := newAPIHarness(t)
	me := func(tok string) apiResp { return h.do(t, "GET", "/api/v1/me", tok, nil) }
	patch := func(body map[string]any) {
		h.do(t, "PATCH", "/api/v1/members/"+h.alice.ID.String(), h.staff.Token, body).want(t, http.StatusOK, "")
	}

	old := h.alice.Token
	patch(map[string]any{"name": "Alice M."}) // other changes keep sessions
	me(old).want(t, http.StatusOK, "")

	patch(map[string]any{"password": "a brand new password"})
	me(old).want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)
	h.do(t, "POST", "/api/v1/auth/login", "", apiLoginBody(h.alice.Email, h.alice.Password)).want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)
	h.alice.Password = "a brand new password"
	tok, _ := h.login(t, h.alice)

	patch(map[string]any{"status": fablab.StatusSuspended})
	me(tok).want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)
	h.do(t, "POST", "/api/v1/auth/login", "", apiLoginBody(h.alice.Email, h.alice.Password)).want(t, http.StatusForbidden, fablab.EFORBIDDEN)

	patch(map[string]any{"status": fablab.StatusActive})
	me(tok).want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)
	tok, _ = h.login(t, h.alice)
	me(tok).want(t, http.StatusOK, "")
}

// An expired token is removed from the store when it is presented.
func TestAPIExpiredTokenIsRemoved(t *testing.T) {
	h := newAPIHarness(t)
	key := auth.TokenKey(h.bob.Token)
	h.clock.Advance(13 * time.Hour)
	h.do(t, "GET", "/api/v1/me", h.bob.Token, nil).want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)
	if _, err := h.store.TokenByKey(t.Context(), key); err == nil || !strings.Contains(err.Error(), "ended") {
		t.Fatalf("the expired token is still stored (%v)", err)
	}
}

func TestAPISecureCookiesBehindProxy(t *testing.T) {
	h := newAPIHarness(t)
	s, err := New(Config{Store: h.store, Now: h.clock.Now, Registry: prometheus.NewRegistry(), Password: apiCheapPassword, SecureCookies: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	r := apiSendWith(t, srv.Client(), srv.URL, apiReq{method: "POST", path: "/api/v1/auth/login", body: apiLoginBody(h.alice.Email, h.alice.Password)})
	r.want(t, http.StatusOK, "")
	for _, name := range []string{sessionCookie, csrfCookie} {
		if ck := apiCookie(r, name); ck == nil || !ck.Secure {
			t.Errorf("cookie %s is not Secure: %+v", name, ck)
		}
	}
}

func TestAPIStaticServesFilesNotListings(t *testing.T) {
	h := newAPIHarness(t)
	if r := h.do(t, "GET", "/static/fabgate.css", "", nil); r.status != http.StatusOK {
		t.Fatalf("GET /static/fabgate.css: %d", r.status)
	}
	for _, p := range []string{"/static/", "/static/vendor/", "/static/vendor/htmx.org/"} {
		if r := h.do(t, "GET", p, "", nil); r.status != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404 (no listings)", p, r.status)
		}
	}
}

func TestClientKey(t *testing.T) {
	tests := []struct{ in, want string }{
		{"192.0.2.7", "192.0.2.7"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"},
		{"::ffff:192.0.2.7", "::ffff:192.0.2.7"},
		{"not an ip", "not an ip"},
	}
	for _, tt := range tests {
		if got := clientKey(tt.in); got != tt.want {
			t.Errorf("clientKey(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// A hash made with other parameters is upgraded at login, and the member's
// sessions survive it.
func TestAPILoginUpgradesOldHashes(t *testing.T) {
	h := newAPIHarness(t)
	old := auth.Params{MemoryKiB: 32, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	hash, err := auth.HashPassword(old, h.bob.Password)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.store.RehashPassword(t.Context(), h.bob.ID, mustMemberHash(t, h, h.bob.ID), hash); err != nil {
		t.Fatal(err)
	}
	h.login(t, h.bob)
	if got := mustMemberHash(t, h, h.bob.ID); auth.NeedsRehash(got, apiCheapPassword) {
		t.Fatalf("the hash was not upgraded: %s", got)
	}
	h.do(t, "GET", "/api/v1/me", h.bob.Token, nil).want(t, http.StatusOK, "")
}

func mustMemberHash(t *testing.T, h *apiHarness, id fablab.ID) string {
	t.Helper()
	m, err := h.store.Member(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return m.PasswordHash
}
