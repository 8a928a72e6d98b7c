package mqtt

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
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
	// Prefix is the topic prefix; empty means wire.DefaultPrefix
	// ("fabgate/v1").
	Prefix string
	// Devices verifies device credentials; nil refuses every device.
	Devices DeviceAuth
	// ServerUser and ServerPassword are the credentials of the FabGate
	// server's own client. Both are required.
	ServerUser, ServerPassword string
	// Log receives refusals (one line each, at Warn) and the broker's own
	// errors; nil discards them. The broker library's chatter below Error
	// is logged at Debug.
	Log *slog.Logger
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
	// Clients is the number of clients connected now.
	Clients int64
}

// Broker is the embedded MQTT broker (mochi-mqtt) guarded by FabGate's
// authentication and ACL hook, which denies whatever it does not allow:
//   - a client must log in as the server user or as a device (username =
//     device id, password = its secret, checked by DeviceAuth); its will must
//     be a message it could publish; it may not reuse the client id of
//     another user's live connection;
//   - the server user may publish and subscribe (wildcards included) under
//     the prefix only, and may not retain a command;
//   - a device may publish only its own status, hb, tap, ack and state,
//     retain only its status and state, and subscribe only to its own cmd
//     and allowlist and to the server status, spelled out.
//
// A refused SUBSCRIBE gets a failure code in the SUBACK; a refused PUBLISH
// is acknowledged and dropped. It speaks MQTT 3.1.1 (and 5) over plain TCP:
// keep it on loopback or behind a TLS-terminating proxy.
type Broker struct {
	srv       *mochi.Server
	ln        net.Listener
	hook      *aclHook
	cancel    context.CancelFunc
	closeOnce sync.Once
}

// authTimeout bounds one VerifyDevice call, so a slow store cannot hold a
// connecting client forever.
const authTimeout = 5 * time.Second

// maxPacketSize bounds every packet a client may send, before it is read
// (a CONNECT is read before it is authenticated): the largest payload of the
// contract (the allowlist) plus room for the topic and headers.
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
		policy:     pol,
		serverPass: sha256.Sum256([]byte(cfg.ServerPassword)),
		devices:    cfg.Devices,
		clients:    srv.Clients,
		log:        log,
		ctx:        ctx,
	}
	if err := srv.AddHook(hook, nil); err != nil {
		cancel()
		return nil, fmt.Errorf("mqtt broker: add auth hook: %w", err)
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("mqtt broker: %w", err)
	}
	if err := srv.AddListener(netListener{Net: listeners.NewNet("fabgate", ln), srv: srv}); err != nil {
		cancel()
		_ = ln.Close()
		return nil, fmt.Errorf("mqtt broker: add listener: %w", err)
	}
	if err := srv.Serve(); err != nil {
		cancel()
		_ = srv.Close()
		return nil, fmt.Errorf("mqtt broker: serve: %w", err)
	}
	log.Info("mqtt broker listening", "addr", ln.Addr().String(), "prefix", cfg.Prefix)
	return &Broker{srv: srv, ln: ln, hook: hook, cancel: cancel}, nil
}

// Addr returns the host:port the broker listens on (the actual port when
// Listen asked for port 0).
func (b *Broker) Addr() string { return b.ln.Addr().String() }

// Stats returns the broker's counters.
func (b *Broker) Stats() BrokerStats {
	return BrokerStats{
		RefusedConnects:   b.hook.refusedConnects.Load(),
		RefusedPublishes:  b.hook.refusedPublishes.Load(),
		RefusedSubscribes: b.hook.refusedSubscribes.Load(),
		Clients:           atomic.LoadInt64(&b.srv.Info.ClientsConnected),
	}
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
type netListener struct {
	*listeners.Net
	srv *mochi.Server
}

// Close stops accepting connections and disconnects this listener's clients.
func (l netListener) Close(listeners.CloseFn) {
	l.Net.Close(func(id string) {
		for _, cl := range l.srv.Clients.GetAll() {
			if cl.Net.Listener == id && !cl.Closed() {
				_ = l.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
			}
		}
	})
}

// aclHook authenticates clients and enforces the policy, denying by default:
// mochi allows an action if any hook allows it, and this is the only hook.
type aclHook struct {
	mochi.HookBase
	policy     policy
	serverPass [sha256.Size]byte // compared in constant time
	devices    DeviceAuth
	clients    *mochi.Clients // to refuse taking over another user's client id
	log        *slog.Logger
	ctx        context.Context // cancelled when the broker closes

	refusedConnects   atomic.Uint64
	refusedPublishes  atomic.Uint64
	refusedSubscribes atomic.Uint64
}

// ID names the hook in mochi's logs.
func (h *aclHook) ID() string { return "fabgate-acl" }

// Provides lists the events the hook handles.
func (h *aclHook) Provides(b byte) bool {
	switch b {
	case mochi.OnConnectAuthenticate, mochi.OnACLCheck, mochi.OnPublish, mochi.OnSubscribed:
		return true
	}
	return false
}

// OnConnectAuthenticate checks the credentials, the will and the client id.
// mochi does not pass the will through the ACL, so a will the user could not
// publish itself refuses the connection here.
func (h *aclHook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	user := string(pk.Connect.Username)
	if reason, err := h.authenticate(user, pk.Connect.Password); reason != "" {
		return h.refuseConnect(cl, user, reason, err)
	}
	if pk.Connect.WillFlag {
		if ok, why := h.policy.mayPublish(user, pk.Connect.WillTopic, pk.Connect.WillRetain); !ok {
			return h.refuseConnect(cl, user, "will on "+pk.Connect.WillTopic+": "+why, nil)
		}
	}
	if old, ok := h.clients.Get(cl.ID); ok && !old.Closed() && string(old.Properties.Username) != user {
		return h.refuseConnect(cl, user, "client id in use by another user", nil)
	}
	return true
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
		return "unknown device or wrong secret", nil
	}
	return "", nil
}

// refuseConnect counts and logs a refused connection: at Warn, or at Error
// when the device store failed (err).
func (h *aclHook) refuseConnect(cl *mochi.Client, user, reason string, err error) bool {
	h.refusedConnects.Add(1)
	level, attrs := slog.LevelWarn, []any{"reason", reason, "username", user,
		"client_id", cl.ID, "remote", cl.Net.Remote}
	if err != nil {
		level, attrs = slog.LevelError, append(attrs, "error", err)
	}
	h.log.Log(context.Background(), level, "mqtt connect refused", attrs...)
	return false
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
func (h *aclHook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	ok, why := h.policy.mayPublish(string(cl.Properties.Username), pk.TopicName, pk.FixedHeader.Retain)
	if !ok {
		h.refusePublish(cl, pk.TopicName, why)
		return pk, packets.CodeSuccessIgnore
	}
	return pk, nil
}

func (h *aclHook) refusePublish(cl *mochi.Client, topic, reason string) {
	h.refusedPublishes.Add(1)
	h.log.Warn("mqtt publish refused", "reason", reason, "topic", topic,
		"username", string(cl.Properties.Username), "client_id", cl.ID)
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
		h.log.Warn("mqtt subscribe refused", "reason", why, "filter", filter,
			"username", user, "client_id", cl.ID)
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
