package bridge

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/fabgate/fabgate/firmware-bridge/reader"
	"github.com/fabgate/fabgate/firmware-bridge/relay"
)

// readerKinds builds each kind of reader from its settings.
var readerKinds = map[string]func(raw []byte) (reader.Reader, error){
	"stdin": func(raw []byte) (reader.Reader, error) {
		var s struct {
			Kind string `json:"kind"`
		}
		if err := decodeSettings(raw, &s); err != nil {
			return nil, err
		}
		return reader.Lines{R: os.Stdin}, nil
	},
	"sim": func(raw []byte) (reader.Reader, error) {
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

// indicatorKinds builds each kind of indicator from its settings.
var indicatorKinds = map[string]func(raw []byte) (Indicator, error){}

// checkers validate settings without opening anything (fabgate-bridge
// check); kinds without one are checked by building them.
var (
	readerCheckers    = map[string]func(raw []byte) error{}
	relayCheckers     = map[string]func(raw []byte) error{}
	indicatorCheckers = map[string]func(raw []byte) error{}
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
		_, err := readerKinds[k.Kind](k.Settings)
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
