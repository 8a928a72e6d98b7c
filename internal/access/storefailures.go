package access

import (
	"context"
	"time"

	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/wire"
)

// Failures of the store are told apart from "not found", logged, and the
// reader is answered all the same.

// openSessionOfDevice returns the open session of the machine device dev
// drives: nil when the device drives no machine or the machine has none
// (ENOTFOUND). Any other error (the store failing) is returned, never taken
// for "no session": a caller that did would lock a machine in use, or leave
// a session open, on a read error.
func (e *Engine) openSessionOfDevice(ctx context.Context, dev string) (*fablab.Session, error) {
	m, err := e.cfg.Store.MachineOfDevice(ctx, dev)
	if fablab.ErrorCode(err) == fablab.ENOTFOUND {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s, err := e.cfg.Store.OpenSessionOn(ctx, m.ID)
	if fablab.ErrorCode(err) == fablab.ENOTFOUND {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// serverError answers a tap the server could not decide or record (its
// storage failed) with deny server_error, and logs why: the reader is
// always answered. The tap is not recorded as handled, so the device may
// send it again. (The deny itself needs a command seq: with none reserved
// in memory and the store failing, it cannot be sent, and that is logged.)
func (e *Engine) serverError(ctx context.Context, dev, lang, msgID string, now time.Time, what string, err error) {
	e.cfg.Log.Error("tap answered server_error: "+what, "device", dev, "msg_id", msgID, "err", err)
	e.denyTap(ctx, dev, lang, wire.ReasonServerError, "", nil, msgID, fablab.AuditEvent{At: now, Kind: fablab.AuditTap, Action: "denied", DeviceID: dev,
		Reason: wire.ReasonServerError, Detail: map[string]any{"msg_id": msgID}})
}
