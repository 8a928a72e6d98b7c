package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/logbuf"

	"github.com/fabgate/fabgate/firmware-bridge/bridge"
	"github.com/fabgate/fabgate/firmware-bridge/bridge/bridgetest"
	"github.com/fabgate/fabgate/firmware-bridge/reader"
	"github.com/fabgate/fabgate/firmware-bridge/relay"
	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt/bolttest"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/lab/labtest"
	"github.com/fabgate/fabgate/internal/mqtt"
	"github.com/fabgate/fabgate/internal/wire"
)

// The tests in this file drive one device over the real embedded broker
// with the test in the server's place: it publishes the server status, the
// allowlist and commands, and reads what the device publishes. The device
// runs on a fake clock that only the test moves; the tests wait for
// messages and for effects, never for time to pass.

const (
	uidBea = "04A2B3C4D5E602" // offline tier, entry ending soon
	uidCy  = "04A2B3C4D5E604" // offline tier, entry already ended
)

// badgeKey is the lab's badge key as given to the device (protocol §8.1).
var badgeKey = []byte("device-test-badge-key")

// devRig is one device on a real broker, with the test as its server.
type devRig struct {
	t        *testing.T
	clock    *bridgetest.Clock
	broker   *mqtt.Broker
	addr     string
	secret   string
	topics   wire.Topics
	server   *mqtt.Client
	inbox    map[wire.Kind]chan []byte
	stateDir string
	logs     *logbuf.Buffer
	log      *slog.Logger
	seq      uint64 // the last seq the test sent

	dev    *bridge.Device
	reader *reader.Sim
	relay  *relay.Sim
	ind    *signals
}

func newDevRig(t *testing.T) *devRig {
	t.Helper()
	r := &devRig{
		t: t, clock: bridgetest.NewClock(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)),
		logs: &logbuf.Buffer{}, stateDir: filepath.Join(t.TempDir(), devLaser), inbox: map[wire.Kind]chan []byte{},
	}
	r.log = slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", r.logs.String())
		}
	})
	var err error
	r.topics, err = wire.NewTopics(wire.DefaultPrefix)
	must(t, err)
	store := bolttest.Open(t, r.clock.Now)
	r.secret = auth.NewToken()
	hash, err := mqtt.MosquittoPasswordHash(r.secret)
	must(t, err)
	_, err = store.CreateDevice(context.Background(), fablab.Device{ID: devLaser, SecretHash: hash})
	must(t, err)
	r.broker, err = mqtt.StartBroker(mqtt.BrokerConfig{Listen: "127.0.0.1:0", Devices: &labtest.DeviceAuth{Store: store}, ServerUser: serverUser, ServerPassword: serverPass, Log: r.log.With("side", "broker")})
	must(t, err)
	t.Cleanup(func() { r.broker.Close() })
	r.addr = r.broker.Addr()

	r.server, err = mqtt.Connect(context.Background(), mqtt.ClientConfig{Broker: "tcp://" + r.addr, ClientID: "test-server", Username: serverUser, Password: serverPass})
	must(t, err)
	t.Cleanup(func() { r.server.Close(nil) })
	for _, k := range []wire.Kind{wire.KindStatus, wire.KindHeartbeat, wire.KindTap, wire.KindAck, wire.KindState} {
		ch := make(chan []byte, 256)
		r.inbox[k] = ch
		must(t, r.server.Subscribe(r.topics.Device(devLaser, k), 1, func(_ string, p []byte) { ch <- p }))
	}
	return r
}

// start starts the device with a simulated reader and relay, mods applied
// to its configuration.
func (r *devRig) start(mods ...func(*bridge.DeviceConfig)) {
	r.t.Helper()
	r.reader, r.relay, r.ind = reader.NewSim(), relay.NewSim(500), &signals{}
	cfg := bridge.DeviceConfig{
		ID: devLaser, Secret: r.secret, Broker: "tcp://" + r.addr, BadgeKey: badgeKey, StateDir: r.stateDir,
		MaxOfflineAge: 24 * time.Hour, OfflineSessionLimit: 30 * time.Minute,
		Reader: r.reader, Relay: r.relay, Indicator: r.ind, Clock: r.clock, Log: r.log.With("side", "bridge"),
	}
	for _, m := range mods {
		m(&cfg)
	}
	d, err := bridge.Start(context.Background(), cfg)
	must(r.t, err)
	r.dev = d
	r.t.Cleanup(d.Close)
}

// online waits for the device to be connected, publishes the server's
// status online, waits for the device to see it, then for its loop to have
// taken everything posted at its start (the heartbeat timer among them).
//
// The status is published once the device has subscribed: the embedded
// broker refuses a SUBSCRIBE whose packet id equals that of a QoS 1
// delivery still in flight to the same client (mochi keeps both directions'
// ids in one map), so a retained message delivered between a device's
// SUBSCRIBEs at connect can cost it a subscription.
func (r *devRig) online() {
	r.t.Helper()
	r.eventually("the device connected", func() bool { return r.dev.Status().Connected })
	r.serverStatus(true)
	r.eventually("the device online with the server", func() bool {
		s := r.dev.Status()
		return s.Connected && s.ServerOnline
	})
	r.barrier()
}

func (r *devRig) eventually(what string, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out after %s waiting for %s", waitLong, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (r *devRig) publish(topic string, payload []byte, retained bool) {
	r.t.Helper()
	must(r.t, r.server.Publish(context.Background(), mqtt.Message{Topic: topic, Payload: payload, QoS: 1, Retained: retained}))
}

func (r *devRig) encode(v any) []byte {
	r.t.Helper()
	b, err := wire.Encode(v)
	must(r.t, err)
	return b
}

// serverStatus publishes the server's retained status.
func (r *devRig) serverStatus(online bool) {
	r.t.Helper()
	r.publish(r.topics.ServerStatus(), r.encode(&wire.ServerStatus{Online: online}), true)
}

// allowlist publishes the device's retained allowlist and waits for the
// device to hold it.
func (r *devRig) allowlist(l wire.Allowlist) {
	r.t.Helper()
	r.publish(r.topics.Device(devLaser, wire.KindAllowlist), r.encode(&l), true)
	r.eventually("the allowlist held", func() bool { return r.dev.Status().AllowVer == l.Ver })
}

// send publishes a command (seq and cmd_id filled in when empty) and
// returns its ack, which must be the next ack the device publishes.
func (r *devRig) send(c wire.Command) wire.Ack {
	r.t.Helper()
	if c.Seq == 0 {
		c.Seq = r.seq + 1
	}
	r.seq = max(r.seq, c.Seq)
	if c.CmdID == "" {
		c.CmdID = fmt.Sprintf("cmd-%d", c.Seq)
	}
	r.publish(r.topics.Device(devLaser, wire.KindCmd), r.encode(&c), false)
	ack := r.nextAck()
	if ack.CmdID != c.CmdID || ack.Seq != c.Seq {
		r.t.Fatalf("ack %+v, want the ack of %s (seq %d)", ack, c.CmdID, c.Seq)
	}
	return ack
}

// barrier sends a status command and waits for its ack: whatever the device
// took before it has been handled.
func (r *devRig) barrier() wire.Ack {
	r.t.Helper()
	return r.send(wire.Command{Op: wire.OpStatus})
}

func (r *devRig) next(k wire.Kind) []byte {
	r.t.Helper()
	select {
	case b := <-r.inbox[k]:
		return b
	case <-time.After(waitLong):
		r.t.Fatalf("no %s message within %s", k, waitLong)
		return nil
	}
}

func (r *devRig) nextAck() wire.Ack {
	r.t.Helper()
	a, err := wire.DecodeAck(r.next(wire.KindAck))
	must(r.t, err)
	return a
}

func (r *devRig) nextTap() wire.Tap {
	r.t.Helper()
	tp, err := wire.DecodeTap(r.next(wire.KindTap))
	must(r.t, err)
	return tp
}

// waitState waits for a state that satisfies ok, skipping the others.
func (r *devRig) waitState(what string, ok func(wire.State) bool) wire.State {
	r.t.Helper()
	deadline := time.After(waitLong)
	for {
		select {
		case b := <-r.inbox[wire.KindState]:
			st, err := wire.DecodeState(b)
			must(r.t, err)
			if ok(st) {
				return st
			}
		case <-deadline:
			r.t.Fatalf("no state with %s within %s", what, waitLong)
		}
	}
}

// none fails if a message of kind k has arrived; call it after a barrier.
func (r *devRig) none(k wire.Kind) {
	r.t.Helper()
	select {
	case b := <-r.inbox[k]:
		r.t.Fatalf("unexpected %s: %s", k, b)
	default:
	}
}

func (r *devRig) drain(k wire.Kind) {
	for {
		select {
		case <-r.inbox[k]:
		default:
			return
		}
	}
}

// read reads a badge on the reader, first moving the clock past the
// re-read window. The device takes the read in the background, at the
// clock's time then: wait for its effect before moving the clock again.
func (r *devRig) read(uid string) {
	r.t.Helper()
	r.clock.Advance(wire.RereadWindow + time.Second)
	must(r.t, r.reader.Tap(uid))
}

// grant reads a badge and answers its tap with an unlock for d from now;
// it returns the unlock's ack and until.
func (r *devRig) grant(uid, sessionID string, d time.Duration) (wire.Ack, time.Time) {
	r.t.Helper()
	r.read(uid)
	if tp := r.nextTap(); tp.UID != uid || tp.Offline {
		r.t.Fatalf("tap %+v, want an online tap of %s", tp, uid)
	}
	until := r.clock.Now().Add(d)
	return r.send(wire.Command{Op: wire.OpUnlock, SessionID: sessionID, Until: until.Unix()}), until
}

// granted is grant for an hour, checking that the relay went on.
func (r *devRig) granted(uid, sessionID string) {
	r.t.Helper()
	ack, _ := r.grant(uid, sessionID, time.Hour)
	wantAck(r.t, ack, wire.ResultOK, wire.RelayOn, "")
	r.wantRelay(true)
}

// queue returns the taps in the device's offline queue, in order.
func (r *devRig) queue() []wire.Tap {
	r.t.Helper()
	dir := filepath.Join(r.stateDir, "queue")
	es, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	must(r.t, err)
	var out []wire.Tap
	for _, e := range es { // sorted by name: the queue's order
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // replayed meanwhile
		}
		must(r.t, err)
		tp, err := wire.DecodeTap(b)
		must(r.t, err)
		out = append(out, tp)
	}
	return out
}

// queued waits for the offline queue to hold n taps and returns them.
func (r *devRig) queued(n int) []wire.Tap {
	r.t.Helper()
	var q []wire.Tap
	r.eventually(fmt.Sprintf("%d taps in the offline queue", n), func() bool { q = r.queue(); return len(q) == n })
	return q
}

func (r *devRig) wantRelay(on bool) {
	r.t.Helper()
	want := wire.RelayOff
	if on {
		want = wire.RelayOn
	}
	// The snapshot follows the loop's event, so it may trail an ack or a
	// queued tap by a moment.
	r.eventually("the relay "+want, func() bool { return r.relay.On() == on && r.dev.Status().Relay == want })
}

func wantAck(t *testing.T, got wire.Ack, result, relayState, reason string) {
	t.Helper()
	if got.Result != result || got.Relay != relayState || got.Reason != reason {
		t.Fatalf("ack %+v, want result %q relay %q reason %q", got, result, relayState, reason)
	}
}

// signals is an Indicator that records what it is asked to show.
type signals struct {
	mu  sync.Mutex
	got []string
}

func (s *signals) Signal(kind string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, kind)
}

func (s *signals) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// The seq rule (protocol §6.1): a command applied once, a duplicate
// answered with the same ack, an older seq answered stale, a newer one
// applied.
func TestDeviceSeqRule(t *testing.T) {
	r := newDevRig(t)
	r.start()
	r.online()
	r.read(uidAda)
	if tp := r.nextTap(); tp.UID != uidAda || tp.Offline {
		t.Fatalf("tap %+v", tp)
	}
	r.drain(wire.KindState)
	unlock := wire.Command{CmdID: "unlock-10", Seq: 10, Op: wire.OpUnlock, SessionID: "311", Until: r.clock.Now().Add(time.Hour).Unix()}
	first := r.send(unlock)
	wantAck(t, first, wire.ResultOK, wire.RelayOn, "")
	r.wantRelay(true)
	st := r.waitState("relay on", func(s wire.State) bool { return s.Relay == wire.RelayOn })
	if st.SessionID != "311" || st.Seq != 10 {
		t.Fatalf("state %+v, want session 311 at seq 10", st)
	}

	if again := r.send(unlock); again != first {
		t.Fatalf("duplicate acked %+v, want the same ack %+v", again, first)
	}
	if s := r.dev.Status(); s.Seq != 10 || s.SessionID != "311" {
		t.Fatalf("status after the duplicate: %+v", s)
	}

	for _, c := range []wire.Command{
		{CmdID: "lock-5", Seq: 5, Op: wire.OpLock},   // older
		{CmdID: "lock-10", Seq: 10, Op: wire.OpLock}, // the same seq, another command
	} {
		wantAck(t, r.send(c), wire.ResultStale, wire.RelayOn, "stale_seq")
		r.wantRelay(true)
	}

	r.drain(wire.KindState)
	wantAck(t, r.send(wire.Command{CmdID: "lock-11", Seq: 11, Op: wire.OpLock, SessionID: "311", Reason: fablab.EndTapOut}), wire.ResultOK, wire.RelayOff, "")
	r.wantRelay(false)
	st = r.waitState("relay off", func(s wire.State) bool { return s.Relay == wire.RelayOff })
	if st.SessionID != "" || st.Seq != 11 {
		t.Fatalf("state %+v, want no session at seq 11", st)
	}
}

// An unlock is applied only as the answer to a tap read in the last 30 s,
// and never once its until has passed.
func TestDeviceUnlockRefused(t *testing.T) {
	r := newDevRig(t)
	r.start()
	r.online()
	until := func() int64 { return r.clock.Now().Add(time.Hour).Unix() }

	// No tap since the start.
	wantAck(t, r.send(wire.Command{Op: wire.OpUnlock, SessionID: "1", Until: until()}), wire.ResultError, wire.RelayOff, bridge.ReasonNoTap)
	r.wantRelay(false)

	// A tap left unanswered is decided locally after 2 s (no allowlist:
	// denied, and replayed at once); an unlock 31 s after it answers no tap.
	r.read(uidAda)
	r.nextTap()
	r.clock.Advance(wire.AnswerTimeout)
	if tp := r.nextTap(); !tp.Offline || tp.Result != wire.TapDenied {
		t.Fatalf("after the answer timeout: tap %+v, want it replayed denied", tp)
	}
	r.clock.Advance(31*time.Second - wire.AnswerTimeout)
	wantAck(t, r.send(wire.Command{Op: wire.OpUnlock, SessionID: "2", Until: until()}), wire.ResultError, wire.RelayOff, bridge.ReasonNoTap)
	r.wantRelay(false)

	// The same 20 s after the tap: the member was told no and may have
	// gone, so a late grant is refused too.
	r.read(uidAda)
	r.nextTap()
	r.clock.Advance(wire.AnswerTimeout)
	r.nextTap()
	r.clock.Advance(20*time.Second - wire.AnswerTimeout)
	wantAck(t, r.send(wire.Command{Op: wire.OpUnlock, SessionID: "3", Until: until()}), wire.ResultError, wire.RelayOff, bridge.ReasonNoTap)
	r.wantRelay(false)

	// An unlock answering a tap, but whose until has passed.
	r.read(uidAda)
	r.nextTap()
	wantAck(t, r.send(wire.Command{Op: wire.OpUnlock, SessionID: "4", Until: r.clock.Now().Unix() - 1}), wire.ResultError, wire.RelayOff, bridge.ReasonExpired)
	r.wantRelay(false)
}

// A relay that does not switch: the unlock is acked as an error with the
// relay off, and the member is shown a refusal.
func TestDeviceRelayFault(t *testing.T) {
	r := newDevRig(t)
	r.start()
	r.online()
	r.relay.SetFailure(errors.New("contact welded"))
	r.drain(wire.KindState)
	ack, _ := r.grant(uidAda, "311", time.Hour)
	wantAck(t, ack, wire.ResultError, wire.RelayOff, bridge.ReasonRelayFault)
	r.wantRelay(false)
	if s := r.dev.Status(); s.SessionID != "" {
		t.Fatalf("a session %q runs on a relay that failed", s.SessionID)
	}
	if st := r.waitState("the relay reported", func(wire.State) bool { return true }); st.Relay != wire.RelayOff || st.SessionID != "" {
		t.Fatalf("state %+v, want relay off and no session", st)
	}
	if got := r.ind.list(); !slices.Equal(got, []string{"deny"}) {
		t.Fatalf("signals %q, want deny", got)
	}
}

// A lock the relay does not confirm is acknowledged as an error, so the
// server sends it again; the device reports the relay off (it never claims
// a relay it tried to switch off is on).
func TestDeviceLockRelayFault(t *testing.T) {
	r := newDevRig(t)
	r.start()
	r.online()
	r.granted(uidAda, "311")
	r.relay.SetFailure(errors.New("coil open"))
	ack := r.send(wire.Command{Op: wire.OpLock, SessionID: "311", Reason: "tap_out"})
	wantAck(t, ack, wire.ResultError, wire.RelayOff, bridge.ReasonRelayFault)
	// The snapshot follows the loop's event, so it may trail the ack.
	r.eventually("the session over after the lock", func() bool { return r.dev.Status().SessionID == "" })
	// The output is still on: the off is sent again until it is confirmed.
	if !r.relay.On() {
		t.Fatal("the simulated relay switched off though it failed")
	}
	r.relay.SetFailure(nil)
	r.clock.Advance(10 * time.Second)
	r.eventually("the off sent again", func() bool { return !r.relay.On() })
}

// A tap the server answers too late was decided here: a late unlock for a
// session granted here gives it the server's id (one session, the
// server's); a late deny ends it; a late unlock for a tap-out is refused.
func TestDeviceLateAnswers(t *testing.T) {
	setup := func(t *testing.T) *devRig {
		r := newDevRig(t)
		r.start()
		r.online()
		r.allowlist(wire.Allowlist{Ver: 1, Issued: r.clock.Now().Unix(), Entries: []wire.AllowEntry{{H: auth.BadgeHash(badgeKey, uidAda), Tier: wire.TierOffline, Until: r.clock.Now().Add(48 * time.Hour).Unix()}}})
		r.eventually("the allowlist", func() bool { return r.dev.Status().AllowVer == 1 })
		r.read(uidAda)
		r.nextTap()
		r.clock.Advance(wire.AnswerTimeout)
		r.eventually("the local grant", func() bool { return r.dev.Status().LocalSession })
		r.wantRelay(true)
		// The link is up: the local decision is replayed at once.
		if tp := r.nextTap(); !tp.Offline || tp.Result != wire.TapGranted {
			t.Fatalf("replayed %+v, want the local grant", tp)
		}
		return r
	}
	t.Run("late unlock adopts", func(t *testing.T) {
		r := setup(t)
		r.clock.Advance(5 * time.Second)
		wantAck(t, r.send(wire.Command{Op: wire.OpUnlock, SessionID: "77", Until: r.clock.Now().Add(time.Hour).Unix()}), wire.ResultOK, wire.RelayOn, "")
		r.eventually("the server's session 77", func() bool { s := r.dev.Status(); return s.SessionID == "77" && !s.LocalSession })
	})
	t.Run("late deny ends", func(t *testing.T) {
		r := setup(t)
		r.clock.Advance(5 * time.Second)
		wantAck(t, r.send(wire.Command{Op: wire.OpDeny, Reason: wire.ReasonBookedByOther, Message: "booked"}), wire.ResultOK, wire.RelayOff, "")
		r.wantRelay(false)
		if s := r.dev.Status(); s.SessionID != "" {
			t.Fatalf("session %q still running after the server refused its tap", s.SessionID)
		}
	})
	t.Run("late unlock after a tap-out", func(t *testing.T) {
		r := setup(t)
		// The same badge again, unanswered too: a tap-out decided here.
		r.clock.Advance(wire.RereadWindow + time.Second)
		r.read(uidAda)
		r.nextTap()
		r.clock.Advance(wire.AnswerTimeout)
		r.eventually("the local tap-out", func() bool { return r.dev.Status().SessionID == "" })
		r.wantRelay(false)
		wantAck(t, r.send(wire.Command{Op: wire.OpUnlock, SessionID: "78", Until: r.clock.Now().Add(time.Hour).Unix()}), wire.ResultError, wire.RelayOff, bridge.ReasonNoTap)
		r.wantRelay(false)
	})
	t.Run("an adoption must carry the local session's until", func(t *testing.T) {
		r := setup(t)
		r.clock.Advance(recentTapForTest)
		wantAck(t, r.send(wire.Command{Op: wire.OpUnlock, SessionID: "79", Until: r.clock.Now().Add(5 * time.Hour).Unix()}), wire.ResultError, wire.RelayOn, bridge.ReasonNoTap)
		if s := r.dev.Status(); !s.LocalSession {
			t.Fatalf("status %+v: the local session was taken by an unlock for another one", s)
		}
	})
}

// recentTapForTest is past the window in which an unlock may answer a tap.
const recentTapForTest = 31 * time.Second

// The device ends a session at its until by itself; an unlock for the
// running session extends it.
func TestDeviceEnforcesUntil(t *testing.T) {
	t.Run("until", func(t *testing.T) {
		r := newDevRig(t)
		r.start()
		r.online()
		ack, until := r.grant(uidAda, "311", 10*time.Minute)
		wantAck(t, ack, wire.ResultOK, wire.RelayOn, "")
		r.clock.Advance(9 * time.Minute)
		wantAck(t, r.barrier(), wire.ResultOK, wire.RelayOn, "")
		r.wantRelay(true)

		r.drain(wire.KindState)
		r.clock.Advance(2 * time.Minute)
		st := r.waitState("relay off", func(s wire.State) bool { return s.Relay == wire.RelayOff })
		if st.SessionID != "" || st.Since != until.Unix() {
			t.Fatalf("state %+v, want no session, off since until %d", st, until.Unix())
		}
		r.wantRelay(false)
		if s := r.dev.Status(); s.SessionID != "" {
			t.Fatalf("session %q still running", s.SessionID)
		}
	})
	t.Run("extended", func(t *testing.T) {
		r := newDevRig(t)
		r.start()
		r.online()
		ack, until := r.grant(uidAda, "311", 10*time.Minute)
		wantAck(t, ack, wire.ResultOK, wire.RelayOn, "")
		r.clock.Advance(5 * time.Minute)
		// No tap: the grace period of the session already running.
		later := until.Add(5 * time.Minute)
		wantAck(t, r.send(wire.Command{Op: wire.OpUnlock, SessionID: "311", Until: later.Unix()}), wire.ResultOK, wire.RelayOn, "")
		r.clock.Advance(until.Sub(r.clock.Now()) + time.Minute)
		wantAck(t, r.barrier(), wire.ResultOK, wire.RelayOn, "")
		r.wantRelay(true)
		if s := r.dev.Status(); s.SessionID != "311" {
			t.Fatalf("session %q past the first until, want 311", s.SessionID)
		}
		r.clock.Advance(later.Sub(r.clock.Now()))
		r.eventually("the relay off at the extended until", func() bool { return !r.relay.On() && r.dev.Status().SessionID == "" })
	})
}

// A badge held on the reader makes one tap; a read that is not a UID makes
// none.
func TestDeviceRereads(t *testing.T) {
	r := newDevRig(t)
	r.start()
	r.online()
	must(t, r.reader.Tap(uidAda))
	first := r.nextTap()
	wantAck(t, r.send(wire.Command{Op: wire.OpDeny, Reason: wire.ReasonUnknownBadge}), wire.ResultOK, wire.RelayOff, "")

	// The same badge again within 2 s, then garbage: reads are handled in
	// order, so once the garbage is counted the re-read has been too.
	must(t, r.reader.Tap(uidAda))
	must(t, r.reader.Tap("hello"))
	r.eventually("the bad read counted", func() bool { return r.dev.BadReads.Load() == 1 })
	r.barrier()
	r.none(wire.KindTap)

	r.clock.Advance(wire.RereadWindow)
	must(t, r.reader.Tap(uidAda))
	second := r.nextTap()
	if second.MsgID == first.MsgID || second.TS != first.TS+int64(wire.RereadWindow/time.Second) {
		t.Fatalf("taps %+v and %+v, want two taps 2 s apart", first, second)
	}
	wantAck(t, r.send(wire.Command{Op: wire.OpDeny, Reason: wire.ReasonUnknownBadge}), wire.ResultOK, wire.RelayOff, "")

	// The window is per badge: another one right after is a tap.
	must(t, r.reader.Tap(uidSam))
	if tp := r.nextTap(); tp.UID != uidSam {
		t.Fatalf("tap %+v, want %s", tp, uidSam)
	}
	if n := r.dev.BadReads.Load(); n != 1 {
		t.Fatalf("%d bad reads, want 1", n)
	}
}

// reportingRelay is a simulated relay whose events the test reports itself,
// as a networked relay reports its button pressed or itself back online.
type reportingRelay struct {
	*relay.Sim
	events chan relay.Event
}

func (h *reportingRelay) Events() <-chan relay.Event { return h.events }

// What the relay reports by itself: off during a session ends it; on
// without a session, or back online, is switched off.
//
// relay.Sim reports nothing when switched on through Set (only its power
// reading), so a relay switched on by hand without a report cannot be
// noticed by the device; the cases below report the event themselves.
func TestDeviceRelayEvents(t *testing.T) {
	t.Run("off during a session", func(t *testing.T) {
		r := newDevRig(t)
		r.start()
		r.online()
		r.granted(uidAda, "311")
		r.clock.Advance(10 * time.Minute)
		r.drain(wire.KindState)
		r.relay.SwitchOff()
		st := r.waitState("relay off", func(s wire.State) bool { return s.Relay == wire.RelayOff })
		// since is when the relay went off: the server bills up to it.
		if st.SessionID != "" || st.Since != r.clock.Now().Unix() {
			t.Fatalf("state %+v, want no session, off since %d", st, r.clock.Now().Unix())
		}
		r.eventually("the session over", func() bool { s := r.dev.Status(); return s.SessionID == "" && s.Relay == wire.RelayOff })
	})
	for _, c := range []struct {
		name string
		ev   func() relay.Event
	}{
		{"on without a session", func() relay.Event { on := true; return relay.Event{On: &on} }},
		{"back online", func() relay.Event { online := true; return relay.Event{Online: &online} }},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newDevRig(t)
			rl := &reportingRelay{Sim: relay.NewSim(0), events: make(chan relay.Event, 4)}
			r.start(func(cfg *bridge.DeviceConfig) { cfg.Relay = rl })
			r.relay = rl.Sim
			r.online()
			must(t, rl.Set(context.Background(), true, 0)) // by hand
			r.drain(wire.KindState)
			rl.events <- c.ev()
			r.eventually("the relay switched off", func() bool { return !rl.On() })
			if c.name == "on without a session" {
				if st := r.waitState("the relay reported", func(wire.State) bool { return true }); st.Relay != wire.RelayOff || st.SessionID != "" {
					t.Fatalf("state %+v, want relay off", st)
				}
			}
			r.wantRelay(false)
		})
	}
}

// The allowlist is kept on disk, and a device restarted without a broker
// decides from it (protocol §8.3).
func TestDeviceOfflineAllowlist(t *testing.T) {
	r := newDevRig(t)
	r.start()
	r.online()
	t0 := r.clock.Now()
	list := wire.Allowlist{Ver: 7, Issued: t0.Unix(), Entries: []wire.AllowEntry{
		{H: auth.BadgeHash(badgeKey, uidAda), Tier: wire.TierOffline, Until: t0.Add(48 * time.Hour).Unix()},
		{H: auth.BadgeHash(badgeKey, uidBea), Tier: wire.TierOffline, Until: t0.Add(20 * time.Minute).Unix()},
		{H: auth.BadgeHash(badgeKey, uidCy), Tier: wire.TierOffline, Until: t0.Add(-time.Hour).Unix()},
		{H: auth.BadgeHash(badgeKey, uidSam), Tier: wire.TierAdmin},
	}}
	r.allowlist(list)
	raw, err := os.ReadFile(filepath.Join(r.stateDir, "allowlist.json"))
	must(t, err)
	kept, err := wire.DecodeAllowlist(raw)
	must(t, err)
	if kept.Ver != list.Ver || !slices.Equal(kept.Entries, list.Entries) {
		t.Fatalf("kept allowlist %+v, want %+v", kept, list)
	}

	r.dev.Close()
	must(t, r.broker.Close())
	r.start()
	if s := r.dev.Status(); s.Connected || s.AllowVer != 7 {
		t.Fatalf("restarted without a broker: %+v, want disconnected with allowlist 7", s)
	}

	r.read(uidUnknown)
	q := r.queued(1)
	if q[0].Result != wire.TapDenied || q[0].Reason != bridge.ReasonNotAllowedOffline || !q[0].Offline {
		t.Fatalf("unknown badge queued as %+v", q[0])
	}
	r.wantRelay(false)

	// Offline tier: at most the offline session limit.
	r.read(uidAda)
	r.eventually("the offline tier let in", func() bool { return r.relay.On() && r.dev.Status().LocalSession })
	q = r.queued(2)
	if g := q[1]; g.Result != wire.TapGranted || g.Until != g.TS+int64(30*time.Minute/time.Second) ||
		g.SessionID != wire.OfflineSessionPrefix+g.MsgID || r.dev.Status().SessionID != g.SessionID {
		t.Fatalf("granted tap %+v (device session %q), want until the offline session limit", g, r.dev.Status().SessionID)
	}
	r.read(uidAda)
	q = r.queued(3)
	r.wantRelay(false)
	if q[2].Result != wire.TapOut || q[2].SessionID != q[1].SessionID || q[1].Reason != wire.TapOut || q[1].Ended != q[2].TS {
		t.Fatalf("tap-out queued as %+v, session recorded as %+v", q[2], q[1])
	}

	// Offline tier whose entry ends before the limit: until the entry's end,
	// enforced by the device.
	r.read(uidBea)
	r.eventually("the offline tier let in", func() bool { return r.relay.On() && r.dev.Status().LocalSession })
	q = r.queued(4)
	if g := q[3]; g.Result != wire.TapGranted || g.Until != list.Entries[1].Until {
		t.Fatalf("granted tap %+v, want until the entry's until %d", g, list.Entries[1].Until)
	}
	r.clock.Advance(time.Unix(list.Entries[1].Until, 0).Sub(r.clock.Now()))
	r.eventually("the offline session ended at its until", func() bool { return !r.relay.On() && r.dev.Status().SessionID == "" })
	if g := r.queue()[3]; g.Ended != g.Until || g.Reason != bridge.ReasonUntil {
		t.Fatalf("offline session recorded as %+v, want ended at its until", g)
	}

	r.read(uidCy)
	q = r.queued(5)
	if q[4].Result != wire.TapDenied || q[4].Reason != bridge.ReasonOfflineExpired {
		t.Fatalf("expired entry queued as %+v", q[4])
	}
	r.wantRelay(false)

	// A day without the server: the offline tier is refused, staff are not.
	r.clock.Advance(24 * time.Hour)
	r.read(uidAda)
	q = r.queued(6)
	if q[5].Result != wire.TapDenied || q[5].Reason != bridge.ReasonAllowlistStale {
		t.Fatalf("offline tier on a stale list queued as %+v", q[5])
	}
	r.wantRelay(false)
	r.read(uidSam)
	r.eventually("the admin tier let in", func() bool { return r.relay.On() && r.dev.Status().LocalSession })
	q = r.queued(7)
	if g := q[6]; g.Result != wire.TapGranted || g.Until != g.TS+int64(30*time.Minute/time.Second) {
		t.Fatalf("admin tap %+v, want granted until the offline session limit", g)
	}
	r.clock.Advance(30 * time.Minute)
	r.eventually("the admin session ended at the limit", func() bool { return !r.relay.On() && r.dev.Status().SessionID == "" })
}

// Commands that do not decode are dropped: no ack, nothing applied.
func TestDeviceMalformedCommands(t *testing.T) {
	r := newDevRig(t)
	r.start()
	r.online()
	r.granted(uidAda, "311")
	seq := r.dev.Status().Seq
	until := r.clock.Now().Add(time.Hour).Unix()
	for _, c := range []struct{ name, payload string }{
		{"not JSON", "hello"},
		{"wrong v", fmt.Sprintf(`{"v":2,"cmd_id":"lock-v2","seq":%d,"op":"lock"}`, seq+1)},
		{"no v", fmt.Sprintf(`{"cmd_id":"lock-nov","seq":%d,"op":"lock"}`, seq+1)},
		{"unlock without session_id", fmt.Sprintf(`{"v":1,"cmd_id":"unlock-nosess","seq":%d,"op":"unlock","until":%d}`, seq+1, until)},
		{"over 4 KiB", fmt.Sprintf(`{"v":1,"cmd_id":"lock-big","seq":%d,"op":"lock","pad":"%s"}`, seq+1, strings.Repeat("x", wire.MaxPayload))},
	} {
		// One device through all cases, so not subtests: the rig belongs to
		// this test.
		before := r.dev.Dropped.Load()
		r.publish(r.topics.Device(devLaser, wire.KindCmd), []byte(c.payload), false)
		r.eventually("the command dropped: "+c.name, func() bool { return r.dev.Dropped.Load() == before+1 })
		r.wantRelay(true)
		if s := r.dev.Status(); s.Seq != seq || s.SessionID != "311" {
			t.Fatalf("%s: status %+v, want seq %d session 311", c.name, s, seq)
		}
	}
	// Two round trips: an ack of a dropped command would have come first.
	wantAck(t, r.barrier(), wire.ResultOK, wire.RelayOn, "")
	wantAck(t, r.barrier(), wire.ResultOK, wire.RelayOn, "")
	r.none(wire.KindAck)
}

// Every 30 s a heartbeat with the relay, the allowlist version and the
// uptime.
func TestDeviceHeartbeat(t *testing.T) {
	r := newDevRig(t)
	r.start()
	r.online()
	r.allowlist(wire.Allowlist{Ver: 3, Issued: r.clock.Now().Unix(), Entries: []wire.AllowEntry{{H: auth.BadgeHash(badgeKey, uidSam), Tier: wire.TierAdmin}}})
	must(t, r.reader.Tap(uidAda)) // no clock move: the heartbeat is 30 s after the start
	r.nextTap()
	wantAck(t, r.send(wire.Command{Op: wire.OpUnlock, SessionID: "311", Until: r.clock.Now().Add(time.Hour).Unix()}), wire.ResultOK, wire.RelayOn, "")
	r.drain(wire.KindHeartbeat)
	r.clock.Advance(wire.HeartbeatInterval)
	hb, err := wire.DecodeHeartbeat(r.next(wire.KindHeartbeat))
	must(t, err)
	want := wire.Heartbeat{V: 1, TS: r.clock.Now().Unix(), UptimeS: 30, Relay: wire.RelayOn, SessionID: "311", AllowVer: 3}
	hb.PowerW = nil
	if hb != want {
		t.Fatalf("heartbeat %+v, want %+v", hb, want)
	}
}

// With the server's status offline a tap is decided at once from the
// allowlist, and replayed as history when the server is back.
func TestDeviceServerOfflineReplay(t *testing.T) {
	r := newDevRig(t)
	r.start()
	r.online()
	r.allowlist(wire.Allowlist{Ver: 1, Issued: r.clock.Now().Unix(), Entries: []wire.AllowEntry{
		{H: auth.BadgeHash(badgeKey, uidAda), Tier: wire.TierOffline, Until: r.clock.Now().Add(48 * time.Hour).Unix()},
	}})
	r.serverStatus(false)
	r.eventually("the server seen offline", func() bool { return !r.dev.Status().ServerOnline })

	r.read(uidAda)
	r.eventually("the offline tier let in", func() bool { return r.relay.On() && r.dev.Status().LocalSession })
	r.queued(1)
	r.clock.Advance(5 * time.Minute)
	r.read(uidAda)
	r.queued(2) // each read decided before the clock moves on: ts differ
	r.read(uidUnknown)
	q := r.queued(3)
	r.wantRelay(false)
	r.barrier()
	r.none(wire.KindTap)

	r.serverStatus(true)
	var got []wire.Tap
	for range 3 {
		got = append(got, r.nextTap())
	}
	// Delivered in the queue's order, but the test's client may hand them
	// over in any order.
	sort.Slice(got, func(i, j int) bool { return got[i].TS < got[j].TS })
	if !slices.Equal(got, q) {
		t.Fatalf("replayed %+v, want the queue %+v", got, q)
	}
	g, out, denied := got[0], got[1], got[2]
	if !g.Offline || g.Result != wire.TapGranted || g.Reason != wire.TapOut || g.Ended != out.TS || g.Until == 0 ||
		!out.Offline || out.Result != wire.TapOut || out.SessionID != g.SessionID ||
		!denied.Offline || denied.Result != wire.TapDenied || denied.UID != uidUnknown {
		t.Fatalf("replayed taps %+v", got)
	}
	r.queued(0)
}

// failingReader fails its first run, as an unplugged reader does, then
// reads from a simulated reader.
type failingReader struct {
	runs atomic.Int32
	sim  *reader.Sim
}

func (f *failingReader) Run(ctx context.Context, reads chan<- string) error {
	if f.runs.Add(1) == 1 {
		return errors.New("reader unplugged")
	}
	return f.sim.Run(ctx, reads)
}

// A reader that fails is run again 2 s later.
func TestDeviceReaderRestarted(t *testing.T) {
	r := newDevRig(t)
	fr := &failingReader{sim: reader.NewSim()}
	r.start(func(cfg *bridge.DeviceConfig) { cfg.Reader = fr })
	r.online()
	// The heartbeat and the reader's pause: nothing else waits on the clock.
	r.eventually("the reader's pause", func() bool { return fr.runs.Load() == 1 && r.clock.Pending() == 2 })
	r.clock.Advance(2*time.Second - time.Millisecond)
	if n := r.clock.Pending(); n != 2 {
		t.Fatalf("%d timers pending just before the pause's end, want the heartbeat's and the pause's", n)
	}
	r.clock.Advance(time.Millisecond)
	r.eventually("the reader run again", func() bool { return fr.runs.Load() == 2 })
	must(t, fr.sim.Tap(uidAda))
	if tp := r.nextTap(); tp.UID != uidAda {
		t.Fatalf("tap %+v", tp)
	}
}

// The indicator shows warnings, refusals and grants.
func TestDeviceIndicator(t *testing.T) {
	r := newDevRig(t)
	r.start()
	r.online()
	until := r.clock.Now().Add(time.Hour)
	wantAck(t, r.send(wire.Command{Op: wire.OpWarn, Reason: wire.ReasonSessionEnding, Until: until.Unix()}), wire.ResultOK, wire.RelayOff, "")
	if got := r.ind.list(); !slices.Equal(got, []string{"warn"}) {
		t.Fatalf("signals %q after warn", got)
	}
	r.read(uidAda)
	r.nextTap()
	wantAck(t, r.send(wire.Command{Op: wire.OpDeny, Reason: wire.ReasonTrainingRequired}), wire.ResultOK, wire.RelayOff, "")
	if got := r.ind.list(); !slices.Equal(got, []string{"warn", "deny"}) {
		t.Fatalf("signals %q after deny", got)
	}
	r.granted(uidAda, "311")
	if got := r.ind.list(); !slices.Equal(got, []string{"warn", "deny", "grant"}) {
		t.Fatalf("signals %q after unlock", got)
	}
}

// Close switches the relay off and leaves the device's state off and its
// status offline, retained.
func TestDeviceClose(t *testing.T) {
	r := newDevRig(t)
	r.start()
	r.online()
	r.granted(uidAda, "311")
	r.drain(wire.KindState)
	r.drain(wire.KindStatus)
	r.dev.Close()
	r.wantRelay(false)
	r.waitState("relay off and no session", func(s wire.State) bool { return s.Relay == wire.RelayOff && s.SessionID == "" })

	// What a server connecting now finds.
	late, err := mqtt.Connect(context.Background(), mqtt.ClientConfig{Broker: "tcp://" + r.addr, ClientID: "late-server", Username: serverUser, Password: serverPass})
	must(t, err)
	defer late.Close(nil)
	retained := map[wire.Kind]chan []byte{wire.KindState: make(chan []byte, 4), wire.KindStatus: make(chan []byte, 4)}
	for k, ch := range retained {
		// QoS 0: no retained delivery in flight when the next SUBSCRIBE
		// goes (see online).
		must(t, late.Subscribe(r.topics.Device(devLaser, k), 0, func(_ string, p []byte) { ch <- p }))
	}
	for k, ch := range retained {
		select {
		case b := <-ch:
			switch k {
			case wire.KindStatus:
				if string(b) != `{"v":1,"online":false}` {
					t.Errorf("retained status %s, want offline", b)
				}
			case wire.KindState:
				st, err := wire.DecodeState(b)
				must(t, err)
				if st.Relay != wire.RelayOff || st.SessionID != "" {
					t.Errorf("retained state %s, want relay off and no session", b)
				}
			}
		case <-time.After(waitLong):
			t.Fatalf("no retained %s", k)
		}
	}
}

// Every command that answers a tap clears the device's pending tap: once
// answered, a tap is never decided again from the allowlist when its 2 s
// have passed (DESIGN §4), and an unlock for a session that ended here
// never switches the relay on again. Each case watches the relay through
// the answer timeout and the 30 s in which an unlock may answer a tap.
func TestDeviceAnsweredTapNotDecidedAgain(t *testing.T) {
	setup := func(t *testing.T) *devRig {
		r := newDevRig(t)
		r.start()
		r.online()
		// Both badges would be let in offline: a tap decided again here
		// would switch the relay on.
		r.allowlist(wire.Allowlist{Ver: 1, Issued: r.clock.Now().Unix(), Entries: []wire.AllowEntry{
			{H: auth.BadgeHash(badgeKey, uidAda), Tier: wire.TierOffline, Until: r.clock.Now().Add(48 * time.Hour).Unix()},
			{H: auth.BadgeHash(badgeKey, uidSam), Tier: wire.TierAdmin},
		}})
		return r
	}
	// stillOff moves the clock past the answer timeout, then past the window
	// in which an unlock may answer a tap, checking each time that the relay
	// stayed off and nothing was decided here.
	stillOff := func(t *testing.T, r *devRig) {
		t.Helper()
		for _, step := range []time.Duration{wire.AnswerTimeout + time.Second, recentTapForTest} {
			r.clock.Advance(step)
			wantAck(t, r.barrier(), wire.ResultOK, wire.RelayOff, "")
			if r.relay.On() {
				t.Fatalf("the relay went on again %s after the answer", step)
			}
			if s := r.dev.Status(); s.SessionID != "" || s.LocalSession {
				t.Fatalf("status %+v after %s: a session runs", s, step)
			}
			if q := r.queue(); len(q) != 0 {
				t.Fatalf("the answered tap was decided here: %+v", q)
			}
			r.none(wire.KindTap)
		}
	}
	t.Run("lock for a tap-out", func(t *testing.T) {
		r := setup(t)
		r.granted(uidAda, "311")
		r.read(uidAda)
		tp := r.nextTap()
		wantAck(t, r.send(wire.Command{Op: wire.OpLock, SessionID: "311", Reason: fablab.EndTapOut, TapID: tp.MsgID}), wire.ResultOK, wire.RelayOff, "")
		r.wantRelay(false)
		// The grace extension the server decided as she tapped out crosses
		// the lock, within seconds of her tap: the session stays ended.
		wantAck(t, r.send(wire.Command{Op: wire.OpUnlock, SessionID: "311", Until: r.clock.Now().Add(time.Hour).Unix()}), wire.ResultError, wire.RelayOff, bridge.ReasonSessionEnded)
		r.wantRelay(false)
		stillOff(t, r)
	})
	t.Run("lock for staff taking over", func(t *testing.T) {
		r := setup(t)
		r.granted(uidAda, "311")
		r.read(uidSam)
		tp := r.nextTap()
		wantAck(t, r.send(wire.Command{Op: wire.OpLock, SessionID: "311", Reason: fablab.EndStaff, TapID: tp.MsgID}), wire.ResultOK, wire.RelayOff, "")
		r.wantRelay(false)
		stillOff(t, r)
	})
	t.Run("deny", func(t *testing.T) {
		r := setup(t)
		r.read(uidAda)
		tp := r.nextTap()
		wantAck(t, r.send(wire.Command{Op: wire.OpDeny, Reason: wire.ReasonBookedByOther, Message: "booked", TapID: tp.MsgID}), wire.ResultOK, wire.RelayOff, "")
		stillOff(t, r)
	})
	t.Run("deny naming no tap (an older server)", func(t *testing.T) {
		r := setup(t)
		r.read(uidAda)
		r.nextTap()
		wantAck(t, r.send(wire.Command{Op: wire.OpDeny, Reason: wire.ReasonBookedByOther, Message: "booked"}), wire.ResultOK, wire.RelayOff, "")
		stillOff(t, r)
	})
	t.Run("unlock then lock at until", func(t *testing.T) {
		r := setup(t)
		ack, until := r.grant(uidAda, "311", 10*time.Second)
		wantAck(t, ack, wire.ResultOK, wire.RelayOn, "")
		r.clock.Advance(until.Sub(r.clock.Now()))
		r.wantRelay(false)
		stillOff(t, r)
	})
}

// A lock that answers another tap, or none (staff ending a session from the
// web sends reason staff; a lock sent again keeps its first reason), does
// not clear the tap waiting: it was taken for its answer, so the tap was
// never answered nor decided here. The tap waiting is decided from the
// allowlist once its 2 s pass with no answer of its own.
func TestDeviceUnrelatedLockLeavesTapWaiting(t *testing.T) {
	for _, c := range []struct {
		name string
		lock func(tp wire.Tap) wire.Command
	}{
		{"staff end from the web", func(wire.Tap) wire.Command {
			return wire.Command{Op: wire.OpLock, SessionID: "311", Reason: fablab.EndStaff}
		}},
		{"another tap's tap-out sent again", func(wire.Tap) wire.Command {
			return wire.Command{Op: wire.OpLock, SessionID: "311", Reason: fablab.EndTapOut, TapID: "an-earlier-tap"}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newDevRig(t)
			r.start()
			r.online()
			r.allowlist(wire.Allowlist{Ver: 1, Issued: r.clock.Now().Unix(), Entries: []wire.AllowEntry{
				{H: auth.BadgeHash(badgeKey, uidSam), Tier: wire.TierAdmin},
			}})
			r.read(uidSam)
			tp := r.nextTap()
			wantAck(t, r.send(c.lock(tp)), wire.ResultOK, wire.RelayOff, "")
			if q := r.queue(); len(q) != 0 {
				t.Fatalf("queue %+v before the answer timeout", q)
			}
			// No answer of its own: decided here (Sam is on the list).
			r.clock.Advance(wire.AnswerTimeout + time.Second)
			r.wantRelay(true)
			if s := r.dev.Status(); !s.LocalSession {
				t.Fatalf("status %+v, want a session granted here for the tap left unanswered", s)
			}
		})
	}
}

// An unlock naming another tap than the one waiting (the late answer to a
// tap decided here) does not take the waiting tap for answered: with no
// answer of its own, that tap is decided here once its 2 s pass.
func TestDeviceUnlockOfAnotherTapLeavesTapWaiting(t *testing.T) {
	r := newDevRig(t)
	r.start()
	r.online()
	r.read(uidSam)
	tp := r.nextTap()
	wantAck(t, r.send(wire.Command{Op: wire.OpUnlock, SessionID: "9", Until: r.clock.Now().Add(time.Hour).Unix(), TapID: "an-earlier-tap"}), wire.ResultOK, wire.RelayOn, "")
	r.clock.Advance(wire.AnswerTimeout + time.Second)
	// Decided here (the relay runs session 9: in use), then replayed.
	if q := r.nextTap(); q.MsgID != tp.MsgID || !q.Offline || q.Result != wire.TapDenied || q.Reason != wire.ReasonInUse {
		t.Fatalf("tap %+v, want %s replayed, denied in_use here", q, tp.MsgID)
	}
}
