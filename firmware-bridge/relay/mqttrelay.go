package relay

// The machinery the MQTT relays (Shelly Gen1, Shelly Gen2+, Tasmota) share:
// one MQTT connection per relay, the state the device last reported, the
// Set that waits for the device to report the state it was asked for, the
// events channel, and the count of the device messages that were dropped.
//
// A relay believes only what the device reports. The vendors' state topics
// are the truth; a command is confirmed when the device reports the state
// it was asked for, and anything the device reports that no Set asked for
// (a button, a reboot, a device-side timer) is an Event.

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/fabgate/fabgate/internal/mqtt"
)

// Broker is the MQTT broker a networked relay and its device share. The
// bridge does not talk to the device directly: it publishes the vendor's
// command topics on the broker the device is configured to use.
type Broker struct {
	// URL is tcp://host:1883, or ssl://host:8883 (also tls://, mqtts://)
	// for TLS.
	URL string
	// Username and Password are the bridge's MQTT credentials on that
	// broker; both empty for a broker that allows anonymous clients.
	Username, Password string
	// TLS configures ssl:// brokers (CA pool, client certificate); nil
	// uses the system roots.
	TLS *tls.Config
}

// DefaultConfirmTimeout is how long Set waits for the device to report the
// new state when a config leaves ConfirmTimeout at 0. A device on a local
// network answers in well under a second; three seconds leaves room for a
// busy Wi-Fi without keeping a member at the machine for long.
const DefaultConfirmTimeout = 3 * time.Second

const (
	// mqttRelayEventBuffer is how many events wait for the bridge before
	// further ones are dropped: a power reading every few seconds and the
	// odd state change fit many times over.
	mqttRelayEventBuffer = 64
	// mqttRelayQoS is used for every command and subscription: a command
	// must arrive (QoS 1) and is never retained, so that a device that
	// reconnects later does not act on an old one.
	mqttRelayQoS = 1
	// mqttRelayLogPayload bounds how much of a dropped payload is logged.
	mqttRelayLogPayload = 200
)

// errMQTTRelayClosed is returned by Set after Close.
var errMQTTRelayClosed = errors.New("relay: closed")

// validate checks the broker settings of a vendor's config.
func (b Broker) validate(vendor string) error {
	if b.URL == "" {
		return fmt.Errorf("relay: %s config: Broker.URL is empty: set it to the broker the device uses, e.g. tcp://192.168.1.10:1883", vendor)
	}
	scheme, _, ok := strings.Cut(b.URL, "://")
	if !ok {
		return fmt.Errorf("relay: %s config: Broker.URL %q is not a URL: write it as tcp://host:1883 (or ssl://host:8883)", vendor, b.URL)
	}
	switch scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts":
	default:
		return fmt.Errorf("relay: %s config: Broker.URL %q: the scheme must be tcp, mqtt, ssl, tls or mqtts", vendor, b.URL)
	}
	return nil
}

// checkTopicPart checks a config value that becomes part of a topic. Only
// multiLevel values may contain '/'.
func checkTopicPart(vendor, field, value, example string, multiLevel bool) error {
	switch {
	case value == "":
		return fmt.Errorf("relay: %s config: %s is empty: set it to the device's, e.g. %s", vendor, field, example)
	case len(value) > 200:
		return fmt.Errorf("relay: %s config: %s is %d bytes long: a device's MQTT name is at most 200", vendor, field, len(value))
	case !utf8.ValidString(value) || strings.ContainsRune(value, 0):
		return fmt.Errorf("relay: %s config: %s %q is not valid UTF-8 text", vendor, field, value)
	case strings.ContainsAny(value, "+#"):
		return fmt.Errorf("relay: %s config: %s %q contains an MQTT wildcard (+ or #): use the device's exact name, e.g. %s", vendor, field, value, example)
	case strings.TrimSpace(value) != value:
		return fmt.Errorf("relay: %s config: %s %q has leading or trailing space", vendor, field, value)
	case !multiLevel && strings.Contains(value, "/"):
		return fmt.Errorf("relay: %s config: %s %q contains '/': it is one topic level, e.g. %s", vendor, field, value, example)
	case strings.HasPrefix(value, "/") || strings.HasSuffix(value, "/") || strings.Contains(value, "//"):
		return fmt.Errorf("relay: %s config: %s %q has an empty topic level: remove the extra '/'", vendor, field, value)
	}
	return nil
}

// confirmTimeout returns the configured timeout or the default.
func confirmTimeout(vendor string, d time.Duration) (time.Duration, error) {
	switch {
	case d < 0:
		return 0, fmt.Errorf("relay: %s config: ConfirmTimeout %s is negative: leave it 0 for %s", vendor, d, DefaultConfirmTimeout)
	case d == 0:
		return DefaultConfirmTimeout, nil
	case d > MaxConfirmTimeout:
		return 0, fmt.Errorf("relay: %s config: ConfirmTimeout %s is too long: at most %s (a member waits at the machine, and stopping the bridge waits for each relay's off)", vendor, d, MaxConfirmTimeout)
	}
	return d, nil
}

// MaxConfirmTimeout bounds ConfirmTimeout.
const MaxConfirmTimeout = 10 * time.Second

// mqttClientID returns a client id unique to this connection: a second
// client with the same id would take the first one's session over.
func mqttClientID(device string) string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, device)
	if len(clean) > 48 {
		clean = clean[:48]
	}
	return "fabgate-bridge-" + clean + "-" + hex.EncodeToString(b[:])
}

// stateWaiter is a Set waiting for the device to report want, or a resync
// waiting for whatever state the device reports (anyState).
type stateWaiter struct {
	want     bool
	anyState bool
	done     chan error // buffered; nil once the state is reported, or the device's failure
}

// mqttCore is what the MQTT relays share.
type mqttCore struct {
	name    string // for errors: "shelly gen1 shelly1pm-84CCA8A1B2C3 relay 0"
	log     *slog.Logger
	timeout time.Duration
	client  *mqtt.Client
	started atomic.Bool // the first connection is set up; later ones resync

	setMu sync.Mutex // one Set (or Close) talks to the device at a time

	mu          sync.Mutex
	known, on   bool // the state the device last reported
	onlineKnown bool
	online      bool
	waiter      *stateWaiter
	events      chan Event
	closing     bool // Close has begun: Set refuses
	closed      bool // the events channel is closed
	logged      map[string]bool

	dropped       atomic.Int64
	eventsDropped atomic.Int64

	closeOnce sync.Once
	closeErr  error
}

// newMQTTCore returns the core of a relay; attrs name the device in every
// log line.
func newMQTTCore(name string, log *slog.Logger, timeout time.Duration, attrs ...any) *mqttCore {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &mqttCore{
		name:    name,
		log:     log.With(append([]any{"component", "relay"}, attrs...)...),
		timeout: timeout,
		events:  make(chan Event, mqttRelayEventBuffer),
		logged:  make(map[string]bool),
	}
}

// connect starts the relay's own MQTT connection, in the background: a
// vendor broker out of reach must not hold up the bridge (nor the other
// devices it serves); Set fails until the link is up. resync runs after
// each connection once the relay has started: what the device reported
// while the bridge was away is lost, so the relay asks again where the
// vendor allows it (a relay found on without a session is then reported,
// and switched off).
func (c *mqttCore) connect(ctx context.Context, b Broker, clientID string, resync func()) error {
	client, err := mqtt.Dial(mqtt.ClientConfig{
		Broker:   b.URL,
		ClientID: clientID,
		Username: b.Username,
		Password: b.Password,
		TLS:      b.TLS,
		Log:      c.log,
		OnConnect: func(*mqtt.Client) {
			if c.started.Load() && resync != nil {
				resync()
			}
		},
	})
	if err != nil {
		return fmt.Errorf("%s: %w", c.name, err)
	}
	c.client = client
	// A broker that answers at once gets the off at start; one that does
	// not is left to the background (a refusal too: retried, and logged,
	// never a bridge that exits and restarts in a loop).
	wctx, cancel := context.WithTimeout(ctx, firstConnectWait)
	defer cancel()
	if err := client.WaitConnected(wctx); err != nil && ctx.Err() == nil {
		c.log.Error("relay broker not reachable yet; the relay is switched off once it is", "broker", b.URL, "error", err)
	}
	return nil
}

// firstConnectWait is how long a relay's constructor waits for its broker.
const firstConnectWait = 3 * time.Second

// subscribe subscribes h to filter at the relay's QoS.
func (c *mqttCore) subscribe(filter string, h func(topic string, payload []byte)) error {
	if err := c.client.Subscribe(filter, mqttRelayQoS, h); err != nil {
		return fmt.Errorf("%s: %w", c.name, err)
	}
	return nil
}

// publish sends a command: QoS 1, never retained.
func (c *mqttCore) publish(ctx context.Context, topic string, payload []byte) error {
	return c.client.Publish(ctx, mqtt.Message{Topic: topic, Payload: payload, QoS: mqttRelayQoS})
}

// startOff switches the output off at start. A device that does not
// answer is not an error: it may be offline and come online later, when
// the bridge switches it off again (Event.Online). Only ctx ending fails.
func (c *mqttCore) startOff(ctx context.Context, off func(context.Context) error) error {
	c.setMu.Lock()
	err := off(ctx)
	c.setMu.Unlock()
	c.started.Store(true)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("%s: switch off at start: %w", c.name, ctx.Err())
	}
	c.log.Warn("relay did not confirm off at start; the device may be offline", "error", err)
	return nil
}

// set runs one Set: switchFn does the vendor's part (publish, wait for
// the state). A Set that fails to switch on sends off without waiting: the
// device may have switched on and only its answer been lost, and a
// machine must never stay on that the bridge believes off.
func (c *mqttCore) set(ctx context.Context, on bool, switchFn func(context.Context) error, offNoWait func(context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", c.name, err)
	}
	if c.isClosing() {
		return errMQTTRelayClosed
	}
	c.setMu.Lock()
	defer c.setMu.Unlock()
	if c.isClosing() {
		return errMQTTRelayClosed
	}
	wasOn, wasKnown := c.state()
	err := switchFn(ctx)
	if err == nil {
		return nil
	}
	// The device's state is unknown now: its next report counts as news,
	// so an output left on after a failed off (a lost command, a broken
	// link) is reported on, and switched off, when the device is heard.
	c.mu.Lock()
	c.known = false
	c.mu.Unlock()
	if on && !(wasKnown && wasOn) {
		// Only for an output that was off: an extension of a running
		// session that is slow to confirm must not cut the machine.
		octx, cancel := context.WithTimeout(context.Background(), c.timeout)
		if oerr := offNoWait(octx); oerr != nil {
			c.log.Warn("relay could not send off after a failed switch on", "error", oerr)
		}
		cancel()
	}
	return err
}

// withConfirmTimeout bounds one Set by the confirm timeout; its cause
// tells the timeout from the caller's ctx ending.
func (c *mqttCore) withConfirmTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, c.timeout, ErrUnconfirmed)
}

// waitErr is the error of a Set whose tctx (from withConfirmTimeout) ended
// before the device confirmed: ctx's error, or ErrUnconfirmed.
func (c *mqttCore) waitErr(ctx context.Context, on bool) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: switch %s: %w", c.name, onOff(on), err)
	}
	return fmt.Errorf("%s: switch %s: no confirmation within %s: %w", c.name, onOff(on), c.timeout, ErrUnconfirmed)
}

// publishErr is the error of a Set whose command could not be published.
func (c *mqttCore) publishErr(ctx, tctx context.Context, on bool, err error) error {
	if tctx.Err() != nil {
		return c.waitErr(ctx, on)
	}
	return fmt.Errorf("%s: switch %s: %w", c.name, onOff(on), err)
}

// switchAndWait publishes a command and waits for the device to report
// want: the Set of the vendors whose state topic is the confirmation
// (Shelly Gen1, Tasmota).
func (c *mqttCore) switchAndWait(ctx context.Context, want bool, publish func(context.Context) error) error {
	tctx, cancel := c.withConfirmTimeout(ctx)
	defer cancel()
	w := c.expect(want)
	defer c.forget(w)
	if err := publish(tctx); err != nil {
		return c.publishErr(ctx, tctx, want, err)
	}
	select {
	case err := <-w.done:
		return err
	case <-tctx.Done():
		return c.waitErr(ctx, want)
	}
}

// expect registers a Set waiting for want. Call forget when done.
func (c *mqttCore) expect(want bool) *stateWaiter {
	w := &stateWaiter{want: want, done: make(chan error, 1)}
	c.mu.Lock()
	c.waiter = w
	c.mu.Unlock()
	return w
}

// expectAny registers a resync waiting for the next state the device
// reports, whatever it is. Call forget when done.
func (c *mqttCore) expectAny() *stateWaiter {
	w := &stateWaiter{anyState: true, done: make(chan error, 1)}
	c.mu.Lock()
	c.waiter = w
	c.mu.Unlock()
	return w
}

// forget removes w if it still waits.
func (c *mqttCore) forget(w *stateWaiter) {
	c.mu.Lock()
	if c.waiter == w {
		c.waiter = nil
	}
	c.mu.Unlock()
}

// state returns the state the device last reported.
func (c *mqttCore) state() (on, known bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.on, c.known
}

// report records a state the device reported. It confirms a waiting Set
// that asked for it; any other change is an Event. fault, when not empty,
// is why the device switched off by itself (overpower): it fails a Set
// waiting for on at once.
func (c *mqttCore) report(on bool, fault string) {
	if fault != "" {
		c.log.Warn("relay device reports a fault and is off", "fault", fault)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// The first state the device reports is a change only if it is on:
	// the bridge takes an output it knows nothing of for off.
	changed := c.known && c.on != on || !c.known && on
	c.known, c.on = true, on
	ours := false
	if w := c.waiter; w != nil {
		switch {
		case w.anyState:
			// A resync: it learns the state, it did not cause it.
			w.done <- nil
			c.waiter = nil
		case w.want == on:
			w.done <- nil
			c.waiter = nil
			ours = true
		case fault != "":
			w.done <- fmt.Errorf("%s: switch %s: the device switched off by itself: %s", c.name, onOff(w.want), fault)
			c.waiter = nil
		}
	}
	if changed && !ours {
		c.emit(Event{On: &on})
	}
}

// power reports a power reading.
func (c *mqttCore) power(w float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.emit(Event{PowerW: &w})
}

// setOnline records the device's connection (its LWT) and reports a
// change. It returns true when the device came online: the caller asks for
// its state where the vendor allows it.
func (c *mqttCore) setOnline(online bool) (cameOnline bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.onlineKnown && c.online == online {
		return false
	}
	c.onlineKnown, c.online = true, online
	c.log.Info("relay device connection", "online", online)
	c.emit(Event{Online: &online})
	return online
}

// emit sends e unless the channel is full or closed: a bridge that does
// not keep up loses events, it never blocks the device's messages. Called
// with c.mu held.
func (c *mqttCore) emit(e Event) {
	if c.closed {
		return
	}
	select {
	case c.events <- e:
	default:
		n := c.eventsDropped.Add(1)
		c.logOnce("events_full", "relay events channel full, dropping events", "dropped_total", n)
	}
}

// drop counts and logs a device message the relay could not use:
// malformed, of another firmware's shape, or with a value it does not
// know. The first of each kind is a warning, later ones debug: a device
// that keeps sending the same thing must not flood the log.
func (c *mqttCore) drop(kind, topic string, payload []byte, err error) {
	n := c.dropped.Add(1)
	p := payload
	if len(p) > mqttRelayLogPayload {
		p = p[:mqttRelayLogPayload]
	}
	c.mu.Lock()
	first := !c.logged[kind]
	c.logged[kind] = true
	c.mu.Unlock()
	level := slog.LevelDebug
	if first {
		level = slog.LevelWarn
	}
	c.log.Log(context.Background(), level, "relay dropped a device message",
		"kind", kind, "topic", topic, "payload", string(p), "error", err, "dropped_total", n)
}

// logOnce logs msg at warning level the first time for kind. Called with
// c.mu held.
func (c *mqttCore) logOnce(kind, msg string, args ...any) {
	if c.logged[kind] {
		return
	}
	c.logged[kind] = true
	c.log.Warn(msg, args...)
}

func (c *mqttCore) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// close switches off (waiting for a running Set first), disconnects and
// closes the events channel. Later calls return the first one's error.
func (c *mqttCore) close(off func(context.Context) error) error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closing = true
		c.mu.Unlock()

		c.setMu.Lock()
		err := off(context.Background())
		c.setMu.Unlock()
		if err != nil {
			c.closeErr = fmt.Errorf("%s: switch off at close: %w", c.name, err)
		}

		c.client.Close(nil)
		c.mu.Lock()
		c.closed = true
		close(c.events)
		c.mu.Unlock()
	})
	return c.closeErr
}

// quoteShort quotes a payload for an error message, cut to a useful length.
func quoteShort(p []byte) string {
	const limit = 64
	if len(p) > limit {
		return fmt.Sprintf("%q…", p[:limit])
	}
	return fmt.Sprintf("%q", p)
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}
