package lab_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/access"
	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/mqtt"
	"github.com/fabgate/fabgate/internal/mqtt/mqtttest"
	"github.com/fabgate/fabgate/internal/wire"
)

// scenario is one end-to-end case, run on every broker.
type scenario struct {
	name string
	opts []envOption
	run  func(e *env)
}

// TestAccessEndToEnd runs the access side (DESIGN §3, the MQTT contract of
// §4) end to end: real store, real broker, simulated devices, on both the
// embedded broker and a real Mosquitto (required when
// FABGATE_REQUIRE_ALL=1).
func TestAccessEndToEnd(t *testing.T) {
	for _, kind := range []brokerKind{embedded, mosquitto} {
		t.Run(string(kind), func(t *testing.T) {
			if kind == mosquitto {
				mqtttest.RequireMosquitto(t)
			}
			for _, sc := range scenarios() {
				t.Run(sc.name, func(t *testing.T) {
					t.Parallel()
					sc.run(newEnv(t, kind, sc.opts...))
				})
			}
		})
	}
}

func scenarios() []scenario {
	list := []scenario{
		{name: "grant_with_booking", run: grantWithBooking},
		{name: "tap_out", run: tapOut},
		{name: "quick_tap_out", run: quickTapOut},
		{name: "staff_force_closes_in_use", run: staffForceClose},
		{name: "walk_in_capped_by_next_booking", run: walkInCapped},
		{name: "no_ack_retries_then_relay_unconfirmed", run: noAckRetries},
		{name: "device_reboot_relay_stays_off", run: deviceReboot},
		{name: "server_restart_reconciles", run: serverRestart},
		{name: "broker_restart_reconnects_and_resends", opts: []envOption{withOwnBroker}, run: brokerRestart},
		{name: "duplicate_tap_decided_once", run: duplicateTap},
		{name: "offline_tap_recorded_not_decided", run: offlineReplay},
		{name: "stale_ack_changes_nothing", run: staleAck},
		{name: "unlock_answered_stale_is_unconfirmed", run: unlockAnsweredStale},
		{name: "malformed_taps_dropped", run: malformedTaps},
		{name: "acl_device_cannot_act_as_another", run: aclCrossDevice},
		{name: "session_ends_at_until", run: sessionEndsAtUntil},
		{name: "no_lock_over_a_local_session", run: noLockOverLocalSession},
	}
	for _, d := range denials() {
		list = append(list, scenario{name: "deny_" + d.name, run: d.run})
	}
	return list
}

func grantWithBooking(e *env) {
	b := e.book(e.ada, e.laser, t0, t0.Add(time.Hour))
	d := e.device(devLaser)
	d.tap(uidAda)
	c := d.expect(wire.OpUnlock)
	if c.Until != b.End.Unix() || c.SessionID == "" || c.CmdID == "" || c.Seq == 0 {
		e.t.Fatalf("unlock %+v: want a session_id and until = booking end %d", c, b.End.Unix())
	}
	s := e.session(e.sessionID(c))
	if !s.Open() || s.MemberID != e.ada.ID || s.MachineID != e.laser.ID || s.BookingID != b.ID ||
		s.DeviceID != devLaser || s.CmdID != c.CmdID || !s.Billable || !s.Until.Equal(b.End) {
		e.t.Fatalf("session opened before the unlock: %+v", s)
	}
	e.waitSession(s.ID, "confirmed", func(s fablab.Session) bool { return s.Confirmed })
	d.waitRelay(wire.RelayOn, c.SessionID)
	d.settles()
	// The relay's state may confirm the session before its ack is handled
	// (messages are handed over out of order): wait for the ack's line.
	e.eventually("the unlock's ack in the audit", func() bool { return len(e.audit(fablab.AuditAck, wire.ResultOK)) > 0 })
	if acks := e.audit(fablab.AuditAck, wire.ResultOK); len(acks) != 1 || acks[0].SessionID != s.ID {
		e.t.Errorf("audited acks: %+v", acks)
	}
	if granted := e.audit(fablab.AuditTap, "granted"); len(granted) != 1 || granted[0].MemberID != e.ada.ID {
		e.t.Errorf("audited grants: %+v", granted)
	}
}

type denial struct {
	name string
	run  func(e *env)
}

// denials covers every deny code of DESIGN §3, each answered with op deny,
// the reason and a message, and no session.
func denials() []denial {
	deny := func(dev, uid, reason string, check func(e *env, c wire.Command)) func(e *env) {
		return func(e *env) {
			d := e.device(dev)
			before := e.openSessions()
			d.tap(uid)
			c := d.expectDeny(reason)
			if check != nil {
				check(e, c)
			}
			if after := e.openSessions(); len(after) != len(before) {
				e.t.Errorf("open sessions after a %s: %+v (before: %+v)", reason, after, before)
			}
			if ev := e.audit(fablab.AuditTap, "denied"); len(ev) != 1 || ev[0].Reason != reason || ev[0].DeviceID != dev {
				e.t.Errorf("audited denials: %+v", ev)
			}
			d.settles()
		}
	}
	messageHas := func(want string) func(*env, wire.Command) {
		return func(e *env, c wire.Command) {
			if !strings.Contains(c.Message, want) {
				e.t.Errorf("deny message %q does not contain %q", c.Message, want)
			}
		}
	}
	return []denial{
		{"unknown_badge", deny(devLaser, uidUnknown, wire.ReasonUnknownBadge, func(e *env, c wire.Command) {
			taps, err := e.store.UnknownTaps(context.Background())
			if err != nil {
				e.t.Fatal(err)
			}
			want := auth.BadgeHash(e.store.BadgeSecret(), uidUnknown)
			if len(taps) != 1 || taps[0].Hash != want || taps[0].DeviceID != devLaser || !taps[0].At.Equal(t0) {
				e.t.Errorf("unknown taps %+v, want the badge %s on %s at %s", taps, want, devLaser, t0)
			}
		})},
		{"member_inactive_suspended", deny(devLaser, uidSuspended, wire.ReasonMemberInactive, nil)},
		{"member_inactive_expired", deny(devLaser, uidExpired, wire.ReasonMemberInactive, nil)},
		{"machine_unavailable", deny(devResin, uidAda, wire.ReasonMachineUnavailable, nil)},
		{"training_required", deny(devLaser, uidUntrained, wire.ReasonTrainingRequired, messageHas(laserTraining))},
		{"in_use", func(e *env) {
			d := e.device(devLaser)
			_, s := e.grant(d, e.ada)
			d.tap(uidBob)
			d.expectDeny(wire.ReasonInUse)
			if s := e.session(s.ID); !s.Open() {
				e.t.Errorf("ada's session after bob's tap: %+v", s)
			}
			if open := e.openSessions(); len(open) != 1 {
				e.t.Errorf("open sessions: %+v", open)
			}
			d.quiet()
		}},
		{"booked_soon", func(e *env) {
			// Bob's booking starts in 20 minutes: shorter than the 30-minute minimum.
			e.book(e.bob, e.laser, t0.Add(20*time.Minute), t0.Add(80*time.Minute))
			deny(devLaser, uidAda, wire.ReasonBookedSoon, messageHas("14:20"))(e)
		}},
		{"booked_by_other", func(e *env) {
			e.book(e.bob, e.laser, t0.Add(-30*time.Minute), t0.Add(time.Hour))
			deny(devLaser, uidAda, wire.ReasonBookedByOther, messageHas("15:00"))(e)
		}},
	}
}

func tapOut(e *env) {
	d := e.device(devLaser)
	_, s := e.grant(d, e.ada)
	e.clock.Advance(10 * time.Minute)
	d.heartbeat()
	d.tap(uidAda)
	l := d.expect(wire.OpLock)
	if l.SessionID != s.ID.String() || l.Reason != fablab.EndTapOut {
		e.t.Errorf("lock %+v, want session %s reason %s", l, s.ID, fablab.EndTapOut)
	}
	s = e.waitEnded(s.ID, fablab.EndTapOut)
	if !s.Ended.Equal(t0.Add(10*time.Minute)) || !s.Billable {
		e.t.Errorf("closed session: %+v", s)
	}
	d.waitRelay(wire.RelayOff, "")
	d.settles()
}

// quickTapOut: the member taps out before the relay's state of the unlock
// is handled (acks, states and taps travel on separate subscriptions): the
// state, superseded by the tap-out's lock, gets no lock of its own, and
// nothing changes in the seconds after.
func quickTapOut(e *env) {
	d := e.device(devLaser)
	d.tap(uidAda)
	u := d.expect(wire.OpUnlock)
	d.tap(uidAda)
	if l := d.expect(wire.OpLock); l.SessionID != u.SessionID || l.Reason != fablab.EndTapOut {
		e.t.Fatalf("lock %+v, want the tap-out of %s", l, u.SessionID)
	}
	e.waitEnded(e.sessionID(u), fablab.EndTapOut)
	d.waitRelay(wire.RelayOff, "")
	e.settleState(devLaser, wire.RelayOff, "")
	d.settles()
}

func staffForceClose(e *env) {
	d := e.device(devLaser)
	_, s := e.grant(d, e.ada)
	d.tap(uidSam)
	l := d.expect(wire.OpLock)
	if l.SessionID != s.ID.String() || l.Reason != fablab.EndStaff {
		e.t.Errorf("lock %+v, want session %s reason %s", l, s.ID, fablab.EndStaff)
	}
	s = e.waitEnded(s.ID, fablab.EndStaff)
	if s.EndedBy != e.sam.ID {
		e.t.Errorf("session ended by %s, want sam (%s)", s.EndedBy, e.sam.ID)
	}
	d.waitRelay(wire.RelayOff, "")
	// The staff tap closed the session; it did not open one for sam.
	d.quiet()
	if open := e.openSessions(); len(open) != 0 {
		e.t.Errorf("open sessions: %+v", open)
	}
}

// A session the server ends while the device's relay runs a session the
// device granted alone (its replay not handled yet) gets no lock: the
// server's session lost its power when the device decided, and a lock would
// cut the other member.
func noLockOverLocalSession(e *env) {
	d := e.device(devLaser)
	_, s := e.grant(d, e.ada)
	state, _ := wire.Encode(&wire.State{Relay: wire.RelayOn, SessionID: wire.OfflineSessionPrefix + "f00d", Since: e.clock.Now().Unix(), Seq: 99})
	e.lab.Engine.HandleState(context.Background(), devLaser, state)
	if _, err := e.lab.Engine.EndSession(context.Background(), s.ID, fablab.EndStaff, e.sam.ID); err != nil {
		e.t.Fatal(err)
	}
	d.quiet()
	if r, sid := d.Relay(); r != wire.RelayOn || sid != s.ID.String() {
		e.t.Errorf("relay %s %q: a lock reached it", r, sid)
	}
}

func walkInCapped(e *env) {
	next := e.book(e.bob, e.laser, t0.Add(time.Hour), t0.Add(2*time.Hour))
	d := e.device(devLaser)
	c, s := e.grant(d, e.ada)
	if c.Until != next.Start.Unix() || !s.Until.Equal(next.Start) || s.BookingID != 0 {
		e.t.Errorf("walk-in unlock %+v, session %+v: want until %s (bob's booking) and no booking", c, s, next.Start)
	}
}

func noAckRetries(e *env) {
	events := e.hub()
	d := e.device(devLaser, noAck)
	d.tap(uidAda)
	first := d.expect(wire.OpUnlock)
	id := e.sessionID(first)

	// Not yet due: nothing is sent again.
	e.clock.Advance(2 * time.Second)
	e.lab.Engine.RetryDue(context.Background())
	d.quiet()

	for try := 2; try <= 3; try++ {
		e.clock.Set(t0.Add(time.Duration(3*(try-1)) * time.Second))
		e.lab.Engine.RetryDue(context.Background())
		c := d.expect(wire.OpUnlock)
		if c.CmdID != first.CmdID || c.Seq != first.Seq || c.SessionID != first.SessionID || c.Until != first.Until {
			e.t.Fatalf("try %d: %+v, want the same command as %+v", try, c, first)
		}
		if s := e.session(id); !s.Open() || s.Confirmed {
			e.t.Fatalf("try %d: session %+v", try, s)
		}
	}

	e.clock.Set(t0.Add(9 * time.Second))
	e.lab.Engine.RetryDue(context.Background())
	s := e.waitEnded(id, fablab.EndRelayUnconfirmed)
	if s.Billable || s.Confirmed {
		e.t.Errorf("unconfirmed session: %+v, want not billable", s)
	}
	l := d.expect(wire.OpLock)
	if l.SessionID != first.SessionID || l.Reason != fablab.EndRelayUnconfirmed {
		e.t.Errorf("lock after giving up: %+v", l)
	}
	e.waitEvent(events, "alert", func(data map[string]any) bool {
		return data["session_id"] == id && data["reason"] == fablab.EndRelayUnconfirmed
	})
	if n := e.lab.Engine.Retried.Load(); n != 2 {
		e.t.Errorf("Retried = %d, want 2", n)
	}
	if n := e.lab.Engine.GaveUp.Load(); n != 1 {
		e.t.Errorf("GaveUp = %d, want 1", n)
	}
}

func deviceReboot(e *env) {
	d := e.device(devLaser)
	_, s := e.grant(d, e.ada)
	d.Reboot(context.Background())
	e.waitEnded(s.ID, fablab.EndRelayOff)
	// The relay came up off: no command (a lock could cut a session the
	// device granted alone before it connected; never an unlock).
	e.settleState(devLaser, wire.RelayOff, "")
	if r, sid := d.Relay(); r != wire.RelayOff || sid != "" {
		e.t.Errorf("relay after reboot: %s %q", r, sid)
	}
	// Nothing switches the machine back on: no retry, no reconciliation.
	e.clock.Advance(10 * time.Second)
	d.heartbeat()
	e.lab.Engine.RetryDue(context.Background())
	e.lab.Engine.Sweep(context.Background())
	d.quiet()
	if r, _ := d.Relay(); r != wire.RelayOff {
		e.t.Errorf("relay after the reboot and a sweep: %s", r)
	}
	if open := e.openSessions(); len(open) != 0 {
		e.t.Errorf("open sessions after the reboot: %+v", open)
	}
	// A new tap is needed, and works.
	_, s2 := e.grant(d, e.ada)
	if s2.ID == s.ID {
		e.t.Errorf("the old session %s was reused", s.ID)
	}
}

func serverRestart(e *env) {
	laser := e.device(devLaser)
	printer := e.device(devPrinter)
	_, sa := e.grant(laser, e.ada)
	_, sb := e.grant(printer, e.bob)

	e.closeLab()
	// While the server is down, bob's session ends in the store (staff
	// ended it) but the printer never hears the lock: its relay stays on
	// for a session that is not open.
	if _, err := e.store.CloseSession(context.Background(), sb.ID, e.clock.Now(), fablab.EndStaff, e.sam.ID, nil, nil); err != nil {
		e.t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	e.startLab()

	// Relay on without an open session: locked.
	l := printer.expect(wire.OpLock)
	if l.SessionID != "" && l.SessionID != sb.ID.String() {
		e.t.Errorf("lock %+v", l)
	}
	printer.waitRelay(wire.RelayOff, "")

	// Relay on for the open session: kept, not locked.
	e.eventually("the restarted server to take in the laser's state", func() bool {
		st := e.lab.Engine.DeviceStates()[devLaser]
		return st.Relay == wire.RelayOn && st.SessionID == sa.ID.String()
	})
	e.barrier(devLaser, wire.KindState)
	laser.quiet()
	if s := e.session(sa.ID); !s.Open() || !s.Confirmed {
		e.t.Errorf("ada's session after the restart: %+v", s)
	}
	if r, sid := laser.Relay(); r != wire.RelayOn || sid != sa.ID.String() {
		e.t.Errorf("laser relay after the restart: %s %q", r, sid)
	}
	// The new server knows the session: ada taps out.
	laser.heartbeat()
	laser.tap(uidAda)
	if l := laser.expect(wire.OpLock); l.SessionID != sa.ID.String() || l.Reason != fablab.EndTapOut {
		e.t.Errorf("tap-out after the restart: %+v", l)
	}
	e.waitEnded(sa.ID, fablab.EndTapOut)
}

func brokerRestart(e *env) {
	laser := e.device(devLaser)
	printer := e.device(devPrinter)

	e.stopBroker()
	e.eventually("the server to notice the broker is gone", func() bool { return !e.lab.Client.Connected() })
	// The server connects to the new broker before the devices do: mochi
	// (v2.7.9, topics.go scanMessages) reads a topic's retained path without
	// its lock, a data race when a wildcard SUBSCRIBE (the server's) meets a
	// retained PUBLISH (a device's birth) on the embedded broker.
	e.holdDevices()
	// A grant during the outage: the session opens, the unlock cannot be
	// published and waits for its retry.
	dec, err := e.lab.Engine.Tap(context.Background(), devLaser, uidAda)
	if err != nil || dec.Outcome != access.Grant {
		e.t.Fatalf("tap during the outage: %+v, %v", dec, err)
	}
	open := e.openSessions()
	if len(open) != 1 || open[0].Confirmed {
		e.t.Fatalf("open sessions after the tap: %+v", open)
	}
	s := open[0]

	events := e.hub()
	restarted := time.Now()
	e.startBroker()

	// The server reconnects and subscribes again: its birth message is
	// published after its subscriptions, and retained.
	obs := &inbox{}
	watch := []string{e.topics.ServerStatus(), e.topics.Device(devLaser, wire.KindStatus), e.topics.Device(devPrinter, wire.KindStatus)}
	observer := e.observer(obs, watch...)
	defer observer.Close(nil)
	for i, topic := range watch {
		if i == 1 {
			e.releaseDevices()
		}
		e.eventually("an online birth on "+topic, func() bool {
			for _, p := range obs.on(topic) {
				if strings.Contains(string(p), `"online":true`) {
					return true
				}
			}
			return false
		})
	}
	took := time.Since(restarted)
	if took > waitLong {
		e.t.Errorf("reconnection took %s, want at most %s", took, waitLong)
	}
	e.t.Logf("the server reconnected and subscribed again %s after the broker restarted", took.Round(time.Millisecond))
	if !e.lab.Client.Connected() {
		e.t.Fatal("the server's client is not connected after its birth")
	}
	// The laser's state after its reconnection (relay off) is taken in
	// before the unlock is sent again.
	e.waitEvent(events, "device", func(d map[string]any) bool {
		return d["device_id"] == devLaser && d["relay"] == wire.RelayOff
	})
	e.barrier(devLaser, wire.KindState)

	// The unlock published during the outage is not lost.
	e.clock.Advance(3 * time.Second)
	e.lab.Engine.RetryDue(context.Background())
	c := laser.expect(wire.OpUnlock)
	if c.CmdID != s.CmdID || c.SessionID != s.ID.String() || c.Until != s.Until.Unix() {
		e.t.Fatalf("resent unlock %+v, want cmd %s of session %+v", c, s.CmdID, s)
	}
	e.waitSession(s.ID, "confirmed", func(s fablab.Session) bool { return s.Confirmed })
	laser.waitRelay(wire.RelayOn, s.ID.String())

	// A tap after the restart is decided and granted.
	printer.heartbeat()
	e.grant(printer, e.bob)
}

// holdDevices makes device logins wait on the embedded broker the test
// runs (a no-op with Mosquitto).
func (e *env) holdDevices() {
	if e.deviceAuth != nil {
		e.deviceAuth.Hold()
	}
}

func (e *env) releaseDevices() {
	if e.deviceAuth != nil {
		e.deviceAuth.Release()
	}
}

// observer connects a client with the server's credentials (on a broker the
// test runs) subscribed to topics; on Mosquitto, as observerUser.
func (e *env) observer(in *inbox, topics ...string) *mqtt.Client {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	user := serverUser
	if e.kind == mosquitto {
		user = observerUser
	}
	c, err := mqtt.Connect(ctx, mqtt.ClientConfig{Broker: e.url, ClientID: "observer-" + randomToken()[:6],
		Username: user, Password: e.serverPass, Log: e.log.With("component", "observer")})
	if err != nil {
		e.t.Fatalf("observer: %v", err)
	}
	for _, topic := range topics {
		if err := c.Subscribe(topic, 1, in.handle); err != nil {
			e.t.Fatalf("observer: subscribe %s: %v", topic, err)
		}
	}
	return c
}

func duplicateTap(e *env) {
	d := e.device(devLaser)
	tap := wire.Tap{MsgID: "laser-1-000042", TS: e.clock.Now().Unix(), UID: uidAda}
	// Published twice at once (a QoS 1 redelivery): decided once. Decided
	// again it would be a tap-out.
	d.publishTap(tap)
	d.publishTap(tap)
	c := d.expect(wire.OpUnlock)
	id := e.sessionID(c)
	e.waitSession(id, "confirmed", func(s fablab.Session) bool { return s.Confirmed })
	e.eventually("the duplicate to be recognised", func() bool { return e.lab.Engine.Replays.Load() == 1 })
	d.quiet()

	// And again later, once the session runs.
	d.publishTap(tap)
	e.eventually("the late duplicate to be recognised", func() bool { return e.lab.Engine.Replays.Load() == 2 })
	d.quiet()
	if s := e.session(id); !s.Open() {
		e.t.Errorf("session after the duplicates: %+v", s)
	}
	if g := e.lab.Engine.Granted.Load(); g != 1 {
		e.t.Errorf("Granted = %d, want 1", g)
	}
	if ev := e.audit(fablab.AuditTap, ""); len(ev) != 3 { // the grant and the probes' denials
		e.t.Errorf("audited taps: %+v", ev)
	}
}

func offlineReplay(e *env) {
	d := e.device(devLaser)
	at := t0.Add(-time.Hour)
	tap := wire.Tap{MsgID: "laser-1-offline-7", TS: at.Unix(), UID: uidAda, Offline: true}
	d.publishTap(tap)
	e.eventually("the replayed tap in the audit", func() bool { return len(e.audit(fablab.AuditTap, "replayed")) == 1 })
	d.publishTap(tap) // replayed twice (the device did not get the PUBACK)
	e.eventually("the second replay to be recognised", func() bool { return e.lab.Engine.Replays.Load() == 1 })

	ev := e.audit(fablab.AuditTap, "replayed")
	if len(ev) != 1 {
		e.t.Fatalf("replayed taps in the audit: %+v", ev)
	}
	if r := ev[0]; !r.At.Equal(at) || r.DeviceID != devLaser || r.MemberID != e.ada.ID || r.MachineID != e.laser.ID || r.Detail["msg_id"] != tap.MsgID {
		e.t.Errorf("replayed tap audited as %+v", r)
	}
	// History, never a decision: no command, no session.
	if n := len(e.audit(fablab.AuditTap, "")); n != 1 {
		e.t.Errorf("%d tap events in the audit, want only the replay", n)
	}
	d.quiet()
	if open := e.openSessions(); len(open) != 0 {
		e.t.Errorf("open sessions: %+v", open)
	}
	if g := e.lab.Engine.Granted.Load(); g != 0 {
		e.t.Errorf("Granted = %d", g)
	}
}

func staleAck(e *env) {
	d := e.device(devLaser, noAck)
	d.tap(uidAda)
	c := d.expect(wire.OpUnlock)
	id := e.sessionID(c)
	relayBefore := e.lab.Engine.DeviceStates()[devLaser].Relay

	for _, seq := range []uint64{c.Seq + 1, c.Seq + 1000} {
		e.clock.Advance(time.Second)
		ack, err := wire.Encode(&wire.Ack{CmdID: c.CmdID, Seq: seq, Result: wire.ResultOK, Relay: wire.RelayOn})
		if err != nil {
			e.t.Fatal(err)
		}
		// Dropped and counted as bad input (the "stale seq acks").
		before := e.lab.Engine.Dropped.Load()
		e.publishAs(devLaser, e.topics.Device(devLaser, wire.KindAck), ack)
		e.eventually(fmt.Sprintf("the ack with seq %d to be dropped", seq), func() bool { return e.lab.Engine.Dropped.Load() == before+1 })
	}
	if s := e.session(id); !s.Open() || s.Confirmed {
		e.t.Errorf("session after stale acks: %+v", s)
	}
	if n := e.lab.Engine.PendingCommands(); n != 1 {
		e.t.Errorf("%d commands wait for an ack, want the unlock", n)
	}
	if r := e.lab.Engine.DeviceStates()[devLaser].Relay; r != relayBefore {
		e.t.Errorf("relay known to the server changed from %q to %q by a stale ack", relayBefore, r)
	}
	if n := len(e.audit(fablab.AuditAck, "")); n != 0 {
		e.t.Errorf("%d acks audited", n)
	}

	// The unlock is still tracked: sent again, and confirmed by its real ack.
	d.SetNoAck(false)
	e.clock.Set(t0.Add(3 * time.Second))
	e.lab.Engine.RetryDue(context.Background())
	if again := d.expect(wire.OpUnlock); again.CmdID != c.CmdID || again.Seq != c.Seq {
		e.t.Fatalf("resent %+v, want %+v", again, c)
	}
	e.waitSession(id, "confirmed", func(s fablab.Session) bool { return s.Confirmed })
}

// unlockAnsweredStale: the unlock does not reach the relay, a newer command
// does (a deny for someone else's tap), and the unlock sent again is
// answered "stale" (not applied, protocol §5.5). Nothing will ever switch
// the relay on for that session: it ends as relay_unconfirmed, not billed,
// staff alerted, as when nobody answers.
func unlockAnsweredStale(e *env) {
	events := e.hub()
	d := e.device(devLaser, noAck)
	d.tap(uidAda)
	c := d.expect(wire.OpUnlock) // lost: not applied
	id := e.sessionID(c)
	d.SetNoAck(false)
	d.tap(uidBob)
	if deny := d.expectDeny(wire.ReasonInUse); deny.Seq <= c.Seq {
		e.t.Fatalf("deny seq %d after unlock seq %d", deny.Seq, c.Seq)
	}
	e.clock.Set(t0.Add(3 * time.Second))
	e.lab.Engine.RetryDue(context.Background())
	if again := d.expect(wire.OpUnlock); again.CmdID != c.CmdID || again.Seq != c.Seq {
		e.t.Fatalf("resent %+v, want %+v", again, c)
	}
	s := e.waitEnded(id, fablab.EndRelayUnconfirmed)
	if s.Billable || s.Confirmed {
		e.t.Errorf("session %+v, want not billable", s)
	}
	if r, _ := d.Relay(); r != wire.RelayOff {
		e.t.Errorf("relay %s", r)
	}
	e.waitEvent(events, "alert", func(data map[string]any) bool { return data["session_id"] == id })
	if n := e.lab.Engine.PendingCommands(); n > 1 { // at most the lock that closed it
		e.t.Errorf("%d commands pending", n)
	}
}

func malformedTaps(e *env) {
	d := e.device(devLaser)
	ts := e.clock.Now().Unix()
	topic := e.topics.Device(devLaser, wire.KindTap)
	big := fmt.Sprintf(`{"v":1,"msg_id":"m-big","ts":%d,"uid":"%s","pad":"%s"}`, ts, uidAda, strings.Repeat("x", wire.MaxPayload))
	bad := [][]byte{
		[]byte(`{"v":1,"msg_id":"m-json","ts":`),
		[]byte(fmt.Sprintf(`{"v":2,"msg_id":"m-v2","ts":%d,"uid":"%s"}`, ts, uidAda)),
		[]byte(big),
	}
	before := e.lab.Engine.Dropped.Load()
	var refusedBefore uint64
	if e.lab.Broker != nil {
		refusedBefore = e.lab.Broker.Stats().RefusedPublishes
	}
	for _, p := range bad {
		e.publishAs(devLaser, topic, p)
	}
	// The embedded broker drops the oversized one itself; Mosquitto's size
	// limit is one for all (the allowlist is larger), so the server does.
	want := int64(len(bad))
	if e.lab.Broker != nil {
		want--
		e.eventually("the broker to drop the oversized tap", func() bool {
			return e.lab.Broker.Stats().RefusedPublishes == refusedBefore+1
		})
	}
	e.eventually("the malformed taps to be dropped", func() bool { return e.lab.Engine.Dropped.Load() >= before+want })
	if n := e.lab.Engine.Dropped.Load() - before; n != want {
		e.t.Errorf("Dropped grew by %d, want %d", n, want)
	}
	if ev := e.audit("", ""); len(ev) != 0 {
		e.t.Errorf("audit after malformed taps: %+v", ev)
	}
	if n := e.lab.Engine.Granted.Load() + e.lab.Engine.Denied.Load() + e.lab.Engine.Replays.Load(); n != 0 {
		e.t.Errorf("%d taps decided or replayed", n)
	}
	d.quiet()
	if open := e.openSessions(); len(open) != 0 {
		e.t.Errorf("open sessions: %+v", open)
	}
	// Nothing of the dropped taps was kept: not even their msg_id.
	d.publishTap(wire.Tap{MsgID: "m-v2", TS: ts, UID: uidAda})
	d.expect(wire.OpUnlock)
}

func aclCrossDevice(e *env) {
	a := e.device(devLaser)
	b := e.device(devPrinter)
	rawA := e.raw(devLaser)

	// A publishes a tap on B's topic: bob's badge, which B's machine would grant.
	forged, err := wire.Encode(&wire.Tap{MsgID: "forged-1", TS: e.clock.Now().Unix(), UID: uidBob})
	if err != nil {
		e.t.Fatal(err)
	}
	e.publishAs(devLaser, e.topics.Device(devPrinter, wire.KindTap), forged)

	// A subscribes to B's commands.
	got := &inbox{}
	err = rawA.Subscribe(e.topics.Device(devPrinter, wire.KindCmd), 1, got.handle)
	switch {
	case e.kind == embedded && !errors.Is(err, mqtt.ErrSubscriptionRefused):
		e.t.Errorf("embedded broker: subscribe to B's cmd as A: %v, want %v", err, mqtt.ErrSubscriptionRefused)
	case e.kind == mosquitto && err != nil:
		// Mosquitto grants the SUBACK and delivers nothing.
		e.t.Errorf("mosquitto: subscribe to B's cmd as A: %v", err)
	}
	// B is sent a command, then A (on the same connection as the
	// subscription above: a device has one).
	b.tap(uidProbe)
	b.expectDeny(wire.ReasonUnknownBadge)
	a.tap(uidProbe)
	a.expectDeny(wire.ReasonUnknownBadge)
	if leaked := got.on(e.topics.Device(devPrinter, wire.KindCmd)); len(leaked) != 0 {
		e.t.Errorf("A received B's commands: %q", leaked)
	}

	// The forged tap was never decided: no session on B's machine, no
	// command to B.
	b.quiet()
	if open := e.openSessions(); len(open) != 0 {
		e.t.Errorf("open sessions: %+v", open)
	}
	if g := e.lab.Engine.Granted.Load(); g != 0 {
		e.t.Errorf("Granted = %d", g)
	}
	for _, ev := range e.audit(fablab.AuditTap, "") {
		if ev.MemberID == e.bob.ID {
			e.t.Errorf("bob's forged tap was audited: %+v", ev)
		}
	}
	if e.kind == embedded {
		st := e.lab.Broker.Stats()
		if st.RefusedPublishes == 0 || st.RefusedSubscribes == 0 {
			e.t.Errorf("broker stats %+v: want the refused publish and subscribe counted", st)
		}
	}
}

func sessionEndsAtUntil(e *env) {
	b := e.book(e.ada, e.laser, t0, t0.Add(time.Hour))
	d := e.device(devLaser)
	c, s := e.grant(d, e.ada)
	if c.Until != b.End.Unix() {
		e.t.Fatalf("unlock %+v, want until %d", c, b.End.Unix())
	}
	sweepAt := func(at time.Time) {
		e.clock.Set(at)
		d.heartbeat() // the device is alive all along
		e.lab.Engine.Sweep(context.Background())
	}

	sweepAt(b.End.Add(-10 * time.Minute))
	d.quiet() // too early to warn

	sweepAt(b.End.Add(-5 * time.Minute))
	w := d.expect(wire.OpWarn)
	if w.SessionID != s.ID.String() || w.Until != b.End.Unix() || w.Reason != wire.ReasonSessionEnding || w.Message == "" {
		e.t.Errorf("warn %+v", w)
	}
	sweepAt(b.End.Add(-4 * time.Minute))
	d.quiet() // warned once
	if s := e.session(s.ID); !s.Open() {
		e.t.Fatalf("session ended before until: %+v", s)
	}

	sweepAt(b.End)
	l := d.expect(wire.OpLock)
	if l.SessionID != s.ID.String() || l.Reason != fablab.EndBookingEnd {
		e.t.Errorf("lock %+v", l)
	}
	s = e.waitEnded(s.ID, fablab.EndBookingEnd)
	if !s.Ended.Equal(b.End) || !s.Billable {
		e.t.Errorf("ended session: %+v", s)
	}
	d.waitRelay(wire.RelayOff, "")
}
