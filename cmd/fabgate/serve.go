package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/fabgate/fabgate/firmware-bridge/bridge"
	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/demo"
	"github.com/fabgate/fabgate/internal/httpapi"
	"github.com/fabgate/fabgate/internal/jobs"
	"github.com/fabgate/fabgate/internal/lab"
	"github.com/fabgate/fabgate/internal/mail"
	"github.com/fabgate/fabgate/internal/mqtt"
)

// serveOptions are what end-to-end tests set beyond the configuration.
type serveOptions struct {
	ready  func(addr string) // when not nil, receives the bound HTTP address
	broker func(url string)  // when not nil, receives the embedded broker's URL (ssl:// with TLS)
	clock  labClock          // the lab's time: the system clock when zero
}

// labClock is the server's time: the system clock, or (in tests) one that
// starts at a chosen instant and runs at the system clock's pace, so that
// the whole server — demo seed, store, access engine, HTTP API and the demo
// bridges — lives at a lab time the test chose. (faketime does not reach Go
// programs.)
type labClock struct{ offset time.Duration }

// clockAt returns a clock that reads start now and runs from there.
func clockAt(start time.Time) labClock { return labClock{offset: time.Until(start)} }

// Now returns the lab's time; it keeps the system clock's monotonic reading,
// so deadlines computed from it ignore wall-clock jumps.
func (c labClock) Now() time.Time { return time.Now().Add(c.offset) }

// AfterFunc calls f in its own goroutine once d has passed.
func (c labClock) AfterFunc(d time.Duration, f func()) bridge.Timer { return time.AfterFunc(d, f) }

// serve runs the server until ctx ends, then shuts down in order: HTTP, the
// access side (schedule, MQTT client, embedded broker), then storage.
func serve(ctx context.Context, cfg Config, stdout, stderr io.Writer, opts serveOptions) error {
	now := opts.clock.Now
	level, _ := parseLevel(cfg.LogLevel)
	var h slog.Handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})
	}
	log := slog.New(h)

	// Listen first: a server that cannot serve creates nothing.
	ln, err := net.Listen("tcp", cfg.HTTP)
	if err != nil {
		return fmt.Errorf("http: listen on %s: %w (is another program using it? change --http)", cfg.HTTP, err)
	}
	defer ln.Close()
	brokerTLS, err := embeddedBrokerTLS(cfg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return fmt.Errorf("data directory %s: %w", cfg.Data, err)
	}
	if cfg.Demo {
		if err := seedDemo(ctx, cfg.DBPath(), now(), log); err != nil {
			return err
		}
	}
	store, err := bolt.Open(cfg.DBPath(), bolt.Options{Timeout: time.Second, Now: now})
	if err != nil {
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Error("close data file", "err", err)
		}
	}()

	mqttTLSConfig, err := mqttTLS(cfg)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	publicURL := strings.TrimSuffix(cfg.PublicURL, "/")
	if publicURL == "" {
		scheme := "http"
		if cfg.TLSCert != "" {
			scheme = "https"
		}
		publicURL = scheme + "://" + ln.Addr().String()
	}
	notifier, stopMail, err := startMail(cfg, publicURL, store, now, reg, log)
	if err != nil {
		return err
	}
	// The mail is drained after the jobs that queue it have stopped (the
	// lab's Close, deferred later, runs first) and before storage closes.
	defer stopMail()
	running, err := lab.Start(ctx, lab.Config{
		Store: store, Log: log, Now: now, Listen: cfg.MQTTListen, BrokerTLS: brokerTLS, URL: cfg.MQTTURL,
		Username: cfg.MQTTUsername, Password: cfg.MQTTPassword, TLS: mqttTLSConfig, Prefix: cfg.MQTTPrefix,
		Metrics: reg, Jobs: append(mailJobs(notifier), billingJobs(store, now)...),
	})
	if err != nil {
		return err
	}
	defer running.Close()
	if running.Broker != nil {
		logBrokerSecurity(log, cfg, running.Broker.Addr(), brokerTLS, now())
		if opts.broker != nil {
			opts.broker(running.URL)
		}
	}
	var accessEngine httpapi.AccessEngine = running.Engine
	if cfg.Demo && cfg.MQTTURL == "" {
		demo, err := startDemoBridges(ctx, store, running, cfg.Data, opts.clock, log)
		if err != nil {
			return err
		}
		defer demo.Close()
		accessEngine = demo
	}

	registerAccessMetrics(reg, running, store.Path())
	var connections httpapi.DeviceConnections
	if running.Broker != nil { // Mosquitto: the operator rewrites its password file and reloads it
		connections = running.Broker
	}
	api, err := httpapi.New(httpapi.Config{
		PublicURL: publicURL, Mail: notifier,
		Store: store, Log: log, Now: now, Registry: reg, Version: version,
		TokenTTL: time.Duration(cfg.TokenTTL), TrustedProxies: cfg.TrustedProxies, SecureCookies: cfg.SecureCookies,
		Access: accessEngine, Hub: running.Hub, HashDeviceSecret: mqtt.MosquittoPasswordHash, SimulateTaps: cfg.Demo,
		MetricsToken: cfg.MetricsToken, MetricsOwnAddress: cfg.MetricsListen != "",
		Connections: connections, BridgeBrokerURL: bridgeBrokerURL(cfg, publicURL), MQTTPrefix: cfg.MQTTPrefix,
		Jobs: running.Jobs,
	})
	if err != nil {
		return err
	}
	// Requests see a context that ends when shutdown begins, so that
	// long-lived ones (the live event streams) end instead of holding it up.
	baseCtx, endRequests := context.WithCancel(context.Background())
	defer endRequests()
	srv := api.HTTPServer(api.Handler())
	srv.BaseContext = func(net.Listener) context.Context { return baseCtx }
	srv.RegisterOnShutdown(endRequests)
	if cfg.MetricsListen != "" {
		mln, err := net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			return fmt.Errorf("metrics: listen on %s: %w (change --metrics-listen)", cfg.MetricsListen, err)
		}
		msrv := api.HTTPServer(api.MetricsHandler())
		go msrv.Serve(mln)
		defer msrv.Close() // after the main server's shutdown: nothing to drain
		log.Info("metrics serving", "url", "http://"+mln.Addr().String()+"/metrics")
	}
	scheme := "http"
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("tls: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, srv.TLSConfig)
		scheme = "https"
	}
	addr := ln.Addr().String()
	log.Info("fabgate serving", "version", version, "url", scheme+"://"+addr, "data", cfg.DBPath(), "demo", cfg.Demo)
	fmt.Fprintf(stdout, "FabGate is running at %s://%s/ (Ctrl-C stops it)\n", scheme, addr)
	if opts.ready != nil {
		opts.ready(addr)
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Error("http shutdown", "err", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("http", "err", err)
	}
	running.Jobs.Stop() // the jobs queue mail: they stop before it drains
	stopMail()
	return nil
}

// mailDrainTimeout bounds how long shutdown waits for queued mail to go.
const mailDrainTimeout = 15 * time.Second

// startMail starts the mail queue (to the SMTP server of smtp_url, or the
// outbox). stop sends what is queued, for mailDrainTimeout at most; what is
// left then is logged, message by message. The booking jobs that mail
// (mailJobs) run on the lab's schedule, stopped before.
func startMail(cfg Config, publicURL string, store *bolt.Store, now func() time.Time, reg *prometheus.Registry, log *slog.Logger) (*mail.Notifier, func(), error) {
	u, err := mail.ParseURL(cfg.SMTPURL)
	if err != nil {
		return nil, nil, fmt.Errorf("smtp_url: %w", err)
	}
	if u.From == "" {
		u.From = mail.DefaultFrom(publicURL)
	}
	var (
		sender mail.Sender
		outbox *mail.Outbox
	)
	if u.Outbox {
		outbox = mail.NewOutbox(mail.DefaultOutboxSize)
		sender = outbox
		log.Info("mail kept in the outbox (GET /api/v1/outbox); set smtp_url to send it")
	} else {
		if sender, err = mail.NewSMTP(u, mail.SMTPOptions{}); err != nil {
			return nil, nil, fmt.Errorf("smtp_url: %w", err)
		}
		log.Info("mail sent by SMTP", "host", u.Host, "port", u.Port, "tls", u.TLS, "from", u.From)
	}
	mlog := log.With("component", "mail")
	queue, err := mail.NewQueue(sender, mail.QueueConfig{Log: mlog, Registry: reg})
	if err != nil {
		return nil, nil, err
	}
	n := mail.NewNotifier(mail.NotifierConfig{Store: store, Queue: queue, Outbox: outbox, PublicURL: publicURL, From: u.From, Now: now, Log: mlog})
	stop := sync.OnceFunc(func() {
		dctx, dcancel := context.WithTimeout(context.Background(), mailDrainTimeout)
		defer dcancel()
		if err := queue.Close(dctx); err != nil {
			log.Error("mail left unsent at shutdown", "err", err)
		}
	})
	return n, stop, nil
}

// mailJobs are the booking jobs that mail members, checked every minute:
// reminders of bookings starting soon, and bookings nobody claimed marked
// no_show (their slots released, their members told).
func mailJobs(n *mail.Notifier) []jobs.Job {
	return []jobs.Job{
		{Name: "reminders", Schedule: "0 * * * * *", Run: func(ctx context.Context) error {
			_, err := n.RemindDue(ctx)
			return err
		}},
		{Name: "no_shows", Schedule: "0 * * * * *", Run: func(ctx context.Context) error {
			_, err := n.ReleaseNoShows(ctx)
			return err
		}},
	}
}

// billingJobs bill the closed sessions every minute and issue the monthly
// invoices on the 1st at 02:00 lab time; at start, the invoices catch up on
// the months that ended while the server was down (lab.RunDueInvoices).
func billingJobs(store *bolt.Store, now func() time.Time) []jobs.Job {
	invoices := func(ctx context.Context) error {
		_, err := lab.RunDueInvoices(ctx, store, now())
		return err
	}
	return []jobs.Job{
		{Name: "billing", Schedule: "30 * * * * *", Run: func(ctx context.Context) error {
			_, err := lab.BillSessions(ctx, store)
			return err
		}},
		{Name: "invoices", Schedule: fmt.Sprintf("0 0 %d 1 * *", lab.InvoiceHour), Run: invoices, CatchUp: invoices},
	}
}

// seedDemo creates the demo lab at path, as of now, when there is no data
// file yet. It is seeded into a file of its own beside it and linked into
// place once complete: an interrupted seeding leaves no half-seeded lab
// behind, and of two servers seeding at once, one wins and the other leaves
// its copy unused. An existing data file is never touched.
func seedDemo(ctx context.Context, path string, now time.Time, log *slog.Logger) error {
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		return nil // an existing lab (or an unreadable path, which Open reports)
	}
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".seeding-*")
	if err != nil {
		return fmt.Errorf("seed demo lab: %w", err)
	}
	tmp := f.Name()
	f.Close()
	defer os.Remove(tmp)
	os.Remove(tmp) // bbolt creates it anew
	store, err := bolt.Open(tmp, bolt.Options{Timeout: time.Second, Now: func() time.Time { return now }})
	if err != nil {
		return fmt.Errorf("seed demo lab: %w", err)
	}
	_, err = demo.Seed(ctx, store, now, auth.OWASPParams)
	if cerr := store.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("seed demo lab: %w", err)
	}
	// A link never replaces an existing file, unlike a rename.
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil // another server seeded it first
		}
		return fmt.Errorf("seed demo lab: %w", err)
	}
	log.Info("demo lab seeded", "accounts", "see README: Demo accounts")
	return nil
}

// registerAccessMetrics exposes the access engine's counters, the
// broker's, the devices online and the data file's size.
func registerAccessMetrics(reg *prometheus.Registry, running *lab.Lab, dataFile string) {
	e := running.Engine
	for name, c := range map[string]*atomic.Int64{
		"fabgate_mqtt_messages_dropped_total": &e.Dropped,
		"fabgate_taps_duplicate_total":        &e.Replays,
		"fabgate_taps_granted_total":          &e.Granted,
		"fabgate_taps_denied_total":           &e.Denied,
		"fabgate_commands_retried_total":      &e.Retried,
		"fabgate_commands_unconfirmed_total":  &e.GaveUp,
	} {
		c := c
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: strings.ReplaceAll(strings.TrimPrefix(name, "fabgate_"), "_", " ")},
			func() float64 { return float64(c.Load()) }))
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "fabgate_commands_pending", Help: "Commands waiting for their ack."},
		func() float64 { return float64(e.PendingCommands()) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "fabgate_device_messages_dropped_total", Help: "Device messages lost because the device's queue was full."},
		func() float64 { return float64(running.Dropped()) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "fabgate_mqtt_connected", Help: "1 while the server's own MQTT client is connected to the broker (embedded or external), else 0."},
		func() float64 {
			if running.Client != nil && running.Client.Connected() {
				return 1
			}
			return 0
		}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "fabgate_devices_online", Help: "Devices the server hears from (a status or heartbeat within their offline timeout)."},
		func() float64 {
			n := 0
			for _, st := range e.DeviceStates() {
				if st.Online {
					n++
				}
			}
			return float64(n)
		}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "fabgate_data_file_bytes", Help: "Size of the data file (fabgate.db); it grows and never shrinks by itself."},
		func() float64 {
			fi, err := os.Stat(dataFile)
			if err != nil {
				return 0
			}
			return float64(fi.Size())
		}))
	if b := running.Broker; b != nil {
		for name, get := range map[string]func(mqtt.BrokerStats) uint64{
			"fabgate_mqtt_refused_connects_total":   func(s mqtt.BrokerStats) uint64 { return s.RefusedConnects },
			"fabgate_mqtt_refused_publishes_total":  func(s mqtt.BrokerStats) uint64 { return s.RefusedPublishes },
			"fabgate_mqtt_refused_subscribes_total": func(s mqtt.BrokerStats) uint64 { return s.RefusedSubscribes },
		} {
			reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: "Refused by the embedded broker's ACL: " + strings.TrimSuffix(strings.TrimPrefix(name, "fabgate_mqtt_refused_"), "_total") + "."},
				func() float64 { return float64(get(b.Stats())) }))
		}
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "fabgate_mqtt_dropped_connections_total", Help: "Connections the embedded broker's listener closed: over the connection caps, a failed TLS handshake, no CONNECT first, or a packet over its limit."},
			func() float64 { return float64(b.Stats().DroppedConnections) }))
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "fabgate_mqtt_clients", Help: "Clients connected to the embedded broker."},
			func() float64 { return float64(b.Stats().Clients) }))
	}
}

// mqttTLS builds the client TLS configuration of an ssl:// broker.
func mqttTLS(cfg Config) (*tls.Config, error) {
	if cfg.MQTTURL == "" || strings.HasPrefix(cfg.MQTTURL, "tcp://") {
		return nil, nil
	}
	t, err := mqtt.ClientTLS(cfg.MQTTCA, cfg.MQTTCert, cfg.MQTTKey)
	switch {
	case errors.Is(err, mqtt.ErrCAFile):
		return nil, fmt.Errorf("mqtt_ca: %w", err)
	case err != nil:
		return nil, fmt.Errorf("mqtt_cert/mqtt_key: %w", err)
	}
	return t, nil
}

// embeddedBrokerTLS loads the embedded broker's certificate and key, when
// it is given them; nil when it listens in plain TCP.
func embeddedBrokerTLS(cfg Config) (*tls.Config, error) {
	if cfg.MQTTURL != "" || cfg.MQTTTLSCert == "" {
		return nil, nil
	}
	t, err := mqtt.ServerTLS(cfg.MQTTTLSCert, cfg.MQTTTLSKey)
	if err != nil {
		return nil, fmt.Errorf("mqtt_tls_cert and mqtt_tls_key: %w (give --mqtt-tls-cert the broker's PEM certificate and --mqtt-tls-key its own private key)", err)
	}
	return t, nil
}

// certExpiryWarning is how long before its certificate expires the
// embedded broker warns at start.
const certExpiryWarning = 30 * 24 * time.Hour

// logBrokerSecurity says how devices reach the embedded broker: over TLS
// (warning of a certificate that has expired or soon will: bridges refuse
// it), or in clear beyond loopback (--mqtt-insecure-lan).
func logBrokerSecurity(log *slog.Logger, cfg Config, addr string, t *tls.Config, now time.Time) {
	if t == nil {
		if !onLoopback(cfg.MQTTListen) {
			log.Warn("the embedded MQTT broker listens beyond loopback without TLS (--mqtt-insecure-lan): device secrets cross the network in clear; give it --mqtt-tls-cert and --mqtt-tls-key", "addr", addr)
		}
		return
	}
	leaf := t.Certificates[0].Leaf
	names := append([]string{}, leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	attrs := []any{"addr", addr, "names", strings.Join(names, ","), "expires", leaf.NotAfter.UTC().Format(time.RFC3339)}
	switch {
	case now.After(leaf.NotAfter):
		log.Error("the embedded MQTT broker's certificate has expired: bridges refuse it; renew it and restart", attrs...)
	case now.Add(certExpiryWarning).After(leaf.NotAfter):
		log.Warn("the embedded MQTT broker's certificate expires soon: renew it and restart", attrs...)
	default:
		log.Info("the embedded MQTT broker speaks TLS", attrs...)
	}
}

// bridgeBrokerURL is the broker address a bridge at a machine connects to,
// for the configuration shown when a device is registered: the external
// broker, else the embedded one (ssl:// when it speaks TLS), reached on the
// public address's host when it listens on every interface or on loopback
// (a bridge runs on another computer).
func bridgeBrokerURL(cfg Config, publicURL string) string {
	if cfg.MQTTURL != "" {
		return cfg.MQTTURL
	}
	host, port, err := net.SplitHostPort(cfg.MQTTListen)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || host == "localhost" || (ip != nil && (ip.IsUnspecified() || ip.IsLoopback())) {
		if u, err := url.Parse(publicURL); err == nil && u.Hostname() != "" {
			host = u.Hostname()
		}
	}
	scheme := "tcp"
	if cfg.MQTTTLSCert != "" {
		scheme = "ssl"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}
