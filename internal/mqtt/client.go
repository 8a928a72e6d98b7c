package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/fabgate/fabgate/internal/wire"
)

// Errors returned by the client. They are wrapped with the topic or broker
// concerned; test them with errors.Is.
var (
	// ErrNotConnected: the client has no connection to the broker right now
	// (it keeps reconnecting on its own).
	ErrNotConnected = errors.New("mqtt: not connected")
	// ErrRefused: the broker refused the connection (bad credentials, not
	// authorised, client id or protocol rejected).
	ErrRefused = errors.New("mqtt: connection refused by the broker")
	// ErrSubscriptionRefused: the broker answered a SUBSCRIBE with a failure.
	ErrSubscriptionRefused = errors.New("mqtt: subscription refused by the broker")
	// ErrTimeout: the broker did not acknowledge in time.
	ErrTimeout = errors.New("mqtt: no acknowledgement in time")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("mqtt: client closed")
)

// Client defaults and limits.
const (
	// DefaultKeepAlive is the keepalive used when ClientConfig.KeepAlive is 0.
	DefaultKeepAlive = 15 * time.Second
	// DefaultQueueLen is the per-subscription queue length used when
	// ClientConfig.QueueLen is 0.
	DefaultQueueLen = 256
	// OpTimeout bounds every wait on the broker (publish, subscribe)
	// when the context does not end sooner.
	OpTimeout = 5 * time.Second

	connectRetryInterval = time.Second
	connectTimeout       = 5 * time.Second // TCP, TLS and CONNACK of one attempt
	pingTimeout          = 5 * time.Second
	quiesceMillis        = 250 // Disconnect lets in-flight work finish this long
	workerDrainTimeout   = 5 * time.Second
)

// ClientConfig configures a Client.
type ClientConfig struct {
	// Broker is tcp://host:port or mqtt://host:port, or ssl://, tls:// or
	// mqtts://host:port for TLS.
	Broker string
	// ClientID is the MQTT client id: explicit and unique per connection
	// (a second client with the same id takes the session over).
	ClientID string
	// Username and Password are the MQTT credentials; both may be empty
	// for brokers that allow anonymous clients.
	Username, Password string
	// TLS configures ssl:// brokers (CA pool, client certificate); nil uses
	// the system roots.
	TLS *tls.Config
	// Will is the client's last will (LWT), published by the broker when
	// the connection drops without a DISCONNECT; nil for none.
	Will *Message
	// OnConnect is called after each connection and reconnection, once the
	// remembered subscriptions are made again; the server publishes its
	// birth message here. It runs on its own goroutine and may block on
	// Publish.
	OnConnect func(*Client)
	// OnConnectionLost is called when an established connection drops
	// (the client then reconnects by itself). It must not block.
	OnConnectionLost func(error)
	// Log receives connection events and handler problems; nil discards.
	Log *slog.Logger
	// KeepAlive is the MQTT keepalive; 0 means DefaultKeepAlive (15 s).
	// At most wire.MaxKeepAlive (20 s).
	KeepAlive time.Duration
	// QueueLen is how many messages each subscription buffers for its
	// handler; 0 means DefaultQueueLen. A message that finds the queue
	// full is dropped and counted (Dropped).
	QueueLen int

	// beforeResubscribe, when set (tests), runs on each new connection
	// before its subscriptions are taken to be made again.
	beforeResubscribe func()
}

// Message is one MQTT message to publish (or a will).
type Message struct {
	Topic    string // a topic name: no wildcards
	Payload  []byte
	QoS      byte // 0, 1 or 2; the contract uses 1 except for heartbeats
	Retained bool // the broker keeps it for later subscribers; never for commands
}

// Client is an MQTT 3.1.1 client (paho) set up the way FabGate needs
// (DESIGN §4): clean session, retries the first connection and reconnects
// by itself (at most wire.MaxReconnectInterval apart), makes its
// subscriptions again on each connection, and never blocks paho's delivery
// path: each subscription has its own worker goroutine fed through a bounded
// queue. Publish and Subscribe never wait longer than their context or
// OpTimeout. A Client is safe for concurrent use.
type Client struct {
	cfg      ClientConfig
	log      *slog.Logger
	pc       paho.Client
	queueLen int

	mu     sync.Mutex
	subs   map[string]*subscription
	closed bool
	// synced is set once the current connection's onConnect has taken the
	// subscriptions to make again, and cleared before each reconnection:
	// a Subscribe before that leaves its subscription to onConnect.
	synced bool

	stop      chan struct{} // closed by Close; workers return
	workers   sync.WaitGroup
	closeOnce sync.Once

	firstUp   chan struct{} // closed when the first OnConnect has run
	firstOnce sync.Once
	refused   chan error // the first refusal, for Connect
	connTok   paho.Token // the first connection

	lastErr atomic.Pointer[error] // the last connection failure
	failing atomic.Bool           // a failure was logged since the last connection
	dropped atomic.Uint64
}

// Connect starts a client and waits for its first connection (and first
// OnConnect) until ctx ends. A refusal by the broker (ErrRefused) ends the
// wait at once; network errors are retried until ctx ends. Once connected,
// the client reconnects by itself until Close.
func Connect(ctx context.Context, cfg ClientConfig) (*Client, error) {
	c, err := Dial(cfg)
	if err != nil {
		return nil, err
	}
	if err := c.WaitConnected(ctx); err != nil {
		c.abort()
		return nil, err
	}
	return c, nil
}

// WaitConnected waits for a client started by Dial to make its first
// connection (and run its first OnConnect), until ctx ends or the broker
// refuses it. Subscriptions made between Dial and the connection are made
// before OnConnect runs: a server that announces itself in OnConnect is
// listening by then. On an error the caller closes the client.
func (c *Client) WaitConnected(ctx context.Context) error {
	tokDone := c.connTok.Done()
	for {
		select {
		case <-c.firstUp:
			return nil
		case <-tokDone:
			if err := c.connTok.Error(); err != nil {
				return fmt.Errorf("mqtt connect %s: %w", c.cfg.Broker, err)
			}
			tokDone = nil // connected; wait for OnConnect
		case err := <-c.refused:
			return fmt.Errorf("mqtt connect %s as %q: %w", c.cfg.Broker, c.cfg.Username, err)
		case <-ctx.Done():
			if last := c.lastErr.Load(); last != nil {
				return fmt.Errorf("mqtt connect %s: %w (last attempt: %v)", c.cfg.Broker, ctx.Err(), *last)
			}
			return fmt.Errorf("mqtt connect %s: %w", c.cfg.Broker, ctx.Err())
		}
	}
}

// Dial starts a client that connects in the background and returns at once:
// for a device, which must work without the broker and take the link when it
// comes. Connection failures, refusals included, are retried until Close;
// OnConnect and OnConnectionLost tell when the link comes and goes.
func Dial(cfg ClientConfig) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	c := &Client{
		cfg:      cfg,
		log:      cfg.Log,
		queueLen: cfg.QueueLen,
		subs:     make(map[string]*subscription),
		stop:     make(chan struct{}),
		firstUp:  make(chan struct{}),
		refused:  make(chan error, 1),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("component", "mqtt_client", "client_id", cfg.ClientID)
	if c.queueLen == 0 {
		c.queueLen = DefaultQueueLen
	}

	opts := paho.NewClientOptions().
		AddBroker(cfg.Broker).
		SetClientID(cfg.ClientID).
		SetUsername(cfg.Username).
		SetPassword(cfg.Password).
		SetProtocolVersion(4). // 3.1.1, no silent fallback to 3.1
		SetCleanSession(true).
		SetResumeSubs(false). // subscriptions are made again in OnConnect
		SetOrderMatters(false).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(connectRetryInterval).
		SetMaxReconnectInterval(wire.MaxReconnectInterval).
		SetConnectTimeout(connectTimeout).
		SetWriteTimeout(OpTimeout).
		SetStore(copyingStore{paho.NewMemoryStore()}).
		SetKeepAlive(cfg.KeepAlive).
		SetPingTimeout(pingTimeout).
		SetOnConnectHandler(c.onConnect).
		SetReconnectingHandler(c.onReconnecting).
		SetConnectionLostHandler(c.onLost).
		SetConnectionNotificationHandler(c.onNotify)
	if cfg.TLS != nil {
		opts.SetTLSConfig(cfg.TLS)
	}
	if w := cfg.Will; w != nil {
		opts.SetBinaryWill(w.Topic, w.Payload, w.QoS, w.Retained)
	}
	c.pc = paho.NewClient(opts)
	c.connTok = c.pc.Connect() // with retry on, it completes only once connected
	return c, nil
}

func (cfg ClientConfig) validate() error {
	u, err := url.Parse(cfg.Broker)
	if err != nil || u.Host == "" {
		return fmt.Errorf("mqtt client: broker %q is not a URL like tcp://host:1883", cfg.Broker)
	}
	switch u.Scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts":
	default:
		return fmt.Errorf("mqtt client: broker %q: scheme must be tcp, mqtt, ssl, tls or mqtts", cfg.Broker)
	}
	switch {
	case cfg.ClientID == "":
		return errors.New("mqtt client: an explicit, unique client id is required")
	case cfg.KeepAlive < 0 || cfg.KeepAlive > wire.MaxKeepAlive:
		return fmt.Errorf("mqtt client: keepalive %s: must be at most %s", cfg.KeepAlive, wire.MaxKeepAlive)
	case cfg.KeepAlive > 0 && cfg.KeepAlive < time.Second:
		return fmt.Errorf("mqtt client: keepalive %s: must be at least 1s", cfg.KeepAlive)
	case cfg.QueueLen < 0:
		return fmt.Errorf("mqtt client: queue length %d must not be negative", cfg.QueueLen)
	}
	if w := cfg.Will; w != nil {
		if err := checkMessage(*w); err != nil {
			return fmt.Errorf("mqtt client: will: %w", err)
		}
	}
	return nil
}

func checkMessage(m Message) error {
	switch {
	case m.Topic == "":
		return errors.New("empty topic")
	case strings.ContainsAny(m.Topic, "+#"):
		return fmt.Errorf("topic %q contains a wildcard", m.Topic)
	case m.QoS > 2:
		return fmt.Errorf("topic %q: QoS %d is not 0, 1 or 2", m.Topic, m.QoS)
	}
	return nil
}

// abort stops a client that never connected.
func (c *Client) abort() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.pc.Disconnect(0)
	close(c.stop)
}

// onConnect runs on its own goroutine after each (re)connection.
func (c *Client) onConnect(paho.Client) {
	c.failing.Store(false)
	c.log.Info("mqtt connected", "broker", c.cfg.Broker)
	if c.cfg.beforeResubscribe != nil {
		c.cfg.beforeResubscribe()
	}
	c.mu.Lock()
	subs := make([]*subscription, 0, len(c.subs))
	for _, s := range c.subs {
		subs = append(subs, s)
	}
	c.synced = true
	c.mu.Unlock()
	c.resubscribe(subs)
	if c.cfg.OnConnect != nil {
		c.cfg.OnConnect(c)
	}
	c.firstOnce.Do(func() { close(c.firstUp) })
}

// onReconnecting runs before each attempt to connect again, before the
// connection it makes can be up.
func (c *Client) onReconnecting(paho.Client, *paho.ClientOptions) {
	c.mu.Lock()
	c.synced = false
	c.mu.Unlock()
}

func (c *Client) onLost(_ paho.Client, err error) {
	c.log.Warn("mqtt connection lost, reconnecting", "broker", c.cfg.Broker, "error", err)
	if c.cfg.OnConnectionLost != nil {
		c.cfg.OnConnectionLost(err)
	}
}

// onNotify records connection failures; paho calls it synchronously.
func (c *Client) onNotify(_ paho.Client, n paho.ConnectionNotification) {
	f, ok := n.(paho.ConnectionNotificationFailed)
	if !ok || f.Reason == nil {
		return
	}
	err := f.Reason
	c.lastErr.Store(&err)
	if isRefusal(err) {
		select {
		case c.refused <- fmt.Errorf("%w: %w", ErrRefused, err):
		default:
		}
	}
	if c.failing.CompareAndSwap(false, true) {
		c.log.Warn("mqtt connect failed, retrying", "broker", c.cfg.Broker, "error", err)
	} else {
		c.log.Debug("mqtt connect failed, retrying", "broker", c.cfg.Broker, "error", err)
	}
}

func isRefusal(err error) bool {
	return errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword) ||
		errors.Is(err, packets.ErrorRefusedNotAuthorised) ||
		errors.Is(err, packets.ErrorRefusedIDRejected) ||
		errors.Is(err, packets.ErrorRefusedBadProtocolVersion)
}

// Connected reports whether the client has a connection to the broker now.
func (c *Client) Connected() bool { return c.pc.IsConnectionOpen() }

// Dropped returns how many received messages were dropped because their
// subscription's queue was full.
func (c *Client) Dropped() uint64 { return c.dropped.Load() }

// Publish sends m and, for QoS 1 and 2, waits for the broker's
// acknowledgement until ctx ends or OpTimeout passes (QoS 0 waits until the
// message is written). Without a connection it fails at once with
// ErrNotConnected rather than queueing. After an error a QoS 1 message may
// still be delivered: paho sends it again after a reconnection.
func (c *Client) Publish(ctx context.Context, m Message) error {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return ErrClosed
	}
	return c.publish(ctx, m)
}

func (c *Client) publish(ctx context.Context, m Message) error {
	if err := checkMessage(m); err != nil {
		return fmt.Errorf("mqtt publish: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mqtt publish %s: %w", m.Topic, err)
	}
	if !c.pc.IsConnectionOpen() {
		return fmt.Errorf("mqtt publish %s: %w", m.Topic, ErrNotConnected)
	}
	tok := c.pc.Publish(m.Topic, m.QoS, m.Retained, m.Payload)
	if err := waitToken(ctx, tok); err != nil {
		return fmt.Errorf("mqtt publish %s: %w", m.Topic, err)
	}
	return nil
}

// waitToken is paho's WaitTimeout(OpTimeout) that also ends with ctx.
func waitToken(ctx context.Context, tok paho.Token) error {
	t := time.NewTimer(OpTimeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return ErrTimeout
	}
}

// Subscribe subscribes h to filter and remembers the subscription: it is
// made again after every reconnection. h runs on the subscription's own
// worker goroutine, one message at a time; a slow h delays only its own
// subscription, and when its queue (QueueLen) is full further messages are
// dropped and counted. A panic in h is recovered and logged.
//
// Without a connection the subscription is only remembered; so it is while
// a new connection comes up, until its subscriptions are made again (all
// in one SUBSCRIBE, see resubscribe), which then include it. With one,
// Subscribe waits for the broker's answer (at most OpTimeout): a refusal
// returns ErrSubscriptionRefused and forgets the subscription; any other
// error (ErrTimeout, a connection lost meanwhile) keeps it for the next
// reconnection. One filter may be subscribed only once.
//
// A client that subscribes to several filters subscribes to them together
// with SubscribeAll.
func (c *Client) Subscribe(filter string, qos byte, h func(topic string, payload []byte)) error {
	return c.SubscribeAll(qos, map[string]func(topic string, payload []byte){filter: h})
}

// SubscribeAll subscribes each filter of handlers to its handler, as
// Subscribe does, in one SUBSCRIBE: a SUBSCRIBE sent while the retained
// messages of an earlier one are on their way to the client may be refused
// whole (see resubscribe), so a client that needs several subscriptions,
// retained ones among them, makes them at once. A refusal (after
// subscribeTries SUBSCRIBEs) forgets the refused filters and returns
// ErrSubscriptionRefused naming them; the others stay.
func (c *Client) SubscribeAll(qos byte, handlers map[string]func(topic string, payload []byte)) error {
	if qos > 2 {
		return fmt.Errorf("mqtt subscribe: QoS %d is not 0, 1 or 2", qos)
	}
	subs := make(map[string]*subscription, len(handlers))
	for filter, h := range handlers {
		switch {
		case filter == "":
			return errors.New("mqtt subscribe: empty filter")
		case h == nil:
			return fmt.Errorf("mqtt subscribe %q: nil handler", filter)
		}
		subs[filter] = &subscription{
			c:       c,
			filter:  filter,
			qos:     qos,
			handler: h,
			queue:   make(chan delivery, c.queueLen),
			done:    make(chan struct{}),
		}
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	for filter := range subs {
		if _, dup := c.subs[filter]; dup {
			c.mu.Unlock()
			return fmt.Errorf("mqtt subscribe %q: already subscribed", filter)
		}
	}
	for filter, s := range subs {
		c.subs[filter] = s
		c.workers.Add(1)
		go s.run()
	}
	synced := c.synced
	c.mu.Unlock()

	if !synced || !c.pc.IsConnectionOpen() || len(subs) == 0 {
		return nil
	}
	refused, err := c.subscribeNow(slices.Collect(maps.Values(subs)))
	if len(refused) == 0 {
		return err
	}
	c.mu.Lock()
	for _, filter := range refused {
		if s := subs[filter]; c.subs[filter] == s {
			delete(c.subs, filter)
			close(s.done)
		}
	}
	c.mu.Unlock()
	return fmt.Errorf("mqtt subscribe %s: %w", quoted(refused), ErrSubscriptionRefused)
}

// resubscribe makes the remembered subscriptions on a new connection, all in
// one SUBSCRIBE: the broker starts delivering retained messages as soon as
// the first filter is granted, and mochi refuses a SUBSCRIBE whose packet id
// is that of a message it still has in flight to the client (it keeps both
// directions' ids together), so separate SUBSCRIBEs could be refused for
// nothing (Subscribe leaves the subscriptions it makes while a connection
// comes up to this one SUBSCRIBE for that reason). Filters refused all the
// same are asked for again, as Subscribe does: a client left without them
// would hear nothing on them until it reconnects.
func (c *Client) resubscribe(subs []*subscription) {
	refused, err := c.subscribeNow(subs)
	if err != nil {
		c.log.Error("mqtt subscribe after connect failed", "filters", len(subs), "error", err)
	}
	for _, filter := range refused {
		c.log.Error("mqtt subscribe after connect refused", "filter", filter, "error", ErrSubscriptionRefused)
	}
}

// subscribeTries is how many SUBSCRIBEs ask for a filter the broker refuses:
// a refusal may only mean that the SUBSCRIBE's packet id clashed with a
// message in flight to the client (see resubscribe), which its
// acknowledgement soon clears; one the ACL refuses is refused every time.
// Each try after the first waits subscribeRetryPause longer than the last.
const (
	subscribeTries      = 3
	subscribeRetryPause = 100 * time.Millisecond
)

// subscribeNow makes subs in one SUBSCRIBE, asking again for the filters
// the broker refuses, and returns those it refused every time, sorted, or
// the error that stopped it (the connection lost, no answer in time).
func (c *Client) subscribeNow(subs []*subscription) (refused []string, err error) {
	if len(subs) == 0 {
		return nil, nil
	}
	filters := make(map[string]byte, len(subs))
	for _, s := range subs {
		c.pc.AddRoute(s.filter, s.deliver)
		filters[s.filter] = s.qos
	}
	for try := 1; ; try++ {
		tok := c.pc.SubscribeMultiple(filters, nil)
		if err := waitToken(context.Background(), tok); err != nil {
			return nil, fmt.Errorf("mqtt subscribe %s: %w", quoted(slices.Sorted(maps.Keys(filters))), err)
		}
		again := map[string]byte{}
		if st, ok := tok.(*paho.SubscribeToken); ok {
			for filter, code := range st.Result() {
				if code >= 0x80 {
					again[filter] = filters[filter]
				}
			}
		}
		if len(again) == 0 {
			return nil, nil
		}
		if try == subscribeTries {
			return slices.Sorted(maps.Keys(again)), nil
		}
		filters = again
		select {
		case <-time.After(time.Duration(try) * subscribeRetryPause):
		case <-c.stop:
			return nil, ErrClosed
		}
	}
}

// quoted lists filters for an error message.
func quoted(filters []string) string {
	q := make([]string, len(filters))
	for i, f := range filters {
		q[i] = strconv.Quote(f)
	}
	return strings.Join(q, ", ")
}

// Close publishes final (e.g. the server's offline status) if connected,
// disconnects cleanly (so the broker does not publish the will), and stops
// the subscription workers, waiting a few seconds for running handlers.
// It may be called more than once; later calls do nothing.
func (c *Client) Close(final *Message) {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		if final != nil && c.pc.IsConnectionOpen() {
			ctx, cancel := context.WithTimeout(context.Background(), OpTimeout)
			if err := c.publish(ctx, *final); err != nil {
				c.log.Warn("mqtt final message not published", "topic", final.Topic, "error", err)
			}
			cancel()
		}
		c.pc.Disconnect(quiesceMillis)
		close(c.stop)
		done := make(chan struct{})
		go func() { c.workers.Wait(); close(done) }()
		t := time.NewTimer(workerDrainTimeout)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			c.log.Warn("mqtt handlers still running after close", "waited", workerDrainTimeout)
		}
		c.log.Info("mqtt client closed")
	})
}

type delivery struct {
	topic   string
	payload []byte
}

// subscription is one remembered subscription and its worker.
type subscription struct {
	c       *Client
	filter  string
	qos     byte
	handler func(topic string, payload []byte)
	queue   chan delivery
	done    chan struct{} // closed when the subscription is forgotten
	full    atomic.Bool   // dropping since the last message that fit
}

// deliver is the paho callback: it never blocks.
func (s *subscription) deliver(_ paho.Client, m paho.Message) {
	select {
	case <-s.done:
		return
	case <-s.c.stop:
		return
	default:
	}
	select {
	case s.queue <- delivery{topic: m.Topic(), payload: m.Payload()}:
		s.full.Store(false)
	default:
		n := s.c.dropped.Add(1)
		if s.full.CompareAndSwap(false, true) {
			s.c.log.Warn("mqtt handler queue full, dropping messages",
				"filter", s.filter, "queue_len", cap(s.queue), "dropped_total", n)
		}
	}
}

func (s *subscription) run() {
	defer s.c.workers.Done()
	for {
		select {
		case <-s.c.stop:
			return
		case <-s.done:
			return
		case d := <-s.queue:
			s.handle(d)
		}
	}
}

func (s *subscription) handle(d delivery) {
	defer func() {
		if r := recover(); r != nil {
			s.c.log.Error("mqtt handler panicked", "filter", s.filter, "topic", d.topic,
				"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	s.handler(d.topic, d.payload)
}

// copyingStore is paho's memory store, except that it keeps its own copy of
// each PUBLISH and hands out copies. paho (1.5.1) stores the very packet it
// is sending; after a reconnection it sends the stored QoS 1 messages again,
// marking each as a duplicate on the stored packet, while a message published
// at that moment (by OnConnect, say) is being written from that same packet:
// a data race (eclipse-paho/paho.mqtt.golang issue #703). With copies, such a
// message is at worst sent twice, which QoS 1 allows.
type copyingStore struct{ paho.Store }

// Put stores a copy of a PUBLISH (before paho sends the original).
func (s copyingStore) Put(key string, p packets.ControlPacket) {
	s.Store.Put(key, copyPublish(p))
}

// Get returns a copy of a stored PUBLISH.
func (s copyingStore) Get(key string) packets.ControlPacket {
	return copyPublish(s.Store.Get(key))
}

func copyPublish(p packets.ControlPacket) packets.ControlPacket {
	if pub, ok := p.(*packets.PublishPacket); ok {
		c := *pub // the payload is shared: nobody writes to it
		return &c
	}
	return p
}
