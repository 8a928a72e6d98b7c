package lab_test

import (
	"context"
	"testing"

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
