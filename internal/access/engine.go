package access

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/events"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/wire"
)

// Publisher sends one MQTT message at QoS 1.
type Publisher interface {
	Publish(ctx context.Context, topic string, payload []byte, retained bool) error
}

// Config configures an Engine.
type Config struct {
	Store  *bolt.Store
	Pub    Publisher
	Topics wire.Topics
	Now    fablab.Clock
	Log    *slog.Logger
	Hub    *events.Hub // live events; may be nil
	// AckTimeout is how long a command waits for its ack before it is sent
	// again (default 3 s); Tries is how many times it is sent in all
	// (default 3).
	AckTimeout time.Duration
	Tries      int
	// WarnBefore is how long before a session's end the reader is warned
	// (default 5 min).
	WarnBefore time.Duration
	// OfflineAfter is how long without a sign of life marks a device
	// offline (default 3 heartbeats: 90 s); a session on an offline device
	// is closed at its last sign of life.
	OfflineAfter time.Duration
}

// Engine runs the access side of the lab. Its handlers are safe for
// concurrent use; time moves only through Now, so tests drive it.
type Engine struct {
	cfg Config

	mu         sync.Mutex
	seqs       map[string]*seqRange   // per device
	pending    map[string]*pendingCmd // by cmd id
	devices    map[string]*fablab.DeviceState
	warned     map[fablab.ID]bool     // sessions warned of their end
	graced     map[fablab.ID]bool     // sessions given the machine's grace
	sendLocks  map[string]*sync.Mutex // per device, see sendLock
	reports    map[string]*reports    // per device: its newest reports, judged by seq
	dropLogged map[string]bool        // device/kind whose dropped messages were logged once
	unlockSeq  map[fablab.ID]uint64   // open sessions: the seq of their acknowledged unlock

	// lastSweep is when Sweep last ran, watchingSince when the sweeps
	// began without a gap (see watching).
	lastSweep, watchingSince time.Time

	allowDirty   bool      // the allow-lists must be published again
	allowChanged time.Time // last change
	allowVer     int64     // version of the last lists published

	allowPub sync.Mutex // one publish of the allow-lists at a time (see PublishAllowlists)

	// Counters for /metrics.
	Dropped atomic.Int64 // malformed or unroutable messages
	Replays atomic.Int64 // taps seen twice (QoS 1 duplicates, replays)
	Granted atomic.Int64
	Denied  atomic.Int64
	Retried atomic.Int64
	GaveUp  atomic.Int64 // commands never acknowledged
}

type seqRange struct{ next, last uint64 }

// reports is what one device has told of its relay, judged by seq (the seq
// of the last command it applied), never by the order the messages are
// handled in: acks and states travel on separate subscriptions.
type reports struct {
	state    wire.State // the newest state handled
	hasState bool
	// applied is the highest seq of a lock or unlock whose ack (ok or
	// error) was handled: the device has applied it, so a state with a
	// lower seq is older than what that ack told.
	applied uint64
}

// reportsOf returns dev's reports; the caller holds e.mu.
func (e *Engine) reportsOf(dev string) *reports {
	r := e.reports[dev]
	if r == nil {
		r = &reports{}
		e.reports[dev] = r
	}
	return r
}

// superseded tells whether a report of dev with seq is older than a lock or
// unlock already sent to it: still awaiting its ack, or acknowledged with a
// newer seq. Such a report is not news: that command's ack (or its retries
// and their outcome) tells what the relay does now.
func (e *Engine) superseded(dev string, seq uint64) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r := e.reports[dev]; r != nil && r.applied > seq {
		return true
	}
	for _, p := range e.pending {
		if p.dev == dev && p.cmd.Seq > seq && (p.cmd.Op == wire.OpLock || p.cmd.Op == wire.OpUnlock) {
			return true
		}
	}
	return false
}

// lastStateOff closes session id, whose unlock the device will never
// acknowledge, if the last state it reported says the relay is off: no ack
// will come to say which of its reports is newer, and that state is the
// last word the device had, billed up to its since.
func (e *Engine) lastStateOff(ctx context.Context, dev string, id fablab.ID) {
	e.mu.Lock()
	r := e.reports[dev]
	var st wire.State
	if r != nil && r.hasState {
		st = r.state
	}
	e.mu.Unlock()
	if st.Relay != wire.RelayOff {
		return
	}
	at := e.cfg.Now()
	if off := time.Unix(st.Since, 0); st.Since > 0 && off.Before(at) {
		at = off
	}
	e.closeOnDevice(ctx, dev, id, at, fablab.EndRelayOff, "relay reported off; its unlock was never acknowledged")
}

// relook reconciles dev's newest state again, after an ack settled the
// command that made it wait (DESIGN §4: when an ack lands, the last state
// received is looked at again).
func (e *Engine) relook(ctx context.Context, dev string) {
	e.mu.Lock()
	r := e.reports[dev]
	var st wire.State
	ok := r != nil && r.hasState
	if ok {
		st = r.state
	}
	e.mu.Unlock()
	if ok && !e.superseded(dev, st.Seq) {
		e.reconcile(ctx, dev, st.Relay, st.SessionID, st.Seq, st.Since)
	}
}

type pendingCmd struct {
	dev      string
	topic    string
	payload  []byte
	cmd      wire.Command
	tries    int
	deadline time.Time
	// rounds counts the locks sent anew (new seq) after a lock was not
	// applied; extension marks an unlock that only extends a running session.
	rounds    int
	extension bool
	prevUntil time.Time // for an extension: the session's end before it
	firstSent time.Time // when the command was first sent
	// adopted marks the unlock that gives a session the device granted
	// alone its server id.
	adopted bool
}

// track describes how a command is tracked, set before it is published so
// that an ack handled at once finds it complete.
type track struct {
	rounds    int
	extension bool
	prevUntil time.Time
	adopted   bool
}

// New returns an engine.
func New(cfg Config) *Engine {
	if cfg.Now == nil {
		cfg.Now = fablab.SystemClock
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.AckTimeout == 0 {
		cfg.AckTimeout = 3 * time.Second
	}
	if cfg.Tries == 0 {
		cfg.Tries = 3
	}
	if cfg.WarnBefore == 0 {
		cfg.WarnBefore = 5 * time.Minute
	}
	if cfg.OfflineAfter == 0 {
		cfg.OfflineAfter = 90 * time.Second
	}
	return &Engine{
		cfg: cfg, seqs: map[string]*seqRange{}, pending: map[string]*pendingCmd{},
		devices: map[string]*fablab.DeviceState{}, warned: map[fablab.ID]bool{}, graced: map[fablab.ID]bool{}, sendLocks: map[string]*sync.Mutex{}, reports: map[string]*reports{}, dropLogged: map[string]bool{}, unlockSeq: map[fablab.ID]uint64{},
	}
}

func (e *Engine) emit(typ string, data any) {
	if e.cfg.Hub != nil {
		e.cfg.Hub.Publish(events.Event{Type: typ, At: e.cfg.Now().UTC(), Data: data})
	}
}

// drop counts a malformed or unroutable message; it is logged the first time
// for each device and kind (a broken device would flood the log), then only
// counted.
func (e *Engine) drop(what, dev string, err error) {
	e.Dropped.Add(1)
	e.mu.Lock()
	first := !e.dropLogged[dev+"/"+what]
	if first && len(e.dropLogged) < 10_000 {
		e.dropLogged[dev+"/"+what] = true
	}
	e.mu.Unlock()
	if first {
		e.cfg.Log.Warn("mqtt message dropped (further ones from this device and kind are only counted)", "what", what, "device", dev, "err", err)
	}
}

// nextSeq returns the device's next command seq, reserving a new durable
// block when the current one is used up. The caller holds the device's send
// lock, so one device's numbers are taken one at a time.
func (e *Engine) nextSeq(ctx context.Context, dev string) (uint64, error) {
	e.mu.Lock()
	r := e.seqs[dev]
	if r != nil && r.next <= r.last {
		n := r.next
		r.next++
		e.mu.Unlock()
		return n, nil
	}
	e.mu.Unlock()
	first, last, err := e.cfg.Store.ReserveSeq(ctx, dev)
	if err != nil {
		return 0, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seqs[dev] = &seqRange{next: first + 1, last: last}
	return first, nil
}

// sendLock returns the lock that orders one device's commands: a command's
// seq is taken and the command published under it, so the device sees seqs
// in the order they were taken and no command is stale on arrival.
func (e *Engine) sendLock(dev string) *sync.Mutex {
	e.mu.Lock()
	defer e.mu.Unlock()
	l := e.sendLocks[dev]
	if l == nil {
		l = &sync.Mutex{}
		e.sendLocks[dev] = l
	}
	return l
}

func newCmdID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// send publishes a command to a device; unlock and lock commands are
// tracked until acknowledged. It runs to its end even if ctx (a request's)
// ends: a command half-sent is worse than a late one.
func (e *Engine) send(ctx context.Context, dev string, cmd wire.Command) (wire.Command, error) {
	return e.sendTracked(ctx, dev, cmd, track{})
}

func (e *Engine) sendTracked(ctx context.Context, dev string, cmd wire.Command, tr track) (wire.Command, error) {
	ctx = context.WithoutCancel(ctx)
	l := e.sendLock(dev)
	l.Lock()
	defer l.Unlock()
	seq, err := e.nextSeq(ctx, dev)
	if err != nil {
		return cmd, err
	}
	cmd.Seq = seq
	if cmd.CmdID == "" {
		cmd.CmdID = newCmdID()
	}
	payload, err := wire.Encode(&cmd)
	if err != nil {
		return cmd, fablab.Internal(err, "encode command")
	}
	topic := e.cfg.Topics.Device(dev, wire.KindCmd)
	if cmd.Op == wire.OpUnlock || cmd.Op == wire.OpLock {
		e.mu.Lock()
		now := e.cfg.Now()
		e.pending[cmd.CmdID] = &pendingCmd{dev: dev, topic: topic, payload: payload, cmd: cmd, tries: 1, deadline: now.Add(e.cfg.AckTimeout),
			rounds: tr.rounds, extension: tr.extension, prevUntil: tr.prevUntil, firstSent: now, adopted: tr.adopted}
		e.mu.Unlock()
	}
	if err := e.cfg.Pub.Publish(ctx, topic, payload, false); err != nil {
		// Tracked commands are sent again by RetryDue; others are lost.
		e.cfg.Log.Warn("publish command", "device", dev, "op", cmd.Op, "err", err)
	}
	return cmd, nil
}

// HandleTap decides a badge tap from device dev and answers the reader.
func (e *Engine) HandleTap(ctx context.Context, dev string, payload []byte) {
	tap, err := wire.DecodeTap(payload)
	if err != nil {
		e.drop("tap", dev, err)
		return
	}
	now := e.cfg.Now()
	e.seen(dev, now)
	ref := &bolt.TapRef{Device: dev, MsgID: tap.MsgID, At: now}
	seen, err := e.cfg.Store.TapSeen(ctx, *ref)
	if err != nil {
		if tap.Offline {
			// History the device will not send again (the broker took it):
			// the log is all that is left of it.
			e.cfg.Log.Error("replayed tap lost: the store failed", "device", dev, "msg_id", tap.MsgID, "ts", tap.TS, "result", tap.Result, "err", err)
			return
		}
		e.serverError(ctx, dev, "fr", tap.MsgID, now, "check the tap", err)
		return
	}
	if seen {
		e.Replays.Add(1)
		return
	}
	hash := auth.BadgeHash(e.cfg.Store.BadgeSecret(), tap.UID)
	if tap.Offline {
		e.replayed(ctx, ref, hash, tap)
		return
	}
	e.decide(ctx, dev, hash, ref, now)
}

// Tap decides a tap of badge uid on device dev as if the reader had sent it
// (the staff page's "simulate a tap", and tests).
func (e *Engine) Tap(ctx context.Context, dev, uid string) (Decision, error) {
	uid, err := fablab.NormalizeUID(uid)
	if err != nil {
		return Decision{}, err
	}
	if _, err := e.cfg.Store.Device(ctx, dev); err != nil {
		return Decision{}, err
	}
	now := e.cfg.Now()
	return e.decide(ctx, dev, auth.BadgeHash(e.cfg.Store.BadgeSecret(), uid), &bolt.TapRef{Device: dev, MsgID: "api-" + newCmdID(), At: now}, now)
}

// replayed records a tap the device decided alone while the server was out
// of reach: it is history, never decided again. A session the device
// granted becomes an offline session of the member: recorded ended, or, if
// it still runs, adopted (opened here, and the device told its id with an
// unlock). A tap-out ends the session it names.
func (e *Engine) replayed(ctx context.Context, ref *bolt.TapRef, hash string, tap wire.Tap) {
	dev := ref.Device
	at := time.Unix(tap.TS, 0)
	ev := fablab.AuditEvent{At: at, Kind: fablab.AuditTap, Action: "replayed", DeviceID: dev, Reason: tap.Reason,
		Detail: map[string]any{"msg_id": tap.MsgID, "badge": hash[:16]}}
	if tap.Result != "" {
		ev.Detail["result"] = tap.Result
	}
	f, err := e.cfg.Store.AccessFacts(ctx, dev, hash, e.cfg.Now(), 0)
	if err == nil {
		ev.MachineID = f.Machine.ID
		if f.Member != nil {
			ev.MemberID = f.Member.ID
		}
	} else if fablab.ErrorCode(err) != fablab.ENOTFOUND {
		// Not "nobody to hold to it": what the device decided is logged in
		// full, since only the tap's history is kept.
		e.cfg.Log.Error("replayed tap kept as history only: the store failed", "device", dev, "msg_id", tap.MsgID, "result", tap.Result,
			"ts", tap.TS, "until", tap.Until, "ended", tap.Ended, "session_id", tap.SessionID, "err", err)
	}
	evs := []fablab.AuditEvent{ev}
	switch {
	case err != nil && fablab.ErrorCode(err) != fablab.ENOTFOUND:
		e.unrecorded(ctx, evs)
		return
	case err != nil || f.Member == nil:
		// Nobody to hold to it (or no machine): kept as history only.
	case tap.Result == wire.TapGranted:
		err := e.offlineSession(ctx, dev, &f, ref, tap, evs)
		if err == nil || fablab.ErrorCode(err) == fablab.EDUPLICATE {
			e.replayDone(err, evs)
			return
		}
		e.cfg.Log.Error("record offline session", "device", dev, "msg_id", tap.MsgID, "err", err)
		e.unrecorded(ctx, evs)
		return
	case tap.Result == wire.TapOut:
		// The session it names ended then, whatever the server recorded
		// meanwhile (a relay reported off later, once back).
		if id, err := fablab.ParseID(tap.SessionID); err == nil {
			e.endBy(ctx, dev, id, at, fablab.EndTapOut)
		}
	}
	e.replayDone(e.cfg.Store.RecordTap(ctx, *ref, evs...), evs)
}

// unrecorded keeps the audit line of a replayed tap the store failed to
// record (its facts unreadable, or its session not written), without
// marking the tap seen: the relay's state naming the device's session is
// then left running, not locked for want of a session (reconcile), and the
// tap, if the device sends it again, is recorded then. A session lost so
// is billed by nobody: the log and this audit line are what staff have.
func (e *Engine) unrecorded(ctx context.Context, evs []fablab.AuditEvent) {
	if err := e.cfg.Store.Audit(ctx, evs...); err != nil {
		e.cfg.Log.Error("audit replayed tap", "err", err)
		return
	}
	e.emit("tap", evs[0])
}

// endBy makes sure a session of device dev was over by at, as the device's
// own decisions show: closed then if open (without a lock: the device
// switched off when it decided, and may run another member's session now),
// or its end brought back to then.
func (e *Engine) endBy(ctx context.Context, dev string, id fablab.ID, at time.Time, reason fablab.EndReason) {
	s, err := e.cfg.Store.Session(ctx, id)
	if err != nil && fablab.ErrorCode(err) != fablab.ENOTFOUND {
		e.cfg.Log.Error("end session by a replayed tap", "session", id, "err", err)
	}
	if err != nil || s.DeviceID != dev {
		return
	}
	ev := fablab.AuditEvent{At: e.cfg.Now(), Kind: fablab.AuditSession, Action: "ended", DeviceID: dev, Reason: string(reason),
		Detail: map[string]any{"why": "the device's replayed decisions"}}
	sess, err := e.cfg.Store.EndSessionBy(ctx, id, at, reason, []fablab.AuditEvent{ev})
	if err != nil {
		if fablab.ErrorCode(err) != fablab.ECONFLICT {
			e.cfg.Log.Error("end session by a replayed tap", "session", id, "err", err)
		}
		return
	}
	e.forget(id)
	e.emit("session", sess)
}

// endSessionsBefore ends, by at, the device's sessions that started before
// it and were still running then on the server's books: a device grants a
// session alone only when none runs.
func (e *Engine) endSessionsBefore(ctx context.Context, dev string, machine fablab.ID, at time.Time) {
	ss, err := e.cfg.Store.SessionsOfMachine(ctx, machine, at.Add(-fablab.MaxBookingMinutes*time.Minute), at)
	if err != nil {
		e.cfg.Log.Error("end the sessions a replayed grant overtook", "device", dev, "err", err)
		return
	}
	for _, s := range ss {
		if s.DeviceID == dev && s.Started.Before(at) && (s.Open() || s.Ended.After(at)) {
			e.endBy(ctx, dev, s.ID, at, fablab.EndRelayOff)
		}
	}
}

// forget drops what the engine tracks of a session that ended.
func (e *Engine) forget(id fablab.ID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.warned, id)
	delete(e.graced, id)
	delete(e.unlockSeq, id)
	// An unlock still waiting for its ack is moot now.
	for cid, p := range e.pending {
		if p.cmd.Op == wire.OpUnlock && p.cmd.SessionID == id.String() {
			delete(e.pending, cid)
		}
	}
}

// replayDone counts a replayed tap recorded, or seen before.
func (e *Engine) replayDone(err error, evs []fablab.AuditEvent) {
	switch {
	case fablab.ErrorCode(err) == fablab.EDUPLICATE:
		e.Replays.Add(1)
	case err != nil:
		e.cfg.Log.Error("record replayed tap", "err", err)
	case len(evs) > 0:
		e.emit("tap", evs[0])
	}
}

// offlineSession records a session the device granted alone: ended, or
// still running and adopted.
func (e *Engine) offlineSession(ctx context.Context, dev string, f *fablab.AccessFacts, ref *bolt.TapRef, tap wire.Tap, evs []fablab.AuditEvent) error {
	sess := fablab.Session{
		MachineID: f.Machine.ID, MemberID: f.Member.ID, DeviceID: dev, Started: time.Unix(tap.TS, 0), Until: time.Unix(tap.Until, 0),
		Offline: true, TapMsgID: tap.MsgID, Confirmed: true, Billable: true,
	}
	e.endSessionsBefore(ctx, dev, f.Machine.ID, sess.Started)
	if tap.Ended != 0 {
		// The device's own reason is kept in the replayed tap's audit line;
		// the session takes the end reason it maps to.
		ended := time.Unix(tap.Ended, 0)
		sess.Ended, sess.EndReason = &ended, fablab.DeviceEndReason(tap.Reason)
		sess, err := e.cfg.Store.RecordSession(ctx, sess, ref, evs)
		if err == nil {
			e.emit("session", sess)
		}
		return err
	}
	sess, err := e.cfg.Store.OpenSession(ctx, sess, ref, evs)
	if fablab.ErrorCode(err) == fablab.ECONFLICT {
		// The server holds another session on the machine: the device's
		// session is recorded as ended now, and the relay's state will be
		// reconciled with the open one.
		now := e.cfg.Now()
		sess.Ended, sess.EndReason = &now, fablab.EndReplaced
		if sess, err = e.cfg.Store.RecordSession(ctx, sess, ref, evs); err == nil {
			e.emit("session", sess)
		}
		return err
	}
	if err != nil {
		return err
	}
	e.emit("session", sess)
	e.cfg.Log.Info("offline session adopted", "device", dev, "session", sess.ID, "msg_id", tap.MsgID)
	if _, err := e.sendTracked(ctx, dev, wire.Command{Op: wire.OpUnlock, SessionID: sess.ID.String(), Until: tap.Until}, track{adopted: true}); err != nil {
		e.cfg.Log.Error("send adoption unlock", "device", dev, "err", err)
	}
	return nil
}

func (e *Engine) decide(ctx context.Context, dev, hash string, ref *bolt.TapRef, now time.Time) (Decision, error) {
	msgID := ref.MsgID
	f, err := e.cfg.Store.AccessFacts(ctx, dev, hash, now, 24*time.Hour)
	if fablab.ErrorCode(err) == fablab.ENOTFOUND {
		e.deny(ctx, dev, "fr", wire.ReasonNoMachine, "", ref, fablab.AuditEvent{At: now, Kind: fablab.AuditTap, Action: "denied", DeviceID: dev, Reason: wire.ReasonNoMachine})
		return Decision{Outcome: Deny, Reason: wire.ReasonNoMachine, Message: Message("fr", wire.ReasonNoMachine, "")}, nil
	}
	if err != nil {
		e.serverError(ctx, dev, "fr", msgID, now, "read access facts", err)
		return Decision{}, err
	}
	d := Decide(&f, now)
	ev := fablab.AuditEvent{At: now, Kind: fablab.AuditTap, DeviceID: dev, MachineID: f.Machine.ID, Detail: map[string]any{"msg_id": msgID}}
	lang := f.Settings.Language
	if f.Member != nil {
		ev.MemberID, lang = f.Member.ID, f.Member.Language
	}
	switch d.Outcome {
	case Deny:
		ev.Action, ev.Reason = "denied", d.Reason
		d.Message = Message(lang, d.Reason, d.Detail)
		if d.Reason == wire.ReasonUnknownBadge {
			ev.Detail["badge"] = hash
			if err := e.cfg.Store.RememberUnknownTap(ctx, fablab.UnknownTap{Hash: hash, At: now, DeviceID: dev}); err != nil {
				e.cfg.Log.Error("remember unknown tap", "err", err)
			}
		}
		e.deny(ctx, dev, lang, d.Reason, d.Detail, ref, ev)
	case Grant:
		ev.Action = "granted"
		if d.Override {
			ev.Detail["override"] = "machine in maintenance"
		}
		if err := e.grant(ctx, dev, &f, d, ref, ev); err != nil {
			return d, err
		}
	case TapOut, ForceClose:
		reason, action := fablab.EndReason(fablab.EndTapOut), "tap_out"
		if d.Outcome == ForceClose {
			reason, action = fablab.EndStaff, "force_close"
		}
		ev.Action = action
		if _, err := e.endSession(ctx, f.Open.ID, now, reason, f.Member.ID, ref, ev); err != nil {
			switch fablab.ErrorCode(err) {
			case fablab.EDUPLICATE:
			case fablab.ECONFLICT:
				// The session ended meanwhile (a sweep, staff): the tap is
				// still answered, and recorded so that it is decided once.
				ev.Action, ev.Reason = "tap_out", "already_ended"
				if err := e.cfg.Store.RecordTap(ctx, *ref, ev); err != nil && fablab.ErrorCode(err) != fablab.EDUPLICATE {
					e.cfg.Log.Error("record tap", "device", dev, "err", err)
				}
				if _, err := e.send(ctx, dev, wire.Command{Op: wire.OpLock, SessionID: f.Open.ID.String(), Reason: fablab.EndTapOut, TapID: ref.MsgID}); err != nil {
					e.cfg.Log.Error("send lock", "device", dev, "err", err)
				}
			default:
				e.serverError(ctx, dev, lang, msgID, now, "end the session", err)
				return d, err
			}
		}
	}
	return d, nil
}

// deny records a refused tap (once: a duplicate is dropped), with the
// message the reader shows, and answers the reader.
func (e *Engine) deny(ctx context.Context, dev, lang, reason, detail string, ref *bolt.TapRef, ev fablab.AuditEvent) {
	tapID := ""
	if ref != nil {
		tapID = ref.MsgID
	}
	e.denyTap(ctx, dev, lang, reason, detail, ref, tapID, ev)
}

// denyTap is deny for the tap tapID, recorded when ref is not nil (a tap
// the server failed to check is answered, not recorded).
func (e *Engine) denyTap(ctx context.Context, dev, lang, reason, detail string, ref *bolt.TapRef, tapID string, ev fablab.AuditEvent) {
	if ev.Detail == nil {
		ev.Detail = map[string]any{}
	}
	ev.Detail["message"] = Message(lang, reason, detail)
	var err error
	evs := []fablab.AuditEvent{ev} // the store gives it its id and UTC time in place
	if ref != nil {
		err = e.cfg.Store.RecordTap(ctx, *ref, evs...)
	} else {
		err = e.cfg.Store.Audit(ctx, evs...)
	}
	ev = evs[0]
	if fablab.ErrorCode(err) == fablab.EDUPLICATE {
		e.Replays.Add(1)
		return
	}
	if err != nil {
		e.cfg.Log.Error("audit tap", "err", err)
	}
	e.Denied.Add(1)
	e.emit("tap", ev)
	if _, err := e.send(ctx, dev, wire.Command{Op: wire.OpDeny, Reason: reason, Message: Message(lang, reason, detail), TapID: tapID}); err != nil {
		e.cfg.Log.Error("send deny", "device", dev, "err", err)
	}
}

// grant opens the session durably, then tells the relay to switch on.
func (e *Engine) grant(ctx context.Context, dev string, f *fablab.AccessFacts, d Decision, ref *bolt.TapRef, ev fablab.AuditEvent) error {
	now := e.cfg.Now()
	cmdID := newCmdID()
	sess := fablab.Session{
		MachineID: f.Machine.ID, MemberID: f.Member.ID, BookingID: d.BookingID, DeviceID: dev,
		Started: now, Until: d.Until, TapMsgID: ref.MsgID, CmdID: cmdID, Billable: true,
	}
	evs := []fablab.AuditEvent{ev}
	sess, err := e.cfg.Store.OpenSession(ctx, sess, ref, evs)
	switch fablab.ErrorCode(err) {
	case fablab.EDUPLICATE:
		e.Replays.Add(1)
		return nil
	case fablab.ECONFLICT: // another tap opened one first
		ev.Action, ev.Reason = "denied", wire.ReasonInUse
		e.deny(ctx, dev, f.Member.Language, wire.ReasonInUse, "", ref, ev)
		return nil
	}
	if err != nil {
		e.serverError(ctx, dev, f.Member.Language, ref.MsgID, now, "open the session", err)
		return err
	}
	e.Granted.Add(1)
	e.emit("session", sess)
	e.emit("tap", evs[0]) // as stored: with its id and the session's
	if _, err := e.send(ctx, dev, wire.Command{CmdID: cmdID, Op: wire.OpUnlock, SessionID: sess.ID.String(), Until: d.Until.Unix(), TapID: ref.MsgID}); err != nil {
		// Never sent, so never tracked: the session must not stay open.
		e.unconfirmed(ctx, sess.ID, "unlock not sent: "+err.Error())
		return err
	}
	return nil
}

// EndSession closes an open session (staff from the API, or the system) and
// locks its machine. Errors: ENOTFOUND, ECONFLICT (already ended), EINVALID
// (reason is not one of fablab.EndReasons).
func (e *Engine) EndSession(ctx context.Context, id fablab.ID, reason string, by fablab.ID) (fablab.Session, error) {
	r, err := fablab.ParseEndReason(reason)
	if err != nil {
		return fablab.Session{}, err
	}
	return e.endSession(ctx, id, e.cfg.Now(), r, by, nil, fablab.AuditEvent{At: e.cfg.Now(), Kind: fablab.AuditSession, Action: "ended", ActorID: by})
}

func (e *Engine) endSession(ctx context.Context, id fablab.ID, at time.Time, reason fablab.EndReason, by fablab.ID, tap *bolt.TapRef, ev fablab.AuditEvent) (fablab.Session, error) {
	ev.Reason = string(reason)
	evs := []fablab.AuditEvent{ev}
	sess, err := e.cfg.Store.CloseSession(ctx, id, at, reason, by, tap, evs)
	if err != nil {
		return sess, err
	}
	if ev.Kind == fablab.AuditTap {
		e.emit("tap", evs[0])
	}
	e.forget(id)
	e.emit("session", sess)
	if reason == fablab.EndRelayOff || reason == fablab.EndDeviceOffline {
		return sess, nil // the relay is off already, or cannot hear us
	}
	// The relay that was switched on for the session, even if the machine
	// has been bound to another device since; unless it now runs a session
	// the device granted alone (its replay not handled yet): this session's
	// power went off when the device decided, and a lock would cut the
	// other member's.
	dev := sess.DeviceID
	// Judged by the device's view that merges its states and acks by seq
	// (an adoption's ack newer than the state naming the device's own id
	// says the relay runs this session now), which a heartbeat does not
	// overwrite once a state was handled. The device's own id of this very
	// session (its adoption not yet taken) is no other member's: locked.
	e.mu.Lock()
	var running string
	if st := e.devices[dev]; st != nil && st.Relay == wire.RelayOn {
		running = st.SessionID
	}
	e.mu.Unlock()
	if strings.HasPrefix(running, wire.OfflineSessionPrefix) && (sess.TapMsgID == "" || running != wire.OfflineSessionPrefix+sess.TapMsgID) {
		e.cfg.Log.Info("no lock: the relay runs a session the device granted alone", "device", dev, "session", id, "device_session", running)
		return sess, nil
	}
	lock := wire.Command{Op: wire.OpLock, SessionID: id.String(), Reason: string(reason)}
	if tap != nil {
		lock.TapID = tap.MsgID // the answer to that tap (a tap-out, staff taking over)
	}
	if _, err := e.send(ctx, dev, lock); err != nil {
		e.cfg.Log.Error("send lock", "device", dev, "err", err)
	}
	return sess, nil
}

// HandleAck records a device's acknowledgement of a command.
func (e *Engine) HandleAck(ctx context.Context, dev string, payload []byte) {
	ack, err := wire.DecodeAck(payload)
	if err != nil {
		e.drop("ack", dev, err)
		return
	}
	now := e.cfg.Now()
	e.seen(dev, now)
	e.mu.Lock()
	p := e.pending[ack.CmdID]
	if p != nil && (p.dev != dev || p.cmd.Seq != ack.Seq) {
		// An ack of a command we wait for, but not as it was sent (a stale
		// or forged seq): bad input, dropped whole — its relay is not news.
		sent := p.cmd.Seq
		e.mu.Unlock()
		e.drop("ack", dev, fmt.Errorf("ack of command %s with seq %d, sent with seq %d", ack.CmdID, ack.Seq, sent))
		return
	}
	if p != nil {
		delete(e.pending, ack.CmdID)
	}
	rep := e.reportsOf(dev)
	if st := e.devices[dev]; st != nil && ack.Relay != "" && ack.Result != wire.ResultStale && (!rep.hasState || ack.Seq > rep.state.Seq) {
		// Newer than the last state handled: an ack never overwrites a
		// newer state (the device publishes its state after the ack of the
		// same seq, and on every change after it).
		st.Relay = ack.Relay
		if p != nil && ack.Result == wire.ResultOK && p.cmd.Op == wire.OpUnlock {
			st.SessionID = p.cmd.SessionID
		} else if ack.Relay == wire.RelayOff {
			st.SessionID = ""
		}
	}
	if p != nil && ack.Result != wire.ResultStale && (p.cmd.Op == wire.OpLock || p.cmd.Op == wire.OpUnlock) {
		rep.applied = max(rep.applied, ack.Seq)
	}
	e.mu.Unlock()
	if p == nil {
		return // a duplicate, a stale seq, or an untracked command: nothing to do
	}
	ev := fablab.AuditEvent{At: now, Kind: fablab.AuditAck, Action: ack.Result, DeviceID: dev, Reason: ack.Reason,
		Detail: map[string]any{"cmd_id": ack.CmdID, "op": p.cmd.Op, "relay": ack.Relay}}
	if id, err := fablab.ParseID(p.cmd.SessionID); err == nil {
		ev.SessionID = id
	}
	// Live once handled: what it changed is stored by then.
	defer func() { e.emit("ack", ev) }()
	if p.cmd.Op == wire.OpLock {
		if err := e.cfg.Store.Audit(ctx, ev); err != nil {
			e.cfg.Log.Error("audit ack", "err", err)
		}
		if ack.Result != wire.ResultOK || ack.Relay == wire.RelayOn {
			// Not applied (a newer command got there first, or the relay
			// failed): the relay may still be on. Lock again, with a new seq.
			e.relock(ctx, p, "lock not applied: "+ack.Result+" "+ack.Reason)
		}
		return
	}
	if ev.SessionID == 0 {
		if err := e.cfg.Store.Audit(ctx, ev); err != nil {
			e.cfg.Log.Error("audit ack", "err", err)
		}
		return
	}
	if ack.Result == wire.ResultStale && ack.Relay == wire.RelayOn {
		// Applied before (its first ack was lost) and overtaken since by a
		// newer command: if the device says it runs this session, it is
		// confirmed, not failed.
		e.mu.Lock()
		runs := e.devices[dev] != nil && e.devices[dev].SessionID == p.cmd.SessionID
		e.mu.Unlock()
		if runs {
			ack.Result = wire.ResultOK
		}
	}
	if ack.Result == wire.ResultOK {
		// The confirmation and its audit line share one commit.
		sess, err := e.cfg.Store.UpdateSession(ctx, ev.SessionID, func(s *fablab.Session) { s.Confirmed = true }, ev)
		switch {
		case err == nil:
			e.mu.Lock()
			e.unlockSeq[ev.SessionID] = p.cmd.Seq
			e.mu.Unlock()
			e.emit("session", sess)
			// A state handled while the unlock waited (an off reported
			// after the relay went on, say) is news now.
			e.relook(ctx, dev)
		case fablab.ErrorCode(err) == fablab.ECONFLICT || fablab.ErrorCode(err) == fablab.ENOTFOUND:
			// The session ended while its unlock travelled: the relay just
			// went on for nothing. Keep the ack in the audit and lock.
			if err := e.cfg.Store.Audit(ctx, ev); err != nil {
				e.cfg.Log.Error("audit ack", "err", err)
			}
			e.lockLate(ctx, dev, p.cmd.SessionID)
		default:
			e.cfg.Log.Error("confirm session", "session", ev.SessionID, "err", err)
		}
		return
	}
	if err := e.cfg.Store.Audit(ctx, ev); err != nil {
		e.cfg.Log.Error("audit ack", "err", err)
	}
	// "stale" means not applied, as "error" does (protocol §5.5): a newer
	// command was applied first, and the same seq sent again can only be
	// stale again, so nothing would ever switch the relay on for it.
	e.unlockFailed(ctx, p, "relay reported "+ack.Result+": "+ack.Reason)
}

// lockLate locks a device whose relay went on for a session that had
// already ended.
func (e *Engine) lockLate(ctx context.Context, dev, sessionID string) {
	e.cfg.Log.Warn("relay went on for an ended session: locking", "device", dev, "session_id", sessionID)
	if _, err := e.send(ctx, dev, wire.Command{Op: wire.OpLock, SessionID: sessionID, Reason: "no_session"}); err != nil {
		e.cfg.Log.Error("send lock", "device", dev, "err", err)
	}
}

// relock sends a lock that was not applied again as a new command (a new
// seq, so it cannot be stale), up to Tries rounds, then alerts staff.
func (e *Engine) relock(ctx context.Context, p *pendingCmd, why string) {
	// A lock overtaken by the next member's unlock must not cut them: when
	// the machine has an open session other than the one this lock ended,
	// that session's unlock made this lock moot.
	// Not knowing is not "no session": on a read error no lock is sent (it
	// could cut the next member's session); the device's next state, or the
	// sweep at the session's end, settles the relay.
	open, err := e.openSessionOfDevice(ctx, p.dev)
	if err != nil {
		e.cfg.Log.Error("lock not applied, not sent again: the store failed", "device", p.dev, "why", why, "err", err)
		return
	}
	if open != nil && open.ID.String() != p.cmd.SessionID && open.DeviceID == p.dev {
		return
	}
	if p.rounds+1 >= e.cfg.Tries {
		e.GaveUp.Add(1)
		e.cfg.Log.Error("device did not apply a lock: the machine may still be powered; check it", "device", p.dev, "why", why)
		e.emit("alert", map[string]any{"device_id": p.dev, "reason": "lock_unconfirmed", "why": why})
		return
	}
	cmd := p.cmd
	cmd.CmdID, cmd.Seq = "", 0
	if _, err := e.sendTracked(ctx, p.dev, cmd, track{rounds: p.rounds + 1}); err != nil {
		e.cfg.Log.Error("send lock", "device", p.dev, "err", err)
	}
}

// unlockFailed handles an unlock the relay never applied: a session's first
// unlock closes it unconfirmed (not billed); a grace extension ends the
// session at its original time (billed as used).
func (e *Engine) unlockFailed(ctx context.Context, p *pendingCmd, why string) {
	id, err := fablab.ParseID(p.cmd.SessionID)
	if err != nil {
		return
	}
	if p.adopted {
		// The device did not take the server's id for a session it granted
		// alone (it ended meanwhile, it stopped, or the relay failed): the
		// session stays open, to be closed when the relay's state says it
		// went off (the last one already may: see lastStateOff), or at its
		// end by the sweep, with a lock.
		e.cfg.Log.Warn("device did not take the adoption of its offline session", "session", id, "why", why)
		e.lastStateOff(ctx, p.dev, id)
		return
	}
	if !p.extension {
		s, err := e.cfg.Store.Session(ctx, id)
		if err != nil && fablab.ErrorCode(err) != fablab.ENOTFOUND {
			// Not knowing whether a state confirmed the relay ran it is not
			// "unconfirmed": the session stays open, for the device's next
			// state or the sweep to end.
			e.cfg.Log.Error("unlock never acknowledged: its session not read", "session", id, "why", why, "err", err)
			return
		}
		if err == nil && s.Open() && s.Confirmed {
			// The relay's state said it runs the session though no ack
			// came: it did get power, and is billed as it ran.
			e.cfg.Log.Warn("unlock never acknowledged, but the relay reported it on for the session", "session", id, "why", why)
			e.lastStateOff(ctx, p.dev, id)
			return
		}
		e.unconfirmed(ctx, id, why)
		return
	}
	now := e.cfg.Now()
	at, reason := p.prevUntil, fablab.EndReason(fablab.EndBookingEnd)
	if at.IsZero() || at.After(now) {
		at = now
	}
	// The relay may have gone off before (its state, held back while the
	// extension was on its way, is newer than the session's unlock): the
	// session ended then, and the device rightly refused to extend it.
	e.mu.Lock()
	r := e.reports[p.dev]
	on, known := e.unlockSeq[id]
	if r != nil && r.hasState && known && r.state.Relay == wire.RelayOff && r.state.Seq >= on && r.state.Since > 0 {
		if off := time.Unix(r.state.Since, 0); off.Before(at) {
			at, reason = off, fablab.EndRelayOff
		}
	}
	e.mu.Unlock()
	if reason == fablab.EndBookingEnd {
		e.cfg.Log.Error("relay did not take the grace extension: ending the session", "session", id, "why", why)
		e.emit("alert", map[string]any{"session_id": id, "reason": "extension_unconfirmed", "why": why})
	}
	if _, err := e.endSession(ctx, id, at, reason, 0, nil,
		fablab.AuditEvent{At: now, Kind: fablab.AuditSession, Action: "ended", Reason: string(reason), Detail: map[string]any{"why": why}}); err != nil && fablab.ErrorCode(err) != fablab.ECONFLICT {
		e.cfg.Log.Error("end session", "session", id, "err", err)
	}
}

func (e *Engine) unconfirmed(ctx context.Context, id fablab.ID, why string) {
	e.GaveUp.Add(1)
	e.cfg.Log.Error("relay did not confirm the unlock: session closed, not billed; check the device", "session", id, "why", why)
	now := e.cfg.Now()
	_, err := e.endSession(ctx, id, now, fablab.EndRelayUnconfirmed, 0, nil,
		fablab.AuditEvent{At: now, Kind: fablab.AuditSession, Action: "ended", Reason: fablab.EndRelayUnconfirmed, Detail: map[string]any{"why": why}})
	if err != nil {
		if fablab.ErrorCode(err) != fablab.ECONFLICT {
			e.cfg.Log.Error("close unconfirmed session", "session", id, "err", err)
		}
		return // ended already: nothing to alert about
	}
	e.emit("alert", map[string]any{"session_id": id, "reason": fablab.EndRelayUnconfirmed, "why": why})
}

// RetryDue sends again the commands whose ack is late, with the same cmd_id
// and seq, and gives up after the last try: an unlock nobody confirmed
// closes its session as relay_unconfirmed (not billed) and alerts staff.
func (e *Engine) RetryDue(ctx context.Context) {
	now := e.cfg.Now()
	var resend []*pendingCmd
	var gaveUp []*pendingCmd
	e.mu.Lock()
	for id, p := range e.pending {
		if now.Before(p.deadline) {
			continue
		}
		// An unlock whose publishes keep failing is given up all the same
		// after a bound: its session must not stay open without power.
		overdue := p.cmd.Op == wire.OpUnlock && now.Sub(p.firstSent) > time.Duration(e.cfg.Tries)*e.cfg.AckTimeout+time.Minute
		if p.tries >= e.cfg.Tries || overdue {
			delete(e.pending, id)
			gaveUp = append(gaveUp, p)
			continue
		}
		p.tries++
		p.deadline = now.Add(e.cfg.AckTimeout)
		resend = append(resend, p)
	}
	e.mu.Unlock()
	for _, p := range resend {
		e.resend(ctx, p)
	}
	for _, p := range gaveUp {
		why := "no ack after " + strconv.Itoa(p.tries) + " tries"
		if p.cmd.Op == wire.OpUnlock {
			e.unlockFailed(ctx, p, why)
			continue
		}
		e.relock(ctx, p, why)
	}
}

// resend publishes a late command again, under its device's send lock and
// only if it is still awaited (an ack or a session's end may have settled it
// meanwhile). A publish that fails (broker out of reach) does not count as a
// try: the command waits for the connection.
func (e *Engine) resend(ctx context.Context, p *pendingCmd) {
	l := e.sendLock(p.dev)
	l.Lock()
	defer l.Unlock()
	e.mu.Lock()
	still := e.pending[p.cmd.CmdID] == p
	e.mu.Unlock()
	if !still {
		return
	}
	e.Retried.Add(1)
	if err := e.cfg.Pub.Publish(ctx, p.topic, p.payload, false); err != nil {
		e.cfg.Log.Warn("resend command", "device", p.dev, "err", err)
		e.mu.Lock()
		p.tries--
		e.mu.Unlock()
	}
}

// PendingCommands returns how many commands wait for an ack.
func (e *Engine) PendingCommands() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.pending)
}
