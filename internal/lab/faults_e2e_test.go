package lab_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/access"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/events"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/jobs"
	"github.com/fabgate/fabgate/internal/lab"
	"github.com/fabgate/fabgate/internal/mqtt/mqtttest"
	"github.com/fabgate/fabgate/internal/wire"
)

// TestFaults runs the lab through faults — the broker killed and started
// again, the server killed, a device flapping, a bridge offline for an
// hour, the clock jumping forward — on the embedded broker and on a real
// Mosquitto (required when FABGATE_REQUIRE_ALL=1). After each scenario
// the invariants of DESIGN §2 are checked over the whole store by one
// checker (assertInvariants), besides the scenario's own outcomes.
func TestFaults(t *testing.T) {
	for _, kind := range []brokerKind{embedded, mosquitto} {
		t.Run(string(kind), func(t *testing.T) {
			if kind == mosquitto {
				mqtttest.RequireMosquitto(t)
			}
			for _, sc := range faultScenarios() {
				t.Run(sc.name, func(t *testing.T) {
					t.Parallel()
					e := newEnv(t, kind, sc.opts...)
					e.priced()
					sc.run(e)
					assertInvariants(t, e.store)
				})
			}
		})
	}
}

func faultScenarios() []scenario {
	return []scenario{
		{name: "broker_down_5s", opts: []envOption{withOwnBroker}, run: brokerDown(5 * time.Second)},
		{name: "broker_down_60s", opts: []envOption{withOwnBroker}, run: brokerDown(60 * time.Second)},
		{name: "server_killed", opts: []envOption{withDataFile}, run: serverKilled},
		{name: "device_flapping", run: deviceFlapping},
		{name: "bridge_offline_an_hour", run: bridgeOfflineHour},
		{name: "clock_jumps_an_hour", opts: []envOption{withBillingJobs}, run: clockJump},
	}
}

// The fixture's tariff (student group): the laser at 12 €/h with a 5 €
// no-show fee, the printer at 3 €/h; staff use machines free. The lab bills
// by the started minute (the default increment).
const (
	laserRate   = 1200
	printerRate = 300
	noShowFee   = 500
)

// priced gives the fixture's machines their tariff.
func (e *env) priced() {
	e.t.Helper()
	ctx := context.Background()
	for _, m := range []struct {
		id   fablab.ID
		rate int64
		fee  int64
	}{{e.laser.ID, laserRate, noShowFee}, {e.printer.ID, printerRate, 0}} {
		if _, err := e.store.UpdateMachine(ctx, m.id, func(mm *fablab.Machine) error {
			mm.Prices, mm.NoShowFeeCents = map[string]int64{"student": m.rate}, m.fee
			return nil
		}); err != nil {
			e.t.Fatal(err)
		}
	}
}

// withBillingJobs registers the jobs `fabgate serve` adds to the lab's
// (cmd/fabgate billingJobs, and the no-show release of mailJobs without
// its mail: the store's MarkNoShows with the notifier's 24 h horizon).
func withBillingJobs(e *env) {
	invoices := func(ctx context.Context) error {
		_, err := lab.RunDueInvoices(ctx, e.store, e.clock.Now())
		return err
	}
	withJobs(
		jobs.Job{Name: "no_shows", Schedule: "0 * * * * *", Run: func(ctx context.Context) error {
			_, err := e.store.MarkNoShows(ctx, e.clock.Now(), 24*time.Hour)
			return err
		}},
		jobs.Job{Name: "billing", Schedule: "30 * * * * *", Run: func(ctx context.Context) error {
			_, err := lab.BillSessions(ctx, e.store)
			return err
		}},
		jobs.Job{Name: "invoices", Schedule: fmt.Sprintf("0 0 %d 1 * *", lab.InvoiceHour), Run: invoices, CatchUp: invoices},
	)(e)
}

// assertInvariants checks the invariants of DESIGN §2 over the whole store
// (bolt.Store.CheckInvariants: bookings, sessions, billing, ledger,
// invoices, indexes).
func assertInvariants(t *testing.T, st *bolt.Store) {
	t.Helper()
	if err := st.CheckInvariants(context.Background()); err != nil {
		t.Errorf("invariants of the store: %v", err)
	}
}

// machineOf returns the machine a fixture device drives.
func (e *env) machineOf(dev string) fablab.ID {
	switch dev {
	case devLaser:
		return e.laser.ID
	case devPrinter:
		return e.printer.ID
	case devResin:
		return e.resin.ID
	}
	e.t.Fatalf("no machine for device %s", dev)
	return 0
}

// settle waits until every command sent is acknowledged and the server has
// taken in each device's relay state as the device has it.
func (e *env) settle(devs ...*device) {
	e.t.Helper()
	e.eventually("every command acknowledged", func() bool { return e.lab.Engine.PendingCommands() == 0 })
	for _, d := range devs {
		relay, session := d.Relay()
		e.settleState(d.id, relay, session)
	}
}

// assertRelays checks, once settled, that the relays agree with the open
// sessions: a relay is on exactly for its machine's open (confirmed)
// session.
func (e *env) assertRelays(devs ...*device) {
	e.t.Helper()
	e.settle(devs...)
	on := map[string]bool{}
	for _, d := range devs {
		r, _ := d.Relay()
		on[d.id] = r == wire.RelayOn
	}
	if err := e.store.CheckRelays(context.Background(), on); err != nil {
		e.t.Errorf("relays: %v", err)
	}
	for _, d := range devs {
		relay, session := d.Relay()
		open, err := e.store.OpenSessionOn(context.Background(), e.machineOf(d.id))
		switch {
		case fablab.ErrorCode(err) == fablab.ENOTFOUND:
			if relay != wire.RelayOff {
				e.t.Errorf("%s: relay %s (session %q) without an open session", d.id, relay, session)
			}
		case err != nil:
			e.t.Fatal(err)
		case relay != wire.RelayOn || session != open.ID.String() || !open.Confirmed:
			e.t.Errorf("%s: relay %s (session %q), the open session %+v", d.id, relay, session, open)
		}
	}
}

// wantSession checks a session's end: open (reason ""), or ended at ended
// for reason.
func (e *env) wantSession(id fablab.ID, reason fablab.EndReason, ended time.Time) fablab.Session {
	e.t.Helper()
	s := e.session(id)
	switch {
	case reason == "" && !s.Open():
		e.t.Errorf("session %s ended (%s at %s), want it open", id, s.EndReason, s.Ended)
	case reason != "" && (s.Open() || s.EndReason != reason || !s.Ended.Equal(ended)):
		e.t.Errorf("session %s: ended %v (%s), want %s at %s", id, s.Ended, s.EndReason, reason, ended)
	}
	return s
}

// billAll runs the billing as its job does, then again: the second run
// must charge nothing. It returns how many the first charged.
func (e *env) billAll() int {
	e.t.Helper()
	ctx := context.Background()
	n, err := lab.BillSessions(ctx, e.store)
	if err != nil {
		e.t.Fatalf("billing: %v", err)
	}
	if again, err := lab.BillSessions(ctx, e.store); err != nil || again != 0 {
		e.t.Errorf("billing again charged %d sessions (%v), want none", again, err)
	}
	if left, err := e.store.UnbilledSessions(ctx); err != nil || left != 0 {
		e.t.Errorf("%d ended sessions unbilled after billing (%v)", left, err)
	}
	return n
}

// wantCharge checks that session id is charged exactly once, for minutes
// and amount cents (free: the reason it costs nothing, or "").
func (e *env) wantCharge(id fablab.ID, minutes, amount int64, free string) {
	e.t.Helper()
	cs, err := e.store.Charges(context.Background(), bolt.ChargeFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	var got []fablab.Charge
	for _, c := range cs {
		if c.Kind == fablab.ChargeSession && c.SessionID == id {
			got = append(got, c)
		}
	}
	if len(got) != 1 {
		e.t.Errorf("session %s: %d charges, want 1: %+v", id, len(got), got)
		return
	}
	if c := got[0]; c.Minutes != minutes || c.AmountCents != amount || c.Free != free {
		e.t.Errorf("session %s charged %d min, %d¢, free %q; want %d min, %d¢, free %q", id, c.Minutes, c.AmountCents, c.Free, minutes, amount, free)
	}
}

// pass moves the clock by d in the steps of the 15-second sweep, as the
// schedule runs it: at each step the devices alive send a heartbeat (as
// their own 30-second ones keep them alive) and the sweep runs.
func (e *env) pass(d time.Duration, alive ...*device) {
	e.t.Helper()
	for d > 0 {
		step := min(d, 15*time.Second)
		e.clock.Advance(step)
		d -= step
		for _, a := range alive {
			a.heartbeat()
		}
		e.lab.Engine.Sweep(context.Background())
	}
}

// passUntil is pass up to t.
func (e *env) passUntil(t time.Time, alive ...*device) {
	e.t.Helper()
	e.pass(t.Sub(e.clock.Now()), alive...)
}

// waitStates reads live events until the server has handled a relay state
// of each device in want (relay and session as given).
func (e *env) waitStates(ch <-chan events.Event, want map[string][2]string) {
	e.t.Helper()
	seen := map[string]bool{}
	timeout := time.After(waitLong)
	for len(seen) < len(want) {
		select {
		case ev := <-ch:
			d, ok := ev.Data.(map[string]any)
			if !ok || ev.Type != "device" || d["relay"] == nil {
				continue
			}
			dev, _ := d["device_id"].(string)
			if w, ok := want[dev]; ok && d["relay"] == w[0] && d["session_id"] == w[1] {
				seen[dev] = true
			}
		case <-timeout:
			e.t.Fatalf("the server took in the states of %v, want %v", seen, want)
		}
	}
	for dev := range want {
		e.barrier(dev, wire.KindState)
	}
}

// restartBroker starts the broker again on its address, and lets the
// devices in once the server has connected and subscribed (see
// brokerRestart: mochi's retained-message race).
func (e *env) restartBroker() {
	e.t.Helper()
	e.startBroker()
	e.eventually("the server to reconnect", e.lab.Client.Connected)
	if e.kind == embedded {
		obs := &inbox{}
		c := e.observer(obs, e.topics.ServerStatus())
		defer c.Close(nil)
		e.eventually("the server's birth", func() bool {
			for _, p := range obs.on(e.topics.ServerStatus()) {
				if strings.Contains(string(p), `"online":true`) {
					return true
				}
			}
			return false
		})
	}
	e.releaseDevices()
}

// brokerDown kills the broker for down (of the fake clock) while three
// sessions run: ada's booking on the laser, bob's walk-in on the printer,
// sam's staff use of the resin printer in maintenance. During the outage
// staff book the laser, bob's tap-out on the printer is decided (its lock
// cannot be published: it waits for its retry) and the 15-second sweep
// runs. The resin's last sign of life came 45 s before the outage: down
// for 60 s it is silent longer than the 90 s timeout, and its session is
// closed at its last sign of life (DESIGN §3); down for 5 s it is not.
// After the restart the server and the devices reconnect; the relays are
// brought in line with the sessions (the printer locked by the retried
// lock, the resin, whose session was closed, locked by the reconciliation
// of its state); taps are decided as before; each session is billed once.
func brokerDown(down time.Duration) func(e *env) {
	return func(e *env) {
		ctx := context.Background()
		laser, printer, resin := e.device(devLaser), e.device(devPrinter), e.device(devResin)
		e.book(e.ada, e.laser, t0, t0.Add(time.Hour))
		_, sa := e.grant(laser, e.ada)
		_, sb := e.grant(printer, e.bob)
		_, ss := e.grant(resin, e.sam)
		if !sa.Until.Equal(t0.Add(time.Hour)) || !sb.Until.Equal(t0.Add(2*time.Hour)) || !ss.Until.Equal(t0.Add(2*time.Hour)) {
			e.t.Fatalf("sessions until %s, %s, %s", sa.Until, sb.Until, ss.Until)
		}

		e.pass(5*time.Minute-45*time.Second, laser, printer, resin)
		resinSeen := e.clock.Now()
		e.pass(45*time.Second, laser, printer)

		e.stopBroker()
		e.eventually("the server to notice the broker is gone", func() bool { return !e.lab.Client.Connected() })
		e.holdDevices()

		e.pass(down / 2)
		later := e.book(e.sam, e.laser, t0.Add(100*time.Minute), t0.Add(130*time.Minute))
		out := e.clock.Now()
		if d, err := e.lab.Engine.Tap(ctx, devPrinter, uidBob); err != nil || d.Outcome != access.TapOut {
			e.t.Fatalf("bob's tap-out during the outage: %+v, %v", d, err)
		}
		e.wantSession(sb.ID, fablab.EndTapOut, out)
		e.pass(down - down/2)
		e.lab.Engine.RetryDue(ctx) // cannot publish: not a try
		resinTimedOut := down+45*time.Second > 90*time.Second
		if resinTimedOut {
			e.wantSession(ss.ID, fablab.EndDeviceOffline, resinSeen)
		} else {
			e.wantSession(ss.ID, "", time.Time{})
		}
		e.wantSession(sa.ID, "", time.Time{})

		states := e.hub()
		e.restartBroker()
		// Each device publishes its relay as it was: the printer's still on
		// for bob (its lock not received), the resin's for sam.
		e.waitStates(states, map[string][2]string{
			devLaser: {wire.RelayOn, sa.ID.String()}, devPrinter: {wire.RelayOn, sb.ID.String()}, devResin: {wire.RelayOn, ss.ID.String()},
		})
		if resinTimedOut {
			// Relay on without an open session: locked.
			if l := resin.expect(wire.OpLock); l.Reason != "no_session" {
				e.t.Errorf("resin lock %+v", l)
			}
			resin.waitRelay(wire.RelayOff, "")
		}
		// The tap-out's lock, sent again with its cmd_id: not a second one.
		e.clock.Advance(3 * time.Second)
		e.lab.Engine.RetryDue(ctx)
		if l := printer.expect(wire.OpLock); l.SessionID != sb.ID.String() || l.Reason != fablab.EndTapOut {
			e.t.Errorf("printer lock %+v, want bob's tap-out", l)
		}
		printer.waitRelay(wire.RelayOff, "")
		for _, d := range []*device{laser, printer, resin} {
			d.heartbeat()
		}
		laser.quiet()
		printer.quiet()
		if !resinTimedOut {
			resin.quiet()
		}
		e.assertRelays(laser, printer, resin)
		if s := e.wantSession(sa.ID, "", time.Time{}); !s.Confirmed || !s.Until.Equal(t0.Add(time.Hour)) {
			e.t.Errorf("ada's session after the outage: %+v", s)
		}

		// Taps after the restart are decided as before.
		e.clock.Set(t0.Add(20 * time.Minute))
		laser.heartbeat()
		laser.tap(uidBob)
		laser.expectDeny(wire.ReasonInUse)
		laser.tap(uidUntrained)
		laser.expectDeny(wire.ReasonTrainingRequired)
		laser.tap(uidAda)
		if l := laser.expect(wire.OpLock); l.SessionID != sa.ID.String() || l.Reason != fablab.EndTapOut {
			e.t.Errorf("ada's tap-out: %+v", l)
		}
		e.waitEnded(sa.ID, fablab.EndTapOut)
		laser.waitRelay(wire.RelayOff, "")
		e.settleState(devLaser, wire.RelayOff, "")
		// Ada's booking still holds the laser.
		laser.tap(uidBob)
		laser.expectDeny(wire.ReasonBookedByOther)
		if !resinTimedOut {
			e.clock.Set(t0.Add(22 * time.Minute))
			resin.heartbeat()
			resin.tap(uidSam)
			resin.expect(wire.OpLock)
			e.waitEnded(ss.ID, fablab.EndTapOut)
			resin.waitRelay(wire.RelayOff, "")
		}
		// Once it is over, bob walks in until the booking made during the
		// outage.
		e.clock.Set(t0.Add(time.Hour))
		laser.heartbeat()
		c, sb2 := e.grant(laser, e.bob)
		if !sb2.Until.Equal(later.Start) || c.Until != later.Start.Unix() {
			e.t.Errorf("bob's walk-in after the restart: until %s, want the booking made during the outage (%s)", sb2.Until, later.Start)
		}
		e.assertRelays(laser, printer, resin)

		if n := e.billAll(); n != 3 {
			e.t.Errorf("billed %d sessions, want 3", n)
		}
		e.wantCharge(sa.ID, 20, 20*laserRate/60, "")
		e.wantCharge(sb.ID, 6, 6*printerRate/60, "") // 5 min and a few seconds, started minutes
		if resinTimedOut {
			e.wantCharge(ss.ID, 5, 0, fablab.FreeStaff) // up to its last sign of life
		} else {
			e.wantCharge(ss.ID, 22, 0, fablab.FreeStaff)
		}
		if open := e.openSessions(); len(open) != 1 || open[0].ID != sb2.ID {
			e.t.Errorf("open sessions %+v, want bob's on the laser", open)
		}
	}
}

// serverKilled stops the server while three sessions run, without ending
// any, and starts it again over the same data file (in process, the nearest
// to a kill: lab.Close stops the schedule, the client and the embedded
// broker, and touches no session; the store is closed and opened again).
// Just before, the server had ended sam's session on the resin printer in
// its file but died before its lock went out; while it is down the printer
// restarts (relay off) under bob's session. The restarted server
// reconciles (DESIGN §3): the resin's relay, on without an open session, is
// locked; bob's session, open with its relay off, is closed when the relay
// went off; ada's session on the laser, whose relay runs it, is kept and
// not locked.
func serverKilled(e *env) {
	ctx := context.Background()
	laser, printer, resin := e.device(devLaser), e.device(devPrinter), e.device(devResin)
	e.book(e.ada, e.laser, t0, t0.Add(time.Hour))
	_, sa := e.grant(laser, e.ada)
	_, sb := e.grant(printer, e.bob)
	_, ss := e.grant(resin, e.sam)

	e.clock.Set(t0.Add(10 * time.Minute))
	if _, err := e.store.CloseSession(ctx, ss.ID, e.clock.Now(), fablab.EndStaff, e.sam.ID, nil, nil); err != nil {
		e.t.Fatal(err)
	}
	e.closeLab()
	e.closeStore()

	e.clock.Set(t0.Add(12 * time.Minute))
	rebooted := e.clock.Now()
	printer.Reboot(ctx) // on Mosquitto it is heard; on the embedded broker, gone with the server, at the reconnection

	e.clock.Set(t0.Add(15 * time.Minute))
	e.openStore()
	e.startLab()

	// Relay on without an open session: locked.
	if l := resin.expect(wire.OpLock); l.Reason != "no_session" {
		e.t.Errorf("resin lock %+v", l)
	}
	resin.waitRelay(wire.RelayOff, "")
	// Open session, relay off: closed.
	e.waitEnded(sb.ID, fablab.EndRelayOff)
	// Relay on for the open session: kept.
	e.settleState(devLaser, wire.RelayOn, sa.ID.String())
	e.wantSession(sb.ID, fablab.EndRelayOff, rebooted)
	e.wantSession(ss.ID, fablab.EndStaff, t0.Add(10*time.Minute))
	for _, d := range []*device{laser, printer, resin} {
		d.heartbeat()
	}
	laser.quiet()
	printer.quiet()
	if s := e.wantSession(sa.ID, "", time.Time{}); !s.Confirmed {
		e.t.Errorf("ada's session after the restart: %+v", s)
	}
	e.assertRelays(laser, printer, resin)

	// The restarted server decides as before: ada taps out, bob starts
	// again on the printer.
	e.clock.Set(t0.Add(20 * time.Minute))
	laser.heartbeat()
	laser.tap(uidAda)
	if l := laser.expect(wire.OpLock); l.SessionID != sa.ID.String() || l.Reason != fablab.EndTapOut {
		e.t.Errorf("ada's tap-out: %+v", l)
	}
	e.waitEnded(sa.ID, fablab.EndTapOut)
	laser.waitRelay(wire.RelayOff, "")
	printer.heartbeat()
	_, sb2 := e.grant(printer, e.bob)
	e.assertRelays(laser, printer, resin)

	if n := e.billAll(); n != 3 {
		e.t.Errorf("billed %d sessions, want 3", n)
	}
	e.wantCharge(sa.ID, 20, 20*laserRate/60, "")
	e.wantCharge(sb.ID, 12, 12*printerRate/60, "")
	e.wantCharge(ss.ID, 10, 0, fablab.FreeStaff)
	if open := e.openSessions(); len(open) != 1 || open[0].ID != sb2.ID {
		e.t.Errorf("open sessions %+v, want bob's new one", open)
	}
}

// flapper drops a device's connection and connects it again, waiting each
// time until the server has taken the change in.
type flapper struct {
	e  *env
	d  *device
	ch <-chan events.Event
}

func (e *env) flapper(d *device) *flapper { return &flapper{e: e, d: d, ch: e.hub()} }

// down drops the connection: the server hears the device go offline.
func (f *flapper) down() {
	f.e.t.Helper()
	f.d.Disconnect()
	f.e.waitEvent(f.ch, "device", func(d map[string]any) bool { return d["device_id"] == f.d.id && d["online"] == false })
}

// up connects the device again (the same boot) and waits until the server
// has taken in its relay state.
func (f *flapper) up() {
	f.e.t.Helper()
	if err := f.d.Reconnect(context.Background()); err != nil {
		f.e.t.Fatalf("%s: reconnect: %v", f.d.id, err)
	}
	f.e.raws[f.d.id] = f.d.Client()
	relay, session := f.d.Relay()
	f.e.waitEvent(f.ch, "device", func(d map[string]any) bool {
		return d["device_id"] == f.d.id && d["relay"] == relay && d["session_id"] == session
	})
	f.e.barrier(f.d.id, wire.KindState)
}

// deviceFlapping: the laser's connection drops and comes back again and
// again — while ada's session runs, across her tap-out (the lock lost in a
// drop, the tap itself delivered again after it), while bob's session
// runs — with taps between the drops and the sweep running while it is
// away. No machine is on without an open session, no tap is decided twice,
// no session opens twice; a drop shorter than the 90 s timeout changes no
// session, a longer one closes bob's at its last sign of life, and the
// relay, on for a closed session when the device is back, is locked.
func deviceFlapping(e *env) {
	ctx := context.Background()
	laser := e.device(devLaser)
	f := e.flapper(laser)
	_, sa := e.grant(laser, e.ada)
	flaps := func(n int, uid, want string, s fablab.Session) {
		e.t.Helper()
		for i := range n {
			f.down()
			// Away for less than the timeout: the sweep keeps the session.
			e.pass(time.Duration(20+5*i) * time.Second)
			f.up()
			laser.tap(uid)
			laser.expectDeny(want)
			laser.heartbeat()
			e.wantSession(s.ID, "", time.Time{})
			if r, sid := laser.Relay(); r != wire.RelayOn || sid != s.ID.String() {
				e.t.Fatalf("flap %d: relay %s %q, want on for session %s", i, r, sid, s.ID)
			}
		}
		e.assertRelays(laser)
	}
	flaps(8, uidBob, wire.ReasonInUse, sa)

	// Ada's tap-out: its lock is lost in a drop (the device did not apply
	// it), and the tap is delivered again after it (its PUBACK was lost).
	e.passUntil(t0.Add(10*time.Minute), laser)
	laser.SetNoAck(true)
	out := wire.Tap{MsgID: "laser-1-flap-out", TS: e.clock.Now().Unix(), UID: uidAda}
	laser.publishTap(out)
	lock := laser.expect(wire.OpLock)
	e.waitEnded(sa.ID, fablab.EndTapOut)
	f.down()
	laser.SetNoAck(false)
	e.clock.Advance(2 * time.Second)
	f.up()
	replays := e.lab.Engine.Replays.Load()
	laser.publishTap(out)
	e.eventually("the tap delivered again to be recognised", func() bool { return e.lab.Engine.Replays.Load() == replays+1 })
	e.clock.Advance(2 * time.Second)
	e.lab.Engine.RetryDue(ctx)
	if again := laser.expect(wire.OpLock); again.CmdID != lock.CmdID || again.SessionID != sa.ID.String() {
		e.t.Fatalf("lock sent again %+v, want %+v", again, lock)
	}
	laser.waitRelay(wire.RelayOff, "")
	laser.quiet()
	e.assertRelays(laser)
	e.wantSession(sa.ID, fablab.EndTapOut, t0.Add(10*time.Minute))

	e.passUntil(t0.Add(11*time.Minute), laser)
	_, sb := e.grant(laser, e.bob)
	flaps(4, uidAda, wire.ReasonInUse, sb)

	// Away longer than the timeout: bob's session ends at the last sign of
	// life; back, the relay (still on for it) is locked.
	e.passUntil(t0.Add(20*time.Minute), laser)
	seen := e.clock.Now()
	f.down()
	e.pass(90 * time.Second)
	e.wantSession(sb.ID, "", time.Time{})
	e.pass(time.Second)
	e.wantSession(sb.ID, fablab.EndDeviceOffline, seen)
	f.up()
	if l := laser.expect(wire.OpLock); l.Reason != "no_session" {
		e.t.Errorf("lock of the relay left on: %+v", l)
	}
	laser.waitRelay(wire.RelayOff, "")
	laser.heartbeat()
	laser.quiet()
	e.assertRelays(laser)

	// A tap after it all opens one session.
	_, sa2 := e.grant(laser, e.ada)
	e.assertRelays(laser)
	ss := e.allSessions()
	if len(ss) != 3 || ss[0].ID != sa.ID || ss[1].ID != sb.ID || ss[2].ID != sa2.ID {
		e.t.Errorf("sessions %+v, want ada's, bob's and ada's again", ss)
	}
	if g := e.lab.Engine.Granted.Load(); g != 3 {
		e.t.Errorf("Granted = %d, want 3", g)
	}
	if n := e.billAll(); n != 2 {
		e.t.Errorf("billed %d sessions, want 2", n)
	}
	e.wantCharge(sa.ID, 10, 10*laserRate/60, "")
	e.wantCharge(sb.ID, 9, 9*laserRate/60, "")
}

// clockJump: the clock moves an hour forward at once (an NTP step, a host
// resumed) at 14:10 with ada's session on the laser until 14:30, bob's
// walk-in on the printer until 16:00, bob's laser booking from 14:30 never
// claimed, sam's session ended and not billed yet. The jobs then run as
// their schedule does after the jump, the 15-second sweep first, before
// any device's next heartbeat: ada's session, past its until, is locked
// and closed at its until; bob's, not over, keeps running (the server did
// not hear the devices for an hour because it did not listen, not because
// they were silent); bob's booking is released as a no-show with its fee;
// the billing catches up once. Then the clock jumps over the monthly
// invoice time: March's invoices are issued once.
func clockJump(e *env) {
	ctx := context.Background()
	run := func(job string) {
		e.t.Helper()
		if err := e.lab.Jobs.RunNow(ctx, job); err != nil {
			e.t.Fatalf("job %s: %v", job, err)
		}
	}
	run("invoices") // the catch-up at the first start: invoicing starts now
	laser, printer, resin := e.device(devLaser), e.device(devPrinter), e.device(devResin)
	e.book(e.ada, e.laser, t0, t0.Add(30*time.Minute))
	bb := e.book(e.bob, e.laser, t0.Add(30*time.Minute), t0.Add(90*time.Minute))
	later := e.book(e.ada, e.laser, t0.Add(90*time.Minute), t0.Add(2*time.Hour))
	_, sa := e.grant(laser, e.ada)
	_, sb := e.grant(printer, e.bob)
	_, ss := e.grant(resin, e.sam)
	if !sa.Until.Equal(t0.Add(30*time.Minute)) || !sb.Until.Equal(t0.Add(2*time.Hour)) {
		e.t.Fatalf("sessions until %s and %s", sa.Until, sb.Until)
	}
	e.clock.Set(t0.Add(9*time.Minute + 50*time.Second))
	resin.heartbeat()
	resin.tap(uidSam)
	resin.expect(wire.OpLock)
	e.waitEnded(ss.ID, fablab.EndTapOut)
	resin.waitRelay(wire.RelayOff, "")
	e.clock.Set(t0.Add(10 * time.Minute))
	for _, d := range []*device{laser, printer, resin} {
		d.heartbeat()
	}
	run("sessions_sweep")
	run("no_shows")
	e.settle(laser, printer, resin)

	e.clock.Advance(time.Hour)
	run("sessions_sweep")
	if l := laser.expect(wire.OpLock); l.SessionID != sa.ID.String() || l.Reason != fablab.EndBookingEnd {
		e.t.Errorf("laser lock %+v, want the end of ada's session", l)
	}
	e.wantSession(sa.ID, fablab.EndBookingEnd, sa.Until)
	e.wantSession(sb.ID, "", time.Time{})
	laser.waitRelay(wire.RelayOff, "")
	run("no_shows")
	run("billing")
	for _, job := range []string{"sessions_sweep", "no_shows", "billing"} {
		run(job) // again: nothing more
	}
	for _, d := range []*device{laser, printer, resin} {
		d.heartbeat()
	}
	printer.quiet() // not warned: its end is 50 minutes away
	laser.quiet()
	e.assertRelays(laser, printer, resin)
	if b, err := e.store.Booking(ctx, bb.ID); err != nil || b.State != fablab.BookingNoShow {
		e.t.Errorf("bob's unclaimed booking: %+v (%v), want no_show", b, err)
	}
	if b, err := e.store.Booking(ctx, later.ID); err != nil || b.State != fablab.BookingConfirmed {
		e.t.Errorf("ada's later booking: %+v (%v), want confirmed", b, err)
	}
	if left, err := e.store.UnbilledSessions(ctx); err != nil || left != 0 {
		e.t.Errorf("%d sessions left unbilled after the jump (%v)", left, err)
	}
	e.wantCharge(sa.ID, 30, 30*laserRate/60, "")
	e.wantCharge(ss.ID, 10, 0, fablab.FreeStaff)
	e.wantNoShowFees(map[fablab.ID]int64{bb.ID: noShowFee})

	// Bob taps out at 15:20.
	e.clock.Set(t0.Add(80 * time.Minute))
	printer.heartbeat()
	printer.tap(uidBob)
	printer.expect(wire.OpLock)
	e.waitEnded(sb.ID, fablab.EndTapOut)
	printer.waitRelay(wire.RelayOff, "")
	run("billing")
	e.wantCharge(sb.ID, 80, 80*printerRate/60, "")

	// The night of 31 March: the clock jumps from 01:30 to 02:30 on 1 April,
	// over the monthly invoice time.
	e.clock.Set(time.Date(2026, time.April, 1, 1, 30, 0, 0, paris))
	run("invoices")
	if invs, err := e.store.Invoices(ctx, bolt.InvoiceFilter{}); err != nil || len(invs) != 0 {
		e.t.Fatalf("invoices before the monthly time: %+v (%v)", invs, err)
	}
	e.clock.Advance(time.Hour)
	run("invoices")
	run("invoices")
	invs, err := e.store.Invoices(ctx, bolt.InvoiceFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	want := map[fablab.ID]int64{e.ada.ID: 30 * laserRate / 60, e.bob.ID: noShowFee + 80*printerRate/60}
	if len(invs) != len(want) {
		e.t.Fatalf("%d invoices, want %d: %+v", len(invs), len(want), invs)
	}
	for i, inv := range invs {
		if inv.Period != "2026-03" || inv.Number != fmt.Sprintf("FG-2026-%06d", i+1) || inv.Payer.Kind != fablab.PayerIsMember ||
			inv.TotalExclCents != want[inv.Payer.ID] {
			e.t.Errorf("invoice %+v, want March's of %s for %d¢", inv, inv.Payer, want[inv.Payer.ID])
		}
	}
}

// wantNoShowFees checks that the no-show fees in the ledger are exactly
// fees (booking → amount), each charged once.
func (e *env) wantNoShowFees(fees map[fablab.ID]int64) {
	e.t.Helper()
	cs, err := e.store.Charges(context.Background(), bolt.ChargeFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	got := map[fablab.ID][]int64{}
	for _, c := range cs {
		if c.Kind == fablab.ChargeNoShow {
			got[c.BookingID] = append(got[c.BookingID], c.AmountCents)
		}
	}
	if len(got) != len(fees) {
		e.t.Errorf("no-show fees %v, want %v", got, fees)
	}
	for b, fee := range fees {
		if len(got[b]) != 1 || got[b][0] != fee {
			e.t.Errorf("no-show fees of booking %s: %v, want one of %d¢", b, got[b], fee)
		}
	}
}
