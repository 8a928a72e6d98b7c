package access_test

import (
	"context"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/access"
	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/bolt/bolttest"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/wire"
)

// The tests in this file drive the engine's handlers directly, in the order
// each case names, as the MQTT client may hand a device's messages over
// (acks and states arrive on separate subscriptions): every ordering is
// played deterministically, on a fake clock.

// t0 is a Tuesday, 14:00 in Paris: the lab is open and the machine free.
var t0 = time.Date(2026, 3, 3, 13, 0, 0, 0, time.UTC)

const (
	dev    = "printer-1"
	uidAda = "04A2B3C4D5E601"
)

type rig struct {
	t       *testing.T
	ctx     context.Context
	clock   *bolttest.Clock
	store   *bolt.Store
	pub     *recorder
	eng     *access.Engine
	machine fablab.Machine
}

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{t: t, ctx: context.Background(), clock: bolttest.NewClock(t0), pub: &recorder{}}
	r.store = bolttest.Open(t, r.clock.Now)
	var err error
	r.machine, err = r.store.CreateMachine(r.ctx, fablab.Machine{Name: "Printer", Kind: fablab.Kind3DPrinter, DeviceID: dev, Rules: fablab.DefaultBookingRules()})
	r.must(err)
	_, err = r.store.CreateDevice(r.ctx, fablab.Device{ID: dev, MachineID: r.machine.ID, SecretHash: "x"})
	r.must(err)
	ada, err := r.store.CreateMember(r.ctx, fablab.Member{Email: "ada@lab.test", Name: "Ada", Group: "student"})
	r.must(err)
	_, err = r.store.AddBadge(r.ctx, fablab.Badge{Hash: auth.BadgeHash(r.store.BadgeSecret(), uidAda), MemberID: ada.ID})
	r.must(err)
	topics, err := wire.NewTopics(wire.DefaultPrefix)
	r.must(err)
	r.eng = access.New(access.Config{Store: r.store, Pub: r.pub, Topics: topics, Now: r.clock.Now})
	// The device as it connects: relay off, no command applied yet.
	r.state(wire.RelayOff, "", 0, t0.Add(-time.Hour))
	return r
}

func (r *rig) must(err error) {
	r.t.Helper()
	if err != nil {
		r.t.Fatal(err)
	}
}

// tap taps Ada's badge and returns the one command that answers it.
func (r *rig) tap(op string) wire.Command {
	r.t.Helper()
	if _, err := r.eng.Tap(r.ctx, dev, uidAda); err != nil {
		r.t.Fatal(err)
	}
	cmds := r.pub.take()
	if len(cmds) != 1 || cmds[0].Op != op {
		r.t.Fatalf("commands %+v, want one %s", cmds, op)
	}
	return cmds[0]
}

func (r *rig) encode(v any) []byte {
	r.t.Helper()
	b, err := wire.Encode(v)
	r.must(err)
	return b
}

func (r *rig) state(relay, session string, seq uint64, since time.Time) {
	r.t.Helper()
	r.eng.HandleState(r.ctx, dev, r.encode(&wire.State{Relay: relay, SessionID: session, Seq: seq, Since: since.Unix()}))
}

func (r *rig) ack(c wire.Command, result, relay string) {
	r.t.Helper()
	r.eng.HandleAck(r.ctx, dev, r.encode(&wire.Ack{CmdID: c.CmdID, Seq: c.Seq, Result: result, Relay: relay}))
}

func (r *rig) session(c wire.Command) fablab.Session {
	r.t.Helper()
	id, err := fablab.ParseID(c.SessionID)
	r.must(err)
	s, err := r.store.Session(r.ctx, id)
	r.must(err)
	return s
}

// wantEnded checks that the unlock's session ended at at for reason, billed
// or not.
func (r *rig) wantEnded(unlock wire.Command, reason fablab.EndReason, at time.Time, billable bool) {
	r.t.Helper()
	s := r.session(unlock)
	if s.Open() || s.EndReason != reason || !s.Ended.Equal(at) || s.Billable != billable {
		r.t.Fatalf("session %+v, want ended %s at %s, billable %v", s, reason, at.UTC(), billable)
	}
}

func (r *rig) wantOpen(unlock wire.Command) fablab.Session {
	r.t.Helper()
	s := r.session(unlock)
	if !s.Open() {
		r.t.Fatalf("session %+v ended, want it open", s)
	}
	return s
}

func (r *rig) wantRelayKnown(relay string) {
	r.t.Helper()
	if got := r.eng.DeviceStates()[dev].Relay; got != relay {
		r.t.Fatalf("relay known to the server %q, want %q", got, relay)
	}
}

// giveUp moves the clock past every retry of the commands awaiting an ack.
func (r *rig) giveUp() {
	r.t.Helper()
	for range 4 {
		r.clock.Advance(3 * time.Second)
		r.eng.RetryDue(r.ctx)
	}
}

// The device applies the unlock, its relay runs ten minutes and goes off:
// in whatever order the ack and the states are handled, the session ends
// when the relay went off, billed to then; the ack never makes the relay
// known "on" again over the off.
func TestEngineAckAndStateOrdering(t *testing.T) {
	off := t0.Add(10 * time.Minute)
	t.Run("ack then states", func(t *testing.T) {
		r := newRig(t)
		u := r.tap(wire.OpUnlock)
		r.ack(u, wire.ResultOK, wire.RelayOn)
		r.state(wire.RelayOn, u.SessionID, u.Seq, t0)
		r.clock.Set(off.Add(time.Second))
		r.state(wire.RelayOff, "", u.Seq, off)
		r.wantEnded(u, fablab.EndRelayOff, off, true)
		r.wantRelayKnown(wire.RelayOff)
	})
	t.Run("states then ack", func(t *testing.T) {
		r := newRig(t)
		u := r.tap(wire.OpUnlock)
		r.state(wire.RelayOn, u.SessionID, u.Seq, t0)
		r.clock.Set(off.Add(time.Second))
		r.state(wire.RelayOff, "", u.Seq, off)
		r.wantOpen(u) // the ack tells whether the relay went on: it is on its way
		r.ack(u, wire.ResultOK, wire.RelayOn)
		r.wantEnded(u, fablab.EndRelayOff, off, true)
		r.wantRelayKnown(wire.RelayOff)
		if cmds := r.pub.take(); len(cmds) != 0 {
			t.Fatalf("commands %+v after a session the relay ended", cmds)
		}
	})
	t.Run("off state while the unlock is pending", func(t *testing.T) {
		r := newRig(t)
		u := r.tap(wire.OpUnlock)
		r.clock.Set(off.Add(time.Second))
		r.state(wire.RelayOff, "", u.Seq, off) // no "on" state seen at all
		r.wantOpen(u)
		r.ack(u, wire.ResultOK, wire.RelayOn)
		r.wantEnded(u, fablab.EndRelayOff, off, true)
	})
	t.Run("off state older than the pending unlock", func(t *testing.T) {
		r := newRig(t)
		u := r.tap(wire.OpUnlock)
		r.state(wire.RelayOff, "", u.Seq-1, t0.Add(-time.Minute))
		r.ack(u, wire.ResultOK, wire.RelayOn)
		if s := r.wantOpen(u); !s.Confirmed {
			t.Fatalf("session %+v, want confirmed", s)
		}
		r.wantRelayKnown(wire.RelayOn)
	})
	t.Run("off state then the relay's fault", func(t *testing.T) {
		r := newRig(t)
		u := r.tap(wire.OpUnlock)
		r.state(wire.RelayOff, "", u.Seq, t0.Add(-time.Hour))
		r.ack(u, wire.ResultError, wire.RelayOff)
		r.wantEnded(u, fablab.EndRelayUnconfirmed, t0, false)
	})
}

// The bridge stops while the unlock's ack is still on its way: its states
// say the relay went on and off, then it is gone. The session ends at the
// stop, billed to then, whether the ack arrives late or never.
func TestEngineStopDuringPendingAck(t *testing.T) {
	stop := t0.Add(5 * time.Second)
	offline := func(r *rig) {
		r.eng.HandleStatus(r.ctx, dev, r.encode(&wire.Status{Online: false}))
	}
	t.Run("ack after the stop", func(t *testing.T) {
		r := newRig(t)
		u := r.tap(wire.OpUnlock)
		r.state(wire.RelayOn, u.SessionID, u.Seq, t0)
		r.clock.Set(stop)
		r.state(wire.RelayOff, "", u.Seq, stop)
		offline(r)
		r.ack(u, wire.ResultOK, wire.RelayOn)
		r.wantEnded(u, fablab.EndRelayOff, stop, true)
	})
	t.Run("ack lost", func(t *testing.T) {
		r := newRig(t)
		u := r.tap(wire.OpUnlock)
		r.state(wire.RelayOn, u.SessionID, u.Seq, t0)
		r.clock.Set(stop)
		r.state(wire.RelayOff, "", u.Seq, stop)
		offline(r)
		r.giveUp()
		r.wantEnded(u, fablab.EndRelayOff, stop, true)
	})
	t.Run("stopped before the unlock arrived", func(t *testing.T) {
		r := newRig(t)
		u := r.tap(wire.OpUnlock)
		r.clock.Set(stop)
		r.state(wire.RelayOff, "", 0, t0.Add(-time.Hour))
		offline(r)
		r.giveUp()
		// The relay never went on: not billed, as any unconfirmed unlock.
		if s := r.session(u); s.Open() || s.EndReason != fablab.EndRelayUnconfirmed || s.Billable {
			t.Fatalf("session %+v, want ended relay_unconfirmed, not billed", s)
		}
	})
}

// The bridge granted a session alone, replayed it, and stopped before the
// server's adoption unlock reached it: the session ends when its relay went
// off, billed to then, once the adoption is given up.
func TestEngineStopDuringPendingAdoption(t *testing.T) {
	r := newRig(t)
	stop := t0.Add(time.Second)
	r.eng.HandleTap(r.ctx, dev, r.encode(&wire.Tap{MsgID: "m-1", TS: t0.Unix(), UID: uidAda, Offline: true,
		Result: wire.TapGranted, SessionID: wire.OfflineSessionPrefix + "m-1", Until: t0.Add(time.Hour).Unix()}))
	cmds := r.pub.take()
	if len(cmds) != 1 || cmds[0].Op != wire.OpUnlock {
		t.Fatalf("commands %+v, want the adoption unlock", cmds)
	}
	r.state(wire.RelayOn, wire.OfflineSessionPrefix+"m-1", 0, t0)
	r.clock.Set(stop)
	r.state(wire.RelayOff, "", 0, stop)
	r.eng.HandleStatus(r.ctx, dev, r.encode(&wire.Status{Online: false}))
	r.giveUp()
	r.wantEnded(cmds[0], fablab.EndRelayOff, stop, true)
}

// A state a later command already superseded is not news: the relay "on"
// for the session a tap-out just ended, handled after the tap-out (before or
// after the lock's ack), gets no lock of its own. A relay on with a newer
// seq does.
func TestEngineSupersededStateNoLock(t *testing.T) {
	r := newRig(t)
	u := r.tap(wire.OpUnlock)
	r.ack(u, wire.ResultOK, wire.RelayOn)
	r.clock.Advance(time.Minute)
	lock := r.tap(wire.OpLock) // the tap-out, handled before the unlock's state
	if lock.Reason != fablab.EndTapOut || lock.Seq <= u.Seq {
		t.Fatalf("lock %+v after unlock seq %d", lock, u.Seq)
	}
	r.state(wire.RelayOn, u.SessionID, u.Seq, t0)
	if cmds := r.pub.take(); len(cmds) != 0 {
		t.Fatalf("commands %+v for a state the tap-out's lock superseded", cmds)
	}
	r.ack(lock, wire.ResultOK, wire.RelayOff)
	r.state(wire.RelayOn, u.SessionID, u.Seq, t0) // delivered again, late
	if cmds := r.pub.take(); len(cmds) != 0 {
		t.Fatalf("commands %+v for a state older than the lock's ack", cmds)
	}
	r.wantRelayKnown(wire.RelayOff)
	r.wantEnded(u, fablab.EndTapOut, t0.Add(time.Minute), true)

	// A relay on after the lock was applied is news: locked.
	r.state(wire.RelayOn, u.SessionID, lock.Seq, r.clock.Now())
	if cmds := r.pub.take(); len(cmds) != 1 || cmds[0].Op != wire.OpLock || cmds[0].Reason != "no_session" {
		t.Fatalf("commands %+v, want a lock for a relay on without a session", cmds)
	}
}

// A heartbeat carries no seq: one published while the device ran a session
// it granted alone, handled after the state of its adoption, must not make
// the server take the relay for that local session still, which would
// spare the adopted session's end its lock.
func TestEngineStaleHeartbeatDoesNotSpareTheLock(t *testing.T) {
	r := newRig(t)
	local := wire.OfflineSessionPrefix + "m-1"
	r.eng.HandleTap(r.ctx, dev, r.encode(&wire.Tap{MsgID: "m-1", TS: t0.Unix(), UID: uidAda, Offline: true,
		Result: wire.TapGranted, SessionID: local, Until: t0.Add(time.Hour).Unix()}))
	adopt := r.pub.take()[0]
	r.state(wire.RelayOn, local, 0, t0)
	r.ack(adopt, wire.ResultOK, wire.RelayOn)
	r.state(wire.RelayOn, adopt.SessionID, adopt.Seq, t0)
	r.eng.HandleHeartbeat(r.ctx, dev, r.encode(&wire.Heartbeat{TS: t0.Unix(), Relay: wire.RelayOn, SessionID: local}))
	r.clock.Advance(time.Minute)
	r.endByStaffWantsLock(adopt)
}

// The relay goes off by itself while the grace extension the sweep decided
// is on its way: the state is held back (the extension supersedes it), the
// device refuses to extend a session it has ended, and the session ends
// when the relay went off, not at its original end.
func TestEngineRelayOffDuringExtension(t *testing.T) {
	r := newRig(t)
	_, err := r.store.UpdateMachine(r.ctx, r.machine.ID, func(m *fablab.Machine) error { m.GraceMinutes, m.IdlePowerW = 10, 5; return nil })
	r.must(err)
	u := r.tap(wire.OpUnlock)
	r.ack(u, wire.ResultOK, wire.RelayOn)
	until := time.Unix(u.Until, 0)
	r.clock.Set(until.Add(-20 * time.Second))
	busy := 800.0
	r.eng.HandleState(r.ctx, dev, r.encode(&wire.State{Relay: wire.RelayOn, SessionID: u.SessionID, Seq: u.Seq, Since: t0.Unix(), PowerW: &busy}))
	r.eng.Sweep(r.ctx)
	ext := r.pub.take()
	if len(ext) != 1 || ext[0].Op != wire.OpUnlock || ext[0].SessionID != u.SessionID || ext[0].Until <= u.Until {
		t.Fatalf("commands %+v, want the grace extension", ext)
	}
	off := until.Add(-15 * time.Second)
	r.clock.Set(off.Add(time.Second))
	r.state(wire.RelayOff, "", u.Seq, off)
	r.wantOpen(u)
	r.eng.HandleAck(r.ctx, dev, r.encode(&wire.Ack{CmdID: ext[0].CmdID, Seq: ext[0].Seq, Result: wire.ResultError, Relay: wire.RelayOff, Reason: "session_ended"}))
	r.wantEnded(u, fablab.EndRelayOff, off, true)
}

// Two states of the same seq (the unlock's) handed over swapped: the relay
// went on for the session, then off by itself, and the "off" is handled
// first, while the unlock waits for its ack. The "on" handled after it is
// older (by its since; on a tie "off" wins): the session ends when the ack
// lands, where it stayed open until its end.
func TestEngineEqualSeqStatesSwapped(t *testing.T) {
	for _, c := range []struct {
		name string
		on   time.Time // the "on" state's since
		off  time.Time
	}{
		{"off later", t0, t0.Add(10 * time.Minute)},
		{"same second", t0.Add(10 * time.Minute), t0.Add(10 * time.Minute)},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			u := r.tap(wire.OpUnlock)
			r.clock.Set(c.off.Add(time.Second))
			r.state(wire.RelayOff, "", u.Seq, c.off)
			r.state(wire.RelayOn, u.SessionID, u.Seq, c.on)
			r.ack(u, wire.ResultOK, wire.RelayOn)
			r.wantEnded(u, fablab.EndRelayOff, c.off, true)
			r.wantRelayKnown(wire.RelayOff)
			if cmds := r.pub.take(); len(cmds) != 0 {
				t.Fatalf("commands %+v after a session the relay ended", cmds)
			}
		})
	}
}

// A session the device granted alone, adopted by the server, ended (staff,
// or a tap-out) before the state naming the server's id is handled: the
// relay runs this very session, so it is locked, whether the adoption's ack
// was handled (the newer report) or not yet (the state names the device's
// own id of this session). The lock was skipped, leaving the relay on.
func TestEngineEndAdoptedSessionLocks(t *testing.T) {
	for _, acked := range []bool{true, false} {
		t.Run(map[bool]string{true: "adoption acked", false: "adoption pending"}[acked], func(t *testing.T) {
			r := newRig(t)
			local := wire.OfflineSessionPrefix + "m-1"
			r.eng.HandleTap(r.ctx, dev, r.encode(&wire.Tap{MsgID: "m-1", TS: t0.Unix(), UID: uidAda, Offline: true,
				Result: wire.TapGranted, SessionID: local, Until: t0.Add(time.Hour).Unix()}))
			adopt := r.pub.take()[0]
			r.state(wire.RelayOn, local, 0, t0)
			if acked {
				r.ack(adopt, wire.ResultOK, wire.RelayOn)
			}
			r.clock.Advance(time.Minute)
			r.endByStaffWantsLock(adopt)
		})
	}
}

// Every command that answers a tap names it (tap_id), so that the device
// clears that tap only; a command that answers none (staff ending a session
// from the web, the lock sent again after it was not applied) names none
// or its own first tap, never a tap the device may be waiting on since.
func TestEngineCommandsNameTheTapTheyAnswer(t *testing.T) {
	r := newRig(t)
	tap := func(msgID, uid string) wire.Command {
		t.Helper()
		r.eng.HandleTap(r.ctx, dev, r.encode(&wire.Tap{MsgID: msgID, TS: r.clock.Now().Unix(), UID: uid}))
		cmds := r.pub.take()
		if len(cmds) != 1 {
			t.Fatalf("commands %+v, want one answer to %s", cmds, msgID)
		}
		return cmds[0]
	}
	if c := tap("t-deny", "0499AABBCCDDEE"); c.Op != wire.OpDeny || c.TapID != "t-deny" {
		t.Fatalf("deny %+v, want tap_id t-deny", c)
	}
	u := tap("t-in", uidAda)
	if u.Op != wire.OpUnlock || u.TapID != "t-in" {
		t.Fatalf("unlock %+v, want tap_id t-in", u)
	}
	r.ack(u, wire.ResultOK, wire.RelayOn)
	r.clock.Advance(time.Minute)
	lock := tap("t-out", uidAda)
	if lock.Op != wire.OpLock || lock.Reason != fablab.EndTapOut || lock.TapID != "t-out" {
		t.Fatalf("tap-out lock %+v, want tap_id t-out", lock)
	}
	r.ack(lock, wire.ResultOK, wire.RelayOff)

	u = tap("t-in-2", uidAda)
	r.ack(u, wire.ResultOK, wire.RelayOn)
	id, err := fablab.ParseID(u.SessionID)
	r.must(err)
	if _, err := r.eng.EndSession(r.ctx, id, fablab.EndStaff, 0); err != nil {
		t.Fatal(err)
	}
	if cmds := r.pub.take(); len(cmds) != 1 || cmds[0].Op != wire.OpLock || cmds[0].TapID != "" {
		t.Fatalf("commands %+v, want a lock naming no tap", cmds)
	}
}

// endByStaffWantsLock ends the adopted session as staff would from the web
// and checks that its lock, and nothing else, is sent.
func (r *rig) endByStaffWantsLock(adopt wire.Command) {
	r.t.Helper()
	id, err := fablab.ParseID(adopt.SessionID)
	r.must(err)
	if _, err := r.eng.EndSession(r.ctx, id, fablab.EndStaff, 0); err != nil {
		r.t.Fatal(err)
	}
	if cmds := r.pub.take(); len(cmds) != 1 || cmds[0].Op != wire.OpLock || cmds[0].SessionID != adopt.SessionID {
		r.t.Fatalf("commands %+v, want the lock of the ended session", cmds)
	}
}
