package bridge_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/logbuf"

	"github.com/fabgate/fabgate/firmware-bridge/bridge"
	"github.com/fabgate/fabgate/firmware-bridge/bridge/bridgetest"
	"github.com/fabgate/fabgate/firmware-bridge/reader"
	"github.com/fabgate/fabgate/firmware-bridge/relay"
	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/bolt/bolttest"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/lab"
	"github.com/fabgate/fabgate/internal/lab/labtest"
	"github.com/fabgate/fabgate/internal/mqtt"
	"github.com/fabgate/fabgate/internal/wire"
)

// waitLong bounds every wait for something asynchronous; the tests never
// sleep for time to pass: both the server and the bridge run on one fake
// clock that the tests move.
const waitLong = 10 * time.Second

const (
	devLaser   = "laser-1"
	uidAda     = "04A2B3C4D5E601" // maker, trained for the laser: offline tier
	uidSam     = "04A2B3C4D5E603" // staff: admin tier
	uidUnknown = "04DEADBEEF0001" // nobody's
	serverUser = "fabgate-server"
	serverPass = "server-pass-e2e"
)

// rig is a lab under test: a real store, the embedded broker started by the
// test (so that it can stop it and start it again on the same address), the
// server's access side (lab.Start, manual schedule), and a bridge device
// with a simulated reader and relay, all on one fake clock.
type rig struct {
	t      *testing.T
	clock  *bridgetest.Clock
	store  *bolt.Store
	auth   *labtest.DeviceAuth
	broker *mqtt.Broker
	addr   string
	lab    *lab.Lab
	laser  fablab.Machine
	ada    fablab.Member
	secret string
	logs   *logbuf.Buffer
	log    *slog.Logger

	stateDir string
	dev      *bridge.Device
	reader   *reader.Sim
	relay    *relay.Sim
	ons      *countingRelay // counts every switch on
	signals  *signals
}

// countingRelay counts the times the device switches its relay on: a relay
// that goes on and off again between two looks is seen.
type countingRelay struct {
	*relay.Sim
	ons atomic.Int32
}

func (c *countingRelay) Set(ctx context.Context, on bool, lease time.Duration) error {
	if on {
		c.ons.Add(1)
	}
	return c.Sim.Set(ctx, on, lease)
}

func newRig(t *testing.T) *rig {
	t.Helper()
	ctx := context.Background()
	r := &rig{t: t, clock: bridgetest.NewClock(time.Now().Truncate(time.Second)), logs: &logbuf.Buffer{}, stateDir: t.TempDir()}
	r.log = slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", r.logs.String())
		}
	})
	r.store = bolttest.Open(t, r.clock.Now)
	tr, err := r.store.CreateTraining(ctx, fablab.Training{Name: "Laser safety"})
	must(t, err)
	rules := fablab.DefaultBookingRules()
	rules.MaxWalkInMinutes = 60
	r.laser, err = r.store.CreateMachine(ctx, fablab.Machine{Name: "Laser", Kind: fablab.KindLaserCutter, RequiredTrainings: []fablab.ID{tr.ID}, DeviceID: devLaser, Rules: rules})
	must(t, err)
	sam := r.member("sam@lab.test", fablab.RoleStaff, uidSam)
	r.ada = r.member("ada@lab.test", fablab.RoleMaker, uidAda)
	_, err = r.store.GrantQualification(ctx, fablab.Qualification{MemberID: r.ada.ID, TrainingID: tr.ID, GrantedBy: sam.ID, GrantedAt: r.clock.Now().Add(-time.Hour)})
	must(t, err)
	r.secret = auth.NewToken()
	hash, err := mqtt.MosquittoPasswordHash(r.secret)
	must(t, err)
	_, err = r.store.CreateDevice(ctx, fablab.Device{ID: devLaser, MachineID: r.laser.ID, SecretHash: hash})
	must(t, err)

	r.auth = &labtest.DeviceAuth{Store: r.store}
	r.startBroker("127.0.0.1:0")
	r.addr = r.broker.Addr()
	r.lab, err = lab.Start(ctx, lab.Config{Store: r.store, URL: "tcp://" + r.addr, Username: serverUser, Password: serverPass,
		Now: r.clock.Now, Manual: true, Log: r.log.With("side", "server")})
	must(t, err)
	t.Cleanup(r.lab.Close)
	return r
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (r *rig) member(email string, role fablab.Role, uid string) fablab.Member {
	r.t.Helper()
	ctx := context.Background()
	m, err := r.store.CreateMember(ctx, fablab.Member{Email: email, Name: strings.Split(email, "@")[0], Group: "student", Role: role})
	must(r.t, err)
	_, err = r.store.AddBadge(ctx, fablab.Badge{Hash: auth.BadgeHash(r.store.BadgeSecret(), uid), MemberID: m.ID})
	must(r.t, err)
	return m
}

func (r *rig) startBroker(addr string) {
	r.t.Helper()
	b, err := mqtt.StartBroker(mqtt.BrokerConfig{Listen: addr, Devices: r.auth, ServerUser: serverUser, ServerPassword: serverPass, Log: r.log.With("side", "broker")})
	must(r.t, err)
	r.broker = b
	r.t.Cleanup(func() { b.Close() })
}

func (r *rig) stopBroker() {
	r.t.Helper()
	must(r.t, r.broker.Close())
	r.eventually("the bridge to see the broker gone", func() bool { return !r.dev.Status().Connected })
}

// startBridge starts the device with a new simulated reader, on relay rl
// (a new one when nil).
func (r *rig) startBridge(rl *relay.Sim) {
	r.t.Helper()
	key, err := r.store.AllowlistKey(context.Background())
	must(r.t, err)
	r.startBridgeWithKey(rl, key)
}

// startBridgeWithKey starts the device configured with its allowlist key
// derived from key.
func (r *rig) startBridgeWithKey(rl *relay.Sim, key bolt.AllowlistKey) {
	r.t.Helper()
	if rl == nil {
		rl = relay.NewSim(500)
	}
	r.reader, r.relay, r.ons, r.signals = reader.NewSim(), rl, &countingRelay{Sim: rl}, &signals{}
	d, err := bridge.Start(context.Background(), bridge.DeviceConfig{
		ID: devLaser, Secret: r.secret, Broker: "tcp://" + r.addr, BadgeKey: r.store.BadgeSecret(), StateDir: filepath.Join(r.stateDir, devLaser),
		AllowlistKey: auth.DeviceAllowlistKey(key.Root, key.ID, devLaser), AllowlistKeyID: key.ID,
		OfflineSessionLimit: 30 * time.Minute, Reader: r.reader, Relay: r.ons, Indicator: r.signals, Clock: r.clock, Log: r.log.With("side", "bridge"),
	})
	must(r.t, err)
	r.dev = d
	r.t.Cleanup(d.Close)
}

// startReady starts the bridge and waits until it is online with its
// allowlist.
func (r *rig) startReady() {
	r.t.Helper()
	r.startBridge(nil)
	r.online()
	r.eventually("the allowlist", func() bool { return r.dev.Status().AllowVer > 0 })
}

func (r *rig) eventually(what string, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out after %s waiting for %s", waitLong, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *rig) online() {
	r.t.Helper()
	r.eventually("the bridge online with the server", func() bool {
		s := r.dev.Status()
		return s.Connected && s.ServerOnline
	})
}

// tap reads a badge, first moving the clock past the re-read window.
func (r *rig) tap(uid string) {
	r.t.Helper()
	r.clock.Advance(wire.RereadWindow + time.Second)
	must(r.t, r.reader.Tap(uid))
}

func (r *rig) openSession() (fablab.Session, bool) {
	s, err := r.store.OpenSessionOn(context.Background(), r.laser.ID)
	return s, err == nil
}

func (r *rig) sessions() []fablab.Session {
	r.t.Helper()
	ss, err := r.store.SessionsOfMachine(context.Background(), r.laser.ID, time.Unix(0, 0), r.clock.Now().Add(24*time.Hour))
	must(r.t, err)
	return ss
}

// The whole path with the server online: tap → session → unlock → relay on
// → ack; tap again → tap-out → lock → relay off.
func TestBridgeTapUnlockTapOut(t *testing.T) {
	r := newRig(t)
	r.startBridge(nil)
	r.online()
	r.tap(uidAda)
	r.eventually("the relay on for a confirmed session", func() bool {
		s, ok := r.openSession()
		return ok && s.Confirmed && r.relay.On() && r.dev.Status().SessionID == s.ID.String()
	})
	r.tap(uidAda)
	r.eventually("the tap-out: relay off, session ended", func() bool {
		_, open := r.openSession()
		return !open && !r.relay.On() && r.dev.Status().SessionID == ""
	})
	ss := r.sessions()
	if len(ss) != 1 || ss[0].EndReason != fablab.EndTapOut || !ss[0].Billable || ss[0].Offline {
		t.Fatalf("sessions: %+v", ss)
	}
}

// With the broker gone mid-session the relay keeps power until the
// session's end, then the bridge switches it off by itself; back online,
// the server closes the session.
func TestBridgeBrokerStoppedMidSession(t *testing.T) {
	r := newRig(t)
	r.startBridge(nil)
	r.online()
	r.tap(uidAda)
	var sess fablab.Session
	r.eventually("the session running", func() bool {
		var ok bool
		sess, ok = r.openSession()
		return ok && sess.Confirmed && r.relay.On()
	})
	r.stopBroker()
	r.clock.Advance(sess.Until.Sub(r.clock.Now()) - time.Minute)
	if !r.relay.On() {
		t.Fatal("the relay went off before the session's end")
	}
	r.clock.Advance(2 * time.Minute)
	r.eventually("the bridge to lock at the session's end", func() bool { return !r.relay.On() && r.dev.Status().SessionID == "" })

	r.startBroker(r.addr)
	r.online()
	r.eventually("the server to close the session from the relay's state", func() bool {
		_, open := r.openSession()
		return !open
	})
	got := r.sessions()[0]
	if got.EndReason != fablab.EndRelayOff || got.Ended.After(sess.Until) {
		t.Fatalf("session closed %+v, want relay_off at its end %s", got, sess.Until)
	}
}

// Offline: an unknown badge is refused, an offline-tier member is let in
// and taps out, staff (admin tier) are let in; when the link returns the
// taps are replayed and recorded once each, the finished session is billed
// as an offline session and the running one is adopted by the server.
// Replaying the same queue again changes nothing.
func TestBridgeOfflineDecisionsAndReplay(t *testing.T) {
	r := newRig(t)
	r.startReady()
	r.stopBroker()

	r.tap(uidUnknown)
	r.eventually("the unknown badge queued", func() bool { return queued(t, r.stateDir) == 1 })
	if r.relay.On() {
		t.Fatal("an unknown badge switched the relay on offline")
	}
	r.tap(uidAda)
	r.eventually("the offline-tier member let in", func() bool { return r.relay.On() && r.dev.Status().LocalSession })
	r.clock.Advance(10 * time.Minute)
	r.tap(uidAda)
	r.eventually("the offline tap-out", func() bool { return !r.relay.On() && queued(t, r.stateDir) == 3 })
	r.tap(uidSam)
	r.eventually("staff let in", func() bool { return r.relay.On() && queued(t, r.stateDir) == 4 })
	saved := copyQueue(t, r.stateDir)

	r.startBroker(r.addr)
	r.online()
	r.eventually("the replay", func() bool { return queued(t, r.stateDir) == 0 })
	var adopted fablab.Session
	r.eventually("the running session adopted", func() bool {
		var ok bool
		adopted, ok = r.openSession()
		return ok && r.dev.Status().SessionID == adopted.ID.String() && !r.dev.Status().LocalSession
	})
	if !adopted.Offline || !adopted.Confirmed || !r.relay.On() {
		t.Fatalf("adopted session %+v, relay on %v", adopted, r.relay.On())
	}
	check := func() {
		t.Helper()
		ss := r.sessions()
		if len(ss) != 2 {
			t.Fatalf("%d sessions, want the finished offline one and the adopted one: %+v", len(ss), ss)
		}
		done := ss[0]
		if !done.Offline || done.Open() || done.EndReason != fablab.EndTapOut || done.MemberID != r.ada.ID || !done.Billable ||
			done.Ended.Sub(done.Started) != 10*time.Minute+wire.RereadWindow+time.Second {
			t.Errorf("finished offline session: %+v", done)
		}
		evs, err := r.store.AuditEvents(context.Background(), bolt.AuditFilter{From: time.Unix(0, 0), To: r.clock.Now().Add(time.Hour), Kind: fablab.AuditTap, Limit: 100})
		must(t, err)
		replayed := 0
		for _, e := range evs {
			if e.Action == "replayed" {
				replayed++
			}
		}
		if replayed != 4 {
			t.Errorf("%d replayed taps in the audit, want 4", replayed)
		}
	}
	check()

	// The same queue replayed again (a bridge restored from a backup, a
	// QoS 1 redelivery): recorded once.
	replaysBefore := r.lab.Engine.Replays.Load()
	r.dev.Close()
	restoreQueue(t, r.stateDir, saved)
	r.startBridge(nil)
	r.online()
	r.eventually("the second replay", func() bool { return queued(t, r.stateDir) == 0 })
	r.eventually("the duplicates counted", func() bool { return r.lab.Engine.Replays.Load() >= replaysBefore+4 })
	check()
}

// TestBridgeBadgeKeyRotation: the bridge matches offline with the key of
// its configuration. After a rotation the server publishes a list under the
// new key id; a bridge still configured with the old key refuses offline
// taps with the reason allowlist_key (queued for the server to see) and
// logs what to change, rather than "not on the list"; once configured with
// its new key it admits from the list it kept.
func TestBridgeBadgeKeyRotation(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	old, err := r.store.AllowlistKey(ctx)
	must(t, err)
	r.startReady()
	first := r.dev.Status().AllowVer
	k, err := r.store.RotateAllowlistKey(ctx)
	must(t, err)
	r.lab.Engine.PublishAllowlists(ctx)
	r.eventually("the list of the new key", func() bool { return r.dev.Status().AllowVer > first })
	r.stopBroker()

	r.tap(uidSam)
	r.eventually("the refused tap queued", func() bool { return queued(t, r.stateDir) == 1 })
	if r.relay.On() {
		t.Fatal("the relay went on with a list of another key")
	}
	for _, raw := range copyQueue(t, r.stateDir) {
		if !bytes.Contains(raw, []byte(`"reason":"`+bridge.ReasonAllowlistKey+`"`)) {
			t.Errorf("queued tap %s, want the reason %s", raw, bridge.ReasonAllowlistKey)
		}
	}
	if !strings.Contains(r.logs.String(), "hashed with another key") {
		t.Error("the key mismatch is not logged")
	}

	// The operator puts the device's new key in its configuration.
	r.dev.Close()
	if k.ID != old.ID+1 {
		t.Fatalf("key %d after rotation, want %d", k.ID, old.ID+1)
	}
	r.startBridgeWithKey(nil, k)
	r.tap(uidSam)
	r.eventually("staff let in offline under the new key", func() bool { return r.relay.On() && r.dev.Status().LocalSession })
}

// A bridge that restarts switches its relay off, whatever it was, and
// never on again without a new tap; the server closes the session.
func TestBridgeRestartRelayOff(t *testing.T) {
	r := newRig(t)
	r.startBridge(nil)
	r.online()
	r.tap(uidAda)
	r.eventually("the relay on", func() bool { s, ok := r.openSession(); return ok && s.Confirmed && r.relay.On() })
	r.dev.Close()
	if r.relay.On() {
		t.Fatal("the relay stayed on after the bridge stopped")
	}
	// Hardware left on by a crash: the next start switches it off first.
	rl := relay.NewSim(500)
	must(t, rl.Set(context.Background(), true, 0))
	r.startBridge(rl)
	if rl.On() {
		t.Fatal("the relay is on after the bridge started")
	}
	r.online()
	r.eventually("the server to close the session", func() bool { _, open := r.openSession(); return !open })
	if rl.On() {
		t.Fatal("the relay went on again without a tap")
	}
}

// The server status says online but nobody answers: after 2 s the bridge
// decides alone, and the tap is queued with the same msg_id.
func TestBridgeUnansweredTapDecidedLocally(t *testing.T) {
	r := newRig(t)
	r.startReady()
	// The server goes; its status, published retained by a stand-in, still
	// says online.
	r.lab.Close()
	// The device first sees the server's own offline status, which the
	// stand-in then replaces: a tap between the two would be decided here
	// at once.
	r.eventually("the server offline", func() bool { return !r.dev.Status().ServerOnline })
	stand, err := mqtt.Connect(context.Background(), mqtt.ClientConfig{Broker: "tcp://" + r.addr, ClientID: "stand-in", Username: serverUser, Password: serverPass})
	must(t, err)
	defer stand.Close(nil)
	taps := make(chan string, 4)
	topics, _ := wire.NewTopics(wire.DefaultPrefix)
	must(t, stand.Subscribe(topics.Device(devLaser, wire.KindTap), 1, func(_ string, p []byte) { taps <- string(p) }))
	online, _ := wire.Encode(&wire.ServerStatus{Online: true})
	must(t, stand.Publish(context.Background(), mqtt.Message{Topic: topics.ServerStatus(), Payload: online, QoS: 1, Retained: true}))
	r.online()
	r.tap(uidAda)
	var sent string
	select {
	case sent = <-taps:
	case <-time.After(waitLong):
		t.Fatal("the tap was not sent")
	}
	if r.relay.On() {
		t.Fatal("the relay went on before the answer timeout")
	}
	r.clock.Advance(wire.AnswerTimeout)
	r.eventually("the local decision", func() bool { return r.relay.On() && r.dev.Status().LocalSession })
	tap, err := wire.DecodeTap([]byte(sent))
	must(t, err)
	if !strings.HasSuffix(r.dev.Status().SessionID, tap.MsgID) {
		t.Fatalf("local session %q is not named after the tap %s", r.dev.Status().SessionID, tap.MsgID)
	}
}

func queued(t *testing.T, dir string) int {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(dir, devLaser, "queue"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	n := 0
	for _, e := range es {
		if strings.HasSuffix(e.Name(), ".json") {
			n++
		}
	}
	return n
}

func copyQueue(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	q := filepath.Join(dir, devLaser, "queue")
	es, err := os.ReadDir(q)
	must(t, err)
	for _, e := range es {
		b, err := os.ReadFile(filepath.Join(q, e.Name()))
		must(t, err)
		out[e.Name()] = b
	}
	return out
}

func restoreQueue(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for name, b := range files {
		must(t, os.WriteFile(filepath.Join(dir, devLaser, "queue", name), b, 0o600))
	}
}

// The link drops during Ada's session; she taps out offline and Sam is let
// in offline. Back online, the replayed tap-out ends Ada's session when she
// left, and Sam's running session is adopted, never cut by a lock.
func TestBridgeReplayedTapOutSparesTheNextSession(t *testing.T) {
	r := newRig(t)
	r.startReady()
	r.tap(uidAda)
	r.eventually("Ada's session", func() bool { s, ok := r.openSession(); return ok && s.Confirmed && r.relay.On() })
	r.stopBroker()
	r.clock.Advance(time.Minute)
	r.tap(uidAda)
	left := r.clock.Now()
	r.eventually("the offline tap-out", func() bool { return !r.relay.On() })
	r.tap(uidSam)
	r.eventually("Sam let in", func() bool { return r.relay.On() && r.dev.Status().LocalSession })

	r.startBroker(r.addr)
	r.online()
	r.eventually("Sam's session adopted", func() bool {
		s, ok := r.openSession()
		return ok && s.Offline && r.dev.Status().SessionID == s.ID.String()
	})
	if !r.relay.On() {
		t.Fatal("Sam's session was cut")
	}
	ada := r.sessions()[0]
	if ada.Open() || !ada.Ended.Equal(left) || ada.EndReason != fablab.EndTapOut {
		t.Fatalf("Ada's session %+v, want ended by her tap-out at %s", ada, left)
	}
}

// The bridge restarts while the broker is out of reach and lets staff in
// before it connects: its new boot does not get that session locked.
func TestBridgeRestartOfflineSessionKept(t *testing.T) {
	r := newRig(t)
	r.startReady()
	r.stopBroker()
	r.dev.Close()
	r.startBridge(nil)
	r.tap(uidSam)
	r.eventually("staff let in", func() bool { return r.relay.On() && r.dev.Status().LocalSession })
	r.startBroker(r.addr)
	r.online()
	r.eventually("the session adopted", func() bool {
		s, ok := r.openSession()
		return ok && r.dev.Status().SessionID == s.ID.String()
	})
	if !r.relay.On() {
		t.Fatal("the session granted before the connection was cut")
	}
}

// The server restarts while the devices hold offline decisions: it listens
// before it says it is online, so no replay is lost; and the relay's state
// (off since the last offline session ended) does not stretch the session
// the server had open over the offline ones: each minute is billed once.
func TestBridgeServerRestartReplays(t *testing.T) {
	r := newRig(t)
	r.startReady()
	r.tap(uidAda)
	r.eventually("Ada's session", func() bool { s, ok := r.openSession(); return ok && s.Confirmed && r.relay.On() })
	r.lab.Close()
	r.eventually("the server offline", func() bool { return !r.dev.Status().ServerOnline })
	r.clock.Advance(10 * time.Minute)
	r.tap(uidAda)
	adaLeft := r.clock.Now()
	r.eventually("the offline tap-out", func() bool { return !r.relay.On() && r.dev.Status().SessionID == "" })
	r.clock.Advance(10 * time.Minute)
	r.tap(uidSam)
	r.eventually("staff let in", func() bool { return r.relay.On() && r.dev.Status().LocalSession })
	r.clock.Advance(20 * time.Minute)
	r.tap(uidSam)
	r.eventually("staff out", func() bool { return !r.relay.On() && r.dev.Status().SessionID == "" })

	var err error
	r.lab, err = lab.Start(context.Background(), lab.Config{Store: r.store, URL: "tcp://" + r.addr, Username: serverUser, Password: serverPass,
		Now: r.clock.Now, Manual: true, Log: r.log.With("side", "server2")})
	must(t, err)
	t.Cleanup(r.lab.Close)
	r.online()
	r.eventually("the replay", func() bool { return queued(t, r.stateDir) == 0 })
	r.eventually("both sessions recorded, Ada's ended when she left", func() bool {
		ss := r.sessions()
		return len(ss) == 2 && !ss[0].Open() && ss[0].Ended.Equal(adaLeft) && !ss[1].Open()
	})
	ss := r.sessions()
	if ss[1].MemberID == r.ada.ID || !ss[1].Offline || ss[1].Started.Before(*ss[0].Ended) || ss[1].Ended.Sub(ss[1].Started) != 20*time.Minute+wire.RereadWindow+time.Second {
		t.Fatalf("sessions %+v, want Ada's then staff's 20 offline minutes, not overlapping", ss)
	}
}

// After each step — tap-in, tap-out, a tap the server refuses — nothing
// changes in the seconds that follow: the shared clock is moved past the
// bridge's 2 s offline decision, past the server's ack retries and past the
// 30 s in which an unlock may answer a tap, and the relay stays as the step
// left it (never switched on again, not even for a moment), no session is
// granted offline, no tap is queued, and the server's sessions stay as they
// were. Ada is on the allowlist: a tap decided again offline would let her
// in.
func TestBridgeNothingChangesAfterEachStep(t *testing.T) {
	r := newRig(t)
	r.startReady()
	ctx := context.Background()

	// watch moves the clock through the windows in which something could
	// still happen and checks each time that nothing did.
	watch := func(step string, relayOn bool, ons int32, sessions []fablab.Session) {
		t.Helper()
		for _, d := range []time.Duration{wire.AnswerTimeout + time.Second, 3 * time.Second, 3 * time.Second, 3 * time.Second, 31 * time.Second} {
			r.clock.Advance(d)
			r.lab.Engine.RetryDue(ctx)
			r.probe()
			if r.relay.On() != relayOn || r.ons.ons.Load() != ons {
				t.Fatalf("after the %s and %s more: relay on %v, switched on %d times; want on %v, %d times",
					step, d, r.relay.On(), r.ons.ons.Load(), relayOn, ons)
			}
			if st := r.dev.Status(); st.LocalSession {
				t.Fatalf("after the %s: a session granted offline: %+v", step, st)
			}
			if n := queued(t, r.stateDir); n != 0 {
				t.Fatalf("after the %s: %d taps decided offline", step, n)
			}
			if got := r.sessions(); !slices.EqualFunc(got, sessions, func(a, b fablab.Session) bool {
				return a.ID == b.ID && a.Open() == b.Open() && a.EndReason == b.EndReason && a.Confirmed == b.Confirmed
			}) {
				t.Fatalf("after the %s: sessions %+v, want %+v", step, got, sessions)
			}
		}
	}

	r.tap(uidAda)
	r.eventually("the tap-in: relay on, session confirmed", func() bool {
		s, ok := r.openSession()
		return ok && s.Confirmed && r.relay.On() && r.dev.Status().SessionID == s.ID.String()
	})
	watch("tap-in", true, 1, r.sessions())

	r.tap(uidAda)
	r.eventually("the tap-out: relay off, session ended", func() bool {
		_, open := r.openSession()
		return !open && !r.relay.On() && r.dev.Status().SessionID == ""
	})
	if ss := r.sessions(); len(ss) != 1 || ss[0].EndReason != fablab.EndTapOut {
		t.Fatalf("sessions %+v, want one ended by the tap-out", ss)
	}
	watch("tap-out", false, 1, r.sessions())

	_, err := r.store.UpdateMachine(ctx, r.laser.ID, func(m *fablab.Machine) error { m.State = fablab.MachineMaintenance; return nil })
	must(t, err)
	denied := len(r.signals.list())
	r.tap(uidAda)
	r.eventually("the refusal shown", func() bool { return len(r.signals.list()) > denied })
	watch("refused tap", false, 1, r.sessions())
}

// probe taps a badge nobody holds and waits for the server's refusal to be
// shown: whatever the device's timers handed to its loop before is done.
func (r *rig) probe() {
	r.t.Helper()
	n := len(r.signals.list())
	r.tap(uidUnknown)
	r.eventually("the probe refused", func() bool { return len(r.signals.list()) > n })
}
