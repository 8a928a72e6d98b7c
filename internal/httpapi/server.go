// Package httpapi serves FabGate's HTTP API (/api/v1), the health and metrics
// endpoints and the web pages, on a Gin engine.
package httpapi

import (
	"context"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/events"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/web"
)

// Config configures a Server.
type Config struct {
	Store    *bolt.Store
	Log      *slog.Logger
	Now      fablab.Clock
	Registry *prometheus.Registry // metrics are registered here and served at /metrics
	Version  string
	// TokenTTL is how long a login lasts (default 12 h).
	TokenTTL time.Duration
	// Password hashing parameters (default auth.OWASPParams).
	Password auth.Params
	// Login throttling: failures allowed per account and per client address
	// within ThrottleWindow (defaults 5, 20, 15 min).
	ThrottleAccount, ThrottleAddr int
	ThrottleWindow                time.Duration
	// TrustedProxies are the proxies whose X-Forwarded-For is believed (none by default).
	TrustedProxies []string
	// SecureCookies marks session cookies Secure even on plain HTTP, for a
	// server behind a TLS-terminating proxy. (Over TLS they always are.)
	SecureCookies bool
	// Access is the access engine (nil: the access routes answer 500).
	Access AccessEngine
	// Hub streams live events at /api/v1/events (nil: not available).
	Hub *events.Hub
	// HashDeviceSecret hashes a new device's MQTT secret for storage.
	HashDeviceSecret func(secret string) (string, error)
	// SimulateTaps allows staff to simulate badge taps (the demo lab).
	SimulateTaps bool
}

// Server is the HTTP API.
type Server struct {
	store    *bolt.Store
	log      *slog.Logger
	now      fablab.Clock
	version  string
	ttl      time.Duration
	pw       auth.Params
	throttle *auth.Throttle
	engine   *gin.Engine
	// secureCookies: see Config.SecureCookies.
	secureCookies bool
	access        AccessEngine
	hub           *events.Hub
	hashSecret    func(string) (string, error)
	simulateTaps  bool
	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
}

// New builds the server and its routes.
func New(cfg Config) (*Server, error) {
	if cfg.Now == nil {
		cfg.Now = fablab.SystemClock
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = 12 * time.Hour
	}
	if cfg.Password == (auth.Params{}) {
		cfg.Password = auth.OWASPParams
	}
	if cfg.ThrottleAccount == 0 {
		cfg.ThrottleAccount = 5
	}
	if cfg.ThrottleAddr == 0 {
		cfg.ThrottleAddr = 20
	}
	if cfg.ThrottleWindow == 0 {
		cfg.ThrottleWindow = 15 * time.Minute
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	s := &Server{
		store: cfg.Store, log: cfg.Log, now: cfg.Now, version: cfg.Version,
		ttl: cfg.TokenTTL, pw: cfg.Password, secureCookies: cfg.SecureCookies,
		access: cfg.Access, hub: cfg.Hub, hashSecret: cfg.HashDeviceSecret, simulateTaps: cfg.SimulateTaps,
		throttle: auth.NewThrottle(cfg.Now, cfg.ThrottleAccount, cfg.ThrottleAddr, cfg.ThrottleWindow),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fabgate_http_requests_total", Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "fabgate_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route", "method"}),
	}
	for _, c := range []prometheus.Collector{s.requests, s.latency} {
		if err := cfg.Registry.Register(c); err != nil {
			return nil, err
		}
	}
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	if err := e.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		return nil, err
	}
	e.HandleMethodNotAllowed = true
	e.Use(s.recover, s.observe)
	e.NoRoute(func(c *gin.Context) {
		s.fail(c, fablab.Errorf(fablab.ENOTFOUND, "no such page or endpoint: %s", c.Request.URL.Path))
	})
	e.NoMethod(func(c *gin.Context) {
		s.fail(c, fablab.Errorf("method_not_allowed", "%s is not allowed on %s", c.Request.Method, c.Request.URL.Path))
	})
	s.engine = e
	s.routes(e, promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{}))
	return s, nil
}

// Handler returns the http.Handler serving everything.
func (s *Server) Handler() http.Handler { return s.engine }

// Routes lists the registered method and path pairs (Gin syntax).
func (s *Server) Routes() gin.RoutesInfo { return s.engine.Routes() }

func (s *Server) routes(e *gin.Engine, metrics http.Handler) {
	e.GET("/", s.landing)
	e.StaticFS("/static", http.FS(filesOnly{web.Static()}))
	e.GET("/healthz", s.healthz)
	e.GET("/metrics", gin.WrapH(metrics))

	api := e.Group("/api/v1")
	api.GET("/openapi.json", s.openapi)
	api.POST("/auth/login", s.login)
	api.POST("/auth/reset-password", s.resetPassword)

	anyone := api.Group("", s.authenticate(fablab.RoleMaker), s.auditCall)
	staff := api.Group("", s.authenticate(fablab.RoleStaff), s.auditCall)
	admin := api.Group("", s.authenticate(fablab.RoleAdmin), s.auditCall)

	anyone.POST("/auth/logout", s.logout)
	anyone.GET("/me", s.me)

	anyone.GET("/machines", s.listMachines)
	staff.POST("/machines", s.createMachine)
	anyone.GET("/machines/:id", s.getMachine)
	staff.PATCH("/machines/:id", s.patchMachine)
	anyone.GET("/machines/:id/availability", s.availability)

	anyone.GET("/bookings", s.listBookings)
	anyone.POST("/bookings", s.createBooking)
	anyone.GET("/bookings/:id", s.getBooking)
	anyone.DELETE("/bookings/:id", s.cancelBooking)

	staff.GET("/members", s.listMembers)
	staff.POST("/members", s.createMember)
	anyone.GET("/members/:id", s.getMember)
	staff.PATCH("/members/:id", s.patchMember)
	staff.GET("/members/:id/badges", s.listBadges)
	staff.POST("/members/:id/badges", s.addBadge)
	staff.DELETE("/members/:id/badges/:hash", s.removeBadge)
	staff.POST("/members/:id/password-reset", s.createPasswordReset)
	anyone.GET("/members/:id/qualifications", s.listQualifications)
	staff.POST("/members/:id/qualifications", s.grantQualification)

	anyone.GET("/trainings", s.listTrainings)
	staff.POST("/trainings", s.createTraining)
	staff.GET("/organisations", s.listOrganisations)
	staff.POST("/organisations", s.createOrganisation)
	anyone.GET("/tariffs", s.getTariffs)
	admin.PUT("/tariffs", s.putTariffs)
	anyone.GET("/settings", s.getSettings)
	admin.PATCH("/settings", s.patchSettings)

	admin.POST("/backup", s.backup)

	admin.GET("/devices", s.listDevices)
	admin.POST("/devices", s.createDevice)
	admin.GET("/devices/:id", s.getDevice)
	admin.PATCH("/devices/:id", s.patchDevice)
	admin.POST("/devices/:id/secret", s.rotateDeviceSecret)
	admin.POST("/badge-key/rotate", s.rotateBadgeKey)
	staff.POST("/devices/:id/tap", s.simulateTap)
	anyone.GET("/sessions", s.listSessions)
	staff.POST("/sessions/:id/end", s.endSession)
	staff.GET("/taps/unknown", s.unknownTaps)
	staff.GET("/audit", s.audit)
	staff.GET("/events", s.events)
}

func (s *Server) recover(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				panic(r)
			}
			s.fail(c, fablab.Internal(nil, "panic: %v", r))
		}
	}()
	c.Next()
}

func (s *Server) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	s.requests.WithLabelValues(route, c.Request.Method, strconv.Itoa(c.Writer.Status())).Inc()
	s.latency.WithLabelValues(route, c.Request.Method).Observe(time.Since(start).Seconds())
}

func (s *Server) healthz(c *gin.Context) {
	if _, err := s.store.Settings(c.Request.Context()); err != nil {
		s.fail(c, fablab.Internal(err, "storage unavailable"))
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ok", "version": s.version})
}

// filesOnly serves files and no directory listings.
type filesOnly struct{ fs.FS }

// Open opens files; directories are reported as absent.
func (f filesOnly) Open(name string) (fs.File, error) {
	file, err := f.FS.Open(name)
	if err != nil {
		return nil, err
	}
	if st, err := file.Stat(); err != nil || st.IsDir() {
		file.Close()
		return nil, fs.ErrNotExist
	}
	return file, nil
}

// auditCall writes an audit line (who, what, when, outcome) for every
// state-changing API call that succeeded, after it has been answered.
func (s *Server) auditCall(c *gin.Context) {
	c.Next()
	if safeMethod(c.Request.Method) || c.Writer.Status() >= 400 {
		return
	}
	ev := fablab.AuditEvent{
		At: s.now(), Kind: fablab.AuditAPI, Action: c.Request.Method + " " + c.FullPath(), ActorID: member(c).ID,
		Detail: map[string]any{"path": c.Request.URL.Path, "status": c.Writer.Status()},
	}
	if err := s.store.Audit(context.WithoutCancel(c.Request.Context()), ev); err != nil {
		s.log.Error("audit api call", "path", c.Request.URL.Path, "err", err)
	}
}
