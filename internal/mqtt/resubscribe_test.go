package mqtt

import (
	"context"
	"errors"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// The subscriptions a client makes again when it (re)connects are asked
// for again when the broker refuses them: mochi refuses a whole SUBSCRIBE
// whose packet id is that of a message it still has in flight to the
// client, and a Subscribe made while the connection comes up (made alone,
// its retained messages delivered at once) can cause that. A server left
// without its subscriptions hears no device until it reconnects: its
// devices' taps go unanswered and its unlocks unconfirmed.
func TestClientResubscribesRefusedFilters(t *testing.T) {
	for _, tc := range []struct {
		name    string
		refuse  int // how many SUBSCRIBEs the broker refuses first
		granted bool
	}{
		{"one refusal", 1, true},
		{"refused up to the last try", subscribeTries - 1, true},
		{"refused every time", subscribeTries, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log, buf := testLog(t)
			b := newScriptedBroker(t, tc.refuse)
			c, err := Dial(ClientConfig{Broker: "tcp://" + b.addr(), ClientID: uniqueID("srv"), Log: log})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(nil)
			filters := []string{testPrefix + "/dev/+/ack", testPrefix + "/dev/+/state", testPrefix + "/dev/+/tap"}
			for _, f := range filters {
				if err := c.Subscribe(f, 1, func(string, []byte) {}); err != nil {
					t.Fatal(err)
				}
			}
			b.letConnect() // the subscriptions are made again, in one SUBSCRIBE, on connect
			b.awaitSubscribes(t, min(tc.refuse+1, subscribeTries))
			got := b.grantedFilters()
			switch {
			case tc.granted && !slices.Equal(got, filters):
				t.Fatalf("granted %v, want %v", got, filters)
			case !tc.granted && len(got) > 0:
				t.Fatalf("granted %v, want none", got)
			}
			if refused := strings.Count(buf.String(), "mqtt subscribe after connect refused"); tc.granted && refused > 0 || !tc.granted && refused != len(filters) {
				t.Fatalf("%d filters logged as refused:\n%s", refused, buf.String())
			}
		})
	}
}

// A Subscribe made while a connection comes up (paho counts it open, its
// subscriptions are not made again yet) is left to the connection's one
// SUBSCRIBE: sent alone, its retained messages could be in flight when that
// SUBSCRIBE arrives, and mochi would refuse it whole. A server whose
// subscriptions were refused so at start heard no device.
func TestClientSubscribeWhileConnecting(t *testing.T) {
	log, _ := testLog(t)
	b := newScriptedBroker(t, 0)
	opening, open := make(chan struct{}), make(chan struct{})
	var once sync.Once
	c, err := Dial(ClientConfig{Broker: "tcp://" + b.addr(), ClientID: uniqueID("srv"), Log: log,
		beforeResubscribe: func() {
			once.Do(func() {
				close(opening)
				<-open
			})
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(nil)
	early, late := testPrefix+"/dev/+/ack", testPrefix+"/dev/+/state"
	if err := c.Subscribe(early, 1, func(string, []byte) {}); err != nil {
		t.Fatal(err)
	}
	b.letConnect()
	<-opening
	if !c.pc.IsConnectionOpen() {
		t.Fatal("the connection is not open when its subscriptions are made again")
	}
	if err := c.Subscribe(late, 1, func(string, []byte) {}); err != nil {
		t.Fatal(err)
	}
	close(open)
	b.awaitSubscribes(t, 1)
	if got := b.requests(); len(got) != 1 || !slices.Equal(got[0], []string{early, late}) {
		t.Fatalf("SUBSCRIBEs %v, want one of %s and %s", got, early, late)
	}
}

// Subscriptions asked for together are made in one SUBSCRIBE, whenever
// they are asked for: before the connection, while it comes up, or once it
// is up. Separate SUBSCRIBEs, the retained messages of one in flight when
// the next arrives, may be refused whole: a server whose subscriptions were
// refused so would not start.
func TestClientSubscribeAllInOneSubscribe(t *testing.T) {
	filters := []string{testPrefix + "/dev/+/ack", testPrefix + "/dev/+/state", testPrefix + "/dev/+/status", testPrefix + "/dev/+/tap"}
	handlers := map[string]func(string, []byte){}
	for _, f := range filters {
		handlers[f] = func(string, []byte) {}
	}
	for _, when := range []string{"before the connection", "while it comes up", "once connected"} {
		t.Run(when, func(t *testing.T) {
			log, _ := testLog(t)
			b := newScriptedBroker(t, 0)
			opening, open := make(chan struct{}), make(chan struct{})
			var once sync.Once
			c, err := Dial(ClientConfig{Broker: "tcp://" + b.addr(), ClientID: uniqueID("srv"), Log: log,
				beforeResubscribe: func() {
					once.Do(func() {
						close(opening)
						<-open
					})
				}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(nil)
			subscribe := func() {
				if err := c.SubscribeAll(1, handlers); err != nil {
					t.Fatal(err)
				}
			}
			switch when {
			case "before the connection":
				subscribe()
				b.letConnect()
				<-opening
				close(open)
			case "while it comes up":
				b.letConnect()
				<-opening
				subscribe()
				close(open)
			case "once connected":
				b.letConnect()
				<-opening
				close(open)
				ctx, cancel := context.WithTimeout(context.Background(), waitLong)
				defer cancel()
				if err := c.WaitConnected(ctx); err != nil {
					t.Fatal(err)
				}
				subscribe()
			}
			b.awaitSubscribes(t, 1)
			if got := b.requests(); len(got) != 1 || !slices.Equal(got[0], filters) {
				t.Fatalf("SUBSCRIBEs %v, want one of %v", got, filters)
			}
		})
	}
}

// Once connected, SubscribeAll asks again for the filters the broker
// refuses (a clash of packet ids passes), and forgets those it refuses
// every time, saying so.
func TestClientSubscribeAllRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		refuse int
	}{
		{"refused once", 1},
		{"refused every time", subscribeTries},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log, _ := testLog(t)
			b := newScriptedBroker(t, tc.refuse)
			b.letConnect()
			c, err := Connect(context.Background(), ClientConfig{Broker: "tcp://" + b.addr(), ClientID: uniqueID("srv"), Log: log})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(nil)
			filters := []string{testPrefix + "/dev/+/ack", testPrefix + "/dev/+/state"}
			handlers := map[string]func(string, []byte){filters[0]: func(string, []byte) {}, filters[1]: func(string, []byte) {}}
			err = c.SubscribeAll(1, handlers)
			b.awaitSubscribes(t, min(tc.refuse+1, subscribeTries))
			if tc.refuse < subscribeTries {
				if err != nil || !slices.Equal(b.grantedFilters(), filters) {
					t.Fatalf("SubscribeAll: %v; granted %v, want %v", err, b.grantedFilters(), filters)
				}
				return
			}
			if !errors.Is(err, ErrSubscriptionRefused) || !strings.Contains(err.Error(), filters[0]) || !strings.Contains(err.Error(), filters[1]) {
				t.Fatalf("SubscribeAll refused every time: %v, want ErrSubscriptionRefused naming %v", err, filters)
			}
			c.mu.Lock()
			left := len(c.subs)
			c.mu.Unlock()
			if left != 0 {
				t.Fatalf("%d refused subscriptions remembered", left)
			}
		})
	}
}

// scriptedBroker is just enough of an MQTT broker for one client: it
// accepts its connection when told to, and refuses its first SUBSCRIBEs.
type scriptedBroker struct {
	ln      net.Listener
	release chan struct{}

	mu         sync.Mutex
	refuse     int
	subscribes int
	asked      [][]string // each SUBSCRIBE's filters, sorted
	granted    []string
	more       chan struct{}
}

func newScriptedBroker(t *testing.T, refuse int) *scriptedBroker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &scriptedBroker{ln: ln, release: make(chan struct{}), refuse: refuse, more: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.serve()
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return b
}

func (b *scriptedBroker) addr() string { return b.ln.Addr().String() }

func (b *scriptedBroker) letConnect() { close(b.release) }

func (b *scriptedBroker) serve() {
	conn, err := b.ln.Accept()
	if err != nil {
		return
	}
	defer conn.Close()
	for {
		cp, err := packets.ReadPacket(conn)
		if err != nil {
			return
		}
		var out packets.ControlPacket
		switch p := cp.(type) {
		case *packets.ConnectPacket:
			<-b.release
			ack := packets.NewControlPacket(packets.Connack).(*packets.ConnackPacket)
			ack.ReturnCode = packets.Accepted
			out = ack
		case *packets.SubscribePacket:
			ack := packets.NewControlPacket(packets.Suback).(*packets.SubackPacket)
			ack.MessageID = p.MessageID
			b.mu.Lock()
			refused := b.subscribes < b.refuse
			b.subscribes++
			asked := slices.Clone(p.Topics)
			sort.Strings(asked)
			b.asked = append(b.asked, asked)
			for i, f := range p.Topics {
				if refused {
					ack.ReturnCodes = append(ack.ReturnCodes, 0x80)
					continue
				}
				ack.ReturnCodes = append(ack.ReturnCodes, p.Qoss[i])
				b.granted = append(b.granted, f)
			}
			b.mu.Unlock()
			out = ack
		case *packets.PingreqPacket:
			out = packets.NewControlPacket(packets.Pingresp)
		case *packets.DisconnectPacket:
			return
		default:
			continue
		}
		if err := out.Write(conn); err != nil {
			return
		}
		select {
		case b.more <- struct{}{}:
		default:
		}
	}
}

// awaitSubscribes waits until the broker has answered n SUBSCRIBEs, and
// checks that no more come for a while.
func (b *scriptedBroker) awaitSubscribes(t *testing.T, n int) {
	t.Helper()
	deadline := time.NewTimer(waitLong)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		got := b.subscribes
		b.mu.Unlock()
		if got >= n {
			break
		}
		select {
		case <-b.more:
		case <-deadline.C:
			t.Fatalf("%d SUBSCRIBEs within %s, want %d", got, waitLong, n)
		}
	}
	// The client asks no more than that.
	quiet := time.NewTimer(200 * time.Millisecond)
	defer quiet.Stop()
	for {
		select {
		case <-b.more:
			b.mu.Lock()
			got := b.subscribes
			b.mu.Unlock()
			if got > n {
				t.Fatalf("%d SUBSCRIBEs, want %d", got, n)
			}
		case <-quiet.C:
			return
		}
	}
}

func (b *scriptedBroker) requests() [][]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.asked)
}

func (b *scriptedBroker) grantedFilters() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := slices.Clone(b.granted)
	sort.Strings(out)
	return out
}
