package httpapi

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/i18n"
	"github.com/fabgate/fabgate/web"
)

// The web pages are server-rendered html/template pages. Each page file of
// web/templates defines "content" (and may define "head"); it is parsed
// together with layout.html and the partials (_*.html). Pages only read:
// every change is a form or button that fabgate.js sends to the JSON API
// (/api/v1, cookie + CSRF header), so the pages follow exactly the API's
// rules, with no second copy of them.

const langCookie = "fabgate_lang"

// views holds the parsed pages and the message catalog.
type views struct {
	pages map[string]*template.Template
	cat   *i18n.Catalog
}

var (
	loadedViews    *views
	loadedViewsErr error
	loadViewsOnce  sync.Once
)

// pageViews parses the embedded templates and messages once.
func pageViews() (*views, error) {
	loadViewsOnce.Do(func() { loadedViews, loadedViewsErr = parseViews(web.Templates(), web.Messages()) })
	return loadedViews, loadedViewsErr
}

func parseViews(tfs, mfs fs.FS) (*views, error) {
	cat, err := i18n.Load(mfs, ".")
	if err != nil {
		return nil, err
	}
	base := template.New("layout.html").Funcs(template.FuncMap{
		"dict": func(kv ...any) map[string]any {
			m := map[string]any{}
			for i := 0; i+1 < len(kv); i += 2 {
				m[fmt.Sprint(kv[i])] = kv[i+1]
			}
			return m
		},
	})
	if base, err = base.ParseFS(tfs, "layout.html"); err != nil {
		return nil, err
	}
	partials, err := fs.Glob(tfs, "_*.html")
	if err != nil {
		return nil, err
	}
	if len(partials) > 0 {
		if base, err = base.ParseFS(tfs, partials...); err != nil {
			return nil, err
		}
	}
	names, err := fs.Glob(tfs, "*.html")
	if err != nil {
		return nil, err
	}
	v := &views{pages: map[string]*template.Template{}, cat: cat}
	for _, name := range names {
		if name == "layout.html" || strings.HasPrefix(name, "_") {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(tfs, name)
		if err != nil {
			return nil, err
		}
		v.pages[strings.TrimSuffix(name, ".html")] = t
	}
	return v, nil
}

// view is what every page template receives.
type view struct {
	Lang  string
	Me    *fablab.Member // nil when nobody is logged in
	CSRF  string
	Lab   fablab.Settings
	Path  string // the request's path and query, for the language switch
	Page  string // the page's name (its template), for the navigation
	Title string // the page title, already translated
	Data  any
	// Nonce allows the page's libraries to add their own styles (the
	// calendar injects its stylesheet); scripts are never inline.
	Nonce   string
	Version string
	// Nav is the navigation, rendered once per language, role and page.
	Nav template.HTML
	// Content is the page's content already rendered (the pages' cache);
	// empty, the layout runs the page's content template.
	Content template.HTML
	cat     *i18n.Catalog
	now     time.Time
}

// T translates message id; args are name/value pairs.
func (v *view) T(id string, args ...any) string { return v.cat.T(v.Lang, id, args...) }

// TOr translates message id when there is one, else shows fallback as it
// is (a machine kind or state the lab made up, for instance).
func (v *view) TOr(id, fallback string) string {
	if v.cat.Has(v.Lang, id) {
		return v.cat.T(v.Lang, id)
	}
	return fallback
}

// Kind names a kind of machine in the page's language.
func (v *view) Kind(kind string) string { return v.TOr("kind_"+kind, kind) }

// Staff reports whether the viewer is staff or admin.
func (v *view) Staff() bool { return v.Me != nil && v.Me.Role.AtLeast(fablab.RoleStaff) }

// Admin reports whether the viewer is an admin.
func (v *view) Admin() bool { return v.Me != nil && v.Me.Role.AtLeast(fablab.RoleAdmin) }

// DateTime, Date, ShortDate and Time format an instant in the lab's time zone.
func (v *view) DateTime(t time.Time) string { return i18n.FormatDateTime(v.Lang, t, v.Lab.Location()) }

// Date formats t's day in the lab's time zone.
func (v *view) Date(t time.Time) string { return i18n.FormatDate(v.Lang, t, v.Lab.Location()) }

// ShortDate formats t's day briefly in the lab's time zone.
func (v *view) ShortDate(t time.Time) string {
	return i18n.FormatShortDate(v.Lang, t, v.Lab.Location())
}

// Time formats t's time of day in the lab's time zone.
func (v *view) Time(t time.Time) string { return i18n.FormatTime(v.Lang, t, v.Lab.Location()) }

// ISO writes t as RFC 3339 (for <time datetime> and scripts).
func (v *view) ISO(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// Money formats cents in the lab's currency.
func (v *view) Money(cents int64) string { return i18n.FormatMoney(v.Lang, cents, v.Lab.Currency) }

// Minutes formats a number of minutes ("2 h 30").
func (v *view) Minutes(n int) string { return i18n.FormatMinutes(v.Lang, n) }

// Now is the request's time (the injected clock).
func (v *view) Now() time.Time { return v.now }

// LangURL is the address that switches the pages to lang and comes back here.
func (v *view) LangURL(lang string) string {
	return "/lang/" + lang + "?next=" + url.QueryEscape(v.Path)
}

// pageLang picks the language: the choice made with the switch, then the
// browser's, then the logged-in member's, then the lab's.
func pageLang(c *gin.Context, me *fablab.Member, def string) string {
	if l := chosenLang(c); l != "" {
		return l
	}
	if me != nil && i18n.Supported(me.Language) {
		return me.Language
	}
	if i18n.Supported(def) {
		return def
	}
	return i18n.Languages[0]
}

// chosenLang is the language the client asks for: the one chosen with the
// pages' switch, else the browser's; "" when it asks for none.
func chosenLang(c *gin.Context) string {
	if ck, err := c.Cookie(langCookie); err == nil && i18n.Supported(ck) {
		return ck
	}
	return lang(c, "")
}

// setLang remembers a language choice for a year and goes back to the
// page it was made on.
func (s *Server) setLang(c *gin.Context) {
	l := c.Param("lang")
	if !i18n.Supported(l) {
		s.fail(c, fablab.Errorf(fablab.ENOTFOUND, "no such language %q: choose one of %s", l, strings.Join(i18n.Languages, ", ")))
		return
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: langCookie, Value: l, Path: "/", MaxAge: 365 * 24 * 3600,
		Secure: s.secureCookies || c.Request.TLS != nil, SameSite: http.SameSiteLaxMode})
	c.Redirect(http.StatusSeeOther, localPath(c.Query("next")))
}

// localPath returns next if it is a path of this site, else "/": redirects
// never lead elsewhere.
func localPath(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || strings.ContainsAny(next, "\r\n") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return "/"
	}
	return u.RequestURI()
}

// pageMember finds who is logged in from the session cookie, without
// refusing anyone: (nil, "") for nobody.
func (s *Server) pageMember(c *gin.Context) (*fablab.Member, string) {
	ck, err := c.Cookie(sessionCookie)
	if err != nil || ck == "" {
		return nil, ""
	}
	t, m, err := s.store.Authenticate(c.Request.Context(), auth.TokenKey(ck))
	if err != nil || m.Status != fablab.StatusActive {
		return nil, ""
	}
	return &m, t.CSRF
}

// page admits a page request from a member with at least role min: others
// are sent to the login page, which brings them back here.
func (s *Server) page(min fablab.Role) gin.HandlerFunc {
	return func(c *gin.Context) {
		m, csrf := s.pageMember(c)
		if m == nil {
			c.Redirect(http.StatusSeeOther, "/login?next="+url.QueryEscape(c.Request.URL.RequestURI()))
			c.Abort()
			return
		}
		c.Set(ctxMember, *m)
		c.Set(ctxCSRF, csrf)
		if !m.Role.AtLeast(min) {
			s.renderError(c, http.StatusForbidden, "error_forbidden")
			c.Abort()
			return
		}
		c.Next()
	}
}

const ctxCSRF = "fabgate.csrf"

// newView builds the data of a page for the request.
func (s *Server) newView(c *gin.Context, page, titleID string, data any) (*view, error) {
	vs, err := pageViews()
	if err != nil {
		return nil, fablab.Internal(err, "load page templates")
	}
	st, err := s.store.Settings(c.Request.Context())
	if err != nil {
		return nil, err
	}
	v := &view{Lab: st, Page: page, Data: data, Path: c.Request.URL.RequestURI(), Version: s.version, cat: vs.cat, now: s.now()}
	if m, ok := c.Get(ctxMember); ok {
		me := m.(fablab.Member)
		v.Me = &me
		v.CSRF = c.GetString(ctxCSRF)
	}
	v.Lang = pageLang(c, v.Me, st.Language)
	if titleID != "" {
		v.Title = v.T(titleID)
	}
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	v.Nonce = base64.RawStdEncoding.EncodeToString(nonce[:])
	return v, nil
}

// render writes page with data, or the error page.
func (s *Server) render(c *gin.Context, status int, page, titleID string, data any) {
	v, err := s.newView(c, page, titleID, data)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	s.write(c, status, v)
}

func (s *Server) write(c *gin.Context, status int, v *view) {
	vs, _ := pageViews()
	t := vs.pages[v.Page]
	if t == nil {
		s.pageFail(c, fablab.Errorf(fablab.EINTERNAL, "no page template %q", v.Page))
		return
	}
	role := "-"
	if v.Me != nil {
		role = string(v.Me.Role)
	}
	nav, err := s.fragment(v, "nav", role, nil)
	if err != nil {
		s.log.Error("render navigation", "page", v.Page, "err", err)
		c.Data(http.StatusInternalServerError, "text/plain; charset=utf-8", []byte("internal error"))
		return
	}
	v.Nav = nav
	if status == http.StatusOK {
		if err := s.keepContent(c, v, t); err != nil {
			s.log.Error("render page", "page", v.Page, "err", err)
			c.Data(http.StatusInternalServerError, "text/plain; charset=utf-8", []byte("internal error"))
			return
		}
	}
	buf := pageBuffers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 1<<20 {
			buf.Reset()
			pageBuffers.Put(buf)
		}
	}()
	if err := t.ExecuteTemplate(buf, "layout.html", v); err != nil {
		s.log.Error("render page", "page", v.Page, "err", err)
		c.Data(http.StatusInternalServerError, "text/plain; charset=utf-8", []byte("internal error"))
		return
	}
	// The nonce lets the calendar library add its stylesheet; nothing inline runs.
	c.Header("Content-Security-Policy", strings.Replace(contentSecurityPolicy, "style-src 'self'", "style-src 'self' 'nonce-"+v.Nonce+"'", 1))
	c.Header("Content-Language", v.Lang)
	c.Data(status, "text/html; charset=utf-8", buf.Bytes())
}

// pageBuffers are the buffers pages are rendered into.
var pageBuffers = sync.Pool{New: func() any { return bytes.NewBuffer(make([]byte, 0, 32<<10)) }}

// pageFail shows an error as a page: not found, forbidden, or a failure.
func (s *Server) pageFail(c *gin.Context, err error) {
	switch fablab.ErrorCode(err) {
	case fablab.ENOTFOUND:
		s.renderError(c, http.StatusNotFound, "error_not_found")
	case fablab.EFORBIDDEN:
		s.renderError(c, http.StatusForbidden, "error_forbidden")
	case fablab.EINVALID:
		s.renderErrorPage(c, errorPage{Status: http.StatusBadRequest, MsgID: "error_invalid", err: err})
	default:
		s.log.Error("page failed", "path", c.FullPath(), "err", err)
		s.renderError(c, http.StatusInternalServerError, "error_internal")
	}
}

// renderError shows the error page with message msgID.
func (s *Server) renderError(c *gin.Context, status int, msgID string) {
	s.renderErrorPage(c, errorPage{Status: status, MsgID: msgID})
}

func (s *Server) renderErrorPage(c *gin.Context, p errorPage) {
	status := p.Status
	v, err := s.newView(c, "error", "error_title", nil)
	if err != nil {
		c.Data(status, "text/plain; charset=utf-8", []byte(http.StatusText(status)))
		return
	}
	if p.err != nil {
		p.Detail = problemDetailIn(v.Lang, p.err) // in the page's language
	}
	v.Data = p
	s.write(c, status, v)
}

// errorPage is the data of the error page.
type errorPage struct {
	Status int
	MsgID  string // the message explaining the error
	Detail string // the rule's own words, when there are some
	err    error  // the refusal Detail tells, in the page's language
}

// fragments caches the rendered rows of list pages. A list of fifty
// machines or members costs hundreds of template actions, each a reflective
// call; a row rendered once and found again by a key naming everything it
// shows costs one. Keys start with the page's language and the row's
// template; the cache starts over when it holds maxFragments rows.
type fragments struct {
	m sync.Map // string → template.HTML
	n atomic.Int64
}

const maxFragments = 20_000

// fragment renders row template name of the page with data, or finds it
// rendered before under key, which must name everything data shows (the
// caller builds it from the same values). The template receives
// fragmentData: .V is the page's view, .R the row. A row never shows what
// is not in its key: not the viewer, not the page's CSRF token or nonce.
func (s *Server) fragment(v *view, name, key string, data any) (template.HTML, error) {
	return s.fragmentOf(v, name, key, func() any { return data })
}

// fragmentOf is fragment with the row's data built only when the row is
// not cached.
func (s *Server) fragmentOf(v *view, name, key string, build func() any) (template.HTML, error) {
	k := v.Lang + "\x00" + v.Page + "\x00" + name + "\x00" + key
	if h, ok := s.rows.m.Load(k); ok {
		return h.(template.HTML), nil
	}
	data := build()
	vs, err := pageViews()
	if err != nil {
		return "", err
	}
	t := vs.pages[v.Page]
	if t == nil {
		return "", fmt.Errorf("no page template %q", v.Page)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name, fragmentData{V: v, R: data}); err != nil {
		return "", err
	}
	h := template.HTML(buf.String())
	if s.rows.n.Load() >= maxFragments {
		s.rows.m.Clear()
		s.rows.n.Store(0)
	}
	if _, loaded := s.rows.m.Swap(k, h); !loaded {
		s.rows.n.Add(1)
	}
	return h, nil
}

// rowsHTML renders n rows with row template name (through the fragment
// cache) into one piece of HTML, shown by the page with one action. key(i)
// names everything row i shows; data(i) is its data, built on a miss.
func (s *Server) rowsHTML(v *view, name string, n int, key func(int) string, data func(int) any) (template.HTML, error) {
	var b strings.Builder
	b.Grow(n * 512)
	for i := 0; i < n; i++ {
		h, err := s.fragmentOf(v, name, key(i), func() any { return data(i) })
		if err != nil {
			return "", err
		}
		b.WriteString(string(h))
	}
	return template.HTML(b.String()), nil
}

// fragmentData is what a row template receives.
type fragmentData struct {
	V *view
	R any
}

// pageRoutes registers the web pages.
func (s *Server) pageRoutes(e *gin.Engine) {
	e.GET("/", s.home)
	e.GET("/lang/:lang", s.setLang)
	e.GET("/login", s.loginPage)
	e.GET("/reset", s.resetPage)
	e.GET("/forgot", s.forgotPage)
	maker := e.Group("", s.page(fablab.RoleMaker))
	maker.GET("/machines", s.cached(s.machinesPage))
	s.makerPages(maker)
	staff := e.Group("", s.page(fablab.RoleStaff))
	s.staffPages(staff)
	s.machineAdminPages(staff)
	s.billingPages(maker, staff)
	s.reportsPages(staff)
	admin := e.Group("", s.page(fablab.RoleAdmin))
	s.adminPages(admin)
}

// notFound answers unknown addresses: a page for a browser, a problem
// for the API and everyone else.
func (s *Server) notFound(c *gin.Context) {
	p := c.Request.URL.Path
	if strings.HasPrefix(p, "/api/") || strings.HasPrefix(p, "/static/") || !strings.Contains(c.GetHeader("Accept"), "text/html") {
		s.fail(c, fablab.Errorf(fablab.ENOTFOUND, "no such page or endpoint: %s", p))
		return
	}
	s.renderError(c, http.StatusNotFound, "error_not_found")
}
