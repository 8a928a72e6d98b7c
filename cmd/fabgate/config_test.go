package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "fabgate.json")
	if err := os.WriteFile(file, []byte(`{"data":"/from/file","http":"127.0.0.1:9000","log_level":"debug","token_ttl":"2h"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want func(Config) string // "" when fine, else what is wrong
	}{
		{"defaults", nil, nil, func(c Config) string {
			if c.Data != "data" || c.HTTP != "127.0.0.1:8080" || c.Demo || time.Duration(c.TokenTTL) != 12*time.Hour {
				return "defaults not applied"
			}
			return ""
		}},
		{"file", []string{"--config", file}, nil, func(c Config) string {
			if c.Data != "/from/file" || c.HTTP != "127.0.0.1:9000" || c.LogLevel != "debug" || time.Duration(c.TokenTTL) != 2*time.Hour {
				return "file values not applied"
			}
			return ""
		}},
		{"env over file", []string{"--config", file}, map[string]string{"FABGATE_DATA": "/from/env", "FABGATE_DEMO": "true"}, func(c Config) string {
			if c.Data != "/from/env" || !c.Demo || c.HTTP != "127.0.0.1:9000" {
				return "env did not override the file"
			}
			return ""
		}},
		{"config file from env", nil, map[string]string{"FABGATE_CONFIG": file}, func(c Config) string {
			if c.Data != "/from/file" {
				return "FABGATE_CONFIG not read"
			}
			return ""
		}},
		{"flags over env", []string{"--data", "/from/flag", "--http", ":0", "--demo"}, map[string]string{"FABGATE_DATA": "/from/env", "FABGATE_HTTP": "127.0.0.1:1"}, func(c Config) string {
			if c.Data != "/from/flag" || c.HTTP != ":0" || !c.Demo {
				return "flags did not override env"
			}
			return ""
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadConfig(tt.args, envOf(tt.env), io.Discard)
			if err != nil {
				t.Fatalf("loadConfig: %v", err)
			}
			if msg := tt.want(c); msg != "" {
				t.Errorf("%s: %+v", msg, c)
			}
		})
	}
}

func TestLoadConfigErrorsSayWhatToChange(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"bad address", []string{"--http", "localhost"}, nil, "is not host:port"},
		{"bad port", []string{"--http", "127.0.0.1:99999"}, nil, "port"},
		{"bad level", []string{"--log-level", "loud"}, nil, "must be debug, info, warn or error"},
		{"bad format", []string{"--log-format", "xml"}, nil, "must be text or json"},
		{"bad ttl", []string{"--token-ttl", "5s"}, nil, "token_ttl"},
		{"unparsable ttl", nil, map[string]string{"FABGATE_TOKEN_TTL": "soon"}, "FABGATE_TOKEN_TTL"},
		{"bad demo env", nil, map[string]string{"FABGATE_DEMO": "perhaps"}, "FABGATE_DEMO"},
		{"half tls", []string{"--tls-cert", "c.pem"}, nil, "set both"},
		{"bad proxy", []string{"--trusted-proxies", "not-an-ip"}, nil, "trusted_proxies"},
		{"unknown flag", []string{"--colour"}, nil, "flag provided but not defined"},
		{"stray argument", []string{"extra"}, nil, "unexpected argument"},
		{"missing file", []string{"--config", "/nonexistent/fabgate.json"}, nil, "config file"},
		{"smtp url scheme", []string{"--smtp-url", "mail.example.org:587"}, nil, "smtp_url: \"mail.example.org:587\" has an unknown scheme; write outbox:"},
		{"smtp url tls", []string{"--smtp-url", "smtp://mail.example.org?tls=yes", "--public-url", "https://fablab.example.org"}, nil, "?tls=none for a local relay"},
		{"smtp without public url", nil, map[string]string{"FABGATE_SMTP_URL": "smtps://u:p@mail.example.org"}, "set public_url too"},
		{"broker certificate alone", []string{"--mqtt-tls-cert", "broker.pem"}, nil, "mqtt_tls_cert and mqtt_tls_key: set both for the embedded broker to speak TLS"},
		{"broker key alone", nil, map[string]string{"FABGATE_MQTT_TLS_KEY": "broker-key.pem"}, "mqtt_tls_cert and mqtt_tls_key: set both"},
		{"broker certificate with an external broker", []string{"--mqtt-url", "ssl://broker.lab:8883", "--mqtt-tls-cert", "c.pem", "--mqtt-tls-key", "k.pem"}, nil, "which mqtt_url replaces"},
		{"broker on every interface in clear", []string{"--mqtt-listen", "0.0.0.0:1883"}, nil, "mqtt_listen: \"0.0.0.0:1883\" can be reached from the network, and MQTT without TLS sends the devices' secrets in clear: give the broker a certificate (--mqtt-tls-cert FILE --mqtt-tls-key FILE"},
		{"broker on a LAN address in clear", []string{"--mqtt-listen", "192.168.1.10:1883"}, nil, "add --mqtt-insecure-lan"},
		{"broker on all interfaces, no host", nil, map[string]string{"FABGATE_MQTT_LISTEN": ":1883"}, "can be reached from the network"},
		{"broker on a host name in clear", []string{"--mqtt-listen", "fablab.lan:1883"}, nil, "can be reached from the network"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig(tt.args, envOf(tt.env), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestLoadConfigBrokerListen: the embedded broker listens beyond loopback
// with a certificate, or when told the network is the lab devices' own.
func TestLoadConfigBrokerListen(t *testing.T) {
	file := filepath.Join(t.TempDir(), "fabgate.json")
	if err := os.WriteFile(file, []byte(`{"mqtt_listen":"0.0.0.0:8883","mqtt_tls_cert":"/etc/fabgate/broker.pem","mqtt_tls_key":"/etc/fabgate/broker-key.pem"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"loopback", []string{"--mqtt-listen", "127.0.0.1:1883"}, nil},
		{"localhost", []string{"--mqtt-listen", "localhost:1883"}, nil},
		{"IPv6 loopback", []string{"--mqtt-listen", "[::1]:1883"}, nil},
		{"every interface with TLS", []string{"--mqtt-listen", "0.0.0.0:8883", "--mqtt-tls-cert", "broker.pem", "--mqtt-tls-key", "broker-key.pem"}, nil},
		{"TLS from the environment", nil, map[string]string{"FABGATE_MQTT_LISTEN": ":8883", "FABGATE_MQTT_TLS_CERT": "b.pem", "FABGATE_MQTT_TLS_KEY": "k.pem"}},
		{"TLS from the file", []string{"--config", file}, nil},
		{"LAN in clear, accepted", []string{"--mqtt-listen", "192.168.1.10:1883", "--mqtt-insecure-lan"}, nil},
		{"external broker: the listen address is not used", []string{"--mqtt-listen", "0.0.0.0:1883", "--mqtt-url", "tcp://broker.lab:1883"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := loadConfig(tt.args, envOf(tt.env), io.Discard); err != nil {
				t.Fatal(err)
			}
		})
	}
	c, err := loadConfig([]string{"--config", file}, envOf(nil), io.Discard)
	if err != nil || c.MQTTListen != "0.0.0.0:8883" || c.MQTTTLSCert != "/etc/fabgate/broker.pem" || c.MQTTTLSKey != "/etc/fabgate/broker-key.pem" {
		t.Fatalf("from the file: %+v, %v", c, err)
	}
}

// TestLoadConfigSMTPURL: the accepted forms of smtp_url load.
func TestLoadConfigSMTPURL(t *testing.T) {
	for _, u := range []string{"", "outbox:", "smtp://relay:25?tls=none", "smtps://user:pass@mail.example.org?from=lab@example.org"} {
		if _, err := loadConfig([]string{"--smtp-url", u, "--public-url", "https://fablab.example.org"}, envOf(nil), io.Discard); err != nil {
			t.Errorf("smtp_url %q: %v", u, err)
		}
	}
}

func TestLoadConfigRejectsUnknownFileField(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(file, []byte(`{"data":"x","htpp":"typo"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := loadConfig([]string{"--config", file}, envOf(nil), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "htpp") {
		t.Fatalf("got %v, want an error naming the unknown field", err)
	}
}

// TestSettingsDeclaredOnce: each setting's JSON name is its Config field's
// tag, its variable is read, and the README's configuration table has a row
// for it and none for a setting that does not exist.
func TestSettingsDeclaredOnce(t *testing.T) {
	sample := map[string]string{"string": "x", "bool": "true", "duration": "3h", "list": "10.0.0.1"}
	kind := func(p any) string {
		switch p.(type) {
		case *string:
			return "string"
		case *bool:
			return "bool"
		case *Duration:
			return "duration"
		case *[]string:
			return "list"
		}
		return ""
	}
	zero, _ := json.Marshal(Config{})
	var zeroDoc map[string]any
	json.Unmarshal(zero, &zeroDoc)
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, _ := strings.Cut(string(readme), "## Configuration")
	table, _, _ = strings.Cut(table, "\n## ")
	for _, st := range settings {
		var c Config
		k := kind(st.field(&c))
		if k == "" {
			t.Fatalf("%s: unsupported field type %T", st.name, st.field(&c))
		}
		if err := (fieldValue{st.field(&c)}).Set(sample[k]); err != nil {
			t.Fatal(err)
		}
		data, _ := json.Marshal(c)
		var doc map[string]any
		json.Unmarshal(data, &doc)
		var changed []string
		for key, v := range doc {
			if fmt.Sprint(v) != fmt.Sprint(zeroDoc[key]) {
				changed = append(changed, key)
			}
		}
		if len(changed) != 1 || changed[0] != st.jsonName() {
			t.Errorf("setting %s sets JSON fields %v, want [%s]", st.name, changed, st.jsonName())
		}
		// The variable sets the same field.
		c2, err := loadConfig(nil, envOf(map[string]string{st.envName(): sample[k]}), io.Discard)
		if err == nil {
			if v := (fieldValue{st.field(&c2)}).String(); v != (fieldValue{st.field(&c)}).String() {
				t.Errorf("%s=%s gives %q", st.envName(), sample[k], v)
			}
		}
		if !strings.Contains(table, "`--"+st.name+"`") || !strings.Contains(table, "`"+st.jsonName()+"`") {
			t.Errorf("the README's configuration table has no row for --%s (%s)", st.name, st.jsonName())
		}
	}
	known := map[string]bool{}
	for _, st := range settings {
		known[st.name] = true
	}
	for _, m := range regexp.MustCompile("`--([a-z-]+)`").FindAllStringSubmatch(table, -1) {
		if !known[m[1]] {
			t.Errorf("the README's configuration table lists --%s, which is no setting", m[1])
		}
	}
}
