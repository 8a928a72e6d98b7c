package httpapi

import (
	"net/http"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/fablab"
)

// A member created without a password gets in through a one-time reset.
func TestAPIPasswordReset(t *testing.T) {
	h := newAPIHarness(t)
	r := h.do(t, "POST", "/api/v1/members", h.staff.Token, map[string]any{"email": "new@fablab.test", "name": "New Maker", "group": "student"})
	r.want(t, http.StatusCreated, "")
	var m fablab.Member
	r.decode(t, &m)

	issue := func(as *apiAccount, id fablab.ID) (string, apiResp) {
		r := h.do(t, "POST", "/api/v1/members/"+id.String()+"/password-reset", as.Token, nil)
		var out passwordResetResponse
		if r.status == http.StatusCreated {
			r.decode(t, &out)
			if want := apiStart.Add(72 * time.Hour); !out.ExpiresAt.Equal(want) || len(out.Token) < 40 {
				t.Fatalf("reset %+v, want a token expiring at %s", out, want)
			}
		}
		return out.Token, r
	}
	use := func(token, password string) apiResp {
		return h.do(t, "POST", "/api/v1/auth/reset-password", "", map[string]string{"token": token, "password": password})
	}
	login := func(password string) apiResp {
		return h.do(t, "POST", "/api/v1/auth/login", "", apiLoginBody("new@fablab.test", password))
	}

	login("anything at all").want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)
	tok, _ := issue(h.staff, m.ID)
	use(tok, "short").want(t, http.StatusBadRequest, fablab.EINVALID)
	use(tok, "my own new password").want(t, http.StatusNoContent, "")
	login("my own new password").want(t, http.StatusOK, "")
	use(tok, "another password").want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED) // used
	use("not-a-token", "another password").want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)

	t.Run("expires after 72 hours", func(t *testing.T) {
		tok, _ := issue(h.staff, m.ID)
		h.clock.Advance(72 * time.Hour)
		defer h.clock.Set(apiStart)
		use(tok, "too late password").want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)
	})
	t.Run("void once the password changes", func(t *testing.T) {
		tok, _ := issue(h.staff, m.ID)
		h.do(t, "PATCH", "/api/v1/members/"+m.ID.String(), h.staff.Token, map[string]any{"password": "set by the staff"}).want(t, http.StatusOK, "")
		use(tok, "stale link password").want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)
		login("set by the staff").want(t, http.StatusOK, "")
	})
	t.Run("only admins reset staff and admin accounts", func(t *testing.T) {
		if _, r := issue(h.staff, h.admin.ID); r.status != http.StatusForbidden {
			t.Fatalf("staff resetting an admin: %d", r.status)
		}
		if _, r := issue(h.admin, h.staff.ID); r.status != http.StatusCreated {
			t.Fatalf("admin resetting staff: %d", r.status)
		}
	})
}

// A lost badge is removed and can be enrolled to someone else.
func TestAPIRemoveBadge(t *testing.T) {
	h := newAPIHarness(t)
	r := h.do(t, "POST", "/api/v1/members/"+h.alice.ID.String()+"/badges", h.staff.Token, map[string]string{"uid": "04A2B3C4D5E6F7"})
	r.want(t, http.StatusCreated, "")
	var b fablab.Badge
	r.decode(t, &b)
	h.do(t, "POST", "/api/v1/members/"+h.bob.ID.String()+"/badges", h.staff.Token, map[string]string{"uid": "04a2b3c4d5e6f7"}).want(t, http.StatusConflict, "badge_taken")
	h.do(t, "DELETE", "/api/v1/members/"+h.bob.ID.String()+"/badges/"+b.Hash, h.staff.Token, nil).want(t, http.StatusNotFound, fablab.ENOTFOUND)
	h.do(t, "DELETE", "/api/v1/members/"+h.alice.ID.String()+"/badges/"+b.Hash, h.staff.Token, nil).want(t, http.StatusNoContent, "")
	h.do(t, "DELETE", "/api/v1/members/"+h.alice.ID.String()+"/badges/"+b.Hash, h.staff.Token, nil).want(t, http.StatusNotFound, fablab.ENOTFOUND)
	h.do(t, "POST", "/api/v1/members/"+h.bob.ID.String()+"/badges", h.staff.Token, map[string]string{"uid": "04a2b3c4d5e6f7"}).want(t, http.StatusCreated, "")
	var left []fablab.Badge
	h.do(t, "GET", "/api/v1/members/"+h.alice.ID.String()+"/badges", h.staff.Token, nil).decode(t, &left)
	if len(left) != 0 {
		t.Fatalf("alice still has %d badges", len(left))
	}
}
