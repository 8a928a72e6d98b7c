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

// relayKinds builds each kind of relay from its settings.
var relayKinds = map[string]func(ctx context.Context, raw []byte, log *slog.Logger) (relay.Relay, error){
	"gpio": func(_ context.Context, raw []byte, _ *slog.Logger) (relay.Relay, error) {
		c, err := gpioSettings(raw)
		if err != nil {
			return nil, err
		}
		return relay.OpenGPIO(c)
	},
	"sim": func(_ context.Context, raw []byte, _ *slog.Logger) (relay.Relay, error) {
		var s struct {
			Kind   string  `json:"kind"`
			PowerW float64 `json:"power_w"`
		}
		if err := decodeSettings(raw, &s); err != nil {
			return nil, err
		}
		if s.PowerW < 0 {
			return nil, fmt.Errorf("power_w: give watts ≥ 0")
		}
		return relay.NewSim(s.PowerW), nil
	},
}

func init() {
	relayKinds["shelly-gen1"] = func(ctx context.Context, raw []byte, log *slog.Logger) (relay.Relay, error) {
		c, err := shellyGen1Settings(raw)
		if err != nil {
			return nil, err
		}
		c.Log = log
		return relay.NewShellyGen1(ctx, c)
	}
	relayCheckers["shelly-gen1"] = func(raw []byte) error { _, err := shellyGen1Settings(raw); return err }
	relayKinds["shelly-gen2"] = func(ctx context.Context, raw []byte, log *slog.Logger) (relay.Relay, error) {
		c, err := shellyGen2Settings(raw)
		if err != nil {
			return nil, err
		}
		c.Log = log
		return relay.NewShellyGen2(ctx, c)
	}
	relayCheckers["shelly-gen2"] = func(raw []byte) error { _, err := shellyGen2Settings(raw); return err }
	relayKinds["tasmota"] = func(ctx context.Context, raw []byte, log *slog.Logger) (relay.Relay, error) {
		c, err := tasmotaSettings(raw)
		if err != nil {
			return nil, err
		}
		c.Log = log
		return relay.NewTasmota(ctx, c)
	}
	relayCheckers["tasmota"] = func(raw []byte) error { _, err := tasmotaSettings(raw); return err }
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

// indicatorKinds builds each kind of indicator from its settings.
var indicatorKinds = map[string]func(raw []byte, log *slog.Logger) (Indicator, error){
	"gpio": func(raw []byte, log *slog.Logger) (Indicator, error) {
		c, err := gpioSettings(raw)
		if err != nil {
			return nil, err
		}
		return relay.OpenIndicator(relay.IndicatorConfig{Chip: c.Chip, Line: c.Line, ActiveLow: c.ActiveLow, Log: log})
	},
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

// checkers validate settings without opening anything (fabgate-bridge
// --check); kinds without one are checked when they are opened.
var (
	readerCheckers = map[string]func(raw []byte) error{
		"evdev": func(raw []byte) error {
			var s struct {
				Kind string `json:"kind"`
				reader.EvdevConfig
			}
			if err := decodeSettings(raw, &s); err != nil {
				return err
			}
			return s.Validate()
		},
		"serial": func(raw []byte) error {
			var s struct {
				Kind string `json:"kind"`
				reader.SerialConfig
			}
			if err := decodeSettings(raw, &s); err != nil {
				return err
			}
			return s.Validate()
		},
	}
	relayCheckers = map[string]func(raw []byte) error{
		"gpio": func(raw []byte) error { _, err := gpioSettings(raw); return err },
	}
	indicatorCheckers = map[string]func(raw []byte) error{
		"gpio": func(raw []byte) error { _, err := gpioSettings(raw); return err },
	}
)

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

func checkReader(k KindSpec) error {
	if _, ok := readerKinds[k.Kind]; !ok {
		return fmt.Errorf("kind %q is not one of %s", k.Kind, strings.Join(ReaderKinds(), ", "))
	}
	if c := readerCheckers[k.Kind]; c != nil {
		return c(k.Settings)
	}
	if k.Kind == "sim" || k.Kind == "stdin" {
		_, err := readerKinds[k.Kind](k.Settings, slog.New(slog.DiscardHandler))
		return err
	}
	return nil
}

func checkRelay(k KindSpec) error {
	if _, ok := relayKinds[k.Kind]; !ok {
		return fmt.Errorf("kind %q is not one of %s", k.Kind, strings.Join(RelayKinds(), ", "))
	}
	if c := relayCheckers[k.Kind]; c != nil {
		return c(k.Settings)
	}
	return nil
}

func checkIndicator(k KindSpec) error {
	if _, ok := indicatorKinds[k.Kind]; !ok {
		return fmt.Errorf("kind %q is not one of %s", k.Kind, strings.Join(names(indicatorKinds), ", "))
	}
	if c := indicatorCheckers[k.Kind]; c != nil {
		return c(k.Settings)
	}
	return nil
}
