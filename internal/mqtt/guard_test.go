package mqtt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/fabgate/fabgate/internal/logbuf"
	"github.com/fabgate/fabgate/internal/wire"
)

// Abusive clients, spoken in raw MQTT 3.1.1 over TCP.

// startGuardedBroker starts the embedded broker with cfg's limits.
func startGuardedBroker(t *testing.T, devices DeviceAuth, edit func(*BrokerConfig)) (*Broker, *logbuf.Buffer) {
	t.Helper()
	log, buf := testLog(t)
	cfg := BrokerConfig{
		Listen: "127.0.0.1:0", Prefix: testPrefix, Devices: devices,
		ServerUser: testServerUser, ServerPassword: testServerPass, Log: log,
	}
	if edit != nil {
		edit(&cfg)
	}
	b, err := StartBroker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, buf
}

// rawDial opens a TCP connection from the given local IP ("" for any).
func rawDial(t *testing.T, addr, from string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: waitLong}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// remainingLength encodes an MQTT remaining length.
func remainingLength(n int) []byte {
	var out []byte
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		out = append(out, b)
		if n == 0 {
			return out
		}
	}
}

func mqttString(s string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(s))), s...)
}

// connectBytes is an MQTT 3.1.1 CONNECT (clean session, keepalive 60 s).
func connectBytes(clientID, user, pass string) []byte {
	body := append(mqttString("MQTT"), 4, 0xC2, 0, 60)
	body = append(body, mqttString(clientID)...)
	body = append(body, mqttString(user)...)
	body = append(body, mqttString(pass)...)
	return append(append([]byte{0x10}, remainingLength(len(body))...), body...)
}

// publishBytes is an MQTT 3.1.1 QoS 0 PUBLISH.
func publishBytes(topic string, payload []byte) []byte {
	body := append(mqttString(topic), payload...)
	return append(append([]byte{0x30}, remainingLength(len(body))...), body...)
}

// readConnack reads a CONNACK and returns its return code.
func readConnack(t *testing.T, c net.Conn) byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(waitLong))
	var ack [4]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		t.Fatalf("read CONNACK: %v", err)
	}
	if ack[0] != 0x20 {
		t.Fatalf("got packet % x, want a CONNACK", ack)
	}
	return ack[3]
}

// waitClosed fails the test unless the broker closes c within waitLong,
// whatever c has not read yet.
func waitClosed(t *testing.T, c net.Conn, what string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(waitLong))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: the connection is still open after %s", what, waitLong)
	}
}

// stillOpen fails the test if the broker closes c, or sends anything on
// it, within d.
func stillOpen(t *testing.T, c net.Conn, d time.Duration, what string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	var b [1]byte
	_, err := c.Read(b[:])
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("%s: connection closed or answered (%v), want it open and silent", what, err)
	}
}

func (b *Broker) open() int {
	g := b.ln.(*guardListener)
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.total
}

func TestBrokerClosesSlowConnect(t *testing.T) {
	b, _ := startGuardedBroker(t, hashedDevices(t), func(c *BrokerConfig) { c.ConnectTimeout = 200 * time.Millisecond })
	silent := rawDial(t, b.Addr(), "")
	partial := rawDial(t, b.Addr(), "")
	full := connectBytes(devA, devA, secretA)
	if _, err := partial.Write(full[:len(full)-3]); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, silent, "a connection that sends nothing")
	waitClosed(t, partial, "a CONNECT that never ends")
	eventually(t, "both connections to be released", func() bool { return b.open() == 0 })

	// A client that logs in in time keeps its connection past the deadline
	// (its keepalive's takes over).
	ok := rawDial(t, b.Addr(), "")
	if _, err := ok.Write(full); err != nil {
		t.Fatal(err)
	}
	if code := readConnack(t, ok); code != 0 {
		t.Fatalf("CONNACK code %d", code)
	}
	stillOpen(t, ok, 3*time.Second, "a logged-in device, for many connect deadlines")
}

func TestBrokerRefusesOversizedConnect(t *testing.T) {
	b, _ := startGuardedBroker(t, hashedDevices(t), func(c *BrokerConfig) { c.ConnectTimeout = time.Hour })
	for _, tc := range []struct {
		name   string
		header []byte
	}{
		{"1.37 MB CONNECT", append([]byte{0x10}, remainingLength(1_370_000)...)},
		{"just over 4 KiB", append([]byte{0x10}, remainingLength(maxConnectSize+1)...)},
		{"PUBLISH before CONNECT", append([]byte{0x30}, remainingLength(10)...)},
		{"remaining length of five bytes", []byte{0x10, 0xff, 0xff, 0xff, 0xff, 0x01}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := b.Stats().DroppedConnections
			c := rawDial(t, b.Addr(), "")
			// Only the header: the broker must not wait for (or hold) the rest.
			if _, err := c.Write(tc.header); err != nil {
				t.Fatal(err)
			}
			waitClosed(t, c, tc.name)
			if got := b.Stats().DroppedConnections; got != before+1 {
				t.Errorf("dropped connections %d, want %d", got, before+1)
			}
		})
	}
	// A CONNECT of exactly the limit is read (and refused for its
	// credentials, not its size).
	c := rawDial(t, b.Addr(), "")
	pk := connectBytes(devA, devA, "")
	pad := maxConnectSize - (len(pk) - 2) // the body of pk, after a 2-byte header
	pk = connectBytes(devA, devA, strings.Repeat("x", pad))
	if _, err := c.Write(pk); err != nil {
		t.Fatal(err)
	}
	if code := readConnack(t, c); code != 5 {
		t.Errorf("CONNACK code %d, want 5 (not authorised)", code)
	}
}

func TestBrokerConnectionCaps(t *testing.T) {
	b, buf := startGuardedBroker(t, hashedDevices(t), func(c *BrokerConfig) {
		c.MaxConnectionsPerAddr = 2
		c.MaxConnections = 3
	})
	a1 := rawDial(t, b.Addr(), "127.0.0.1")
	rawDial(t, b.Addr(), "127.0.0.1")
	eventually(t, "two connections counted", func() bool { return b.open() == 2 })
	over := rawDial(t, b.Addr(), "127.0.0.1")
	waitClosed(t, over, "a third connection from one address")

	// Another address still gets in, up to the total.
	rawDial(t, b.Addr(), "127.0.0.2")
	eventually(t, "three connections counted", func() bool { return b.open() == 3 })
	waitClosed(t, rawDial(t, b.Addr(), "127.0.0.3"), "a connection beyond the total")
	// The count is taken as the connection is dropped, which the client may see first.
	eventually(t, "two dropped connections counted", func() bool { return b.Stats().DroppedConnections == 2 })
	if got := b.Stats().DroppedConnections; got != 2 {
		t.Errorf("dropped connections %d, want 2", got)
	}
	if !strings.Contains(buf.String(), "too many connections from this address") {
		t.Errorf("the per-address refusal is not logged:\n%s", buf)
	}

	// A place freed is free again.
	_ = a1.Close()
	eventually(t, "the closed connection released", func() bool { return b.open() == 2 })
	c := rawDial(t, b.Addr(), "127.0.0.1")
	if _, err := c.Write(connectBytes(devA, devA, secretA)); err != nil {
		t.Fatal(err)
	}
	if code := readConnack(t, c); code != 0 {
		t.Fatalf("CONNACK code %d", code)
	}
}

func TestBrokerDropsOversizedDevicePayload(t *testing.T) {
	b, _ := startGuardedBroker(t, hashedDevices(t), nil)
	srv := dial(t, b.Addr(), testServerUser, testServerPass)
	hb := newInbox()
	subscribe(t, srv, testPrefix+"/dev/+/hb", hb)
	topic := devTopic(testPrefix, devA, "hb")

	c := rawDial(t, b.Addr(), "")
	if _, err := c.Write(connectBytes(devA, devA, secretA)); err != nil {
		t.Fatal(err)
	}
	if code := readConnack(t, c); code != 0 {
		t.Fatalf("CONNACK code %d", code)
	}
	// One byte over the payload limit fits the listener's slack: dropped
	// by the hook, the connection kept.
	over := bytes.Repeat([]byte("o"), wire.MaxPayload+1)
	limit := bytes.Repeat([]byte("l"), wire.MaxPayload)
	if _, err := c.Write(append(publishBytes(topic, over), publishBytes(topic, limit)...)); err != nil {
		t.Fatal(err)
	}
	hb.waitFor(t, topic, string(limit))

	// Far over: refused at its header, before its body is sent.
	before := b.Stats().DroppedConnections
	if _, err := c.Write(append([]byte{0x30}, remainingLength(1<<20)...)); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, c, "a 1 MiB publish from a device")
	if got := b.Stats().DroppedConnections; got != before+1 {
		t.Errorf("dropped connections %d, want %d", got, before+1)
	}
	for _, m := range hb.all() {
		if len(m.payload) > wire.MaxPayload {
			t.Errorf("a payload of %d bytes was delivered", len(m.payload))
		}
	}
	if got := b.Stats().RefusedPublishes; got != 1 {
		t.Errorf("refused publishes %d, want 1", got)
	}

	// The server's own client may send the allowlist, far larger.
	list := devTopic(testPrefix, devA, "allowlist")
	big := strings.Repeat("a", 512<<10)
	publish(t, srv, list, big, 1, false)
	lists := newInbox()
	subscribe(t, srv, list, lists)
	publish(t, srv, list, big+"!", 1, false)
	lists.waitFor(t, list, big+"!")
}

func TestBrokerClientIDIsDeviceID(t *testing.T) {
	b, _ := startGuardedBroker(t, hashedDevices(t), nil)
	for _, tc := range []struct{ name, id, user, pass string }{
		{"another device squatting the victim's id", devA, devB, secretB},
		{"a second session under another id", devA + "-2", devA, secretA},
		{"no client id", "", devA, secretA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := rawDial(t, b.Addr(), "")
			if _, err := c.Write(connectBytes(tc.id, tc.user, tc.pass)); err != nil {
				t.Fatal(err)
			}
			if code := readConnack(t, c); code == 0 {
				t.Fatal("accepted")
			}
		})
	}

	// Before the fix, dev-b could hold "dev-a" while dev-a was away, and
	// dev-a was then refused ("client id in use by another user").
	squat := rawDial(t, b.Addr(), "")
	if _, err := squat.Write(connectBytes(devA, devB, secretB)); err != nil {
		t.Fatal(err)
	}
	readConnack(t, squat)
	first := rawDial(t, b.Addr(), "")
	if _, err := first.Write(connectBytes(devA, devA, secretA)); err != nil {
		t.Fatal(err)
	}
	if code := readConnack(t, first); code != 0 {
		t.Fatalf("the victim was refused: CONNACK code %d", code)
	}

	// One connection per device: a new login takes the old one's place.
	second := rawDial(t, b.Addr(), "")
	if _, err := second.Write(connectBytes(devA, devA, secretA)); err != nil {
		t.Fatal(err)
	}
	if code := readConnack(t, second); code != 0 {
		t.Fatalf("CONNACK code %d", code)
	}
	waitClosed(t, first, "the device's older connection")
	stillOpen(t, second, 100*time.Millisecond, "the device's newer connection")
}

// rotatingDevices is a device store whose secrets change, and whose
// verification can be held to order a login against a revocation.
type rotatingDevices struct {
	mu      sync.Mutex
	secrets map[string]string
	hold    chan struct{} // when set, VerifyDevice signals entered and waits
	entered chan struct{}
}

func (d *rotatingDevices) set(id, secret string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.secrets[id] = secret
}

func (d *rotatingDevices) VerifyDevice(_ context.Context, id, secret string) (bool, error) {
	d.mu.Lock()
	ok := d.secrets[id] != "" && d.secrets[id] == secret
	hold, entered := d.hold, d.entered
	d.mu.Unlock()
	if hold != nil {
		entered <- struct{}{}
		<-hold
	}
	return ok, nil
}

func TestBrokerDisconnectDevice(t *testing.T) {
	devs := &rotatingDevices{secrets: map[string]string{devA: secretA, devB: secretB}}
	b, buf := startGuardedBroker(t, devs, nil)
	a := rawDial(t, b.Addr(), "")
	if _, err := a.Write(connectBytes(devA, devA, secretA)); err != nil {
		t.Fatal(err)
	}
	readConnack(t, a)
	other := rawDial(t, b.Addr(), "")
	if _, err := other.Write(connectBytes(devB, devB, secretB)); err != nil {
		t.Fatal(err)
	}
	readConnack(t, other)

	devs.set(devA, "rotated")
	if n := b.DisconnectDevice(devA); n != 1 {
		t.Errorf("DisconnectDevice = %d, want 1", n)
	}
	waitClosed(t, a, "the rotated device's connection")
	stillOpen(t, other, 100*time.Millisecond, "another device")
	again := rawDial(t, b.Addr(), "")
	if _, err := again.Write(connectBytes(devA, devA, secretA)); err != nil {
		t.Fatal(err)
	}
	if code := readConnack(t, again); code == 0 {
		t.Error("the old secret logged in again")
	}
	if !strings.Contains(buf.String(), "mqtt device disconnected") {
		t.Errorf("the disconnection is not logged:\n%s", buf)
	}
}

func TestBrokerDisconnectDeviceDuringLogin(t *testing.T) {
	devs := &rotatingDevices{secrets: map[string]string{devA: secretA},
		hold: make(chan struct{}), entered: make(chan struct{})}
	b, _ := startGuardedBroker(t, devs, nil)
	c := rawDial(t, b.Addr(), "")
	if _, err := c.Write(connectBytes(devA, devA, secretA)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-devs.entered: // the login has read the old secret
	case <-time.After(waitLong):
		t.Fatal("no verification")
	}
	devs.set(devA, "rotated")
	if n := b.DisconnectDevice(devA); n != 0 {
		t.Errorf("DisconnectDevice = %d, want 0 (the login is not registered yet)", n)
	}
	close(devs.hold)
	waitClosed(t, c, "a login checked against the revoked secret")
}

func TestBrokerRefusalLogIsBounded(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	b, buf := startGuardedBroker(t, hashedDevices(t), func(c *BrokerConfig) { c.Now = clock })
	long := strings.Repeat("u", 3000)
	attempt := func() {
		c := rawDial(t, b.Addr(), "")
		if _, err := c.Write(connectBytes("x", long, "pw")); err != nil {
			t.Fatal(err)
		}
		readConnack(t, c)
		_ = c.Close()
	}
	const tries = 3 * refusalLogBurst
	for range tries {
		attempt()
	}
	lines := strings.Count(buf.String(), "mqtt connect refused")
	if lines != refusalLogBurst {
		t.Errorf("%d refusal lines for %d refusals, want %d", lines, tries, refusalLogBurst)
	}
	for _, l := range strings.Split(buf.String(), "\n") {
		if len(l) > 1000 {
			t.Errorf("log line of %d bytes: %.200s…", len(l), l)
		}
	}
	mu.Lock()
	now = now.Add(refusalLogWindow)
	mu.Unlock()
	attempt()
	if !strings.Contains(buf.String(), "refusals_not_logged=40") {
		t.Errorf("the count of lines left out is not logged:\n%s", buf.String()[max(0, len(buf.String())-2000):])
	}
	if got := b.Stats().RefusedConnects; got != tries+1 {
		t.Errorf("refused connects %d, want %d (every refusal counted)", got, tries+1)
	}
}

// flakyListener fails its first Accept calls with an error other than
// net.ErrClosed.
type flakyListener struct {
	net.Listener
	fails int
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.fails > 0 {
		l.fails--
		return nil, errors.New("accept4: too many open files")
	}
	return l.Listener.Accept()
}

func TestGuardListenerOutlivesAcceptErrors(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var drops []string
	l := &guardListener{Listener: &flakyListener{Listener: tcp, fails: 3}, timeout: time.Minute, max: 10, maxAddr: 10,
		maxPending: 10, maxPendingAddr: 10, byAddr: map[string]int{}, pendingByAddr: map[string]int{}, onDrop: func(_, _, reason string) { mu.Lock(); drops = append(drops, reason); mu.Unlock() }}
	defer l.Close()
	client := rawDial(t, tcp.Addr().String(), "") // the kernel completes it before Accept
	defer client.Close()
	c, err := l.Accept()
	if err != nil {
		t.Fatalf("Accept gave up: %v", err)
	}
	_ = c.Close()
	if len(drops) != 3 {
		t.Errorf("accept errors logged %d times, want 3: %q", len(drops), drops)
	}
	_ = l.Close()
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept on a closed listener: %v, want net.ErrClosed", err)
	}
}

// pendingCount is the number of connections not logged in yet.
func (b *Broker) pendingCount() int {
	g := b.ln.(*guardListener)
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.pending
}

// TestBrokerPendingCaps: clients that connect and never log in are capped
// apart from those that did, so they cannot hold the devices' places; a
// login frees its pending place at once.
func TestBrokerPendingCaps(t *testing.T) {
	b, buf := startGuardedBroker(t, hashedDevices(t), func(c *BrokerConfig) {
		c.MaxPendingPerAddr = 2
		c.MaxPending = 3
	})
	silent := []net.Conn{rawDial(t, b.Addr(), "127.0.0.1"), rawDial(t, b.Addr(), "127.0.0.1")}
	eventually(t, "two pending connections counted", func() bool { return b.pendingCount() == 2 })
	waitClosed(t, rawDial(t, b.Addr(), "127.0.0.1"), "a third silent connection from one address")
	eventually(t, "the per-address pending refusal logged", func() bool {
		return strings.Contains(buf.String(), "too many connections not logged in from this address")
	})
	silent = append(silent, rawDial(t, b.Addr(), "127.0.0.2"))
	eventually(t, "three pending connections counted", func() bool { return b.pendingCount() == 3 })
	waitClosed(t, rawDial(t, b.Addr(), "127.0.0.3"), "a silent connection beyond the pending total")

	// Silent clients from 127.0.0.3 are refused, but nothing stops a device
	// once a place frees: a login leaves the pending count at once, the
	// connection kept.
	g := b.ln.(*guardListener)
	g.mu.Lock()
	g.maxPending = 4 // room for one device to log in
	g.mu.Unlock()
	dev := rawDial(t, b.Addr(), "127.0.0.3")
	if _, err := dev.Write(connectBytes(devA, devA, secretA)); err != nil {
		t.Fatal(err)
	}
	if code := readConnack(t, dev); code != 0 {
		t.Fatalf("CONNACK code %d", code)
	}
	eventually(t, "the logged-in device no longer pending", func() bool { return b.pendingCount() == 3 })
	stillOpen(t, dev, 200*time.Millisecond, "the logged-in device")
	// Its pending place is free again for the next client.
	silent = append(silent, rawDial(t, b.Addr(), "127.0.0.4"))
	eventually(t, "a new pending connection counted", func() bool { return b.pendingCount() == 4 })
	// Closing the logged-in device frees its place once, not its pending
	// place a second time.
	_ = dev.Close()
	eventually(t, "the device's connection released", func() bool { return b.open() == 4 })
	if got := b.pendingCount(); got != 4 {
		t.Errorf("pending %d after a logged-in client left, want 4", got)
	}
	// Every place is freed when the silent clients leave (and mochi has
	// let go of them before the broker closes).
	for _, c := range silent {
		_ = c.Close()
	}
	eventually(t, "every connection released", func() bool { return b.open() == 0 && b.pendingCount() == 0 })
}

// fakeRemote is a connection that only has a remote address.
type fakeRemote struct {
	net.Conn
	addr net.Addr
}

func (f fakeRemote) RemoteAddr() net.Addr { return f.addr }

// TestRemoteIPCountsIPv6By64: the caps count an IPv4 address by itself and
// an IPv6 host by its /64, which one host commonly holds whole.
func TestRemoteIPCountsIPv6By64(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"192.0.2.7:4000", "192.0.2.7"},
		{"[2001:db8:1:2:aaaa::1]:1883", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:bbbb::9]:1883", "2001:db8:1:2::/64"},
		{"[2001:db8:1:3::1]:1883", "2001:db8:1:3::/64"},
		{"[::ffff:192.0.2.7]:1883", "192.0.2.7"},
	} {
		ap, err := net.ResolveTCPAddr("tcp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := remoteIP(fakeRemote{addr: ap}); got != tc.want {
			t.Errorf("remoteIP(%s) = %s, want %s", tc.addr, got, tc.want)
		}
	}
}

// TestBrokerDeviceReconnectsAtOnce: a device that closes its connection and
// logs in again straight away (a bridge restarting) still gets its
// commands. The old connection's clean-up used to run after the new login
// and remove the device's client from the broker, dropping every command
// until the next reconnection.
func TestBrokerDeviceReconnectsAtOnce(t *testing.T) {
	b, _ := startGuardedBroker(t, hashedDevices(t), nil)
	srv := dial(t, b.Addr(), testServerUser, testServerPass)
	topic := devTopic(testPrefix, devA, "cmd")
	for i := 0; i < 30; i++ {
		a, err := dialErr(t, b.Addr(), devA, secretA)
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		in := newInbox()
		subscribe(t, a, topic, in)
		msg := fmt.Sprintf("round %d", i)
		publish(t, srv, topic, msg, 1, false)
		in.waitFor(t, topic, msg)
		a.Close(nil)
	}
}

// cleanupRace is a hook that holds the old connection of client id id in
// its clean-up, once it is past mochi's check that it was not taken over,
// until a new login of that id is registered: the interleaving in which
// mochi 2.7.9's clean-up of the old connection removes the new client from
// the broker. The old connection is closed (client side) when the new login
// reaches mochi's session take-over.
type cleanupRace struct {
	mochi.HookBase
	t       *testing.T
	id      string
	oldConn net.Conn
	old     atomic.Pointer[mochi.Client]

	takingOver  atomic.Bool   // the new login reached the take-over
	oldCleaning chan struct{} // closed at the old client's first OnUnsubscribed
	cleanOnce   sync.Once
	newIn       chan struct{} // closed once the new client is registered
	newOnce     sync.Once
}

func (h *cleanupRace) ID() string { return "cleanup-race" }

func (h *cleanupRace) Provides(b byte) bool {
	return b == mochi.OnSessionEstablish || b == mochi.OnSessionEstablished || b == mochi.OnUnsubscribed
}

func (h *cleanupRace) isNew(cl *mochi.Client) bool {
	old := h.old.Load()
	return cl.ID == h.id && old != nil && cl != old
}

func (h *cleanupRace) wait(ch <-chan struct{}, what string) {
	select {
	case <-ch:
	case <-time.After(waitLong):
		h.t.Errorf("%s did not happen within %s", what, waitLong)
	}
}

// OnSessionEstablish runs for a login after it is authenticated, just
// before mochi takes over the old session: the old connection drops now,
// and the new login goes on once the old one's clean-up has begun.
func (h *cleanupRace) OnSessionEstablish(cl *mochi.Client, _ packets.Packet) {
	if !h.isNew(cl) {
		return
	}
	h.takingOver.Store(true)
	_ = h.oldConn.Close()
	h.wait(h.oldCleaning, "the old connection's clean-up")
}

// OnUnsubscribed is called by the old connection's clean-up between its
// take-over check and its removal of the client id.
func (h *cleanupRace) OnUnsubscribed(cl *mochi.Client, _ packets.Packet) {
	if cl != h.old.Load() {
		return
	}
	first := false
	h.cleanOnce.Do(func() { first = true; close(h.oldCleaning) })
	if first && h.takingOver.Load() {
		h.wait(h.newIn, "the new login's registration")
	}
}

func (h *cleanupRace) OnSessionEstablished(cl *mochi.Client, _ packets.Packet) {
	if h.isNew(cl) {
		h.newOnce.Do(func() { close(h.newIn) })
	}
}

// TestBrokerTakeoverWhileOldConnectionEnds: a device's new login takes the
// place of its old connection, which the broker has not seen end yet (a
// bridge restarting: its new CONNECT is read before the old connection's
// end). However the old connection's clean-up and the new login interleave,
// the new connection gets its commands. It used to be that the old
// connection's clean-up, past mochi's take-over check when the new login
// took over, removed the new client from the broker afterwards: its
// subscription was made but every command to it was dropped.
func TestBrokerTakeoverWhileOldConnectionEnds(t *testing.T) {
	b, _ := startGuardedBroker(t, hashedDevices(t), nil)
	srv := dial(t, b.Addr(), testServerUser, testServerPass)
	old := rawDial(t, b.Addr(), "")
	if _, err := old.Write(connectBytes(devA, devA, secretA)); err != nil {
		t.Fatal(err)
	}
	if code := readConnack(t, old); code != 0 {
		t.Fatalf("CONNACK code %d", code)
	}
	h := &cleanupRace{t: t, id: devA, oldConn: old, oldCleaning: make(chan struct{}), newIn: make(chan struct{})}
	cl, ok := b.srv.Clients.Get(devA)
	if !ok {
		t.Fatal("the old connection is not a client of the broker")
	}
	h.old.Store(cl)
	if err := b.srv.AddHook(h, nil); err != nil {
		t.Fatal(err)
	}

	a := dial(t, b.Addr(), devA, secretA)
	topic := devTopic(testPrefix, devA, "cmd")
	in := newInbox()
	subscribe(t, a, topic, in)
	publish(t, srv, topic, "unlock", 1, false)
	in.waitFor(t, topic, "unlock")
	if cur, ok := b.srv.Clients.Get(devA); !ok || cur == cl {
		t.Errorf("the broker's client %s is not the new connection", devA)
	}
}
