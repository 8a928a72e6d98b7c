package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config is the configuration of `fabgate serve`. Values come from the
// defaults, then an optional JSON file (--config or FABGATE_CONFIG), then
// FABGATE_* environment variables, then flags; each later source wins.
type Config struct {
	Data           string   `json:"data"`            // data directory (holds fabgate.db)
	HTTP           string   `json:"http"`            // HTTP listen address
	Demo           bool     `json:"demo"`            // seed the demo lab when the data is empty
	LogLevel       string   `json:"log_level"`       // debug, info, warn, error
	LogFormat      string   `json:"log_format"`      // text or json
	TokenTTL       Duration `json:"token_ttl"`       // how long a login lasts
	TLSCert        string   `json:"tls_cert"`        // serve HTTPS with this certificate…
	TLSKey         string   `json:"tls_key"`         // …and key
	TrustedProxies []string `json:"trusted_proxies"` // proxies whose X-Forwarded-For is believed
	SecureCookies  bool     `json:"secure_cookies"`  // mark cookies Secure behind a TLS-terminating proxy

	MQTTListen   string `json:"mqtt_listen"`   // embedded broker address ("" with mqtt_url set: none)
	MQTTURL      string `json:"mqtt_url"`      // external broker (tcp:// or ssl://); disables the embedded one
	MQTTUsername string `json:"mqtt_username"` // the server's user on the external broker
	MQTTPassword string `json:"mqtt_password"` // …and password (default: the one fabgate mosquitto-config wrote)
	MQTTCA       string `json:"mqtt_ca"`       // CA certificate file for ssl://
	MQTTCert     string `json:"mqtt_cert"`     // client certificate file for ssl://
	MQTTKey      string `json:"mqtt_key"`      // client key file for ssl://
	MQTTPrefix   string `json:"mqtt_prefix"`   // topic prefix
}

// Duration is a time.Duration written as "12h", "30m" in files and variables.
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration such as 12h or 30m", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// String writes the Go duration string (flag.Value).
func (d *Duration) String() string { return time.Duration(*d).String() }

// Set implements flag.Value.
func (d *Duration) Set(s string) error { return d.UnmarshalText([]byte(s)) }

// DefaultConfig is the zero-configuration setup of `make run`.
func DefaultConfig() Config {
	return Config{
		Data: "data", HTTP: "127.0.0.1:8080", LogLevel: "info", LogFormat: "text",
		TokenTTL:   Duration(12 * time.Hour),
		MQTTListen: "127.0.0.1:1883", MQTTPrefix: "fabgate/v1", MQTTUsername: "fabgate-server",
	}
}

// Validate checks the configuration; its messages say what to change.
func (c *Config) Validate() error {
	var errs []error
	if c.Data == "" {
		errs = append(errs, errors.New("data: set a data directory with --data DIR or FABGATE_DATA"))
	}
	if _, port, err := net.SplitHostPort(c.HTTP); err != nil {
		errs = append(errs, fmt.Errorf("http: %q is not host:port (e.g. 127.0.0.1:8080 or :8080)", c.HTTP))
	} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		errs = append(errs, fmt.Errorf("http: port %q must be a number from 0 to 65535", port))
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("log_format: %q must be text or json", c.LogFormat))
	}
	if time.Duration(c.TokenTTL) < time.Minute || time.Duration(c.TokenTTL) > 90*24*time.Hour {
		errs = append(errs, fmt.Errorf("token_ttl: %s must be between 1m and 2160h (90 days)", time.Duration(c.TokenTTL)))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("tls_cert and tls_key: set both to serve HTTPS, or neither"))
	}
	if c.MQTTURL != "" {
		u, err := url.Parse(c.MQTTURL)
		if err != nil || (u.Scheme != "tcp" && u.Scheme != "ssl" && u.Scheme != "mqtts" && u.Scheme != "tls") || u.Host == "" {
			errs = append(errs, fmt.Errorf("mqtt_url: %q must be tcp://host:port or ssl://host:port", c.MQTTURL))
		}
	} else if _, _, err := net.SplitHostPort(c.MQTTListen); err != nil {
		errs = append(errs, fmt.Errorf("mqtt_listen: %q is not host:port (e.g. 127.0.0.1:1883)", c.MQTTListen))
	}
	if (c.MQTTCert == "") != (c.MQTTKey == "") {
		errs = append(errs, errors.New("mqtt_cert and mqtt_key: set both for a client certificate, or neither"))
	}
	if c.MQTTPrefix == "" || strings.ContainsAny(c.MQTTPrefix, "+#") || strings.HasPrefix(c.MQTTPrefix, "/") || strings.HasSuffix(c.MQTTPrefix, "/") {
		errs = append(errs, fmt.Errorf("mqtt_prefix: %q must be a topic path without wildcards or outer slashes, such as fabgate/v1", c.MQTTPrefix))
	}
	for _, p := range c.TrustedProxies {
		if net.ParseIP(p) == nil {
			if _, _, err := net.ParseCIDR(p); err != nil {
				errs = append(errs, fmt.Errorf("trusted_proxies: %q is neither an IP address nor a CIDR range", p))
			}
		}
	}
	return errors.Join(errs...)
}

// DBPath is the bbolt file inside the data directory.
func (c *Config) DBPath() string { return filepath.Join(c.Data, "fabgate.db") }

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("log_level: %q must be debug, info, warn or error", s)
	}
	return l, nil
}

// loadConfig builds the configuration of `serve` from args and the
// environment. -h prints the flags to helpOut and returns flag.ErrHelp.
func loadConfig(args []string, getenv func(string) string, helpOut io.Writer) (Config, error) {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(helpOut)
	var flagCfg Config
	configPath := fs.String("config", getenv("FABGATE_CONFIG"), "JSON configuration file")
	fs.StringVar(&flagCfg.Data, "data", "", "data directory (default data)")
	fs.StringVar(&flagCfg.HTTP, "http", "", "HTTP listen address (default 127.0.0.1:8080)")
	fs.BoolVar(&flagCfg.Demo, "demo", false, "seed the demo lab when the data directory is empty")
	fs.StringVar(&flagCfg.LogLevel, "log-level", "", "debug, info, warn or error (default info)")
	fs.StringVar(&flagCfg.LogFormat, "log-format", "", "text or json (default text)")
	fs.Var(&flagCfg.TokenTTL, "token-ttl", "login lifetime (default 12h)")
	fs.StringVar(&flagCfg.TLSCert, "tls-cert", "", "TLS certificate file (HTTPS)")
	fs.StringVar(&flagCfg.TLSKey, "tls-key", "", "TLS key file (HTTPS)")
	proxies := fs.String("trusted-proxies", "", "comma-separated proxy addresses whose X-Forwarded-For is believed")
	fs.BoolVar(&flagCfg.SecureCookies, "secure-cookies", false, "mark session cookies Secure (behind a TLS-terminating proxy)")
	fs.StringVar(&flagCfg.MQTTListen, "mqtt-listen", "", "embedded MQTT broker address (default 127.0.0.1:1883)")
	fs.StringVar(&flagCfg.MQTTURL, "mqtt-url", "", "external MQTT broker, tcp:// or ssl:// (disables the embedded one)")
	fs.StringVar(&flagCfg.MQTTUsername, "mqtt-username", "", "server's user on the external broker (default fabgate-server)")
	fs.StringVar(&flagCfg.MQTTPassword, "mqtt-password", "", "server's password on the external broker (default: from fabgate mosquitto-config)")
	fs.StringVar(&flagCfg.MQTTCA, "mqtt-ca", "", "CA certificate file for ssl://")
	fs.StringVar(&flagCfg.MQTTCert, "mqtt-cert", "", "client certificate file for ssl://")
	fs.StringVar(&flagCfg.MQTTKey, "mqtt-key", "", "client key file for ssl://")
	fs.StringVar(&flagCfg.MQTTPrefix, "mqtt-prefix", "", "MQTT topic prefix (default fabgate/v1)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, err
		}
		return cfg, fmt.Errorf("serve: %w (see fabgate serve -h)", err)
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	if *configPath != "" {
		data, err := os.ReadFile(*configPath)
		if err != nil {
			return cfg, fmt.Errorf("config file: %w", err)
		}
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			return cfg, fmt.Errorf("config file %s: %w", *configPath, err)
		}
	}
	env := map[string]func(string) error{
		"FABGATE_DATA":       func(v string) error { cfg.Data = v; return nil },
		"FABGATE_HTTP":       func(v string) error { cfg.HTTP = v; return nil },
		"FABGATE_LOG_LEVEL":  func(v string) error { cfg.LogLevel = v; return nil },
		"FABGATE_LOG_FORMAT": func(v string) error { cfg.LogFormat = v; return nil },
		"FABGATE_TOKEN_TTL":  func(v string) error { return cfg.TokenTTL.UnmarshalText([]byte(v)) },
		"FABGATE_TLS_CERT":   func(v string) error { cfg.TLSCert = v; return nil },
		"FABGATE_TLS_KEY":    func(v string) error { cfg.TLSKey = v; return nil },
		"FABGATE_TRUSTED_PROXIES": func(v string) error {
			cfg.TrustedProxies = splitList(v)
			return nil
		},
		"FABGATE_DEMO":           boolEnv(&cfg.Demo),
		"FABGATE_MQTT_LISTEN":    func(v string) error { cfg.MQTTListen = v; return nil },
		"FABGATE_MQTT_URL":       func(v string) error { cfg.MQTTURL = v; return nil },
		"FABGATE_MQTT_USERNAME":  func(v string) error { cfg.MQTTUsername = v; return nil },
		"FABGATE_MQTT_PASSWORD":  func(v string) error { cfg.MQTTPassword = v; return nil },
		"FABGATE_MQTT_CA":        func(v string) error { cfg.MQTTCA = v; return nil },
		"FABGATE_MQTT_CERT":      func(v string) error { cfg.MQTTCert = v; return nil },
		"FABGATE_MQTT_KEY":       func(v string) error { cfg.MQTTKey = v; return nil },
		"FABGATE_MQTT_PREFIX":    func(v string) error { cfg.MQTTPrefix = v; return nil },
		"FABGATE_SECURE_COOKIES": boolEnv(&cfg.SecureCookies),
	}
	for name, apply := range env {
		if v := getenv(name); v != "" {
			if err := apply(v); err != nil {
				return cfg, fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "data":
			cfg.Data = flagCfg.Data
		case "http":
			cfg.HTTP = flagCfg.HTTP
		case "demo":
			cfg.Demo = flagCfg.Demo
		case "log-level":
			cfg.LogLevel = flagCfg.LogLevel
		case "log-format":
			cfg.LogFormat = flagCfg.LogFormat
		case "token-ttl":
			cfg.TokenTTL = flagCfg.TokenTTL
		case "tls-cert":
			cfg.TLSCert = flagCfg.TLSCert
		case "tls-key":
			cfg.TLSKey = flagCfg.TLSKey
		case "trusted-proxies":
			cfg.TrustedProxies = splitList(*proxies)
		case "secure-cookies":
			cfg.SecureCookies = flagCfg.SecureCookies
		case "mqtt-listen":
			cfg.MQTTListen = flagCfg.MQTTListen
		case "mqtt-url":
			cfg.MQTTURL = flagCfg.MQTTURL
		case "mqtt-username":
			cfg.MQTTUsername = flagCfg.MQTTUsername
		case "mqtt-password":
			cfg.MQTTPassword = flagCfg.MQTTPassword
		case "mqtt-ca":
			cfg.MQTTCA = flagCfg.MQTTCA
		case "mqtt-cert":
			cfg.MQTTCert = flagCfg.MQTTCert
		case "mqtt-key":
			cfg.MQTTKey = flagCfg.MQTTKey
		case "mqtt-prefix":
			cfg.MQTTPrefix = flagCfg.MQTTPrefix
		}
	})
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return cfg, nil
}

func boolEnv(dst *bool) func(string) error {
	return func(v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		*dst = b
		return nil
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
