package events

import (
	"time"

	"github.com/fabgate/fabgate/internal/fablab"
)

// TypeMachine is the event a maker receives instead of another member's
// session: the machine went in use or was freed, without who.
const TypeMachine = "machine"

// MachineChange is the data of a TypeMachine event.
type MachineChange struct {
	MachineID fablab.ID  `json:"machine_id"`
	InUse     bool       `json:"in_use"`
	Until     *time.Time `json:"until,omitempty"` // when power goes off, while in use
}

// deviceKeys are the fields of a "device" event a maker may see: the
// device's state, not the session it runs (whose id leads to a member).
var deviceKeys = []string{"device_id", "online", "relay"}

// ForMember returns what member, a maker, may see of e, and whether they
// see it at all (staff see every event as published). Nothing that names a
// member reaches another member: their own session events come in full;
// another member's session becomes a TypeMachine event (machine, in use or
// not); device events keep the device's id, online and relay state only;
// taps, acks and alerts (which carry members, badges and reasons that
// reveal who) are withheld, as is any event this function does not know:
// what a maker sees is decided here, never by default.
func ForMember(e Event, member fablab.ID) (Event, bool) {
	switch e.Type {
	case "session":
		var s *fablab.Session
		switch d := e.Data.(type) {
		case fablab.Session:
			s = &d
		case *fablab.Session:
			s = d
		}
		if s == nil {
			return Event{}, false
		}
		if s.MemberID == member {
			return e, true
		}
		mc := MachineChange{MachineID: s.MachineID, InUse: s.Open()}
		if mc.InUse {
			until := s.Until
			mc.Until = &until
		}
		return Event{Type: TypeMachine, At: e.At, Data: mc}, true
	case "device":
		d, ok := e.Data.(map[string]any)
		if !ok {
			return Event{}, false
		}
		out := make(map[string]any, len(deviceKeys))
		for _, k := range deviceKeys {
			if v, ok := d[k]; ok {
				out[k] = v
			}
		}
		return Event{Type: e.Type, At: e.At, Data: out}, true
	}
	return Event{}, false
}
