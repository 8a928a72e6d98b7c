package httpapi

import (
	"crypto/subtle"
	"errors"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
)

const (
	sessionCookie = "fabgate_session"
	csrfCookie    = "fabgate_csrf"
	csrfHeader    = "X-CSRF-Token"
	ctxMember     = "fabgate.member"
)

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

type loginResponse struct {
	Token     string        `json:"token"`
	ExpiresAt time.Time     `json:"expires_at"`
	CSRFToken string        `json:"csrf_token"`
	Member    fablab.Member `json:"member"`
}

func (s *Server) login(c *gin.Context) {
	ctx := c.Request.Context()
	var req loginRequest
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	account, addr := fablab.NormalizeEmail(req.Email), clientKey(c.ClientIP())
	if account == "" || req.Password == "" {
		s.fail(c, fablab.Errorf(fablab.EINVALID, "email and password are required"))
		return
	}
	if len(account) > 254 || len(req.Password) > auth.MaxPasswordLen {
		s.fail(c, fablab.Errorf(fablab.EINVALID, "email is limited to 254 bytes and password to %d", auth.MaxPasswordLen))
		return
	}
	release, ok := s.hashSlot(c)
	if !ok {
		return
	}
	defer release()
	finish, wait, err := s.throttle.Begin(account, addr)
	if err != nil {
		c.Header("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		s.fail(c, err)
		return
	}
	m, err := s.store.MemberByEmail(ctx, account)
	ok = false
	switch {
	case fablab.ErrorCode(err) == fablab.ENOTFOUND || (err == nil && m.PasswordHash == ""):
		auth.DummyVerify(s.pw)
	case err != nil:
		finish(false)
		s.fail(c, err)
		return
	default:
		if ok, err = auth.VerifyPassword(m.PasswordHash, req.Password); err != nil {
			finish(false)
			s.fail(c, fablab.Internal(err, "stored password hash of member %s is unreadable", m.ID))
			return
		}
	}
	finish(ok)
	if !ok {
		s.log.Info("login failed", "email", account, "addr", addr)
		s.fail(c, fablab.Errorf(fablab.EUNAUTHORIZED, "wrong email or password"))
		return
	}
	if m.Status != fablab.StatusActive {
		s.fail(c, fablab.Errorf(fablab.EFORBIDDEN, "this account is suspended; ask the lab's staff"))
		return
	}
	if auth.NeedsRehash(m.PasswordHash, s.pw) {
		// Upgrade the stored hash to the current parameters while the password is at hand.
		if h, err := auth.HashPassword(s.pw, req.Password); err == nil {
			if err := s.store.RehashPassword(ctx, m.ID, m.PasswordHash, h); err != nil {
				s.log.Error("rehash password", "member", m.ID, "err", err)
			}
		}
	}
	resp, err := s.startSession(c, m)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.log.Info("login", "member", m.ID)
	c.JSON(http.StatusOK, resp)
}

// startSession stores a new login token for m and sets the session and
// CSRF cookies.
func (s *Server) startSession(c *gin.Context, m fablab.Member) (loginResponse, error) {
	token, csrf := auth.NewToken(), auth.NewToken()
	now := s.now()
	t := bolt.Token{MemberID: m.ID, CSRF: csrf, CreatedAt: now.UTC(), ExpiresAt: now.Add(s.ttl).UTC().Truncate(time.Second)}
	if err := s.store.PutToken(c.Request.Context(), auth.TokenKey(token), t); err != nil {
		return loginResponse{}, err
	}
	secure := s.secureCookies || c.Request.TLS != nil
	maxAge := int(s.ttl / time.Second)
	http.SetCookie(c.Writer, &http.Cookie{Name: sessionCookie, Value: token, Path: "/", MaxAge: maxAge, HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
	http.SetCookie(c.Writer, &http.Cookie{Name: csrfCookie, Value: csrf, Path: "/", MaxAge: maxAge, Secure: secure, SameSite: http.SameSiteLaxMode})
	return loginResponse{Token: token, ExpiresAt: t.ExpiresAt, CSRFToken: csrf, Member: m}, nil
}

// passwordChangeRequest is the body of POST /me/password.
type passwordChangeRequest struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
}

// changePassword lets a signed-in member choose a new password, proving
// they know the current one. The current password is checked as a login
// checks it (in a hashing slot, under the login throttle), since a stolen
// session must not become a way to guess it; the new one follows the
// reset's rule (auth.HashPassword). Every session of the member ends, and
// this request gets a new one, so that the browser that changed it stays
// signed in.
func (s *Server) changePassword(c *gin.Context) {
	ctx := c.Request.Context()
	var req passwordChangeRequest
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if req.CurrentPassword == "" {
		s.fail(c, fablab.Errorf(fablab.EINVALID, "give your current password").On("current_password"))
		return
	}
	if len(req.CurrentPassword) > auth.MaxPasswordLen {
		s.fail(c, fablab.Errorf(fablab.EINVALID, "a password is at most %d bytes long", auth.MaxPasswordLen).On("current_password"))
		return
	}
	if n := len(req.NewPassword); n < auth.MinPasswordLen || n > auth.MaxPasswordLen {
		s.fail(c, fablab.Errorf(fablab.EINVALID, "the new password must be %d to %d bytes long, got %d", auth.MinPasswordLen, auth.MaxPasswordLen, n).On("new_password"))
		return
	}
	me := member(c)
	release, ok := s.hashSlot(c)
	if !ok {
		return
	}
	defer release()
	finish, wait, err := s.throttle.Begin(me.Email, clientKey(c.ClientIP()))
	if err != nil {
		c.Header("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		s.fail(c, err)
		return
	}
	cur, err := s.store.Member(ctx, me.ID)
	if err != nil {
		finish(false)
		s.fail(c, err)
		return
	}
	if cur.PasswordHash == "" {
		auth.DummyVerify(s.pw)
		ok = false
	} else if ok, err = auth.VerifyPassword(cur.PasswordHash, req.CurrentPassword); err != nil {
		finish(false)
		s.fail(c, fablab.Internal(err, "stored password hash of member %s is unreadable", me.ID))
		return
	}
	finish(ok)
	if !ok {
		s.log.Info("password change refused", "member", me.ID)
		s.fail(c, fablab.Errorf(fablab.EUNAUTHORIZED, "the current password is wrong").On("current_password"))
		return
	}
	hash, err := auth.HashPassword(s.pw, req.NewPassword)
	if err != nil {
		s.fail(c, withField(err, "new_password"))
		return
	}
	m, err := s.store.UpdateMember(ctx, me.ID, func(m *fablab.Member) error {
		if m.PasswordHash != cur.PasswordHash {
			return fablab.Errorf(fablab.EUNAUTHORIZED, "the password changed meanwhile: the current password given is no longer it").On("current_password")
		}
		m.PasswordHash = hash
		return nil
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	resp, err := s.startSession(c, m)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.log.Info("password changed", "member", me.ID)
	c.JSON(http.StatusOK, resp)
}

// withField tags a fablab error with the request field it is about.
func withField(err error, field string) error {
	var fe *fablab.Error
	if errors.As(err, &fe) && fe.Code != fablab.EINTERNAL {
		return fe.On(field)
	}
	return err
}

func (s *Server) logout(c *gin.Context) {
	if err := s.store.DeleteToken(c.Request.Context(), c.MustGet("fabgate.token_key").([32]byte)); err != nil {
		s.fail(c, err)
		return
	}
	secure := s.secureCookies || c.Request.TLS != nil
	http.SetCookie(c.Writer, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
	http.SetCookie(c.Writer, &http.Cookie{Name: csrfCookie, Value: "", Path: "/", MaxAge: -1, Secure: secure, SameSite: http.SameSiteLaxMode})
	c.Status(http.StatusNoContent)
}

func (s *Server) me(c *gin.Context) { c.JSON(http.StatusOK, member(c)) }

// authenticate admits requests carrying a valid bearer token or session
// cookie of a member whose role is at least min. Cookie-authenticated unsafe
// requests must echo the CSRF secret in X-CSRF-Token.
func (s *Server) authenticate(min fablab.Role) gin.HandlerFunc {
	return func(c *gin.Context) {
		token, viaCookie := "", false
		if h := c.GetHeader("Authorization"); h != "" {
			scheme, rest, _ := strings.Cut(h, " ")
			if !strings.EqualFold(scheme, "Bearer") || rest == "" {
				s.fail(c, fablab.Errorf(fablab.EUNAUTHORIZED, "Authorization must be \"Bearer <token>\""))
				return
			}
			token = strings.TrimSpace(rest)
		} else if ck, err := c.Cookie(sessionCookie); err == nil && ck != "" {
			token, viaCookie = ck, true
		}
		if token == "" {
			s.fail(c, fablab.Errorf(fablab.EUNAUTHORIZED, "log in first (POST /api/v1/auth/login) and send the token as \"Authorization: Bearer <token>\""))
			return
		}
		key := auth.TokenKey(token)
		t, m, err := s.store.Authenticate(c.Request.Context(), key)
		if err != nil {
			s.fail(c, err)
			return
		}
		if viaCookie && !safeMethod(c.Request.Method) {
			got := c.GetHeader(csrfHeader)
			if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(t.CSRF)) != 1 {
				s.fail(c, fablab.Errorf(fablab.EFORBIDDEN, "missing or wrong %s header (the csrf_token given at login)", csrfHeader))
				return
			}
		}
		if m.Status != fablab.StatusActive {
			s.fail(c, fablab.Errorf(fablab.EUNAUTHORIZED, "this account is suspended; ask the lab's staff"))
			return
		}
		if !m.Role.AtLeast(min) {
			s.fail(c, fablab.Errorf(fablab.EFORBIDDEN, "this needs the %s role", min))
			return
		}
		c.Set(ctxMember, m)
		c.Set("fabgate.token_key", key)
		c.Next()
	}
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// member returns the authenticated member of the request.
func member(c *gin.Context) fablab.Member { return c.MustGet(ctxMember).(fablab.Member) }

// isStaff reports whether the authenticated member is staff or admin.
func isStaff(c *gin.Context) bool { return member(c).Role.AtLeast(fablab.RoleStaff) }

// codeBusy is the problem code of a request refused because every
// password-hashing slot is taken (503, Retry-After: 1).
const codeBusy = "busy"

// hashSlot takes one of the slots that bound the password hashes computed
// at once (Config.HashConcurrency), or refuses the request at once: 503 with
// Retry-After. Every handler that hashes or verifies a password takes one
// first, and calls release when its hashing is done.
func (s *Server) hashSlot(c *gin.Context) (release func(), ok bool) {
	release, ok = s.hashes.TryAcquire()
	if !ok {
		c.Header("Retry-After", "1")
		s.fail(c, fablab.Errorf(codeBusy, "the server is busy checking other passwords; try again in a second"))
	}
	return release, ok
}

// clientKey is the key the login throttle counts a client address under:
// the address itself for IPv4, its /64 network for IPv6 (one host usually
// holds a whole /64, so single addresses would not limit it).
func clientKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Is4() || a.Is4In6() {
		return ip
	}
	p, err := a.Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}
