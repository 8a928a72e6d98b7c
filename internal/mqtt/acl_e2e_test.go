package mqtt

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/mqtt/mqtttest"
)

// aclEnv is a running broker configured for FabGate, with the server user
// and the devices dev-a and dev-b.
type aclEnv struct {
	addr   string
	prefix string
	log    *slog.Logger
	// embedded is true for FabGate's own broker, which also refuses
	// forbidden subscriptions in the SUBACK and retained messages outside a
	// device's status and state. Mosquitto's ACL file can do neither: it
	// grants the SUBACK and then delivers nothing, and lets a device retain
	// whatever it may publish.
	embedded bool
}

func (e aclEnv) dial(t *testing.T, user, pass string, edit ...func(*ClientConfig)) *Client {
	t.Helper()
	return dial(t, e.addr, user, pass, append([]func(*ClientConfig){withLog(e.log)}, edit...)...)
}

func (e aclEnv) topic(dev, kind string) string { return devTopic(e.prefix, dev, kind) }

func TestEmbeddedBrokerACL(t *testing.T) {
	log, _ := testLog(t)
	b := startBroker(t, "", testPrefix, log)
	runACLSuite(t, aclEnv{addr: b.Addr(), prefix: testPrefix, log: log, embedded: true})
}

func TestEmbeddedBrokerACLCustomPrefix(t *testing.T) {
	log, _ := testLog(t)
	const prefix = "lab42/fabgate"
	b := startBroker(t, "", prefix, log)
	runACLSuite(t, aclEnv{addr: b.Addr(), prefix: prefix, log: log, embedded: true})
}

func TestMosquittoACL(t *testing.T) {
	mqtttest.RequireMosquitto(t)
	log, _ := testLog(t)
	dir := filepath.Join(t.TempDir(), "mosquitto")
	devices := map[string]string(hashedDevices(t))
	server := MosquittoUser{Username: testServerUser, Password: testServerPass}
	if err := WriteMosquittoConfig(dir, testPrefix, mqtttest.FreeAddr(t), server, devices); err != nil {
		t.Fatal(err)
	}
	addr := mqtttest.StartMosquitto(t, dir)
	env := aclEnv{addr: addr, prefix: testPrefix, log: log}
	t.Run("hashes_written_by_fabgate_authenticate", func(t *testing.T) {
		// The server's hash was made by WriteMosquittoConfig, the devices'
		// by MosquittoPasswordHash.
		env.dial(t, testServerUser, testServerPass)
		env.dial(t, devA, secretA)
		env.dial(t, devB, secretB)
	})
	runACLSuite(t, env)
}

// runACLSuite checks the ACL of DESIGN §4 from the outside, with real
// clients.
func runACLSuite(t *testing.T, env aclEnv) {
	p := env.prefix

	t.Run("server_and_device_exchange", func(t *testing.T) {
		srv := env.dial(t, testServerUser, testServerPass)
		taps := newInbox()
		subscribe(t, srv, p+"/dev/+/tap", taps)
		misc := newInbox()
		subscribe(t, srv, p+"/custom/#", misc)

		a := env.dial(t, devA, secretA)
		toA := newInbox()
		subscribe(t, a, env.topic(devA, "cmd"), toA)
		subscribe(t, a, env.topic(devA, "allowlist"), toA)
		subscribe(t, a, p+"/server/status", toA)

		publish(t, a, env.topic(devA, "tap"), `{"v":1,"uid":"04A2"}`, 1, false)
		taps.waitFor(t, env.topic(devA, "tap"), `{"v":1,"uid":"04A2"}`)

		publish(t, srv, env.topic(devA, "cmd"), `{"v":1,"op":"unlock"}`, 1, false)
		toA.waitFor(t, env.topic(devA, "cmd"), `{"v":1,"op":"unlock"}`)
		publish(t, srv, env.topic(devA, "allowlist"), `{"v":1,"ver":1}`, 1, true)
		toA.waitFor(t, env.topic(devA, "allowlist"), `{"v":1,"ver":1}`)
		publish(t, srv, p+"/server/status", `{"v":1,"online":true}`, 1, true)
		toA.waitFor(t, p+"/server/status", `{"v":1,"online":true}`)

		publish(t, srv, p+"/custom/x", "anything under the prefix", 1, false)
		misc.waitFor(t, p+"/custom/x", "anything under the prefix")
	})

	t.Run("device_publishes_only_its_own_topics", func(t *testing.T) {
		srv := env.dial(t, testServerUser, testServerPass)
		all := newInbox()
		subscribe(t, srv, p+"/#", all)
		var connects atomic.Int32
		a := env.dial(t, devA, secretA, func(c *ClientConfig) {
			c.OnConnect = func(*Client) { connects.Add(1) }
		})

		for _, kind := range []string{"status", "hb", "tap", "ack", "state"} {
			publish(t, a, env.topic(devA, kind), "own "+kind, 1, false)
			all.waitFor(t, env.topic(devA, kind), "own "+kind)
		}

		forbidden := []Message{
			{Topic: env.topic(devB, "tap")},
			{Topic: env.topic(devB, "status"), Retained: true},
			{Topic: env.topic(devA, "cmd")},
			{Topic: env.topic(devA, "allowlist")},
			{Topic: env.topic(devA, "other")},
			{Topic: p + "/server/status", Retained: true},
			{Topic: p + "/dev/dev-a"},
			{Topic: "elsewhere/dev/dev-a/tap"},
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		for _, m := range forbidden {
			// QoS 0: both brokers drop it silently; the client cannot tell.
			m.Payload = []byte("forbidden")
			if err := a.Publish(ctx, m); err != nil {
				t.Fatalf("publish %s: %v", m.Topic, err)
			}
		}
		// QoS 1: MQTT 3.1.1 cannot say no; both brokers acknowledge and drop
		// it (closing the connection instead would make paho send it again
		// after every reconnection).
		for _, m := range forbidden[:2] {
			m.Payload, m.QoS = []byte("forbidden"), 1
			if err := a.Publish(ctx, m); err != nil {
				t.Fatalf("publish %s at QoS 1: %v", m.Topic, err)
			}
		}

		// Everything above was sent before this; once it arrives, anything
		// forbidden that got through would have arrived too.
		publish(t, a, env.topic(devA, "tap"), "sentinel", 1, false)
		all.waitFor(t, env.topic(devA, "tap"), "sentinel")
		all.none(t, "a forbidden publish", func(m received) bool { return m.payload == "forbidden" })
		if n := connects.Load(); n != 1 {
			t.Errorf("the device connected %d times: it was disconnected for a forbidden publish", n)
		}
	})

	t.Run("device_cannot_subscribe_to_another_device", func(t *testing.T) {
		srv := env.dial(t, testServerUser, testServerPass)
		b := env.dial(t, devB, secretB)
		toB := newInbox()
		subscribe(t, b, env.topic(devB, "cmd"), toB)

		a := env.dial(t, devA, secretA)
		own := newInbox()
		subscribe(t, a, env.topic(devA, "cmd"), own)
		stolen := newInbox()
		for _, kind := range []string{"cmd", "allowlist", "tap"} {
			err := a.Subscribe(env.topic(devB, kind), 1, stolen.handle)
			if env.embedded && !errors.Is(err, ErrSubscriptionRefused) {
				t.Errorf("subscribe to %s: got %v, want ErrSubscriptionRefused", env.topic(devB, kind), err)
			}
			if !env.embedded && err != nil {
				t.Errorf("subscribe to %s: %v (Mosquitto grants it and delivers nothing)", env.topic(devB, kind), err)
			}
		}

		publish(t, srv, env.topic(devB, "cmd"), "for b", 1, false)
		publish(t, srv, env.topic(devB, "allowlist"), "for b", 1, false)
		publish(t, b, env.topic(devB, "tap"), "from b", 1, false)
		toB.waitFor(t, env.topic(devB, "cmd"), "for b")
		publish(t, srv, env.topic(devA, "cmd"), "sentinel", 1, false)
		own.waitFor(t, env.topic(devA, "cmd"), "sentinel")
		stolen.none(t, "another device's message", func(received) bool { return true })
		own.none(t, "another device's message", hasDevice(devB))
	})

	t.Run("device_cannot_use_wildcards", func(t *testing.T) {
		srv := env.dial(t, testServerUser, testServerPass)
		a := env.dial(t, devA, secretA)
		own := newInbox()
		subscribe(t, a, env.topic(devA, "cmd"), own)
		wild := newInbox()
		for _, f := range []string{
			p + "/dev/+/cmd", p + "/dev/+/+", p + "/dev/dev-a/+", p + "/dev/dev-a/#",
			p + "/#", "#", "+/dev/dev-a/cmd", "$SYS/#",
		} {
			err := a.Subscribe(f, 1, wild.handle)
			if env.embedded && !errors.Is(err, ErrSubscriptionRefused) {
				t.Errorf("subscribe to %s: got %v, want ErrSubscriptionRefused", f, err)
			}
			if !env.embedded && err != nil {
				t.Errorf("subscribe to %s: %v", f, err)
			}
		}
		publish(t, srv, env.topic(devB, "cmd"), "for b", 1, false)
		publish(t, srv, env.topic(devB, "allowlist"), "for b", 1, true)
		publish(t, srv, env.topic(devB, "tap"), "b tap", 1, false)
		publish(t, srv, env.topic(devA, "cmd"), "sentinel", 1, false)
		own.waitFor(t, env.topic(devA, "cmd"), "sentinel")
		wild.none(t, "another device's message through a wildcard", hasDevice(devB))
		if env.embedded {
			wild.none(t, "anything through a refused wildcard", func(received) bool { return true })
		}
	})

	t.Run("credentials_refused", func(t *testing.T) {
		cases := []struct{ name, user, pass string }{
			{"wrong_device_secret", devA, "not-the-secret"},
			{"other_devices_secret", devA, secretB},
			{"unknown_device", "dev-zz", secretA},
			{"anonymous", "", ""},
			{"no_password", devA, ""},
			{"device_id_case", "DEV-A", secretA},
			{"wrong_server_password", testServerUser, "nope"},
			{"server_with_device_secret", testServerUser, secretA},
			{"device_with_server_password", devA, testServerPass},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				start := time.Now()
				c, err := dialErr(t, env.addr, tc.user, tc.pass, withLog(env.log))
				if err == nil {
					c.Close(nil)
					t.Fatal("connected; want a refusal")
				}
				if !errors.Is(err, ErrRefused) {
					t.Fatalf("got %v, want ErrRefused", err)
				}
				if d := time.Since(start); d > 5*time.Second {
					t.Errorf("refusal took %s; Connect should give up at the first refusal", d)
				}
			})
		}
	})

	t.Run("retained_messages", func(t *testing.T) {
		a := env.dial(t, devA, secretA)
		publish(t, a, env.topic(devA, "status"), "retained status", 1, true)
		publish(t, a, env.topic(devA, "state"), "retained state", 1, true)
		publish(t, a, env.topic(devA, "tap"), "retained tap", 1, true)
		publish(t, a, env.topic(devA, "ack"), "retained ack", 1, true)

		// A client that subscribes afterwards receives only retained messages.
		srv := env.dial(t, testServerUser, testServerPass)
		late := newInbox()
		subscribe(t, srv, env.topic(devA, "tap"), late)
		subscribe(t, srv, env.topic(devA, "ack"), late)
		subscribe(t, srv, env.topic(devA, "status"), late)
		subscribe(t, srv, env.topic(devA, "state"), late)
		late.waitFor(t, env.topic(devA, "status"), "retained status")
		late.waitFor(t, env.topic(devA, "state"), "retained state")
		if env.embedded {
			late.none(t, "a retained tap or ack", func(m received) bool {
				return m.payload == "retained tap" || m.payload == "retained ack"
			})
		} else {
			t.Log("Mosquitto's ACL cannot refuse a retained tap; only the embedded broker does")
		}
	})
}
