package main

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/devicesim"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/mqtt"
	"github.com/fabgate/fabgate/internal/mqtt/mqtttest"
)

// TestE2EServeWithMosquitto: `fabgate mosquitto-config` writes the files of a
// real Mosquitto, `fabgate serve --mqtt-url` runs the lab on it, and a device
// with its own credentials taps its way to an unlock.
func TestE2EServeWithMosquitto(t *testing.T) {
	mqtttest.RequireMosquitto(t)
	ctx := context.Background()
	data := t.TempDir()
	s, err := bolt.Open(filepath.Join(data, "fabgate.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.CreateMachine(ctx, fablab.Machine{Name: "Printer", Kind: fablab.Kind3DPrinter, DeviceID: "fdm-9"})
	if err != nil {
		t.Fatal(err)
	}
	mem, err := s.CreateMember(ctx, fablab.Member{Email: "ada@fablab.test", Name: "Ada", Group: "student"})
	if err != nil {
		t.Fatal(err)
	}
	const uid = "04AABBCCDDEEFF"
	if _, err := s.AddBadge(ctx, fablab.Badge{Hash: auth.BadgeHash(s.BadgeSecret(), uid), MemberID: mem.ID}); err != nil {
		t.Fatal(err)
	}
	secret := auth.NewToken()
	hash, err := mqtt.MosquittoPasswordHash(secret)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateDevice(ctx, fablab.Device{ID: "fdm-9", MachineID: m.ID, SecretHash: hash}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	conf := t.TempDir()
	addr := mqtttest.FreeAddr(t)
	var out bytes.Buffer
	if err := run(ctx, []string{"mosquitto-config", "--data", data, "--out", conf, "--listen", addr}, nil, &out, io.Discard, envOf(nil)); err != nil {
		t.Fatalf("mosquitto-config: %v", err)
	}
	if !strings.Contains(out.String(), "1 devices") {
		t.Errorf("mosquitto-config said %q", out.String())
	}
	brokerAddr := mqtttest.StartMosquitto(t, conf)

	startServer(t, "--data", data, "--mqtt-url", "tcp://"+brokerAddr)
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	dev, err := devicesim.Start(dctx, devicesim.Config{Broker: "tcp://" + brokerAddr, ID: "fdm-9", Secret: secret})
	if err != nil {
		t.Fatalf("the device cannot log in to Mosquitto with its secret: %v", err)
	}
	defer dev.Close()
	if _, err := devicesim.Start(dctx, devicesim.Config{Broker: "tcp://" + brokerAddr, ID: "fdm-9", Secret: "wrong"}); err == nil {
		t.Fatal("a wrong secret logged in")
	}
	if _, err := dev.Tap(dctx, uid); err != nil {
		t.Fatal(err)
	}
	for {
		c, err := dev.Next(dctx)
		if err != nil {
			t.Fatalf("no unlock through Mosquitto: %v", err)
		}
		if c.Op == "unlock" {
			break
		}
		if c.Op == "deny" {
			t.Fatalf("denied: %s", c.Reason)
		}
	}
}
