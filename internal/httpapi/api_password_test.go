package httpapi

import (
	"net/http"
	"testing"

	"github.com/fabgate/fabgate/internal/fablab"
)

// TestAPIChangePassword: a member changes their own password by giving the
// current one; errors name their field; every other session ends and the
// answer carries a working new one.
func TestAPIChangePassword(t *testing.T) {
	h := newAPIHarness(t)
	other, _ := h.login(t, h.bob) // a second session of bob's, e.g. on his phone
	path := "/api/v1/me/password"

	r := h.do(t, "POST", path, h.bob.Token, map[string]string{"current_password": "not bob's", "new_password": "a brand new one"})
	r.want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)
	if p := r.problem(t); p.Field != "current_password" {
		t.Errorf("wrong current password: field %q, want current_password", p.Field)
	}
	r = h.do(t, "POST", path, h.bob.Token, map[string]string{"current_password": h.bob.Password, "new_password": "short"})
	r.want(t, http.StatusBadRequest, fablab.EINVALID)
	if p := r.problem(t); p.Field != "new_password" {
		t.Errorf("weak new password: field %q, want new_password", p.Field)
	}
	r = h.do(t, "POST", path, h.bob.Token, map[string]string{"new_password": "a brand new one"})
	r.want(t, http.StatusBadRequest, fablab.EINVALID)
	if p := r.problem(t); p.Field != "current_password" {
		t.Errorf("no current password: field %q, want current_password", p.Field)
	}
	// The refusals changed nothing: the old password still logs in.
	h.login(t, h.bob)

	r = h.do(t, "POST", path, h.bob.Token, map[string]string{"current_password": h.bob.Password, "new_password": "a brand new one"})
	r.want(t, http.StatusOK, "")
	var lr loginResponse
	r.decode(t, &lr)
	if lr.Token == "" || lr.CSRFToken == "" || lr.Member.ID != h.bob.ID {
		t.Fatalf("answer %+v: want a new session of bob's", lr)
	}
	if c := cookieNamed(r.cookie, sessionCookie); c == nil || c.Value != lr.Token {
		t.Errorf("the answer does not set the new session cookie")
	}
	for _, old := range []string{h.bob.Token, other} {
		h.do(t, "GET", "/api/v1/me", old, nil).want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)
	}
	h.do(t, "GET", "/api/v1/me", lr.Token, nil).want(t, http.StatusOK, "")
	h.do(t, "POST", "/api/v1/auth/login", "", map[string]string{"email": h.bob.Email, "password": h.bob.Password}).want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)
	h.do(t, "POST", "/api/v1/auth/login", "", map[string]string{"email": h.bob.Email, "password": "a brand new one"}).want(t, http.StatusOK, "")
}

// TestAPIChangePasswordThrottled: guessing the current password from a
// stolen session meets the login throttle.
func TestAPIChangePasswordThrottled(t *testing.T) {
	h := newAPIHarness(t)
	var last apiResp
	for i := 0; i < 30; i++ {
		last = h.do(t, "POST", "/api/v1/me/password", h.alice.Token, map[string]string{"current_password": "guess", "new_password": "a brand new one"})
		if last.status == http.StatusTooManyRequests {
			break
		}
		last.want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)
	}
	if last.status != http.StatusTooManyRequests || last.header.Get("Retry-After") == "" {
		t.Fatalf("30 wrong current passwords: last answer %d, want 429 with Retry-After", last.status)
	}
}

func cookieNamed(cs []*http.Cookie, name string) *http.Cookie {
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	return nil
}
