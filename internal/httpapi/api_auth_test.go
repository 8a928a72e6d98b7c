package httpapi

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/fablab"
)

func apiLoginBody(email, password string) map[string]string {
	return map[string]string{"email": email, "password": password}
}

func apiCookie(res apiResp, name string) *http.Cookie {
	for _, c := range res.cookie {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// TestAPILogin checks the login response and its cookies.
func TestAPILogin(t *testing.T) {
	h := newAPIHarness(t)
	res := h.do(t, "POST", "/api/v1/auth/login", "", apiLoginBody("  Alice@FabLab.test ", h.alice.Password))
	res.want(t, http.StatusOK, "")
	var lr struct {
		Token     string         `json:"token"`
		ExpiresAt time.Time      `json:"expires_at"`
		CSRFToken string         `json:"csrf_token"`
		Member    map[string]any `json:"member"`
	}
	res.decode(t, &lr)
	if len(lr.Token) < 40 || len(lr.CSRFToken) < 40 || lr.Token == lr.CSRFToken {
		t.Errorf("token %q, csrf_token %q", lr.Token, lr.CSRFToken)
	}
	if want := apiStart.Add(12 * time.Hour); !lr.ExpiresAt.Equal(want) {
		t.Errorf("expires_at %s, want %s", lr.ExpiresAt, want)
	}
	if lr.Member["id"] != h.alice.ID.String() || lr.Member["role"] != "maker" {
		t.Errorf("member %v", lr.Member)
	}
	for k := range lr.Member {
		if k == "password_hash" || k == "PasswordHash" {
			t.Errorf("the login response shows %s", k)
		}
	}

	ck := apiCookie(res, sessionCookie)
	if ck == nil {
		t.Fatalf("no %s cookie in %v", sessionCookie, res.header["Set-Cookie"])
	}
	if ck.Value != lr.Token || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Secure || ck.Path != "/" || ck.MaxAge != 12*3600 {
		t.Errorf("session cookie %+v: want the token, HttpOnly, SameSite=Lax, not Secure over plain HTTP, Path=/, Max-Age=43200", ck)
	}
	if csrf := apiCookie(res, csrfCookie); csrf == nil || csrf.Value != lr.CSRFToken || csrf.HttpOnly {
		t.Errorf("csrf cookie %+v: want the csrf_token, readable by scripts", csrf)
	}

	// The token works, and so does each login's own token.
	me := h.do(t, "GET", "/api/v1/me", lr.Token, nil)
	me.want(t, http.StatusOK, "")
	var m fablab.Member
	me.decode(t, &m)
	if m.ID != h.alice.ID {
		t.Errorf("me is %s, want %s", m.ID, h.alice.ID)
	}
	h.do(t, "GET", "/api/v1/me", h.alice.Token, nil).want(t, http.StatusOK, "")

	t.Run("wrong password", func(t *testing.T) {
		res := h.do(t, "POST", "/api/v1/auth/login", "", apiLoginBody(h.alice.Email, "wrong password"))
		res.want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)
		if len(res.cookie) != 0 {
			t.Errorf("a failed login sets cookies %v", res.cookie)
		}
	})
	t.Run("unknown account looks the same", func(t *testing.T) {
		a := h.do(t, "POST", "/api/v1/auth/login", "", apiLoginBody("nobody@fablab.test", "wrong password"))
		a.want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)
		b := h.do(t, "POST", "/api/v1/auth/login", "", apiLoginBody(h.bob.Email, "wrong password"))
		if a.problem(t).Detail != b.problem(t).Detail {
			t.Errorf("unknown account %q, wrong password %q: the messages tell them apart", a.problem(t).Detail, b.problem(t).Detail)
		}
	})
	t.Run("account without a password", func(t *testing.T) {
		apiSeedMember(t, h.store, "invited@fablab.test", "Invited", fablab.RoleMaker, "student", "")
		h.do(t, "POST", "/api/v1/auth/login", "", apiLoginBody("invited@fablab.test", "")).want(t, 400, fablab.EINVALID)
		h.do(t, "POST", "/api/v1/auth/login", "", apiLoginBody("invited@fablab.test", "any password")).want(t, 401, fablab.EUNAUTHORIZED)
	})
}

// TestAPILoginThrottlePerAddress: 20 failures from one address, spread over
// accounts, lock that address out for every account.
func TestAPILoginThrottlePerAddress(t *testing.T) {
	h := newAPIHarness(t)
	emails := []string{h.staff.Email, h.bob.Email, h.admin.Email}
	for i := 0; i < 20; i++ {
		email := fmt.Sprintf("guess%d@fablab.test", i)
		if i < len(emails) {
			email = emails[i]
		}
		h.do(t, "POST", "/api/v1/auth/login", "", apiLoginBody(email, "wrong password")).want(t, 401, fablab.EUNAUTHORIZED)
	}
	res := h.do(t, "POST", "/api/v1/auth/login", "", apiLoginBody(h.alice.Email, h.alice.Password))
	res.want(t, http.StatusTooManyRequests, fablab.ETOOMANY)
	if secs, err := strconv.Atoi(res.header.Get("Retry-After")); err != nil || secs < 1 {
		t.Errorf("Retry-After %q", res.header.Get("Retry-After"))
	}
	// No proxy is trusted, so forwarding headers do not make a new address.
	for _, hd := range []string{"X-Forwarded-For", "X-Real-IP"} {
		spoofed := apiReq{method: "POST", path: "/api/v1/auth/login", body: apiLoginBody(h.alice.Email, h.alice.Password),
			header: http.Header{hd: {"203.0.113.7"}}}
		h.send(t, spoofed).want(t, http.StatusTooManyRequests, fablab.ETOOMANY)
	}
	h.clock.Advance(15 * time.Minute)
	h.do(t, "POST", "/api/v1/auth/login", "", apiLoginBody(h.alice.Email, h.alice.Password)).want(t, http.StatusOK, "")
}

// TestAPICookieCSRF: with the session cookie, unsafe requests must echo the
// CSRF secret; bearer tokens need none.
func TestAPICookieCSRF(t *testing.T) {
	h := newAPIHarness(t)
	res := h.do(t, "POST", "/api/v1/auth/login", "", apiLoginBody(h.alice.Email, h.alice.Password))
	res.want(t, http.StatusOK, "")
	var lr loginResponse
	res.decode(t, &lr)
	session := apiCookie(res, sessionCookie)
	if session == nil {
		t.Fatal("no session cookie")
	}
	withCookie := func(method, path string, body any, csrf string) apiReq {
		hd := http.Header{"Cookie": {session.Name + "=" + session.Value}}
		if csrf != "" {
			hd.Set(csrfHeader, csrf)
		}
		return apiReq{method: method, path: path, body: body, header: hd}
	}
	slot := func() map[string]any {
		start := h.nextSlot(apiAt(1, 9, 0))
		return apiBookingBody(h.printer.ID, start, start.Add(apiMinutes(30)))
	}

	t.Run("safe requests need no header", func(t *testing.T) {
		h.send(t, withCookie("GET", "/api/v1/me", nil, "")).want(t, http.StatusOK, "")
		h.send(t, withCookie("GET", "/api/v1/bookings", nil, "")).want(t, http.StatusOK, "")
	})
	t.Run("POST without the header", func(t *testing.T) {
		before := h.state(t)
		h.send(t, withCookie("POST", "/api/v1/bookings", slot(), "")).want(t, http.StatusForbidden, fablab.EFORBIDDEN)
		h.unchanged(t, before)
	})
	t.Run("POST with a wrong header", func(t *testing.T) {
		before := h.state(t)
		h.send(t, withCookie("POST", "/api/v1/bookings", slot(), lr.CSRFToken+"x")).want(t, http.StatusForbidden, fablab.EFORBIDDEN)
		h.send(t, withCookie("POST", "/api/v1/bookings", slot(), h.bob.CSRF)).want(t, http.StatusForbidden, fablab.EFORBIDDEN)
		h.unchanged(t, before)
	})
	var booked fablab.Booking
	t.Run("POST with the header", func(t *testing.T) {
		res := h.send(t, withCookie("POST", "/api/v1/bookings", slot(), lr.CSRFToken))
		res.want(t, http.StatusCreated, "")
		res.decode(t, &booked)
	})
	t.Run("DELETE needs it too", func(t *testing.T) {
		h.send(t, withCookie("DELETE", "/api/v1/bookings/"+booked.ID.String(), nil, "")).want(t, http.StatusForbidden, fablab.EFORBIDDEN)
		h.send(t, withCookie("DELETE", "/api/v1/bookings/"+booked.ID.String(), nil, lr.CSRFToken)).want(t, http.StatusOK, "")
	})
	t.Run("bearer requests need no header", func(t *testing.T) {
		h.send(t, apiReq{method: "POST", path: "/api/v1/bookings", token: lr.Token, body: slot()}).want(t, http.StatusCreated, "")
	})
	t.Run("logout by cookie needs the header", func(t *testing.T) {
		h.send(t, withCookie("POST", "/api/v1/auth/logout", nil, "")).want(t, http.StatusForbidden, fablab.EFORBIDDEN)
		h.send(t, withCookie("GET", "/api/v1/me", nil, "")).want(t, http.StatusOK, "")
		h.send(t, withCookie("POST", "/api/v1/auth/logout", nil, lr.CSRFToken)).want(t, http.StatusNoContent, "")
		h.send(t, withCookie("GET", "/api/v1/me", nil, "")).want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)
	})
}

// TestAPITokenLifetime: tokens expire with the clock and end at logout.
func TestAPITokenLifetime(t *testing.T) {
	h := newAPIHarness(t)
	t.Run("expiry", func(t *testing.T) {
		h.clock.Advance(12*time.Hour - time.Second)
		h.do(t, "GET", "/api/v1/me", h.alice.Token, nil).want(t, http.StatusOK, "")
		h.clock.Advance(time.Second)
		h.do(t, "GET", "/api/v1/me", h.alice.Token, nil).want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)
		start := apiAt(2, 10, 0)
		h.book(t, h.alice, h.printer.ID, start, start.Add(time.Hour)).want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)
		// A new login works again.
		h.alice.Token, h.alice.CSRF = h.login(t, h.alice)
		h.do(t, "GET", "/api/v1/me", h.alice.Token, nil).want(t, http.StatusOK, "")
	})
	t.Run("logout", func(t *testing.T) {
		other, _ := h.login(t, h.bob)
		token, _ := h.login(t, h.bob)
		res := h.do(t, "POST", "/api/v1/auth/logout", token, nil)
		res.want(t, http.StatusNoContent, "")
		if ck := apiCookie(res, sessionCookie); ck == nil || ck.MaxAge >= 0 || ck.Value != "" {
			t.Errorf("logout does not clear the session cookie: %+v", ck)
		}
		h.do(t, "GET", "/api/v1/me", token, nil).want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)
		h.do(t, "POST", "/api/v1/auth/logout", token, nil).want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)
		// Only that session ended.
		h.do(t, "GET", "/api/v1/me", other, nil).want(t, http.StatusOK, "")
	})
}

// TestAPIRoleAssignment: staff manage makers; only admins make staff and admins.
func TestAPIRoleAssignment(t *testing.T) {
	h := newAPIHarness(t)
	create := func(as *apiAccount, role string) apiResp {
		t.Helper()
		group := "staff"
		if role == "maker" {
			group = "student"
		}
		return h.do(t, "POST", "/api/v1/members", as.Token, map[string]any{
			"email": fmt.Sprintf("%s%d@fablab.test", role, h.uniq()), "name": "New " + role, "role": role, "group": group, "password": "a long password"})
	}
	for _, role := range []string{"staff", "admin"} {
		t.Run("staff cannot create "+role, func(t *testing.T) {
			before := h.state(t)
			create(h.staff, role).want(t, http.StatusForbidden, fablab.EFORBIDDEN)
			h.unchanged(t, before)
		})
		t.Run("admin can create "+role, func(t *testing.T) {
			res := create(h.admin, role)
			res.want(t, http.StatusCreated, "")
			var m fablab.Member
			res.decode(t, &m)
			if string(m.Role) != role {
				t.Errorf("created %+v", m)
			}
			// The new account can log in and has the role.
			a := &apiAccount{Member: m, Password: "a long password"}
			a.Token, _ = h.login(t, a)
			h.do(t, "GET", "/api/v1/members", a.Token, nil).want(t, http.StatusOK, "")
		})
	}
	t.Run("staff can create a maker", func(t *testing.T) {
		create(h.staff, "maker").want(t, http.StatusCreated, "")
	})
	t.Run("a maker cannot create anyone", func(t *testing.T) {
		create(h.alice, "maker").want(t, http.StatusForbidden, fablab.EFORBIDDEN)
	})
	t.Run("staff cannot promote a maker", func(t *testing.T) {
		before := h.state(t)
		h.do(t, "PATCH", "/api/v1/members/"+h.bob.ID.String(), h.staff.Token, map[string]any{"role": "staff"}).want(t, 403, fablab.EFORBIDDEN)
		h.unchanged(t, before)
	})
	t.Run("staff cannot change an admin", func(t *testing.T) {
		before := h.state(t)
		h.do(t, "PATCH", "/api/v1/members/"+h.admin.ID.String(), h.staff.Token, map[string]any{"role": "maker"}).want(t, 403, fablab.EFORBIDDEN)
		h.do(t, "PATCH", "/api/v1/members/"+h.admin.ID.String(), h.staff.Token, map[string]any{"password": "taken over!"}).want(t, 403, fablab.EFORBIDDEN)
		h.unchanged(t, before)
	})
	t.Run("admin can promote a maker", func(t *testing.T) {
		h.do(t, "PATCH", "/api/v1/members/"+h.bob.ID.String(), h.admin.Token, map[string]any{"role": "staff"}).want(t, 200, "")
		// The role change ends bob's sessions and his maker's password (staff
		// may have chosen it); an admin's reset link is his way in, and his
		// next session has the role.
		h.do(t, "GET", "/api/v1/members", h.bob.Token, nil).want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)
		h.do(t, "POST", "/api/v1/auth/login", "", apiLoginBody(h.bob.Email, h.bob.Password)).want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)
		res := h.do(t, "POST", "/api/v1/members/"+h.bob.ID.String()+"/password-reset", h.admin.Token, nil)
		res.want(t, http.StatusCreated, "")
		var reset passwordResetResponse
		res.decode(t, &reset)
		h.do(t, "POST", "/api/v1/auth/reset-password", "", map[string]string{"token": reset.Token, "password": h.bob.Password}).want(t, http.StatusNoContent, "")
		token, _ := h.login(t, h.bob)
		h.do(t, "GET", "/api/v1/members", token, nil).want(t, http.StatusOK, "")
	})
}
