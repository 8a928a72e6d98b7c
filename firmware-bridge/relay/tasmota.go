package relay

// Tasmota over MQTT, with the default FullTopic %prefix%/%topic%/ and the
// default state texts (OFF, ON):
//
//	cmnd/<topic>/POWER<n>   ON | OFF; empty asks for the state  (we publish)
//	stat/<topic>/RESULT     {"POWER<n>":"ON"}, after a command or any change
//	stat/<topic>/POWER<n>   ON | OFF, the same as plain text (not used)
//	tele/<topic>/STATE      {"Time":…,"POWER<n>":"ON",…}, periodic
//	tele/<topic>/SENSOR     {"Time":…,"ENERGY":{"Power":45,…}}, periodic on
//	                        metering devices; "Power":[45,0] on devices that
//	                        meter several channels
//	tele/<topic>/LWT        Online | Offline (retained; the LWT)
//
// A device with a single relay names it POWER (POWER1 with SetOption26),
// one with several POWER1, POWER2, ...
//
// The state is read from RESULT only. The plain POWER<n> topic says the
// same a moment later, and the MQTT client does not keep the order of
// messages that arrive together: an old duplicate handled after a newer
// state would undo it.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"
)

// TasmotaConfig configures a Tasmota relay. The device must have MQTT
// enabled, point at Broker, and keep the default FullTopic
// (%prefix%/%topic%/), state texts (StateText1 OFF, StateText2 ON) and
// SetOption4 0 (answers on RESULT).
type TasmotaConfig struct {
	Broker
	// Topic is the device's MQTT Topic (%topic%), e.g. tasmota_9CF9D1 or
	// the name it was given (laser-cutter).
	Topic string
	// Relay is the output: 0 for the only relay of a single-relay device
	// (POWER), 1 to 32 for POWER1 to POWER32. On metering devices it also
	// picks the channel of a multi-channel ENERGY reading.
	Relay int
	// ConfirmTimeout is how long Set waits for the device to report the
	// new state; 0 means DefaultConfirmTimeout.
	ConfirmTimeout time.Duration
	// Log receives the relay's problems; nil discards them.
	Log *slog.Logger
}

// tasmotaMaxRelay is the most relays Tasmota drives (POWER32).
const tasmotaMaxRelay = 32

// Validate checks the configuration; its messages name the field and say
// what to change. The constructor calls it.
func (cfg TasmotaConfig) Validate() error {
	const vendor = "tasmota"
	if err := cfg.Broker.validate(vendor); err != nil {
		return err
	}
	if err := checkTopicPart(vendor, "Topic", cfg.Topic, "tasmota_9CF9D1", false); err != nil {
		return err
	}
	if cfg.Relay < 0 || cfg.Relay > tasmotaMaxRelay {
		return fmt.Errorf("relay: %s config: Relay %d: use 0 for a single-relay device (POWER), or 1 to %d (POWER1 to POWER%d)", vendor, cfg.Relay, tasmotaMaxRelay, tasmotaMaxRelay)
	}
	_, err := confirmTimeout(vendor, cfg.ConfirmTimeout)
	return err
}

// Tasmota is one relay of a Tasmota device, driven over MQTT.
//
// Set does not use the lease. Tasmota's only device-side timer for an
// output, PulseTime, is a setting, not part of a command: it is saved to
// flash and applies to every later switch on, a button's included, until
// set again. A lease per session would wear the flash and leave behind a
// timer that cuts the next manual use; the bridge ends sessions itself.
type Tasmota struct {
	core        *mqttCore
	relay       int
	cmdTopic    string
	resultTopic string // stat/<topic>/RESULT
	teleTopic   string // tele/<topic>/
}

var _ Relay = (*Tasmota)(nil)

// NewTasmota connects to the broker, subscribes to the device's RESULT
// and tele topics, and switches the relay off. A device that does not answer
// (offline) is logged, not an error: it is reported by Events when it
// comes online. The error is a bad config, a broker that refuses or cannot
// be reached before ctx ends, or ctx's error.
func NewTasmota(ctx context.Context, cfg TasmotaConfig) (*Tasmota, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	timeout, _ := confirmTimeout("tasmota", cfg.ConfirmTimeout)
	keys := tasmotaPowerKeys(cfg.Relay)
	t := &Tasmota{
		core: newMQTTCore(fmt.Sprintf("relay: tasmota %s %s", cfg.Topic, keys[0]), cfg.Log, timeout,
			"vendor", "tasmota", "device", cfg.Topic, "relay", cfg.Relay),
		relay:       cfg.Relay,
		cmdTopic:    "cmnd/" + cfg.Topic + "/" + keys[0],
		resultTopic: "stat/" + cfg.Topic + "/RESULT",
		teleTopic:   "tele/" + cfg.Topic + "/",
	}
	if err := t.core.connect(ctx, cfg.Broker, mqttClientID("tasmota-"+cfg.Topic), t.resync); err != nil {
		return nil, err
	}
	err := t.core.subscribe(t.resultTopic, t.onResult)
	if err == nil {
		err = t.core.subscribe(t.teleTopic+"+", t.onTele)
	}
	if err == nil {
		err = t.core.startOff(ctx, func(ctx context.Context) error { return t.switchAndWait(ctx, false) })
	}
	if err != nil {
		t.core.client.Close(nil)
		return nil, err
	}
	return t, nil
}

// tasmotaPowerKeys returns the name of a relay's command, first, and the
// names the device may report its state under.
func tasmotaPowerKeys(relay int) []string {
	switch relay {
	case 0:
		return []string{"POWER", "POWER1"}
	case 1:
		return []string{"POWER1", "POWER"}
	}
	return []string{"POWER" + strconv.Itoa(relay)}
}

// Set implements Relay. The lease is not used (see Tasmota).
func (t *Tasmota) Set(ctx context.Context, on bool, lease time.Duration) error {
	return t.core.set(ctx, on,
		func(ctx context.Context) error { return t.switchAndWait(ctx, on) },
		func(ctx context.Context) error { return t.command(ctx, "OFF") })
}

func (t *Tasmota) switchAndWait(ctx context.Context, on bool) error {
	return t.core.switchAndWait(ctx, on, func(ctx context.Context) error {
		return t.command(ctx, strings.ToUpper(onOff(on)))
	})
}

func (t *Tasmota) command(ctx context.Context, payload string) error {
	return t.core.publish(ctx, t.cmdTopic, []byte(payload))
}

// resync asks for the relay's state (an empty POWER command): after the
// device comes online and after the bridge reconnects to the broker. It
// waits for the answer, and runs between Sets: an answer to a question
// asked while a Set switches could be taken after the Set's own, and undo
// it.
func (t *Tasmota) resync() {
	t.core.setMu.Lock()
	defer t.core.setMu.Unlock()
	if t.core.isClosing() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.core.timeout)
	defer cancel()
	w := t.core.expectAny()
	defer t.core.forget(w)
	if err := t.command(ctx, ""); err != nil {
		t.core.log.Warn("relay could not ask for the relay state", "error", err)
		return
	}
	select {
	case <-w.done:
	case <-ctx.Done():
		t.core.log.Warn("relay got no relay state", "waited", t.core.timeout)
	}
}

// Events implements Relay.
func (t *Tasmota) Events() <-chan Event { return t.core.events }

// Dropped returns how many device messages were dropped as malformed, of
// another firmware's shape, or with an unknown value.
func (t *Tasmota) Dropped() int64 { return t.core.dropped.Load() }

// EventsDropped returns how many events were dropped because the events
// channel was full.
func (t *Tasmota) EventsDropped() int64 { return t.core.eventsDropped.Load() }

// Close implements Relay: it switches the relay off (waiting for the
// device at most ConfirmTimeout), disconnects, and closes Events. The
// error says the device did not confirm off; the relay is released anyway.
func (t *Tasmota) Close() error {
	return t.core.close(func(ctx context.Context) error { return t.switchAndWait(ctx, false) })
}

// onResult takes stat/<topic>/RESULT: the answer to every command, a
// state change among them.
func (t *Tasmota) onResult(topic string, payload []byte) {
	on, ok, err := parseTasmotaResult(payload, t.relay)
	if err != nil {
		t.core.drop("tasmota_result", topic, payload, err)
		return
	}
	if ok {
		t.core.report(on, "")
	}
}

// onTele takes tele/<topic>/STATE, SENSOR and LWT.
func (t *Tasmota) onTele(topic string, payload []byte) {
	switch name := strings.TrimPrefix(topic, t.teleTopic); name {
	case "STATE":
		on, ok, err := parseTasmotaResult(payload, t.relay)
		if err != nil {
			t.core.drop("tasmota_state", topic, payload, err)
			return
		}
		if ok {
			t.core.report(on, "")
		}
	case "SENSOR":
		w, ok, err := parseTasmotaSensor(payload, t.relay)
		if err != nil {
			t.core.drop("tasmota_sensor", topic, payload, err)
			return
		}
		if ok {
			t.core.power(w)
		}
	case "LWT":
		online, err := parseTasmotaLWT(payload)
		if err != nil {
			t.core.drop("tasmota_lwt", topic, payload, err)
			return
		}
		if t.core.setOnline(online) {
			t.resync()
		}
	}
}

// parseTasmotaPower decodes a state text: the value of POWER<n> in RESULT
// and STATE (and the payload of the plain stat/<topic>/POWER<n>).
func parseTasmotaPower(payload []byte) (on bool, err error) {
	switch string(bytes.TrimSpace(payload)) {
	case "ON":
		return true, nil
	case "OFF":
		return false, nil
	}
	return false, fmt.Errorf("power state %s: want ON or OFF (are StateText1 and StateText2 changed?)", quoteShort(payload))
}

// parseTasmotaResult decodes the state of relay from a JSON object that
// may carry it: stat/<topic>/RESULT or tele/<topic>/STATE. ok is false
// when the object does not mention the relay (a RESULT of another
// command, another relay's state).
func parseTasmotaResult(payload []byte, relay int) (on, ok bool, err error) {
	if t := bytes.TrimSpace(payload); len(t) == 0 || t[0] != '{' {
		return false, false, fmt.Errorf("result %s: not a JSON object", quoteShort(payload))
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(payload, &obj); err != nil {
		return false, false, fmt.Errorf("result: %w", err)
	}
	for _, key := range tasmotaPowerKeys(relay) {
		raw, found := obj[key]
		if !found {
			continue
		}
		var state string
		if err := json.Unmarshal(raw, &state); err != nil {
			return false, false, fmt.Errorf("result %s: %s is not a string", quoteShort(payload), key)
		}
		on, err := parseTasmotaPower([]byte(state))
		if err != nil {
			return false, false, fmt.Errorf("result %s: %w", key, err)
		}
		return on, true, nil
	}
	return false, false, nil
}

// parseTasmotaSensor decodes the power reading of tele/<topic>/SENSOR.
// ENERGY.Power is a number on single-channel meters and an array on
// multi-channel ones, where channel picks the element (channel 0 or 1:
// the first). ok is false when the message has no power reading (another
// sensor's telemetry). A reading must be a finite, non-negative number.
func parseTasmotaSensor(payload []byte, channel int) (power float64, ok bool, err error) {
	if t := bytes.TrimSpace(payload); len(t) == 0 || t[0] != '{' {
		return 0, false, fmt.Errorf("sensor %s: not a JSON object", quoteShort(payload))
	}
	var msg struct {
		Energy json.RawMessage `json:"ENERGY"`
	}
	if err := json.Unmarshal(payload, &msg); err != nil {
		return 0, false, fmt.Errorf("sensor: %w", err)
	}
	if len(msg.Energy) == 0 || string(msg.Energy) == "null" {
		return 0, false, nil
	}
	var energy struct {
		Power json.RawMessage `json:"Power"`
	}
	if err := json.Unmarshal(msg.Energy, &energy); err != nil {
		return 0, false, fmt.Errorf("sensor ENERGY: %w", err)
	}
	if len(energy.Power) == 0 || string(energy.Power) == "null" {
		return 0, false, nil
	}
	if energy.Power[0] == '[' {
		var powers []*float64
		if err := json.Unmarshal(energy.Power, &powers); err != nil {
			return 0, false, fmt.Errorf("sensor ENERGY.Power: %w", err)
		}
		i := max(channel-1, 0)
		if i >= len(powers) {
			return 0, false, fmt.Errorf("sensor ENERGY.Power has %d channels, relay %d has none", len(powers), channel)
		}
		if powers[i] == nil {
			return 0, false, fmt.Errorf("sensor ENERGY.Power[%d] is null", i)
		}
		power = *powers[i]
	} else if err := json.Unmarshal(energy.Power, &power); err != nil {
		return 0, false, fmt.Errorf("sensor ENERGY.Power: %w", err)
	}
	if math.IsNaN(power) || math.IsInf(power, 0) || power < 0 {
		return 0, false, fmt.Errorf("sensor ENERGY.Power %g: want a finite, non-negative number of watts", power)
	}
	if power == 0 {
		power = 0 // not -0
	}
	return power, true, nil
}

// parseTasmotaLWT decodes tele/<topic>/LWT.
func parseTasmotaLWT(payload []byte) (online bool, err error) {
	switch string(bytes.TrimSpace(payload)) {
	case "Online":
		return true, nil
	case "Offline":
		return false, nil
	}
	return false, fmt.Errorf("LWT %s: want Online or Offline", quoteShort(payload))
}
