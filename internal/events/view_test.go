package events

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/fablab"
)

func TestForMember(t *testing.T) {
	at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	until := at.Add(2 * time.Hour)
	open := fablab.Session{ID: 5, MachineID: 1, MemberID: 42, DeviceID: "laser-1", Started: at, Until: until, TapMsgID: "m1"}
	ended := open
	ended.Ended, ended.EndReason = &until, fablab.EndStaff
	tests := []struct {
		name string
		in   Event
		want string // the JSON of what the maker (member 7) sees; "" = nothing
	}{
		{"another member's open session", Event{Type: "session", At: at, Data: open},
			`{"type":"machine","at":"2026-03-02T09:00:00Z","data":{"machine_id":"1","in_use":true,"until":"2026-03-02T11:00:00Z"}}`},
		{"another member's session by pointer, ended", Event{Type: "session", At: at, Data: &ended},
			`{"type":"machine","at":"2026-03-02T09:00:00Z","data":{"machine_id":"1","in_use":false}}`},
		{"device online", Event{Type: "device", At: at, Data: map[string]any{"device_id": "laser-1", "online": true}},
			`{"type":"device","at":"2026-03-02T09:00:00Z","data":{"device_id":"laser-1","online":true}}`},
		{"device relay, without its session", Event{Type: "device", At: at, Data: map[string]any{"device_id": "laser-1", "relay": "on", "session_id": "5", "member_id": "42"}},
			`{"type":"device","at":"2026-03-02T09:00:00Z","data":{"device_id":"laser-1","relay":"on"}}`},
		{"a tap", Event{Type: "tap", At: at, Data: fablab.AuditEvent{Kind: fablab.AuditTap, MemberID: 42}}, ""},
		{"an ack", Event{Type: "ack", At: at, Data: fablab.AuditEvent{Kind: fablab.AuditAck}}, ""},
		{"an alert", Event{Type: "alert", At: at, Data: map[string]any{"session_id": "5", "reason": "relay_unconfirmed"}}, ""},
		{"an event type nobody decided on", Event{Type: "billing", At: at, Data: map[string]any{"member_id": "42"}}, ""},
		{"a session of an unknown shape", Event{Type: "session", At: at, Data: map[string]any{"member_id": "42"}}, ""},
		{"a device event of an unknown shape", Event{Type: "device", At: at, Data: "laser-1"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ForMember(tt.in, 7)
			if !ok {
				if tt.want != "" {
					t.Fatalf("withheld, want %s", tt.want)
				}
				return
			}
			b, err := json.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("got  %s\nwant %s", b, tt.want)
			}
		})
	}
	// Their own session comes as published.
	got, ok := ForMember(Event{Type: "session", At: at, Data: open}, 42)
	if b, _ := json.Marshal(got); !ok || got.Type != "session" || !strings.Contains(string(b), `"member_id":"42"`) {
		t.Errorf("own session: %v %s", ok, b)
	}
}
