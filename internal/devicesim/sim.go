// Package devicesim is a simulated FabGate device: a badge reader and a
// relay speaking the MQTT contract (docs/protocol.md) over a real broker
// connection. The demo lab runs one per demo machine, and tests use it as
// the device under the server.
package devicesim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fabgate/fabgate/internal/mqtt"
	"github.com/fabgate/fabgate/internal/wire"
)

// Config configures a simulated device.
type Config struct {
	Broker string // tcp://host:port
	ID     string // device id (its MQTT username)
	Secret string // its MQTT secret
	Prefix string // topic prefix (default fabgate/v1)
	FW     string // firmware version reported
	Now    func() time.Time
	Log    *slog.Logger
	NoAck  bool    // never acknowledge commands (a broken relay)
	PowerW float64 // drawn while the relay is on
}

// Device is a running simulated device. The relay starts OFF and is only
// switched on by an unlock.
type Device struct {
	cfg    Config
	topics wire.Topics
	client atomic.Pointer[mqtt.Client] // set by the first OnConnect, which can run before Connect returns

	mu      sync.Mutex
	bootID  string
	relay   string
	session string
	since   int64
	lastSeq uint64
	lastCmd string
	lastAck []byte
	noAck   bool
	notify  chan wire.Command
}

// Start connects the device, publishes its birth and its (off) relay state,
// and starts answering commands.
func Start(ctx context.Context, cfg Config) (*Device, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = wire.DefaultPrefix
	}
	if cfg.FW == "" {
		cfg.FW = "sim-1.0"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	topics, err := wire.NewTopics(cfg.Prefix)
	if err != nil {
		return nil, err
	}
	d := &Device{cfg: cfg, topics: topics, relay: wire.RelayOff, bootID: newID(), noAck: cfg.NoAck, notify: make(chan wire.Command, 64)}
	if err := d.connect(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

// connect makes the device's connection, subscribed to its commands; each
// (re)connection publishes the birth and the relay state.
//
// The device announces itself only once it listens to its commands: the
// server answers a state at once (a relay on without a session is locked),
// and a command sent before the subscription is lost.
func (d *Device) connect(ctx context.Context) error {
	will, _ := wire.Encode(&wire.Status{Online: false})
	subscribed := make(chan struct{})
	c, err := mqtt.Connect(ctx, mqtt.ClientConfig{
		Broker: d.cfg.Broker, ClientID: d.cfg.ID, Username: d.cfg.ID, Password: d.cfg.Secret,
		Will: &mqtt.Message{Topic: d.topics.Device(d.cfg.ID, wire.KindStatus), Payload: will, QoS: 1, Retained: true},
		OnConnect: func(c *mqtt.Client) {
			d.client.Store(c)
			go func() {
				<-subscribed
				d.announce(context.Background())
			}()
		},
		Log: d.cfg.Log,
	})
	if err != nil {
		close(subscribed)
		return err
	}
	d.client.Store(c)
	err = c.Subscribe(d.topics.Device(d.cfg.ID, wire.KindCmd), 1, d.onCommand)
	close(subscribed)
	if err != nil {
		c.Close(nil)
		return err
	}
	return nil
}

// Disconnect drops the device's connection as a network glitch does: the
// server hears it go offline (the status its will carries) and the device
// hears no command until Reconnect. The relay, the boot and the seq
// memory are kept: the device did not restart.
func (d *Device) Disconnect() {
	d.Close()
}

// Reconnect connects the device again after Disconnect, as the same boot:
// its birth and its relay state (as they are) are published again.
func (d *Device) Reconnect(ctx context.Context) error {
	return d.connect(ctx)
}

func newID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Client returns the device's MQTT client (the device's one connection),
// for tests that publish or subscribe as the device outside the contract.
func (d *Device) Client() *mqtt.Client { return d.client.Load() }

// announce publishes the birth status and the relay state.
func (d *Device) announce(ctx context.Context) {
	d.mu.Lock()
	st := wire.Status{Online: true, FW: d.cfg.FW, BootID: d.bootID, TS: d.cfg.Now().Unix()}
	d.mu.Unlock()
	if err := d.publish(ctx, wire.KindStatus, &st, true); err != nil {
		d.cfg.Log.Warn("sim: publish status", "device", d.cfg.ID, "err", err)
	}
	d.publishState(ctx)
}

func (d *Device) publish(ctx context.Context, k wire.Kind, v any, retained bool) error {
	b, err := wire.Encode(v)
	if err != nil {
		return err
	}
	return d.client.Load().Publish(ctx, mqtt.Message{Topic: d.topics.Device(d.cfg.ID, k), Payload: b, QoS: 1, Retained: retained})
}

func (d *Device) publishState(ctx context.Context) {
	d.mu.Lock()
	st := wire.State{Relay: d.relay, SessionID: d.session, Since: d.since, Seq: d.lastSeq}
	if d.relay == wire.RelayOn && d.cfg.PowerW > 0 {
		p := d.cfg.PowerW
		st.PowerW = &p
	}
	d.mu.Unlock()
	if err := d.publish(ctx, wire.KindState, &st, true); err != nil {
		d.cfg.Log.Warn("sim: publish state", "device", d.cfg.ID, "err", err)
	}
}

// onCommand applies a command as a device must: a seq at or below the last
// applied one is stale (the same command again gets its ack again).
func (d *Device) onCommand(_ string, payload []byte) {
	cmd, err := wire.DecodeCommand(payload)
	if err != nil {
		d.cfg.Log.Warn("sim: bad command", "device", d.cfg.ID, "err", err)
		return
	}
	ctx := context.Background()
	d.mu.Lock()
	select {
	case d.notify <- cmd:
	default:
	}
	if d.noAck {
		d.mu.Unlock()
		return
	}
	if cmd.Seq <= d.lastSeq {
		if cmd.CmdID == d.lastCmd && d.lastAck != nil {
			ack := d.lastAck
			d.mu.Unlock()
			d.client.Load().Publish(ctx, mqtt.Message{Topic: d.topics.Device(d.cfg.ID, wire.KindAck), Payload: ack, QoS: 1})
			return
		}
		ack := wire.Ack{CmdID: cmd.CmdID, Seq: cmd.Seq, Result: wire.ResultStale, Relay: d.relay}
		d.mu.Unlock()
		d.publish(ctx, wire.KindAck, &ack, false)
		return
	}
	d.lastSeq, d.lastCmd = cmd.Seq, cmd.CmdID
	changed := false
	switch cmd.Op {
	case wire.OpUnlock:
		changed = d.relay != wire.RelayOn || d.session != cmd.SessionID
		d.relay, d.session, d.since = wire.RelayOn, cmd.SessionID, d.cfg.Now().Unix()
	case wire.OpLock:
		changed = d.relay != wire.RelayOff
		d.relay, d.session, d.since = wire.RelayOff, "", d.cfg.Now().Unix()
	}
	ack := wire.Ack{CmdID: cmd.CmdID, Seq: cmd.Seq, Result: wire.ResultOK, Relay: d.relay}
	d.lastAck, _ = wire.Encode(&ack)
	d.mu.Unlock()
	if err := d.publish(ctx, wire.KindAck, &ack, false); err != nil {
		d.cfg.Log.Warn("sim: publish ack", "device", d.cfg.ID, "err", err)
	}
	if changed {
		d.publishState(ctx)
	}
}

// Tap publishes a live tap of badge uid; it returns the tap's msg_id.
func (d *Device) Tap(ctx context.Context, uid string) (string, error) {
	t := wire.Tap{MsgID: newID(), TS: d.cfg.Now().Unix(), UID: uid}
	return t.MsgID, d.publish(ctx, wire.KindTap, &t, false)
}

// PublishTap publishes a tap as given (replays, duplicates).
func (d *Device) PublishTap(ctx context.Context, t wire.Tap) error {
	return d.publish(ctx, wire.KindTap, &t, false)
}

// Heartbeat publishes a heartbeat.
func (d *Device) Heartbeat(ctx context.Context) error {
	d.mu.Lock()
	hb := wire.Heartbeat{TS: d.cfg.Now().Unix(), Relay: d.relay, SessionID: d.session}
	d.mu.Unlock()
	return d.publish(ctx, wire.KindHeartbeat, &hb, false)
}

// Reboot simulates a restart: a new boot id, relay OFF, seq memory lost,
// birth and state published again.
func (d *Device) Reboot(ctx context.Context) {
	d.mu.Lock()
	d.bootID, d.relay, d.session, d.since, d.lastSeq, d.lastCmd, d.lastAck = newID(), wire.RelayOff, "", d.cfg.Now().Unix(), 0, "", nil
	d.mu.Unlock()
	d.announce(ctx)
}

// SetNoAck makes the device stop (or resume) acknowledging commands.
func (d *Device) SetNoAck(v bool) {
	d.mu.Lock()
	d.noAck = v
	d.mu.Unlock()
}

// Relay returns the relay state and the session it runs for.
func (d *Device) Relay() (relay, session string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.relay, d.session
}

// Next waits for the next command received (after those already taken).
func (d *Device) Next(ctx context.Context) (wire.Command, error) {
	select {
	case c := <-d.notify:
		return c, nil
	case <-ctx.Done():
		return wire.Command{}, fmt.Errorf("device %s: no command: %w", d.cfg.ID, ctx.Err())
	}
}

// Close disconnects; the broker publishes the device's last will only on an
// unclean drop, so a clean close publishes offline status first.
func (d *Device) Close() {
	off, _ := wire.Encode(&wire.Status{Online: false})
	d.client.Load().Close(&mqtt.Message{Topic: d.topics.Device(d.cfg.ID, wire.KindStatus), Payload: off, QoS: 1, Retained: true})
}
