package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/logbuf"

	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt/bolttest"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/lab"
	"github.com/fabgate/fabgate/internal/mqtt"
	"github.com/fabgate/fabgate/internal/wire"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunCheckAndUsage(t *testing.T) {
	good := writeConfig(t, `{"badge_key":"00112233445566778899aabbccddeeff","broker":{"url":"tcp://127.0.0.1:1"},"devices":[{"id":"d-1","secret":"s","reader":{"kind":"stdin"},"relay":{"kind":"sim"}}]}`)
	bad := writeConfig(t, `{"badge_key":"00112233445566778899aabbccddeeff","broker":{"url":"tcp://127.0.0.1:1"},"devices":[{"id":"d-1","secret":"s","reader":{"kind":"stdin"},"relay":{"kind":"toaster"}}]}`)
	for _, tt := range []struct {
		name    string
		args    []string
		wantOut string
		wantErr string
	}{
		{"version", []string{"version"}, "fabgate-bridge dev", ""},
		{"check a good file", []string{"--check", "--config", good}, "1 device(s), configuration OK", ""},
		{"check a bad file", []string{"--check", "--config", bad}, "", `relay: kind "toaster" is not one of`},
		{"missing file", []string{"--config", filepath.Join(t.TempDir(), "none.json")}, "", "no such file"},
		{"unknown flag", []string{"--colour"}, "", "usage"},
		{"stray argument", []string{"start"}, "", `unexpected argument "start"`},
		{"bad log level", []string{"--log-level", "loud", "--config", good}, "", "--log-level"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tt.args, strings.NewReader(""), &out, &errOut)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Fatalf("output %q, want %q", out.String(), tt.wantOut)
			}
		})
	}
}

// The program in --sim mode against a real server: a badge written on
// standard input opens a session, the relay (simulated) confirms it, and
// stopping the program closes it.
func TestRunSimAgainstServer(t *testing.T) {
	ctx := context.Background()
	store := bolttest.Open(t, time.Now)
	m, err := store.CreateMachine(ctx, fablab.Machine{Name: "Printer", Kind: fablab.Kind3DPrinter, DeviceID: "printer-1"})
	if err != nil {
		t.Fatal(err)
	}
	mem, err := store.CreateMember(ctx, fablab.Member{Email: "ada@lab.test", Name: "Ada", Group: "student"})
	if err != nil {
		t.Fatal(err)
	}
	// Ada holds several badges: a badge read again within 2 s is ignored,
	// and the test tries until the device is online, with a new one each
	// time (a tap read before the link is up is refused offline: the
	// device has no allowlist yet).
	var uids []string
	for i := range 8 {
		uid := fmt.Sprintf("04A2B3C4D5E6%02X", i)
		uids = append(uids, uid)
		if _, err := store.AddBadge(ctx, fablab.Badge{Hash: auth.BadgeHash(store.BadgeSecret(), uid), MemberID: mem.ID}); err != nil {
			t.Fatal(err)
		}
	}
	secret := auth.NewToken()
	hash, _ := mqtt.MosquittoPasswordHash(secret)
	if _, err := store.CreateDevice(ctx, fablab.Device{ID: "printer-1", MachineID: m.ID, SecretHash: hash}); err != nil {
		t.Fatal(err)
	}
	logs := &logbuf.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs.String())
		}
	})
	// The server's clock is the real one until the test moves it past the
	// unlock's retries.
	clock := &shiftedClock{}
	running, err := lab.Start(ctx, lab.Config{Store: store, Listen: "127.0.0.1:0", Manual: true, Now: clock.Now, Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("side", "server")})
	if err != nil {
		t.Fatal(err)
	}
	defer running.Close()
	key, err := store.AllowlistKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, fmt.Sprintf(`{"badge_key":%q,"state_dir":%q,"broker":{"url":%q},"devices":[{"id":"printer-1","secret":%q,"allowlist_key":%q,"allowlist_key_id":%d,"reader":{"kind":"stdin"},"relay":{"kind":"sim"}}]}`,
		hex.EncodeToString(store.BadgeSecret()), t.TempDir(), running.URL, secret, hex.EncodeToString(auth.DeviceAllowlistKey(key.Root, key.ID, "printer-1")), key.ID))

	stdin, feed := io.Pipe()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- run(runCtx, []string{"--sim", "--log-level", "debug", "--config", cfg}, stdin, io.Discard, logs)
	}()
	open := func() bool { _, err := store.OpenSessionOn(ctx, m.ID); return err == nil }
	for i := 0; !open(); i++ {
		if i >= len(uids)*25 {
			stop()
			t.Fatal("no session opened by taps on standard input")
		}
		if i%25 == 0 { // a new badge every 25 polls
			fmt.Fprintln(feed, uids[i/25])
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Stopped at once, the ack of the unlock (if the unlock reached the
	// bridge at all) and the relay's states on their way.
	stopAt := time.Now().Unix()
	stop()
	feed.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Everything the bridge published has reached the broker (it waits for
	// the broker's acks before it disconnects): once the server has dropped
	// a malformed message sent after it on each topic, it has handled it.
	raw, err := mqtt.Connect(ctx, mqtt.ClientConfig{Broker: running.URL, ClientID: "printer-1", Username: "printer-1", Password: secret})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close(nil)
	for _, kind := range []wire.Kind{wire.KindAck, wire.KindState, wire.KindStatus} {
		before := running.Engine.Dropped.Load()
		if err := raw.Publish(ctx, mqtt.Message{Topic: running.Topics.Device("printer-1", kind), Payload: []byte("barrier"), QoS: 1}); err != nil {
			t.Fatal(err)
		}
		for i := 0; running.Engine.Dropped.Load() == before; i++ {
			if i > 500 {
				t.Fatalf("the server did not take the %s barrier", kind)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// Whether the relay went on: for the server's unlock, or for a tap the
	// bridge granted alone before it saw the server online (its session is
	// adopted by the server once replayed).
	unlocked := strings.Contains(logs.String(), `msg=unlocked`) || strings.Contains(logs.String(), `msg="session granted offline"`)
	if open() {
		// An unlock the stopped bridge will never acknowledge: the server's
		// unlock that reached it too late, or the one that adopts a session
		// the bridge granted alone. The server gives it up after its
		// retries, and the relay's last state says the rest.
		for range 4 {
			clock.shift(3 * time.Second)
			running.Engine.RetryDue(ctx)
		}
	}
	s, err := store.SessionsOfMachine(ctx, m.ID, time.Unix(0, 0), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(s) == 1 {
		t.Logf("relay on: %v; session ended %s, confirmed %v", unlocked, s[0].EndReason, s[0].Confirmed)
	}
	switch {
	case len(s) != 1 || s[0].Open():
		t.Fatalf("sessions %+v: the session stayed open after the bridge stopped", s)
	case unlocked && (s[0].EndReason != fablab.EndRelayOff || !s[0].Billable || !s[0].Confirmed || s[0].Ended.Unix() > stopAt+1):
		// The relay went on: the stop ended the session, billed to then.
		t.Fatalf("session %+v: want ended relay_off by the stop (%d), billed", s[0], stopAt)
	case !unlocked && (s[0].EndReason != fablab.EndRelayUnconfirmed || s[0].Billable):
		t.Fatalf("session %+v: the relay never went on, want relay_unconfirmed, not billed", s[0])
	}
}

// shiftedClock is the real clock moved ahead by the test.
type shiftedClock struct {
	mu sync.Mutex
	by time.Duration
}

func (c *shiftedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.by)
}

func (c *shiftedClock) shift(d time.Duration) {
	c.mu.Lock()
	c.by += d
	c.mu.Unlock()
}
