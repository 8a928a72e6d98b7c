// Package httpapi serves FabGate's HTTP API (/api/v1), the health and metrics
// endpoints and the web pages, on a Gin engine.
package httpapi

import (
	"context"
	"crypto/subtle"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"runtime"
	"strconv"
	"strings"
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
	// PublicURL is the server's address as people open it (no trailing
	// slash), for links in mail, calendar feeds and machine labels.
	PublicURL string
	// BridgeBrokerURL is the broker address a bridge at a machine connects
	// to (tcp://host:1883 or ssl://host:8883), and MQTTPrefix the topic
	// prefix, both for the configuration the devices page shows once at
	// registration ("" prefix: the default).
	BridgeBrokerURL, MQTTPrefix string
	// Mail mails members: invitations, reset links, booking confirmations
	// (nil: no mail is sent, and there is no outbox).
	Mail Mailer
	// TokenTTL is how long a login lasts (default 12 h).
	TokenTTL time.Duration
	// Password hashing parameters (default auth.OWASPParams).
	Password auth.Params
	// Throttle configures login throttling (zero fields: auth's defaults).
	Throttle auth.ThrottleConfig
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
	// Connections cuts a device's broker connections when its secret is
	// rotated or it is disabled or deleted (the embedded broker; nil with an
	// external one, whose password file the operator rewrites and reloads).
	Connections DeviceConnections
	// SimulateTaps allows staff to simulate badge taps (the demo lab).
	SimulateTaps bool
	// MetricsToken, when set, is the bearer token a scraper sends to read
	// /metrics. Without it the main handler refuses every scrape, and
	// metrics are read on a listener of their own (MetricsHandler).
	MetricsToken string
	// MetricsOwnAddress says /metrics is served on a listener of its own
	// (MetricsHandler): the main handler then refuses it, token or not.
	MetricsOwnAddress bool
	// HashConcurrency bounds the password hashes (argon2id, 19 MiB each)
	// computed at once; requests beyond it are refused at once with 503
	// and Retry-After (default: GOMAXPROCS).
	HashConcurrency int
	// PageCacheBytes bounds the pages' cache of rendered content (see
	// pageCache; 0: 16 MiB, negative: no cache).
	PageCacheBytes int
	// ReadHeaderTimeout and ReadTimeout bound how long a client may take to
	// send a request's headers, and the whole request (defaults 10 s, 15 s).
	ReadHeaderTimeout, ReadTimeout time.Duration
	// Jobs are the scheduled jobs, listed and run at /api/v1/jobs (nil:
	// none).
	Jobs Jobs
}

// Server is the HTTP API.
type Server struct {
	store   *bolt.Store
	log     *slog.Logger
	now     fablab.Clock
	version string
	// publicURL: see Config.PublicURL.
	publicURL string
	// rows caches rendered rows of the list pages.
	rows fragments
	// pages caches the rendered content of pages while nothing they show
	// changes.
	pages pageCache
	// bridgeBroker and mqttPrefix: see Config.BridgeBrokerURL.
	bridgeBroker, mqttPrefix string
	ttl                      time.Duration
	pw                       auth.Params
	throttle                 *auth.Throttle
	mail                     Mailer
	// forgotByAddr and forgotByAccount throttle "forgot my password".
	forgotByAddr, forgotByAccount *auth.Throttle
	engine                        *gin.Engine
	// secureCookies: see Config.SecureCookies.
	secureCookies bool
	access        AccessEngine
	hub           *events.Hub
	hashSecret    func(string) (string, error)
	connections   DeviceConnections
	simulateTaps  bool
	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	hashes        *auth.Limiter
	lastBackup    prometheus.Gauge
	metrics       http.Handler // the registry's handler, before any token check
	metricsToken  string
	metricsOwn    bool
	readHeader    time.Duration
	readTimeout   time.Duration
	jobs          Jobs
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
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.HashConcurrency <= 0 {
		cfg.HashConcurrency = runtime.GOMAXPROCS(0)
	}
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = 10 * time.Second
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 15 * time.Second
	}
	if cfg.PageCacheBytes == 0 {
		cfg.PageCacheBytes = defaultPageCacheBytes
	}
	s := &Server{
		pages:     pageCache{max: cfg.PageCacheBytes},
		publicURL: cfg.PublicURL, bridgeBroker: cfg.BridgeBrokerURL, mqttPrefix: cfg.MQTTPrefix,
		store: cfg.Store, log: cfg.Log, now: cfg.Now, version: cfg.Version,
		ttl: cfg.TokenTTL, pw: cfg.Password, secureCookies: cfg.SecureCookies,
		access: cfg.Access, hub: cfg.Hub, hashSecret: cfg.HashDeviceSecret, connections: cfg.Connections, simulateTaps: cfg.SimulateTaps,
		throttle: auth.NewThrottle(cfg.Now, cfg.Throttle),
		mail:     cfg.Mail,
		// 10 requests per address in 15 minutes, over all accounts; 3 per
		// account, then one more after 15 minutes, 30, an hour… (any address).
		forgotByAddr:    auth.NewThrottle(cfg.Now, auth.ThrottleConfig{Free: math.MaxInt32, PerAddr: 10, Window: 15 * time.Minute}),
		forgotByAccount: auth.NewThrottle(cfg.Now, auth.ThrottleConfig{Free: 3, Delay: 15 * time.Minute, MaxDelay: 24 * time.Hour, PerAddr: -1}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fabgate_http_requests_total", Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "fabgate_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route", "method"}),
		lastBackup: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fabgate_backup_last_success_timestamp_seconds", Help: "When the last online backup (POST /api/v1/backup) was streamed whole (Unix time; 0 since the server started without one).",
		}),
		hashes:       auth.NewLimiter(cfg.HashConcurrency),
		metrics:      promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{}),
		metricsToken: cfg.MetricsToken,
		metricsOwn:   cfg.MetricsOwnAddress,
		readHeader:   cfg.ReadHeaderTimeout,
		readTimeout:  cfg.ReadTimeout,
		jobs:         cfg.Jobs,
	}
	for _, c := range []prometheus.Collector{s.requests, s.latency, s.lastBackup} {
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
	e.Use(s.recover, s.observe, securityHeaders)
	e.NoRoute(s.notFound)
	e.NoMethod(func(c *gin.Context) {
		s.fail(c, fablab.Errorf("method_not_allowed", "%s is not allowed on %s", c.Request.Method, c.Request.URL.Path))
	})
	s.engine = e
	s.routes(e)
	return s, nil
}

// Handler returns the http.Handler serving everything.
func (s *Server) Handler() http.Handler { return s.engine }

// Routes lists the registered method and path pairs (Gin syntax).
func (s *Server) Routes() gin.RoutesInfo { return s.engine.Routes() }

// HTTPServer returns the http.Server to serve h with (the Handler, or a
// handler wrapping it): clients get ReadHeaderTimeout for the headers and
// ReadTimeout for the whole request, so that a half-sent request cannot hold
// a connection. There is no WriteTimeout, as the live event stream writes
// for as long as its client listens. (Once a request is read whole,
// net/http lifts the read deadline while the handler runs, so ReadTimeout
// does not end the stream.)
func (s *Server) HTTPServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: s.readHeader, ReadTimeout: s.readTimeout, IdleTimeout: 2 * time.Minute}
}

// MetricsHandler serves the Prometheus metrics alone, for a listen address
// of their own; with a MetricsToken it asks for it there too.
func (s *Server) MetricsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		if s.metricsToken != "" && !bearerIs(r.Header.Get("Authorization"), s.metricsToken) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="fabgate metrics"`)
			http.Error(w, "send the metrics token as \"Authorization: Bearer <token>\"", http.StatusUnauthorized)
			return
		}
		s.metrics.ServeHTTP(w, r)
	})
}

// scrape serves /metrics on the main address to a scraper holding the
// metrics token; without a token configured it serves nobody there.
func (s *Server) scrape(c *gin.Context) {
	switch {
	case s.metricsOwn:
		s.fail(c, fablab.Errorf(fablab.ENOTFOUND, "metrics are served on the metrics_listen address, not here"))
	case s.metricsToken == "":
		s.fail(c, fablab.Errorf(fablab.ENOTFOUND, "metrics are not served on this address: set metrics_token, or metrics_listen for an address of their own"))
	case !bearerIs(c.GetHeader("Authorization"), s.metricsToken):
		c.Header("WWW-Authenticate", `Bearer realm="fabgate metrics"`)
		s.fail(c, fablab.Errorf(fablab.EUNAUTHORIZED, "send the metrics token as \"Authorization: Bearer <token>\""))
	default:
		s.metrics.ServeHTTP(c.Writer, c.Request)
	}
}

// bearerIs reports whether header is "Bearer <want>", comparing the token
// in constant time.
func bearerIs(header, want string) bool {
	scheme, got, _ := strings.Cut(header, " ")
	return strings.EqualFold(scheme, "Bearer") && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(want)) == 1
}

func (s *Server) routes(e *gin.Engine) {
	s.pageRoutes(e)
	e.StaticFS("/static", http.FS(filesOnly{web.Static()}))
	e.GET("/healthz", s.healthz)
	e.GET("/metrics", s.scrape)
	e.GET("/feed/:token", s.calendarFeed) // the token is the credential: no login

	api := e.Group("/api/v1")
	api.GET("/openapi.json", s.openapi)
	api.POST("/auth/login", s.login)
	api.POST("/auth/reset-password", s.resetPassword)
	api.POST("/auth/forgot-password", s.forgotPassword)

	anyone := api.Group("", s.authenticate(fablab.RoleMaker), s.auditCall)
	staff := api.Group("", s.authenticate(fablab.RoleStaff), s.auditCall)
	admin := api.Group("", s.authenticate(fablab.RoleAdmin), s.auditCall)

	anyone.POST("/auth/logout", s.logout)
	anyone.GET("/me", s.me)
	anyone.POST("/me/password", s.changePassword)
	anyone.GET("/me/calendar-feed", s.getCalendarFeed)
	anyone.POST("/me/calendar-feed", s.createCalendarFeed)
	anyone.DELETE("/me/calendar-feed", s.revokeCalendarFeed)

	anyone.GET("/machines", s.listMachines)
	anyone.GET("/machines/status", s.machineStatus)
	anyone.GET("/slots", s.slots)
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
	staff.DELETE("/members/:id/qualifications/:training_id", s.revokeQualification)

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
	admin.DELETE("/devices/:id", s.deleteDevice)
	admin.POST("/devices/:id/secret", s.rotateDeviceSecret)
	admin.POST("/devices/:id/disable", s.disableDevice)
	admin.POST("/devices/:id/enable", s.enableDevice)
	admin.POST("/badge-key/rotate", s.rotateBadgeKey)
	staff.POST("/devices/:id/tap", s.simulateTap)
	anyone.GET("/sessions", s.listSessions)
	staff.POST("/sessions/:id/end", s.endSession)
	staff.GET("/taps/unknown", s.unknownTaps)
	staff.GET("/audit", s.audit)
	anyone.GET("/events", s.events)
	staff.GET("/outbox", s.outbox)
	staff.GET("/jobs", s.listJobs)
	admin.POST("/jobs/:name/run", s.runJob)
	s.billingRoutes(anyone, staff)
	staff.GET("/reports/usage", s.usageReport)
	staff.GET("/reports/revenue", s.revenueReport)
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

// observe counts requests under bounded labels only: the route template
// (or "unmatched"), one of the standard methods (or "other") and a status
// code the server can send (or "other"). Nothing a client writes becomes a
// label, so no client can make the series grow.
func (s *Server) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	method := methodLabel(c.Request.Method)
	s.requests.WithLabelValues(route, method, statusLabel(c.Writer.Status())).Inc()
	s.latency.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
}

// methodLabel is m when it is one of the methods the API knows, else "other".
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// statusLabel is the status code when it is a valid one, else "other".
func statusLabel(code int) string {
	if code < 100 || code > 599 {
		return "other"
	}
	return strconv.Itoa(code)
}

// contentSecurityPolicy allows the pages scripts, styles and images from
// the server itself only: no inline script, no framing.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self' data:; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// securityHeaders sets the headers every response carries. Only the static
// files may be cached (and a calendar feed, by its owner's phone only: it
// sets its own Cache-Control): every other answer may carry a token (a
// login, a reset link, a device secret) or private data.
func securityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	if !strings.HasPrefix(c.Request.URL.Path, "/static/") {
		h.Set("Cache-Control", "no-store")
	}
	c.Next()
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
