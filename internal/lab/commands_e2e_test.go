package lab_test

import (
	"context"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/wire"
)

// TestCommandsNotAppliedEndToEnd: a lock the device did not apply is sent
// again as a new command, and an unlock that arrives after its session ended
// is followed by a lock: no relay stays on without a session.
func TestCommandsNotAppliedEndToEnd(t *testing.T) {
	for _, kind := range []brokerKind{embedded, mosquitto} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, kind)
			d := e.device(devPrinter)
			ctx := context.Background()

			t.Run("stale lock is sent again with a new seq", func(t *testing.T) {
				_, s := e.grant(d, e.ada)
				d.SetNoAck(true)
				if _, err := e.lab.Engine.EndSession(ctx, s.ID, fablab.EndStaff, e.sam.ID); err != nil {
					t.Fatal(err)
				}
				lock := d.expect(wire.OpLock)
				ack, _ := wire.Encode(&wire.Ack{CmdID: lock.CmdID, Seq: lock.Seq, Result: wire.ResultStale, Relay: wire.RelayOn})
				e.publishAs(devPrinter, e.topics.Device(devPrinter, wire.KindAck), ack)
				again := d.expect(wire.OpLock)
				if again.Seq <= lock.Seq || again.CmdID == lock.CmdID {
					t.Fatalf("lock sent again as %+v after %+v: want a new command with a higher seq", again, lock)
				}
				d.SetNoAck(false)
			})

			t.Run("a session ended before its unlock was acknowledged is locked after it", func(t *testing.T) {
				d.SetNoAck(true)
				d.tap(e.bob.uid)
				unlock := d.expect(wire.OpUnlock)
				id := e.sessionID(unlock)
				if _, err := e.lab.Engine.EndSession(ctx, id, fablab.EndStaff, e.sam.ID); err != nil {
					t.Fatal(err)
				}
				// The lock follows the unlock in seq order: a device applying
				// both, in any order of arrival, ends with its relay off.
				if lock := d.expect(wire.OpLock); lock.Seq <= unlock.Seq {
					t.Fatalf("lock %+v sent with a seq below the unlock's %d", lock, unlock.Seq)
				}
				// The unlock's ack arriving late changes nothing.
				ack, _ := wire.Encode(&wire.Ack{CmdID: unlock.CmdID, Seq: unlock.Seq, Result: wire.ResultOK, Relay: wire.RelayOn})
				e.publishAs(devPrinter, e.topics.Device(devPrinter, wire.KindAck), ack)
				d.SetNoAck(false)
				d.quiet()
				if s := e.session(id); s.Open() || s.Confirmed {
					t.Fatalf("session after the late ack: %+v", s)
				}
			})
		})
	}
}

// A lock retried after the next member's unlock was applied is answered
// stale with the relay on; it must not be sent again as a new lock that
// would cut the next member's session.
func TestLateLockDoesNotCutTheNextSession(t *testing.T) {
	e := newEnv(t, embedded)
	d := e.device(devPrinter)
	ctx := context.Background()
	_, s1 := e.grant(d, e.ada)
	d.SetNoAck(true) // the lock arrives but its ack does not come back
	if _, err := e.lab.Engine.EndSession(ctx, s1.ID, fablab.EndTapOut, e.ada.ID); err != nil {
		t.Fatal(err)
	}
	l := d.expect(wire.OpLock)
	d.SetNoAck(false)
	_, s2 := e.grant(d, e.bob)
	e.clock.Advance(3 * time.Second)
	e.lab.Engine.RetryDue(ctx)
	if c := d.expect(wire.OpLock); c.CmdID != l.CmdID {
		t.Fatalf("want the lock resent as it was (%+v), got %+v", l, c)
	}
	d.quiet() // no new lock: the next command is the probe's deny
	if r, sid := d.Relay(); r != wire.RelayOn || sid != s2.ID.String() {
		t.Fatalf("relay %s for %q, want on for bob's session %s", r, sid, s2.ID)
	}
	if s := e.session(s2.ID); !s.Open() {
		t.Fatalf("bob's session ended: %+v", s)
	}
}
