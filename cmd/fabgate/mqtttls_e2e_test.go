package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/firmware-bridge/bridge"
	"github.com/fabgate/fabgate/firmware-bridge/reader"
	"github.com/fabgate/fabgate/firmware-bridge/relay"
	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/demo"
	"github.com/fabgate/fabgate/internal/devicesim"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/mqtt"
	"github.com/fabgate/fabgate/internal/mqtt/mqtttest"
)

// startServerWithBroker runs `fabgate serve` in-process at the lab time of
// clock, like startServerAt, and returns it with the embedded broker's URL.
func startServerWithBroker(t *testing.T, clock labClock, args ...string) (*server, string) {
	t.Helper()
	cfg, err := loadConfig(append([]string{"--http", "127.0.0.1:0", "--mqtt-listen", "127.0.0.1:0", "--log-level", "warn"}, args...), envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr, broker := make(chan string, 1), make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, cfg, io.Discard, io.Discard, serveOptions{clock: clock,
			ready: func(a string) { addr <- "http://" + a }, broker: func(u string) { broker <- u }})
	}()
	s := awaitServer(t, &server{stop: cancel, done: done}, addr)
	return s, <-broker // sent before the HTTP address
}

// TestE2EServeBrokerTLS: `fabgate serve` with --mqtt-tls-cert and
// --mqtt-tls-key, listening on every interface as for Raspberry Pi bridges
// on the LAN. A bridge whose configuration trusts the lab's CA (ca_file)
// connects over TLS and a tap unlocks its machine; the same device speaking
// plain MQTT, or trusting another CA, does not get in.
func TestE2EServeBrokerTLS(t *testing.T) {
	ctx := context.Background()
	clock := clockAt(labTime)
	data := t.TempDir()
	s, err := bolt.Open(filepath.Join(data, "fabgate.db"), bolt.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.CreateMachine(ctx, fablab.Machine{Name: "Laser", Kind: fablab.KindLaserCutter, DeviceID: "laser-9"})
	if err != nil {
		t.Fatal(err)
	}
	ada, err := s.CreateMember(ctx, fablab.Member{Email: "ada@fablab.test", Name: "Ada", Group: "student"})
	if err != nil {
		t.Fatal(err)
	}
	const uid = "04AABBCCDDEE01"
	if _, err := s.AddBadge(ctx, fablab.Badge{Hash: auth.BadgeHash(s.BadgeSecret(), uid), MemberID: ada.ID}); err != nil {
		t.Fatal(err)
	}
	secret := auth.NewToken()
	hash, err := mqtt.MosquittoPasswordHash(secret)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateDevice(ctx, fablab.Device{ID: "laser-9", MachineID: m.ID, SecretHash: hash}); err != nil {
		t.Fatal(err)
	}
	key, err := s.AllowlistKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	badgeKey := s.BadgeSecret()
	s.Close()

	files := mqtttest.WriteTLS(t)
	srv, brokerURL := startServerWithBroker(t, clock, "--data", data,
		"--mqtt-listen", "0.0.0.0:0", "--mqtt-tls-cert", files.Cert, "--mqtt-tls-key", files.Key)
	if !strings.HasPrefix(brokerURL, "ssl://127.0.0.1:") {
		t.Fatalf("the server reaches its broker at %q, want ssl://127.0.0.1:port", brokerURL)
	}
	port := brokerURL[strings.LastIndex(brokerURL, ":")+1:]

	// The bridge's own configuration file, as docs/hardware.md shows it.
	conf := filepath.Join(t.TempDir(), "config.json")
	body := fmt.Sprintf(`{"badge_key":%q,"state_dir":%q,"broker":{"url":"ssl://localhost:%s","ca_file":%q},
		"devices":[{"id":"laser-9","secret":%q,"allowlist_key":%q,"allowlist_key_id":%d,"reader":{"kind":"stdin"},"relay":{"kind":"sim"}}]}`,
		hex.EncodeToString(badgeKey), t.TempDir(), port, files.CA, secret, hex.EncodeToString(auth.DeviceAllowlistKey(key.Root, key.ID, "laser-9")), key.ID)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	bcfg, err := bridge.LoadConfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	spec := bcfg.Devices[0]
	tlsCfg, err := spec.Broker.TLS()
	if err != nil {
		t.Fatal(err)
	}
	allowKey, _ := hex.DecodeString(spec.AllowlistKey)
	rd, rl := reader.NewSim(), relay.NewSim(0)
	dev, err := bridge.Start(ctx, bridge.DeviceConfig{
		ID: spec.ID, Secret: spec.Secret, Broker: spec.Broker.URL, TLS: tlsCfg, BadgeKey: badgeKey,
		AllowlistKey: allowKey, AllowlistKeyID: spec.AllowlistKeyID, StateDir: t.TempDir(),
		Reader: rd, Relay: rl, Clock: clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	waitFor(t, "the bridge online over TLS", func() bool { st := dev.Status(); return st.Connected && st.ServerOnline })
	if err := rd.Tap(uid); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the relay on for the server's unlock", func() bool {
		st := dev.Status()
		return rl.On() && st.SessionID != "" && !st.LocalSession
	})

	// The same device's credentials over plain MQTT, or trusting another
	// CA, are turned away before they are sent.
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if d, err := devicesim.Start(dctx, devicesim.Config{Broker: "tcp://127.0.0.1:" + port, ID: "laser-9", Secret: secret}); err == nil {
		d.Close()
		t.Fatal("a device logged in over plain MQTT to the TLS listener")
	}
	otherCA, err := (&bridge.BrokerConfig{URL: "ssl://localhost:" + port, CAFile: mqtttest.WriteTLS(t).CA}).TLS()
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel2 := context.WithTimeout(ctx, time.Second)
	defer cancel2()
	if c, err := mqtt.Connect(cctx, mqtt.ClientConfig{Broker: "ssl://localhost:" + port, TLS: otherCA, ClientID: "laser-9", Username: "laser-9", Password: secret}); err == nil {
		c.Close(nil)
		t.Fatal("a device trusting another CA logged in")
	} else if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("error %q does not say the certificate is not trusted", err)
	}
	// The refused attempts did not disturb the bridge's session.
	if st := dev.Status(); !rl.On() || !st.Connected {
		t.Fatalf("after the refused attempts: relay on %v, %+v", rl.On(), st)
	}

	dev.Close()
	srv.shutdown(t)
	s, err = bolt.Open(filepath.Join(data, "fabgate.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sessions, err := s.SessionsOfMachine(ctx, m.ID, labTime.Add(-time.Hour), labTime.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(sessions) != 1 || sessions[0].MemberID != ada.ID || !sessions[0].Confirmed {
		t.Fatalf("sessions %+v: want Ada's, confirmed by the relay", sessions)
	}
}

// The demo lab's bridges run inside the server and reach its broker over
// TLS too: a staff member's simulated tap unlocks the tour machine.
func TestE2EServeDemoBrokerTLS(t *testing.T) {
	files := mqtttest.WriteTLS(t)
	srv, brokerURL := startServerWithBroker(t, clockAt(labTime), "--data", t.TempDir(), "--demo",
		"--mqtt-tls-cert", files.Cert, "--mqtt-tls-key", files.Key)
	if !strings.HasPrefix(brokerURL, "ssl://") {
		t.Fatalf("broker URL %q, want ssl://", brokerURL)
	}
	staff := demoAccount(t, "staff")
	tok := login(t, srv.url, staff.Email, staff.Password)
	var tap struct{ Decision string }
	if st := call(t, "POST", srv.url+"/api/v1/devices/"+demo.TourDevice+"/tap", tok, map[string]string{"uid": demo.MakerBadgeUID}, &tap); st != 200 || tap.Decision != "grant" {
		t.Fatalf("simulated tap through a demo bridge over TLS: %d %+v", st, tap)
	}
}

// Misused broker TLS settings stop `fabgate serve` at start, before it
// creates anything, saying what to change.
func TestServeBrokerTLSFileErrors(t *testing.T) {
	files, other := mqtttest.WriteTLS(t), mqtttest.WriteTLS(t)
	missing := filepath.Join(t.TempDir(), "none.pem")
	for _, tt := range []struct {
		name      string
		cert, key string
		want      []string
	}{
		{"missing certificate", missing, files.Key, []string{"mqtt_tls_cert", missing, "no such file"}},
		{"another certificate's key", files.Cert, other.Key, []string{"mqtt_tls_key", "does not match", "--mqtt-tls-key its own private key"}},
		{"key as the certificate", files.Key, files.Cert, []string{"mqtt_tls_cert", "PEM"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "lab")
			err := run(context.Background(), []string{"serve", "--data", data, "--http", "127.0.0.1:0", "--mqtt-listen", "127.0.0.1:0",
				"--mqtt-tls-cert", tt.cert, "--mqtt-tls-key", tt.key}, nil, io.Discard, io.Discard, envOf(nil))
			if err == nil {
				t.Fatal("serve started")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if _, err := os.Stat(data); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the data directory was created (%v)", err)
			}
		})
	}
	var help bytes.Buffer
	if err := run(context.Background(), []string{"serve", "-h"}, nil, &help, &help, envOf(nil)); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"-mqtt-tls-cert", "-mqtt-tls-key", "-mqtt-insecure-lan", "0.0.0.0:8883"} {
		if !strings.Contains(help.String(), w) {
			t.Errorf("fabgate serve -h does not mention %s", w)
		}
	}
}

// waitFor waits until cond holds, looking every few milliseconds, for 10 s
// at most.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		<-tick.C
	}
}

// The start log says how devices reach the broker, and warns of what an
// operator must fix: a certificate expired or expiring, or a broker on the
// network in clear.
func TestLogBrokerSecurity(t *testing.T) {
	files := mqtttest.WriteTLS(t)
	brokerTLS, err := mqtt.ServerTLS(files.Cert, files.Key)
	if err != nil {
		t.Fatal(err)
	}
	expires := brokerTLS.Certificates[0].Leaf.NotAfter
	for _, tt := range []struct {
		name   string
		listen string
		tls    *tls.Config
		now    time.Time
		want   string // "" for no line
	}{
		{"TLS", "0.0.0.0:8883", brokerTLS, expires.Add(-60 * 24 * time.Hour), `level=INFO msg="the embedded MQTT broker speaks TLS" addr=0.0.0.0:8883 names=localhost,127.0.0.1,::1 expires=`},
		{"certificate expiring", "0.0.0.0:8883", brokerTLS, expires.Add(-10 * 24 * time.Hour), `level=WARN msg="the embedded MQTT broker's certificate expires soon: renew it and restart"`},
		{"certificate expired", "0.0.0.0:8883", brokerTLS, expires.Add(time.Minute), `level=ERROR msg="the embedded MQTT broker's certificate has expired: bridges refuse it; renew it and restart"`},
		{"LAN in clear", "192.168.1.10:1883", nil, labTime, `level=WARN msg="the embedded MQTT broker listens beyond loopback without TLS (--mqtt-insecure-lan)`},
		{"loopback in clear", "127.0.0.1:1883", nil, labTime, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			logBrokerSecurity(slog.New(slog.NewTextHandler(&buf, nil)), Config{MQTTListen: tt.listen}, tt.listen, tt.tls, tt.now)
			if tt.want == "" && buf.Len() != 0 || !strings.Contains(buf.String(), tt.want) {
				t.Fatalf("logged %q, want %q", buf.String(), tt.want)
			}
		})
	}
}
