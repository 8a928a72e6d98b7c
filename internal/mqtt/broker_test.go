package mqtt

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/logbuf"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

func TestPolicy(t *testing.T) {
	pol, err := newPolicy(testPrefix, testServerUser)
	if err != nil {
		t.Fatal(err)
	}
	const p = testPrefix
	pub := []struct {
		name     string
		user     string
		topic    string
		retained bool
		want     bool
	}{
		{"server anything under prefix", testServerUser, p + "/dev/dev-a/cmd", false, true},
		{"server retained allowlist", testServerUser, p + "/dev/dev-a/allowlist", true, true},
		{"server retained status", testServerUser, p + "/server/status", true, true},
		{"server free topic under prefix", testServerUser, p + "/x/y", true, true},
		{"server retained command", testServerUser, p + "/dev/dev-a/cmd", true, false},
		{"server outside prefix", testServerUser, "other/topic", false, false},
		{"server prefix itself", testServerUser, p, false, false},
		{"server prefix look-alike", testServerUser, p + "0/dev/dev-a/cmd", false, false},
		{"server $SYS", testServerUser, "$SYS/broker/uptime", false, false},
		{"device own status", devA, p + "/dev/dev-a/status", false, true},
		{"device own status retained", devA, p + "/dev/dev-a/status", true, true},
		{"device own hb", devA, p + "/dev/dev-a/hb", false, true},
		{"device own tap", devA, p + "/dev/dev-a/tap", false, true},
		{"device own ack", devA, p + "/dev/dev-a/ack", false, true},
		{"device own state retained", devA, p + "/dev/dev-a/state", true, true},
		{"device own tap retained", devA, p + "/dev/dev-a/tap", true, false},
		{"device own hb retained", devA, p + "/dev/dev-a/hb", true, false},
		{"device own ack retained", devA, p + "/dev/dev-a/ack", true, false},
		{"device own cmd", devA, p + "/dev/dev-a/cmd", false, false},
		{"device own allowlist", devA, p + "/dev/dev-a/allowlist", false, false},
		{"device other's tap", devA, p + "/dev/dev-b/tap", false, false},
		{"device unknown kind", devA, p + "/dev/dev-a/debug", false, false},
		{"device extra level", devA, p + "/dev/dev-a/tap/x", false, false},
		{"device server status", devA, p + "/server/status", true, false},
		{"device other prefix", devA, "other/dev/dev-a/tap", false, false},
		{"anonymous", "", p + "/dev/dev-a/tap", false, false},
		{"not a device id", "Dev-A", p + "/dev/Dev-A/tap", false, false},
	}
	for _, tc := range pub {
		t.Run("publish/"+tc.name, func(t *testing.T) {
			got, why := pol.mayPublish(tc.user, tc.topic, tc.retained)
			if got != tc.want {
				t.Errorf("mayPublish(%q, %q, retained=%v) = %v (%s), want %v", tc.user, tc.topic, tc.retained, got, why, tc.want)
			}
			if !got && why == "" {
				t.Error("refused without a reason")
			}
		})
	}
	sub := []struct {
		name, user, filter string
		want               bool
	}{
		{"server wildcard under prefix", testServerUser, p + "/dev/+/tap", true},
		{"server everything under prefix", testServerUser, p + "/#", true},
		{"server exact", testServerUser, p + "/server/status", true},
		{"server everything", testServerUser, "#", false},
		{"server $SYS", testServerUser, "$SYS/#", false},
		{"server shared subscription", testServerUser, "$share/g/" + p + "/dev/+/tap", false},
		{"server wildcard prefix", testServerUser, "+/v1/dev/+/tap", false},
		{"device own cmd", devA, p + "/dev/dev-a/cmd", true},
		{"device own allowlist", devA, p + "/dev/dev-a/allowlist", true},
		{"device server status", devA, p + "/server/status", true},
		{"device other's cmd", devA, p + "/dev/dev-b/cmd", false},
		{"device own tap", devA, p + "/dev/dev-a/tap", false},
		{"device wildcard device", devA, p + "/dev/+/cmd", false},
		{"device wildcard kind", devA, p + "/dev/dev-a/+", false},
		{"device multi-level", devA, p + "/dev/dev-a/#", false},
		{"device everything", devA, "#", false},
		{"device server wildcard", devA, p + "/server/+", false},
		{"anonymous", "", p + "/server/status", false},
	}
	for _, tc := range sub {
		t.Run("subscribe/"+tc.name, func(t *testing.T) {
			if got, why := pol.maySubscribe(tc.user, tc.filter); got != tc.want {
				t.Errorf("maySubscribe(%q, %q) = %v (%s), want %v", tc.user, tc.filter, got, why, tc.want)
			}
		})
	}
}

type failingDevices struct{}

func (failingDevices) VerifyDevice(context.Context, string, string) (bool, error) {
	return false, errors.New("store unavailable")
}

// newTestHook returns a hook as StartBroker builds it, and a mochi server
// whose clients it consults.
func newTestHook(t *testing.T, devices DeviceAuth) (*aclHook, *mochi.Server, *logbuf.Buffer) {
	t.Helper()
	pol, err := newPolicy(testPrefix, testServerUser)
	if err != nil {
		t.Fatal(err)
	}
	log, buf := testLog(t)
	srv := mochi.New(&mochi.Options{Logger: slog.New(slog.DiscardHandler)})
	return &aclHook{
		policy:     pol,
		serverPass: sha256.Sum256([]byte(testServerPass)),
		devices:    devices,
		clients:    srv.Clients,
		// As mochi does once the connection's goroutine has ended.
		takeOver: func(cl *mochi.Client) { cl.Stop(packets.ErrSessionTakenOver); srv.Clients.Delete(cl.ID) },
		log:      log,
		logLimit: &logLimiter{now: time.Now},
		ctx:      context.Background(),
	}, srv, buf
}

// openClient returns a mochi client with a live connection state.
func openClient(t *testing.T, srv *mochi.Server, id, user string) *mochi.Client {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	cl := srv.NewClient(a, "test", id, false)
	cl.Properties.Username = []byte(user)
	return cl
}

func connectPacket(user, pass string) packets.Packet {
	return packets.Packet{Connect: packets.ConnectParams{
		Username: []byte(user), UsernameFlag: user != "",
		Password: []byte(pass), PasswordFlag: pass != "",
	}}
}

func TestHookConnect(t *testing.T) {
	withWill := func(pk packets.Packet, topic string, retain bool) packets.Packet {
		pk.Connect.WillFlag = true
		pk.Connect.WillTopic = topic
		pk.Connect.WillRetain = retain
		pk.Connect.WillPayload = []byte(`{"v":1,"online":false}`)
		return pk
	}
	cases := []struct {
		name    string
		devices DeviceAuth
		pk      packets.Packet
		want    bool
	}{
		{"server", nil, connectPacket(testServerUser, testServerPass), true},
		{"server wrong password", nil, connectPacket(testServerUser, testServerPass+"x"), false},
		{"server password prefix", nil, connectPacket(testServerUser, testServerPass[:4]), false},
		{"server empty password", nil, connectPacket(testServerUser, ""), false},
		{"device", hashedDevices(t), connectPacket(devA, secretA), true},
		{"device wrong secret", hashedDevices(t), connectPacket(devA, secretB), false},
		{"unknown device", hashedDevices(t), connectPacket("dev-c", secretA), false},
		{"not a device id", hashedDevices(t), connectPacket("dev_a", secretA), false},
		{"anonymous", hashedDevices(t), connectPacket("", ""), false},
		{"no device store", nil, connectPacket(devA, secretA), false},
		{"device store fails", failingDevices{}, connectPacket(devA, secretA), false},
		{"device will on own status", hashedDevices(t),
			withWill(connectPacket(devA, secretA), testPrefix+"/dev/dev-a/status", true), true},
		{"device will on other's status", hashedDevices(t),
			withWill(connectPacket(devA, secretA), testPrefix+"/dev/dev-b/status", true), false},
		{"device retained will on own tap", hashedDevices(t),
			withWill(connectPacket(devA, secretA), testPrefix+"/dev/dev-a/tap", true), false},
		{"device will on server status", hashedDevices(t),
			withWill(connectPacket(devA, secretA), testPrefix+"/server/status", true), false},
		{"server will on server status", nil,
			withWill(connectPacket(testServerUser, testServerPass), testPrefix+"/server/status", true), true},
		{"server will outside prefix", nil,
			withWill(connectPacket(testServerUser, testServerPass), "elsewhere", false), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, _, buf := newTestHook(t, tc.devices)
			cl := &mochi.Client{ID: string(tc.pk.Connect.Username)}
			if got := h.OnConnectAuthenticate(cl, tc.pk); got != tc.want {
				t.Fatalf("OnConnectAuthenticate = %v, want %v", got, tc.want)
			}
			wantRefused := uint64(0)
			if !tc.want {
				wantRefused = 1
			}
			if n := h.refusedConnects.Load(); n != wantRefused {
				t.Errorf("refused connects = %d, want %d", n, wantRefused)
			}
			if n := strings.Count(buf.String(), "mqtt connect refused"); uint64(n) != wantRefused {
				t.Errorf("refusal logged %d times, want %d", n, wantRefused)
			}
			if _, failing := tc.devices.(failingDevices); failing && !strings.Contains(buf.String(), "store unavailable") {
				t.Errorf("the store's error is not logged:\n%s", buf)
			}
		})
	}
}

func TestHookClientIDTakeover(t *testing.T) {
	h, srv, _ := newTestHook(t, hashedDevices(t))
	first := openClient(t, srv, "fabgate-server-1", testServerUser)
	srv.Clients.Add(first)

	// A device may not take the server's session over by reusing its id...
	if h.OnConnectAuthenticate(&mochi.Client{ID: "fabgate-server-1"}, connectPacket(devA, secretA)) {
		t.Error("device took over the server's client id")
	}
	// ...but the same user may (a reconnection racing the old connection).
	if !h.OnConnectAuthenticate(&mochi.Client{ID: "fabgate-server-1"}, connectPacket(testServerUser, testServerPass)) {
		t.Error("server refused its own client id")
	}
	// The old connection is closed and cleared before the new one is in
	// (mochi's own take-over races the old connection's clean-up).
	if _, still := srv.Clients.Get("fabgate-server-1"); still || !first.Closed() {
		t.Errorf("the old connection is still registered (%v) or open (closed: %v)", still, first.Closed())
	}
	// An id held by a closed connection is free.
	gone := openClient(t, srv, "fabgate-server-2", devB)
	gone.Stop(errors.New("gone"))
	srv.Clients.Add(gone)
	if !h.OnConnectAuthenticate(&mochi.Client{ID: "fabgate-server-2"}, connectPacket(testServerUser, testServerPass)) {
		t.Error("id of a closed connection refused")
	}
}

func TestHookCountsRefusals(t *testing.T) {
	h, _, _ := newTestHook(t, hashedDevices(t))
	a := &mochi.Client{ID: "a"}
	a.Properties.Username = []byte(devA)
	nobody := &mochi.Client{ID: "n"}

	// Writes are decided in OnPublish; OnACLCheck only stops strangers.
	if !h.OnACLCheck(a, testPrefix+"/dev/dev-b/tap", true) {
		t.Error("device's write stopped before OnPublish")
	}
	if h.OnACLCheck(nobody, testPrefix+"/dev/dev-a/tap", true) {
		t.Error("unauthenticated client may write")
	}
	// Read checks are asked for deliveries too: not counted.
	if h.OnACLCheck(a, testPrefix+"/dev/dev-b/cmd", false) {
		t.Error("other's cmd readable")
	}
	if !h.OnACLCheck(a, testPrefix+"/dev/dev-a/cmd", false) {
		t.Error("own cmd not readable")
	}
	if got := h.refusedPublishes.Load(); got != 1 {
		t.Errorf("refused publishes = %d, want 1", got)
	}

	for _, tc := range []struct {
		topic    string
		retained bool
		ok       bool
	}{
		{testPrefix + "/dev/dev-a/tap", false, true},
		{testPrefix + "/dev/dev-a/status", true, true},
		{testPrefix + "/dev/dev-a/tap", true, false},
		{testPrefix + "/dev/dev-b/tap", false, false},
		{testPrefix + "/server/status", true, false},
	} {
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: tc.retained},
			TopicName: tc.topic}
		_, err := h.OnPublish(a, pk)
		if tc.ok && err != nil {
			t.Errorf("%s retained=%v: OnPublish error %v", tc.topic, tc.retained, err)
		}
		if !tc.ok && !errors.Is(err, packets.CodeSuccessIgnore) {
			t.Errorf("%s retained=%v: OnPublish error %v, want CodeSuccessIgnore (acknowledge and drop)", tc.topic, tc.retained, err)
		}
	}
	if got := h.refusedPublishes.Load(); got != 4 {
		t.Errorf("refused publishes = %d, want 4", got)
	}

	sub := packets.Packet{Filters: packets.Subscriptions{
		{Filter: testPrefix + "/dev/dev-a/cmd"}, {Filter: testPrefix + "/dev/+/cmd"}, {Filter: "#"},
	}}
	h.OnSubscribed(a, sub, []byte{1, packets.ErrUnspecifiedError.Code, packets.ErrNotAuthorized.Code})
	if got := h.refusedSubscribes.Load(); got != 2 {
		t.Errorf("refused subscribes = %d, want 2", got)
	}
}

func TestHookLogsEachRefusalOnce(t *testing.T) {
	log, buf := testLog(t)
	b := startBroker(t, "", testPrefix, log)
	a := dial(t, b.Addr(), devA, secretA)
	srv := dial(t, b.Addr(), testServerUser, testServerPass)
	taps := newInbox()
	subscribe(t, srv, testPrefix+"/dev/+/tap", taps)

	publish(t, a, testPrefix+"/dev/dev-b/tap", "forbidden", 0, false)
	if err := a.Subscribe(testPrefix+"/dev/dev-b/cmd", 1, func(string, []byte) {}); !errors.Is(err, ErrSubscriptionRefused) {
		t.Fatalf("subscribe: %v", err)
	}
	if _, err := dialErr(t, b.Addr(), devA, "wrong"); !errors.Is(err, ErrRefused) {
		t.Fatalf("connect: %v", err)
	}
	publish(t, a, testPrefix+"/dev/dev-a/tap", "sentinel", 1, false)
	taps.waitFor(t, testPrefix+"/dev/dev-a/tap", "sentinel")

	// The client asks for a refused subscription subscribeTries times (a
	// refusal may be a clash of packet ids): each SUBSCRIBE is one refusal.
	st := b.Stats()
	if st.RefusedConnects != 1 || st.RefusedPublishes != 1 || st.RefusedSubscribes != subscribeTries {
		t.Errorf("stats = %+v, want one refusal of each (%d SUBSCRIBEs)", st, subscribeTries)
	}
	if st.Clients != 2 {
		t.Errorf("stats.Clients = %d, want 2", st.Clients)
	}
	out := buf.String()
	for msg, want := range map[string]int{"mqtt connect refused": 1, "mqtt publish refused": 1, "mqtt subscribe refused": subscribeTries} {
		if n := strings.Count(out, `msg="`+msg+`"`); n != want {
			t.Errorf("%q logged %d times, want %d", msg, n, want)
		}
	}
	// The library's own lines about the same events are demoted to debug.
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "level=WARN") && !strings.Contains(line, "refused") {
			t.Errorf("unexpected warning: %s", line)
		}
	}
}

func TestEmbeddedBrokerWillACL(t *testing.T) {
	log, _ := testLog(t)
	b := startBroker(t, "", testPrefix, log)
	will := func(topic string, retained bool) func(*ClientConfig) {
		return func(c *ClientConfig) {
			c.Will = &Message{Topic: topic, Payload: []byte(`{"v":1,"online":false}`), QoS: 1, Retained: retained}
		}
	}
	for _, tc := range []struct {
		name     string
		topic    string
		retained bool
		ok       bool
	}{
		{"own status retained", testPrefix + "/dev/dev-a/status", true, true},
		{"other device's status", testPrefix + "/dev/dev-b/status", true, false},
		{"server status", testPrefix + "/server/status", true, false},
		{"own tap retained", testPrefix + "/dev/dev-a/tap", true, false},
		{"own cmd", testPrefix + "/dev/dev-a/cmd", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := dialErr(t, b.Addr(), devA, secretA, withLog(log), will(tc.topic, tc.retained))
			if c != nil {
				c.Close(nil)
			}
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrRefused) {
				t.Fatalf("got %v, want ErrRefused", err)
			}
		})
	}
	if got := b.Stats().RefusedConnects; got != 4 {
		t.Errorf("refused connects = %d, want 4", got)
	}
}

func TestEmbeddedBrokerServerLimits(t *testing.T) {
	log, _ := testLog(t)
	b := startBroker(t, "", testPrefix, log)
	srv := dial(t, b.Addr(), testServerUser, testServerPass, withLog(log))
	for _, f := range []string{"#", "$SYS/#", "other/#", "+/v1/dev/+/tap"} {
		if err := srv.Subscribe(f, 1, func(string, []byte) {}); !errors.Is(err, ErrSubscriptionRefused) {
			t.Errorf("server subscribe %s: got %v, want ErrSubscriptionRefused", f, err)
		}
	}

	// A retained command would switch a rebooted machine on: never stored.
	publish(t, srv, testPrefix+"/dev/dev-a/cmd", "retained unlock", 1, true)
	publish(t, srv, testPrefix+"/dev/dev-a/allowlist", "retained list", 1, true)
	a := dial(t, b.Addr(), devA, secretA, withLog(log))
	in := newInbox()
	subscribe(t, a, testPrefix+"/dev/dev-a/cmd", in)
	subscribe(t, a, testPrefix+"/dev/dev-a/allowlist", in)
	in.waitFor(t, testPrefix+"/dev/dev-a/allowlist", "retained list")
	in.none(t, "a retained command", func(m received) bool { return m.payload == "retained unlock" })
}

func TestEmbeddedBrokerTakeoverByOtherUser(t *testing.T) {
	log, _ := testLog(t)
	b := startBroker(t, "", testPrefix, log)
	srv := dial(t, b.Addr(), testServerUser, testServerPass, withLog(log), func(c *ClientConfig) { c.ClientID = "fabgate-server" })
	in := newInbox()
	subscribe(t, srv, testPrefix+"/dev/+/tap", in)

	_, err := dialErr(t, b.Addr(), devA, secretA, withLog(log), func(c *ClientConfig) { c.ClientID = "fabgate-server" })
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("device reusing the server's client id: got %v, want ErrRefused", err)
	}
	a := dial(t, b.Addr(), devA, secretA, withLog(log))
	publish(t, a, testPrefix+"/dev/dev-a/tap", "still there", 1, false)
	in.waitFor(t, testPrefix+"/dev/dev-a/tap", "still there")
}

func TestStartBrokerConfig(t *testing.T) {
	ok := BrokerConfig{Listen: "127.0.0.1:0", ServerUser: testServerUser, ServerPassword: testServerPass}
	for _, tc := range []struct {
		name string
		edit func(*BrokerConfig)
		want string
	}{
		{"no listen", func(c *BrokerConfig) { c.Listen = "" }, "listen"},
		{"no server user", func(c *BrokerConfig) { c.ServerUser = "" }, "username and password"},
		{"no server password", func(c *BrokerConfig) { c.ServerPassword = "" }, "username and password"},
		{"wildcard prefix", func(c *BrokerConfig) { c.Prefix = "fabgate/#" }, "wildcard"},
		{"bad address", func(c *BrokerConfig) { c.Listen = "127.0.0.1:99999" }, "invalid port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.edit(&cfg)
			b, err := StartBroker(cfg)
			if err == nil {
				_ = b.Close()
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}

	b, err := StartBroker(ok)
	if err != nil {
		t.Fatal(err)
	}
	if host, port, _ := net.SplitHostPort(b.Addr()); host != "127.0.0.1" || port == "0" {
		t.Errorf("Addr() = %s, want the actual port", b.Addr())
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
