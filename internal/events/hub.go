// Package events fans live lab events (machine state, sessions, taps) out
// to the subscribers of the Server-Sent Events stream, and decides what a
// maker may see of them (ForMember).
package events

import (
	"sync"
	"sync/atomic"
	"time"
)

// Event is one live event. Type names the SSE event ("session", "tap",
// "device", "ack", "alert", and "machine" as ForMember makes it); Data is
// marshalled as JSON.
type Event struct {
	Type string    `json:"type"`
	At   time.Time `json:"at"`
	Data any       `json:"data"`
}

// Hub delivers published events to every subscriber. A subscriber that
// does not keep up loses events rather than slowing the lab down.
type Hub struct {
	mu      sync.Mutex
	subs    map[chan Event]struct{}
	dropped atomic.Int64
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{subs: map[chan Event]struct{}{}} }

// Subscribe returns a channel of events and a function that ends the
// subscription (and closes the channel).
func (h *Hub) Subscribe(buffer int) (<-chan Event, func()) {
	ch := make(chan Event, buffer)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			h.mu.Lock()
			delete(h.subs, ch)
			h.mu.Unlock()
			close(ch)
		})
	}
}

// Publish sends e to every subscriber without waiting.
func (h *Hub) Publish(e Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- e:
		default:
			h.dropped.Add(1)
		}
	}
}

// Dropped returns how many deliveries were dropped for slow subscribers.
func (h *Hub) Dropped() int64 { return h.dropped.Load() }
