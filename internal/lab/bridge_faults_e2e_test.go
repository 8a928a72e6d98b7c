package lab_test

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fabgate/fabgate/firmware-bridge/bridge"
	"github.com/fabgate/fabgate/firmware-bridge/bridge/bridgetest"
	"github.com/fabgate/fabgate/firmware-bridge/reader"
	"github.com/fabgate/fabgate/firmware-bridge/relay"
	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
)

// link is a TCP proxy between one device and the broker: cut drops the
// device's connections and refuses new ones until restore, as a network
// link that goes down would; the server and the other devices keep theirs.
type link struct {
	t      testing.TB
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns []net.Conn
}

func newLink(t testing.TB, target string) *link {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &link{t: t, ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); l.cut() })
	go l.serve()
	return l
}

func (l *link) addr() string { return l.ln.Addr().String() }

func (l *link) serve() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		down := l.down
		l.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		b, err := net.Dial("tcp", l.target)
		if err != nil {
			c.Close()
			continue
		}
		l.mu.Lock()
		l.conns = append(l.conns, c, b)
		l.mu.Unlock()
		go func() { io.Copy(b, c); b.Close(); c.Close() }()
		go func() { io.Copy(c, b); b.Close(); c.Close() }()
	}
}

// cut drops the link: every connection through it is closed (without a
// DISCONNECT: the broker publishes the device's will) and new ones are
// refused.
func (l *link) cut() {
	l.mu.Lock()
	l.down = true
	conns := l.conns
	l.conns = nil
	l.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

func (l *link) restore() {
	l.mu.Lock()
	l.down = false
	l.mu.Unlock()
}

// bridgeRig is a fabgate-bridge device driving the laser, with a simulated
// reader and relay, connected to the env's broker through a link the test
// cuts. The server and the bridge share one time: the env's clock and the
// bridge's clock (which also fires its timers) move together (advance).
type bridgeRig struct {
	e        *env
	clock    *bridgetest.Clock
	link     *link
	stateDir string
	dev      *bridge.Device
	reader   *reader.Sim
	relay    *relay.Sim
	signals  *signals
	// sweeps makes passUntil run the sweep. Only while the link is down:
	// stepped quickly, the shared clock outruns the bridge's heartbeats
	// (timers it hands to its loop), and the server would take a bridge
	// that is up for silent.
	sweeps bool
}

func (e *env) bridge() *bridgeRig {
	e.t.Helper()
	r := &bridgeRig{e: e, clock: bridgetest.NewClock(e.clock.Now()), link: newLink(e.t, strings.TrimPrefix(e.url, "tcp://")), stateDir: e.t.TempDir()}
	r.start()
	return r
}

func (r *bridgeRig) start() {
	r.e.t.Helper()
	key, err := r.e.store.AllowlistKey(context.Background())
	if err != nil {
		r.e.t.Fatal(err)
	}
	r.reader, r.relay, r.signals = reader.NewSim(), relay.NewSim(500), &signals{}
	r.dev, err = bridge.Start(context.Background(), bridge.DeviceConfig{
		ID: devLaser, Secret: r.e.secrets[devLaser], Broker: "tcp://" + r.link.addr(), BadgeKey: r.e.store.BadgeSecret(),
		StateDir: r.stateDir, AllowlistKey: auth.DeviceAllowlistKey(key.Root, key.ID, devLaser), AllowlistKeyID: key.ID,
		OfflineSessionLimit: 30 * time.Minute, Reader: r.reader, Relay: r.relay, Indicator: r.signals, Clock: r.clock, Log: r.e.log.With("component", "bridge"),
	})
	if err != nil {
		r.e.t.Fatal(err)
	}
	r.e.t.Cleanup(r.dev.Close)
	r.e.eventually("the bridge online with its allowlist", func() bool {
		s := r.dev.Status()
		return s.Connected && s.ServerOnline && s.AllowVer > 0
	})
}

// signals counts what the bridge shows the member.
type signals struct {
	mu    sync.Mutex
	kinds []string
}

func (s *signals) Signal(kind string) {
	s.mu.Lock()
	s.kinds = append(s.kinds, kind)
	s.mu.Unlock()
}

func (s *signals) count(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, k := range s.kinds {
		if k == kind {
			n++
		}
	}
	return n
}

// advance moves both clocks.
func (r *bridgeRig) advance(d time.Duration) {
	r.e.clock.Advance(d)
	r.clock.Advance(d)
}

// passUntil moves both clocks to t in the steps of the 15-second sweep,
// running the ack retries and (once sweeps is set) the sweep at each step,
// as the schedule does. The bridge's own timers (its heartbeats, its
// sessions' ends) fire on the way.
func (r *bridgeRig) passUntil(t time.Time) {
	ctx := context.Background()
	for now := r.e.clock.Now(); now.Before(t); now = r.e.clock.Now() {
		r.advance(min(t.Sub(now), 15*time.Second))
		r.e.lab.Engine.RetryDue(ctx)
		if r.sweeps {
			r.e.lab.Engine.Sweep(ctx)
		}
	}
}

// tapAt reads uid on the bridge's reader at t.
func (r *bridgeRig) tapAt(t time.Time, uid string) {
	r.e.t.Helper()
	r.passUntil(t)
	if err := r.reader.Tap(uid); err != nil {
		r.e.t.Fatal(err)
	}
}

func (r *bridgeRig) queued() int {
	r.e.t.Helper()
	es, err := os.ReadDir(filepath.Join(r.stateDir, "queue"))
	if err != nil && !os.IsNotExist(err) {
		r.e.t.Fatal(err)
	}
	n := 0
	for _, e := range es {
		if strings.HasSuffix(e.Name(), ".json") {
			n++
		}
	}
	return n
}

func (r *bridgeRig) queue() map[string][]byte {
	r.e.t.Helper()
	out := map[string][]byte{}
	dir := filepath.Join(r.stateDir, "queue")
	es, err := os.ReadDir(dir)
	if err != nil {
		r.e.t.Fatal(err)
	}
	for _, e := range es {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			r.e.t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

// bridgeOfflineHour: the laser's bridge loses its link for an hour at
// 14:05 while ada's booked session runs, the server and the broker staying
// up. The server, no longer hearing it, closes ada's session at its last
// sign of life (DESIGN §3: device offline longer than its timeout); the
// bridge keeps her power until her until (14:30) and locks alone (§5).
// Meanwhile the server opens a session on the laser itself (the staff
// page's simulated tap at 14:35): its unlock never reaches the relay, and
// it ends unconfirmed, not billed. Offline the bridge refuses an unknown
// badge, lets bob in (offline tier) from 14:40 to 14:50 and sam (admin
// tier) from 14:55. At 15:05 the link is back: the queue is replayed,
// recorded as history (never decided again), bob's session billed once,
// sam's (still running) adopted and not cut; no billed session overlaps
// another. The same queue replayed a second time changes nothing.
func bridgeOfflineHour(e *env) {
	ctx := context.Background()
	r := e.bridge()
	e.book(e.ada, e.laser, t0, t0.Add(30*time.Minute))
	r.tapAt(t0, uidAda)
	var sa fablab.Session
	e.eventually("ada's session running", func() bool {
		open := e.openSessions()
		if len(open) != 1 || !open[0].Confirmed || !r.relay.On() {
			return false
		}
		sa = open[0]
		return r.dev.Status().SessionID == sa.ID.String()
	})
	// The server's last sign of life from the bridge before the cut: a
	// badge nobody holds, refused at 14:05.
	r.tapAt(t0.Add(5*time.Minute), uidProbe)
	e.eventually("the probe refused", func() bool { return r.signals.count("deny") == 1 })
	if n := len(e.audit(fablab.AuditTap, "denied")); n != 1 {
		e.t.Fatalf("%d refusals audited, want the probe's", n)
	}

	r.link.cut()
	e.eventually("the bridge to see its link down", func() bool { return !r.dev.Status().Connected })
	e.eventually("the server to hear the laser gone", func() bool { return !e.lab.Engine.DeviceStates()[devLaser].Online })
	seen := *e.lab.Engine.DeviceStates()[devLaser].LastSeen
	if !seen.Equal(t0.Add(5 * time.Minute)) {
		e.t.Fatalf("the laser last seen at %s, want at its last tap before the cut, 14:05", seen)
	}
	r.sweeps = true
	r.passUntil(t0.Add(7 * time.Minute))
	e.wantSession(sa.ID, fablab.EndDeviceOffline, seen)
	if !r.relay.On() {
		e.t.Fatal("the bridge cut ada's power before her until")
	}
	r.passUntil(t0.Add(30*time.Minute + time.Second))
	e.eventually("the bridge to lock at ada's until", func() bool { return !r.relay.On() })

	// The server opens a session meanwhile: its unlock reaches nobody.
	r.passUntil(t0.Add(35 * time.Minute))
	if d, err := e.lab.Engine.Tap(ctx, devLaser, uidBob); err != nil || d.Until.IsZero() {
		e.t.Fatalf("the simulated tap: %+v, %v", d, err)
	}
	open := e.openSessions()
	if len(open) != 1 || open[0].MemberID != e.bob.ID {
		e.t.Fatalf("open sessions %+v, want bob's", open)
	}
	sbServer := open[0]
	for range 3 {
		r.advance(3 * time.Second)
		e.lab.Engine.RetryDue(ctx)
	}
	e.wantSession(sbServer.ID, fablab.EndRelayUnconfirmed, t0.Add(35*time.Minute+9*time.Second))

	// Offline decisions.
	r.tapAt(t0.Add(38*time.Minute), uidUnknown)
	e.eventually("the unknown badge refused and queued", func() bool { return r.queued() == 1 })
	r.tapAt(t0.Add(40*time.Minute), uidBob)
	e.eventually("bob let in offline", func() bool { return r.relay.On() && r.dev.Status().LocalSession })
	r.tapAt(t0.Add(50*time.Minute), uidBob)
	e.eventually("bob's offline tap-out", func() bool { return !r.relay.On() && r.queued() == 3 })
	r.tapAt(t0.Add(55*time.Minute), uidSam)
	e.eventually("sam let in offline", func() bool { return r.relay.On() && r.queued() == 4 })
	r.passUntil(t0.Add(65 * time.Minute))
	if !r.relay.On() {
		e.t.Fatal("sam's offline session ended before the link came back")
	}
	saved := r.queue()

	r.sweeps = false // the link is up again (see sweeps)
	r.link.restore()
	e.eventually("the queue replayed", func() bool { return r.queued() == 0 })
	var ssam fablab.Session
	e.eventually("sam's running session adopted", func() bool {
		open := e.openSessions()
		if len(open) != 1 {
			return false
		}
		ssam = open[0]
		st := r.dev.Status()
		return st.SessionID == ssam.ID.String() && !st.LocalSession
	})
	if !r.relay.On() || !ssam.Offline || ssam.MemberID != e.sam.ID || !ssam.Started.Equal(t0.Add(55*time.Minute)) {
		e.t.Fatalf("sam's adopted session %+v, relay on %v", ssam, r.relay.On())
	}
	e.eventually("the adoption acknowledged", func() bool { return e.lab.Engine.PendingCommands() == 0 })
	if err := e.store.CheckRelays(ctx, map[string]bool{devLaser: r.relay.On()}); err != nil {
		e.t.Error(err)
	}

	ss := e.allSessions()
	if len(ss) != 4 {
		e.t.Fatalf("sessions %+v, want ada's, the server's for bob, bob's offline one and sam's", ss)
	}
	sbOff := ss[2]
	if ss[0].ID != sa.ID || ss[1].ID != sbServer.ID || ss[3].ID != ssam.ID || sbOff.MemberID != e.bob.ID || !sbOff.Offline ||
		!sbOff.Started.Equal(t0.Add(40*time.Minute)) || sbOff.Open() || !sbOff.Ended.Equal(t0.Add(50*time.Minute)) || sbOff.EndReason != fablab.EndTapOut {
		e.t.Errorf("sessions after the replay: %+v", ss)
	}
	// No session that ran overlaps another (the unconfirmed one never ran).
	for i := range ss {
		for j := i + 1; j < len(ss); j++ {
			a, b := ss[i], ss[j]
			if !a.Billable || !b.Billable {
				continue
			}
			if aEnd := a.Ended; aEnd == nil || aEnd.After(b.Started) {
				e.t.Errorf("sessions %s and %s overlap: %+v, %+v", a.ID, b.ID, a, b)
			}
		}
	}
	if n := len(e.audit(fablab.AuditTap, "replayed")); n != 4 {
		e.t.Errorf("%d replayed taps in the audit, want 4", n)
	}
	if g := e.lab.Engine.Granted.Load(); g != 2 {
		e.t.Errorf("Granted = %d, want ada's and the simulated tap's: the replay decides nothing", g)
	}

	// Sam taps out online; everything ended is billed once.
	r.tapAt(t0.Add(70*time.Minute), uidSam)
	e.eventually("sam's tap-out", func() bool { return !r.relay.On() && len(e.openSessions()) == 0 })
	e.wantSession(ssam.ID, fablab.EndTapOut, t0.Add(70*time.Minute))
	if n := e.billAll(); n != 4 {
		e.t.Errorf("billed %d sessions, want 4", n)
	}
	e.wantCharge(sa.ID, 5, 5*laserRate/60, "") // up to its last sign of life
	e.wantCharge(sbServer.ID, 1, 0, fablab.FreeNotBillable)
	e.wantCharge(sbOff.ID, 10, 10*laserRate/60, "")
	e.wantCharge(ssam.ID, 15, 0, fablab.FreeStaff)

	// The same queue replayed again (a bridge restored from a backup): the
	// bridge restarts with it; nothing changes.
	sessions := e.allSessions()
	charges, err := e.store.Charges(ctx, bolt.ChargeFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	replays := e.lab.Engine.Replays.Load()
	r.dev.Close()
	for name, b := range saved {
		if err := os.WriteFile(filepath.Join(r.stateDir, "queue", name), b, 0o600); err != nil {
			e.t.Fatal(err)
		}
	}
	r.start()
	e.eventually("the second replay", func() bool { return r.queued() == 0 })
	e.eventually("the replayed taps recognised", func() bool { return e.lab.Engine.Replays.Load() >= replays+4 })
	if n := e.billAll(); n != 0 {
		e.t.Errorf("the second replay billed %d sessions", n)
	}
	if got := e.allSessions(); !reflect.DeepEqual(got, sessions) {
		e.t.Errorf("sessions after the second replay:\n%+v\nwant\n%+v", got, sessions)
	}
	if got, err := e.store.Charges(ctx, bolt.ChargeFilter{}); err != nil || !reflect.DeepEqual(got, charges) {
		e.t.Errorf("charges after the second replay (%v):\n%+v\nwant\n%+v", err, got, charges)
	}
	if r.relay.On() {
		e.t.Error("the relay went on after the second replay")
	}
}
