package access

import (
	"context"

	"github.com/fabgate/fabgate/internal/fablab"
)

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
