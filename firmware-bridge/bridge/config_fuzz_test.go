package bridge

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/wire"
)

// FuzzParseConfig feeds the bridge arbitrary configuration files: each is
// refused with a message or accepted, and an accepted one holds what the
// bridge relies on (defaults filled, every device with a valid and unique
// id, a broker, a known reader and relay) and validates again unchanged.
func FuzzParseConfig(f *testing.F) {
	dev := `{"id":"laser-1","secret":"s","reader":{"kind":"sim"},"relay":{"kind":"sim"}}`
	for _, s := range []string{
		`{"badge_key":"` + testKey + `","broker":{"url":"tcp://b:1883"},"devices":[` + dev + `]}`,
		`{"prefix":"lab/v2","state_dir":"/tmp/x","max_offline_age":"2h","offline_session_limit":"90m","badge_key":"` + testKey + `","broker":{"url":"tcp://b:1883"},"devices":[` +
			`{"id":"a","secret":"s","allowlist_key":"` + testKey + `","allowlist_key_id":3,"offline_session_limit":"1h","reader":{"kind":"evdev","path":"/x","decimal":"msb"},` +
			`"relay":{"kind":"gpio","chip":"gpiochip0","line":17},"indicator":{"kind":"gpio","chip":"gpiochip0","line":"GPIO27","active_low":true}},` +
			`{"id":"b","secret":"s","broker":{"url":"ssl://b:8883"},"reader":{"kind":"serial","port":"/x","baud":9600},"relay":{"kind":"shelly-gen1","device_id":"shelly1-AB","broker":{"url":"tcp://p:1883"}}},` +
			`{"id":"c","secret":"s","reader":{"kind":"stdin"},"relay":{"kind":"shelly-gen2","prefix":"shellyplus1pm-a8","switch_id":0,"confirm_timeout":"5s","broker":{"url":"tcp://p:1883"}}},` +
			`{"id":"d","secret":"s","reader":{"kind":"stdin"},"relay":{"kind":"tasmota","topic":"plug","relay":1,"broker":{"url":"tcp://p:1883"}}}]}`,
		`{"badge_key":"` + testKey + `","broker":{"url":"tcp://b:1883"},"devices":[` + dev + `,` + dev + `]}`,
		`{"badge_key":"` + testKey + `","broker":{"url":"tcp://b:1883"},"devices":[` + dev + `]} {}`,
		`{"badge_key":"` + testKey + `","broker":{"url":"tcp://b:1883"},"devices":[null]}`,
		`{"badge_key":"` + testKey + `","broker":null,"devices":[{"id":"x","secret":"s","broker":null,"reader":null,"relay":null,"indicator":null}]}`,
		`{"badge_key":"` + testKey + `","broker":{"url":"tcp://b:1883"},"devices":[{"id":"x","secret":"s","reader":{"kind":"sim"},"relay":{"kind":"tasmota","relay":-1}}]}`,
		`{"badge_key":"` + testKey + `","broker":{"url":"tcp://b:1883"},"max_offline_age":"-1s","devices":[` + dev + `]}`,
		`{"badge_key":"` + testKey + `","broker":{"url":"tcp://b:1883"},"devices":[{"id":"x","secret":"s","reader":{"kind":"sim"},"relay":{"kind":"sim"},"allowlist_key_id":9223372036854775807}]}`,
		`{"badge_key":"zz","devices":[]}`, `{"devices":`, `{"brokr":{}}`, `{}`, `null`, `[]`, `""`, ``, `{"prefix":"#"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if mentionsDeviceFiles(data) {
			return // a file setting naming /dev/zero would read forever
		}
		cfg, err := ParseConfig(bytes.NewReader(data))
		if err != nil {
			if cfg != nil || strings.TrimSpace(err.Error()) == "" {
				t.Fatalf("%q: config %v with error %q", data, cfg, err)
			}
			return
		}
		if _, err := wire.NewTopics(cfg.Prefix); err != nil {
			t.Errorf("accepted prefix %q: %v", cfg.Prefix, err)
		}
		if k, err := hex.DecodeString(cfg.BadgeKey); err != nil || len(k) < 16 {
			t.Errorf("accepted badge key %q", cfg.BadgeKey)
		}
		if cfg.StateDir == "" || cfg.MaxOfflineAge <= 0 || cfg.OfflineSessionLimit <= 0 || len(cfg.Devices) == 0 {
			t.Errorf("accepted without its defaults: %+v", cfg)
		}
		seen := map[string]bool{}
		for _, d := range cfg.Devices {
			if !deviceIDPattern.MatchString(d.ID) || seen[d.ID] {
				t.Errorf("accepted device id %q (twice: %v)", d.ID, seen[d.ID])
			}
			seen[d.ID] = true
			if d.Secret == "" || d.Broker == nil || d.Broker.URL == "" || time.Duration(d.OfflineSessionLimit) <= 0 {
				t.Errorf("device %s accepted without a secret, broker or offline limit: %+v", d.ID, d)
			}
			if !slices.Contains(ReaderKinds(), d.Reader.Kind) || !slices.Contains(RelayKinds(), d.Relay.Kind) {
				t.Errorf("device %s accepted with reader %q and relay %q", d.ID, d.Reader.Kind, d.Relay.Kind)
			}
		}
		again := cloneConfig(t, cfg)
		if err := again.Validate(); err != nil {
			t.Fatalf("%q: accepted, then refused: %v", data, err)
		}
		if !reflect.DeepEqual(again, cfg) {
			t.Errorf("validating again changed %+v into %+v", cfg, again)
		}
	})
}

// cloneConfig copies cfg deeply, device brokers that share the file's
// broker still sharing it.
func cloneConfig(t *testing.T, cfg *Config) *Config {
	t.Helper()
	c := *cfg
	c.Devices = slices.Clone(cfg.Devices)
	for i, d := range cfg.Devices {
		if d.Broker == &cfg.Broker {
			c.Devices[i].Broker = &c.Broker
		} else if d.Broker != nil {
			b := *d.Broker
			c.Devices[i].Broker = &b
		}
	}
	return &c
}

// mentionsDeviceFiles reports whether the JSON data may name a path under
// /dev, /proc or /sys in a string, however it is escaped.
func mentionsDeviceFiles(data []byte) bool {
	var v any
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&v); err != nil {
		// Not read whole (a number out of range in a kind's settings, say):
		// look at the bytes, escapes included.
		return bytes.Contains(data, []byte("dev")) || bytes.Contains(data, []byte("proc")) ||
			bytes.Contains(data, []byte("sys")) || bytes.Contains(data, []byte(`\u`))
	}
	var walk func(any) bool
	walk = func(v any) bool {
		switch v := v.(type) {
		case string:
			for _, p := range []string{"/dev", "/proc", "/sys"} {
				if strings.Contains(v, p) || strings.HasPrefix(v, p[1:]) {
					return true
				}
			}
		case []any:
			return slices.ContainsFunc(v, walk)
		case map[string]any:
			for k, e := range v {
				if walk(k) || walk(e) {
					return true
				}
			}
		}
		return false
	}
	return walk(v)
}
