// Package lab runs the access side of a FabGate server: the embedded MQTT
// broker (or the connection to an external one), the server's MQTT client
// and its subscriptions, the access engine, and its schedule (ack retries,
// the 15-second sweep of sessions and devices).
package lab

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fabgate/fabgate/internal/access"
	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/events"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/jobs"
	"github.com/fabgate/fabgate/internal/mqtt"
	"github.com/fabgate/fabgate/internal/wire"
)

// Config configures the access side.
type Config struct {
	Store *bolt.Store
	Log   *slog.Logger
	Now   fablab.Clock // the engine's clock (default: the system clock)

	// Listen is the embedded broker's address, used when URL is empty.
	Listen string
	// BrokerTLS, when set, makes the embedded broker speak MQTT over TLS
	// only (mqtt.ServerTLS loads it); the server's own client then trusts
	// the broker's certificate alone (mqtt.Broker.ClientTLS).
	BrokerTLS *tls.Config
	// URL is an external broker (tcp:// or ssl://), with the server's
	// Username, Password and TLS settings on it.
	URL                string
	Username, Password string
	TLS                *tls.Config
	Prefix             string // topic prefix (default fabgate/v1)

	// Manual leaves the schedule to the caller (tests call the engine's
	// RetryDue and Sweep after moving their clock, or Lab.Jobs.RunNow): the
	// jobs are registered but never started.
	Manual bool
	// Jobs are scheduled beside the lab's own (sessions_sweep, allowlists,
	// prune), their catch-ups run at start. More may be added to Lab.Jobs
	// later (jobs.Registry.Add).
	Jobs []jobs.Job
	// Metrics, when set, receives the jobs' metrics.
	Metrics prometheus.Registerer
	// AckTimeout and Tries override the engine's defaults (3 s, 3).
	AckTimeout time.Duration
	Tries      int
}

// Dropped returns how many device messages were lost to full queues.
func (st *Lab) Dropped() int64 { return st.queues.dropped.Load() }

// Lab is the running access side.
type Lab struct {
	Broker *mqtt.Broker // nil with an external broker
	Client *mqtt.Client
	Engine *access.Engine
	Hub    *events.Hub
	Topics wire.Topics
	URL    string // the broker the server is connected to
	// ClientTLS are the TLS settings the server's client uses at URL (nil
	// for tcp://); other clients in the server (the demo's bridges) use
	// them too.
	ClientTLS *tls.Config
	// Jobs are the scheduled jobs, the lab's and Config.Jobs: their status,
	// RunNow, and Add for more.
	Jobs *jobs.Registry

	queues    deviceQueues
	closeOnce sync.Once
	stop      chan struct{}
	done      sync.WaitGroup
	log       *slog.Logger
}

// clientPublisher publishes through the server's client once it is set.
type clientPublisher struct{ c atomic.Pointer[mqtt.Client] }

func (p *clientPublisher) Publish(ctx context.Context, topic string, payload []byte, retained bool) error {
	c := p.c.Load()
	if c == nil {
		return fmt.Errorf("mqtt: not connected yet")
	}
	return c.Publish(ctx, mqtt.Message{Topic: topic, Payload: payload, QoS: 1, Retained: retained})
}

// deviceAuth checks device credentials for the embedded broker against the
// device registry.
type deviceAuth struct{ store *bolt.Store }

func (a deviceAuth) VerifyDevice(ctx context.Context, id, secret string) (bool, error) {
	d, err := a.store.Device(ctx, id)
	if fablab.ErrorCode(err) == fablab.ENOTFOUND {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return mqtt.VerifyDeviceSecret(d, secret), nil
}

// Start starts the broker (unless an external one is configured), the
// engine, and the server's MQTT client with its subscriptions.
func Start(ctx context.Context, cfg Config) (*Lab, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = wire.DefaultPrefix
	}
	log, store := cfg.Log, cfg.Store
	topics, err := wire.NewTopics(cfg.Prefix)
	if err != nil {
		return nil, fmt.Errorf("mqtt_prefix: %w", err)
	}
	st := &Lab{Hub: events.NewHub(), Topics: topics, stop: make(chan struct{}), log: log, queues: deviceQueues{queues: map[string]chan func(){}, dropping: map[string]bool{}, log: log}}
	url, user, password, clientTLS := cfg.URL, cfg.Username, cfg.Password, cfg.TLS
	if url == "" {
		user, password = "fabgate-server", auth.NewToken() // the embedded broker's server user, new at each start
		st.Broker, err = mqtt.StartBroker(mqtt.BrokerConfig{
			Listen: cfg.Listen, TLS: cfg.BrokerTLS, Prefix: cfg.Prefix, Devices: deviceAuth{store},
			ServerUser: user, ServerPassword: password, Log: log.With("component", "broker"),
		})
		if err != nil {
			return nil, fmt.Errorf("mqtt: embedded broker on %s: %w (is another broker running? change --mqtt-listen)", cfg.Listen, err)
		}
		url, clientTLS = st.Broker.URL(), st.Broker.ClientTLS()
	} else if password == "" {
		if password, err = store.ServerMQTTPassword(ctx); err != nil {
			return nil, err
		}
	}
	st.URL, st.ClientTLS = url, clientTLS
	pub := &clientPublisher{}
	st.Engine = access.New(access.Config{Store: store, Pub: pub, Topics: topics, Now: cfg.Now, Log: log.With("component", "access"), Hub: st.Hub,
		AckTimeout: cfg.AckTimeout, Tries: cfg.Tries})

	offline, _ := wire.Encode(&wire.ServerStatus{Online: false})
	online, _ := wire.Encode(&wire.ServerStatus{Online: true})
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	// The server announces itself online only once its subscriptions are
	// made: devices replay their offline queues as soon as they see it
	// online, and a replay nobody hears is lost.
	subscribed := make(chan struct{})
	var subscribedOnce sync.Once
	markSubscribed := func() { subscribedOnce.Do(func() { close(subscribed) }) }
	st.Client, err = mqtt.Dial(mqtt.ClientConfig{
		Broker: url, ClientID: "fabgate-server-" + auth.NewToken()[:8], Username: user, Password: password, TLS: clientTLS,
		Will: &mqtt.Message{Topic: topics.ServerStatus(), Payload: offline, QoS: 1, Retained: true},
		OnConnect: func(c *mqtt.Client) {
			<-subscribed
			if err := c.Publish(context.Background(), mqtt.Message{Topic: topics.ServerStatus(), Payload: online, QoS: 1, Retained: true}); err != nil {
				log.Warn("publish server birth", "err", err)
			}
			// A restarted broker may have lost the retained allow-lists.
			st.Engine.AllowlistsChanged()
		},
		Log: log.With("component", "mqtt"),
	})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("mqtt: connect to %s: %w", url, err)
	}
	pub.c.Store(st.Client)
	handlers := map[wire.Kind]func(context.Context, string, []byte){
		wire.KindTap: st.Engine.HandleTap, wire.KindAck: st.Engine.HandleAck, wire.KindStatus: st.Engine.HandleStatus,
		wire.KindHeartbeat: st.Engine.HandleHeartbeat, wire.KindState: st.Engine.HandleState,
	}
	// One SUBSCRIBE for all: the broker sends the retained statuses and
	// states at once, and a SUBSCRIBE arriving while they are in flight
	// may be refused whole (mqtt.Client.SubscribeAll).
	subs := make(map[string]func(topic string, payload []byte), len(handlers))
	for kind, h := range handlers {
		subs[topics.DeviceFilter(kind)] = func(topic string, payload []byte) {
			dev, _, ok := topics.Parse(topic)
			if !ok {
				st.Engine.Dropped.Add(1)
				return
			}
			st.queues.do(dev, func() { h(context.Background(), dev, payload) })
		}
	}
	err = st.Client.SubscribeAll(1, subs)
	markSubscribed()
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("mqtt: subscribe: %w", err)
	}
	if err := st.Client.WaitConnected(cctx); err != nil {
		st.Close()
		return nil, fmt.Errorf("mqtt: connect to %s: %w", url, err)
	}

	st.Engine.PublishAllowlists(ctx)
	settings, err := store.Settings(ctx)
	if err != nil {
		st.Close()
		return nil, err
	}
	st.Jobs, err = jobs.New(jobs.Config{Location: settings.Location(), Now: cfg.Now, Log: log.With("component", "jobs"), Metrics: cfg.Metrics})
	if err != nil {
		st.Close()
		return nil, err
	}
	for _, j := range append(st.jobs(store), cfg.Jobs...) {
		if err := st.Jobs.Add(j); err != nil {
			st.Close()
			return nil, err
		}
	}
	if cfg.Manual {
		log.Info("access control running", "broker", url, "embedded", st.Broker != nil, "prefix", cfg.Prefix)
		return st, nil
	}
	// Acks are due within seconds: check them often. Allow-lists take a scan
	// of every badge: on a goroutine of their own, so that ack deadlines
	// never wait for them. The rest is the jobs'.
	st.every(250*time.Millisecond, st.Engine.RetryDue)
	st.every(500*time.Millisecond, st.Engine.FlushAllowlists)
	st.Jobs.Start()
	log.Info("access control running", "broker", url, "embedded", st.Broker != nil, "prefix", cfg.Prefix)
	return st, nil
}

// jobs are the lab's own scheduled jobs (DESIGN §6).
func (st *Lab) jobs(store *bolt.Store) []jobs.Job {
	log := st.log
	return []jobs.Job{
		{Name: "sessions_sweep", Schedule: "*/15 * * * * *", Run: func(ctx context.Context) error {
			st.Engine.Sweep(ctx) // logs its own errors, one by one
			return nil
		}},
		// Lists are published again every hour, so that a device offline for
		// a while holds one younger than its max offline age.
		{Name: "allowlists", Schedule: "0 0 * * * *", Run: func(context.Context) error {
			st.Engine.AllowlistsChanged()
			return nil
		}},
		{Name: "prune", Schedule: "0 30 3 * * *", Run: func(ctx context.Context) error {
			n, err := store.PruneTaps(ctx, 100_000)
			if err != nil {
				return fmt.Errorf("prune handled taps: %w", err)
			}
			if n > 0 {
				log.Info("pruned handled taps", "count", n)
			}
			return nil
		}},
	}
}

// every runs fn every period on a goroutine of its own until Close.
func (st *Lab) every(period time.Duration, fn func(context.Context)) {
	st.done.Add(1)
	go func() {
		defer st.done.Done()
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-st.stop:
				return
			case <-t.C:
				fn(context.Background())
			}
		}
	}()
}

// Close stops the schedule, then the client (publishing the server's
// offline status), then the embedded broker.
func (st *Lab) Close() {
	st.closeOnce.Do(st.close)
}

func (st *Lab) close() {
	if st.Jobs != nil {
		st.Jobs.Stop()
	}
	close(st.stop)
	st.done.Wait()
	st.queues.close()
	if st.Client != nil {
		offline, _ := wire.Encode(&wire.ServerStatus{Online: false})
		st.Client.Close(&mqtt.Message{Topic: st.Topics.ServerStatus(), Payload: offline, QoS: 1, Retained: true})
	}
	if st.Broker != nil {
		if err := st.Broker.Close(); err != nil {
			st.log.Error("close broker", "err", err)
		}
	}
}

// deviceQueues runs each device's messages one at a time, on a goroutine of
// the device's own: devices are served in parallel (so that concurrent taps
// share commits) and one device's messages never race each other. They run
// in the order the MQTT client hands them over, which (paho with
// SetOrderMatters(false)) may differ from their arrival order: the engine's
// handlers tolerate that (seq on commands, since on states, msg_id on taps).
type deviceQueues struct {
	rw     sync.RWMutex // held for reading while a message is queued, for writing by close
	mu     sync.Mutex   // guards queues
	queues map[string]chan func()
	wg     sync.WaitGroup
	closed bool
	// dropped counts messages lost because their device's queue was full.
	dropped  atomic.Int64
	stopping atomic.Bool
	// log reports the start of each run of drops of a device (guarded by
	// mu, with dropping): a flooding device does not flood the log.
	log      *slog.Logger
	dropping map[string]bool
}

// deviceQueueLen bounds the messages waiting for one device.
const deviceQueueLen = 256

func (q *deviceQueues) do(dev string, fn func()) {
	q.rw.RLock()
	defer q.rw.RUnlock()
	if q.closed {
		return
	}
	q.mu.Lock()
	ch := q.queues[dev]
	if ch == nil {
		ch = make(chan func(), deviceQueueLen)
		q.queues[dev] = ch
		q.wg.Add(1)
		go func() {
			defer q.wg.Done()
			for f := range ch {
				if q.stopping.Load() {
					continue // closing: what is still queued is dropped, not run
				}
				f()
			}
		}()
	}
	q.mu.Unlock()
	select {
	case ch <- fn:
		q.mu.Lock()
		delete(q.dropping, dev)
		q.mu.Unlock()
	default:
		// A device flooding its queue loses messages (a tap among them goes
		// unanswered); the others do not wait.
		q.dropped.Add(1)
		q.mu.Lock()
		first := !q.dropping[dev]
		if first && q.dropping != nil {
			q.dropping[dev] = true
		}
		q.mu.Unlock()
		if first && q.log != nil {
			q.log.Warn("device message queue full: its messages are dropped until it drains", "device", dev, "queue_len", deviceQueueLen)
		}
	}
}

func (q *deviceQueues) close() {
	q.stopping.Store(true)
	q.rw.Lock()
	if !q.closed {
		q.closed = true
		for _, ch := range q.queues {
			close(ch)
		}
	}
	q.rw.Unlock()
	q.wg.Wait()
}
