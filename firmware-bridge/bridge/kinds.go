package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/fabgate/fabgate/firmware-bridge/reader"
	"github.com/fabgate/fabgate/firmware-bridge/relay"
)

// readerKinds builds each kind of reader from its settings.
var readerKinds = map[string]func(raw []byte, log *slog.Logger) (reader.Reader, error){
	"evdev": func(raw []byte, log *slog.Logger) (reader.Reader, error) {
		var s struct {
			Kind string `json:"kind"`
			reader.EvdevConfig
		}
		if err := decodeSettings(raw, &s); err != nil {
			return nil, err
		}
		s.Log = log
		return reader.NewEvdev(s.EvdevConfig)
	},
	"serial": func(raw []byte, log *slog.Logger) (reader.Reader, error) {
		var s struct {
			Kind string `json:"kind"`
			reader.SerialConfig
		}
		if err := decodeSettings(raw, &s); err != nil {
			return nil, err
		}
		s.Log = log
		return reader.NewSerial(s.SerialConfig)
	},
	"stdin": func(raw []byte, _ *slog.Logger) (reader.Reader, error) {
		var s struct {
			Kind string `json:"kind"`
		}
		if err := decodeSettings(raw, &s); err != nil {
			return nil, err
		}
		return reader.Lines{R: os.Stdin}, nil
	},
	"sim": func(raw []byte, _ *slog.Logger) (reader.Reader, error) {
		var s struct {
			Kind string `json:"kind"`
		}
		if err := decodeSettings(raw, &s); err != nil {
			return nil, err
		}
		return reader.NewSim(), nil
	},
}

// settingsKind is a kind of relay or indicator: check validates its
// settings without opening anything (fabgate-bridge --check); open opens
// it.
type settingsKind[T any] struct {
	check func(raw []byte) error
	open  func(ctx context.Context, raw []byte, log *slog.Logger) (T, error)
}

// kindOf makes a kind from its settings' decoder and its constructor.
func kindOf[T, C any](settings func([]byte) (C, error), open func(context.Context, C, *slog.Logger) (T, error)) settingsKind[T] {
	return settingsKind[T]{
		check: func(raw []byte) error { _, err := settings(raw); return err },
		open: func(ctx context.Context, raw []byte, log *slog.Logger) (T, error) {
			c, err := settings(raw)
			if err != nil {
				var zero T
				return zero, err
			}
			return open(ctx, c, log)
		},
	}
}

// relayKinds are the kinds of relay.
var relayKinds = map[string]settingsKind[relay.Relay]{
	"gpio": kindOf(gpioSettings, func(_ context.Context, c relay.GPIOConfig, _ *slog.Logger) (relay.Relay, error) {
		return relay.OpenGPIO(c)
	}),
	"sim": kindOf(simRelaySettings, func(_ context.Context, powerW float64, _ *slog.Logger) (relay.Relay, error) {
		return relay.NewSim(powerW), nil
	}),
	"shelly-gen1": kindOf(shellyGen1Settings, func(ctx context.Context, c relay.ShellyGen1Config, log *slog.Logger) (relay.Relay, error) {
		c.Log = log
		return relay.NewShellyGen1(ctx, c)
	}),
	"shelly-gen2": kindOf(shellyGen2Settings, func(ctx context.Context, c relay.ShellyGen2Config, log *slog.Logger) (relay.Relay, error) {
		c.Log = log
		return relay.NewShellyGen2(ctx, c)
	}),
	"tasmota": kindOf(tasmotaSettings, func(ctx context.Context, c relay.TasmotaConfig, log *slog.Logger) (relay.Relay, error) {
		c.Log = log
		return relay.NewTasmota(ctx, c)
	}),
}

// indicatorKinds are the kinds of indicator.
var indicatorKinds = map[string]settingsKind[Indicator]{
	"gpio": kindOf(gpioSettings, func(_ context.Context, c relay.GPIOConfig, log *slog.Logger) (Indicator, error) {
		return relay.OpenIndicator(relay.IndicatorConfig{Chip: c.Chip, Line: c.Line, ActiveLow: c.ActiveLow, Log: log})
	}),
}

// simRelaySettings reads a simulated relay's power draw.
func simRelaySettings(raw []byte) (float64, error) {
	var s struct {
		Kind   string  `json:"kind"`
		PowerW float64 `json:"power_w"`
	}
	if err := decodeSettings(raw, &s); err != nil {
		return 0, err
	}
	if s.PowerW < 0 {
		return 0, fmt.Errorf("power_w: give watts ≥ 0")
	}
	return s.PowerW, nil
}

func shellyGen1Settings(raw []byte) (relay.ShellyGen1Config, error) {
	var s struct {
		Kind           string       `json:"kind"`
		Broker         BrokerConfig `json:"broker"`
		DeviceID       string       `json:"device_id"`
		Relay          int          `json:"relay"`
		ConfirmTimeout Duration     `json:"confirm_timeout"`
	}
	if err := decodeSettings(raw, &s); err != nil {
		return relay.ShellyGen1Config{}, err
	}
	b, err := vendorBroker(s.Broker)
	c := relay.ShellyGen1Config{Broker: b, DeviceID: s.DeviceID, Relay: s.Relay, ConfirmTimeout: time.Duration(s.ConfirmTimeout)}
	if err != nil {
		return c, err
	}
	return c, c.Validate()
}

func shellyGen2Settings(raw []byte) (relay.ShellyGen2Config, error) {
	var s struct {
		Kind           string       `json:"kind"`
		Broker         BrokerConfig `json:"broker"`
		Prefix         string       `json:"prefix"`
		SwitchID       int          `json:"switch_id"`
		DeviceID       string       `json:"device_id"`
		ConfirmTimeout Duration     `json:"confirm_timeout"`
	}
	if err := decodeSettings(raw, &s); err != nil {
		return relay.ShellyGen2Config{}, err
	}
	b, err := vendorBroker(s.Broker)
	c := relay.ShellyGen2Config{Broker: b, Prefix: s.Prefix, SwitchID: s.SwitchID, DeviceID: s.DeviceID, ConfirmTimeout: time.Duration(s.ConfirmTimeout)}
	if err != nil {
		return c, err
	}
	return c, c.Validate()
}

func tasmotaSettings(raw []byte) (relay.TasmotaConfig, error) {
	var s struct {
		Kind           string       `json:"kind"`
		Broker         BrokerConfig `json:"broker"`
		Topic          string       `json:"topic"`
		Relay          int          `json:"relay"`
		ConfirmTimeout Duration     `json:"confirm_timeout"`
	}
	if err := decodeSettings(raw, &s); err != nil {
		return relay.TasmotaConfig{}, err
	}
	b, err := vendorBroker(s.Broker)
	c := relay.TasmotaConfig{Broker: b, Topic: s.Topic, Relay: s.Relay, ConfirmTimeout: time.Duration(s.ConfirmTimeout)}
	if err != nil {
		return c, err
	}
	return c, c.Validate()
}

// vendorBroker is the broker a smart plug or relay talks to: given in its
// settings, since the device's own FabGate login may only use FabGate
// topics.
func vendorBroker(b BrokerConfig) (relay.Broker, error) {
	if err := b.check(); err != nil {
		return relay.Broker{}, fmt.Errorf("broker: %w", err)
	}
	t, err := b.TLS()
	if err != nil {
		return relay.Broker{}, fmt.Errorf("broker: %w", err)
	}
	return relay.Broker{URL: b.URL, Username: b.Username, Password: b.Password, TLS: t}, nil
}

// gpioSettings reads a GPIO line's settings; the line may be written as
// a number (17) or a string ("17", "GPIO17").
func gpioSettings(raw []byte) (relay.GPIOConfig, error) {
	var s struct {
		Kind      string          `json:"kind"`
		Chip      string          `json:"chip"`
		Line      json.RawMessage `json:"line"`
		ActiveLow bool            `json:"active_low"`
	}
	if err := decodeSettings(raw, &s); err != nil {
		return relay.GPIOConfig{}, err
	}
	c := relay.GPIOConfig{Chip: s.Chip, ActiveLow: s.ActiveLow}
	if len(s.Line) > 0 {
		var n json.Number
		if err := json.Unmarshal(s.Line, &c.Line); err != nil {
			if err := json.Unmarshal(s.Line, &n); err != nil {
				return c, fmt.Errorf("line: give the line's offset (17) or name (\"GPIO17\")")
			}
			c.Line = n.String()
		}
	}
	return c, c.Validate()
}

func names[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ReaderKinds lists the reader kinds.
func ReaderKinds() []string { return names(readerKinds) }

// RelayKinds lists the relay kinds.
func RelayKinds() []string { return names(relayKinds) }

// checkReader checks a reader's settings: its constructor opens nothing
// (Run opens the device), so building it checks them.
func checkReader(k KindSpec) error {
	build, ok := readerKinds[k.Kind]
	if !ok {
		return fmt.Errorf("kind %q is not one of %s", k.Kind, strings.Join(ReaderKinds(), ", "))
	}
	_, err := build(k.Settings, slog.New(slog.DiscardHandler))
	return err
}

func checkRelay(k KindSpec) error {
	kind, ok := relayKinds[k.Kind]
	if !ok {
		return fmt.Errorf("kind %q is not one of %s", k.Kind, strings.Join(RelayKinds(), ", "))
	}
	return kind.check(k.Settings)
}

func checkIndicator(k KindSpec) error {
	kind, ok := indicatorKinds[k.Kind]
	if !ok {
		return fmt.Errorf("kind %q is not one of %s", k.Kind, strings.Join(names(indicatorKinds), ", "))
	}
	return kind.check(k.Settings)
}
