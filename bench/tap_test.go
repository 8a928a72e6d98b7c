package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/devicesim"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/lab"
	"github.com/fabgate/fabgate/internal/mqtt"
	"github.com/fabgate/fabgate/internal/mqtt/mqtttest"
	"github.com/fabgate/fabgate/internal/wire"
)

// tapReaders is the concurrency of the DESIGN §10 target.
const tapReaders = 20

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// tapLab is a store with one machine, member, badge and device per reader.
type tapLab struct {
	store   *bolt.Store
	secrets map[string]string // device → secret
	hashes  map[string]string // device → mosquitto hash
	uids    map[string]string // device → its member's badge
}

func newTapLab(b *testing.B, readers int) *tapLab {
	ctx := context.Background()
	s, err := bolt.Open(filepath.Join(b.TempDir(), "fabgate.db"), bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	l := &tapLab{store: s, secrets: map[string]string{}, hashes: map[string]string{}, uids: map[string]string{}}
	rules := fablab.DefaultBookingRules()
	rules.MaxWalkInMinutes = 240
	for i := 0; i < readers; i++ {
		dev := fmt.Sprintf("reader-%d", i)
		m, err := s.CreateMachine(ctx, fablab.Machine{Name: "Printer " + dev, Kind: fablab.Kind3DPrinter, DeviceID: dev, Rules: rules})
		if err != nil {
			b.Fatal(err)
		}
		mem, err := s.CreateMember(ctx, fablab.Member{Email: dev + "@bench.test", Name: "Maker", Group: "student"})
		if err != nil {
			b.Fatal(err)
		}
		uid := fmt.Sprintf("04A2B3C4D5%04X", i)
		if _, err := s.AddBadge(ctx, fablab.Badge{Hash: auth.BadgeHash(s.BadgeSecret(), uid), MemberID: mem.ID}); err != nil {
			b.Fatal(err)
		}
		secret := auth.NewToken()
		hash, err := mqtt.MosquittoPasswordHash(secret)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.CreateDevice(ctx, fablab.Device{ID: dev, MachineID: m.ID, SecretHash: hash}); err != nil {
			b.Fatal(err)
		}
		l.secrets[dev], l.hashes[dev], l.uids[dev] = secret, hash, uid
	}
	return l
}

// pubSubLatency is the baseline: one QoS 1 message from one client to
// another through the broker at url, p50 over n sequential messages.
func pubSubLatency(b *testing.B, url, user, password string, n int) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := make(chan struct{}, 1)
	sub, err := mqtt.Connect(ctx, mqtt.ClientConfig{Broker: url, ClientID: "bench-sub", Username: user, Password: password})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close(nil)
	topic := wire.DefaultPrefix + "/bench/latency"
	if err := sub.Subscribe(topic, 1, func(string, []byte) { got <- struct{}{} }); err != nil {
		b.Fatal(err)
	}
	pub, err := mqtt.Connect(ctx, mqtt.ClientConfig{Broker: url, ClientID: "bench-pub", Username: user, Password: password})
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close(nil)
	lat := make([]time.Duration, 0, n)
	for i := 0; i < n+10; i++ {
		start := time.Now()
		if err := pub.Publish(ctx, mqtt.Message{Topic: topic, Payload: []byte(`{"v":1}`), QoS: 1}); err != nil {
			b.Fatal(err)
		}
		select {
		case <-got:
		case <-ctx.Done():
			b.Fatal("baseline message not delivered")
		}
		if i >= 10 { // warm-up
			lat = append(lat, time.Since(start))
		}
	}
	return percentile(lat, 0.5)
}

// commitLatency is the other half of the baseline: one fsync'd bbolt commit.
func commitLatency(b *testing.B, n int) time.Duration {
	db, err := bbolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	lat := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		start := time.Now()
		if err := db.Update(func(tx *bbolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists([]byte("b"))
			if err != nil {
				return err
			}
			return bk.Put([]byte(fmt.Sprint(i)), make([]byte, 300))
		}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	return percentile(lat, 0.5)
}

// runTaps has every reader tap its member's badge (grant → unlock) and tap
// out (→ lock) rounds times at once; it returns the tap→unlock latencies.
func runTaps(b *testing.B, l *tapLab, url, prefix string, rounds int) []time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sims := map[string]*devicesim.Device{}
	for dev, secret := range l.secrets {
		d, err := devicesim.Start(ctx, devicesim.Config{Broker: url, ID: dev, Secret: secret, Prefix: prefix})
		if err != nil {
			b.Fatal(err)
		}
		defer d.Close()
		sims[dev] = d
	}
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	b.ResetTimer()
	for dev, d := range sims {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				for _, want := range []string{wire.OpUnlock, wire.OpLock} {
					start := time.Now()
					if _, err := d.Tap(ctx, l.uids[dev]); err != nil {
						b.Error(err)
						return
					}
					for {
						c, err := d.Next(ctx)
						if err != nil {
							b.Error(err)
							return
						}
						if c.Op == want {
							break
						}
						if c.Op == wire.OpDeny {
							b.Errorf("%s: tap denied: %s", dev, c.Reason)
							return
						}
					}
					if want == wire.OpUnlock {
						mu.Lock()
						lat = append(lat, time.Since(start))
						mu.Unlock()
					}
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	return lat
}

func reportTaps(b *testing.B, lat []time.Duration, pubsub, commit time.Duration) {
	if len(lat) == 0 {
		b.Fatal("no tap measured")
	}
	p50, p99 := percentile(lat, 0.5), percentile(lat, 0.99)
	base := pubsub + commit
	b.ReportMetric(ms(p50), "tap-p50-ms")
	b.ReportMetric(ms(p99), "tap-p99-ms(target<20)")
	b.ReportMetric(ms(pubsub), "base-pubsub-p50-ms")
	b.ReportMetric(ms(commit), "base-commit-p50-ms")
	b.ReportMetric(float64(p50)/float64(base), "ratio(target≤2)")
}

// BenchmarkTapUnlockEmbedded: tap → unlock received by the device through
// the embedded broker, with the durable session write, at 20 concurrent
// readers, against (publish→deliver + one commit) measured in the same run.
func BenchmarkTapUnlockEmbedded(b *testing.B) { benchTapEmbedded(b, tapReaders) }

// BenchmarkTapUnlockEmbeddedOneReader: the same with a single reader, the
// latency of one tap on an otherwise idle lab.
func BenchmarkTapUnlockEmbeddedOneReader(b *testing.B) { benchTapEmbedded(b, 1) }

func benchTapEmbedded(b *testing.B, readers int) {
	l := newTapLab(b, readers)
	running, err := lab.Start(context.Background(), lab.Config{Store: l.store, Listen: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	defer running.Close()
	// The baseline uses a broker of its own with a known server user.
	base, err := mqtt.StartBroker(mqtt.BrokerConfig{Listen: "127.0.0.1:0", ServerUser: "bench", ServerPassword: "bench-password"})
	if err != nil {
		b.Fatal(err)
	}
	defer base.Close()
	pubsub := pubSubLatency(b, "tcp://"+base.Addr(), "bench", "bench-password", 400)
	commit := commitLatency(b, 400)
	rounds := max(b.N/readers, 10)
	reportTaps(b, runTaps(b, l, running.URL, wire.DefaultPrefix, rounds), pubsub, commit)
}

// BenchmarkTapUnlockMosquitto: the same through a real Mosquitto.
func BenchmarkTapUnlockMosquitto(b *testing.B) {
	l := newTapLab(b, tapReaders)
	dir := b.TempDir()
	addr := mqtttest.FreeAddr(b)
	if err := mqtt.WriteMosquittoConfig(dir, wire.DefaultPrefix, addr, mqtt.MosquittoUser{Username: "fabgate-server", Password: "bench-password"}, l.hashes); err != nil {
		b.Fatal(err)
	}
	url := "tcp://" + mqtttest.StartMosquitto(b, dir)
	running, err := lab.Start(context.Background(), lab.Config{Store: l.store, URL: url, Username: "fabgate-server", Password: "bench-password"})
	if err != nil {
		b.Fatal(err)
	}
	defer running.Close()
	pubsub := pubSubLatency(b, url, "fabgate-server", "bench-password", 400)
	commit := commitLatency(b, 400)
	rounds := max(b.N/tapReaders, 10)
	reportTaps(b, runTaps(b, l, url, wire.DefaultPrefix, rounds), pubsub, commit)
}
