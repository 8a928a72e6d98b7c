package bridge

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testKey = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

func TestParseConfigExample(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "sim.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := ParseConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Devices[0]
	if cfg.Prefix != "fabgate/v1" || cfg.StateDir != "/var/lib/fabgate-bridge" || time.Duration(cfg.MaxOfflineAge) != 24*time.Hour {
		t.Errorf("defaults not filled: %+v", cfg)
	}
	if d.AllowlistKeyID != 1 || len(d.AllowlistKey) != 64 {
		t.Errorf("allowlist key %q id %d", d.AllowlistKey, d.AllowlistKeyID)
	}
	if d.ID != "laser-1" || d.Broker.URL != "tcp://127.0.0.1:1883" || time.Duration(d.OfflineSessionLimit) != 2*time.Hour || d.Reader.Kind != "sim" || d.Relay.Kind != "sim" {
		t.Errorf("device: %+v", d)
	}
}

// Every bad setting is refused at start with a message naming it.
func TestParseConfigRefusals(t *testing.T) {
	dev := func(extra string) string {
		return `{"badge_key":"` + testKey + `","broker":{"url":"tcp://b:1883"},"devices":[{"id":"laser-1","secret":"s","reader":{"kind":"sim"},"relay":{"kind":"sim"}` + extra + `}]}`
	}
	for _, tt := range []struct{ name, in, want string }{
		{"not json", `{"devices":`, "not valid JSON"},
		{"unknown setting", `{"brokr":{}}`, `unknown field "brokr"`},
		{"no badge key", `{"devices":[]}`, "badge_key"},
		{"short badge key", `{"badge_key":"abcd","devices":[]}`, "badge_key"},
		{"no devices", `{"badge_key":"` + testKey + `"}`, "devices: list at least one"},
		{"bad id", strings.Replace(dev(""), "laser-1", "Laser 1", 1), `devices[0].id: "Laser 1" is not a device id`},
		{"no secret", strings.Replace(dev(""), `"secret":"s",`, "", 1), "devices[0] (laser-1).secret"},
		{"no broker", strings.Replace(dev(""), `"broker":{"url":"tcp://b:1883"},`, "", 1), "broker: url"},
		{"bad broker scheme", strings.Replace(dev(""), "tcp://b:1883", "http://b", 1), "use tcp://host:port or ssl://host:port"},
		{"tls files on tcp", strings.Replace(dev(""), `"url":"tcp://b:1883"`, `"url":"tcp://b:1883","ca_file":"ca.pem"`, 1), "use ssl://"},
		{"missing CA file", strings.Replace(dev(""), `"url":"tcp://b:1883"`, `"url":"ssl://b:8883","ca_file":"/nonexistent/ca.pem"`, 1), "devices[0] (laser-1).broker: ca_file: CA file: open /nonexistent/ca.pem"},
		{"CA file not PEM", strings.Replace(dev(""), `"url":"tcp://b:1883"`, `"url":"ssl://b:8883","ca_file":"config_test.go"`, 1), "ca_file: CA file: config_test.go holds no PEM certificate"},
		{"unknown reader", strings.Replace(dev(""), `"reader":{"kind":"sim"}`, `"reader":{"kind":"laser-eyes"}`, 1), `reader: kind "laser-eyes" is not one of`},
		{"no reader kind", strings.Replace(dev(""), `"reader":{"kind":"sim"}`, `"reader":{}`, 1), "reader.kind: choose one of"},
		{"unknown relay", strings.Replace(dev(""), `"relay":{"kind":"sim"}`, `"relay":{"kind":"zigbee"}`, 1), `relay: kind "zigbee" is not one of`},
		{"unknown reader setting", strings.Replace(dev(""), `"reader":{"kind":"sim"}`, `"reader":{"kind":"sim","speed":3}`, 1), `unknown field "speed"`},
		{"bad duration", dev(`,"offline_session_limit":"forever"`), `"forever" is not a positive duration`},
		{"duration number", dev(`,"offline_session_limit":3600`), "a duration is a string"},
		{"twice the same id", strings.Replace(dev(""), `}]}`, `},{"id":"laser-1","secret":"t","reader":{"kind":"sim"},"relay":{"kind":"sim"}}]}`, 1), "the id is used twice"},
		{"evdev without path", strings.Replace(dev(""), `"reader":{"kind":"sim"}`, `"reader":{"kind":"evdev"}`, 1), "path"},
		{"evdev bad decimal", strings.Replace(dev(""), `"reader":{"kind":"sim"}`, `"reader":{"kind":"evdev","path":"/dev/input/event0","decimal":"sideways"}`, 1), "decimal"},
		{"serial without port", strings.Replace(dev(""), `"reader":{"kind":"sim"}`, `"reader":{"kind":"serial","baud":9600}`, 1), "port"},
		{"serial bad baud", strings.Replace(dev(""), `"reader":{"kind":"sim"}`, `"reader":{"kind":"serial","port":"/dev/ttyUSB0","baud":-3}`, 1), "baud"},
		{"gpio without chip", strings.Replace(dev(""), `"relay":{"kind":"sim"}`, `"relay":{"kind":"gpio","line":17}`, 1), "chip"},
		{"gpio line of another type", strings.Replace(dev(""), `"relay":{"kind":"sim"}`, `"relay":{"kind":"gpio","chip":"gpiochip0","line":[17]}`, 1), "line: give the line's offset"},
		{"indicator unknown kind", dev(`,"indicator":{"kind":"siren"}`), `indicator: kind "siren" is not one of gpio`},
		{"shelly without broker", strings.Replace(dev(""), `"relay":{"kind":"sim"}`, `"relay":{"kind":"shelly-gen1","device_id":"shelly1-ABC"}`, 1), "relay: broker: url"},
		{"shelly gen2 without prefix", strings.Replace(dev(""), `"relay":{"kind":"sim"}`, `"relay":{"kind":"shelly-gen2","broker":{"url":"tcp://plugs:1883"}}`, 1), "Prefix"},
		{"tasmota relay out of range", strings.Replace(dev(""), `"relay":{"kind":"sim"}`, `"relay":{"kind":"tasmota","topic":"plug","relay":40,"broker":{"url":"tcp://plugs:1883"}}`, 1), "Relay"},
		{"tasmota topic with wildcard", strings.Replace(dev(""), `"relay":{"kind":"sim"}`, `"relay":{"kind":"tasmota","topic":"plug/#","broker":{"url":"tcp://plugs:1883"}}`, 1), "Topic"},
		{"bad prefix", strings.Replace(dev(""), `{"badge_key"`, `{"prefix":"a/#","badge_key"`, 1), "prefix"},
		{"allowlist key without id", dev(`,"allowlist_key":"` + testKey + `"`), "devices[0] (laser-1).allowlist_key_id"},
		{"allowlist key id without key", dev(`,"allowlist_key_id":2`), "devices[0] (laser-1).allowlist_key: allowlist_key_id is set without its key"},
		{"short allowlist key", dev(`,"allowlist_key":"abcd","allowlist_key_id":1`), "devices[0] (laser-1).allowlist_key: give the device's allowlist key"},
		{"negative allowlist key id", dev(`,"allowlist_key":"` + testKey + `","allowlist_key_id":-1`), "allowlist_key_id"},
		{"missing allowlist key file", dev(`,"allowlist_key_file":"/nonexistent/key","allowlist_key_id":1`), "allowlist_key_file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig(strings.NewReader(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// Hardware settings as an installer writes them are accepted without the
// hardware being there (--check runs anywhere).
func TestParseConfigHardwareKinds(t *testing.T) {
	in := `{"badge_key":"` + testKey + `","broker":{"url":"tcp://b:1883"},"devices":[
		{"id":"laser-1","secret":"s","reader":{"kind":"evdev","path":"/dev/input/by-id/usb-reader-event-kbd","decimal":"msb"},
		 "relay":{"kind":"gpio","chip":"gpiochip0","line":17},"indicator":{"kind":"gpio","chip":"gpiochip0","line":"GPIO27","active_low":true}},
		{"id":"mill-1","secret":"s","reader":{"kind":"serial","port":"/dev/ttyUSB0","baud":115200},"relay":{"kind":"gpio","chip":"gpiochip0","line":"22","active_low":true}},
		{"id":"plug-1","secret":"s","reader":{"kind":"stdin"},"relay":{"kind":"shelly-gen1","device_id":"shelly1pm-84CCA8A1B2C3","broker":{"url":"tcp://127.0.0.1:1883","username":"bridge","password":"p"}}},
		{"id":"plug-2","secret":"s","reader":{"kind":"stdin"},"relay":{"kind":"shelly-gen2","prefix":"shellyplus1pm-a8032ab636ec","switch_id":0,"confirm_timeout":"5s","broker":{"url":"tcp://127.0.0.1:1883"}}},
		{"id":"plug-3","secret":"s","reader":{"kind":"stdin"},"relay":{"kind":"tasmota","topic":"laser-plug","relay":1,"broker":{"url":"ssl://plugs:8883"}}}]}`
	cfg, err := ParseConfig(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if c, err := gpioSettings(cfg.Devices[0].Relay.Settings); err != nil || c.Line != "17" || c.Chip != "gpiochip0" || c.ActiveLow {
		t.Fatalf("gpio settings %+v, %v", c, err)
	}
}

func TestConfigSecretAndKeyFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "key"), []byte(testKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	in := `{"badge_key_file":"` + filepath.Join(dir, "key") + `","broker":{"url":"ssl://b:8883"},"devices":[{"id":"d","secret_file":"` + filepath.Join(dir, "secret") + `","reader":{"kind":"sim"},"relay":{"kind":"sim"}}]}`
	cfg, err := ParseConfig(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BadgeKey != testKey || cfg.Devices[0].Secret != "s3cret" {
		t.Fatalf("key %q secret %q", cfg.BadgeKey, cfg.Devices[0].Secret)
	}
	if tc, err := cfg.Devices[0].Broker.TLS(); err != nil || tc == nil {
		t.Fatalf("ssl:// broker: TLS %v, %v", tc, err)
	}
	missing := strings.Replace(in, filepath.Join(dir, "secret"), filepath.Join(dir, "nope"), 1)
	if _, err := ParseConfig(strings.NewReader(missing)); err == nil || !strings.Contains(err.Error(), "secret_file") {
		t.Fatalf("missing secret file: %v", err)
	}
}
