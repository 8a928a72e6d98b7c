package lab_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/bolt/bolttest"
	"github.com/fabgate/fabgate/internal/devicesim"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/httpapi"
	"github.com/fabgate/fabgate/internal/jobs"
	"github.com/fabgate/fabgate/internal/lab"
	"github.com/fabgate/fabgate/internal/logbuf"
	"github.com/fabgate/fabgate/internal/mail"
	"github.com/fabgate/fabgate/internal/mqtt"
	"github.com/fabgate/fabgate/internal/wire"
)

// TestLabModel is a model-based test of the whole lab: rapid draws random
// sequences of what happens in a lab — bookings (valid, overlapping,
// outside the opening hours, too long, misaligned, too far ahead, by a
// suspended member, without the training), cancellations (before and
// after the cutoff, by staff, by someone else), badge taps on the devices
// (every reason of DESIGN §3 the lab can produce, tap-outs, staff taking a
// machine over), the clock moving (sessions warned and locked at their
// end), the no-show, billing and invoice jobs, invoice runs by staff over
// HTTP, and restarts of the server over the same data file — and drives a
// real lab with them: a bbolt file, the embedded broker, simulated devices
// over MQTT, the HTTP API, the jobs, on a fake clock.
//
// The test keeps its own small model of the lab (bookings and their
// states, sessions and how they ended, charges priced from its own copy of
// the tariff, invoices and their numbers) and after every step compares it
// with the real one: each tap's answer, each booking's acceptance or
// refusal code, the bookings, the sessions, the devices' relays, the
// ledger and the invoices; and it runs the store's invariant checks.
//
// By default it runs modelChecks random labs (under a minute with -race on
// two cores). Run it longer with -rapid.checks (or RAPID_CHECKS):
//
//	go test -race -run TestLabModel ./internal/lab -rapid.checks=1000 -timeout 2h
//
// (make soak-model does so); -rapid.steps sets the average number of
// steps of each lab (30). A failure prints the steps that led to it and
// how to replay it (-rapid.failfile or -rapid.seed).
func TestLabModel(t *testing.T) {
	defaultChecks(t, modelChecks)
	stats := &modelStats{n: map[string]int{}, d: map[string]time.Duration{}}
	t.Cleanup(func() { t.Logf("what the labs did:\n%s", stats) })
	tmpl := seedTemplate(t)
	rapid.Check(t, func(rt *rapid.T) {
		var m *modelLab
		stats.timed("setup", func(rt *rapid.T) { m = newModelLab(t, rt, tmpl) })(rt)
		m.stats = stats
		rt.Repeat(map[string]func(*rapid.T){
			"book":       stats.timed("book", m.actBook),
			"cancel":     stats.timed("cancel", m.actCancel),
			"tap":        stats.timed("tap", m.actTap),
			"tap_booked": stats.timed("tap_booked", m.actTapBooked),
			"tap_out":    stats.timed("tap_out", m.actTapOut),
			"advance":    stats.timed("advance", m.actAdvance),
			"job":        stats.timed("job", m.actJob),
			"device":     stats.timed("device", m.actDevice),
			"":           stats.timed("check", m.check),
		})
	})
}

// modelChecks is how many random labs TestLabModel runs unless
// -rapid.checks or RAPID_CHECKS says otherwise (rapid's default of 100 labs
// would take minutes).
const modelChecks = 30

// defaultChecks sets rapid's number of checks to n for the test, unless it
// was given on the command line or in the environment.
func defaultChecks(t *testing.T, n int) {
	if os.Getenv("RAPID_CHECKS") != "" {
		return
	}
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "rapid.checks" })
	f := flag.Lookup("rapid.checks")
	if given || f == nil {
		return
	}
	old := f.Value.String()
	if err := f.Value.Set(strconv.Itoa(n)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Value.Set(old) })
}

// modelStats counts what the random labs did (go test -v shows it), to
// see that the steps drawn reach every outcome.
type modelStats struct {
	mu sync.Mutex
	n  map[string]int
	d  map[string]time.Duration
}

// timed counts the time spent in a kind of step.
func (st *modelStats) timed(name string, f func(*rapid.T)) func(*rapid.T) {
	return func(rt *rapid.T) {
		start := time.Now()
		defer func() {
			st.mu.Lock()
			st.d["time in "+name] += time.Since(start)
			st.mu.Unlock()
		}()
		f(rt)
	}
}

func (st *modelStats) add(format string, args ...any) {
	st.mu.Lock()
	st.n[fmt.Sprintf(format, args...)]++
	st.mu.Unlock()
}

func (st *modelStats) String() string {
	st.mu.Lock()
	defer st.mu.Unlock()
	keys := make([]string, 0, len(st.n))
	for k := range st.n {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%6d  %s\n", st.n[k], k)
	}
	keys = keys[:0]
	for k := range st.d {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%6.1fs %s\n", st.d[k].Seconds(), k)
	}
	return b.String()
}

// The model's lab: what the test created, as it knows it.

type mMachine struct {
	name, dev   string
	id          fablab.ID
	training    bool // requires the laser training
	maintenance bool
	prices      map[string]int64 // cents per hour by tariff group
	minCharge   int64
	noShowFee   int64
	// Booking rules, in minutes.
	slot, minLen, maxLen, maxAhead, cutoff, checkIn, release, maxWalkIn int
	device                                                              *devicesim.Device
}

type mMember struct {
	name, uid string
	id        fablab.ID // 0: the unknown badge
	staff     bool
	suspended bool
	group     string       // the tariff group whose rates apply
	payer     fablab.Payer // who is invoiced
	trained   bool
	qualUntil time.Time // the training's expiry (zero: none)
	token     string
}

// qualified reports whether the member holds the laser training at t.
func (w *mMember) qualified(t time.Time) bool {
	return w.trained && (w.qualUntil.IsZero() || t.Before(w.qualUntil))
}

type mBooking struct {
	id         fablab.ID
	mach       *mMachine
	who        *mMember
	start, end time.Time
	state      string
}

// GoString keeps rapid's account of the steps short.
func (w *mMember) GoString() string { return w.name }

// GoString keeps rapid's account of the steps short.
func (mm *mMachine) GoString() string { return mm.name }

// GoString keeps rapid's account of the steps short.
func (b *mBooking) GoString() string {
	return fmt.Sprintf("booking %s of %s on %s %s–%s (%s)", b.id, b.who.name, b.mach.name, local(b.start).Format("Mon 02 15:04"), local(b.end).Format("15:04"), b.state)
}

// GoString keeps rapid's account of the steps short.
func (s *mSession) GoString() string {
	return fmt.Sprintf("session %s of %s on %s from %s until %s", s.id, s.who.name, s.mach.name, local(s.started).Format("Mon 02 15:04:05"), local(s.until).Format("15:04:05"))
}

func (b *mBooking) occupies() bool { return b.state == fablab.BookingConfirmed }

type mSession struct {
	id             fablab.ID
	mach           *mMachine
	who            *mMember
	booking        fablab.ID
	started, until time.Time
	ended          time.Time // zero while open
	reason         string
	confirmed      bool // the relay acknowledged the unlock
	endedBy        fablab.ID
	warned         bool // the engine has warned the reader (forgotten at a restart)
	charge         *mCharge
}

func (s *mSession) open() bool { return s.ended.IsZero() }

type mCharge struct {
	kind    string
	session *mSession
	booking *mBooking
	who     *mMember
	mach    *mMachine
	at      time.Time
	minutes int64
	unit    int64
	amount  int64
	free    string
	invoice *mInvoice
}

type mInvoice struct {
	period  string
	payer   fablab.Payer
	issued  time.Time
	charges []*mCharge // its lines: the charges of non-zero amount it took
	total   int64
}

// The lab's constants, as the test sets them up.
const (
	modelVAT       = 2000 // basis points
	modelIncrement = 5    // minutes
	modelFreeUnder = 2    // minutes
	modelPrefix    = "FG"
	modelSecret    = "secret-of-every-device"
	modelHorizon   = 24 * time.Hour // how far back the no-show job looks (mail.noShowHorizon)
	modelWarn      = 5 * time.Minute
	modelOffline   = 90 * time.Second // a device silent longer is offline (3 heartbeats)
)

// modelStarts are the days a random lab starts on: before the spring DST
// change and the end of March, the last days of months, before the autumn
// DST change, the last day of the year.
var modelStarts = []time.Time{
	time.Date(2026, 3, 27, 0, 0, 0, 0, paris),  // Friday
	time.Date(2026, 3, 31, 0, 0, 0, 0, paris),  // Tuesday
	time.Date(2026, 6, 30, 0, 0, 0, 0, paris),  // Tuesday
	time.Date(2026, 10, 23, 0, 0, 0, 0, paris), // Friday
	time.Date(2026, 10, 30, 0, 0, 0, 0, paris), // Friday
	time.Date(2026, 12, 31, 0, 0, 0, 0, paris), // Thursday
}

// modelDeviceAuth admits the lab's devices, all with modelSecret.
type modelDeviceAuth struct{}

func (modelDeviceAuth) VerifyDevice(_ context.Context, id, secret string) (bool, error) {
	return strings.HasSuffix(id, "-1") && secret == modelSecret, nil
}

// modelLab is one random lab: the real one and the model of it.
type modelLab struct {
	t     *testing.T
	rt    *rapid.T
	ctx   context.Context
	clock *bolttest.Clock
	logs  *logbuf.Buffer
	log   *slog.Logger
	dir   string
	store *bolt.Store

	broker     *mqtt.Broker // the test's own: it outlives the server's restarts
	brokerURL  string
	serverPass string
	topics     wire.Topics
	lab        *lab.Lab
	api        http.Handler
	outbox     *mail.Outbox
	queue      *mail.Queue
	touched    map[*mMachine]bool      // devices whose relay a step may have changed
	lastSeen   map[*mMachine]time.Time // the server's last sign of life from each device
	// lastSweep and watchingSince: the sweep judges a device silent only
	// when the server has swept without a gap longer than the offline
	// timeout for longer than that timeout (a clock jump or a stalled
	// server is not the devices' silence).
	lastSweep, watchingSince time.Time
	stats                    *modelStats
	unacked                  *mMachine // the device whose relay does not acknowledge
	acks                     *ackObserver

	machines       []*mMachine
	members        []*mMember
	sam, ada, bob  *mMember
	ugo, sue, nemo *mMember

	started  time.Time // when invoicing started (the first start's catch-up)
	bookings []*mBooking
	sessions []*mSession
	charges  []*mCharge
	invoices []*mInvoice
	runs     map[string][]*mInvoice // periods run, with the invoices issued
	numbers  map[string][]string    // the numbers each period's run took
	lastNum  map[int]int            // the last invoice number of each year
}

func newModelLab(t *testing.T, rt *rapid.T, tmpl *modelTemplate) *modelLab {
	day := rapid.SampledFrom(modelStarts).Draw(rt, "start_day")
	start := day.Add(time.Duration(rapid.IntRange(8*60, 20*60).Draw(rt, "start_minute")) * time.Minute)
	logs := &logbuf.Buffer{}
	m := &modelLab{
		t: t, rt: rt, ctx: context.Background(), clock: bolttest.NewClock(start), logs: logs,
		log:     slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		touched: map[*mMachine]bool{}, lastSeen: map[*mMachine]time.Time{}, runs: map[string][]*mInvoice{}, numbers: map[string][]string{}, lastNum: map[int]int{},
		started: start,
	}
	rt.Cleanup(func() {
		if rt.Failed() {
			rt.Logf("lab log (tail):\n%s", tail(logs.String(), 150))
		}
	})
	var err error
	if m.topics, err = wire.NewTopics(wire.DefaultPrefix); err != nil {
		rt.Fatal(err)
	}
	if m.dir, err = os.MkdirTemp("", "fabgate-model-"); err != nil {
		rt.Fatal(err)
	}
	rt.Cleanup(func() { os.RemoveAll(m.dir) })
	m.fromTemplate(rt, tmpl)

	m.serverPass = randomToken()
	m.broker, err = mqtt.StartBroker(mqtt.BrokerConfig{Listen: "127.0.0.1:0", Devices: modelDeviceAuth{},
		ServerUser: serverUser, ServerPassword: m.serverPass, Log: m.log.With("component", "test-broker")})
	if err != nil {
		rt.Fatalf("start the embedded broker: %v", err)
	}
	m.brokerURL = "tcp://" + m.broker.Addr()
	rt.Cleanup(func() {
		if err := m.broker.Close(); err != nil {
			rt.Errorf("close broker: %v", err)
		}
	})
	m.acks = observeAcks(rt, m)
	m.startLab()
	rt.Cleanup(m.stopLab)
	m.catchUp()
	for _, mach := range m.machines {
		ctx, cancel := context.WithTimeout(m.ctx, waitLong)
		d, err := devicesim.Start(ctx, devicesim.Config{Broker: m.brokerURL, ID: mach.dev, Secret: modelSecret, Now: m.clock.Now,
			Log: m.log.With("component", "devicesim", "device", mach.dev)})
		cancel()
		if err != nil {
			rt.Fatalf("start device %s: %v", mach.dev, err)
		}
		mach.device = d
		rt.Cleanup(d.Close)
	}
	m.waitDevices()
	for _, mach := range m.machines {
		m.lastSeen[mach] = m.clock.Now()
	}
	return m
}

func tail(s string, lines int) string {
	all := strings.Split(s, "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

func (m *modelLab) openStore() {
	s, err := bolt.Open(filepath.Join(m.dir, "fabgate.db"), bolt.Options{Timeout: time.Second, Now: m.clock.Now})
	if err != nil {
		m.rt.Fatalf("open the data file: %v", err)
	}
	m.store = s
}

func (m *modelLab) closeStore() {
	if m.store == nil {
		return
	}
	if err := m.store.Check(); err != nil {
		m.rt.Errorf("store consistency check: %v", err)
	}
	if err := m.store.Close(); err != nil {
		m.rt.Errorf("close store: %v", err)
	}
	m.store = nil
}

// modelTemplate is the lab every random lab starts from: seeded once into
// a data file that each copies (seeding takes some thirty commits).
type modelTemplate struct {
	path     string
	training fablab.ID
	machines []mMachine
	members  []mMember // sam, ada, bob, ugo, sue
}

// seedTemplate creates the lab in a data file of its own: 20 % VAT,
// billed by 5 minutes, under 2 minutes free; a laser (training, no-show
// fee, 2 h at most, walk-ins of 1 h), a 3D printer (minimum charge, its own
// cutoff, check-in and release) and a resin printer in maintenance; a staff
// member, two trained makers (bob's organisation pays for him, and each
// lab gives his training an expiry), a maker without the training, a
// suspended one. Every member has an API token.
func seedTemplate(t *testing.T) *modelTemplate {
	ctx := context.Background()
	tmpl := &modelTemplate{path: filepath.Join(t.TempDir(), "template.db")}
	now := modelStarts[0].Add(-30 * 24 * time.Hour)
	s, err := bolt.Open(tmpl.path, bolt.Options{Timeout: time.Second, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("seed: %v", err)
		}
	}
	st, err := s.UpdateSettings(ctx, func(st *fablab.Settings) error {
		st.VATRateBasisPoints, st.VATMention = modelVAT, ""
		st.BillingIncrementMin, st.FreeUnderMinutes = modelIncrement, modelFreeUnder
		st.InvoicePrefix, st.PaymentTermsDays = modelPrefix, 30
		return nil
	})
	must(err)
	if st.TimeZone != "Europe/Paris" || st.OpeningHours.Monday[0] != (fablab.TimeRange{Open: 9 * 60, Close: 21 * 60}) ||
		st.OpeningHours.Saturday[0] != (fablab.TimeRange{Open: 10 * 60, Close: 18 * 60}) || len(st.OpeningHours.Sunday) != 0 {
		t.Fatalf("a new lab's settings are not DESIGN's: %+v", st)
	}
	if r := st.DefaultRules; r.SlotMinutes != 30 || r.MinMinutes != 30 || r.MaxAheadDays != 28 || !r.WalkIn || !r.RequireTraining || r.WeeklyQuotaMinutes != 0 {
		t.Fatalf("default booking rules changed: %+v", r)
	}
	training, err := s.CreateTraining(ctx, fablab.Training{Name: laserTraining, ValidityMonths: 12})
	must(err)
	tmpl.training = training.ID
	hash, err := mqtt.MosquittoPasswordHash(modelSecret)
	must(err)

	machine := func(mm mMachine, kind string) {
		r := st.DefaultRules
		r.MaxMinutes, r.CancelCutoffMinutes, r.CheckInMinutes, r.NoShowReleaseMinutes, r.MaxWalkInMinutes = mm.maxLen, mm.cutoff, mm.checkIn, mm.release, mm.maxWalkIn
		mm.slot, mm.minLen, mm.maxAhead = r.SlotMinutes, r.MinMinutes, r.MaxAheadDays
		fm := fablab.Machine{Name: mm.name, Kind: kind, Rules: r, Prices: mm.prices, MinimumChargeCents: mm.minCharge, NoShowFeeCents: mm.noShowFee}
		if mm.training {
			fm.RequiredTrainings = []fablab.ID{training.ID}
		}
		if mm.maintenance {
			fm.State = fablab.MachineMaintenance
		}
		created, err := s.CreateMachine(ctx, fm)
		must(err)
		mm.id = created.ID
		_, err = s.CreateDevice(ctx, fablab.Device{ID: mm.dev, MachineID: created.ID, SecretHash: hash})
		must(err)
		tmpl.machines = append(tmpl.machines, mm)
	}
	machine(mMachine{name: "Laser", dev: devLaser, training: true, prices: map[string]int64{"student": 1250, "sme": 3600, "association": 2400},
		noShowFee: 1000, maxLen: 120, cutoff: 120, checkIn: 15, release: 15, maxWalkIn: 60}, fablab.KindLaserCutter)
	machine(mMachine{name: "Printer", dev: devPrinter, prices: map[string]int64{"student": 300, "academic": 380, "sme": 600},
		minCharge: 200, maxLen: 240, cutoff: 60, checkIn: 10, release: 20, maxWalkIn: 120}, fablab.Kind3DPrinter)
	machine(mMachine{name: "Resin", dev: devResin, maintenance: true, prices: map[string]int64{"student": 900},
		maxLen: 240, cutoff: 120, checkIn: 15, release: 15, maxWalkIn: 120}, "resin-printer")

	org, err := s.CreateOrganisation(ctx, fablab.Organisation{Name: "Atelier Durand SARL", Group: "sme", BillingAddress: "12 rue des Forges, 38000 Grenoble"})
	must(err)
	add := func(w mMember, fm fablab.Member) {
		fm.Email, fm.Name = w.name+"@lab.example", w.name
		created, err := s.CreateMember(ctx, fm)
		must(err)
		w.id = created.ID
		w.staff = fm.Role == fablab.RoleStaff
		w.suspended = fm.Status == fablab.StatusSuspended
		if w.group == "" {
			w.group = fm.Group
		}
		w.payer = fablab.Payer{Kind: fablab.PayerIsMember, ID: created.ID}
		if fm.OrganisationID != 0 {
			w.payer = fablab.Payer{Kind: fablab.PayerIsOrganisation, ID: fm.OrganisationID}
		}
		_, err = s.AddBadge(ctx, fablab.Badge{Hash: auth.BadgeHash(s.BadgeSecret(), w.uid), MemberID: created.ID})
		must(err)
		if w.trained {
			grantor := created.ID
			if len(tmpl.members) > 0 {
				grantor = tmpl.members[0].id // sam
			}
			_, err = s.GrantQualification(ctx, fablab.Qualification{MemberID: created.ID, TrainingID: training.ID, GrantedBy: grantor})
			must(err)
		}
		w.token = auth.NewToken()
		must(s.PutToken(ctx, auth.TokenKey(w.token), bolt.Token{MemberID: created.ID, CSRF: "unused", CreatedAt: now, ExpiresAt: now.AddDate(5, 0, 0)}))
		tmpl.members = append(tmpl.members, w)
	}
	add(mMember{name: "sam", uid: uidSam, trained: true}, fablab.Member{Role: fablab.RoleStaff, Group: "staff"})
	add(mMember{name: "ada", uid: uidAda, trained: true}, fablab.Member{Group: "student"})
	add(mMember{name: "bob", uid: uidBob, trained: true, group: "sme"}, fablab.Member{OrganisationID: org.ID})
	add(mMember{name: "ugo", uid: uidUntrained}, fablab.Member{Group: "academic"})
	add(mMember{name: "sue", uid: uidSuspended, trained: true}, fablab.Member{Group: "association", Status: fablab.StatusSuspended})
	must(s.Close())
	return tmpl
}

// fromTemplate copies the template's data file into the lab's directory
// and its lab into the model; bob's training gets its expiry.
func (m *modelLab) fromTemplate(rt *rapid.T, tmpl *modelTemplate) {
	data, err := os.ReadFile(tmpl.path)
	if err != nil {
		rt.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(m.dir, "fabgate.db"), data, 0o600); err != nil {
		rt.Fatal(err)
	}
	for _, mm := range tmpl.machines {
		c := mm
		m.machines = append(m.machines, &c)
	}
	for _, w := range tmpl.members {
		c := w
		m.members = append(m.members, &c)
	}
	m.sam, m.ada, m.bob, m.ugo, m.sue = m.members[0], m.members[1], m.members[2], m.members[3], m.members[4]
	m.nemo = &mMember{name: "nobody", uid: uidUnknown}
	m.openStore()
	rt.Cleanup(m.closeStore)
	m.bob.qualUntil = m.clock.Now().Add(time.Duration(rapid.IntRange(1, 72).Draw(rt, "bob_training_hours")) * time.Hour)
	if _, err := m.store.GrantQualification(m.ctx, fablab.Qualification{MemberID: m.bob.id, TrainingID: tmpl.training, GrantedBy: m.sam.id, ExpiresAt: &m.bob.qualUntil}); err != nil {
		rt.Fatal(err)
	}
}

// startLab starts the server on the store: the access side on the test's
// broker with a manual schedule, the jobs `fabgate serve` adds (no-shows,
// billing, invoices) and the HTTP API.
func (m *modelLab) startLab() {
	store, now := m.store, m.clock.Now
	m.outbox = mail.NewOutbox(1000)
	q, err := mail.NewQueue(m.outbox, mail.QueueConfig{Log: m.log.With("component", "mail")})
	if err != nil {
		m.rt.Fatal(err)
	}
	m.queue = q
	notifier := mail.NewNotifier(mail.NotifierConfig{Store: store, Queue: q, Outbox: m.outbox,
		PublicURL: "https://fablab.example", From: "fablab@fablab.example", Now: now, Log: m.log.With("component", "mail")})
	invoices := func(ctx context.Context) error {
		_, err := lab.RunDueInvoices(ctx, store, now())
		return err
	}
	cfg := lab.Config{Store: store, Log: m.log, Now: now, Manual: true, URL: m.brokerURL, Username: serverUser, Password: m.serverPass,
		Jobs: []jobs.Job{
			{Name: "no_shows", Schedule: "0 * * * * *", Run: func(ctx context.Context) error {
				_, err := notifier.ReleaseNoShows(ctx)
				return err
			}},
			{Name: "billing", Schedule: "30 * * * * *", Run: func(ctx context.Context) error {
				_, err := lab.BillSessions(ctx, store)
				return err
			}},
			{Name: "invoices", Schedule: fmt.Sprintf("0 0 %d 1 * *", lab.InvoiceHour), Run: invoices, CatchUp: invoices},
		}}
	ctx, cancel := context.WithTimeout(m.ctx, 2*waitLong)
	defer cancel()
	l, err := lab.Start(ctx, cfg)
	if err != nil {
		m.rt.Fatalf("lab.Start: %v", err)
	}
	m.lab = l
	srv, err := httpapi.New(httpapi.Config{Store: store, Log: m.log.With("component", "http"), Now: now, Version: "test",
		PublicURL: "https://fablab.example", Access: l.Engine, Hub: l.Hub, Jobs: l.Jobs})
	if err != nil {
		m.rt.Fatalf("httpapi.New: %v", err)
	}
	m.api = srv.Handler()
}

// stopLab stops the server: the lab and the mail queue (what holds the
// store).
func (m *modelLab) stopLab() {
	if m.lab != nil {
		m.lab.Close()
		m.lab, m.api = nil, nil
	}
	if m.queue != nil {
		ctx, cancel := context.WithTimeout(m.ctx, waitLong)
		defer cancel()
		if err := m.queue.Close(ctx); err != nil {
			m.rt.Errorf("mail queue: %v", err)
		}
		m.queue = nil
	}
}

// catchUp runs the invoices job's catch-up, as a server does when it
// starts, and the model's.
func (m *modelLab) catchUp() {
	if err := m.lab.Jobs.RunNow(m.ctx, "invoices"); err != nil {
		m.rt.Fatalf("invoices catch-up: %v", err)
	}
	m.modelRunDue()
}

// waitDevices waits until the server knows every device, and has taken in
// their relay states.
func (m *modelLab) waitDevices() {
	for _, mach := range m.machines {
		dev := mach.dev
		m.eventually("the server to know device "+dev, func() bool {
			st, ok := m.lab.Engine.DeviceStates()[dev]
			return ok && st.BootID != "" && st.Relay != ""
		})
		m.barrier(mach)
	}
}

// eventually polls cond until it holds, failing after waitLong.
func (m *modelLab) eventually(what string, cond func() bool) {
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			m.rt.Fatalf("timed out after %s waiting for %s", waitLong, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// barrier waits until the server has handled every state message the
// device published before it (see env.barrier).
func (m *modelLab) barrier(mach *mMachine) { m.barrierOn(mach, wire.KindState) }

// barrierOn waits until the server has handled every message of kind the
// device published before it.
func (m *modelLab) barrierOn(mach *mMachine, kind wire.Kind) {
	before := m.lab.Engine.Dropped.Load()
	c := mach.device.Client()
	topic := m.topics.Device(mach.dev, kind)
	m.eventually("publish a barrier on "+topic, func() bool {
		ctx, cancel := context.WithTimeout(m.ctx, waitLong)
		defer cancel()
		err := c.Publish(ctx, mqtt.Message{Topic: topic, Payload: []byte("barrier"), QoS: 1})
		if err != nil && err != mqtt.ErrNotConnected {
			m.rt.Fatalf("publish barrier: %v", err)
		}
		return err == nil
	})
	m.eventually("the server to drop the barrier of "+mach.dev, func() bool { return m.lab.Engine.Dropped.Load() > before })
}

// ackObserver sees the devices' acks and states at the broker, as a
// second client of the server's user: what a device has published (from
// its own goroutines: an ack, the state after it) must be handled by the
// server before the clock moves, for the server takes a message's arrival
// as the device's sign of life at the clock's time.
type ackObserver struct {
	mu     sync.Mutex
	seen   map[string]bool       // cmd ids
	states map[string]wire.State // the last state of each device
}

func observeAcks(rt *rapid.T, m *modelLab) *ackObserver {
	o := &ackObserver{seen: map[string]bool{}, states: map[string]wire.State{}}
	ctx, cancel := context.WithTimeout(m.ctx, waitLong)
	defer cancel()
	c, err := mqtt.Connect(ctx, mqtt.ClientConfig{Broker: m.brokerURL, ClientID: "fabgate-model-observer", Username: serverUser, Password: m.serverPass,
		Log: m.log.With("component", "ack-observer")})
	if err != nil {
		rt.Fatalf("connect the ack observer: %v", err)
	}
	rt.Cleanup(func() { c.Close(nil) })
	err = c.Subscribe(m.topics.DeviceFilter(wire.KindAck), 1, func(_ string, payload []byte) {
		if ack, err := wire.DecodeAck(payload); err == nil {
			o.mu.Lock()
			o.seen[ack.CmdID] = true
			o.mu.Unlock()
		}
	})
	if err != nil {
		rt.Fatalf("subscribe the ack observer: %v", err)
	}
	err = c.Subscribe(m.topics.DeviceFilter(wire.KindState), 1, func(topic string, payload []byte) {
		dev, _, _ := m.topics.Parse(topic)
		if st, err := wire.DecodeState(payload); err == nil {
			o.mu.Lock()
			o.states[dev] = st
			o.mu.Unlock()
		}
	})
	if err != nil {
		rt.Fatalf("subscribe the state observer: %v", err)
	}
	return o
}

// stateSeen reports whether the device's last state at the broker is relay
// for session.
func (o *ackObserver) stateSeen(dev, relay, session string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	st, ok := o.states[dev]
	return ok && st.Relay == relay && st.SessionID == session
}

// ackHandled waits until the server has handled the device's ack of
// command cmdID, one the server does not wait for (a deny, a warn): the
// ack is the device's sign of life at the time the server handles it, so
// it must be handled before the clock moves.
func (m *modelLab) ackHandled(mach *mMachine, cmdID string) {
	m.eventually("the ack of "+cmdID+" at the broker", func() bool {
		m.acks.mu.Lock()
		defer m.acks.mu.Unlock()
		return m.acks.seen[cmdID]
	})
	m.barrierOn(mach, wire.KindAck)
}

// next waits for the next command the device receives.
func (m *modelLab) next(mach *mMachine, what string) wire.Command {
	ctx, cancel := context.WithTimeout(m.ctx, waitLong)
	defer cancel()
	c, err := mach.device.Next(ctx)
	if err != nil {
		m.rt.Fatalf("%s: waiting for %s: %v", mach.dev, what, err)
	}
	return c
}

// do sends an API request as who and returns the status and body.
func (m *modelLab) do(method, path string, who *mMember, body any) (int, []byte) {
	var r *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			m.rt.Fatal(err)
		}
		r = bytes.NewReader(b)
	} else {
		r = bytes.NewReader(nil)
	}
	req := httptest.NewRequest(method, path, r)
	req.Header.Set("Authorization", "Bearer "+who.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	w := httptest.NewRecorder()
	m.api.ServeHTTP(w, req)
	return w.Code, w.Body.Bytes()
}

// problemCode returns the problem+json code of a refusal.
func (m *modelLab) problemCode(status int, body []byte) string {
	var p struct {
		Code string `json:"code"`
	}
	if err := json.Unmarshal(body, &p); err != nil || p.Code == "" {
		m.rt.Fatalf("refusal %d without a problem code: %s", status, body)
	}
	return p.Code
}

// invariants runs the store's own invariant checks over the file, and
// over the relays as the devices report them (settled by check).
func (m *modelLab) invariants() {
	if err := m.store.CheckInvariants(m.ctx); err != nil {
		m.rt.Fatalf("the store's invariants: %v", err)
	}
	on := map[string]bool{}
	for _, mach := range m.machines {
		relay, _ := mach.device.Relay()
		on[mach.dev] = relay == wire.RelayOn
	}
	if err := m.store.CheckRelays(m.ctx, on); err != nil {
		m.rt.Fatalf("the relays: %v", err)
	}
}

// local is t in the lab's zone.
func local(t time.Time) time.Time { return t.In(paris) }

// periodEnd is the end of the calendar month p (YYYY-MM) in Paris.
func periodEnd(year int, month time.Month) time.Time {
	return time.Date(year, month+1, 1, 0, 0, 0, 0, paris)
}

func periodName(year int, month time.Month) string { return fmt.Sprintf("%04d-%02d", year, int(month)) }
