package lab_test

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/bolt/bolttest"
	"github.com/fabgate/fabgate/internal/booking"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/jobs"
	"github.com/fabgate/fabgate/internal/lab"
	"github.com/fabgate/fabgate/internal/lab/labtest"
	"github.com/fabgate/fabgate/internal/logbuf"
	"github.com/fabgate/fabgate/internal/mail"
	"github.com/fabgate/fabgate/internal/mqtt"
	"github.com/fabgate/fabgate/internal/mqtt/mqtttest"
	"github.com/fabgate/fabgate/internal/wire"
)

// TestMonthOfALab drives a whole month of a lab on a fake clock: March 2026
// in Paris, day by day, with bookings, sessions ended by tap-out and by
// their booking's end (with and without the laser's grace), walk-ins,
// no-shows, offline sessions replayed the same day and days later, the
// spring DST change (Sunday 29 March) crossed by a running session, and the
// change to April crossed while the server is down. March's invoices are
// issued once by the catch-up when the server comes back, a second run
// changes nothing, and April's follow with gap-free numbers.
//
// The test keeps its own model of what it did — every session's start, end
// and reason, every booking left unclaimed — and prices it with its own
// copy of the tariff: the ledger, the invoices, the payers' balances and
// the usage and revenue reports must agree with that model to the cent,
// every closed session charged exactly once, nothing billed twice,
// nothing lost.
func TestMonthOfALab(t *testing.T) {
	for _, kind := range []brokerKind{embedded, mosquitto} {
		t.Run(string(kind), func(t *testing.T) {
			if kind == mosquitto {
				mqtttest.RequireMosquitto(t)
			}
			newMonthLab(t, kind).run()
		})
	}
}

var paris = mustLocation("Europe/Paris")

// on is a wall-clock time of 2026 in Paris.
func on(month time.Month, day, hour, min int) time.Time {
	return time.Date(2026, month, day, hour, min, 0, 0, paris)
}

const (
	devCNC        = "cnc-1"
	vatRate       = 2000 // basis points: 20 %
	increment     = 5 * time.Minute
	freeUnder     = 2 * time.Minute
	graceMinutes  = 10
	walkInCap     = 120 * time.Minute
	noShowRelease = 15 * time.Minute
)

// monthMachine is a machine of the month's lab with the test's own copy of
// its tariff.
type monthMachine struct {
	fablab.Machine
	dev       *device
	devID     string
	prices    map[string]int64 // cents per hour by tariff group
	minCharge int64
	noShowFee int64
}

// monthMember is a member with what the test knows of how they pay.
type monthMember struct {
	member
	group string       // the tariff group whose rates apply
	payer fablab.Payer // who receives the invoices
	staff bool
	org   bool // paid for by the organisation
}

// modelSession is a session as the test ran it.
type modelSession struct {
	id             fablab.ID
	who            *monthMember
	mach           *monthMachine
	booking        fablab.ID
	started, until time.Time
	ended          time.Time
	reason         fablab.EndReason
	offline        bool
	charge         *modelCharge // once billed
}

// modelCharge is a ledger line as the test expects it.
type modelCharge struct {
	kind                           string
	session                        *modelSession // session charges
	booking                        fablab.ID     // no-show fees
	who                            *monthMember
	mach                           *monthMachine
	at                             time.Time
	minutes, prepaid, unit, amount int64 // unit: per hour (0 for a fee)
	free                           string
	prepaidBefore                  int64
	// invoice is the period whose run took the charge ("" until one has).
	invoice string
}

// modelCredit is a credit note the test issued: in the ledger, a
// correction of -amount dated when it was issued, on no machine and in no
// tariff group.
type modelCredit struct {
	at     time.Time
	org    fablab.ID // the organisation credited (0: none)
	amount int64     // excluding VAT
	period string    // the period of the invoice it corrects
}

// noShow is a booking the test leaves unclaimed.
type noShow struct {
	b      fablab.Booking
	who    *monthMember
	mach   *monthMachine
	marked bool
}

// monthLab is the lab of the month: an env (store, broker, lab, devices)
// whose store the test closes and opens again over the downtime, the
// billing and mail jobs registered as `fabgate serve` registers them, and
// the test's model.
type monthLab struct {
	*env
	ctx     context.Context
	path    string
	outbox  *mail.Outbox
	queue   *mail.Queue
	catchUp func(context.Context) error // the invoices job's catch-up

	laser, printer, cnc              *monthMachine
	ada, bob, chloe, david, eli, sam *monthMember
	org                              fablab.Organisation

	sessions []*modelSession
	charges  []*modelCharge
	credits  []modelCredit
	noShows  []*noShow
	bookings []fablab.Booking
	prepaid  map[fablab.ID]int64 // the model's prepaid balances
	issuedAt map[string]time.Time
}

func newMonthLab(t *testing.T, kind brokerKind) *monthLab {
	t.Helper()
	logs := &logbuf.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("lab log:\n%s", logs.String())
		}
	})
	e := &env{
		t: t, kind: kind, clock: bolttest.NewClock(on(time.March, 1, 8, 0)),
		log:     slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		secrets: map[string]string{}, raws: map[string]*mqtt.Client{},
	}
	var err error
	if e.topics, err = wire.NewTopics(wire.DefaultPrefix); err != nil {
		t.Fatal(err)
	}
	m := &monthLab{env: e, ctx: context.Background(), path: filepath.Join(t.TempDir(), "fabgate.db"),
		outbox: mail.NewOutbox(1000), prepaid: map[fablab.ID]int64{}, issuedAt: map[string]time.Time{}}
	m.openStore()
	t.Cleanup(m.closeStore)
	m.seed()
	if kind == mosquitto {
		// The broker outlives the server's downtime: devices stay connected.
		e.serverPass = randomToken()
		devices, err := e.store.Devices(m.ctx)
		if err != nil {
			t.Fatal(err)
		}
		hashes := map[string]string{}
		for _, d := range devices {
			hashes[d.ID] = d.SecretHash
		}
		dir := filepath.Join(t.TempDir(), "mosquitto")
		server := mqtt.MosquittoUser{Username: serverUser, Password: e.serverPass}
		if err := mqtt.WriteMosquittoConfig(dir, wire.DefaultPrefix, mqtttest.FreeAddr(t), server, hashes); err != nil {
			t.Fatal(err)
		}
		e.mosq = labtest.StartMosquitto(t, dir)
		e.url = "tcp://" + e.mosq.Addr()
	}
	m.start()
	t.Cleanup(m.stop)
	if e.url == "" {
		e.url = e.lab.URL
	}
	for _, mach := range []*monthMachine{m.laser, m.printer, m.cnc} {
		mach.dev = e.device(mach.devID)
	}
	return m
}

func (m *monthLab) openStore() {
	m.t.Helper()
	s, err := bolt.Open(m.path, bolt.Options{Now: m.clock.Now})
	if err != nil {
		m.t.Fatalf("open the data file: %v", err)
	}
	m.store = s
}

// closeStore checks the file's consistency and the lab's invariants, and
// closes it.
func (m *monthLab) closeStore() {
	if m.store == nil {
		return
	}
	if err := m.store.Check(); err != nil {
		m.t.Errorf("store consistency check: %v", err)
	}
	if err := m.store.CheckInvariants(context.Background()); err != nil {
		m.t.Errorf("store invariants: %v", err)
	}
	if err := m.store.Close(); err != nil {
		m.t.Errorf("close store: %v", err)
	}
	m.store = nil
}

// start starts the lab on the store with a manual schedule and the jobs
// `fabgate serve` adds to it: the no-show release (mailing the member),
// the billing every minute and the monthly invoices with their catch-up.
func (m *monthLab) start() {
	m.t.Helper()
	store, now := m.store, m.clock.Now
	q, err := mail.NewQueue(m.outbox, mail.QueueConfig{Log: m.log.With("component", "mail")})
	if err != nil {
		m.t.Fatal(err)
	}
	m.queue = q
	notifier := mail.NewNotifier(mail.NotifierConfig{Store: store, Queue: q, Outbox: m.outbox,
		PublicURL: "https://fablab.example", From: "fablab@fablab.example", Now: now, Log: m.log.With("component", "mail")})
	invoices := func(ctx context.Context) error {
		_, err := lab.RunDueInvoices(ctx, store, now())
		return err
	}
	m.catchUp = invoices
	cfg := lab.Config{Store: store, Log: m.log, Now: now, Manual: true, Jobs: []jobs.Job{
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
	switch {
	case m.serverPass != "":
		cfg.URL, cfg.Username, cfg.Password = m.url, serverUser, m.serverPass
	case m.lab != nil:
		cfg.Listen = m.lab.Broker.Addr() // the devices reconnect to the same address
	default:
		cfg.Listen = "127.0.0.1:0"
	}
	ctx, cancel := context.WithTimeout(m.ctx, 2*waitLong)
	defer cancel()
	l, err := lab.Start(ctx, cfg)
	if err != nil {
		m.t.Fatalf("lab.Start: %v", err)
	}
	m.lab, m.labClosed = l, false
}

// stop stops the lab and its mail queue (what holds the store).
func (m *monthLab) stop() {
	m.closeLab()
	if m.queue != nil {
		ctx, cancel := context.WithTimeout(m.ctx, waitLong)
		defer cancel()
		if err := m.queue.Close(ctx); err != nil {
			m.t.Errorf("mail queue: %v", err)
		}
		m.queue = nil
	}
}

// seed sets the lab up: Paris, 20 % VAT, a 5-minute billing increment,
// sessions under 2 minutes free, open on Saturday night into Sunday
// morning (a night of making over the DST change); a laser (training, a
// no-show fee, grace and idle power), a 3D printer with a minimum charge,
// a CNC mill without a student rate; makers of several tariff groups, an
// organisation paying for its two makers, a member with prepaid minutes,
// and a staff member.
func (m *monthLab) seed() {
	t, ctx, s := m.t, m.ctx, m.store
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.UpdateSettings(ctx, func(st *fablab.Settings) error {
		st.Name, st.TimeZone = "FabLab du Parc", "Europe/Paris"
		st.VATRateBasisPoints, st.VATMention = vatRate, ""
		st.BillingIncrementMin, st.FreeUnderMinutes = int(increment/time.Minute), int(freeUnder/time.Minute)
		st.PaymentTermsDays, st.InvoicePrefix = 30, "FG"
		st.OpeningHours.Saturday = []fablab.TimeRange{{Open: 10 * 60, Close: 24 * 60}}
		st.OpeningHours.Sunday = []fablab.TimeRange{{Open: 0, Close: 6 * 60}}
		return nil
	})
	must(err)
	training, err := s.CreateTraining(ctx, fablab.Training{Name: laserTraining, ValidityMonths: 12})
	must(err)
	machine := func(devID string, mm fablab.Machine, prices map[string]int64) *monthMachine {
		t.Helper()
		mm.Rules, mm.Prices = st.DefaultRules, maps.Clone(prices)
		created, err := s.CreateMachine(ctx, mm)
		must(err)
		secret := "secret-of-" + devID
		hash, err := mqtt.MosquittoPasswordHash(secret)
		must(err)
		_, err = s.CreateDevice(ctx, fablab.Device{ID: devID, MachineID: created.ID, SecretHash: hash})
		must(err)
		m.secrets[devID] = secret
		created, err = s.Machine(ctx, created.ID)
		must(err)
		return &monthMachine{Machine: created, devID: devID, prices: prices, minCharge: mm.MinimumChargeCents, noShowFee: mm.NoShowFeeCents}
	}
	m.laser = machine(devLaser, fablab.Machine{Name: "Laser CO2", Kind: fablab.KindLaserCutter, RequiredTrainings: []fablab.ID{training.ID},
		NoShowFeeCents: 1000, GraceMinutes: graceMinutes, IdlePowerW: 50},
		map[string]int64{"student": 1250, "academic": 1800, "sme": 3600, "association": 2400})
	m.printer = machine(devPrinter, fablab.Machine{Name: "Imprimante 3D", Kind: fablab.Kind3DPrinter, MinimumChargeCents: 200},
		map[string]int64{"student": 300, "academic": 380, "sme": 600, "association": 500})
	m.cnc = machine(devCNC, fablab.Machine{Name: "Fraiseuse CNC", Kind: fablab.KindCNC},
		map[string]int64{"academic": 2000, "sme": 4500, "association": 2990})

	m.org, err = s.CreateOrganisation(ctx, fablab.Organisation{Name: "Atelier Durand SARL", Group: "sme",
		BillingAddress: "12 rue des Forges, 38000 Grenoble", VATNumber: "FR32123456789"})
	must(err)
	exp := on(time.December, 31, 0, 0)
	add := func(name, uid string, fm fablab.Member, laser bool) *monthMember {
		t.Helper()
		fm.Email, fm.Name = name+"@lab.example", name
		fm, err := s.CreateMember(ctx, fm)
		must(err)
		_, err = s.AddBadge(ctx, fablab.Badge{Hash: auth.BadgeHash(s.BadgeSecret(), uid), MemberID: fm.ID})
		must(err)
		if laser {
			grantor := fm.ID
			if m.sam != nil {
				grantor = m.sam.ID
			}
			_, err = s.GrantQualification(ctx, fablab.Qualification{MemberID: fm.ID, TrainingID: training.ID, GrantedBy: grantor, ExpiresAt: &exp})
			must(err)
		}
		mm := &monthMember{member: member{Member: fm, uid: uid}, group: fm.Group, payer: fablab.Payer{Kind: fablab.PayerIsMember, ID: fm.ID},
			staff: fm.Role == fablab.RoleStaff}
		if fm.OrganisationID != 0 {
			mm.group, mm.org = m.org.Group, true
			mm.payer = fablab.Payer{Kind: fablab.PayerIsOrganisation, ID: m.org.ID}
		}
		m.prepaid[fm.ID] = fm.PrepaidMinutes
		return mm
	}
	m.sam = add("sam", "04A2B3C4D5E610", fablab.Member{Role: fablab.RoleStaff, Group: "staff"}, true)
	m.ada = add("ada", "04A2B3C4D5E611", fablab.Member{Group: "student"}, true)
	m.bob = add("bob", "04A2B3C4D5E612", fablab.Member{Group: "academic", PrepaidMinutes: 120}, true)
	m.chloe = add("chloe", "04A2B3C4D5E613", fablab.Member{OrganisationID: m.org.ID}, true)
	m.david = add("david", "04A2B3C4D5E614", fablab.Member{OrganisationID: m.org.ID}, false)
	m.eli = add("eli", "04A2B3C4D5E615", fablab.Member{Group: "association"}, true)
	if m.bob.PrepaidMinutes != 120 || m.chloe.Payer != fablab.PayerOrganisation || m.david.Payer != fablab.PayerOrganisation {
		t.Fatalf("members as stored: bob %+v, chloe %+v, david %+v", m.bob.Member, m.chloe.Member, m.david.Member)
	}
}

func (m *monthLab) members() []*monthMember {
	return []*monthMember{m.sam, m.ada, m.bob, m.chloe, m.david, m.eli}
}

// run walks the month.
func (m *monthLab) run() {
	t := m.t
	// The server starts on Sunday 1 March: the invoices' catch-up records
	// that invoicing starts now (no month is due).
	if err := m.catchUp(m.ctx); err != nil {
		t.Fatalf("catch-up at the first start: %v", err)
	}
	if ran, err := m.store.InvoicesRun(m.ctx, fablab.Period{Year: 2026, Month: time.February}); err != nil || ran {
		t.Fatalf("February run at the first start: %v %v", ran, err)
	}

	open := 0
	for day := 2; day <= 31; day++ {
		if on(time.March, day, 12, 0).Weekday() == time.Sunday {
			continue
		}
		m.clock.Set(on(time.March, day, 8, 0))
		switch day {
		case 2:
			m.prepaidFirst()
		case 4:
			m.morning(open)
			m.graceDay()
		case 5:
			m.morning(open)
			m.busyNextSlotAndNoShows()
		case 6:
			m.morning(open)
			m.shortSessions()
		case 11:
			m.morning(open)
			m.offlineSameDay()
		case 12:
			m.laserOfflineDay()
		case 16:
			m.replayDaysLater()
			m.ordinary(open)
		case 28:
			m.ordinary(open)
			m.nightOverDST()
		case 30:
			m.morning(open)
			m.afterDST()
		case 31:
			m.ordinary(open)
			m.lastDay()
		default:
			m.ordinary(open)
			if day == 3 {
				m.staffUse()
			}
		}
		m.evening(day, open)
		open++
	}
	m.downOverMonthChange()
	m.april()
	m.checkBooks()
}

// evening: the no-shows of the day are released, and the day is billed
// (twice on some days: a second run charges nothing).
func (m *monthLab) evening(day, open int) {
	if late := on(time.March, day, 21, 30); m.clock.Now().Before(late) {
		m.clock.Set(late)
	}
	m.runNoShows()
	m.bill()
	if open%4 == 3 {
		m.bill()
	}
}

// use is a member on a machine.
type use struct {
	who  *monthMember
	mach *monthMachine
}

func (m *monthLab) rotation() []use {
	return []use{{m.ada, m.laser}, {m.chloe, m.printer}, {m.eli, m.cnc}, {m.david, m.cnc}, {m.bob, m.printer},
		{m.ada, m.cnc}, {m.chloe, m.laser}, {m.eli, m.printer}, {m.david, m.printer}, {m.bob, m.laser},
		{m.sam, m.cnc}, {m.eli, m.laser}, {m.chloe, m.cnc}}
}

// opening is when the lab opens on the day of t.
func opening(t time.Time) time.Time {
	h := 9
	if t.Weekday() == time.Saturday {
		h = 10
	}
	return time.Date(t.Year(), t.Month(), t.Day(), h, 0, 0, 0, paris)
}

// morning books two slots in the morning and uses them: the first from
// 30 minutes after opening for 90 minutes, the second an hour long three
// hours after opening; each ends by a tap-out or at its end, depending on
// the day.
func (m *monthLab) morning(i int) {
	rot := m.rotation()
	o := opening(m.clock.Now())
	u1, u2 := rot[(2*i)%len(rot)], rot[(2*i+1)%len(rot)]
	b1 := m.book(u1.who, u1.mach, o.Add(30*time.Minute), o.Add(2*time.Hour))
	b2 := m.book(u2.who, u2.mach, o.Add(3*time.Hour), o.Add(4*time.Hour))

	s1 := m.tapIn(u1.who, u1.mach, b1.Start.Add(time.Duration(i%3)*time.Minute), b1.End, b1.ID)
	if i%2 == 0 {
		m.tapOut(s1, s1.started.Add(time.Duration(41+6*(i%5))*time.Minute+time.Duration(i%4)*13*time.Second))
	} else {
		m.expire(s1, 0, false)
	}
	if i%3 == 0 {
		m.bill() // the billing job also runs during the day
	}
	m.runNoShows()
	s2 := m.tapIn(u2.who, u2.mach, b2.Start, b2.End, b2.ID)
	if i%3 == 0 {
		m.expire(s2, 0, false)
	} else {
		m.tapOut(s2, s2.started.Add(time.Duration(23+i%7)*time.Minute+17*time.Second))
	}
}

// ordinary is a morning and, on some days, a walk-in in the afternoon.
func (m *monthLab) ordinary(i int) {
	m.morning(i)
	if i%3 == 1 {
		u := m.rotation()[(i+5)%len(m.rotation())]
		at := opening(m.clock.Now()).Add(5 * time.Hour)
		m.walkIn(u.who, u.mach, at, time.Duration(50+i)*time.Minute+29*time.Second)
	}
}

// prepaidFirst (Monday 2 March): bob's 120 prepaid minutes go first — an
// hour on the laser takes 60 of them, 90 minutes on the printer the other
// 60 and 30 minutes are billed (the printer's minimum charge applies), and
// his walk-in on the CNC is billed in full.
func (m *monthLab) prepaidFirst() {
	b1 := m.book(m.bob, m.laser, on(time.March, 2, 9, 0), on(time.March, 2, 10, 30))
	b2 := m.book(m.bob, m.printer, on(time.March, 2, 11, 0), on(time.March, 2, 12, 30))
	s1 := m.tapIn(m.bob, m.laser, b1.Start, b1.End, b1.ID)
	m.tapOut(s1, on(time.March, 2, 10, 0))
	m.bill()
	s2 := m.tapIn(m.bob, m.printer, b2.Start, b2.End, b2.ID)
	m.expire(s2, 0, false)
	s3 := m.walkIn(m.bob, m.cnc, on(time.March, 2, 14, 0), 35*time.Minute)
	m.bill()
	// Hand-computed: 60 prepaid; 60 prepaid + 30 min at 3.80 €/h = 1.90 €,
	// raised to the 2 € minimum; 35 min at 20 €/h = 11.67 €.
	m.spot(s1, 60, 60, 0, fablab.FreePrepaid)
	m.spot(s2, 90, 60, 200, "")
	m.spot(s3, 35, 0, 1167, "")
	if m.prepaid[m.bob.ID] != 0 {
		m.t.Errorf("bob's prepaid minutes after his first day: %d, want 0", m.prepaid[m.bob.ID])
	}
}

// staffUse (Tuesday 3 March): sam (staff) uses the laser for 40 minutes,
// free.
func (m *monthLab) staffUse() {
	s := m.walkIn(m.sam, m.laser, on(time.March, 3, 16, 0), 40*time.Minute)
	m.bill()
	m.spot(s, 40, 0, 0, fablab.FreeStaff)
}

// graceDay (Wednesday 4 March): ada's laser job still draws power at the
// end of her booking and nobody is booked next: the session gets the
// machine's 10 minutes of grace, and they are billed.
func (m *monthLab) graceDay() {
	b := m.book(m.ada, m.laser, on(time.March, 4, 14, 0), on(time.March, 4, 15, 0))
	s := m.tapIn(m.ada, m.laser, b.Start, b.End, b.ID)
	m.expire(s, 800, true)
	m.bill()
	m.spot(s, 70, 0, 1458, "") // 70 min at 12.50 €/h
}

// busyNextSlotAndNoShows (Thursday 5 March): chloe's laser job draws power
// at her booking's end, but eli has booked the next slot: no grace. Eli
// never comes (the laser's 10 € no-show fee), nor do david on the printer
// (no fee there) and sam on the laser (staff pay no fee).
func (m *monthLab) busyNextSlotAndNoShows() {
	b := m.book(m.chloe, m.laser, on(time.March, 5, 14, 0), on(time.March, 5, 15, 0))
	m.leaveUnclaimed(m.eli, m.laser, on(time.March, 5, 15, 0), on(time.March, 5, 16, 0))
	m.leaveUnclaimed(m.david, m.printer, on(time.March, 5, 16, 0), on(time.March, 5, 17, 0))
	m.leaveUnclaimed(m.sam, m.laser, on(time.March, 5, 17, 0), on(time.March, 5, 18, 0))
	s := m.tapIn(m.chloe, m.laser, b.Start, b.End, b.ID)
	m.expire(s, 800, false)
	m.clock.Set(on(time.March, 5, 15, 14))
	m.runNoShows() // too early for eli's
	m.clock.Set(on(time.March, 5, 15, 20))
	m.runNoShows()
	m.clock.Set(on(time.March, 5, 18, 20))
	m.runNoShows()
	m.bill()
	m.spot(s, 60, 0, 3600, "")
}

// shortSessions (Friday 6 March): david badges in and out within 90
// seconds (free: under 2 minutes), then uses the printer for exactly 2
// minutes (5 minutes billed, raised to the 2 € minimum).
func (m *monthLab) shortSessions() {
	s1 := m.walkIn(m.david, m.printer, on(time.March, 6, 14, 0), 90*time.Second)
	s2 := m.walkIn(m.david, m.printer, on(time.March, 6, 14, 30), 2*time.Minute)
	m.bill()
	m.spot(s1, 5, 0, 0, fablab.FreeShort)
	m.spot(s2, 5, 0, 200, "")
}

// offlineSameDay (Wednesday 11 March): the printer lost its link and let
// eli work 45 minutes on its own; it replays the session at 15:00.
func (m *monthLab) offlineSameDay() {
	m.clock.Set(on(time.March, 11, 15, 0))
	s := m.replay(m.eli, m.printer, "printer-1-offline-0311", on(time.March, 11, 14, 0), on(time.March, 11, 16, 0), on(time.March, 11, 14, 45))
	m.bill()
	m.spot(s, 45, 0, 375, "") // 45 min at 5 €/h
}

// laserOfflineDay (Thursday 12 March): the laser is offline all day (chloe
// uses it on its own, replayed on Monday); the CNC is used as usual.
func (m *monthLab) laserOfflineDay() {
	b1 := m.book(m.david, m.cnc, on(time.March, 12, 9, 30), on(time.March, 12, 11, 0))
	b2 := m.book(m.eli, m.cnc, on(time.March, 12, 14, 0), on(time.March, 12, 15, 0))
	s1 := m.tapIn(m.david, m.cnc, b1.Start, b1.End, b1.ID)
	m.tapOut(s1, on(time.March, 12, 10, 40))
	s2 := m.tapIn(m.eli, m.cnc, b2.Start, b2.End, b2.ID)
	m.expire(s2, 0, false)
}

// replayDaysLater (Monday 16 March): the laser is back and replays
// chloe's session of Thursday morning, billed to her organisation in March.
func (m *monthLab) replayDaysLater() {
	m.clock.Set(on(time.March, 16, 8, 5))
	s := m.replay(m.chloe, m.laser, "laser-1-offline-0312", on(time.March, 12, 10, 0), on(time.March, 12, 12, 0), on(time.March, 12, 11, 10))
	m.clock.Set(on(time.March, 16, 8, 10))
	m.bill()
	m.spot(s, 70, 0, 4200, "") // 70 min at 36 €/h
}

// nightOverDST (Saturday 28 March): ada books the laser from 23:00 to
// 04:00 on Sunday, when Paris moves from 02:00 to 03:00: four hours of
// real time (five on the wall clock), all of them used and billed.
func (m *monthLab) nightOverDST() {
	m.clock.Set(on(time.March, 28, 18, 30))
	b := m.book(m.ada, m.laser, on(time.March, 28, 23, 0), on(time.March, 29, 4, 0))
	if d := b.End.Sub(b.Start); d != 4*time.Hour {
		m.t.Fatalf("the night booking lasts %s, want 4h", d)
	}
	s := m.tapIn(m.ada, m.laser, b.Start, b.End, b.ID)
	m.expire(s, 0, false)
	m.bill()
	m.spot(s, 240, 0, 5000, "") // 4 h at 12.50 €/h, not 5
}

// afterDST (Monday 30 March, summer time): an hour on the CNC is an hour.
func (m *monthLab) afterDST() {
	b := m.book(m.david, m.cnc, on(time.March, 30, 14, 0), on(time.March, 30, 15, 0))
	s := m.tapIn(m.david, m.cnc, b.Start, b.End, b.ID)
	m.expire(s, 0, false)
	m.bill()
	m.spot(s, 60, 0, 4500, "")
}

// lastDay (Tuesday 31 March): chloe does not come for her laser slot at
// 18:00 (a fee for her organisation, in March).
func (m *monthLab) lastDay() {
	m.clock.Set(on(time.March, 31, 17, 0))
	m.leaveUnclaimed(m.chloe, m.laser, on(time.March, 31, 18, 0), on(time.March, 31, 19, 0))
	m.clock.Set(on(time.March, 31, 18, 20))
	m.runNoShows()
}

// downOverMonthChange: the server stops on 31 March at 21:30 and comes
// back on 2 April at 10:00, on the same data file. Meanwhile the devices
// ran sessions on their own, replayed when the server is back: ada on the
// printer on 31 March evening and on the laser from 23:40 to 00:25 (April
// in Paris, though still March in UTC), both replayed before the invoices'
// catch-up, the first on March's invoice, the second not; bob on the
// printer later that evening, replayed after the catch-up: a late March
// charge, on April's invoice.
func (m *monthLab) downOverMonthChange() {
	t := m.t
	m.stop()
	m.closeStore()
	m.clock.Set(on(time.April, 2, 10, 0))
	m.openStore()
	m.start()
	m.waitDevices()

	onTime := m.replay(m.ada, m.printer, "printer-1-q-0001", on(time.March, 31, 21, 40), on(time.March, 31, 23, 40), on(time.March, 31, 22, 20))
	midnight := m.replay(m.ada, m.laser, "laser-1-q-0001", on(time.March, 31, 23, 40), on(time.April, 1, 1, 40), on(time.April, 1, 0, 25))
	if midnight.ended.UTC().Day() != 31 {
		t.Fatalf("the midnight session should end on 31 March in UTC: %s", midnight.ended.UTC())
	}

	// The catch-up of the invoices job, as a scheduled start runs it.
	if err := m.catchUp(m.ctx); err != nil {
		t.Fatalf("invoices catch-up: %v", err)
	}
	m.modelBill()
	m.modelInvoiceRun(fablab.Period{Year: 2026, Month: time.March})
	for _, p := range []struct {
		month time.Month
		want  bool
	}{{time.February, false}, {time.March, true}, {time.April, false}} {
		if ran, err := m.store.InvoicesRun(m.ctx, fablab.Period{Year: 2026, Month: p.month}); err != nil || ran != p.want {
			t.Errorf("%s run after the catch-up: %v (%v), want %v", p.month, ran, err, p.want)
		}
	}
	if onTime.charge == nil || onTime.charge.invoice != "2026-03" {
		t.Errorf("the session replayed before the catch-up is not on March's invoices: %+v", onTime.charge)
	}

	late := m.replay(m.bob, m.printer, "printer-1-q-0002", on(time.March, 31, 22, 30), on(time.March, 31, 23, 59), on(time.March, 31, 23, 0))
	march := m.checkInvoices(fablab.Period{Year: 2026, Month: time.March})

	// Run again, by the job and directly: the same invoices, nothing new.
	if err := m.lab.Jobs.RunNow(m.ctx, "invoices"); err != nil {
		t.Fatalf("invoices job again: %v", err)
	}
	again, created, err := m.store.RunInvoices(m.ctx, fablab.Period{Year: 2026, Month: time.March})
	if err != nil || created {
		t.Fatalf("RunInvoices(March) again: created %v, %v", created, err)
	}
	if !reflect.DeepEqual(again, march) {
		t.Errorf("March's invoices run again:\n%+v\nwant\n%+v", again, march)
	}
	if all := m.allInvoices(); len(all) != len(march) {
		t.Errorf("%d invoices after running March again, want %d", len(all), len(march))
	}
	m.bill()
	if late.charge == nil || late.charge.invoice != "" || midnight.charge == nil || midnight.charge.invoice != "" {
		t.Errorf("the late charge and the charge of 1 April must wait for April's run: late %+v, midnight %+v", late.charge, midnight.charge)
	}
	m.checkUninvoiced()
}

// april: on 2 April eli uses the laser and chloe leaves a slot unclaimed;
// on 10 April the organisation gets a credit note on its March invoice and
// ada pays hers; on 1 May April's invoices are issued, numbered after
// March's and the credit note.
func (m *monthLab) april() {
	t := m.t
	b := m.book(m.eli, m.laser, on(time.April, 2, 10, 30), on(time.April, 2, 11, 30))
	m.leaveUnclaimed(m.chloe, m.laser, on(time.April, 2, 14, 0), on(time.April, 2, 15, 0))
	s := m.tapIn(m.eli, m.laser, b.Start, b.End, b.ID)
	m.tapOut(s, on(time.April, 2, 11, 15).Add(20*time.Second))
	m.clock.Set(on(time.April, 2, 14, 20))
	m.runNoShows()
	m.bill()
	m.checkUninvoiced()

	m.clock.Set(on(time.April, 10, 12, 0))
	march := m.checkInvoices(fablab.Period{Year: 2026, Month: time.March})
	var orgInv, adaInv fablab.Invoice
	for _, inv := range march {
		switch inv.Payer {
		case m.chloe.payer:
			orgInv = inv
		case m.ada.payer:
			adaInv = inv
		}
	}
	if orgInv.ID == 0 || adaInv.ID == 0 {
		t.Fatalf("March's invoices %+v: want one for the organisation and one for ada", march)
	}
	cn, err := m.store.CreditNote(m.ctx, orgInv.ID, 1500, -1, "Découpe ratée, machine déréglée", m.sam.ID)
	if err != nil {
		t.Fatalf("credit note: %v", err)
	}
	if cn.TotalExclCents != 1500 || cn.TotalVATCents != 300 || cn.Corrects != orgInv.ID || cn.Payer != orgInv.Payer {
		t.Errorf("credit note %+v", cn)
	}
	m.credits = append(m.credits, modelCredit{at: m.clock.Now(), org: m.org.ID, amount: 1500, period: orgInv.Period})
	if _, err := m.store.MarkPaid(m.ctx, adaInv.ID, fablab.DateOf(m.clock.Now().In(paris)), "transfer", "VIR-0410", m.sam.ID); err != nil {
		t.Fatalf("mark paid: %v", err)
	}

	// Nothing happens in the lab until May; April's invoices are issued on
	// the 1st at 02:00 (the job runs at 03:00 here: a little late).
	m.clock.Set(on(time.May, 1, 3, 0))
	if err := m.lab.Jobs.RunNow(m.ctx, "invoices"); err != nil {
		t.Fatalf("invoices job on 1 May: %v", err)
	}
	m.modelBill()
	m.modelInvoiceRun(fablab.Period{Year: 2026, Month: time.April})
	m.checkInvoices(fablab.Period{Year: 2026, Month: time.April})
	m.checkUninvoiced()

	// Balances: what was invoiced, credited and paid.
	for _, mm := range m.members() {
		if mm.org && mm != m.chloe {
			continue
		}
		bal, err := m.store.PayerBalance(m.ctx, mm.payer)
		if err != nil {
			t.Fatal(err)
		}
		var invoiced, credited, paid int64
		for _, inv := range m.allInvoices() {
			if inv.Payer != mm.payer {
				continue
			}
			if inv.Kind == fablab.InvoiceKindCreditNote {
				credited += inv.TotalInclCents
				continue
			}
			invoiced += inv.TotalInclCents
			if inv.ID == adaInv.ID {
				paid += inv.TotalInclCents
			}
		}
		want := bolt.Balance{Payer: mm.payer, InvoicedCents: invoiced, CreditedCents: credited, PaidCents: paid,
			OutstandingCents: invoiced - credited - paid}
		if bal != want {
			t.Errorf("%s's balance %+v, want %+v", mm.Name, bal, want)
		}
		if mm == m.chloe && credited != 1800 {
			t.Errorf("organisation credited %d cents, want the credit note's 18 €", credited)
		}
	}
}

// waitDevices waits until the restarted server knows every device again.
func (m *monthLab) waitDevices() {
	m.t.Helper()
	for _, mach := range []*monthMachine{m.laser, m.printer, m.cnc} {
		id := mach.devID
		m.eventually("the restarted server to know device "+id, func() bool {
			st, ok := m.lab.Engine.DeviceStates()[id]
			return ok && st.BootID != "" && st.Relay == wire.RelayOff
		})
		m.barrier(id, wire.KindState)
	}
}

// book books a slot through the store with the checks the API makes
// (booking.Check with the machine's rules, in the booking's transaction).
func (m *monthLab) book(who *monthMember, mach *monthMachine, start, end time.Time) fablab.Booking {
	m.t.Helper()
	now := m.clock.Now()
	b, err := m.store.CreateBooking(m.ctx, fablab.Booking{MachineID: mach.ID, MemberID: who.ID, Start: start, End: end, CreatedBy: who.ID},
		func(bc bolt.BookingContext) error {
			r := booking.Request{Start: start, End: end, Machine: bc.Machine, Member: bc.Member, Qualifications: bc.Qualifications}
			used := 0
			if bc.Machine.Rules.WeeklyQuotaMinutes > 0 {
				week := booking.WeekOf(bc.Settings, start)
				var err error
				if used, err = bc.MemberMinutes(week.Start, week.End); err != nil {
					return err
				}
			}
			return booking.Check(bc.Settings, r, now, used)
		})
	if err != nil {
		m.t.Fatalf("%s books %s from %s to %s: %v", who.Name, mach.Name, start, end, err)
	}
	m.bookings = append(m.bookings, b)
	return b
}

// leaveUnclaimed books a slot nobody will use.
func (m *monthLab) leaveUnclaimed(who *monthMember, mach *monthMachine, start, end time.Time) {
	m.t.Helper()
	b := m.book(who, mach, start, end)
	m.noShows = append(m.noShows, &noShow{b: b, who: who, mach: mach})
}

// tapIn taps who's badge on the machine at at and checks the grant.
func (m *monthLab) tapIn(who *monthMember, mach *monthMachine, at, until time.Time, bookingID fablab.ID) *modelSession {
	m.t.Helper()
	m.clock.Set(at)
	c, s := m.grant(mach.dev, who.member)
	if s.BookingID != bookingID || !s.Until.Equal(until) || c.Until != until.Unix() || !s.Started.Equal(at) || s.MachineID != mach.ID {
		m.t.Fatalf("%s on %s at %s: unlock %+v, session %+v; want booking %s until %s", who.Name, mach.Name, at, c, s, bookingID, until)
	}
	ms := &modelSession{id: s.ID, who: who, mach: mach, booking: bookingID, started: at, until: until}
	m.sessions = append(m.sessions, ms)
	return ms
}

// walkIn taps who in without a booking and out after d.
func (m *monthLab) walkIn(who *monthMember, mach *monthMachine, at time.Time, d time.Duration) *modelSession {
	m.t.Helper()
	until := at.Add(walkInCap)
	for _, b := range m.bookings {
		if b.MachineID == mach.ID && b.Start.After(at) && b.Start.Before(until) && !m.released(b.ID) {
			until = b.Start
		}
	}
	s := m.tapIn(who, mach, at, until, 0)
	if at.Add(d).After(until.Add(-5 * time.Minute)) {
		m.t.Fatalf("walk-in of %s from %s until %s: a tap-out after %s would meet the warning", who.Name, at, until, d)
	}
	m.tapOut(s, at.Add(d))
	return s
}

func (m *monthLab) released(id fablab.ID) bool {
	for _, ns := range m.noShows {
		if ns.b.ID == id && ns.marked {
			return true
		}
	}
	return false
}

// tapOut taps the member out at at.
func (m *monthLab) tapOut(s *modelSession, at time.Time) {
	m.t.Helper()
	m.clock.Set(at)
	d := s.mach.dev
	d.tap(s.who.uid)
	if l := d.expect(wire.OpLock); l.SessionID != s.id.String() || l.Reason != fablab.EndTapOut {
		m.t.Fatalf("tap-out of %s: lock %+v", s.who.Name, l)
	}
	m.waitEnded(s.id, fablab.EndTapOut)
	d.waitRelay(wire.RelayOff, "")
	m.settleState(d.id, wire.RelayOff, "")
	s.ended, s.reason = at, fablab.EndTapOut
}

// expire lets a session run to its end: warned 5 minutes before, its
// machine drawing power (watts, 0: no reading) when the grace is decided,
// locked at its until (after the grace when wantGrace).
func (m *monthLab) expire(s *modelSession, watts float64, wantGrace bool) {
	m.t.Helper()
	d, end := s.mach.dev, s.until
	m.sweepAt(d, end.Add(-5*time.Minute), 0)
	if w := d.expect(wire.OpWarn); w.SessionID != s.id.String() || w.Until != end.Unix() {
		m.t.Fatalf("warn %+v, want session %s until %s", w, s.id, end)
	}
	m.sweepAt(d, end.Add(-20*time.Second), watts)
	if wantGrace {
		grace := end.Add(time.Duration(s.mach.GraceMinutes) * time.Minute)
		u := d.expect(wire.OpUnlock)
		if u.SessionID != s.id.String() || u.Until != grace.Unix() {
			m.t.Fatalf("grace unlock %+v, want session %s until %s", u, s.id, grace)
		}
		m.eventually("the grace extension acknowledged", func() bool { return m.lab.Engine.PendingCommands() == 0 })
		s.until = grace
		m.sweepAt(d, end, 0)
		d.quiet() // not locked at the booking's end
	}
	m.sweepAt(d, s.until, 0)
	if l := d.expect(wire.OpLock); l.SessionID != s.id.String() || l.Reason != fablab.EndBookingEnd {
		m.t.Fatalf("lock at the end: %+v", l)
	}
	got := m.waitEnded(s.id, fablab.EndBookingEnd)
	if !got.Ended.Equal(s.until) || !got.Until.Equal(s.until) {
		m.t.Fatalf("session ended %s (until %s), want both at %s", got.Ended, got.Until, s.until)
	}
	d.waitRelay(wire.RelayOff, "")
	m.settleState(d.id, wire.RelayOff, "")
	s.ended, s.reason = s.until, fablab.EndBookingEnd
}

// sweepAt moves the clock to at, keeps the device alive (with a power
// reading of watts, or none) and runs the sessions sweep.
func (m *monthLab) sweepAt(d *device, at time.Time, watts float64) {
	m.t.Helper()
	m.clock.Set(at)
	if watts > 0 {
		relay, sid := d.Relay()
		hb, err := wire.Encode(&wire.Heartbeat{TS: at.Unix(), UptimeS: 3600, Relay: relay, SessionID: sid, PowerW: &watts})
		if err != nil {
			m.t.Fatal(err)
		}
		m.publishAs(d.id, m.topics.Device(d.id, wire.KindHeartbeat), hb)
		m.eventually(fmt.Sprintf("%s drawing %.0f W", d.id, watts), func() bool {
			st := m.lab.Engine.DeviceStates()[d.id]
			return st.LastSeen != nil && st.LastSeen.Equal(at) && st.PowerW != nil && *st.PowerW == watts
		})
	} else {
		d.heartbeat()
	}
	if err := m.lab.Jobs.RunNow(m.ctx, "sessions_sweep"); err != nil {
		m.t.Fatalf("sweep: %v", err)
	}
}

// replay publishes a session the device granted alone, as its offline
// queue replays it (twice: the second copy is recognised), and waits until
// the server has recorded it.
func (m *monthLab) replay(who *monthMember, mach *monthMachine, msgID string, start, until, ended time.Time) *modelSession {
	m.t.Helper()
	tap := wire.Tap{MsgID: msgID, TS: start.Unix(), UID: who.uid, Offline: true, Result: wire.TapGranted,
		SessionID: wire.OfflineSessionPrefix + msgID, Until: until.Unix(), Ended: ended.Unix()}
	mach.dev.publishTap(tap)
	var s fablab.Session
	m.eventually("the replayed session "+msgID, func() bool {
		ss, err := m.store.SessionsOfMachine(m.ctx, mach.ID, start.Add(-time.Minute), start.Add(time.Minute))
		if err != nil {
			m.t.Fatal(err)
		}
		for _, x := range ss {
			if x.TapMsgID == msgID {
				s = x
				return true
			}
		}
		return false
	})
	if !s.Offline || s.Open() || !s.Started.Equal(start) || !s.Ended.Equal(ended) || !s.Until.Equal(until) ||
		s.EndReason != fablab.EndTapOut || s.MemberID != who.ID || !s.Billable || s.BookingID != 0 {
		m.t.Fatalf("replayed session %s recorded as %+v", msgID, s)
	}
	replays := m.lab.Engine.Replays.Load()
	mach.dev.publishTap(tap)
	m.eventually("the second copy of "+msgID+" recognised", func() bool { return m.lab.Engine.Replays.Load() == replays+1 })
	ms := &modelSession{id: s.ID, who: who, mach: mach, started: start, until: until, ended: ended, reason: fablab.EndTapOut, offline: true}
	m.sessions = append(m.sessions, ms)
	return ms
}

// runNoShows runs the no-show job, and checks that exactly the bookings
// left unclaimed for the machine's release delay are released, each with
// the machine's fee once (none for staff, none where the machine has none).
func (m *monthLab) runNoShows() {
	m.t.Helper()
	if err := m.lab.Jobs.RunNow(m.ctx, "no_shows"); err != nil {
		m.t.Fatalf("no-show job: %v", err)
	}
	now := m.clock.Now()
	for _, ns := range m.noShows {
		due := !now.Before(ns.b.Start.Add(noShowRelease)) && now.Sub(ns.b.Start) <= 24*time.Hour
		got, err := m.store.Booking(m.ctx, ns.b.ID)
		if err != nil {
			m.t.Fatal(err)
		}
		if want := ns.marked || due; (got.State == fablab.BookingNoShow) != want {
			m.t.Fatalf("booking %s of %s at %s: state %s at %s, want no-show %v", ns.b.ID, ns.who.Name, ns.b.Start, got.State, now, want)
		}
		if !due || ns.marked {
			continue
		}
		ns.marked = true
		if ns.mach.noShowFee > 0 && !ns.who.staff {
			m.charges = append(m.charges, &modelCharge{kind: fablab.ChargeNoShow, booking: ns.b.ID, who: ns.who, mach: ns.mach,
				at: ns.b.Start, amount: ns.mach.noShowFee})
		}
	}
}

// bill runs the billing job and the model's billing.
func (m *monthLab) bill() {
	m.t.Helper()
	if err := m.lab.Jobs.RunNow(m.ctx, "billing"); err != nil {
		m.t.Fatalf("billing job: %v", err)
	}
	m.modelBill()
}

// modelBill prices the sessions ended since the last run, in the order the
// store bills them (by id), prepaid minutes first, and checks every
// prepaid balance against the store's.
func (m *monthLab) modelBill() {
	m.t.Helper()
	var due []*modelSession
	for _, s := range m.sessions {
		if !s.ended.IsZero() && s.charge == nil {
			due = append(due, s)
		}
	}
	slices.SortFunc(due, func(a, b *modelSession) int { return int(a.id) - int(b.id) })
	for _, s := range due {
		c := price(s, m.prepaid[s.who.ID])
		m.prepaid[s.who.ID] -= c.prepaid
		s.charge = c
		m.charges = append(m.charges, c)
	}
	for _, mm := range m.members() {
		got, err := m.store.Member(m.ctx, mm.ID)
		if err != nil {
			m.t.Fatal(err)
		}
		if got.PrepaidMinutes < 0 || got.PrepaidMinutes != m.prepaid[mm.ID] {
			m.t.Fatalf("%s's prepaid minutes at %s: %d, want %d", mm.Name, m.clock.Now(), got.PrepaidMinutes, m.prepaid[mm.ID])
		}
	}
}

// price is the test's own statement of the billing rule: the real time
// used rounded up to the 5-minute increment; staff free; under 2 minutes
// free; a group without a rate free (prepaid kept); prepaid minutes first;
// the rest at the group's hourly rate, rounded half up to the cent, at
// least the machine's minimum charge.
func price(s *modelSession, prepaid int64) *modelCharge {
	used := s.ended.Sub(s.started)
	c := &modelCharge{kind: fablab.ChargeSession, session: s, booking: s.booking, who: s.who, mach: s.mach, at: s.ended, prepaidBefore: prepaid,
		minutes: int64((used+increment-1)/increment) * int64(increment/time.Minute)}
	switch {
	case s.who.staff:
		c.free = fablab.FreeStaff
		return c
	case used < freeUnder:
		c.free = fablab.FreeShort
		return c
	}
	rate, ok := s.mach.prices[s.who.group]
	if !ok {
		c.free = fablab.FreeNoPrice
		return c
	}
	c.unit = rate
	c.prepaid = min(prepaid, c.minutes)
	if billed := c.minutes - c.prepaid; billed > 0 {
		c.amount = max((billed*rate+30)/60, s.mach.minCharge)
	} else {
		c.free = fablab.FreePrepaid
	}
	return c
}

// spot checks a session's charge in the model against figures computed by
// hand (the model itself is checked against the store).
func (m *monthLab) spot(s *modelSession, minutes, prepaid, amount int64, free string) {
	m.t.Helper()
	if c := s.charge; c == nil || c.minutes != minutes || c.prepaid != prepaid || c.amount != amount || c.free != free {
		m.t.Errorf("%s's session on %s from %s: charge %+v, want %d min (%d prepaid), %d cents, free %q",
			s.who.Name, s.mach.Name, s.started, c, minutes, prepaid, amount, free)
	}
}

// modelInvoiceRun assigns to period p every charge not invoiced yet whose
// use falls before p's end in Paris.
func (m *monthLab) modelInvoiceRun(p fablab.Period) {
	end := p.End(paris)
	for _, c := range m.charges {
		if c.invoice == "" && c.at.Before(end) {
			c.invoice = p.String()
		}
	}
	m.issuedAt[p.String()] = m.clock.Now()
}

// ledger matches the store's charges with the model's: every session and
// no-show charge the store holds is one the model expects, once, with the
// same figures. It returns the store's charge of each model charge and
// the corrections (credit notes' lines).
func (m *monthLab) ledger() (map[*modelCharge]fablab.Charge, []fablab.Charge) {
	m.t.Helper()
	all, err := m.store.Charges(m.ctx, bolt.ChargeFilter{From: on(time.January, 1, 0, 0)})
	if err != nil {
		m.t.Fatal(err)
	}
	bySession := map[fablab.ID][]fablab.Charge{}
	byBooking := map[fablab.ID][]fablab.Charge{}
	var corrections []fablab.Charge
	for _, c := range all {
		switch c.Kind {
		case fablab.ChargeSession:
			bySession[c.SessionID] = append(bySession[c.SessionID], c)
		case fablab.ChargeNoShow:
			byBooking[c.BookingID] = append(byBooking[c.BookingID], c)
		default:
			corrections = append(corrections, c)
		}
	}
	out := map[*modelCharge]fablab.Charge{}
	for _, mc := range m.charges {
		var got []fablab.Charge
		if mc.kind == fablab.ChargeSession {
			got = bySession[mc.session.id]
			delete(bySession, mc.session.id)
		} else {
			got = byBooking[mc.booking]
			delete(byBooking, mc.booking)
		}
		if len(got) != 1 {
			m.t.Errorf("%s charge of %s on %s at %s: %d in the ledger, want 1: %+v", mc.kind, mc.who.Name, mc.mach.Name, mc.at, len(got), got)
			continue
		}
		c := got[0]
		want := fablab.Charge{ID: c.ID, Kind: mc.kind, Payer: mc.who.payer, MemberID: mc.who.ID, MachineID: mc.mach.ID, BookingID: mc.booking,
			Group: mc.who.group, Minutes: mc.minutes, PrepaidMinutes: mc.prepaid, UnitCents: mc.unit, AmountCents: mc.amount,
			VATRateBP: vatRate, Free: mc.free, At: mc.at.UTC(), CreatedAt: c.CreatedAt}
		if mc.session != nil {
			want.SessionID = mc.session.id
		}
		if !reflect.DeepEqual(c, want) {
			m.t.Errorf("%s charge of %s on %s at %s:\n got %+v\nwant %+v", mc.kind, mc.who.Name, mc.mach.Name, mc.at, c, want)
		}
		out[mc] = c
	}
	for id, cs := range bySession {
		m.t.Errorf("session %s charged %d times though the test never ended it: %+v", id, len(cs), cs)
	}
	for id, cs := range byBooking {
		m.t.Errorf("booking %s charged a no-show fee the test did not expect: %+v", id, cs)
	}
	return out, corrections
}

// checkSessions compares every session in the store with the model, and
// each session's charge with fablab.SessionCharge applied to the stored
// session (prepaid as it stood before).
func (m *monthLab) checkSessions(charges map[*modelCharge]fablab.Charge) {
	m.t.Helper()
	stored, err := m.store.SessionsStarted(m.ctx, on(time.February, 1, 0, 0), on(time.June, 1, 0, 0), 100_000)
	if err != nil {
		m.t.Fatal(err)
	}
	byID := map[fablab.ID]fablab.Session{}
	for _, s := range stored {
		byID[s.ID] = s
	}
	if len(stored) != len(m.sessions) {
		m.t.Errorf("%d sessions in the store, the test ran %d", len(stored), len(m.sessions))
	}
	st, err := m.store.Settings(m.ctx)
	if err != nil {
		m.t.Fatal(err)
	}
	for _, ms := range m.sessions {
		s, ok := byID[ms.id]
		if !ok {
			m.t.Errorf("session %s of %s is not in the store", ms.id, ms.who.Name)
			continue
		}
		if s.Open() || !s.Started.Equal(ms.started) || !s.Ended.Equal(ms.ended) || !s.Until.Equal(ms.until) || s.EndReason != ms.reason ||
			s.MemberID != ms.who.ID || s.MachineID != ms.mach.ID || s.BookingID != ms.booking || s.Offline != ms.offline || !s.Billable {
			m.t.Errorf("session %s as stored: %+v; the test ran %s on %s from %s to %s (until %s), ended %s",
				ms.id, s, ms.who.Name, ms.mach.Name, ms.started, ms.ended, ms.until, ms.reason)
		}
		c, ok := charges[ms.charge]
		if ms.charge == nil || !ok {
			m.t.Errorf("session %s of %s has no charge", ms.id, ms.who.Name)
			continue
		}
		if s.ChargeID != c.ID {
			m.t.Errorf("session %s names charge %s, the ledger has %s for it", ms.id, s.ChargeID, c.ID)
		}
		bc := fablab.BillingContext{Settings: st, Machine: ms.mach.Machine, Member: ms.who.Member, FreeUnderMinutes: st.FreeUnderMinutes}
		if ms.who.org {
			org := m.org
			bc.Organisation = &org
		}
		rule, used := fablab.SessionCharge(s, bc, ms.charge.prepaidBefore)
		rule.ID, rule.CreatedAt = c.ID, c.CreatedAt
		if !reflect.DeepEqual(rule, c) || used != c.PrepaidMinutes {
			m.t.Errorf("session %s: charge %+v, the rule gives %+v (%d prepaid)", ms.id, c, rule, used)
		}
	}
}

// checkInvoices checks the monthly invoices of p against the model: one
// per payer whose charges taken by p's run total more than zero, with
// those charges' lines (those of zero dropped), totals and VAT to the
// cent, issued at the run's time with 30 days to pay, their numbers
// consecutive from the year's first. It returns them.
func (m *monthLab) checkInvoices(p fablab.Period) []fablab.Invoice {
	m.t.Helper()
	invs, err := m.store.Invoices(m.ctx, bolt.InvoiceFilter{Period: p.String()})
	if err != nil {
		m.t.Fatal(err)
	}
	charges, _ := m.ledger()
	want := map[fablab.Payer][]*modelCharge{}
	for _, c := range m.charges {
		if c.invoice == p.String() {
			want[c.who.payer] = append(want[c.who.payer], c)
		}
	}
	got := map[fablab.Payer]fablab.Invoice{}
	for _, inv := range invs {
		if _, dup := got[inv.Payer]; dup {
			m.t.Errorf("%s: two invoices for %s", p, inv.Payer)
		}
		got[inv.Payer] = inv
	}
	issued := m.issuedAt[p.String()]
	for payer, cs := range want {
		var total int64
		lines := map[fablab.ID]int64{}
		for _, c := range cs {
			total += c.amount
			if c.amount != 0 {
				lines[charges[c].ID] = c.amount
			}
		}
		inv, ok := got[payer]
		delete(got, payer)
		if total == 0 {
			if ok {
				m.t.Errorf("%s: an invoice for %s, whose charges total nothing: %+v", p, payer, inv)
			}
			continue
		}
		if !ok {
			m.t.Errorf("%s: no invoice for %s (charges of %d cents)", p, payer, total)
			continue
		}
		vat := fablab.RoundDiv(total*vatRate, 10_000)
		if inv.Kind != fablab.InvoiceKindInvoice || inv.Period != p.String() || inv.TotalExclCents != total ||
			inv.TotalVATCents != vat || inv.TotalInclCents != total+vat || len(inv.VAT) != 1 || inv.VAT[0] != (fablab.VATLine{RateBP: vatRate, BaseCents: total, VATCents: vat}) {
			m.t.Errorf("%s invoice of %s: %s %s, excl %d vat %d incl %d (%+v); want excl %d vat %d",
				p, payer, inv.Kind, inv.Period, inv.TotalExclCents, inv.TotalVATCents, inv.TotalInclCents, inv.VAT, total, vat)
		}
		if !inv.IssuedAt.Equal(issued) || !inv.DueAt.Equal(issued.AddDate(0, 0, 30)) || inv.Business != (payer.Kind == fablab.PayerIsOrganisation) {
			m.t.Errorf("%s invoice of %s issued %s due %s business %v; want issued %s, due 30 days later", p, payer, inv.IssuedAt, inv.DueAt, inv.Business, issued)
		}
		if len(inv.Lines) != len(lines) {
			m.t.Errorf("%s invoice of %s: %d lines, want %d", p, payer, len(inv.Lines), len(lines))
		}
		for _, l := range inv.Lines {
			if amount, ok := lines[l.ChargeID]; !ok || amount != l.AmountCents {
				m.t.Errorf("%s invoice of %s: line %+v is not one of its charges", p, payer, l)
			}
		}
	}
	for payer, inv := range got {
		m.t.Errorf("%s: an invoice for %s, who has no charge in it: %+v", p, payer, inv)
	}
	m.checkNumbers()
	return invs
}

// allInvoices lists every invoice and credit note, by id (issue order).
func (m *monthLab) allInvoices() []fablab.Invoice {
	m.t.Helper()
	all, err := m.store.Invoices(m.ctx, bolt.InvoiceFilter{})
	if err != nil {
		m.t.Fatal(err)
	}
	slices.SortFunc(all, func(a, b fablab.Invoice) int { return int(a.ID) - int(b.ID) })
	return all
}

// checkNumbers: invoices and credit notes are numbered FG-2026-000001…,
// in issue order, without a gap; no charge is on two of them.
func (m *monthLab) checkNumbers() {
	m.t.Helper()
	taken := map[fablab.ID]string{}
	for i, inv := range m.allInvoices() {
		if want := fablab.InvoiceNumber("FG", 2026, uint64(i+1)); inv.Number != want {
			m.t.Errorf("invoice %s (%s of %s) is numbered %s, want %s", inv.ID, inv.Kind, inv.Payer, inv.Number, want)
		}
		if y := inv.IssuedAt.In(paris).Year(); y != 2026 {
			m.t.Errorf("invoice %s issued in %d", inv.Number, y)
		}
		for _, l := range inv.Lines {
			if other, dup := taken[l.ChargeID]; dup {
				m.t.Errorf("charge %s is on %s and %s", l.ChargeID, other, inv.Number)
			}
			taken[l.ChargeID] = inv.Number
		}
	}
}

// checkUninvoiced: what each payer has charged but not invoiced is what
// the model has not assigned to a run.
func (m *monthLab) checkUninvoiced() {
	m.t.Helper()
	want := map[fablab.Payer]int64{}
	for _, c := range m.charges {
		if c.invoice == "" {
			want[c.who.payer] += c.amount
		}
	}
	for _, mm := range m.members() {
		bal, err := m.store.PayerBalance(m.ctx, mm.payer)
		if err != nil {
			m.t.Fatal(err)
		}
		if bal.UninvoicedCents != want[mm.payer] {
			m.t.Errorf("%s (%s): %d cents uninvoiced at %s, want %d", mm.Name, mm.payer, bal.UninvoicedCents, m.clock.Now(), want[mm.payer])
		}
	}
}

// checkBooks: at the end, every session, charge and invoice agrees with
// the model, and every cent of the ledger is on an invoice.
func (m *monthLab) checkBooks() {
	t := m.t
	charges, corrections := m.ledger()
	m.checkSessions(charges)

	// Every charge was taken by the run of the month it belongs to, or,
	// for a late one, by the next run; every charge's invoice is the one
	// the model says.
	invoiceOf := map[fablab.ID]fablab.Invoice{}
	monthly := map[string]fablab.ID{} // period | payer → invoice
	for _, inv := range m.allInvoices() {
		for _, l := range inv.Lines {
			invoiceOf[l.ChargeID] = inv
		}
		if inv.Kind == fablab.InvoiceKindInvoice {
			monthly[inv.Period+"|"+inv.Payer.String()] = inv.ID
		}
	}
	var ledgerTotal, modelTotal int64
	for mc, c := range charges {
		ledgerTotal += c.AmountCents
		modelTotal += mc.amount
		inv, onInvoice := invoiceOf[c.ID]
		switch {
		case mc.invoice == "":
			t.Errorf("charge %+v was never invoiced", c)
		case mc.amount == 0 && onInvoice:
			t.Errorf("charge %s of nothing is on %s", c.ID, inv.Number)
		case mc.amount != 0 && (!onInvoice || inv.Period != mc.invoice || inv.Payer != mc.who.payer):
			t.Errorf("charge %+v is on %+v, want the %s invoice of %s", c, inv, mc.invoice, mc.who.payer)
		}
		// A charge of nothing is settled by its payer's run: taken by the
		// invoice of that run when there is one, without a line.
		want := inv.ID
		if mc.amount == 0 {
			want = monthly[mc.invoice+"|"+mc.who.payer.String()]
		}
		if id, err := m.store.InvoiceOfCharge(m.ctx, c.ID); err != nil || id != want {
			t.Errorf("InvoiceOfCharge(%s) = %s, %v; want %s", c.ID, id, err, want)
		}
	}
	// The ledger to the cent: charges less the credit note's line equal
	// what the invoices bill less what the credit notes give back.
	var invoiced, credited, corrected int64
	for _, inv := range m.allInvoices() {
		if inv.Kind == fablab.InvoiceKindCreditNote {
			credited += inv.TotalExclCents
		} else {
			invoiced += inv.TotalExclCents
		}
	}
	for _, c := range corrections {
		corrected += c.AmountCents
	}
	if len(corrections) != 1 || corrected != -1500 {
		t.Errorf("corrections in the ledger: %+v, want the credit note's line of -15 €", corrections)
	}
	if ledgerTotal != modelTotal || ledgerTotal != invoiced || corrected != -credited {
		t.Errorf("ledger %d cents (model %d), invoiced %d; corrections %d, credited %d", ledgerTotal, modelTotal, invoiced, corrected, credited)
	}

	// The DST night: four real hours, billed as such, on March's invoice
	// with its date in Paris.
	var night *modelSession
	for _, s := range m.sessions {
		if s.started.Equal(on(time.March, 28, 23, 0)) {
			night = s
		}
	}
	if night == nil || night.charge == nil {
		t.Fatal("the DST night session is missing")
	}
	found := false
	for _, l := range invoiceOf[charges[night.charge].ID].Lines {
		if l.ChargeID == charges[night.charge].ID {
			found = true
			if !strings.Contains(l.Description, "29/03/2026") || l.Minutes != 240 || l.AmountCents != 5000 {
				t.Errorf("the DST night's invoice line: %+v", l)
			}
		}
	}
	if !found {
		t.Error("the DST night is not on an invoice")
	}
	// The session ending at 00:25 on 1 April in Paris is on April's
	// invoice, dated 01/04/2026.
	for _, s := range m.sessions {
		if !s.ended.Equal(on(time.April, 1, 0, 25)) {
			continue
		}
		inv := invoiceOf[charges[s.charge].ID]
		if inv.Period != "2026-04" {
			t.Errorf("the session ending at 00:25 on 1 April is on the %q invoice", inv.Period)
		}
		for _, l := range inv.Lines {
			if l.ChargeID == charges[s.charge].ID && !strings.Contains(l.Description, "01/04/2026") {
				t.Errorf("its line %+v is not dated 1 April", l)
			}
		}
	}

	// Every unclaimed booking was released, and only those; each member
	// was mailed the notice.
	want := map[string]int{}
	for _, ns := range m.noShows {
		if !ns.marked {
			t.Errorf("booking %+v was never released", ns.b)
		}
		want[ns.who.Email]++
	}
	for _, b := range m.bookings {
		got, err := m.store.Booking(m.ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		if (got.State == fablab.BookingNoShow) != m.released(b.ID) {
			t.Errorf("booking %+v ends as %s", b, got.State)
		}
	}
	m.eventually("a no-show notice for each released booking", func() bool {
		got := map[string]int{}
		for _, msg := range m.outbox.Messages() {
			got[msg.To]++
		}
		return maps.Equal(got, want)
	})

	// The month covered every case it claims to.
	covered := map[string]int{}
	for _, s := range m.sessions {
		covered["reason "+string(s.reason)]++
		if s.offline {
			covered["offline"]++
		}
		if s.booking == 0 && !s.offline {
			covered["walk-in"]++
		}
		if s.booking != 0 && s.reason == fablab.EndBookingEnd {
			for _, b := range m.bookings {
				if b.ID == s.booking && s.until.After(b.End) {
					covered["grace"]++
				}
			}
		}
		if s.charge != nil {
			covered["free "+s.charge.free]++
			if s.charge.prepaid > 0 {
				covered["prepaid"]++
			}
			if s.charge.amount > 0 && s.charge.amount == s.mach.minCharge {
				covered["minimum charge"]++
			}
		}
	}
	for _, c := range m.charges {
		if c.kind == fablab.ChargeNoShow {
			covered["no-show fee"]++
		}
	}
	for _, k := range []string{"reason tap_out", "reason booking_end", "offline", "walk-in", "grace", "free ", "free staff",
		"free short", "free no_price", "free prepaid", "prepaid", "minimum charge", "no-show fee"} {
		if covered[k] == 0 {
			t.Errorf("the month never covered %q: %v", k, covered)
		}
	}
	t.Logf("%d sessions, %d charges (%d cents), %d invoices and credit notes; covered %v",
		len(m.sessions), len(m.charges), ledgerTotal, len(m.allInvoices()), covered)

	// The reports of March and April tell the same month.
	m.checkRevenue()
	m.checkUsage()
}

// reportMonths are the months the reports are checked over.
var reportMonths = []fablab.Period{{Year: 2026, Month: time.March}, {Year: 2026, Month: time.April}}

// labZone is the lab's zone as the store's settings give it: what the
// reports find months, days and hours in.
func (m *monthLab) labZone() *time.Location {
	m.t.Helper()
	st, err := m.store.Settings(m.ctx)
	if err != nil {
		m.t.Fatal(err)
	}
	loc := st.Location()
	if loc.String() != paris.String() {
		m.t.Fatalf("the lab's zone is %s, want %s", loc, paris)
	}
	return loc
}

// orgOf is the organisation a member's charges and sessions count under
// (0: none).
func (m *monthLab) orgOf(who *monthMember) fablab.ID {
	if who.org {
		return m.org.ID
	}
	return 0
}

// figures are a report's numbers by name ("2026-03 machine 1 cents"),
// as read from the report or as the model expects them.
type figures map[string]int64

// diffFigures lists, in name order, the figures that differ between got
// and want; a figure missing on one side counts as 0 there (a report has
// rows of nothing, the model does not write them).
func diffFigures(got, want figures) []string {
	names := slices.Sorted(maps.Keys(got))
	for k := range want {
		if _, ok := got[k]; !ok {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	var out []string
	for _, k := range names {
		if got[k] != want[k] {
			out = append(out, fmt.Sprintf("%s: %d, want %d", k, got[k], want[k]))
		}
	}
	return out
}

// compareFigures reports every figure of got that differs from want and
// whether none did. When none did, it checks that the comparison can
// fail: want must hold figures, and each one of them one unit off must be
// reported, alone, as a difference.
func (m *monthLab) compareFigures(what string, got, want figures) bool {
	m.t.Helper()
	diff := diffFigures(got, want)
	for _, d := range diff {
		m.t.Errorf("%s: %s", what, d)
	}
	if len(diff) > 0 {
		return false
	}
	if len(want) == 0 {
		m.t.Errorf("%s: the model expects no figure at all", what)
	}
	for k := range want {
		off := maps.Clone(want)
		off[k]++
		if d := diffFigures(got, off); len(d) != 1 || !strings.HasPrefix(d[0], k+": ") {
			m.t.Errorf("%s: %s one off is reported as %q", what, k, d)
		}
	}
	return true
}

// revenueFigures sums charges and credit notes as the revenue report
// should: by the month of their use (a credit note's: of its issue) in
// loc, and in each month by machine, tariff group and organisation, and
// in all. A session charge counts its billable minutes; a no-show fee and
// a credit note none. A credit note's correction is on no machine and in
// no tariff group.
func (m *monthLab) revenueFigures(loc *time.Location, charges []*modelCharge, credits []modelCredit) figures {
	f := figures{}
	for _, c := range charges {
		addRevenue(f, fablab.PeriodOf(c.at, loc).String(), c.mach.ID, c.who.group, m.orgOf(c.who), 1, c.minutes, c.amount)
	}
	for _, c := range credits {
		addRevenue(f, fablab.PeriodOf(c.at, loc).String(), 0, "", c.org, 1, 0, -c.amount)
	}
	return f
}

// addRevenue adds lines, minutes and cents of a month, machine, tariff
// group and organisation to f.
func addRevenue(f figures, month string, machine fablab.ID, group string, org fablab.ID, lines int, minutes, cents int64) {
	for _, by := range []string{"machine " + machine.String(), fmt.Sprintf("group %q", group), "organisation " + org.String(), "total"} {
		k := month + " " + by
		f[k+" lines"] += int64(lines)
		f[k+" minutes"] += minutes
		f[k+" cents"] += cents
	}
	f["all lines"] += int64(lines)
	f["all minutes"] += minutes
	f["all cents"] += cents
}

// checkRevenue checks the revenue report of March and April against the
// model's charges and credit note, to the cent, and each month's total
// against the invoices' lines.
func (m *monthLab) checkRevenue() {
	t := m.t
	loc := m.labZone()
	from, to := reportMonths[0].Start(loc), reportMonths[len(reportMonths)-1].End(loc)
	rep, err := m.store.RevenueReport(m.ctx, from, to)
	if err != nil {
		t.Fatalf("revenue report: %v", err)
	}
	got := figures{}
	for _, r := range rep.Rows {
		addRevenue(got, r.Month, r.MachineID, r.Group, r.OrganisationID, r.Charges, r.Minutes, r.AmountCents)
	}
	if rep.Charges != int(got["all lines"]) || rep.Minutes != got["all minutes"] || rep.AmountCents != got["all cents"] {
		t.Errorf("revenue report's totals: %d lines, %d minutes, %d cents; its rows add up to %d, %d, %d",
			rep.Charges, rep.Minutes, rep.AmountCents, got["all lines"], got["all minutes"], got["all cents"])
	}
	want := m.revenueFigures(loc, m.charges, m.credits)
	if m.compareFigures("revenue report", got, want) {
		// One cent off in one charge of the model is seen: in its
		// month's machine, group, organisation and total, and in all.
		var paid int
		for paid < len(m.charges) && m.charges[paid].amount == 0 {
			paid++
		}
		if paid == len(m.charges) {
			t.Fatal("no charge of the model is of something")
		}
		off := slices.Clone(m.charges)
		c := *off[paid]
		c.amount++
		off[paid] = &c
		month := fablab.PeriodOf(c.at, loc).String()
		d := diffFigures(got, m.revenueFigures(loc, off, m.credits))
		if len(d) != 5 || slices.ContainsFunc(d, func(s string) bool {
			return !strings.Contains(s, " cents: ") || !strings.HasPrefix(s, month+" ") && !strings.HasPrefix(s, "all ")
		}) {
			t.Errorf("a charge of the model one cent off (%s on %s at %s): differences %q, want its month's machine, group, organisation and total, and all",
				c.who.Name, c.mach.Name, c.at, d)
		}
	}

	// The invoices. The report dates a charge by its use and the credit
	// note's correction by its issue, and so does an invoice line; a
	// credit note's line gives back its amount. The invoices' lines summed
	// by the month of their date, credit notes' lines negative, are
	// therefore the report's month totals: every charge of something is
	// on an invoice (checkBooks), one of nothing on none. Summed by the
	// invoices' period they are not: the late March charge is on April's
	// invoice, and the credit note issued in April corrects March's. The
	// difference is exactly those moves, as the model has them.
	byUse, byPeriod := figures{}, figures{}
	for _, inv := range m.allInvoices() {
		sign := int64(1)
		if inv.Kind == fablab.InvoiceKindCreditNote {
			sign = -1
		}
		for _, l := range inv.Lines {
			byUse[fablab.PeriodOf(l.At, loc).String()+" cents"] += sign * l.AmountCents
			byPeriod[inv.Period+" cents"] += sign * l.AmountCents
		}
	}
	reported := figures{}
	for _, p := range reportMonths {
		r, err := m.store.RevenueReport(m.ctx, p.Start(loc), p.End(loc))
		if err != nil {
			t.Fatalf("revenue report of %s: %v", p, err)
		}
		reported[p.String()+" cents"] = r.AmountCents
		if r.AmountCents != got[p.String()+" total cents"] {
			t.Errorf("revenue report of %s alone: %d cents, %d in the report of both months", p, r.AmountCents, got[p.String()+" total cents"])
		}
	}
	m.compareFigures("revenue by month against the invoices' lines by month of use", reported, byUse)
	moved := maps.Clone(reported)
	for _, c := range m.charges {
		if used := fablab.PeriodOf(c.at, loc).String(); c.invoice != used {
			moved[used+" cents"] -= c.amount
			moved[c.invoice+" cents"] += c.amount
		}
	}
	for _, c := range m.credits {
		if issued := fablab.PeriodOf(c.at, loc).String(); c.period != issued {
			moved[issued+" cents"] += c.amount
			moved[c.period+" cents"] -= c.amount
		}
	}
	m.compareFigures("invoices' lines by period against the revenue by month, moved as the model says", byPeriod, moved)
	for _, p := range reportMonths {
		if k := p.String() + " cents"; moved[k] == reported[k] {
			t.Errorf("%s: the month never had a charge or credit invoiced in another month's run (%d cents)", p, reported[k])
		}
	}
}

// roundMinutes is d to the nearest minute, half a minute up: the usage
// report's rounding of the seconds it sums (billing rounds each session up
// to its increment instead: the revenue report's minutes).
func roundMinutes(d time.Duration) int64 { return int64((d + 30*time.Second) / time.Minute) }

// within is the part of [a, b) inside [from, to).
func within(a, b, from, to time.Time) time.Duration {
	if a.Before(from) {
		a = from
	}
	if b.After(to) {
		b = to
	}
	return max(0, b.Sub(a))
}

// checkUsage checks the usage report of March and of April, by machine,
// tariff group, member and organisation, against the model: the minutes
// its sessions ran within the month (the midnight session of 31 March
// counted in both months, the DST night for its four real hours), the
// sessions starting in it; the bookings starting in it (the test cancels
// none), those released as no-shows, and the minutes within the month of
// those not released.
func (m *monthLab) checkUsage() {
	t := m.t
	loc := m.labZone()
	members := map[fablab.ID]*monthMember{}
	for _, mm := range m.members() {
		members[mm.ID] = mm
	}
	machines := map[fablab.ID]*monthMachine{}
	for _, mach := range []*monthMachine{m.laser, m.printer, m.cnc} {
		machines[mach.ID] = mach
	}
	for _, p := range reportMonths {
		from, to := p.Start(loc), p.End(loc)
		in := func(at time.Time) bool { return !at.Before(from) && at.Before(to) }
		for _, by := range bolt.UsageGroupings {
			rep, err := m.store.UsageReport(m.ctx, from, to, by)
			if err != nil {
				t.Fatalf("usage report of %s by %s: %v", p, by, err)
			}
			keyOf := func(who *monthMember, mach *monthMachine) string {
				switch by {
				case bolt.ByMachine:
					return mach.ID.String()
				case bolt.ByMember:
					return who.ID.String()
				case bolt.ByOrganisation:
					return m.orgOf(who).String()
				}
				return who.group
			}
			got := figures{}
			for _, r := range append(rep.Rows, rep.Total) {
				k := r.Key
				got[k+" used minutes"] = r.UsedMinutes
				got[k+" sessions"] = int64(r.Sessions)
				got[k+" booked minutes"] = r.BookedMinutes
				got[k+" bookings"] = int64(r.Bookings)
				got[k+" no-shows"] = int64(r.NoShows)
			}
			want := figures{}
			used, booked := map[string]time.Duration{}, map[string]time.Duration{}
			for _, s := range m.sessions {
				k := keyOf(s.who, s.mach)
				used[k] += within(s.started, s.ended, from, to)
				if in(s.started) {
					want[k+" sessions"]++
					want["total sessions"]++
				}
			}
			for _, b := range m.bookings {
				who, mach := members[b.MemberID], machines[b.MachineID]
				if who == nil || mach == nil {
					t.Fatalf("booking %+v of a member or machine the test does not know", b)
				}
				k := keyOf(who, mach)
				if !m.released(b.ID) {
					booked[k] += within(b.Start, b.End, from, to)
				}
				if in(b.Start) {
					want[k+" bookings"]++
					want["total bookings"]++
					if m.released(b.ID) {
						want[k+" no-shows"]++
						want["total no-shows"]++
					}
				}
			}
			// Each row rounds its own seconds; the total adds up the rows
			// as rounded (in March by machine a minute less than all the
			// seconds rounded once).
			for k, d := range used {
				want[k+" used minutes"] = roundMinutes(d)
				want["total used minutes"] += roundMinutes(d)
			}
			for k, d := range booked {
				want[k+" booked minutes"] = roundMinutes(d)
				want["total booked minutes"] += roundMinutes(d)
			}
			m.compareFigures(fmt.Sprintf("usage report of %s by %s", p, by), got, want)
		}
	}
}
