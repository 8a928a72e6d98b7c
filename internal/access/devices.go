package access

import (
	"context"
	"strings"
	"time"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/wire"
)

// seen notes a sign of life from a device.
// The returned state is the engine's: change it only under e.mu.
func (e *Engine) seen(dev string, now time.Time) *fablab.DeviceState {
	e.mu.Lock()
	st := e.devices[dev]
	if st == nil {
		st = &fablab.DeviceState{}
		e.devices[dev] = st
	}
	t := now.UTC()
	st.LastSeen = &t
	cameOnline := !st.Online
	st.Online = true
	e.mu.Unlock()
	if cameOnline {
		e.emit("device", map[string]any{"device_id": dev, "online": true})
	}
	return st
}

// DeviceStates returns a copy of what is known of every device that has
// spoken since the server started.
func (e *Engine) DeviceStates() map[string]fablab.DeviceState {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]fablab.DeviceState, len(e.devices))
	for k, v := range e.devices {
		out[k] = *v
	}
	return out
}

// HandleStatus takes a device's birth or last-will message. A new boot_id
// means the device restarted with its relay off: its machine's open session
// is over, as its relay state says (the device may also run a session it
// granted alone before it connected, whose replay the server may already
// have taken).
func (e *Engine) HandleStatus(ctx context.Context, dev string, payload []byte) {
	st, err := wire.DecodeStatus(payload)
	if err != nil {
		e.drop("status", dev, err)
		return
	}
	now := e.cfg.Now()
	if !st.Online {
		e.mu.Lock()
		if d := e.devices[dev]; d != nil {
			d.Online = false
		}
		e.mu.Unlock()
		e.emit("device", map[string]any{"device_id": dev, "online": false})
		return
	}
	d := e.seen(dev, now)
	e.mu.Lock()
	rebooted := d.BootID != "" && st.BootID != "" && d.BootID != st.BootID
	d.BootID, d.FW = st.BootID, st.FW
	rep := e.reportsOf(dev)
	relay, sessionID, since := d.Relay, d.SessionID, rep.state.Since
	if rebooted {
		// A restarted device counts seq afresh.
		rep.state.Seq, rep.applied = 0, 0
	}
	e.mu.Unlock()
	if !rebooted {
		return
	}
	// No lock: the relay came up off (protocol §9), and a lock could cut a
	// session the device granted alone before it connected.
	open, err := e.openSessionOfDevice(ctx, dev)
	if err != nil {
		e.cfg.Log.Error("device restarted: its machine's session not checked", "device", dev, "err", err)
		return
	}
	if open == nil {
		return
	}
	if !open.Offline {
		e.closeOnDevice(ctx, dev, open.ID, now, fablab.EndRelayOff, "device restarted")
		return
	}
	// A session the device granted alone may be one of this boot, adopted
	// from its replay: it is judged by the relay's state and its since (the
	// seqs of the previous boot say nothing of this one), from the state
	// known now (the new boot's, if it was handled first) and the next.
	e.mu.Lock()
	delete(e.unlockSeq, open.ID)
	e.mu.Unlock()
	if relay != "" {
		e.reconcile(ctx, dev, relay, sessionID, 0, since)
	}
}

// HandleHeartbeat takes a device's periodic heartbeat.
func (e *Engine) HandleHeartbeat(ctx context.Context, dev string, payload []byte) {
	hb, err := wire.DecodeHeartbeat(payload)
	if err != nil {
		e.drop("hb", dev, err)
		return
	}
	d := e.seen(dev, e.cfg.Now())
	e.mu.Lock()
	if r := e.reports[dev]; r == nil || !r.hasState {
		// A heartbeat carries no seq: once a state has been handled, the
		// relay is known from states and acks, which a heartbeat handled
		// after them (published before) must not overwrite.
		if hb.Relay != "" {
			d.Relay = hb.Relay
		}
		d.SessionID = hb.SessionID
	}
	d.PowerW = hb.PowerW
	e.mu.Unlock()
}

// HandleState reconciles a device's reported relay state with the open
// sessions: a relay on without a session is switched off; a session whose
// relay is off (and is not waiting for its unlock) is closed.
func (e *Engine) HandleState(ctx context.Context, dev string, payload []byte) {
	st, err := wire.DecodeState(payload)
	if err != nil {
		e.drop("state", dev, err)
		return
	}
	now := e.cfg.Now()
	d := e.seen(dev, now)
	e.mu.Lock()
	rep := e.reportsOf(dev)
	if st.Seq != 0 && rep.hasState && (st.Seq < rep.state.Seq || st.Seq == rep.state.Seq && olderState(st, rep.state)) { // seq 0: a device that restarted counts afresh
		// Older than a state already handled (messages may be handed over
		// out of order): not news.
		e.mu.Unlock()
		return
	}
	rep.state, rep.hasState = st, true
	if st.Seq == 0 || st.Seq >= rep.applied {
		// Not older than the last ack handled: the relay as it is now.
		d.Relay, d.PowerW, d.SessionID = st.Relay, st.PowerW, st.SessionID
	}
	e.mu.Unlock()
	e.emit("device", map[string]any{"device_id": dev, "relay": st.Relay, "session_id": st.SessionID})
	if st.Seq != 0 && e.superseded(dev, st.Seq) {
		// A lock or unlock sent since settles the relay: its ack tells,
		// and the state is looked at again then (relook). A relay "on" for
		// the session a tap-out just ended gets no lock of its own.
		return
	}
	e.reconcile(ctx, dev, st.Relay, st.SessionID, st.Seq, st.Since)
}

// olderState tells whether st, of the same seq as cur (the last command
// applied was the same), is older than cur: its relay changed earlier
// (since), or in the same second and st is "on" where cur is "off". An
// equal seq does not order two states (the relay goes off by itself at a
// session's end, or by its button, without a command), and states may be
// handed over swapped: an "on" handled after the "off" that followed it
// would leave the session open past its relay. On a tie "off" wins: a
// relay taken for off when it runs is locked or ended by its next state at
// worst, never billed for time it did not run.
func olderState(st, cur wire.State) bool {
	if st.Since != cur.Since {
		return st.Since < cur.Since
	}
	return st.Relay == wire.RelayOn && cur.Relay == wire.RelayOff
}

// reconcile compares one device's relay with its machine's open session.
//
// MQTT handlers may see a device's messages out of order, so a "relay off"
// closes a session only when it is from a later second than the session's
// start (since): an older one, delivered late, is not taken for news. A
// late "relay on" only costs a redundant lock.
func (e *Engine) reconcile(ctx context.Context, dev, relay, sessionID string, seq uint64, since int64) {
	open, err := e.openSessionOfDevice(ctx, dev)
	if err != nil {
		// Not knowing the session is not "no session": the next report is
		// reconciled again.
		e.cfg.Log.Error("relay state not reconciled", "device", dev, "relay", relay, "session_id", sessionID, "err", err)
		return
	}
	if open != nil && relay == wire.RelayOn && sessionID == open.ID.String() && !open.Confirmed {
		// The relay runs for the session though its ack was lost: confirmed.
		if s, err := e.cfg.Store.UpdateSession(ctx, open.ID, func(x *fablab.Session) { x.Confirmed = true }); err == nil {
			if seq != 0 {
				// The unlock was applied at this seq or before: an off
				// from this seq on is news.
				e.mu.Lock()
				if _, known := e.unlockSeq[open.ID]; !known {
					e.unlockSeq[open.ID] = seq
				}
				e.mu.Unlock()
			}
			e.emit("session", s)
		}
		return
	}
	if msgID, ok := strings.CutPrefix(sessionID, wire.OfflineSessionPrefix); ok && relay == wire.RelayOn {
		// A session the device granted alone: its replayed tap opens (or
		// has opened) it here, and the adoption unlock gives the relay the
		// server's id. Until then it is left running.
		seen, err := e.cfg.Store.TapSeen(ctx, bolt.TapRef{Device: dev, MsgID: msgID})
		if err != nil || !seen || open != nil && open.TapMsgID == msgID && open.DeviceID == dev {
			return
		}
	}
	switch {
	case relay == wire.RelayOn && (open == nil || sessionID != "" && sessionID != open.ID.String() && !e.unlockPending(open.ID)):
		e.cfg.Log.Warn("relay on without a session: locking", "device", dev, "session_id", sessionID)
		if _, err := e.send(ctx, dev, wire.Command{Op: wire.OpLock, Reason: "no_session"}); err != nil {
			e.cfg.Log.Error("send lock", "device", dev, "err", err)
		}
	case relay == wire.RelayOff && open != nil && !e.unlockPending(open.ID) && e.offIsNews(dev, open, seq, since):
		// Billed until the relay went off, as the device saw it (a device
		// that ended the session alone while the link was down reports it
		// only when it is back), never later than now.
		at := e.cfg.Now()
		if off := time.Unix(since, 0); since > 0 && off.Before(at) {
			at = off
		}
		e.closeOnDevice(ctx, dev, open.ID, at, fablab.EndRelayOff, "relay reported off")
	}
}

// offIsNews tells whether a "relay off" state is newer than the open
// session's switching on: by the device's seq when the confirmed unlock's
// seq is known, else by its clock (a second later than the start), and
// always for a session never confirmed.
func (e *Engine) offIsNews(dev string, open *fablab.Session, seq uint64, since int64) bool {
	if !open.Confirmed {
		return true
	}
	e.mu.Lock()
	on, known := e.unlockSeq[open.ID]
	e.mu.Unlock()
	if known {
		return seq >= on
	}
	return since > open.Started.Unix()
}

func (e *Engine) unlockPending(id fablab.ID) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range e.pending {
		if p.cmd.Op == wire.OpUnlock && p.cmd.SessionID == id.String() {
			return true
		}
	}
	return false
}

// closeOnDevice closes session id, open on the machine device dev drives,
// for what the device reported (why).
func (e *Engine) closeOnDevice(ctx context.Context, dev string, id fablab.ID, at time.Time, reason fablab.EndReason, why string) {
	ev := fablab.AuditEvent{At: e.cfg.Now(), Kind: fablab.AuditSession, Action: "ended", DeviceID: dev, Detail: map[string]any{"why": why}}
	if _, err := e.endSession(ctx, id, at, reason, 0, nil, ev); err != nil && fablab.ErrorCode(err) != fablab.ECONFLICT {
		e.cfg.Log.Error("close session", "session", id, "err", err)
	}
}

// Sweep does the periodic work (every 15 s): it warns readers of sessions
// ending soon, ends sessions past their time (after the machine's grace if
// it still draws power and nobody is waiting), and closes the sessions of
// devices silent too long, at their last sign of life.
func (e *Engine) Sweep(ctx context.Context) {
	now := e.cfg.Now()
	open, err := e.cfg.Store.OpenSessions(ctx)
	if err != nil {
		e.cfg.Log.Error("sweep: open sessions", "err", err)
		return
	}
	// Copies of the states, not of the pointers: handlers update the
	// engine's states under e.mu while the sweep reads its copies.
	e.mu.Lock()
	states := make(map[string]*fablab.DeviceState, len(e.devices))
	for dev, st := range e.devices {
		c := *st
		states[dev] = &c
	}
	watching := e.watching(now)
	e.mu.Unlock()
	// silent tells whether a device has not been heard for longer than
	// its timeout while the server was listening.
	silent := func(st *fablab.DeviceState) bool {
		return st != nil && st.LastSeen != nil && now.Sub(*st.LastSeen) > e.cfg.OfflineAfter && now.Sub(watching) > e.cfg.OfflineAfter
	}
	for _, s := range open {
		st := states[s.DeviceID]
		if silent(st) {
			e.markOffline(s.DeviceID)
			ev := fablab.AuditEvent{At: now, Kind: fablab.AuditSession, Action: "ended", DeviceID: s.DeviceID, Reason: fablab.EndDeviceOffline}
			if _, err := e.endSession(ctx, s.ID, *st.LastSeen, fablab.EndDeviceOffline, 0, nil, ev); err != nil && fablab.ErrorCode(err) != fablab.ECONFLICT {
				e.cfg.Log.Error("sweep: close session of offline device", "session", s.ID, "err", err)
			}
			continue
		}
		// The device cuts power at until by itself: a grace extension must
		// reach it before then, so it is decided a sweep and the ack
		// retries ahead.
		if s.Until.Sub(now) <= graceLead(e.cfg) && e.extendForGrace(ctx, s, st, now) {
			continue
		}
		switch {
		case !now.Before(s.Until):
			ev := fablab.AuditEvent{At: now, Kind: fablab.AuditSession, Action: "ended", Reason: fablab.EndBookingEnd}
			if _, err := e.endSession(ctx, s.ID, s.Until, fablab.EndBookingEnd, 0, nil, ev); err != nil && fablab.ErrorCode(err) != fablab.ECONFLICT {
				e.cfg.Log.Error("sweep: end session", "session", s.ID, "err", err)
			}
		case s.Until.Sub(now) <= e.cfg.WarnBefore:
			e.mu.Lock()
			warned := e.warned[s.ID]
			e.warned[s.ID] = true
			e.mu.Unlock()
			if !warned {
				left := s.Until.Sub(now).Round(time.Minute)
				lang := "fr"
				if m, err := e.cfg.Store.Member(ctx, s.MemberID); err == nil {
					lang = m.Language
				}
				if _, err := e.send(ctx, s.DeviceID, wire.Command{Op: wire.OpWarn, SessionID: s.ID.String(), Until: s.Until.Unix(),
					Reason: wire.ReasonSessionEnding, Message: Message(lang, wire.ReasonSessionEnding, left.String())}); err != nil {
					e.cfg.Log.Error("send warn", "device", s.DeviceID, "err", err)
				}
			}
		}
	}
	// Devices silent too long are offline, with or without a session.
	for dev, st := range states {
		if st.Online && silent(st) {
			e.markOffline(dev)
		}
	}
}

// watching returns since when the server has been listening without a
// gap, as its sweeps (every 15 s) show: a sweep after a gap longer than a
// device's timeout — the clock jumped forward, the host was suspended or
// the process stalled — starts it anew at now. Devices were not heard
// during the gap because the server did not listen, not because they were
// silent: they are judged offline only once they have been silent that
// long while it listened (their sessions are then closed at their last
// sign of life, as always). The caller holds e.mu.
func (e *Engine) watching(now time.Time) time.Time {
	if e.lastSweep.IsZero() || now.Sub(e.lastSweep) > e.cfg.OfflineAfter || now.Before(e.lastSweep) {
		e.watchingSince = now
	}
	e.lastSweep = now
	return e.watchingSince
}

func (e *Engine) markOffline(dev string) {
	e.mu.Lock()
	if d := e.devices[dev]; d != nil && d.Online {
		d.Online = false
		e.mu.Unlock()
		e.emit("device", map[string]any{"device_id": dev, "online": false})
		return
	}
	e.mu.Unlock()
}

// graceLead is how long before a session's end its grace is decided: one
// sweep period plus the time an unlock may take to be acknowledged.
func graceLead(cfg Config) time.Duration {
	return 15*time.Second + time.Duration(cfg.Tries)*cfg.AckTimeout
}

// extendForGrace gives a session the machine's grace once, when the machine
// still draws more than its idle power (a laser job is not cut mid-cut) and
// no booking starts within the grace.
func (e *Engine) extendForGrace(ctx context.Context, s fablab.Session, st *fablab.DeviceState, now time.Time) bool {
	m, err := e.cfg.Store.Machine(ctx, s.MachineID)
	if err != nil || m.GraceMinutes == 0 || st == nil || st.PowerW == nil || *st.PowerW <= m.IdlePowerW {
		return false
	}
	e.mu.Lock()
	graced := e.graced[s.ID]
	e.graced[s.ID] = true
	e.mu.Unlock()
	if graced {
		return false
	}
	until := s.Until.Add(time.Duration(m.GraceMinutes) * time.Minute)
	if occ, err := e.cfg.Store.Occupied(ctx, m.ID, s.Until, until); err != nil || len(occ) > 0 {
		return false
	}
	if _, err := e.cfg.Store.UpdateSession(ctx, s.ID, func(x *fablab.Session) { x.Until = until }); err != nil {
		return false
	}
	_, err = e.sendTracked(ctx, s.DeviceID, wire.Command{Op: wire.OpUnlock, CmdID: newCmdID(), SessionID: s.ID.String(), Until: until.Unix()},
		track{extension: true, prevUntil: s.Until})
	return err == nil
}
