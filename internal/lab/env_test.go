package lab_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/logbuf"

	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/bolt/bolttest"
	"github.com/fabgate/fabgate/internal/devicesim"
	"github.com/fabgate/fabgate/internal/events"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/jobs"
	"github.com/fabgate/fabgate/internal/lab"
	"github.com/fabgate/fabgate/internal/lab/labtest"
	"github.com/fabgate/fabgate/internal/mqtt"
	"github.com/fabgate/fabgate/internal/mqtt/mqtttest"
	"github.com/fabgate/fabgate/internal/wire"
)

// waitLong bounds every wait for something asynchronous (an MQTT delivery, a
// reconnection): the tests poll for the effect and never sleep for time to
// pass; the engine's time is the fake clock, moved by the tests.
const waitLong = 10 * time.Second

// serverUser is the server's MQTT user on a broker the test runs itself.
const serverUser = "fabgate-server"

// observerUser is a read-only user the tests add to Mosquitto's files, with
// the server's password: Mosquitto takes a client's username for its client
// id, so a second client as the server user would take the server's
// connection over.
const observerUser = "fabgate-observer"

// addObserver adds observerUser to the Mosquitto files in dir, reading
// everything under the default prefix.
func addObserver(t testing.TB, dir, password string) {
	t.Helper()
	hash, err := mqtt.MosquittoPasswordHash(password)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct{ name, text string }{
		{mqtt.MosquittoPasswdFile, observerUser + ":" + hash + "\n"},
		{mqtt.MosquittoACLFile, "\nuser " + observerUser + "\ntopic read " + wire.DefaultPrefix + "/#\n"},
	} {
		fh, err := os.OpenFile(filepath.Join(dir, f.name), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = fh.WriteString(f.text)
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// t0 is Tuesday 3 March 2026, 14:00 in Paris: the lab (default settings) is
// open from 09:00 to 21:00.
var t0 = time.Date(2026, 3, 3, 14, 0, 0, 0, mustLocation("Europe/Paris"))

func mustLocation(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// Badge UIDs of the fixture.
const (
	uidAda       = "04A2B3C4D5E601" // maker, qualified for the laser
	uidBob       = "04A2B3C4D5E602" // maker, qualified for the laser
	uidSam       = "04A2B3C4D5E603" // staff, qualified for the laser
	uidSuspended = "04A2B3C4D5E604" // suspended maker
	uidExpired   = "04A2B3C4D5E605" // maker whose membership ended yesterday
	uidUntrained = "04A2B3C4D5E606" // active maker without the laser training
	uidUnknown   = "04DEADBEEF0001" // nobody's
	uidProbe     = "04DEADBEEF00FF" // nobody's: the tests' "anything else?" probe
)

// Devices of the fixture and the machines they drive.
const (
	devLaser   = "laser-1"   // the laser cutter (needs the laser training)
	devPrinter = "printer-1" // a 3D printer (no training)
	devResin   = "resin-1"   // a resin printer in maintenance
)

const laserTraining = "Sécurité laser"

type brokerKind string

const (
	embedded  brokerKind = "embedded"
	mosquitto brokerKind = "mosquitto"
)

type member struct {
	fablab.Member
	uid string
}

// env is one lab under test: a real store on a fake clock, a broker of the
// given kind, the access side started by lab.Start with a manual schedule,
// and simulated devices speaking the contract over real MQTT.
type env struct {
	t     *testing.T
	kind  brokerKind
	clock *bolttest.Clock
	store *bolt.Store
	log   *slog.Logger

	lab       *lab.Lab
	labClosed bool
	url       string // the broker's URL, for devices and test clients
	topics    wire.Topics

	// Brokers the test runs itself (Mosquitto; the embedded broker when
	// ownBroker), with the server's credentials on them.
	ownBroker  bool
	mosq       *labtest.Mosquitto
	broker     *mqtt.Broker
	deviceAuth *labtest.DeviceAuth
	brokerAddr string
	serverPass string

	// dataFile: the store is a file the test closes and opens again
	// (closeStore, openStore), as a server killed and started again would.
	dataFile bool
	dataPath string
	// labJobs are scheduled beside the lab's own at each start.
	labJobs []jobs.Job

	training                                     fablab.Training
	laser, printer, resin                        fablab.Machine
	ada, bob, sam, suspended, expired, untrained member
	secrets                                      map[string]string
	raws                                         map[string]*mqtt.Client
}

type envOption func(*env)

// withOwnBroker makes the test start the embedded broker itself (rather
// than lab.Start), so that it can stop it and start it again on the same
// address under a running lab. It changes nothing for Mosquitto.
func withOwnBroker(e *env) { e.ownBroker = true }

// withDataFile makes the store a data file the test may close and open
// again under the same path (env.closeStore, env.openStore).
func withDataFile(e *env) { e.dataFile = true }

// withJobs registers jobs beside the lab's own at each start of the lab
// (they are run by Jobs.RunNow: the schedule is manual).
func withJobs(js ...jobs.Job) envOption { return func(e *env) { e.labJobs = append(e.labJobs, js...) } }

func newEnv(t *testing.T, kind brokerKind, opts ...envOption) *env {
	t.Helper()
	logs := &logbuf.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("lab log:\n%s", logs.String())
		}
	})
	e := &env{
		t: t, kind: kind, clock: bolttest.NewClock(t0),
		log:     slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		secrets: map[string]string{}, raws: map[string]*mqtt.Client{},
	}
	for _, o := range opts {
		o(e)
	}
	var err error
	if e.topics, err = wire.NewTopics(wire.DefaultPrefix); err != nil {
		t.Fatal(err)
	}
	if e.dataFile {
		e.dataPath = filepath.Join(t.TempDir(), "fabgate.db")
		e.openStore()
		t.Cleanup(e.closeStore)
	} else {
		e.store = bolttest.Open(t, e.clock.Now)
	}
	e.seed()

	switch {
	case kind == mosquitto:
		e.serverPass = randomToken()
		devices, err := e.store.Devices(context.Background())
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
		conf, err := os.ReadFile(filepath.Join(dir, mqtt.MosquittoConfFile))
		if err != nil || !strings.Contains(string(conf), "\nset_tcp_nodelay true\n") {
			t.Fatalf("mosquitto config without set_tcp_nodelay true (%v):\n%s", err, conf)
		}
		addObserver(t, dir, e.serverPass)
		e.mosq = labtest.StartMosquitto(t, dir)
		e.url = "tcp://" + e.mosq.Addr()
	case e.ownBroker:
		e.serverPass = randomToken()
		e.brokerAddr = "127.0.0.1:0"
		e.startBroker()
		e.brokerAddr = e.broker.Addr()
		e.url = "tcp://" + e.brokerAddr
		t.Cleanup(e.stopBroker)
	}
	e.startLab()
	t.Cleanup(e.closeLab)
	if e.url == "" {
		e.url = e.lab.URL // the broker lab.Start embedded
	}
	return e
}

func randomToken() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// seed creates the lab through the store: a training, three machines with
// their devices, and the members with their badges and qualifications.
func (e *env) seed() {
	t, ctx, s := e.t, context.Background(), e.store
	t.Helper()
	st, err := s.Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	e.training, err = s.CreateTraining(ctx, fablab.Training{Name: laserTraining, ValidityMonths: 12})
	must(err)
	e.laser, err = s.CreateMachine(ctx, fablab.Machine{Name: "Laser", Kind: fablab.KindLaserCutter,
		RequiredTrainings: []fablab.ID{e.training.ID}, Rules: st.DefaultRules})
	must(err)
	e.printer, err = s.CreateMachine(ctx, fablab.Machine{Name: "Printer", Kind: fablab.Kind3DPrinter, Rules: st.DefaultRules})
	must(err)
	e.resin, err = s.CreateMachine(ctx, fablab.Machine{Name: "Resin", Kind: "resin-printer",
		State: fablab.MachineMaintenance, Rules: st.DefaultRules})
	must(err)
	for _, d := range []struct {
		id      string
		machine fablab.ID
	}{{devLaser, e.laser.ID}, {devPrinter, e.printer.ID}, {devResin, e.resin.ID}} {
		secret := "secret-of-" + d.id
		hash, err := mqtt.MosquittoPasswordHash(secret)
		must(err)
		_, err = s.CreateDevice(ctx, fablab.Device{ID: d.id, MachineID: d.machine, SecretHash: hash})
		must(err)
		e.secrets[d.id] = secret
	}
	// Machines read back with their device binding.
	for _, m := range []*fablab.Machine{&e.laser, &e.printer, &e.resin} {
		*m, err = s.Machine(ctx, m.ID)
		must(err)
	}

	yesterday := t0.Add(-24 * time.Hour)
	add := func(name, uid string, edit func(*fablab.Member), qualified bool) member {
		t.Helper()
		m := fablab.Member{Email: name + "@lab.example", Name: name, Group: "student"}
		if edit != nil {
			edit(&m)
		}
		m, err := s.CreateMember(ctx, m)
		must(err)
		_, err = s.AddBadge(ctx, fablab.Badge{Hash: auth.BadgeHash(s.BadgeSecret(), uid), MemberID: m.ID})
		must(err)
		if qualified {
			grantor := e.sam.ID
			if grantor == 0 {
				grantor = m.ID
			}
			exp := t0.AddDate(1, 0, 0)
			_, err = s.GrantQualification(ctx, fablab.Qualification{MemberID: m.ID, TrainingID: e.training.ID, GrantedBy: grantor, ExpiresAt: &exp})
			must(err)
		}
		return member{Member: m, uid: uid}
	}
	e.sam = add("sam", uidSam, func(m *fablab.Member) { m.Role, m.Group = fablab.RoleStaff, "staff" }, true)
	e.ada = add("ada", uidAda, nil, true)
	e.bob = add("bob", uidBob, nil, true)
	e.suspended = add("sue", uidSuspended, func(m *fablab.Member) { m.Status = fablab.StatusSuspended }, true)
	e.expired = add("eve", uidExpired, func(m *fablab.Member) { m.MembershipUntil = &yesterday }, true)
	e.untrained = add("ugo", uidUntrained, nil, false)
}

// openStore opens the data file of a withDataFile env.
func (e *env) openStore() {
	e.t.Helper()
	s, err := bolt.Open(e.dataPath, bolt.Options{Now: e.clock.Now})
	if err != nil {
		e.t.Fatalf("open the data file: %v", err)
	}
	e.store = s
}

// closeStore checks the data file's consistency and closes it.
func (e *env) closeStore() {
	if e.store == nil {
		return
	}
	if err := e.store.Check(); err != nil {
		e.t.Errorf("store consistency check: %v", err)
	}
	if err := e.store.CheckInvariants(context.Background()); err != nil {
		e.t.Errorf("store invariants: %v", err)
	}
	if err := e.store.Close(); err != nil {
		e.t.Errorf("close store: %v", err)
	}
	e.store = nil
}

// startBroker starts the embedded broker the test owns, on brokerAddr.
func (e *env) startBroker() {
	e.t.Helper()
	if e.kind == mosquitto {
		e.mosq.Start()
		return
	}
	if e.deviceAuth == nil {
		e.deviceAuth = &labtest.DeviceAuth{Store: e.store}
	}
	b, err := mqtt.StartBroker(mqtt.BrokerConfig{
		Listen: e.brokerAddr, Devices: e.deviceAuth,
		ServerUser: serverUser, ServerPassword: e.serverPass, Log: e.log.With("component", "test-broker"),
	})
	if err != nil {
		e.t.Fatalf("start the embedded broker on %s: %v", e.brokerAddr, err)
	}
	e.broker = b
}

// stopBroker stops the broker the test owns: every client's connection drops.
func (e *env) stopBroker() {
	if e.kind == mosquitto {
		e.mosq.Stop()
		return
	}
	if e.broker != nil {
		if err := e.broker.Close(); err != nil {
			e.t.Errorf("close broker: %v", err)
		}
	}
}

// startLab starts the access side with a manual schedule, on the same
// broker address as before after a restart.
func (e *env) startLab() {
	e.t.Helper()
	cfg := lab.Config{Store: e.store, Log: e.log, Now: e.clock.Now, Manual: true, Jobs: e.labJobs}
	switch {
	case e.serverPass != "":
		cfg.URL, cfg.Username, cfg.Password = e.url, serverUser, e.serverPass
	case e.lab != nil:
		cfg.Listen = e.lab.Broker.Addr() // the devices reconnect to the same address
	default:
		cfg.Listen = "127.0.0.1:0"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitLong)
	defer cancel()
	l, err := lab.Start(ctx, cfg)
	if err != nil {
		e.t.Fatalf("lab.Start: %v", err)
	}
	e.lab, e.labClosed = l, false
}

func (e *env) closeLab() {
	if !e.labClosed {
		e.labClosed = true
		e.lab.Close()
	}
}

// device is a simulated device under test.
type device struct {
	*devicesim.Device
	e  *env
	id string
}

// device connects a simulated device and waits until the server has taken
// in its birth and relay state.
func (e *env) device(id string, edit ...func(*devicesim.Config)) *device {
	e.t.Helper()
	cfg := devicesim.Config{Broker: e.url, ID: id, Secret: e.secrets[id], Now: e.clock.Now, Log: e.log.With("component", "devicesim", "device", id)}
	for _, f := range edit {
		f(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	d, err := devicesim.Start(ctx, cfg)
	if err != nil {
		e.t.Fatalf("start device %s: %v", id, err)
	}
	e.t.Cleanup(d.Close)
	e.raws[id] = d.Client() // a device has one connection: raw messages go through it
	e.eventually("the server to know device "+id, func() bool {
		st, ok := e.lab.Engine.DeviceStates()[id]
		return ok && st.BootID != "" && st.Relay != ""
	})
	// The device's first state (relay off) is reconciled before any test
	// step: otherwise it could be reconciled after an unlock is confirmed.
	e.barrier(id, wire.KindState)
	return &device{Device: d, e: e, id: id}
}

func noAck(c *devicesim.Config) { c.NoAck = true }

// tap publishes a live tap of uid.
func (d *device) tap(uid string) {
	d.e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if _, err := d.Tap(ctx, uid); err != nil {
		d.e.t.Fatalf("%s: tap %s: %v", d.id, uid, err)
	}
}

func (d *device) publishTap(tap wire.Tap) {
	d.e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := d.PublishTap(ctx, tap); err != nil {
		d.e.t.Fatalf("%s: publish tap %+v: %v", d.id, tap, err)
	}
}

// expect waits for the next command the device receives and checks its op.
func (d *device) expect(op string) wire.Command {
	d.e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	c, err := d.Next(ctx)
	if err != nil {
		d.e.t.Fatalf("%s: waiting for %s: %v", d.id, op, err)
	}
	if c.Op != op {
		d.e.t.Fatalf("%s: received %+v, want op %s", d.id, c, op)
	}
	return c
}

// expectDeny waits for the next command and checks it is a deny for reason.
func (d *device) expectDeny(reason string) wire.Command {
	d.e.t.Helper()
	c := d.expect(wire.OpDeny)
	if c.Reason != reason {
		d.e.t.Fatalf("%s: deny %+v, want reason %s", d.id, c, reason)
	}
	if c.Message == "" {
		d.e.t.Errorf("%s: deny %s without a message for the reader", d.id, reason)
	}
	return c
}

// quiet checks that the device receives nothing before the answer to a
// probe tap (a badge nobody holds, answered deny unknown_badge).
func (d *device) quiet() {
	d.e.t.Helper()
	d.tap(uidProbe)
	d.expectDeny(wire.ReasonUnknownBadge)
}

// settles checks that nothing changes in the seconds after a step: the
// clock is moved past the bridge's 2 s offline decision, past every ack
// retry and past the 30 s in which an unlock may answer a tap, the device
// staying alive, the server retrying and sweeping; each time the device
// gets no command but the answer to a probe, its relay stays as it was and
// the sessions are unchanged.
func (d *device) settles() {
	d.e.t.Helper()
	e := d.e
	ctx := context.Background()
	// The step itself is over: its commands acknowledged (a retry of one
	// whose ack is still on its way is not a change).
	e.eventually("the step's commands acknowledged", func() bool { return e.lab.Engine.PendingCommands() == 0 })
	relay, session := d.Relay()
	before := e.allSessions()
	for _, step := range []time.Duration{wire.AnswerTimeout + time.Second, 3 * time.Second, 3 * time.Second, 3 * time.Second, 31 * time.Second} {
		e.clock.Advance(step)
		d.heartbeat()
		e.lab.Engine.RetryDue(ctx)
		e.lab.Engine.Sweep(ctx)
		d.quiet()
		if r, s := d.Relay(); r != relay || s != session {
			e.t.Fatalf("%s: relay %s (session %q) %s after the step, want %s (session %q)", d.id, r, s, step, relay, session)
		}
		if after := e.allSessions(); len(after) != len(before) {
			e.t.Fatalf("sessions after the step: %+v, want %+v", after, before)
		} else {
			for i := range after {
				if after[i].ID != before[i].ID || after[i].Open() != before[i].Open() || after[i].EndReason != before[i].EndReason {
					e.t.Fatalf("sessions after the step: %+v, want %+v", after, before)
				}
			}
		}
	}
}

// allSessions returns the sessions of every machine around t0, by start.
func (e *env) allSessions() []fablab.Session {
	e.t.Helper()
	var out []fablab.Session
	for _, m := range []fablab.Machine{e.laser, e.printer, e.resin} {
		ss, err := e.store.SessionsOfMachine(context.Background(), m.ID, t0.Add(-48*time.Hour), t0.Add(48*time.Hour))
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, ss...)
	}
	return out
}

// waitRelay waits until the device's relay is in state relay.
func (d *device) waitRelay(relay, session string) {
	d.e.t.Helper()
	d.e.eventually(fmt.Sprintf("%s relay %s (session %q)", d.id, relay, session), func() bool {
		r, s := d.Relay()
		return r == relay && s == session
	})
}

// heartbeat publishes a heartbeat and waits until the server has seen it
// (at the fake clock's time): tests that move the clock by minutes keep the
// device alive this way, as its 30-second heartbeats would.
func (d *device) heartbeat() {
	d.e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := d.Heartbeat(ctx); err != nil {
		d.e.t.Fatalf("%s: heartbeat: %v", d.id, err)
	}
	d.e.waitSeen(d.id)
}

// waitSeen waits until the server's last sign of life from dev is now.
func (e *env) waitSeen(dev string) {
	e.t.Helper()
	now := e.clock.Now()
	e.eventually(dev+" seen at "+now.Format(time.TimeOnly), func() bool {
		st := e.lab.Engine.DeviceStates()[dev]
		return st.LastSeen != nil && st.LastSeen.Equal(now)
	})
}

// grant taps m's badge on d, expects an unlock, and waits until the relay's
// ack has confirmed the session.
func (e *env) grant(d *device, m member) (wire.Command, fablab.Session) {
	e.t.Helper()
	d.tap(m.uid)
	c := d.expect(wire.OpUnlock)
	s := e.waitSession(e.sessionID(c), "confirmed", func(s fablab.Session) bool { return s.Confirmed })
	if s.MemberID != m.ID || !s.Open() || s.CmdID != c.CmdID {
		e.t.Fatalf("session after the unlock %+v: %+v", c, s)
	}
	d.waitRelay(wire.RelayOn, c.SessionID)
	e.settleState(d.id, wire.RelayOn, c.SessionID)
	return c, s
}

// settleState waits until the server has taken in dev's relay state (the
// one the device publishes after a relay change) and reconciled it. The
// server's MQTT client hands each message to its own goroutine
// (SetOrderMatters(false)), so without this a state published before the
// test's next tap may be reconciled after it.
func (e *env) settleState(dev, relay, session string) {
	e.t.Helper()
	e.eventually(fmt.Sprintf("the server to take in %s's relay %s (session %q)", dev, relay, session), func() bool {
		st := e.lab.Engine.DeviceStates()[dev]
		return st.Relay == relay && st.SessionID == session
	})
	e.barrier(dev, wire.KindState)
}

func (e *env) sessionID(c wire.Command) fablab.ID {
	e.t.Helper()
	id, err := fablab.ParseID(c.SessionID)
	if err != nil {
		e.t.Fatalf("command %+v: session_id: %v", c, err)
	}
	return id
}

func (e *env) session(id fablab.ID) fablab.Session {
	e.t.Helper()
	s, err := e.store.Session(context.Background(), id)
	if err != nil {
		e.t.Fatalf("session %s: %v", id, err)
	}
	return s
}

// waitSession polls the store until session id satisfies ok.
func (e *env) waitSession(id fablab.ID, what string, ok func(fablab.Session) bool) fablab.Session {
	e.t.Helper()
	var s fablab.Session
	e.eventually(fmt.Sprintf("session %s %s", id, what), func() bool {
		var err error
		s, err = e.store.Session(context.Background(), id)
		return err == nil && ok(s)
	})
	return s
}

func (e *env) waitEnded(id fablab.ID, reason fablab.EndReason) fablab.Session {
	e.t.Helper()
	return e.waitSession(id, "ended "+string(reason), func(s fablab.Session) bool { return !s.Open() && s.EndReason == reason })
}

func (e *env) openSessions() []fablab.Session {
	e.t.Helper()
	open, err := e.store.OpenSessions(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return open
}

// book stores a confirmed booking of m on machine over [start, end).
func (e *env) book(m member, machine fablab.Machine, start, end time.Time) fablab.Booking {
	e.t.Helper()
	b, err := e.store.CreateBooking(context.Background(), fablab.Booking{MachineID: machine.ID, MemberID: m.ID, Start: start, End: end, CreatedBy: m.ID},
		func(bolt.BookingContext) error { return nil })
	if err != nil {
		e.t.Fatalf("book: %v", err)
	}
	return b
}

// audit returns the audit events of kind and action around t0, newest first.
func (e *env) audit(kind, action string) []fablab.AuditEvent {
	e.t.Helper()
	evs, err := e.store.AuditEvents(context.Background(), bolt.AuditFilter{
		From: t0.Add(-48 * time.Hour), To: t0.Add(48 * time.Hour), Kind: kind, Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []fablab.AuditEvent
	for _, ev := range evs {
		if action == "" || ev.Action == action {
			out = append(out, ev)
		}
	}
	return out
}

// raw returns a plain MQTT client logged in as device dev, to publish what
// a device should not: the simulated device's own client when it runs (a
// device has one connection; its client id is its id).
func (e *env) raw(dev string) *mqtt.Client {
	e.t.Helper()
	if c := e.raws[dev]; c != nil {
		return c
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	c, err := mqtt.Connect(ctx, mqtt.ClientConfig{Broker: e.url, ClientID: dev,
		Username: dev, Password: e.secrets[dev], Log: e.log.With("component", "raw", "device", dev)})
	if err != nil {
		e.t.Fatalf("connect as %s: %v", dev, err)
	}
	e.t.Cleanup(func() { c.Close(nil) })
	e.raws[dev] = c
	return c
}

// publishAs publishes payload on dev's topic of kind, as dev, retrying
// while the client reconnects.
func (e *env) publishAs(dev, topic string, payload []byte) {
	e.t.Helper()
	c := e.raw(dev)
	var err error
	e.eventually("publish on "+topic, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		err = c.Publish(ctx, mqtt.Message{Topic: topic, Payload: payload, QoS: 1})
		return !errors.Is(err, mqtt.ErrNotConnected)
	})
	if err != nil {
		e.t.Fatalf("publish on %s as %s: %v", topic, dev, err)
	}
}

// barrier waits until the server has finished with every message of kind
// from dev that it had started on: the messages of one subscription are
// handled one at a time, so once a malformed message published now has been
// dropped, the earlier ones are done.
func (e *env) barrier(dev string, kind wire.Kind) {
	e.t.Helper()
	before := e.lab.Engine.Dropped.Load()
	e.publishAs(dev, e.topics.Device(dev, kind), []byte("barrier"))
	e.eventually("the server to drop the barrier on "+string(kind), func() bool { return e.lab.Engine.Dropped.Load() > before })
}

// hub subscribes to the lab's live events.
func (e *env) hub() <-chan events.Event {
	ch, stop := e.lab.Hub.Subscribe(256)
	e.t.Cleanup(stop)
	return ch
}

// waitEvent waits for a live event of type typ that match accepts.
func (e *env) waitEvent(ch <-chan events.Event, typ string, match func(map[string]any) bool) events.Event {
	e.t.Helper()
	timeout := time.After(waitLong)
	for {
		select {
		case ev := <-ch:
			if ev.Type != typ {
				continue
			}
			if data, ok := ev.Data.(map[string]any); ok && match(data) {
				return ev
			}
		case <-timeout:
			e.t.Fatalf("no %q event within %s", typ, waitLong)
		}
	}
}

// eventually polls cond every few milliseconds until it holds, failing the
// test after waitLong.
func (e *env) eventually(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %s waiting for %s", waitLong, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// inbox collects the messages a test client receives.
type inbox struct {
	mu   sync.Mutex
	msgs []mqtt.Message
}

func (in *inbox) handle(topic string, payload []byte) {
	in.mu.Lock()
	in.msgs = append(in.msgs, mqtt.Message{Topic: topic, Payload: append([]byte(nil), payload...)})
	in.mu.Unlock()
}

func (in *inbox) on(topic string) [][]byte {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out [][]byte
	for _, m := range in.msgs {
		if m.Topic == topic {
			out = append(out, m.Payload)
		}
	}
	return out
}
