package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzConfigFile feeds `fabgate serve --config` arbitrary files. A file is
// refused with a message, or read; what is read either validates or every
// line of the refusal starts with the settings to change; what validates
// is what loadConfig returns and writes back to the same configuration.
func FuzzConfigFile(f *testing.F) {
	for _, s := range []string{
		`{"data":"/var/lib/fabgate","http":":8080","public_url":"https://fablab.example.org","smtp_url":"smtp://relay:25?tls=none"}`,
		`{"token_ttl":"30m","log_level":"debug","log_format":"json","trusted_proxies":["10.0.0.1","192.168.0.0/16"],"secure_cookies":true}`,
		`{"mqtt_url":"ssl://broker:8883","mqtt_ca":"ca.pem","mqtt_cert":"c.pem","mqtt_key":"k.pem","mqtt_prefix":"lab/v1"}`,
		`{"mqtt_listen":"0.0.0.0:8883","mqtt_tls_cert":"c.pem","mqtt_tls_key":"k.pem","metrics_listen":"127.0.0.1:9180","metrics_token":"0123456789abcdef"}`,
		`{"mqtt_listen":"0.0.0.0:1883","mqtt_insecure_lan":true,"demo":true}`,
		`{"mqtt_listen":"192.168.1.2\n:1883"}`,
		`{"token_ttl":"forever"}`, `{"token_ttl":12}`, `{"token_ttl":"-1h"}`, `{"http":"localhost:99999"}`,
		`{"mqtt_prefix":"/a/#"}`, `{"public_url":"ftp://x"}`, `{"trusted_proxies":"10.0.0.1"}`, `{"trusted_proxies":null}`,
		`{"data":""}`, `{"htpp":":80"}`, `{"DATA":"x"}`, `{"data":"x"} {"data":"y"}`, `{"data":"x"} trailing`, `{"data":"x",}`,
		`{}`, `null`, `[]`, `""`, ``, ` `, `{`, `{"data":"\ud800"}`,
	} {
		f.Add([]byte(s))
	}
	names := map[string]bool{}
	for _, st := range settings {
		names[st.jsonName()] = true
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := DefaultConfig()
		decodeErr := decodeConfigFile(data, &cfg)
		var validErr error
		if decodeErr != nil {
			if strings.TrimSpace(decodeErr.Error()) == "" {
				t.Fatalf("%q refused without a message", data)
			}
		} else if validErr = cfg.Validate(); validErr != nil {
			for _, line := range strings.Split(validErr.Error(), "\n") {
				head, _, ok := strings.Cut(line, ": ")
				for _, name := range strings.Split(head, " and ") {
					if !ok || !names[name] {
						t.Errorf("%q: the refusal's line %q does not start with the settings to change", data, line)
						break
					}
				}
			}
		}

		// loadConfig reads the same file to the same end.
		path := filepath.Join(dir, "fabgate.json")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		loaded, err := loadConfig([]string{"--config", path}, envOf(nil), io.Discard)
		if accepted := decodeErr == nil && validErr == nil; (err == nil) != accepted {
			t.Fatalf("%q: loadConfig says %v; decoding %v, validation %v", data, err, decodeErr, validErr)
		}
		if err != nil {
			if !strings.Contains(err.Error(), "config") {
				t.Errorf("%q: the error %q does not name the configuration", data, err)
			}
			return
		}
		if !reflect.DeepEqual(loaded, cfg) {
			t.Fatalf("%q: loadConfig gives %+v, decoding %+v", data, loaded, cfg)
		}

		// Written back, the configuration reads as itself and still validates.
		out, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		again := DefaultConfig()
		if err := decodeConfigFile(out, &again); err != nil {
			t.Fatalf("%s (from %q) does not read back: %v", out, data, err)
		}
		if !reflect.DeepEqual(again, cfg) {
			t.Fatalf("%s reads back as %+v, want %+v", out, again, cfg)
		}
		if err := again.Validate(); err != nil {
			t.Fatalf("%s no longer validates: %v", out, err)
		}
	})
}
