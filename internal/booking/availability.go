package booking

import (
	"time"

	"github.com/fabgate/fabgate/internal/fablab"
)

// Availability returns, within [from,to), the free and busy time of machine m.
//
// busy is the occupied booking intervals (the caller passes those of confirmed
// and completed bookings) plus m.Maintenance blocks, clipped to [from,to),
// sorted, with overlapping or touching intervals merged; empty or inverted
// intervals are ignored. free is OpenIntervals minus busy, and is empty when
// m.State is not fablab.MachineAvailable. Free intervals shorter than
// m.Rules.MinMinutes are still returned: the UI shows them greyed out.
//
// Both slices are sorted, never nil (so they encode as [] in JSON) and their
// instants are in the lab's location.
func Availability(s *fablab.Settings, m *fablab.Machine, occupied []fablab.Interval, from, to time.Time) (free, busy []fablab.Interval) {
	loc := s.Location()
	busy = make([]fablab.Interval, 0, len(occupied)+len(m.Maintenance))
	for _, iv := range occupied {
		if iv, ok := clip(iv, from, to); ok {
			busy = append(busy, iv)
		}
	}
	for _, b := range m.Maintenance {
		if iv, ok := clip(fablab.Interval{Start: b.Start, End: b.End}, from, to); ok {
			busy = append(busy, iv)
		}
	}
	busy = inLocation(merge(busy), loc)
	if m.State != fablab.MachineAvailable {
		return []fablab.Interval{}, busy
	}
	return inLocation(subtract(OpenIntervals(s, from, to), busy), loc), busy
}
