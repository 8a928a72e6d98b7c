package events

import "testing"

func TestHubDeliversAndDropsForSlowSubscribers(t *testing.T) {
	h := NewHub()
	fast, endFast := h.Subscribe(4)
	slow, endSlow := h.Subscribe(1)
	for i := 0; i < 3; i++ {
		h.Publish(Event{Type: "tap", Data: i})
	}
	for i := 0; i < 3; i++ {
		if e := <-fast; e.Data != i {
			t.Fatalf("fast subscriber got %v, want %d", e.Data, i)
		}
	}
	if e := <-slow; e.Data != 0 {
		t.Fatalf("slow subscriber got %v first", e.Data)
	}
	if got := h.Dropped(); got != 2 {
		t.Fatalf("dropped %d, want 2", got)
	}
	endFast()
	endFast() // twice is harmless
	if _, ok := <-fast; ok {
		t.Fatal("channel still open after the subscription ended")
	}
	h.Publish(Event{Type: "tap"}) // no panic on a closed subscription
	endSlow()
}
