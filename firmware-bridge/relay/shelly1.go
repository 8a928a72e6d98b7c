package relay

// Shelly Gen1 (Shelly 1, 1PM, Plug S, 2.5 in relay mode, ...) over MQTT,
// as the device's own MQTT API defines it:
//
//	shellies/<id>/relay/<n>/command   on | off              (we publish)
//	shellies/<id>/relay/<n>           on | off | overpower  (state)
//	shellies/<id>/relay/<n>/power     watts, as text        (metering models)
//	shellies/<id>/online              true | false          (retained; the LWT)
//
// The device publishes the state after each command, on each change and
// periodically, and again when it (re)connects: that is all the resync
// Gen1 needs.

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"
)

// ShellyGen1Config configures a Shelly Gen1 relay. The device must have
// MQTT enabled (which turns its cloud off) and point at Broker.
type ShellyGen1Config struct {
	Broker
	// DeviceID is the device's MQTT id, <model>-<MAC> unless changed in
	// its MQTT settings, e.g. shelly1pm-84CCA8A1B2C3: its topics are
	// shellies/<DeviceID>/...
	DeviceID string
	// Relay is the output's index (relay/<Relay>): 0 on single-relay
	// devices, 0 or 1 on a Shelly 2.5.
	Relay int
	// ConfirmTimeout is how long Set waits for the device to report the
	// new state; 0 means DefaultConfirmTimeout.
	ConfirmTimeout time.Duration
	// Log receives the relay's problems; nil discards them.
	Log *slog.Logger
}

// shellyGen1MaxRelay bounds ShellyGen1Config.Relay: no Gen1 device has
// more than four outputs; a larger index is a typo.
const shellyGen1MaxRelay = 15

// Validate checks the configuration; its messages name the field and say
// what to change. The constructor calls it.
func (cfg ShellyGen1Config) Validate() error {
	const vendor = "shelly gen1"
	if err := cfg.Broker.validate(vendor); err != nil {
		return err
	}
	if err := checkTopicPart(vendor, "DeviceID", cfg.DeviceID, "shelly1pm-84CCA8A1B2C3", false); err != nil {
		return err
	}
	if cfg.Relay < 0 || cfg.Relay > shellyGen1MaxRelay {
		return fmt.Errorf("relay: %s config: Relay %d: must be the output's index, 0 to %d (0 on single-relay devices)", vendor, cfg.Relay, shellyGen1MaxRelay)
	}
	_, err := confirmTimeout(vendor, cfg.ConfirmTimeout)
	return err
}

// ShellyGen1 is one output of a Shelly Gen1 device, driven over MQTT.
//
// Gen1's MQTT command takes no timer, so Set ignores the lease: the
// bridge's own session end is what switches the machine off.
type ShellyGen1 struct {
	core        *mqttCore
	cmdTopic    string
	stateTopic  string
	powerTopic  string
	onlineTopic string
}

var _ Relay = (*ShellyGen1)(nil)

// NewShellyGen1 connects to the broker, subscribes to the device's topics
// and switches the output off. A device that does not answer (offline) is
// logged, not an error: it is reported by Events when it comes online.
// The error is a bad config, a broker that refuses or cannot be reached
// before ctx ends, or ctx's error.
func NewShellyGen1(ctx context.Context, cfg ShellyGen1Config) (*ShellyGen1, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	timeout, _ := confirmTimeout("shelly gen1", cfg.ConfirmTimeout)
	base := fmt.Sprintf("shellies/%s/relay/%d", cfg.DeviceID, cfg.Relay)
	s := &ShellyGen1{
		core: newMQTTCore(fmt.Sprintf("relay: shelly gen1 %s relay %d", cfg.DeviceID, cfg.Relay), cfg.Log, timeout,
			"vendor", "shelly_gen1", "device", cfg.DeviceID, "relay", cfg.Relay),
		cmdTopic:    base + "/command",
		stateTopic:  base,
		powerTopic:  base + "/power",
		onlineTopic: "shellies/" + cfg.DeviceID + "/online",
	}
	if err := s.core.connect(ctx, cfg.Broker, mqttClientID("shelly1-"+cfg.DeviceID), nil); err != nil {
		return nil, err
	}
	err := s.core.subscribe(s.stateTopic, s.onRelay)
	if err == nil {
		err = s.core.subscribe(s.powerTopic, s.onRelay)
	}
	if err == nil {
		err = s.core.subscribe(s.onlineTopic, s.onOnline)
	}
	if err == nil {
		err = s.core.startOff(ctx, func(ctx context.Context) error { return s.switchAndWait(ctx, false) })
	}
	if err != nil {
		s.core.client.Close(nil)
		return nil, err
	}
	return s, nil
}

// Set implements Relay. The lease is ignored: Gen1 has no timer on MQTT.
func (s *ShellyGen1) Set(ctx context.Context, on bool, lease time.Duration) error {
	return s.core.set(ctx, on,
		func(ctx context.Context) error { return s.switchAndWait(ctx, on) },
		func(ctx context.Context) error { return s.command(ctx, false) })
}

func (s *ShellyGen1) switchAndWait(ctx context.Context, on bool) error {
	return s.core.switchAndWait(ctx, on, func(ctx context.Context) error { return s.command(ctx, on) })
}

func (s *ShellyGen1) command(ctx context.Context, on bool) error {
	return s.core.publish(ctx, s.cmdTopic, []byte(onOff(on)))
}

// Events implements Relay.
func (s *ShellyGen1) Events() <-chan Event { return s.core.events }

// Dropped returns how many device messages were dropped as malformed, of
// another firmware's shape, or with an unknown value.
func (s *ShellyGen1) Dropped() int64 { return s.core.dropped.Load() }

// EventsDropped returns how many events were dropped because the events
// channel was full.
func (s *ShellyGen1) EventsDropped() int64 { return s.core.eventsDropped.Load() }

// Close implements Relay: it switches the output off (waiting for the
// device at most ConfirmTimeout), disconnects, and closes Events. The
// error says the device did not confirm off; the relay is released anyway.
func (s *ShellyGen1) Close() error {
	return s.core.close(func(ctx context.Context) error { return s.switchAndWait(ctx, false) })
}

func (s *ShellyGen1) onRelay(topic string, payload []byte) {
	switch topic {
	case s.stateTopic:
		on, fault, err := parseShellyGen1State(payload)
		if err != nil {
			s.core.drop("shelly_gen1_state", topic, payload, err)
			return
		}
		s.core.report(on, fault)
	case s.powerTopic:
		w, err := parseShellyGen1Power(payload)
		if err != nil {
			s.core.drop("shelly_gen1_power", topic, payload, err)
			return
		}
		s.core.power(w)
	}
}

func (s *ShellyGen1) onOnline(topic string, payload []byte) {
	online, err := parseShellyOnline(payload)
	if err != nil {
		s.core.drop("shelly_online", topic, payload, err)
		return
	}
	s.core.setOnline(online)
}

// parseShellyGen1State decodes shellies/<id>/relay/<n>. "overpower" means
// the device's protection switched the output off: off, with fault set.
func parseShellyGen1State(payload []byte) (on bool, fault string, err error) {
	switch string(bytes.TrimSpace(payload)) {
	case "on":
		return true, "", nil
	case "off":
		return false, "", nil
	case "overpower":
		return false, "overpower", nil
	}
	return false, "", fmt.Errorf("relay state %s: want on, off or overpower", quoteShort(payload))
}

// parseShellyGen1Power decodes shellies/<id>/relay/<n>/power: watts as a
// decimal number. A relay draws power, it does not deliver it: a negative
// or non-finite reading is not a reading.
func parseShellyGen1Power(payload []byte) (float64, error) {
	text := string(bytes.TrimSpace(payload))
	w, err := strconv.ParseFloat(text, 64)
	if err != nil || strings.HasPrefix(strings.ToLower(strings.TrimLeft(text, "+-")), "0x") {
		return 0, fmt.Errorf("power %s: want watts as a decimal number", quoteShort(payload))
	}
	if math.IsNaN(w) || math.IsInf(w, 0) || w < 0 {
		return 0, fmt.Errorf("power %s: want a finite, non-negative number of watts", quoteShort(payload))
	}
	if w == 0 {
		w = 0 // not -0
	}
	return w, nil
}

// parseShellyOnline decodes the online topic (the LWT) of Gen1 and Gen2+
// devices: true or false.
func parseShellyOnline(payload []byte) (bool, error) {
	switch string(bytes.TrimSpace(payload)) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("online %s: want true or false", quoteShort(payload))
}
