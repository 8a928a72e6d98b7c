package access_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/logbuf"

	bbolt "go.etcd.io/bbolt"

	"github.com/fabgate/fabgate/internal/access"
	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/bolt/bolttest"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/wire"
)

// The engine tests here drive its handlers directly, with a real bbolt file
// and a publisher that records the commands (the broker is exercised by the
// end-to-end tests of internal/lab).

const (
	laserDev    = "laser-1"
	laserUIDAda = "04A2B3C4D5E6F7"
	uidProbe    = "0499AABBCCDDEE" // held by nobody
)

// recorder is a Publisher that keeps what is published.
type recorder struct {
	mu   sync.Mutex
	cmds []wire.Command
}

func (r *recorder) Publish(_ context.Context, topic string, payload []byte, _ bool) error {
	if !strings.HasSuffix(topic, "/cmd") {
		return nil // allow-lists
	}
	c, err := wire.DecodeCommand(payload)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.cmds = append(r.cmds, c)
	r.mu.Unlock()
	return nil
}

// take returns the commands published since the last take.
func (r *recorder) take() []wire.Command {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.cmds
	r.cmds = nil
	return out
}

type storeRig struct {
	t      *testing.T
	store  *bolt.Store
	closed bool
	engine *access.Engine
	pub    *recorder
	logs   *logbuf.Buffer
	clock  *bolttest.Clock
	laser  fablab.Machine
	ada    fablab.Member
}

// newStoreRig opens a store of its own (a test may close it under the engine),
// with a laser driven by device laser-1 and Ada holding badge laserUIDAda.
func newStoreRig(t *testing.T) *storeRig {
	t.Helper()
	r := &storeRig{t: t, pub: &recorder{}, logs: &logbuf.Buffer{}, clock: bolttest.NewClock(t0)}
	s, err := bolt.Open(filepath.Join(t.TempDir(), "fabgate.db"), bolt.Options{Now: r.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	r.store = s
	t.Cleanup(func() {
		if !r.closed {
			r.store.Close()
		}
		if t.Failed() {
			t.Logf("engine log:\n%s", r.logs.String())
		}
	})
	ctx := t.Context()
	st, err := s.Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.laser, err = s.CreateMachine(ctx, fablab.Machine{Name: "Laser", Kind: fablab.KindLaserCutter, Rules: st.DefaultRules}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateDevice(ctx, fablab.Device{ID: laserDev, MachineID: r.laser.ID, SecretHash: "h"}); err != nil {
		t.Fatal(err)
	}
	if r.ada, err = s.CreateMember(ctx, fablab.Member{Email: "ada@lab.example", Name: "Ada", Group: "student"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddBadge(ctx, fablab.Badge{Hash: auth.BadgeHash(s.BadgeSecret(), laserUIDAda), MemberID: r.ada.ID}); err != nil {
		t.Fatal(err)
	}
	r.startEngine()
	return r
}

func (r *storeRig) startEngine() {
	topics, err := wire.NewTopics(wire.DefaultPrefix)
	if err != nil {
		r.t.Fatal(err)
	}
	r.engine = access.New(access.Config{Store: r.store, Pub: r.pub, Topics: topics, Now: r.clock.Now,
		Log: slog.New(slog.NewTextHandler(r.logs, nil))})
}

// closeStore makes every read and write of the store fail from now on, as
// an I/O error would. A first tap reserves the device's block of command
// seqs while the store works, so that the engine can still answer.
func (r *storeRig) closeStore() {
	r.t.Helper()
	r.tap(wire.Tap{MsgID: "probe-1", TS: t0.Unix(), UID: uidProbe})
	if c := r.pub.take(); len(c) != 1 || c[0].Op != wire.OpDeny || c[0].Reason != wire.ReasonUnknownBadge {
		r.t.Fatalf("before closing the store: %+v", c)
	}
	if err := r.store.Close(); err != nil {
		r.t.Fatal(err)
	}
	r.closed = true
}

func (r *storeRig) tap(tap wire.Tap) {
	r.t.Helper()
	payload, err := wire.Encode(&tap)
	if err != nil {
		r.t.Fatal(err)
	}
	r.engine.HandleTap(r.t.Context(), laserDev, payload)
}

// A live tap the store cannot check is answered (deny server_error) and
// logged, not dropped without a word.
func TestTapOnFailingStoreIsAnswered(t *testing.T) {
	r := newStoreRig(t)
	r.closeStore()
	r.tap(wire.Tap{MsgID: "m-2", TS: t0.Unix(), UID: laserUIDAda})
	c := r.pub.take()
	if len(c) != 1 || c[0].Op != wire.OpDeny || c[0].Reason != wire.ReasonServerError || c[0].Message == "" || c[0].TapID != "m-2" {
		t.Fatalf("answer to a tap on a failing store: %+v, want one deny %s with a message", c, wire.ReasonServerError)
	}
	if log := r.logs.String(); !strings.Contains(log, "level=ERROR") || !strings.Contains(log, "m-2") {
		t.Errorf("the failure is not logged with the tap's msg_id:\n%s", log)
	}
	// A replay is history: nothing to answer, but it is logged.
	r.tap(wire.Tap{MsgID: "m-3", TS: t0.Unix(), UID: laserUIDAda, Offline: true})
	if c := r.pub.take(); len(c) != 0 {
		t.Errorf("a replayed tap was answered: %+v", c)
	}
	if !strings.Contains(r.logs.String(), "m-3") {
		t.Errorf("the lost replay is not logged:\n%s", r.logs.String())
	}
}

// A relay state the store cannot check against the open session is not
// taken for "no session": no lock cuts a machine that may be in use, and
// the failure is logged.
func TestStateOnFailingStoreIsNotNoSession(t *testing.T) {
	r := newStoreRig(t)
	r.closeStore()
	payload, err := wire.Encode(&wire.State{Relay: wire.RelayOn, SessionID: "7", Since: t0.Unix(), Seq: 3})
	if err != nil {
		t.Fatal(err)
	}
	r.engine.HandleState(t.Context(), laserDev, payload)
	if c := r.pub.take(); len(c) != 0 {
		t.Errorf("commands sent on a store read error: %+v", c)
	}
	if log := r.logs.String(); !strings.Contains(log, "level=ERROR") || !strings.Contains(log, "relay state not reconciled") {
		t.Errorf("the failure is not logged:\n%s", log)
	}
}

// A session a device ran alone is stored with an end reason of the enum,
// whatever reason the device gave (its own codes, deny codes, anything);
// the device's own reason stays in the replayed tap's audit line.
func TestReplayedSessionDeviceReasonMapped(t *testing.T) {
	cases := []struct {
		device string
		want   fablab.EndReason
	}{
		{"tap_out", fablab.EndTapOut},
		{"", fablab.EndTapOut},
		{"booking_end", fablab.EndBookingEnd},
		{"device_restart", fablab.EndRelayOff},
		{"replaced", fablab.EndReplaced},
		{"member_inactive", fablab.EndRelayOff},
		{"relay_unconfirmed", fablab.EndRelayOff},
		{"something_new", fablab.EndRelayOff},
	}
	r := newStoreRig(t)
	ctx := t.Context()
	start := t0.Add(-10 * time.Hour)
	for i, c := range cases {
		ts := start.Add(time.Duration(i) * time.Hour)
		msgID := "off-tap-" + string(rune('a'+i))
		r.tap(wire.Tap{MsgID: msgID, TS: ts.Unix(), UID: laserUIDAda, Offline: true, Result: wire.TapGranted, Reason: c.device,
			SessionID: wire.OfflineSessionPrefix + msgID, Until: ts.Add(time.Hour).Unix(), Ended: ts.Add(30 * time.Minute).Unix()})
		ss, err := r.store.SessionsOfMember(ctx, r.ada.ID, ts, ts.Add(time.Second))
		if err != nil || len(ss) != 1 {
			t.Errorf("device reason %q: sessions %+v %v, want the one replayed", c.device, ss, err)
			continue
		}
		if got := ss[0].EndReason; got != c.want || !got.Valid() || ss[0].Open() || !ss[0].Offline {
			t.Errorf("device reason %q: stored %+v, want ended %q", c.device, ss[0], c.want)
		}
		evs, err := r.store.AuditEvents(ctx, bolt.AuditFilter{From: ts, To: ts.Add(time.Second), Limit: 10})
		if err != nil || len(evs) != 1 || evs[0].Reason != c.device || evs[0].Action != "replayed" {
			t.Errorf("device reason %q: audit %+v %v", c.device, evs, err)
		}
	}
	if c := r.pub.take(); len(c) != 0 {
		t.Errorf("commands for sessions that had ended: %+v", c)
	}
}

// A session a device granted alone that still runs when its tap is
// replayed, while the server holds a later session on the machine, is
// recorded ended as replaced (it was stored as the deny code in_use).
func TestReplayedRunningSessionOverAnOpenOneIsReplaced(t *testing.T) {
	r := newStoreRig(t)
	ctx := t.Context()
	open, err := r.store.OpenSession(ctx, fablab.Session{MachineID: r.laser.ID, MemberID: r.ada.ID, DeviceID: laserDev,
		Started: t0.Add(-time.Minute), Until: t0.Add(time.Hour), Billable: true}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := t0.Add(-30 * time.Minute) // before the server's session began
	r.tap(wire.Tap{MsgID: "off-run", TS: ts.Unix(), UID: laserUIDAda, Offline: true, Result: wire.TapGranted,
		SessionID: wire.OfflineSessionPrefix + "off-run", Until: t0.Add(time.Hour).Unix()})
	ss, err := r.store.SessionsOfMember(ctx, r.ada.ID, t0.Add(-time.Hour), t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, s := range ss {
		if s.ID == open.ID {
			continue
		}
		found = true
		if s.Open() || s.EndReason != fablab.EndReplaced {
			t.Errorf("the device's session: %+v, want ended %q", s, fablab.EndReplaced)
		}
	}
	if !found {
		t.Fatalf("the device's session was not recorded: %+v\nlog:\n%s", ss, r.logs.String())
	}
}

// A replayed grant whose facts cannot be read (damaged storage) is kept as
// history, and what the device decided is logged in full: it was taken
// silently for a tap nobody holds, and the session was lost without a word.
func TestReplayedGrantOnUnreadableFactsIsLogged(t *testing.T) {
	r := newStoreRig(t)
	ctx := t.Context()
	r.damageTraining()

	ts := t0.Add(-time.Hour)
	r.tap(wire.Tap{MsgID: "off-lost", TS: ts.Unix(), UID: laserUIDAda, Offline: true, Result: wire.TapGranted, Reason: "tap_out",
		SessionID: wire.OfflineSessionPrefix + "off-lost", Until: ts.Add(time.Hour).Unix(), Ended: ts.Add(20 * time.Minute).Unix()})
	log := r.logs.String()
	for _, want := range []string{"level=ERROR", "replayed tap kept as history only", "msg_id=off-lost", "result=granted", "ended=" + strconv.FormatInt(ts.Add(20*time.Minute).Unix(), 10)} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	evs, err := r.store.AuditEvents(ctx, bolt.AuditFilter{From: ts, To: ts.Add(time.Second), Limit: 10})
	if err != nil || len(evs) != 1 || evs[0].Action != "replayed" {
		t.Errorf("the replayed tap's history: %+v %v", evs, err)
	}
}

// damageTraining makes the laser require a training whose record is then
// damaged: reads of the laser's access facts fail (not ENOTFOUND), writes
// still work. It returns what puts the record right again. The engine is
// started afresh on the store opened again.
func (r *storeRig) damageTraining() (repair func()) {
	r.t.Helper()
	t, ctx := r.t, r.t.Context()
	tr, err := r.store.CreateTraining(ctx, fablab.Training{Name: "Laser safety"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.UpdateMachine(ctx, r.laser.ID, func(m *fablab.Machine) error { m.RequiredTrainings = []fablab.ID{tr.ID}; return nil }); err != nil {
		t.Fatal(err)
	}
	key := binary.BigEndian.AppendUint64(nil, uint64(tr.ID))
	var good []byte
	put := func(v []byte, keep bool) {
		path := r.store.Path()
		if err := r.store.Close(); err != nil {
			t.Fatal(err)
		}
		r.closed = true
		db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(func(tx *bbolt.Tx) error {
			b := tx.Bucket([]byte("trainings"))
			if keep {
				good = bytes.Clone(b.Get(key))
			}
			return b.Put(key, v)
		}); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if r.store, err = bolt.Open(path, bolt.Options{Now: r.clock.Now}); err != nil {
			t.Fatal(err)
		}
		r.closed = false
		r.startEngine()
	}
	put([]byte("{damaged"), true)
	return func() { put(good, false) }
}

func (r *storeRig) state(st wire.State) {
	r.t.Helper()
	payload, err := wire.Encode(&st)
	if err != nil {
		r.t.Fatal(err)
	}
	r.engine.HandleState(r.t.Context(), laserDev, payload)
}

// A replayed grant of a session still running, whose facts cannot be read,
// is not marked seen: the relay's next state naming the device's session
// gets no lock "no_session" (it cut the member's machine, and the session,
// its tap dropped by the device once sent, was never billed), and the tap
// sent again once the store reads is recorded and the session adopted.
func TestReplayedGrantOnUnreadableFactsNotLocked(t *testing.T) {
	r := newStoreRig(t)
	ctx := t.Context()
	repair := r.damageTraining()
	ts := t0.Add(-10 * time.Minute)
	local := wire.OfflineSessionPrefix + "off-L"
	tap := wire.Tap{MsgID: "off-L", TS: ts.Unix(), UID: laserUIDAda, Offline: true, Result: wire.TapGranted,
		SessionID: local, Until: t0.Add(time.Hour).Unix()}
	r.tap(tap)
	r.state(wire.State{Relay: wire.RelayOn, SessionID: local, Since: ts.Unix()})
	if c := r.pub.take(); len(c) != 0 {
		t.Fatalf("commands %+v for a relay running the session the device granted alone", c)
	}
	if seen, err := r.store.TapSeen(ctx, bolt.TapRef{Device: laserDev, MsgID: "off-L"}); err != nil || seen {
		t.Fatalf("tap seen %v %v, want not seen: it was not recorded", seen, err)
	}
	evs, err := r.store.AuditEvents(ctx, bolt.AuditFilter{From: ts, To: ts.Add(time.Second), Limit: 10})
	if err != nil || len(evs) != 1 || evs[0].Action != "replayed" {
		t.Errorf("the replayed tap's history: %+v %v", evs, err)
	}

	repair()
	r.tap(tap) // a QoS 1 redelivery, or the device's queue sent again
	c := r.pub.take()
	if len(c) != 1 || c[0].Op != wire.OpUnlock || c[0].SessionID == "" {
		t.Fatalf("commands %+v, want the adoption unlock", c)
	}
	id, err := fablab.ParseID(c[0].SessionID)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := r.store.Session(ctx, id); err != nil || !s.Open() || !s.Offline || s.MemberID != r.ada.ID || !s.Started.Equal(ts) {
		t.Fatalf("adopted session %+v %v", s, err)
	}
}

func (r *storeRig) ack(c wire.Command, result, relay string) {
	r.t.Helper()
	payload, err := wire.Encode(&wire.Ack{CmdID: c.CmdID, Seq: c.Seq, Result: result, Relay: relay})
	if err != nil {
		r.t.Fatal(err)
	}
	r.engine.HandleAck(r.t.Context(), laserDev, payload)
}

// grantAda taps Ada's badge live and returns the unlock that answers it.
func (r *storeRig) grantAda() wire.Command {
	r.t.Helper()
	r.tap(wire.Tap{MsgID: "m-ada", TS: t0.Unix(), UID: laserUIDAda})
	c := r.pub.take()
	if len(c) != 1 || c[0].Op != wire.OpUnlock {
		r.t.Fatalf("commands %+v, want one unlock", c)
	}
	return c[0]
}

// A lock the device did not apply is not sent again when the store cannot
// tell whether a newer session runs on the machine: a read error was taken
// for "no other session", and the new lock could cut the next member's.
func TestRelockOnFailingStoreNotSent(t *testing.T) {
	r := newStoreRig(t)
	u := r.grantAda()
	r.ack(u, wire.ResultOK, wire.RelayOn)
	id, err := fablab.ParseID(u.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(time.Minute)
	if _, err := r.engine.EndSession(t.Context(), id, fablab.EndStaff, 0); err != nil {
		t.Fatal(err)
	}
	lock := r.pub.take()
	if len(lock) != 1 || lock[0].Op != wire.OpLock {
		t.Fatalf("commands %+v, want the lock", lock)
	}
	r.closeStore()
	r.ack(lock[0], wire.ResultStale, wire.RelayOn)
	if c := r.pub.take(); len(c) != 0 {
		t.Errorf("commands %+v sent on a store read error", c)
	}
	if log := r.logs.String(); !strings.Contains(log, "lock not applied, not sent again") {
		t.Errorf("the failure is not logged:\n%s", log)
	}
}

// An unlock never acknowledged, whose session a state confirmed, is not
// closed relay_unconfirmed (not billed) when the store cannot read the
// session: a read error was taken for "not confirmed".
func TestUnlockGivenUpOnFailingStoreNotUnconfirmed(t *testing.T) {
	r := newStoreRig(t)
	u := r.grantAda()
	r.state(wire.State{Relay: wire.RelayOn, SessionID: u.SessionID, Seq: u.Seq, Since: t0.Unix()})
	id, err := fablab.ParseID(u.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := r.store.Session(t.Context(), id); err != nil || !s.Confirmed {
		t.Fatalf("session %+v %v, want confirmed by the state", s, err)
	}
	r.closeStore()
	for range 4 {
		r.clock.Advance(3 * time.Second)
		r.engine.RetryDue(t.Context())
	}
	if n := r.engine.GaveUp.Load(); n != 0 {
		t.Errorf("%d unlocks given up as unconfirmed on a store read error", n)
	}
	log := r.logs.String()
	if strings.Contains(log, "relay did not confirm the unlock") || !strings.Contains(log, "unlock never acknowledged: its session not read") {
		t.Errorf("log:\n%s", log)
	}
	for _, c := range r.pub.take() {
		if c.Op != wire.OpUnlock || c.CmdID != u.CmdID { // the unlock's retries
			t.Errorf("command %+v sent on a store read error", c)
		}
	}
}
