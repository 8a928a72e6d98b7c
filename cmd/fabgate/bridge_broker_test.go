package main

import "testing"

// TestBridgeBrokerURL: the broker address a bridge is told to connect to,
// in the configuration shown when a device is registered.
func TestBridgeBrokerURL(t *testing.T) {
	for _, c := range []struct {
		mqttURL, listen, tlsCert, public, want string
	}{
		{"ssl://broker.lab:8883", "127.0.0.1:1883", "", "https://fablab.example.org", "ssl://broker.lab:8883"},
		{"", "127.0.0.1:1883", "", "https://fablab.example.org", "tcp://fablab.example.org:1883"},
		{"", "0.0.0.0:1884", "", "http://10.0.0.5:8080", "tcp://10.0.0.5:1884"},
		{"", ":1883", "", "http://[fd00::1]:8080", "tcp://[fd00::1]:1883"},
		{"", "192.168.1.10:1883", "", "https://fablab.example.org", "tcp://192.168.1.10:1883"},
		{"", "localhost:1883", "", "http://lab.local", "tcp://lab.local:1883"},
		{"", "0.0.0.0:8883", "broker.pem", "https://fablab.example.org", "ssl://fablab.example.org:8883"},
		{"", "192.168.1.10:8883", "broker.pem", "http://10.0.0.5:8080", "ssl://192.168.1.10:8883"},
	} {
		got := bridgeBrokerURL(Config{MQTTURL: c.mqttURL, MQTTListen: c.listen, MQTTTLSCert: c.tlsCert}, c.public)
		if got != c.want {
			t.Errorf("mqtt_url %q, mqtt_listen %q, mqtt_tls_cert %q, public %q: %q, want %q", c.mqttURL, c.listen, c.tlsCert, c.public, got, c.want)
		}
	}
}
