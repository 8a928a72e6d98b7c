package mqtt

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/logbuf"
)

const (
	testServerUser = "fabgate-server"
	testServerPass = "server-pass-7f3a"
	devA, devB     = "dev-a", "dev-b"
	secretA        = "secret-a-91c2"
	secretB        = "secret-b-5d0e"
	testPrefix     = "fabgate/v1"

	// waitLong bounds every wait for something that should happen.
	waitLong = 10 * time.Second
)

// testDevices is a DeviceAuth over Mosquitto hashes, as the store keeps them.
type testDevices map[string]string

func (d testDevices) VerifyDevice(_ context.Context, id, secret string) (bool, error) {
	h, ok := d[id]
	if !ok {
		return false, nil
	}
	return VerifyMosquittoHash(h, secret), nil
}

var (
	devicesOnce sync.Once
	devicesHash testDevices
)

// hashedDevices returns dev-a and dev-b with their secrets hashed.
func hashedDevices(t testing.TB) testDevices {
	t.Helper()
	devicesOnce.Do(func() {
		devicesHash = testDevices{}
		for id, secret := range map[string]string{devA: secretA, devB: secretB} {
			h, err := MosquittoPasswordHash(secret)
			if err != nil {
				panic(err)
			}
			devicesHash[id] = h
		}
	})
	return devicesHash
}

// testLog returns a logger whose output is printed if the test fails (the
// clients and broker may log after the test returns, so it cannot be t.Log).
func testLog(t testing.TB) (*slog.Logger, *logbuf.Buffer) {
	t.Helper()
	buf := &logbuf.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// startBroker starts the embedded broker on a random port; addr may name a
// fixed one.
func startBroker(t testing.TB, addr, prefix string, log *slog.Logger) *Broker {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	b, err := StartBroker(BrokerConfig{
		Listen:         addr,
		Prefix:         prefix,
		Devices:        hashedDevices(t),
		ServerUser:     testServerUser,
		ServerPassword: testServerPass,
		Log:            log,
	})
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

var clientSeq atomic.Int64

// uniqueID returns a client id no other test client uses.
func uniqueID(role string) string {
	return fmt.Sprintf("%s-%d-%d", role, time.Now().UnixNano()%1e6, clientSeq.Add(1))
}

// dial connects a client (closed at cleanup), failing the test if it cannot.
func dial(t testing.TB, addr, user, pass string, edit ...func(*ClientConfig)) *Client {
	t.Helper()
	c, err := dialErr(t, addr, user, pass, edit...)
	if err != nil {
		t.Fatalf("connect as %q: %v", user, err)
	}
	t.Cleanup(func() { c.Close(nil) })
	return c
}

func dialErr(t testing.TB, addr, user, pass string, edit ...func(*ClientConfig)) (*Client, error) {
	t.Helper()
	id := uniqueID(user)
	if user != testServerUser && user != "" {
		id = user // a device's client id is its device id
	}
	cfg := ClientConfig{
		Broker:   "tcp://" + addr,
		ClientID: id,
		Username: user,
		Password: pass,
	}
	for _, e := range edit {
		e(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	return Connect(ctx, cfg)
}

func withLog(log *slog.Logger) func(*ClientConfig) {
	return func(c *ClientConfig) { c.Log = log }
}

// publish publishes and fails the test on error.
func publish(t testing.TB, c *Client, topic, payload string, qos byte, retained bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := c.Publish(ctx, Message{Topic: topic, Payload: []byte(payload), QoS: qos, Retained: retained}); err != nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
}

// subscribe subscribes and fails the test on error.
func subscribe(t testing.TB, c *Client, filter string, in *inbox) {
	t.Helper()
	if err := c.Subscribe(filter, 1, in.handle); err != nil {
		t.Fatalf("subscribe %s: %v", filter, err)
	}
}

type received struct{ topic, payload string }

// inbox records what a handler receives.
type inbox struct {
	mu   sync.Mutex
	msgs []received
	more chan struct{} // signalled after each message
}

func newInbox() *inbox { return &inbox{more: make(chan struct{}, 1)} }

func (in *inbox) handle(topic string, payload []byte) {
	in.mu.Lock()
	in.msgs = append(in.msgs, received{topic, string(payload)})
	in.mu.Unlock()
	select {
	case in.more <- struct{}{}:
	default:
	}
}

func (in *inbox) all() []received {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.msgs)
}

// waitFor waits until a message with this topic and payload has arrived.
func (in *inbox) waitFor(t testing.TB, topic, payload string) {
	t.Helper()
	deadline := time.NewTimer(waitLong)
	defer deadline.Stop()
	for {
		if slices.Contains(in.all(), received{topic, payload}) {
			return
		}
		select {
		case <-in.more:
		case <-deadline.C:
			t.Fatalf("no message %q on %s within %s; got %v", payload, topic, waitLong, in.all())
		}
	}
}

// none fails the test if any message received so far matches.
func (in *inbox) none(t testing.TB, what string, match func(received) bool) {
	t.Helper()
	for _, m := range in.all() {
		if match(m) {
			t.Errorf("received %s: %q on %s", what, m.payload, m.topic)
		}
	}
}

// eventually waits until cond holds, checking it every few milliseconds.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", waitLong, what)
		}
		<-tick.C
	}
}

// proxy forwards TCP connections to a broker and can cut them all at once,
// like a network failure the client does not see coming.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
}

func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &proxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(func() { _ = ln.Close(); p.cut() })
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(out, in); _ = out.Close() }()
		go func() { _, _ = io.Copy(in, out); _ = in.Close() }()
	}
}

// cut closes every connection through the proxy, without any MQTT
// DISCONNECT.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

func devTopic(prefix, dev, kind string) string {
	return prefix + "/dev/" + dev + "/" + kind
}

func hasDevice(dev string) func(received) bool {
	return func(m received) bool { return strings.Contains(m.topic, "/dev/"+dev+"/") }
}
