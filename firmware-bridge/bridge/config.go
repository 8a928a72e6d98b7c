package bridge

import (
	"bytes"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/fabgate/fabgate/internal/mqtt"
	"github.com/fabgate/fabgate/internal/wire"
)

// Config is the bridge's configuration file (JSON). Settings at the top
// apply to every device unless the device sets its own.
type Config struct {
	Broker       BrokerConfig `json:"broker"`
	Prefix       string       `json:"prefix"`    // default fabgate/v1
	StateDir     string       `json:"state_dir"` // default /var/lib/fabgate-bridge
	BadgeKey     string       `json:"badge_key"` // the lab's badge key, 64 hex digits
	BadgeKeyFile string       `json:"badge_key_file"`
	// MaxOfflineAge and OfflineSessionLimit are durations such as "24h".
	MaxOfflineAge       Duration     `json:"max_offline_age"`
	OfflineSessionLimit Duration     `json:"offline_session_limit"`
	Devices             []DeviceSpec `json:"devices"`
}

// BrokerConfig is how to reach an MQTT broker.
type BrokerConfig struct {
	URL      string `json:"url"`       // tcp://host:1883 or ssl://host:8883
	CAFile   string `json:"ca_file"`   // PEM CA bundle for ssl:// (default: the system's)
	CertFile string `json:"cert_file"` // client certificate (PEM), with key_file
	KeyFile  string `json:"key_file"`
	Username string `json:"username"` // vendor brokers only: a device logs in as its id
	Password string `json:"password"`
}

// DeviceSpec is one device of the file.
type DeviceSpec struct {
	ID         string `json:"id"`
	Secret     string `json:"secret"`
	SecretFile string `json:"secret_file"`
	// AllowlistKey (hex) and AllowlistKeyID are the device's own
	// allowlist key and its id, shown with its secret and after each badge
	// key rotation (protocol §8.1).
	AllowlistKey     string        `json:"allowlist_key"`
	AllowlistKeyFile string        `json:"allowlist_key_file"`
	AllowlistKeyID   int64         `json:"allowlist_key_id"`
	Broker           *BrokerConfig `json:"broker"` // default: the file's broker
	Reader           KindSpec      `json:"reader"`
	Relay            KindSpec      `json:"relay"`
	Indicator        *KindSpec     `json:"indicator"` // a LED or buzzer on a GPIO line
	// OfflineSessionLimit overrides the file's.
	OfflineSessionLimit Duration `json:"offline_session_limit"`
}

// KindSpec is a reader, relay or indicator: its kind and the settings of
// that kind, decoded by the kind's builder.
type KindSpec struct {
	Kind     string
	Settings json.RawMessage
}

// UnmarshalJSON keeps the whole object for the kind's builder.
func (k *KindSpec) UnmarshalJSON(b []byte) error {
	var head struct {
		Kind string `json:"kind"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return err
	}
	k.Kind, k.Settings = head.Kind, bytes.Clone(b)
	return nil
}

// Duration is a time.Duration written as "90s", "24h".
type Duration time.Duration

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"24h\" or \"90m\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		return fmt.Errorf("%q is not a positive duration such as \"24h\" or \"90m\"", s)
	}
	*d = Duration(v)
	return nil
}

var deviceIDPattern = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)

// LoadConfig reads and checks a configuration file.
func LoadConfig(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	cfg, err := ParseConfig(f)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig decodes a configuration and checks it; errors name the
// setting and say what to change.
func ParseConfig(r io.Reader) (*Config, error) {
	var cfg Config
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("not valid JSON at byte %d: %w", se.Offset, err)
		}
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("not valid JSON: the file ends too early")
		}
		return nil, fmt.Errorf("%w (see docs/hardware.md for the settings)", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("the file must hold one JSON object and nothing after it (at byte %d)", dec.InputOffset())
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// Validate fills defaults and checks the settings.
func (c *Config) Validate() error {
	if c.Prefix == "" {
		c.Prefix = wire.DefaultPrefix
	}
	if _, err := wire.NewTopics(c.Prefix); err != nil {
		return fmt.Errorf("prefix: %w", err)
	}
	if c.StateDir == "" {
		c.StateDir = "/var/lib/fabgate-bridge"
	}
	if c.MaxOfflineAge == 0 {
		c.MaxOfflineAge = Duration(wire.DefaultMaxOfflineAge)
	}
	if c.OfflineSessionLimit == 0 {
		c.OfflineSessionLimit = Duration(time.Hour)
	}
	if c.BadgeKey == "" && c.BadgeKeyFile != "" {
		b, err := os.ReadFile(c.BadgeKeyFile)
		if err != nil {
			return fmt.Errorf("badge_key_file: %w", err)
		}
		c.BadgeKey = strings.TrimSpace(string(b))
	}
	if k, err := hex.DecodeString(c.BadgeKey); err != nil || len(k) < 16 {
		return fmt.Errorf("badge_key: give the lab's badge key (hex, shown with the device secret when the device is created), or badge_key_file")
	}
	if len(c.Devices) == 0 {
		return fmt.Errorf("devices: list at least one device")
	}
	seen := map[string]bool{}
	for i := range c.Devices {
		dv := &c.Devices[i]
		where := fmt.Sprintf("devices[%d]", i)
		if !deviceIDPattern.MatchString(dv.ID) {
			return fmt.Errorf("%s.id: %q is not a device id (1-32 of a-z, 0-9 and -, as registered on the server)", where, dv.ID)
		}
		where = fmt.Sprintf("devices[%d] (%s)", i, dv.ID)
		if seen[dv.ID] {
			return fmt.Errorf("%s: the id is used twice", where)
		}
		seen[dv.ID] = true
		if dv.Secret == "" && dv.SecretFile != "" {
			b, err := os.ReadFile(dv.SecretFile)
			if err != nil {
				return fmt.Errorf("%s.secret_file: %w", where, err)
			}
			dv.Secret = strings.TrimSpace(string(b))
		}
		if dv.Secret == "" {
			return fmt.Errorf("%s.secret: give the device's MQTT secret (shown once when it was created), or secret_file", where)
		}
		if dv.AllowlistKey == "" && dv.AllowlistKeyFile != "" {
			b, err := os.ReadFile(dv.AllowlistKeyFile)
			if err != nil {
				return fmt.Errorf("%s.allowlist_key_file: %w", where, err)
			}
			dv.AllowlistKey = strings.TrimSpace(string(b))
		}
		switch k, err := hex.DecodeString(dv.AllowlistKey); {
		case dv.AllowlistKeyID < 0:
			return fmt.Errorf("%s.allowlist_key_id: must be the key id shown with the key (1 or more)", where)
		case dv.AllowlistKey == "" && dv.AllowlistKeyID != 0:
			return fmt.Errorf("%s.allowlist_key: allowlist_key_id is set without its key; give both, as shown for the device", where)
		case dv.AllowlistKey != "" && (err != nil || len(k) != 32):
			return fmt.Errorf("%s.allowlist_key: give the device's allowlist key (64 hex digits, shown with the device secret and after each badge key rotation)", where)
		case dv.AllowlistKey != "" && dv.AllowlistKeyID == 0:
			return fmt.Errorf("%s.allowlist_key_id: give the key id shown with the allowlist key", where)
		}
		if dv.Broker == nil {
			dv.Broker = &c.Broker
		}
		if err := dv.Broker.check(); err != nil {
			return fmt.Errorf("%s.broker: %w", where, err)
		}
		if dv.OfflineSessionLimit == 0 {
			dv.OfflineSessionLimit = c.OfflineSessionLimit
		}
		if dv.Reader.Kind == "" {
			return fmt.Errorf("%s.reader.kind: choose one of %s", where, strings.Join(ReaderKinds(), ", "))
		}
		if dv.Relay.Kind == "" {
			return fmt.Errorf("%s.relay.kind: choose one of %s", where, strings.Join(RelayKinds(), ", "))
		}
		if err := checkReader(dv.Reader); err != nil {
			return fmt.Errorf("%s.reader: %w", where, err)
		}
		if err := checkRelay(dv.Relay); err != nil {
			return fmt.Errorf("%s.relay: %w", where, err)
		}
		if dv.Indicator != nil {
			if err := checkIndicator(*dv.Indicator); err != nil {
				return fmt.Errorf("%s.indicator: %w", where, err)
			}
		}
	}
	return nil
}

func (b *BrokerConfig) check() error {
	switch {
	case b.URL == "":
		return fmt.Errorf("url: give the broker, e.g. tcp://fabgate.lab:1883 or ssl://fabgate.lab:8883")
	case strings.HasPrefix(b.URL, "tcp://"), strings.HasPrefix(b.URL, "mqtt://"):
		if b.CAFile != "" || b.CertFile != "" {
			return fmt.Errorf("url %s: TLS files are set for a plain tcp:// broker; use ssl://", b.URL)
		}
	case strings.HasPrefix(b.URL, "ssl://"), strings.HasPrefix(b.URL, "tls://"), strings.HasPrefix(b.URL, "mqtts://"):
	default:
		return fmt.Errorf("url %q: use tcp://host:port or ssl://host:port", b.URL)
	}
	if (b.CertFile == "") != (b.KeyFile == "") {
		return fmt.Errorf("cert_file and key_file go together")
	}
	// The files are read now, so that --check finds a CA file that is
	// missing or not PEM before the bridge is started.
	_, err := b.TLS()
	return err
}

// TLS returns the TLS settings of an ssl:// broker (nil for tcp://).
func (b *BrokerConfig) TLS() (*tls.Config, error) {
	if !strings.HasPrefix(b.URL, "ssl://") && !strings.HasPrefix(b.URL, "tls://") && !strings.HasPrefix(b.URL, "mqtts://") {
		return nil, nil
	}
	t, err := mqtt.ClientTLS(b.CAFile, b.CertFile, b.KeyFile)
	switch {
	case errors.Is(err, mqtt.ErrCAFile):
		return nil, fmt.Errorf("ca_file: %w", err)
	case err != nil:
		return nil, fmt.Errorf("cert_file/key_file: %w", err)
	}
	return t, nil
}

// deviceStateDir is a device's own directory under the state directory.
func (c *Config) deviceStateDir(id string) string { return filepath.Join(c.StateDir, id) }

// decodeSettings decodes a kind's settings strictly into v (which must
// have a "kind" field or ignore it).
func decodeSettings(raw json.RawMessage, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	return nil
}
