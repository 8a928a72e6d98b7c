// Package bridge runs FabGate devices: each one a badge reader and a relay
// at a machine, speaking the MQTT contract (docs/protocol.md) with the
// server, and deciding alone from its allowlist when the server is out of
// reach (protocol §8). One process may run several devices.
package bridge

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fabgate/fabgate/firmware-bridge/reader"
	"github.com/fabgate/fabgate/firmware-bridge/relay"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/mqtt"
	"github.com/fabgate/fabgate/internal/wire"
)

// Reasons of the device's own decisions and session ends, beside the
// server's codes (wire.Reason*, fablab.End*).
const (
	ReasonNotAllowedOffline = "offline_not_allowed" // the badge is not on the allowlist
	ReasonOfflineExpired    = "offline_expired"     // its offline entry's until has passed
	ReasonAllowlistStale    = "allowlist_stale"     // the list is older than max_offline_age
	ReasonAllowlistKey      = "allowlist_key"       // the list is hashed with a key the device does not have
	ReasonRelayFault        = "relay_fault"         // the relay did not switch
	ReasonExpired           = "expired"             // an unlock whose until has passed
	ReasonNoTap             = "no_tap"              // an unlock that answers no tap
	ReasonDeviceRestart     = "device_restart"      // a session cut by the bridge stopping
	ReasonUntil             = "booking_end"         // until reached
	ReasonRelayOff          = "relay_off"           // the relay went off by itself
	ReasonSessionEnded      = "session_ended"       // an unlock for a session the device has ended
)

// Indicator shows the member what happened: a LED, a buzzer.
type Indicator interface {
	// Signal shows "grant", "deny" or "warn" without blocking.
	Signal(kind string)
}

// DeviceConfig configures one device.
type DeviceConfig struct {
	ID     string // the device id, also its MQTT username
	Secret string // its MQTT secret
	Broker string // tcp://host:1883 or ssl://host:8883
	TLS    *tls.Config
	Prefix string // topic prefix (default fabgate/v1)
	// BadgeKey is the lab's badge key and AllowlistKey the device's own
	// allowlist key, of id AllowlistKeyID (protocol §8.1), to match badges
	// against the allowlist. Without AllowlistKey (id 0) badges are hashed
	// with the lab key alone, which matches only the lists of servers
	// before per-device keys.
	BadgeKey       []byte
	AllowlistKey   []byte
	AllowlistKeyID int64
	// StateDir holds this device's allowlist and offline queue.
	StateDir string
	// MaxOfflineAge is how old the allowlist may be for the offline tier
	// (default 24 h); OfflineSessionLimit is the longest session the
	// device grants alone (default 1 h).
	MaxOfflineAge       time.Duration
	OfflineSessionLimit time.Duration

	Reader    reader.Reader
	Relay     relay.Relay
	Indicator Indicator // nil: decisions are only logged

	FW    string // firmware version reported in the birth status
	Clock Clock  // default SystemClock
	Log   *slog.Logger
}

// Device is one running device.
type Device struct {
	cfg    DeviceConfig
	topics wire.Topics
	log    *slog.Logger
	clock  Clock
	disk   *disk
	client *mqtt.Client
	bootID string
	boot   time.Time

	events   chan func() // run by the loop, in order
	pubs     chan mqtt.Message
	stop     chan struct{}
	loopDone chan struct{} // closed when the loop has returned
	wg       sync.WaitGroup
	closed   sync.Once
	ctx      context.Context
	cancel   context.CancelFunc
	// pubCtx bounds the publisher's waits; Close ends it only once the
	// queue had its time to be flushed.
	pubCtx    context.Context
	pubCancel context.CancelFunc

	// Counters.
	Dropped     atomic.Int64 // malformed or unexpected messages
	BadReads    atomic.Int64 // reads that are not a badge UID
	LostPublish atomic.Int64 // messages that could not be sent

	// The loop's state: touched only by the loop goroutine.
	connected    bool
	serverOnline bool
	relayOn      bool
	since        int64
	powerW       *float64
	sess         *session
	lastSeq      uint64
	lastCmdID    string
	lastAck      wire.Ack
	allow        map[string]wire.AllowEntry
	allowVer     int64
	allowIssued  int64
	allowKid     int64 // the key id the list's entries are hashed with
	meta         diskMeta
	pending      *pendingTap
	lastTapAt    time.Time // when a tap was last sent to the server
	ended        []string  // the last sessions ended here: never switched on again
	recent       map[string]time.Time
	replaying    bool
	replayAgain  bool
	closing      bool     // Close began: the relay never goes on again
	offTimer     Timer    // retries an off the relay did not confirm
	lateGrant    *session // a local session granted for a tap the server did not answer in time
	lateGrantAt  time.Time
	hbTimer      Timer
	droppedKinds map[string]bool

	snapMu sync.Mutex
	snap   Status

	linkOK atomic.Bool // linkUp, for the replay goroutine
}

// session is the session the relay is on for.
type session struct {
	id       string
	hash     string // the badge that opened it, if known (tap-out while offline)
	local    bool   // granted by the device alone
	queueKey string // local: its granted tap in the queue
	until    int64  // wall clock, as received or decided
	deadline time.Time
	timer    Timer
}

// pendingTap is a tap sent to the server and not answered yet.
type pendingTap struct {
	tap   wire.Tap
	hash  string
	timer Timer
}

// Status is a snapshot of a device, for logs, tests and the demo.
type Status struct {
	Connected    bool
	ServerOnline bool
	Relay        string
	SessionID    string
	LocalSession bool
	AllowVer     int64
	Seq          uint64
}

// Start drives the relay off, then starts the device: it connects in the
// background and works offline from its allowlist until it can.
func Start(ctx context.Context, cfg DeviceConfig) (*Device, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = wire.DefaultPrefix
	}
	if cfg.MaxOfflineAge == 0 {
		cfg.MaxOfflineAge = wire.DefaultMaxOfflineAge
	}
	if cfg.OfflineSessionLimit == 0 {
		cfg.OfflineSessionLimit = time.Hour
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.FW == "" {
		cfg.FW = "fabgate-bridge"
	}
	if cfg.Reader == nil || cfg.Relay == nil {
		return nil, fmt.Errorf("device %s: a reader and a relay are required", cfg.ID)
	}
	topics, err := wire.NewTopics(cfg.Prefix)
	if err != nil {
		return nil, fmt.Errorf("device %s: prefix: %w", cfg.ID, err)
	}
	log := cfg.Log.With("device", cfg.ID)
	// Off first, before anything else: whatever the relay was doing before
	// this process started, no session runs now.
	offCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	if err := cfg.Relay.Set(offCtx, false, 0); err != nil {
		log.Error("relay not confirmed off at start; it will be switched off again when it reports", "err", err)
	}
	cancel()
	dk, err := openDisk(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", cfg.ID, err)
	}
	d := &Device{
		cfg: cfg, topics: topics, log: log, clock: cfg.Clock, disk: dk, bootID: newID(), boot: cfg.Clock.Now(),
		events: make(chan func(), 256), pubs: make(chan mqtt.Message, 256), stop: make(chan struct{}), loopDone: make(chan struct{}),
		allow: map[string]wire.AllowEntry{}, recent: map[string]time.Time{}, droppedKinds: map[string]bool{},
		since: cfg.Clock.Now().Unix(),
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.pubCtx, d.pubCancel = context.WithCancel(context.Background())
	if err := d.restore(); err != nil {
		return nil, fmt.Errorf("device %s: %w", cfg.ID, err)
	}
	d.updateSnap()

	will, _ := wire.Encode(&wire.Status{Online: false})
	d.client, err = mqtt.Dial(mqtt.ClientConfig{
		Broker: cfg.Broker, ClientID: cfg.ID, Username: cfg.ID, Password: cfg.Secret, TLS: cfg.TLS,
		Will:             &mqtt.Message{Topic: topics.Device(cfg.ID, wire.KindStatus), Payload: will, QoS: 1, Retained: true},
		OnConnect:        func(*mqtt.Client) { d.post(d.onConnect) },
		OnConnectionLost: func(error) { d.post(d.onLinkLost) },
		Log:              log,
	})
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", cfg.ID, err)
	}
	// One SUBSCRIBE for all: the allow-list and the server status are
	// retained, and a SUBSCRIBE arriving while they are in flight may be
	// refused whole (mqtt.Client.SubscribeAll).
	subs := map[string]func(string, []byte){}
	for filter, h := range map[string]func([]byte){
		topics.Device(cfg.ID, wire.KindCmd):       d.onCommand,
		topics.Device(cfg.ID, wire.KindAllowlist): d.onAllowlist,
		topics.ServerStatus():                     d.onServerStatus,
	} {
		subs[filter] = func(_ string, payload []byte) { d.post(func() { h(payload) }) }
	}
	if err := d.client.SubscribeAll(1, subs); err != nil {
		d.client.Close(nil)
		return nil, fmt.Errorf("device %s: %w", cfg.ID, err)
	}

	log.Info("device starting", "broker", cfg.Broker, "allow_ver", d.allowVer)
	d.wg.Add(4)
	go d.loop()
	go d.publisher()
	go d.readBadges()
	go d.relayEvents()
	d.post(d.scheduleHeartbeat)
	return d, nil
}

// restore loads the allowlist and meta kept on disk, and closes the sessions
// a restart cut short: their relay is off now (it was driven off at start).
func (d *Device) restore() error {
	l, ok, err := d.disk.loadAllowlist()
	if err != nil {
		d.log.Error("kept allowlist ignored", "err", err)
	} else if ok {
		d.setAllowlist(l)
	}
	if d.meta, err = d.disk.loadMeta(); err != nil {
		d.log.Error("kept state ignored", "err", err)
	}
	q, errs := d.disk.queue()
	for _, err := range errs {
		d.log.Error("offline queue", "err", err)
	}
	for _, e := range q {
		if e.tap.Result != wire.TapGranted || e.tap.Ended != 0 {
			continue
		}
		end := max(d.meta.LastAlive, e.tap.TS)
		if _, err := d.disk.update(e.key, func(t *wire.Tap) { t.Ended, t.Reason = min(end, t.Until), ReasonDeviceRestart }); err != nil {
			d.log.Error("offline session cut by the restart: its end is not recorded", "msg_id", e.tap.MsgID, "err", err)
		}
	}
	return nil
}

// Close ends the device as the protocol asks: relay off, state and offline
// status published, disconnected. A running session ends.
func (d *Device) Close() {
	d.closed.Do(func() {
		done := make(chan struct{})
		if d.post(func() {
			defer close(done)
			d.closing = true
			if d.sess != nil {
				d.endSession(ReasonDeviceRestart, true)
			} else if err := d.setRelay(false, 0); err != nil {
				d.log.Error("relay not confirmed off at close", "err", err)
			}
			d.noteAlive()
		}) {
			<-done
		}
		close(d.stop)
		d.cancel()
		// The acks and states already queued go out before the last state
		// (DESIGN §4): an ack lost here would turn a clean stop into an
		// unlock the server never sees confirmed.
		flushed := time.AfterFunc(flushTimeout, d.pubCancel)
		d.wg.Wait()
		flushed.Stop()
		d.pubCancel()
		if d.client.Connected() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			d.publishNow(ctx, wire.KindState, d.stateMsg(), true)
			cancel()
		}
		off, _ := wire.Encode(&wire.Status{Online: false})
		d.client.Close(&mqtt.Message{Topic: d.topics.Device(d.cfg.ID, wire.KindStatus), Payload: off, QoS: 1, Retained: true})
		if err := d.cfg.Relay.Close(); err != nil {
			d.log.Error("close relay", "err", err)
		}
		d.log.Info("device stopped")
	})
}

// Status returns a snapshot of the device.
func (d *Device) Status() Status {
	d.snapMu.Lock()
	defer d.snapMu.Unlock()
	return d.snap
}

func (d *Device) updateSnap() {
	s := Status{Connected: d.connected, ServerOnline: d.serverOnline, Relay: d.relayName(), AllowVer: d.allowVer, Seq: d.lastSeq}
	if d.sess != nil {
		s.SessionID, s.LocalSession = d.sess.id, d.sess.local
	}
	d.snapMu.Lock()
	d.snap = s
	d.snapMu.Unlock()
}

// post hands fn to the loop; false once the device is stopping.
func (d *Device) post(fn func()) bool {
	select {
	case <-d.stop:
		return false
	default:
	}
	select {
	case d.events <- fn:
		return true
	case <-d.stop:
		return false
	}
}

func (d *Device) loop() {
	defer d.wg.Done()
	defer close(d.loopDone)
	for {
		select {
		case fn := <-d.events:
			fn()
			d.linkOK.Store(d.linkUp())
			d.updateSnap()
		case <-d.stop:
			return
		}
	}
}

// drop counts a message dropped, logging the first of each kind.
func (d *Device) drop(kind string, err error) {
	d.Dropped.Add(1)
	if !d.droppedKinds[kind] {
		d.droppedKinds[kind] = true
		d.log.Warn("message dropped (further ones of this kind are only counted)", "kind", kind, "err", err)
	}
}

// ---- publishing ----

// flushTimeout bounds how long a stopping device spends sending what it
// had queued.
const flushTimeout = 2 * time.Second

// publisher sends the loop's messages in order; the loop never waits for the
// broker. When the device stops it sends what the loop queued until the
// loop returned, then returns.
func (d *Device) publisher() {
	defer d.wg.Done()
	for {
		select {
		case m := <-d.pubs:
			d.send(m)
		case <-d.stop:
			<-d.loopDone
			for {
				select {
				case m := <-d.pubs:
					d.send(m)
				default:
					return
				}
			}
		}
	}
}

func (d *Device) send(m mqtt.Message) {
	ctx, cancel := context.WithTimeout(d.pubCtx, mqtt.OpTimeout)
	defer cancel()
	if err := d.client.Publish(ctx, m); err != nil {
		d.LostPublish.Add(1)
		d.log.Debug("publish failed", "topic", m.Topic, "err", err)
	}
}

// publish queues a message for the publisher; without a link it is not
// worth sending (state and status are published again on connect).
func (d *Device) publish(k wire.Kind, v any, qos byte, retained bool) {
	if !d.connected {
		return
	}
	b, err := wire.Encode(v)
	if err != nil {
		d.log.Error("encode", "kind", k, "err", err)
		return
	}
	select {
	case d.pubs <- mqtt.Message{Topic: d.topics.Device(d.cfg.ID, k), Payload: b, QoS: qos, Retained: retained}:
	default:
		d.LostPublish.Add(1)
	}
}

func (d *Device) publishNow(ctx context.Context, k wire.Kind, v any, retained bool) error {
	b, err := wire.Encode(v)
	if err != nil {
		return err
	}
	return d.client.Publish(ctx, mqtt.Message{Topic: d.topics.Device(d.cfg.ID, k), Payload: b, QoS: 1, Retained: retained})
}

func (d *Device) relayName() string {
	if d.relayOn {
		return wire.RelayOn
	}
	return wire.RelayOff
}

func (d *Device) stateMsg() *wire.State {
	st := &wire.State{Relay: d.relayName(), Since: d.since, PowerW: d.powerW, Seq: d.lastSeq}
	if d.sess != nil {
		st.SessionID = d.sess.id
	}
	return st
}

func (d *Device) publishState() { d.publish(wire.KindState, d.stateMsg(), 1, true) }

// ---- the link ----

func (d *Device) linkUp() bool { return d.connected && d.serverOnline }

func (d *Device) onConnect() {
	d.connected = true
	d.publish(wire.KindStatus, &wire.Status{Online: true, FW: d.cfg.FW, BootID: d.bootID, TS: d.clock.Now().Unix()}, 1, true)
	d.startReplay()
	d.publishState()
	d.noteOnline()
	d.log.Info("connected", "server_online", d.serverOnline)
}

func (d *Device) onLinkLost() {
	d.noteOnline()
	// The server is known online again only from its status on the new
	// connection: a restarted broker may not have it (nor the server's
	// subscriptions) yet, and a replay it acknowledged would be lost.
	d.connected, d.serverOnline = false, false
	d.log.Warn("link to the broker lost: deciding from the allowlist until it returns")
}

func (d *Device) onServerStatus(payload []byte) {
	st, err := wire.DecodeServerStatus(payload)
	if err != nil {
		d.drop("server_status", err)
		return
	}
	d.noteOnline()
	d.serverOnline = st.Online
	if st.Online {
		d.startReplay()
		d.noteOnline()
	} else {
		d.log.Warn("the server is offline: deciding from the allowlist")
	}
}

// noteOnline remembers the last moment the device had the server: the
// allowlist's freshness counts from it.
func (d *Device) noteOnline() {
	if d.linkUp() {
		d.meta.LastOnline = d.clock.Now().Unix()
	}
}

// noteAlive writes the meta file: called at each heartbeat and at close.
func (d *Device) noteAlive() {
	d.noteOnline()
	d.meta.LastAlive = d.clock.Now().Unix()
	if err := d.disk.saveMeta(d.meta); err != nil {
		d.log.Error("save state", "err", err)
	}
}

func (d *Device) scheduleHeartbeat() {
	d.hbTimer = d.clock.AfterFunc(wire.HeartbeatInterval, func() { d.post(d.heartbeat) })
}

func (d *Device) heartbeat() {
	hb := wire.Heartbeat{TS: d.clock.Now().Unix(), UptimeS: int64(d.clock.Now().Sub(d.boot) / time.Second), Relay: d.relayName(), PowerW: d.powerW, AllowVer: d.allowVer}
	if d.sess != nil {
		hb.SessionID = d.sess.id
	}
	d.publish(wire.KindHeartbeat, &hb, 0, false)
	d.noteAlive()
	d.scheduleHeartbeat()
}

// startReplay publishes the offline queue when the server can take it.
func (d *Device) startReplay() {
	if !d.linkUp() {
		return
	}
	if d.replaying {
		d.replayAgain = true
		return
	}
	d.replaying = true
	// The loop stores linkOK after each event; the replay, started from
	// inside one, must not read the value from before it.
	d.linkOK.Store(true)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		n, errs := d.disk.replay(func(t wire.Tap) error {
			if !d.linkOK.Load() {
				return errors.New("the server went offline: the rest waits for it")
			}
			ctx, cancel := context.WithTimeout(d.ctx, mqtt.OpTimeout)
			defer cancel()
			return d.publishNow(ctx, wire.KindTap, &t, false)
		})
		for _, err := range errs {
			d.log.Warn("offline queue replay", "err", err)
		}
		if n > 0 {
			d.log.Info("offline taps replayed", "count", n)
		}
		d.post(func() {
			d.replaying = false
			if d.replayAgain {
				d.replayAgain = false
				d.startReplay()
			}
		})
	}()
}

// ---- the allowlist ----

func (d *Device) onAllowlist(payload []byte) {
	l, err := wire.DecodeAllowlist(payload)
	if err != nil {
		d.drop("allowlist", err)
		return
	}
	if err := d.disk.saveAllowlist(payload); err != nil {
		d.log.Error("allowlist not kept on disk; the one in memory is used", "err", err)
	}
	d.setAllowlist(l)
	d.log.Info("allowlist received", "ver", l.Ver, "entries", len(l.Entries), "key_id", l.Kid)
	if l.Kid != d.cfg.AllowlistKeyID {
		d.log.Error("the allowlist is hashed with another key than this device's: offline taps are refused until allowlist_key and allowlist_key_id in the configuration are the device's current ones (docs/operations.md, badge key rotation)",
			"list_key_id", l.Kid, "config_key_id", d.cfg.AllowlistKeyID)
	}
}

func (d *Device) setAllowlist(l wire.Allowlist) {
	d.allow = make(map[string]wire.AllowEntry, len(l.Entries))
	for _, e := range l.Entries {
		d.allow[e.H] = e
	}
	d.allowVer, d.allowIssued, d.allowKid = l.Ver, l.Issued, l.Kid
}

// ---- the relay ----

func (d *Device) setRelay(on bool, lease time.Duration) error {
	ctx, cancel := context.WithTimeout(d.ctx, 5*time.Second)
	defer cancel()
	err := d.cfg.Relay.Set(ctx, on, lease)
	if err == nil || !on {
		// Off is assumed even when unconfirmed: never report a relay on
		// that the device tried to switch off.
		if d.relayOn != (on && err == nil) {
			d.since = d.clock.Now().Unix()
		}
		d.relayOn = on && err == nil
	}
	if d.offTimer != nil && (err == nil || on) {
		d.offTimer.Stop()
		d.offTimer = nil
	}
	if !on && err != nil && d.offTimer == nil {
		// An off not confirmed (a lost command, a relay out of reach) is
		// asked for again until it is, while no session runs.
		d.offTimer = d.clock.AfterFunc(offRetry, func() {
			d.post(func() {
				d.offTimer = nil
				if d.sess == nil {
					if err := d.setRelay(false, 0); err != nil {
						d.log.Warn("relay still not confirmed off; trying again", "err", err)
					}
				}
			})
		})
	}
	return err
}

// offRetry is how often an off the relay did not confirm is sent again.
const offRetry = 10 * time.Second

func (d *Device) relayEvents() {
	defer d.wg.Done()
	for {
		select {
		case ev, ok := <-d.cfg.Relay.Events():
			if !ok {
				return
			}
			d.post(func() { d.onRelayEvent(ev) })
		case <-d.stop:
			return
		}
	}
}

func (d *Device) onRelayEvent(ev relay.Event) {
	if ev.PowerW != nil {
		p := *ev.PowerW
		d.powerW = &p
	}
	if ev.Online != nil && *ev.Online && d.sess == nil {
		// A relay that comes back is switched off unless a session runs.
		if err := d.setRelay(false, 0); err != nil {
			d.log.Error("relay back online but not confirmed off", "err", err)
		}
		d.publishState()
	}
	if ev.On == nil {
		return
	}
	switch {
	case !*ev.On && d.sess != nil:
		d.log.Warn("relay went off by itself: session ended", "session_id", d.sess.id)
		// since is when the relay went off, not when it went on: the
		// server bills the session up to the state's since, and a local
		// session's end is recorded from it.
		d.relayOn, d.since = false, d.clock.Now().Unix()
		// Switched off all the same: the report may be older than the
		// last switch, and off is what a session's end must leave.
		d.endSession(ReasonRelayOff, true)
	case !*ev.On:
		if d.relayOn {
			d.relayOn, d.since = false, d.clock.Now().Unix()
			d.publishState()
		}
	case *ev.On && d.sess == nil:
		// Never on without a session: someone pressed the button.
		d.log.Warn("relay went on without a session: switching it off")
		if err := d.setRelay(false, 0); err != nil {
			d.log.Error("relay not confirmed off", "err", err)
		}
		d.publishState()
	}
}

// startSession switches the relay on for a session until until (wall
// clock), enforced on the device's own clock.
func (d *Device) startSession(s *session) error {
	if d.closing {
		return errStopped
	}
	now := d.clock.Now()
	lease := time.Unix(s.until, 0).Sub(now)
	if err := d.setRelay(true, lease); err != nil {
		if offErr := d.setRelay(false, 0); offErr != nil {
			d.log.Error("relay failed on and off", "err", offErr)
		}
		return err
	}
	d.sess = s
	d.armUntil(s, lease)
	d.publishState()
	return nil
}

// armUntil (re)sets the session's end on the monotonic clock: a wall-clock
// jump cannot lengthen a session.
func (d *Device) armUntil(s *session, lease time.Duration) {
	if s.timer != nil {
		s.timer.Stop()
	}
	s.deadline = d.clock.Now().Add(lease)
	s.timer = d.clock.AfterFunc(lease, func() {
		d.post(func() {
			// Still this session, and not extended since the timer was set.
			if d.sess == s && !d.clock.Now().Before(s.deadline) {
				d.log.Info("session reached its end", "session_id", s.id)
				d.endSession(ReasonUntil, true)
			}
		})
	})
}

// endSession ends the running session: relay off (unless it is off already),
// the device's own session recorded as ended, state published. It returns
// the relay's error if it did not confirm it switched off.
func (d *Device) endSession(reason string, switchOff bool) error {
	s := d.sess
	if s == nil {
		return nil
	}
	if s.timer != nil {
		s.timer.Stop()
	}
	d.sess = nil
	d.noteEnded(s.id)
	if d.lateGrant == s {
		d.lateGrant = nil
	}
	var offErr error
	if switchOff {
		if offErr = d.setRelay(false, 0); offErr != nil {
			d.log.Error("relay not confirmed off at the end of a session", "session_id", s.id, "err", offErr)
		}
	}
	if reason == ReasonUntil {
		// Its timer fires at until, give or take the scheduler: the state
		// says when the session was due to end.
		d.since = min(d.since, max(s.until, d.since-60))
	}
	if s.local {
		d.recordEnd(s, reason, d.since)
	}
	d.publishState()
	return offErr
}

// recordEnd writes a local session's end into its queued granted tap, if it
// is still queued (once replayed, the server has adopted the session).
func (d *Device) recordEnd(s *session, reason string, at int64) {
	if _, err := d.disk.update(s.queueKey, func(t *wire.Tap) { t.Ended, t.Reason = max(min(at, t.Until), t.TS), reason }); err != nil {
		d.log.Error("offline session end not recorded", "session_id", s.id, "err", err)
	}
}

// ---- badges ----

// The pauses before a failed reader is opened again.
const (
	readerBackoffMin = 2 * time.Second
	readerBackoffMax = 30 * time.Second
)

// readBadges runs the reader, opening it again after a pause when it
// fails (a reader unplugged), and hands reads to the loop.
func (d *Device) readBadges() {
	defer d.wg.Done()
	reads := make(chan string, 16)
	go func() {
		for {
			select {
			case uid := <-reads:
				d.post(func() { d.onRead(uid) })
			case <-d.stop:
				return
			}
		}
	}()
	pause := readerBackoffMin
	for {
		ranAt := time.Now()
		err := d.cfg.Reader.Run(d.ctx, reads)
		if d.ctx.Err() != nil {
			return
		}
		// Opened again after 2 s, then less and less often (to 30 s) while
		// it keeps failing: a reader unplugged for the night, a wrong path.
		if time.Since(ranAt) > readerBackoffMax {
			pause = readerBackoffMin
		}
		if pause == readerBackoffMin {
			d.log.Error("badge reader stopped; opening it again", "err", err, "in", pause)
		} else {
			d.log.Debug("badge reader still failing", "err", err, "in", pause)
		}
		again := make(chan struct{})
		t := d.clock.AfterFunc(pause, func() { close(again) })
		pause = min(2*pause, readerBackoffMax)
		select {
		case <-again:
		case <-d.stop:
			t.Stop()
			return
		}
	}
}

// badgeHash is the badge's allowlist entry (protocol §8.1): the lab key's
// HMAC of the UID, then, with a device key, that key's HMAC of its hex.
func (d *Device) badgeHash(uid string) string {
	m := hmac.New(sha256.New, d.cfg.BadgeKey)
	m.Write([]byte(uid))
	h := hex.EncodeToString(m.Sum(nil))
	if d.cfg.AllowlistKeyID == 0 {
		return h
	}
	m = hmac.New(sha256.New, d.cfg.AllowlistKey)
	m.Write([]byte(h))
	return hex.EncodeToString(m.Sum(nil))
}

func (d *Device) onRead(raw string) {
	uid, err := fablab.NormalizeUID(raw)
	if err != nil {
		d.BadReads.Add(1)
		d.log.Warn("read that is not a badge UID dropped", "err", err)
		return
	}
	now := d.clock.Now()
	for u, at := range d.recent {
		if now.Sub(at) >= wire.RereadWindow {
			delete(d.recent, u)
		}
	}
	if _, again := d.recent[uid]; again {
		return // the same badge still on the reader
	}
	d.recent[uid] = now
	if d.pending != nil {
		d.log.Warn("badge read while the previous tap waits for its answer: ignored")
		return
	}
	tap := wire.Tap{MsgID: newID(), TS: now.Unix(), UID: uid}
	hash := d.badgeHash(uid)
	if !d.linkUp() {
		d.decideLocally(tap, hash)
		return
	}
	p := &pendingTap{tap: tap, hash: hash}
	d.pending = p
	d.lastTapAt = now
	p.timer = d.clock.AfterFunc(wire.AnswerTimeout, func() {
		d.post(func() {
			if d.pending == p {
				d.log.Warn("no answer from the server within 2 s: deciding from the allowlist", "msg_id", p.tap.MsgID)
				d.pending = nil
				d.decideLate(p.tap, p.hash)
			}
		})
	})
	b, err := wire.Encode(&tap)
	if err != nil {
		d.log.Error("encode tap", "err", err)
		return
	}
	m := mqtt.Message{Topic: d.topics.Device(d.cfg.ID, wire.KindTap), Payload: b, QoS: 1}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		ctx, cancel := context.WithTimeout(d.ctx, wire.AnswerTimeout)
		defer cancel()
		if err := d.client.Publish(ctx, m); err != nil {
			d.post(func() {
				if d.pending == p {
					p.timer.Stop()
					d.pending = nil
					d.log.Warn("tap not sent: deciding from the allowlist", "err", err)
					d.decideLate(p.tap, p.hash)
				}
			})
		}
	}()
}

// decideLate decides locally a tap sent to the server that got no answer.
// The server may still answer it: its unlock then gives a session granted
// here the server's id, its deny ends it (see lateAnswer); no other late
// answer is taken.
func (d *Device) decideLate(tap wire.Tap, hash string) {
	d.lastTapAt = time.Time{}
	d.decideLocally(tap, hash)
	if d.sess != nil && d.sess.local && d.sess.id == wire.OfflineSessionPrefix+tap.MsgID {
		d.lateGrant, d.lateGrantAt = d.sess, d.clock.Now()
	}
}

// lateAnswer reports whether a command with no tap waiting may be the
// server's late answer to the tap the running session was granted for here.
func (d *Device) lateAnswer() bool {
	return d.pending == nil && d.sess != nil && d.sess == d.lateGrant && d.clock.Now().Sub(d.lateGrantAt) < recentTap
}

// decideLocally decides a tap from the allowlist (protocol §8.3) and queues
// it for replay with its outcome.
func (d *Device) decideLocally(tap wire.Tap, hash string) {
	tap.Offline = true
	now := d.clock.Now()
	switch {
	case d.sess != nil && d.sess.hash == hash:
		tap.Result, tap.SessionID = wire.TapOut, d.sess.id
		d.log.Info("tap-out decided offline", "session_id", d.sess.id)
		d.endSession(wire.TapOut, true)
	case d.sess != nil || d.relayOn:
		tap.Result, tap.Reason = wire.TapDenied, wire.ReasonInUse
	default:
		e, ok := d.allow[hash]
		// A clock behind the list's time (a Pi without a battery-backed
		// clock, booted offline) cannot tell its age: stale.
		age := now.Sub(time.Unix(max(d.allowIssued, d.meta.LastOnline), 0))
		fresh := age >= 0 && age < d.cfg.MaxOfflineAge
		switch {
		case d.allowKid != d.cfg.AllowlistKeyID:
			// No entry can match: say why, not "not on the list".
			tap.Result, tap.Reason = wire.TapDenied, ReasonAllowlistKey
			d.log.Error("offline tap refused: the allowlist is hashed with another key than this device's; update allowlist_key and allowlist_key_id", "list_key_id", d.allowKid, "config_key_id", d.cfg.AllowlistKeyID)
		case !ok:
			tap.Result, tap.Reason = wire.TapDenied, ReasonNotAllowedOffline
		case e.Tier == wire.TierAdmin:
			tap.Result = wire.TapGranted
		case e.Tier == wire.TierOffline && !fresh:
			tap.Result, tap.Reason = wire.TapDenied, ReasonAllowlistStale
		case e.Tier == wire.TierOffline && now.Unix() >= e.Until:
			tap.Result, tap.Reason = wire.TapDenied, ReasonOfflineExpired
		case e.Tier == wire.TierOffline:
			tap.Result = wire.TapGranted
		default:
			tap.Result, tap.Reason = wire.TapDenied, ReasonNotAllowedOffline
		}
		if tap.Result == wire.TapGranted {
			until := now.Add(d.cfg.OfflineSessionLimit).Unix()
			if e.Tier == wire.TierOffline {
				until = min(until, e.Until)
			}
			tap.SessionID, tap.Until = wire.OfflineSessionPrefix+tap.MsgID, until
		}
	}
	var key string
	if tap.Result == wire.TapGranted {
		// Queued before the relay goes on: a power cut now leaves a record
		// of a session, never a session without one.
		var err error
		if key, err = d.disk.enqueue(tap); err != nil {
			d.log.Error("offline session refused: it could not be recorded", "err", err)
			d.signal("deny")
			return
		}
		s := &session{id: tap.SessionID, hash: hash, local: true, queueKey: key, until: tap.Until}
		if err := d.startSession(s); err != nil {
			d.log.Error("relay did not switch on", "err", err)
			if _, err := d.disk.update(key, func(t *wire.Tap) { t.Result, t.SessionID, t.Until, t.Reason = wire.TapDenied, "", 0, ReasonRelayFault }); err != nil {
				d.log.Error("queued tap not corrected: it will read as a session that never had power", "msg_id", tap.MsgID, "err", err)
			}
			d.signal("deny")
			d.startReplay()
			return
		}
		d.log.Info("session granted offline", "session_id", s.id, "until", time.Unix(tap.Until, 0).UTC())
		d.signal("grant")
		d.startReplay()
		return
	}
	if tap.Result == wire.TapDenied {
		d.log.Info("tap denied offline", "reason", tap.Reason)
		d.signal("deny")
	}
	if _, err := d.disk.enqueue(tap); err != nil {
		d.log.Error("offline tap not recorded", "err", err)
	}
	d.startReplay()
}

func (d *Device) signal(kind string) {
	if d.cfg.Indicator != nil {
		d.cfg.Indicator.Signal(kind)
	}
}

// ---- commands ----

func (d *Device) onCommand(payload []byte) {
	cmd, err := wire.DecodeCommand(payload)
	if err != nil {
		d.drop("cmd", err)
		return
	}
	if cmd.Seq <= d.lastSeq {
		if cmd.CmdID == d.lastCmdID && cmd.Seq == d.lastSeq {
			ack := d.lastAck
			d.publish(wire.KindAck, &ack, 1, false)
			return
		}
		d.publish(wire.KindAck, &wire.Ack{CmdID: cmd.CmdID, Seq: cmd.Seq, Result: wire.ResultStale, Relay: d.relayName(), Reason: "stale_seq"}, 1, false)
		return
	}
	d.lastSeq, d.lastCmdID = cmd.Seq, cmd.CmdID
	ack := wire.Ack{CmdID: cmd.CmdID, Seq: cmd.Seq, Result: wire.ResultOK}
	switch cmd.Op {
	case wire.OpUnlock:
		ack.Result, ack.Reason = d.unlock(cmd)
	case wire.OpLock:
		if d.answers(cmd) {
			// The answer to the tap waiting (a tap-out, or staff taking the
			// machine over): that tap is never decided again here. A lock
			// that names no tap, or another, answers none (staff ending a
			// session from the web, a lock sent again): the tap waiting
			// still gets its own answer, or is decided here in time.
			d.answered()
		}
		if d.sess != nil {
			if err := d.endSession(cmd.Reason, true); err != nil {
				ack.Result, ack.Reason = wire.ResultError, ReasonRelayFault
			}
		} else {
			if err := d.setRelay(false, 0); err != nil {
				ack.Result, ack.Reason = wire.ResultError, ReasonRelayFault
			}
			d.publishState()
		}
	case wire.OpWarn:
		d.log.Info("warning", "reason", cmd.Reason, "message", cmd.Message)
		d.signal("warn")
	case wire.OpDeny:
		// A deny names the tap it answers (tap_id); one without is taken,
		// as before, for the answer to the tap waiting or the late answer.
		named := cmd.TapID != ""
		late := d.lateAnswer() && (!named || d.sess.id == wire.OfflineSessionPrefix+cmd.TapID)
		if named && !late && !d.answers(cmd) {
			// The answer to another tap than the one waiting: nothing to
			// do (the tap waiting gets its own answer).
			d.log.Info("deny of another tap than the one waiting", "tap_id", cmd.TapID, "reason", cmd.Reason)
			break
		}
		if late {
			// The server refused the tap this session was granted for
			// alone: its decision stands.
			d.log.Warn("the server refused a tap granted here when it did not answer in time: session ended", "session_id", d.sess.id, "reason", cmd.Reason)
			d.endSession(cmd.Reason, true)
		}
		d.answered()
		d.log.Info("tap denied", "reason", cmd.Reason, "message", cmd.Message)
		d.signal("deny")
	case wire.OpStatus:
		d.publishState()
	}
	ack.Relay = d.relayName()
	d.lastAck = ack
	d.publish(wire.KindAck, &ack, 1, false)
}

// answers reports whether cmd answers the tap waiting for the server's
// answer: the server names the tap it answers (tap_id, protocol §5.4).
func (d *Device) answers(cmd wire.Command) bool {
	return d.pending != nil && cmd.TapID != "" && cmd.TapID == d.pending.tap.MsgID
}

// answered clears the tap waiting for the server's answer, so that it is
// never decided here once its 2 s have passed (DESIGN §4); it returns the
// badge hash of that tap ("" if none waited).
func (d *Device) answered() string {
	p := d.pending
	if p == nil {
		return ""
	}
	p.timer.Stop()
	d.pending = nil
	return p.hash
}

// endedHere is how many ended sessions the device remembers.
const endedHere = 8

// noteEnded remembers a session that ended on the device.
func (d *Device) noteEnded(id string) {
	if len(d.ended) == endedHere {
		d.ended = d.ended[1:]
	}
	d.ended = append(d.ended, id)
}

// recentTap is how long after a tap was sent an unlock is taken as its
// (late) answer.
const recentTap = 30 * time.Second

func (d *Device) unlock(cmd wire.Command) (result, reason string) {
	now := d.clock.Now()
	if cmd.Until <= now.Unix() {
		d.answered()
		return wire.ResultError, ReasonExpired
	}
	lease := time.Unix(cmd.Until, 0).Sub(now)
	s := d.sess
	switch {
	case s != nil && (s.id == cmd.SessionID || s.local && d.pending == nil && (cmd.Until == s.until || d.lateAnswer())):
		// The running session extended (grace), or one the device granted
		// alone adopted by the server under its own id: after its replay
		// (the server sends the device's until back), or as the late answer
		// to its tap.
		if err := d.setRelay(true, lease); err != nil {
			return wire.ResultError, ReasonRelayFault
		}
		if s.id != cmd.SessionID {
			d.log.Info("offline session adopted by the server", "local_id", s.id, "session_id", cmd.SessionID)
			s.id, s.local = cmd.SessionID, false
			if d.lateGrant == s {
				d.lateGrant = nil
			}
		}
		s.until = cmd.Until
		d.armUntil(s, lease)
		d.publishState()
		return wire.ResultOK, ""
	case slices.Contains(d.ended, cmd.SessionID):
		// A session that ended here (a lock, its until) never gets power
		// again: an unlock for it is one that crossed its end.
		d.log.Warn("unlock for a session that has ended refused", "session_id", cmd.SessionID)
		return wire.ResultError, ReasonSessionEnded
	case d.pending == nil && (d.lastTapAt.IsZero() || now.Sub(d.lastTapAt) >= recentTap):
		// The relay goes on for a tap at this machine, never by itself.
		d.log.Warn("unlock that answers no tap refused", "session_id", cmd.SessionID)
		return wire.ResultError, ReasonNoTap
	}
	var hash string
	if cmd.TapID == "" || d.answers(cmd) {
		// The answer to the tap waiting; an unlock naming another tap (a
		// late answer to one decided here) leaves the one waiting to its
		// own answer.
		hash = d.answered()
	}
	if s != nil { // another session is replaced
		if s.timer != nil {
			s.timer.Stop()
		}
		if s.local {
			d.recordEnd(s, "replaced", now.Unix())
		}
		d.noteEnded(s.id)
		if hash == "" {
			hash = s.hash
		}
		d.sess = nil
	}
	ns := &session{id: cmd.SessionID, hash: hash, until: cmd.Until}
	if err := d.startSession(ns); err != nil {
		d.log.Error("relay did not switch on", "err", err)
		d.publishState()
		d.signal("deny")
		return wire.ResultError, ReasonRelayFault
	}
	d.log.Info("unlocked", "session_id", ns.id, "until", time.Unix(cmd.Until, 0).UTC(), "message", cmd.Message)
	d.signal("grant")
	return wire.ResultOK, ""
}

func newID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// errStopped refuses a switch on while the device stops.
var errStopped = errors.New("bridge: the device is stopped")
