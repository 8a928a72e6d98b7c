package main

import (
	"bytes"
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
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/fabgate/fabgate/internal/mail"
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
	MetricsListen  string   `json:"metrics_listen"`  // serve /metrics on this address instead
	MetricsToken   string   `json:"metrics_token"`   // bearer token for /metrics
	PublicURL      string   `json:"public_url"`      // the address people open, for links in mail, feeds and labels
	SMTPURL        string   `json:"smtp_url"`        // where mail goes: smtp://, smtps:// or outbox:

	MQTTListen      string `json:"mqtt_listen"`       // embedded broker address ("" with mqtt_url set: none)
	MQTTTLSCert     string `json:"mqtt_tls_cert"`     // the embedded broker speaks TLS with this certificate…
	MQTTTLSKey      string `json:"mqtt_tls_key"`      // …and key
	MQTTInsecureLAN bool   `json:"mqtt_insecure_lan"` // let the embedded broker listen beyond loopback without TLS
	MQTTURL         string `json:"mqtt_url"`          // external broker (tcp:// or ssl://); disables the embedded one
	MQTTUsername    string `json:"mqtt_username"`     // the server's user on the external broker
	MQTTPassword    string `json:"mqtt_password"`     // …and password (default: the one fabgate mosquitto-config wrote)
	MQTTCA          string `json:"mqtt_ca"`           // CA certificate file for an ssl:// external broker
	MQTTCert        string `json:"mqtt_cert"`         // client certificate file for an ssl:// external broker
	MQTTKey         string `json:"mqtt_key"`          // client key file for an ssl:// external broker
	MQTTPrefix      string `json:"mqtt_prefix"`       // topic prefix
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
		if c.MQTTTLSCert != "" || c.MQTTTLSKey != "" {
			errs = append(errs, errors.New("mqtt_tls_cert and mqtt_tls_key: they are the embedded broker's, which mqtt_url replaces: give the external broker its certificate in its own configuration (and trust its CA with mqtt_ca), or leave mqtt_url empty"))
		}
	} else if _, _, err := net.SplitHostPort(c.MQTTListen); err != nil {
		errs = append(errs, fmt.Errorf("mqtt_listen: %q is not host:port (e.g. 127.0.0.1:1883)", c.MQTTListen))
	} else if !onLoopback(c.MQTTListen) && c.MQTTTLSCert == "" && c.MQTTTLSKey == "" && !c.MQTTInsecureLAN {
		errs = append(errs, fmt.Errorf("mqtt_listen: %q can be reached from the network, and MQTT without TLS sends the devices' secrets in clear: "+
			"give the broker a certificate (--mqtt-tls-cert FILE --mqtt-tls-key FILE, see docs/operations.md), listen on loopback (127.0.0.1:1883), "+
			"or, on a network only the lab's devices share, add --mqtt-insecure-lan", c.MQTTListen))
	}
	if (c.MQTTTLSCert == "") != (c.MQTTTLSKey == "") {
		errs = append(errs, errors.New("mqtt_tls_cert and mqtt_tls_key: set both for the embedded broker to speak TLS (--mqtt-tls-cert FILE --mqtt-tls-key FILE), or neither"))
	}
	if (c.MQTTCert == "") != (c.MQTTKey == "") {
		errs = append(errs, errors.New("mqtt_cert and mqtt_key: set both for a client certificate, or neither"))
	}
	if c.MQTTPrefix == "" || strings.ContainsAny(c.MQTTPrefix, "+#") || strings.HasPrefix(c.MQTTPrefix, "/") || strings.HasSuffix(c.MQTTPrefix, "/") {
		errs = append(errs, fmt.Errorf("mqtt_prefix: %q must be a topic path without wildcards or outer slashes, such as fabgate/v1", c.MQTTPrefix))
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			errs = append(errs, fmt.Errorf("metrics_listen: %q is not host:port (e.g. 127.0.0.1:9180)", c.MetricsListen))
		}
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			errs = append(errs, fmt.Errorf("public_url: %q must be the server's address as people open it, such as https://fablab.example.org", c.PublicURL))
		}
	}
	if u, err := mail.ParseURL(c.SMTPURL); err != nil {
		errs = append(errs, fmt.Errorf("smtp_url: %w", err))
	} else if !u.Outbox && c.PublicURL == "" {
		errs = append(errs, errors.New("smtp_url: mail carries links to the server: set public_url too, such as https://fablab.example.org"))
	}
	if c.MetricsToken != "" && len(c.MetricsToken) < 16 {
		errs = append(errs, errors.New("metrics_token: use at least 16 characters (e.g. the output of openssl rand -hex 16)"))
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

// onLoopback reports whether the host of the host:port addr is a loopback
// address or localhost: only this host's programs can reach it.
func onLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
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

// setting is one setting of `serve`, declared once: its flag is --name,
// its environment variable FABGATE_NAME (upper case, - as _), its JSON
// name name with - as _ (the Config field's tag, checked by a test), and
// the README's configuration table has a row for it (also checked).
type setting struct {
	name  string
	help  string
	field func(*Config) any // the field: *string, *bool, *Duration or *[]string
}

// settings are the settings of `serve`, in the order of `fabgate serve -h`.
var settings = []setting{
	{"data", "data directory (default data)", func(c *Config) any { return &c.Data }},
	{"http", "HTTP listen address (default 127.0.0.1:8080)", func(c *Config) any { return &c.HTTP }},
	{"demo", "seed the demo lab when the data directory is empty", func(c *Config) any { return &c.Demo }},
	{"log-level", "debug, info, warn or error (default info)", func(c *Config) any { return &c.LogLevel }},
	{"log-format", "text or json (default text)", func(c *Config) any { return &c.LogFormat }},
	{"token-ttl", "login lifetime (default 12h)", func(c *Config) any { return &c.TokenTTL }},
	{"tls-cert", "TLS certificate file (HTTPS)", func(c *Config) any { return &c.TLSCert }},
	{"tls-key", "TLS key file (HTTPS)", func(c *Config) any { return &c.TLSKey }},
	{"trusted-proxies", "comma-separated proxy addresses whose X-Forwarded-For is believed", func(c *Config) any { return &c.TrustedProxies }},
	{"secure-cookies", "mark session cookies Secure (behind a TLS-terminating proxy)", func(c *Config) any { return &c.SecureCookies }},
	{"metrics-listen", "serve /metrics on this address of its own instead of the HTTP address", func(c *Config) any { return &c.MetricsListen }},
	{"metrics-token", "bearer token a scraper must send to read /metrics (prefer the variable or file to the flag)", func(c *Config) any { return &c.MetricsToken }},
	{"public-url", "the server's address as people open it, for links in mail, calendar feeds and machine labels (default http://<http address>)", func(c *Config) any { return &c.PublicURL }},
	{"smtp-url", "where mail goes: outbox: (kept for staff to read; the default), smtp://user:pass@host:587 (STARTTLS when offered; ?tls=starttls requires it, ?tls=none for a local relay), or smtps://user:pass@host:465; ?from=address sets the sender", func(c *Config) any { return &c.SMTPURL }},
	{"mqtt-listen", "embedded MQTT broker address (default 127.0.0.1:1883); beyond loopback (e.g. 0.0.0.0:8883, for bridges on the LAN) it needs --mqtt-tls-cert and --mqtt-tls-key, or --mqtt-insecure-lan", func(c *Config) any { return &c.MQTTListen }},
	{"mqtt-tls-cert", "certificate file (PEM) of the embedded broker: with --mqtt-tls-key it speaks MQTT over TLS only (TLS 1.2 or later); bridges connect to ssl://host:port, trusting the CA that signed it (ca_file)", func(c *Config) any { return &c.MQTTTLSCert }},
	{"mqtt-tls-key", "private key file (PEM) of --mqtt-tls-cert", func(c *Config) any { return &c.MQTTTLSKey }},
	{"mqtt-insecure-lan", "let the embedded broker listen beyond loopback without TLS: device secrets then cross the network in clear (only on a network the lab's devices alone share)", func(c *Config) any { return &c.MQTTInsecureLAN }},
	{"mqtt-url", "external MQTT broker, tcp:// or ssl:// (disables the embedded one)", func(c *Config) any { return &c.MQTTURL }},
	{"mqtt-username", "server's user on the external broker (default fabgate-server)", func(c *Config) any { return &c.MQTTUsername }},
	{"mqtt-password", "server's password on the external broker (default: from fabgate mosquitto-config)", func(c *Config) any { return &c.MQTTPassword }},
	{"mqtt-ca", "CA certificate file to trust an ssl:// external broker", func(c *Config) any { return &c.MQTTCA }},
	{"mqtt-cert", "client certificate file for an ssl:// external broker", func(c *Config) any { return &c.MQTTCert }},
	{"mqtt-key", "client key file for an ssl:// external broker", func(c *Config) any { return &c.MQTTKey }},
	{"mqtt-prefix", "MQTT topic prefix (default fabgate/v1)", func(c *Config) any { return &c.MQTTPrefix }},
}

// envName is the environment variable of a setting.
func (s setting) envName() string {
	return "FABGATE_" + strings.ToUpper(strings.ReplaceAll(s.name, "-", "_"))
}

// jsonName is the configuration file's name of a setting.
func (s setting) jsonName() string { return strings.ReplaceAll(s.name, "-", "_") }

// fieldValue is a Config field as a flag.Value.
type fieldValue struct{ p any }

// String is the field's value, and "" for a zero value, so that -h shows
// no "(default …)" of the flags' own zero values: each help text says the
// real default.
func (v fieldValue) String() string {
	if v.p == nil || reflect.ValueOf(v.p).Elem().IsZero() {
		return ""
	}
	switch p := v.p.(type) {
	case *string:
		return *p
	case *bool:
		return strconv.FormatBool(*p)
	case *Duration:
		return p.String()
	case *[]string:
		return strings.Join(*p, ",")
	}
	return ""
}

// Set parses s into the field: lists are comma-separated, booleans
// strconv.ParseBool's, durations Go's.
func (v fieldValue) Set(s string) error {
	switch p := v.p.(type) {
	case *string:
		*p = s
	case *bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
		*p = b
	case *Duration:
		return p.Set(s)
	case *[]string:
		*p = splitList(s)
	default:
		return fmt.Errorf("unsupported setting type %T", v.p)
	}
	return nil
}

// IsBoolFlag lets a boolean flag stand alone (--demo).
func (v fieldValue) IsBoolFlag() bool { _, ok := v.p.(*bool); return ok }

// copyField copies the field src points to into dst, of the same type.
func copyField(dst, src any) {
	switch d := dst.(type) {
	case *string:
		*d = *src.(*string)
	case *bool:
		*d = *src.(*bool)
	case *Duration:
		*d = *src.(*Duration)
	case *[]string:
		*d = *src.(*[]string)
	}
}

// loadConfig builds the configuration of `serve` from args and the
// environment. -h prints the usage and flags to helpOut and returns an
// error that wraps flag.ErrHelp.
func loadConfig(args []string, getenv func(string) string, helpOut io.Writer) (Config, error) {
	cfg := DefaultConfig()
	fs := newFlags("serve", "serve [--config FILE] [flags]",
		"Runs the server. Each setting comes from, the later winning: its default, the JSON\n"+
			"file of --config (or FABGATE_CONFIG), its FABGATE_* environment variable (--token-ttl:\n"+
			"FABGATE_TOKEN_TTL), then its flag. The README's Configuration table lists them all.", helpOut)
	var flagCfg Config
	configPath := fs.String("config", getenv("FABGATE_CONFIG"), "JSON configuration file")
	byName := map[string]setting{}
	for _, st := range settings {
		byName[st.name] = st
		fs.Var(fieldValue{st.field(&flagCfg)}, st.name, st.help)
	}
	if err := fs.parse(args); err != nil {
		return cfg, err
	}
	if *configPath != "" {
		data, err := os.ReadFile(*configPath)
		if err != nil {
			return cfg, fmt.Errorf("config file: %w", err)
		}
		if err := decodeConfigFile(data, &cfg); err != nil {
			return cfg, fmt.Errorf("config file %s: %w", *configPath, err)
		}
	}
	for _, st := range settings {
		if v := getenv(st.envName()); v != "" {
			if err := (fieldValue{st.field(&cfg)}).Set(v); err != nil {
				return cfg, fmt.Errorf("%s: %w", st.envName(), err)
			}
		}
	}
	fs.Visit(func(f *flag.Flag) {
		if st, ok := byName[f.Name]; ok {
			copyField(st.field(&cfg), st.field(&flagCfg))
		}
	})
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return cfg, nil
}

// decodeConfigFile reads a configuration file's JSON object over cfg:
// the settings it names replace cfg's, an unknown setting or anything
// after the object is refused.
func decodeConfigFile(data []byte, cfg *Config) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("the file is empty; write a JSON object such as {\"data\": \"/var/lib/fabgate\"}")
		}
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("the file must hold one JSON object and nothing after it (at byte %d)", dec.InputOffset())
	}
	return nil
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
