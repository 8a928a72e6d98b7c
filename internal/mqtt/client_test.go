package mqtt

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/mqtt/mqtttest"
)

func TestClientReconnectsAndResubscribes(t *testing.T) {
	log, _ := testLog(t)
	b1 := startBroker(t, "", testPrefix, log)
	addr := b1.Addr()

	srvUp := make(chan struct{}, 10)
	srv := dial(t, addr, testServerUser, testServerPass, withLog(log), func(c *ClientConfig) {
		c.OnConnect = func(*Client) { srvUp <- struct{}{} }
	})
	<-srvUp
	taps := newInbox()
	subscribe(t, srv, testPrefix+"/dev/+/tap", taps)

	devUp := make(chan struct{}, 10)
	dev := dial(t, addr, devA, secretA, withLog(log), func(c *ClientConfig) {
		c.OnConnect = func(*Client) { devUp <- struct{}{} }
	})
	<-devUp
	publish(t, dev, testPrefix+"/dev/dev-a/tap", "before", 1, false)
	taps.waitFor(t, testPrefix+"/dev/dev-a/tap", "before")

	if err := b1.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the clients to see the broker gone", func() bool { return !srv.Connected() && !dev.Connected() })

	// A subscription made while disconnected is remembered and made on
	// reconnection, like the others.
	states := newInbox()
	if err := srv.Subscribe(testPrefix+"/dev/+/state", 1, states.handle); err != nil {
		t.Fatalf("subscribe while disconnected: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := dev.Publish(ctx, Message{Topic: testPrefix + "/dev/dev-a/tap", Payload: []byte("lost"), QoS: 1}); !errors.Is(err, ErrNotConnected) {
		t.Errorf("publish while disconnected: got %v, want ErrNotConnected", err)
	}

	start := time.Now()
	startBroker(t, addr, testPrefix, log) // same port
	for _, up := range []chan struct{}{srvUp, devUp} {
		select {
		case <-up:
		case <-time.After(waitLong):
			t.Fatalf("no reconnection within %s", waitLong)
		}
	}
	publish(t, dev, testPrefix+"/dev/dev-a/tap", "after", 1, false)
	publish(t, dev, testPrefix+"/dev/dev-a/state", "state after", 1, true)
	taps.waitFor(t, testPrefix+"/dev/dev-a/tap", "after")
	states.waitFor(t, testPrefix+"/dev/dev-a/state", "state after")
	if d := time.Since(start); d > waitLong {
		t.Errorf("delivery after restart took %s", d)
	}
	taps.none(t, "a publish refused while disconnected", func(m received) bool { return m.payload == "lost" })
}

func TestClientWillOnUncleanDrop(t *testing.T) {
	log, _ := testLog(t)
	b := startBroker(t, "", testPrefix, log)
	srv := dial(t, b.Addr(), testServerUser, testServerPass, withLog(log))
	status := newInbox()
	subscribe(t, srv, testPrefix+"/dev/+/status", status)

	px := startProxy(t, b.Addr())
	statusTopic := testPrefix + "/dev/dev-a/status"
	dial(t, px.addr(), devA, secretA, withLog(log), func(c *ClientConfig) {
		c.Will = &Message{Topic: statusTopic, Payload: []byte(`{"v":1,"online":false}`), QoS: 1, Retained: true}
		c.OnConnect = func(c *Client) {
			_ = c.Publish(context.Background(), Message{Topic: statusTopic, Payload: []byte(`{"v":1,"online":true}`), QoS: 1, Retained: true})
		}
	})
	status.waitFor(t, statusTopic, `{"v":1,"online":true}`)

	// The network fails: no DISCONNECT reaches the broker, and the client
	// cannot come back (had it reconnected first with the same client id,
	// the broker would see a session takeover rather than a lost client).
	_ = px.ln.Close()
	px.cut()
	status.waitFor(t, statusTopic, `{"v":1,"online":false}`)
}

func TestClientCloseSendsFinalNotWill(t *testing.T) {
	log, _ := testLog(t)
	b := startBroker(t, "", testPrefix, log)
	a := dial(t, b.Addr(), devA, secretA, withLog(log))
	in := newInbox()
	subscribe(t, a, testPrefix+"/server/status", in)

	statusTopic := testPrefix + "/server/status"
	srv, err := dialErr(t, b.Addr(), testServerUser, testServerPass, withLog(log), func(c *ClientConfig) {
		c.Will = &Message{Topic: statusTopic, Payload: []byte("will"), QoS: 1, Retained: true}
		c.OnConnect = func(c *Client) {
			_ = c.Publish(context.Background(), Message{Topic: statusTopic, Payload: []byte("online"), QoS: 1, Retained: true})
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	in.waitFor(t, statusTopic, "online")
	srv.Close(&Message{Topic: statusTopic, Payload: []byte("offline"), QoS: 1, Retained: true})
	srv.Close(nil) // a second Close does nothing
	in.waitFor(t, statusTopic, "offline")
	if err := srv.Publish(context.Background(), Message{Topic: statusTopic, QoS: 1}); !errors.Is(err, ErrClosed) {
		t.Errorf("publish after close: got %v, want ErrClosed", err)
	}
	if err := srv.Subscribe(statusTopic, 1, in.handle); !errors.Is(err, ErrClosed) {
		t.Errorf("subscribe after close: got %v, want ErrClosed", err)
	}

	// The retained status is the final one; the will was not published.
	late := newInbox()
	subscribe(t, dial(t, b.Addr(), devB, secretB), statusTopic, late)
	late.waitFor(t, statusTopic, "offline")
	in.none(t, "the will after a clean close", func(m received) bool { return m.payload == "will" })
}

func TestClientBlockedHandlerDoesNotStallOthers(t *testing.T) {
	log, buf := testLog(t)
	b := startBroker(t, "", testPrefix, log)
	srv := dial(t, b.Addr(), testServerUser, testServerPass, withLog(log), func(c *ClientConfig) { c.QueueLen = 2 })
	dev := dial(t, b.Addr(), devA, secretA, withLog(log))

	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // before the clients close
	entered := make(chan struct{}, 1)
	if err := srv.Subscribe(testPrefix+"/dev/+/hb", 0, func(string, []byte) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
	}); err != nil {
		t.Fatal(err)
	}
	taps := newInbox()
	subscribe(t, srv, testPrefix+"/dev/+/tap", taps)

	const beats = 20
	publish(t, dev, testPrefix+"/dev/dev-a/hb", "beat", 0, false)
	select { // the handler now holds the first beat
	case <-entered:
	case <-time.After(waitLong):
		t.Fatal("the handler never received the first heartbeat")
	}
	for range beats - 1 {
		publish(t, dev, testPrefix+"/dev/dev-a/hb", "beat", 0, false)
	}
	publish(t, dev, testPrefix+"/dev/dev-a/tap", "tap", 1, false)
	taps.waitFor(t, testPrefix+"/dev/dev-a/tap", "tap")

	// One message in the blocked handler, two queued, the rest dropped.
	eventually(t, "the heartbeats beyond the queue to be dropped and logged", func() bool {
		return srv.Dropped() >= beats-3 && strings.Contains(buf.String(), "mqtt handler queue full")
	})
	if n := strings.Count(buf.String(), "mqtt handler queue full"); n != 1 {
		t.Errorf("queue overflow logged %d times, want once", n)
	}
}

func TestClientHandlerPanicIsContained(t *testing.T) {
	log, buf := testLog(t)
	b := startBroker(t, "", testPrefix, log)
	srv := dial(t, b.Addr(), testServerUser, testServerPass, withLog(log))
	dev := dial(t, b.Addr(), devA, secretA, withLog(log))
	in := newInbox()
	if err := srv.Subscribe(testPrefix+"/dev/+/tap", 1, func(topic string, payload []byte) {
		if string(payload) == "boom" {
			panic("handler bug")
		}
		in.handle(topic, payload)
	}); err != nil {
		t.Fatal(err)
	}
	publish(t, dev, testPrefix+"/dev/dev-a/tap", "boom", 1, false)
	publish(t, dev, testPrefix+"/dev/dev-a/tap", "fine", 1, false)
	in.waitFor(t, testPrefix+"/dev/dev-a/tap", "fine")
	// paho may hand the two messages over in either order.
	eventually(t, "the panic to be logged", func() bool { return strings.Contains(buf.String(), "mqtt handler panicked") })
	publish(t, dev, testPrefix+"/dev/dev-a/tap", "still fine", 1, false)
	in.waitFor(t, testPrefix+"/dev/dev-a/tap", "still fine")
}

func TestClientPublishWithoutBrokerFailsFast(t *testing.T) {
	log, _ := testLog(t)
	b := startBroker(t, "", testPrefix, log)
	srv := dial(t, b.Addr(), testServerUser, testServerPass, withLog(log))
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// Whether or not the client has noticed yet, Publish must not hang.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := srv.Publish(ctx, Message{Topic: testPrefix + "/dev/dev-a/cmd", Payload: []byte("x"), QoS: 1})
	if err == nil {
		t.Fatal("publish without a broker succeeded")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("publish took %s with a 500ms context", d)
	}
	eventually(t, "the client to see the broker gone", func() bool { return !srv.Connected() })
	start = time.Now()
	err = srv.Publish(context.Background(), Message{Topic: testPrefix + "/dev/dev-a/cmd", QoS: 1})
	if !errors.Is(err, ErrNotConnected) {
		t.Errorf("got %v, want ErrNotConnected", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("ErrNotConnected took %s", d)
	}
}

func TestClientConnectGivesUpWithContext(t *testing.T) {
	addr := mqtttest.FreeAddr(t) // nothing listens there
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	c, err := Connect(ctx, ClientConfig{Broker: "tcp://" + addr, ClientID: uniqueID("nobody")})
	if err == nil {
		c.Close(nil)
		t.Fatal("connected to nothing")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want a deadline error", err)
	}
	if !strings.Contains(err.Error(), "last attempt") {
		t.Errorf("error %q does not say why the attempts failed", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Connect returned after %s with a 1.5s context", d)
	}
}

func TestClientConfigValidation(t *testing.T) {
	ok := ClientConfig{Broker: "tcp://127.0.0.1:1883", ClientID: "x"}
	for _, tc := range []struct {
		name string
		edit func(*ClientConfig)
		want string
	}{
		{"no client id", func(c *ClientConfig) { c.ClientID = "" }, "client id"},
		{"no broker", func(c *ClientConfig) { c.Broker = "" }, "not a URL"},
		{"no scheme", func(c *ClientConfig) { c.Broker = "127.0.0.1:1883" }, "broker"},
		{"websocket", func(c *ClientConfig) { c.Broker = "ws://127.0.0.1:1883" }, "scheme"},
		{"keepalive too long", func(c *ClientConfig) { c.KeepAlive = 30 * time.Second }, "at most 20s"},
		{"keepalive too short", func(c *ClientConfig) { c.KeepAlive = time.Millisecond }, "at least"},
		{"negative queue", func(c *ClientConfig) { c.QueueLen = -1 }, "queue"},
		{"will without topic", func(c *ClientConfig) { c.Will = &Message{QoS: 1} }, "will"},
		{"will with wildcard", func(c *ClientConfig) { c.Will = &Message{Topic: "a/+"} }, "wildcard"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.edit(&cfg)
			_, err := Connect(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestClientPublishChecksMessage(t *testing.T) {
	log, _ := testLog(t)
	b := startBroker(t, "", testPrefix, log)
	srv := dial(t, b.Addr(), testServerUser, testServerPass, withLog(log))
	for _, m := range []Message{{Topic: ""}, {Topic: testPrefix + "/dev/+/cmd"}, {Topic: testPrefix + "/x", QoS: 3}} {
		if err := srv.Publish(context.Background(), m); err == nil {
			t.Errorf("publish %+v succeeded", m)
		}
	}
	if err := srv.Subscribe(testPrefix+"/x", 1, nil); err == nil {
		t.Error("subscribe with a nil handler succeeded")
	}
	in := newInbox()
	subscribe(t, srv, testPrefix+"/x", in)
	if err := srv.Subscribe(testPrefix+"/x", 1, in.handle); err == nil {
		t.Error("second subscription to the same filter succeeded")
	}
}

func TestClientTLS(t *testing.T) {
	log, _ := testLog(t)
	b := startBroker(t, "", testPrefix, log)
	serverCert, roots := selfSignedTLS(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{serverCert}})
	if err != nil {
		t.Fatal(err)
	}
	// A TLS-terminating proxy in front of the broker, as in production.
	px := &proxy{ln: ln, target: b.Addr()}
	go px.serve()
	t.Cleanup(func() { _ = ln.Close(); px.cut() })

	for _, scheme := range []string{"ssl", "mqtts", "tls"} {
		t.Run(scheme, func(t *testing.T) {
			c := dial(t, "", testServerUser, testServerPass, withLog(log), func(c *ClientConfig) {
				c.Broker = scheme + "://" + ln.Addr().String()
				c.TLS = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
			})
			in := newInbox()
			subscribe(t, c, testPrefix+"/tls", in)
			publish(t, c, testPrefix+"/tls", scheme, 1, false)
			in.waitFor(t, testPrefix+"/tls", scheme)
		})
	}

	t.Run("unknown_ca", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		c, err := Connect(ctx, ClientConfig{
			Broker: "ssl://" + ln.Addr().String(), ClientID: uniqueID("tls"),
			Username: testServerUser, Password: testServerPass,
			TLS: &tls.Config{RootCAs: x509.NewCertPool()},
		})
		if err == nil {
			c.Close(nil)
			t.Fatal("connected to a server whose certificate is not trusted")
		}
		if !strings.Contains(err.Error(), "certificate") {
			t.Errorf("error %q does not mention the certificate", err)
		}
	})
}

// selfSignedTLS returns a certificate for 127.0.0.1 and a pool trusting it.
func selfSignedTLS(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "fabgate test broker"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

// A device's client starts without a broker (Dial returns at once), takes
// the link when the broker comes, and hears when it goes.
func TestClientDialWithoutBroker(t *testing.T) {
	log, _ := testLog(t)
	addr := mqtttest.FreeAddr(t)
	up, lost := make(chan struct{}, 10), make(chan error, 10)
	c, err := Dial(ClientConfig{
		Broker: "tcp://" + addr, ClientID: devA, Username: devA, Password: secretA, Log: log,
		OnConnect:        func(*Client) { up <- struct{}{} },
		OnConnectionLost: func(err error) { lost <- err },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(nil)
	if c.Connected() {
		t.Fatal("connected with no broker")
	}
	b := startBroker(t, addr, testPrefix, log)
	select {
	case <-up:
	case <-time.After(waitLong):
		t.Fatalf("no connection within %s of the broker starting", waitLong)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-time.After(waitLong):
		t.Fatalf("the lost connection was not reported within %s", waitLong)
	}
	if _, err := Dial(ClientConfig{Broker: "tcp://" + addr}); err == nil {
		t.Error("Dial accepted a config without a client id")
	}
}

// A client that (re)connects makes all its subscriptions at once: with
// retained messages in flight after the first one, mochi would refuse a
// later SUBSCRIBE whose packet id clashes with one of theirs.
func TestClientSubscriptionsSurviveRetainedFloodAtConnect(t *testing.T) {
	log, _ := testLog(t)
	b := startBroker(t, "", testPrefix, log)
	pub := dial(t, b.Addr(), testServerUser, testServerPass)
	for i := range 40 {
		publish(t, pub, fmt.Sprintf("%s/dev/dev-%d/state", testPrefix, i), "retained", 1, true)
	}
	up := make(chan struct{}, 1)
	c, err := Dial(ClientConfig{Broker: "tcp://" + b.Addr(), ClientID: uniqueID("srv"), Username: testServerUser, Password: testServerPass, Log: log,
		OnConnect: func(*Client) { up <- struct{}{} }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(nil)
	inboxes := map[string]*inbox{}
	for _, kind := range []string{"state", "tap", "ack", "hb", "status"} {
		in := newInbox()
		inboxes[kind] = in
		if err := c.Subscribe(testPrefix+"/dev/+/"+kind, 1, in.handle); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-up:
	case <-time.After(waitLong):
		t.Fatal("no connection")
	}
	// Every filter is live: a message on each arrives.
	for kind, in := range inboxes {
		publish(t, pub, testPrefix+"/dev/dev-a/"+kind, "live "+kind, 1, false)
		in.waitFor(t, testPrefix+"/dev/dev-a/"+kind, "live "+kind)
	}
}
