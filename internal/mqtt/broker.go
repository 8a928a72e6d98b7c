package mqtt

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/fabgate/fabgate/internal/wire"
)

// DeviceAuth verifies device credentials; the store implements it.
type DeviceAuth interface {
	// VerifyDevice reports whether secret is the MQTT secret of device id.
	// An unknown device is (false, nil); an error means the answer could
	// not be found (the connection is refused and the error logged).
	VerifyDevice(ctx context.Context, id, secret string) (bool, error)
}

// BrokerConfig configures the embedded broker.
type BrokerConfig struct {
	// Listen is the TCP address to listen on, e.g. 127.0.0.1:1883, or
	// 127.0.0.1:0 for a random port (see Broker.Addr).
	Listen string
	// TLS, when set, makes the listener speak MQTT over TLS only (TLS 1.2
	// at least, whatever MinVersion says), with its first certificate
	// (ServerTLS loads it from files); nil listens in plain TCP.
	TLS *tls.Config
	// Prefix is the topic prefix; empty means wire.DefaultPrefix
	// ("fabgate/v1").
	Prefix string
	// Devices verifies device credentials; nil refuses every device.
	Devices DeviceAuth
	// ServerUser and ServerPassword are the credentials of the FabGate
	// server's own client. Both are required.
	ServerUser, ServerPassword string
	// Log receives refusals (one line each, at Warn, at most
	// refusalLogBurst a minute) and the broker's own errors; nil discards
	// them. The broker library's chatter below Error is logged at Debug.
	Log *slog.Logger

	// ConnectTimeout is how long a new connection has to send its CONNECT
	// (default DefaultConnectTimeout).
	ConnectTimeout time.Duration
	// MaxConnections and MaxConnectionsPerAddr bound the connections open
	// at once, in all and from one IP address (defaults
	// DefaultMaxConnections, DefaultMaxConnectionsPerAddr). Connections
	// beyond them are closed before anything is read.
	MaxConnections, MaxConnectionsPerAddr int
	// MaxPending and MaxPendingPerAddr bound the connections that have not
	// logged in yet, in all and from one address (defaults DefaultMaxPending,
	// DefaultMaxPendingPerAddr): a client that never logs in cannot hold the
	// places of the devices, which reconnect within seconds of a refusal.
	MaxPending, MaxPendingPerAddr int
	// Now is the clock of the refusal log's rate limit (default time.Now).
	Now func() time.Time
}

// BrokerStats are the broker's counters, for /metrics. The refusal counters
// only grow.
type BrokerStats struct {
	// RefusedConnects counts CONNECTs refused: anonymous, unknown user,
	// wrong secret, a will the user may not publish, or a client id held
	// by another user.
	RefusedConnects uint64
	// RefusedPublishes counts PUBLISH packets dropped by the ACL: a topic
	// the user may not publish to, or a retained message where retaining is
	// not allowed. A refused QoS 1 or 2 message is still acknowledged (MQTT
	// 3.1.1 has no way to say no), as Mosquitto does.
	RefusedPublishes uint64
	// RefusedSubscribes counts topic filters refused in SUBSCRIBE packets.
	RefusedSubscribes uint64
	// DroppedConnections counts connections the listener closed (or failed
	// to accept): beyond the connection caps, failing the TLS handshake (a
	// TLS listener; a connection closed before its first byte is not
	// counted), not starting with a CONNECT, or sending a packet over its
	// limit (a CONNECT over 4 KiB; a device's packet over its payload limit
	// plus 512 bytes).
	DroppedConnections uint64
	// Clients is the number of clients connected now.
	Clients int64
}

// Broker is the embedded MQTT broker (mochi-mqtt) guarded by FabGate's
// authentication and ACL hook, which denies whatever it does not allow:
//   - a client must log in as the server user or as a device (username =
//     device id, password = its secret, checked by DeviceAuth); a device's
//     client id must be its device id, so a device has one connection at
//     most (a new one takes the old one's place) and cannot squat another's
//     id; its will must be a message it could publish; the server may not
//     reuse the client id of another user's live connection;
//   - the server user may publish and subscribe (wildcards included) under
//     the prefix only, and may not retain a command;
//   - a device may publish only its own status, hb, tap, ack and state,
//     retain only its own status and state, with payloads of at most
//     wire.MaxPayload bytes, and subscribe only to its own cmd and allowlist
//     and to the server status, spelled out.
//
// Its listener bounds what a client may cost before logging in: a deadline
// for the CONNECT (the TLS handshake included), a CONNECT of at most 4 KiB, caps on connections in all
// and per address; and after: a device's packets are refused at their
// header, before they are read, when they cannot fit the payload limit.
// DisconnectDevice cuts a device whose secret was rotated or that was
// disabled or deleted.
//
// A refused SUBSCRIBE gets a failure code in the SUBACK; a refused PUBLISH
// is acknowledged and dropped. It speaks MQTT 3.1.1 (and 5) over plain TCP,
// or over TLS with BrokerConfig.TLS: without TLS, keep it on loopback or
// behind a TLS-terminating proxy, since MQTT sends the secrets in clear.
type Broker struct {
	srv       *mochi.Server
	ln        net.Listener
	hook      *aclHook
	cancel    context.CancelFunc
	closeOnce sync.Once
	clientTLS *tls.Config // the server's own client's, pinned to the certificate; nil without TLS
}

// authTimeout bounds one VerifyDevice call, so a slow store cannot hold a
// connecting client forever.
const authTimeout = 5 * time.Second

// maxPacketSize bounds every packet the server user may send, before it is
// read: the largest payload of the contract (the allowlist) plus room for
// the topic and headers. Devices and clients not yet logged in have far
// smaller limits (guardConn).
const maxPacketSize = wire.MaxAllowlistPayload + 64<<10

// StartBroker starts the embedded broker. It is listening when StartBroker
// returns.
func StartBroker(cfg BrokerConfig) (*Broker, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = wire.DefaultPrefix
	}
	if cfg.Listen == "" {
		return nil, errors.New("mqtt broker: listen address is empty (e.g. 127.0.0.1:1883)")
	}
	if cfg.ServerUser == "" || cfg.ServerPassword == "" {
		return nil, errors.New("mqtt broker: the server's MQTT username and password are required")
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.MaxConnections == 0 {
		cfg.MaxConnections = DefaultMaxConnections
	}
	if cfg.MaxConnectionsPerAddr == 0 {
		cfg.MaxConnectionsPerAddr = DefaultMaxConnectionsPerAddr
	}
	if cfg.MaxPending == 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.MaxPendingPerAddr == 0 {
		cfg.MaxPendingPerAddr = DefaultMaxPendingPerAddr
	}
	if cfg.ConnectTimeout < 0 || cfg.MaxConnections < 0 || cfg.MaxConnectionsPerAddr < 0 || cfg.MaxPending < 0 || cfg.MaxPendingPerAddr < 0 {
		return nil, errors.New("mqtt broker: connect timeout and connection caps must be positive")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	var serverTLS, clientTLS *tls.Config
	if cfg.TLS != nil {
		if len(cfg.TLS.Certificates) == 0 || len(cfg.TLS.Certificates[0].Certificate) == 0 {
			return nil, errors.New("mqtt broker: the TLS settings hold no certificate (load them with ServerTLS)")
		}
		serverTLS = cfg.TLS.Clone()
		serverTLS.MinVersion = max(serverTLS.MinVersion, tls.VersionTLS12)
		clientTLS = pinnedTLS(serverTLS.Certificates[0].Certificate[0])
	}
	pol, err := newPolicy(cfg.Prefix, cfg.ServerUser)
	if err != nil {
		return nil, fmt.Errorf("mqtt broker: %w", err)
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "mqtt_broker")

	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = maxPacketSize
	srv := mochi.New(&mochi.Options{
		Capabilities: caps,
		Logger:       slog.New(demoteHandler{log.Handler()}),
		// Nobody may read $SYS (it is outside the prefix); refresh it rarely.
		SysTopicResendInterval: 60,
	})

	ctx, cancel := context.WithCancel(context.Background())
	hook := &aclHook{
		policy:       pol,
		serverPass:   sha256.Sum256([]byte(cfg.ServerPassword)),
		devices:      cfg.Devices,
		clients:      srv.Clients,
		disconnect:   func(cl *mochi.Client) { _ = srv.DisconnectClient(cl, packets.ErrNotAuthorized) },
		takeOver:     func(cl *mochi.Client) { _ = srv.DisconnectClient(cl, packets.ErrSessionTakenOver) },
		log:          log,
		logLimit:     &logLimiter{now: cfg.Now},
		ctx:          ctx,
		devicePacket: uint32(wire.MaxPayload + deviceOverhead + len(cfg.Prefix)),
	}
	if err := srv.AddHook(hook, nil); err != nil {
		cancel()
		return nil, fmt.Errorf("mqtt broker: add auth hook: %w", err)
	}

	tcp, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("mqtt broker: %w", err)
	}
	if serverTLS != nil {
		// Under the guard: its deadline bounds the handshake too, and it
		// reads the MQTT packets decrypted.
		tcp = tls.NewListener(tcp, serverTLS)
	}
	ln := &guardListener{
		Listener: tcp, timeout: cfg.ConnectTimeout, max: cfg.MaxConnections, maxAddr: cfg.MaxConnectionsPerAddr,
		maxPending: cfg.MaxPending, maxPendingAddr: cfg.MaxPendingPerAddr,
		byAddr: map[string]int{}, pendingByAddr: map[string]int{}, onDrop: hook.dropConnection,
	}
	if err := srv.AddListener(netListener{Net: listeners.NewNet("fabgate", ln), srv: srv, conns: &liveConns{m: map[net.Conn]struct{}{}}}); err != nil {
		cancel()
		_ = ln.Close()
		return nil, fmt.Errorf("mqtt broker: add listener: %w", err)
	}
	if err := srv.Serve(); err != nil {
		cancel()
		_ = srv.Close()
		return nil, fmt.Errorf("mqtt broker: serve: %w", err)
	}
	log.Info("mqtt broker listening", "addr", ln.Addr().String(), "prefix", cfg.Prefix, "tls", serverTLS != nil)
	return &Broker{srv: srv, ln: ln, hook: hook, cancel: cancel, clientTLS: clientTLS}, nil
}

// Addr returns the host:port the broker listens on (the actual port when
// Listen asked for port 0).
func (b *Broker) Addr() string { return b.ln.Addr().String() }

// URL returns the address a client on this host reaches the broker at:
// ssl:// with TLS, else tcp://; on 127.0.0.1 when the broker listens on
// every interface (Go listens on both IPv4 and IPv6 then, whichever of
// 0.0.0.0 and [::] it was given).
func (b *Broker) URL() string {
	host, port, err := net.SplitHostPort(b.Addr())
	if err != nil {
		return "tcp://" + b.Addr()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	scheme := "tcp"
	if b.clientTLS != nil {
		scheme = "ssl"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// ClientTLS returns the TLS settings for the server's own clients at URL,
// or nil when the broker speaks plain TCP. They accept the broker's own
// certificate and no other, whatever names it holds: the server reaches
// its broker on a local address the certificate need not name, and
// trusts the one certificate it was given rather than a CA.
func (b *Broker) ClientTLS() *tls.Config {
	if b.clientTLS == nil {
		return nil
	}
	return b.clientTLS.Clone()
}

// Stats returns the broker's counters.
func (b *Broker) Stats() BrokerStats {
	return BrokerStats{
		RefusedConnects:    b.hook.refusedConnects.Load(),
		RefusedPublishes:   b.hook.refusedPublishes.Load(),
		RefusedSubscribes:  b.hook.refusedSubscribes.Load(),
		DroppedConnections: b.hook.droppedConnections.Load(),
		Clients:            atomic.LoadInt64(&b.srv.Info.ClientsConnected),
	}
}

// DisconnectDevice closes every connection logged in as device id, and any
// login of it that is being checked now (its check read the store before
// the change that calls this). Call it after committing a new secret, or
// disabling or deleting the device: its next connection is checked against
// the store again. It returns how many connections it closed.
func (b *Broker) DisconnectDevice(id string) int {
	b.hook.revoke(id)
	n := 0
	for _, cl := range b.srv.Clients.GetAll() {
		if string(cl.Properties.Username) == id && !cl.Closed() {
			b.hook.disconnect(cl)
			n++
		}
	}
	if n > 0 {
		b.hook.log.Info("mqtt device disconnected", "device", id, "connections", n)
	}
	return n
}

// closeTimeout bounds Broker.Close, so a stuck connection cannot hold up
// the server's shutdown.
const closeTimeout = 10 * time.Second

// Close stops listening, disconnects every client (their wills are
// published to whoever is still connected) and returns when the client
// connections are closed, or with an error after 10 s. It may be called
// more than once.
func (b *Broker) Close() error {
	var err error
	b.closeOnce.Do(func() {
		b.cancel() // ends device verifications in progress
		done := make(chan error, 1)
		go func() { done <- b.srv.Close() }()
		t := time.NewTimer(closeTimeout)
		defer t.Stop()
		select {
		case err = <-done:
		case <-t.C:
			err = fmt.Errorf("mqtt broker: clients still connected %s after close", closeTimeout)
		}
	})
	return err
}

// netListener is mochi's TCP listener with another way to close its
// clients. mochi 2.7.9 finds them with Clients.GetByListener, which takes the
// clients' read lock twice: a client connecting or leaving in between (it
// waits for the write lock) deadlocks Close for good (mochi-mqtt/server
// issue #488). This takes one snapshot under a single lock instead.
//
// It also keeps the connections it hands to mochi: mochi counts each in a
// WaitGroup that its Close waits on, and a connection accepted while Close
// begins would add to it during the wait (a race, and a client that slips
// past the shutdown). Close refuses new ones and waits for those it handed
// over to end, so every count happens before mochi's wait.
type netListener struct {
	*listeners.Net
	srv   *mochi.Server
	conns *liveConns
}

// liveConns are the connections a netListener handed to mochi.
type liveConns struct {
	mu      sync.Mutex
	closing bool
	m       map[net.Conn]struct{}
	wg      sync.WaitGroup
}

// Serve hands accepted connections to mochi until Close.
func (l netListener) Serve(establish listeners.EstablishFn) {
	l.Net.Serve(func(id string, c net.Conn) error {
		lc := l.conns
		lc.mu.Lock()
		if lc.closing {
			lc.mu.Unlock()
			return c.Close()
		}
		lc.m[c] = struct{}{}
		lc.wg.Add(1)
		lc.mu.Unlock()
		defer func() {
			lc.mu.Lock()
			delete(lc.m, c)
			lc.mu.Unlock()
			lc.wg.Done()
		}()
		return establish(id, c)
	})
}

// Close stops accepting connections, disconnects this listener's clients
// and closes the connections not yet clients, then waits (at most
// closeTimeout) for them all to end.
func (l netListener) Close(listeners.CloseFn) {
	l.Net.Close(func(id string) {
		for _, cl := range l.srv.Clients.GetAll() {
			if cl.Net.Listener == id && !cl.Closed() {
				_ = l.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
			}
		}
	})
	lc := l.conns
	lc.mu.Lock()
	lc.closing = true
	for c := range lc.m {
		_ = c.Close()
	}
	lc.mu.Unlock()
	done := make(chan struct{})
	go func() { lc.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(closeTimeout):
	}
}

// aclHook authenticates clients and enforces the policy, denying by default:
// mochi allows an action if any hook allows it, and this is the only hook.
type aclHook struct {
	mochi.HookBase
	policy       policy
	serverPass   [sha256.Size]byte // compared in constant time
	devices      DeviceAuth
	clients      *mochi.Clients // to refuse taking over another user's client id
	disconnect   func(*mochi.Client)
	takeOver     func(*mochi.Client) // closes a connection whose client id logs in again
	log          *slog.Logger
	logLimit     *logLimiter     // bounds the refusal lines, which strangers can cause
	ctx          context.Context // cancelled when the broker closes
	devicePacket uint32          // the largest packet a device may send (remaining length)

	revokedMu sync.Mutex
	revoked   map[string]uint64 // device id → how many times DisconnectDevice cut it

	refusedConnects    atomic.Uint64
	refusedPublishes   atomic.Uint64
	refusedSubscribes  atomic.Uint64
	droppedConnections atomic.Uint64
}

// ID names the hook in mochi's logs.
func (h *aclHook) ID() string { return "fabgate-acl" }

// Provides lists the events the hook handles.
func (h *aclHook) Provides(b byte) bool {
	switch b {
	case mochi.OnConnectAuthenticate, mochi.OnSessionEstablished, mochi.OnACLCheck, mochi.OnPublish, mochi.OnSubscribed:
		return true
	}
	return false
}

// generation returns how many times device id was revoked.
func (h *aclHook) generation(id string) uint64 {
	h.revokedMu.Lock()
	defer h.revokedMu.Unlock()
	return h.revoked[id]
}

func (h *aclHook) revoke(id string) {
	h.revokedMu.Lock()
	defer h.revokedMu.Unlock()
	if h.revoked == nil {
		h.revoked = map[string]uint64{}
	}
	h.revoked[id]++
}

// OnConnectAuthenticate checks the credentials, the client id and the will.
// mochi does not pass the will through the ACL, so a will the user could not
// publish itself refuses the connection here.
func (h *aclHook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	user := string(pk.Connect.Username)
	device := h.policy.isDevice(user)
	// Read before the store is: a revocation committed after this is seen
	// in OnSessionEstablished.
	gen := h.generation(user)
	if reason, err := h.authenticate(user, pk.Connect.Password); reason != "" {
		return h.refuseConnect(cl, user, reason, err)
	}
	if device && cl.ID != user {
		return h.refuseConnect(cl, user, "a device's client id must be its device id", nil)
	}
	if pk.Connect.WillFlag {
		if ok, why := h.policy.mayPublish(user, pk.Connect.WillTopic, pk.Connect.WillRetain); !ok {
			return h.refuseConnect(cl, user, "will on "+pk.Connect.WillTopic+": "+why, nil)
		}
	}
	if old, ok := h.clients.Get(cl.ID); ok && !old.Closed() && string(old.Properties.Username) != user {
		return h.refuseConnect(cl, user, "client id in use by another user", nil)
	}
	h.awaitClosedSession(cl.ID)
	if gc, ok := cl.Net.Conn.(*guardConn); ok {
		gc.loggedIn()
		gc.user.Store(&user)
		if device {
			gc.gen.Store(gen)
			gc.setLimit(h.devicePacket)
		} else {
			gc.setLimit(maxPacketSize)
		}
	}
	return true
}

// closedSessionWait bounds how long a login waits for the closed
// connection of the same client id to be cleared away.
const closedSessionWait = 2 * time.Second

// awaitClosedSession waits until the connection with client id id is
// cleared from the broker (at most closedSessionWait), closing it first if
// it is still open: the same user connecting again takes it over. A device
// that reconnects at once (a bridge restarting, a link flapping) would
// otherwise race the old connection's clean-up in mochi 2.7.9: the old
// one, closed (or taken over by mochi) but not yet removed when the new
// one takes its place, removes the client id from the broker after the new
// one is in, and every command to the device is then dropped until it
// reconnects. The old connection's DISCONNECT may still be on its way when
// the new one logs in, so an open one is not left to mochi's take-over,
// which has the same race: it is closed here (its will, if it had not
// disconnected cleanly, is published before the new connection is in).
func (h *aclHook) awaitClosedSession(id string) {
	old, ok := h.clients.Get(id)
	if !ok {
		return
	}
	if !old.Closed() {
		h.takeOver(old)
	}
	deadline := time.Now().Add(closedSessionWait)
	for time.Now().Before(deadline) {
		cur, ok := h.clients.Get(id)
		if !ok || cur != old {
			return
		}
		select {
		case <-h.ctx.Done():
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// OnSessionEstablished cuts a device whose login was checked against a
// secret revoked meanwhile (DisconnectDevice ran between the check and the
// client's registration, and so did not see it).
func (h *aclHook) OnSessionEstablished(cl *mochi.Client, _ packets.Packet) {
	gc, ok := cl.Net.Conn.(*guardConn)
	if !ok {
		return
	}
	user := string(cl.Properties.Username)
	if h.policy.isDevice(user) && h.generation(user) != gc.gen.Load() {
		h.log.Info("mqtt device disconnected", "device", user, "reason", "credentials revoked during login")
		h.disconnect(cl)
	}
}

// authenticate returns why the credentials are refused, or "". err is set
// when the device store could not answer.
func (h *aclHook) authenticate(user string, password []byte) (reason string, err error) {
	switch {
	case user == "":
		return "anonymous", nil
	case h.policy.isServer(user):
		sum := sha256.Sum256(password)
		if subtle.ConstantTimeCompare(sum[:], h.serverPass[:]) != 1 {
			return "wrong password", nil
		}
		return "", nil
	case !h.policy.isDevice(user):
		return reasonUnknownUser, nil
	case h.devices == nil:
		return "devices are not accepted (no device store)", nil
	}
	ctx, cancel := context.WithTimeout(h.ctx, authTimeout)
	defer cancel()
	ok, err := h.devices.VerifyDevice(ctx, user, string(password))
	switch {
	case err != nil:
		return "device verification failed", err
	case !ok:
		return "unknown device, wrong secret or disabled", nil
	}
	return "", nil
}

// refuseConnect counts and logs a refused connection: at Warn, or at Error
// when the device store failed (err). What the client sent is logged cut
// short, and the lines are rate-limited: anyone who can reach the port can
// cause them.
func (h *aclHook) refuseConnect(cl *mochi.Client, user, reason string, err error) bool {
	h.refusedConnects.Add(1)
	level, attrs := slog.LevelWarn, []any{"reason", clip(reason), "username", clip(user),
		"client_id", clip(cl.ID), "remote", cl.Net.Remote}
	if err != nil {
		level, attrs = slog.LevelError, append(attrs, "error", err)
	}
	h.logRefusal(level, "mqtt connect refused", attrs...)
	return false
}

// dropConnection counts and logs a connection the listener closed.
func (h *aclHook) dropConnection(remote, user, reason string) {
	h.droppedConnections.Add(1)
	attrs := []any{"reason", reason, "remote", remote}
	if user != "" {
		attrs = append(attrs, "username", user)
	}
	h.logRefusal(slog.LevelWarn, "mqtt connection dropped", attrs...)
}

// logRefusal logs a refusal within the rate limit, saying how many lines
// were left out since the last one logged.
func (h *aclHook) logRefusal(level slog.Level, msg string, attrs ...any) {
	ok, skipped := h.logLimit.allow()
	if !ok {
		return
	}
	if skipped > 0 {
		attrs = append(attrs, "refusals_not_logged", skipped)
	}
	h.log.Log(context.Background(), level, msg, attrs...)
}

// OnACLCheck is asked for publishes (write), for subscriptions (with the
// filter) and for each delivery (with the topic). Refused subscriptions are
// counted and logged in OnSubscribed, once per filter; deliveries are never
// refused in practice, since a client receives only what its allowed
// subscriptions match.
//
// Publishes are decided in OnPublish, where the whole packet is known (its
// retain flag, and the topic an MQTT 5 alias stands for); here a write is
// only refused to a client that is neither the server nor a device, which
// authentication already keeps out.
func (h *aclHook) OnACLCheck(cl *mochi.Client, topic string, write bool) bool {
	user := string(cl.Properties.Username)
	if !write {
		ok, _ := h.policy.maySubscribe(user, topic)
		return ok
	}
	if !h.policy.isServer(user) && !h.policy.isDevice(user) {
		h.refusePublish(cl, topic, reasonUnknownUser)
		return false
	}
	return true
}

// OnPublish decides every publish. A refused one is acknowledged and
// dropped, as Mosquitto does: mochi's other answer for MQTT 3.1.1 is to close
// the connection, and paho sends its unacknowledged QoS 1 messages again
// after reconnecting, so one bad message would make a device reconnect
// forever (and its status flap through its will).
//
// A device's payload over wire.MaxPayload is dropped here too (one over it
// by more than the listener's slack never got this far).
func (h *aclHook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	user := string(cl.Properties.Username)
	ok, why := h.policy.mayPublish(user, pk.TopicName, pk.FixedHeader.Retain)
	if ok && h.policy.isDevice(user) && len(pk.Payload) > wire.MaxPayload {
		ok, why = false, fmt.Sprintf("payload of %d bytes over the limit of %d", len(pk.Payload), wire.MaxPayload)
	}
	if !ok {
		h.refusePublish(cl, pk.TopicName, why)
		return pk, packets.CodeSuccessIgnore
	}
	if pk.FixedHeader.Retain {
		// The decoder's topic name shares the memory of the whole packet
		// as read: a retained message (an allow-list is one per device,
		// up to hundreds of kB) would keep that buffer alive as long as
		// it is retained. Its own copy of the name lets the buffer go.
		pk.TopicName = strings.Clone(pk.TopicName)
	}
	return pk, nil
}

func (h *aclHook) refusePublish(cl *mochi.Client, topic, reason string) {
	h.refusedPublishes.Add(1)
	h.logRefusal(slog.LevelWarn, "mqtt publish refused", "reason", reason, "topic", clip(topic),
		"username", clip(string(cl.Properties.Username)), "client_id", clip(cl.ID))
}

// OnSubscribed counts and logs the filters of a SUBSCRIBE that were refused
// (by the ACL or as malformed).
func (h *aclHook) OnSubscribed(cl *mochi.Client, pk packets.Packet, codes []byte) {
	user := string(cl.Properties.Username)
	for i, code := range codes {
		if code < packets.ErrUnspecifiedError.Code || i >= len(pk.Filters) {
			continue
		}
		filter := pk.Filters[i].Filter
		_, why := h.policy.maySubscribe(user, filter)
		if why == "" {
			why = "invalid filter"
		}
		h.refusedSubscribes.Add(1)
		h.logRefusal(slog.LevelWarn, "mqtt subscribe refused", "reason", why, "filter", clip(filter),
			"username", clip(user), "client_id", clip(cl.ID))
	}
}

// demoteHandler logs the broker library's records below Error at Debug:
// its per-connection warnings would repeat the refusals the hook already
// logged once, with more context.
type demoteHandler struct{ h slog.Handler }

func demote(l slog.Level) slog.Level {
	if l < slog.LevelError {
		return slog.LevelDebug
	}
	return l
}

func (d demoteHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return d.h.Enabled(ctx, demote(l))
}

func (d demoteHandler) Handle(ctx context.Context, r slog.Record) error {
	r.Level = demote(r.Level)
	return d.h.Handle(ctx, r)
}

func (d demoteHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return demoteHandler{d.h.WithAttrs(as)}
}

func (d demoteHandler) WithGroup(name string) slog.Handler {
	return demoteHandler{d.h.WithGroup(name)}
}
