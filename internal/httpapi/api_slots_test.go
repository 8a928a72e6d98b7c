package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/booking"
	"github.com/fabgate/fabgate/internal/fablab"
)

// TestAPISlots searches free slots over HTTP: across the machines of a kind,
// in start order, around bookings, with the caller's missing trainings
// flagged; and refuses bad input with 400.
func TestAPISlots(t *testing.T) {
	h := newAPIHarness(t)
	ctx := context.Background()
	// A second laser cutter without training, and one in maintenance.
	laser2 := apiSeedMachine(t, h.store, fablab.Machine{Name: "Laser 2", Kind: fablab.KindLaserCutter})
	apiSeedMachine(t, h.store, fablab.Machine{Name: "Old laser", Kind: fablab.KindLaserCutter, State: fablab.MachineMaintenance})
	// Monday (the clock reads 08:00): the first laser is booked 09:00–12:00,
	// the second 09:00–10:00 and 11:00–20:00.
	h.seedBooking(t, h.laser.ID, h.bob, apiAt(0, 9, 0), apiAt(0, 12, 0))
	h.seedBooking(t, laser2.ID, h.bob, apiAt(0, 9, 0), apiAt(0, 10, 0))
	h.seedBooking(t, laser2.ID, h.bob, apiAt(0, 11, 0), apiAt(0, 20, 0))

	get := func(a *apiAccount, q url.Values) apiResp {
		t.Helper()
		return h.do(t, "GET", "/api/v1/slots?"+q.Encode(), a.Token, nil)
	}
	slots := func(a *apiAccount, q url.Values) []booking.Slot {
		t.Helper()
		r := get(a, q)
		r.want(t, http.StatusOK, "")
		var out []booking.Slot
		r.decode(t, &out)
		return out
	}
	type want struct {
		machine    fablab.Machine
		start, end time.Time
		training   bool
	}
	check := func(what string, got []booking.Slot, ws ...want) {
		t.Helper()
		if len(got) != len(ws) {
			t.Fatalf("%s: %d slots %+v, want %d", what, len(got), got, len(ws))
		}
		for i, w := range ws {
			g := got[i]
			if g.MachineID != w.machine.ID || g.MachineName != w.machine.Name || !g.Start.Equal(w.start) || !g.End.Equal(w.end) {
				t.Errorf("%s: slot %d is %s %s–%s, want %s %s–%s", what, i, g.MachineName, g.Start, g.End, w.machine.Name, w.start, w.end)
			}
			if _, off := g.Start.Zone(); off != 3600 {
				t.Errorf("%s: slot %d starts %s, not in lab time", what, i, g.Start)
			}
			if flagged := len(g.TrainingRequired) == 1 && g.TrainingRequired[0] == h.training.ID; flagged != w.training || !w.training && len(g.TrainingRequired) != 0 {
				t.Errorf("%s: slot %d training_required %v, want flagged=%v", what, i, g.TrainingRequired, w.training)
			}
		}
	}
	twoHours := url.Values{"kind": {fablab.KindLaserCutter}, "minutes": {"120"}, "limit": {"4"}}

	// Two hours: laser 2 has 20:00–21:00 only (too short) on Monday.
	check("alice, two hours", slots(h.alice, twoHours),
		want{h.laser, apiAt(0, 12, 0), apiAt(0, 21, 0), false},
		want{h.laser, apiAt(1, 9, 0), apiAt(1, 21, 0), false},
		want{laser2, apiAt(1, 9, 0), apiAt(1, 21, 0), false},
		want{h.laser, apiAt(2, 9, 0), apiAt(2, 21, 0), false})

	// One hour fits laser 2's morning gap, which comes first.
	hour := url.Values{"kind": {fablab.KindLaserCutter}, "minutes": {"60"}, "limit": {"2"}}
	check("alice, one hour", slots(h.alice, hour),
		want{laser2, apiAt(0, 10, 0), apiAt(0, 11, 0), false},
		want{h.laser, apiAt(0, 12, 0), apiAt(0, 21, 0), false})

	// Bob lacks the laser training: listed, flagged; or left out.
	check("bob, one hour", slots(h.bob, hour),
		want{laser2, apiAt(0, 10, 0), apiAt(0, 11, 0), false},
		want{h.laser, apiAt(0, 12, 0), apiAt(0, 21, 0), true})
	qualified := url.Values{"kind": {fablab.KindLaserCutter}, "minutes": {"60"}, "limit": {"2"}, "qualified": {"true"}}
	check("bob, qualified only", slots(h.bob, qualified),
		want{laser2, apiAt(0, 10, 0), apiAt(0, 11, 0), false},
		want{laser2, apiAt(0, 20, 0), apiAt(0, 21, 0), false})

	// One machine, a range given: Tuesday afternoon.
	one := url.Values{"machine_id": {h.laser.ID.String()}, "minutes": {"90"},
		"from": {apiAt(1, 14, 0).Format(time.RFC3339)}, "to": {apiAt(2, 0, 0).Format(time.RFC3339)}}
	check("one machine", slots(h.alice, one), want{h.laser, apiAt(1, 14, 0), apiAt(1, 21, 0), false})

	// A booking made where the search said is accepted.
	if r := h.book(t, h.alice, laser2.ID, apiAt(0, 10, 0), apiAt(0, 11, 0)); r.status != http.StatusCreated {
		t.Fatalf("booking the slot found: %d %s", r.status, r.body)
	}
	check("after booking it", slots(h.alice, hour),
		want{h.laser, apiAt(0, 12, 0), apiAt(0, 21, 0), false},
		want{laser2, apiAt(0, 20, 0), apiAt(0, 21, 0), false})

	// Staff see past how far ahead makers may book (28 days).
	far := url.Values{"machine_id": {h.printer.ID.String()}, "minutes": {"60"}, "limit": {"1"},
		"from": {apiAt(30, 0, 0).Format(time.RFC3339)}}
	if got := slots(h.alice, far); len(got) != 0 {
		t.Errorf("a maker 30 days ahead: %+v", got)
	}
	if got := slots(h.staff, far); len(got) != 1 || !got[0].Start.Equal(apiAt(30, 9, 0)) {
		t.Errorf("staff 30 days ahead (a Wednesday): %+v", got)
	}

	// The weekly quota (the CNC's is 120 minutes): alice has used this
	// week's, bob has not.
	h.seedBooking(t, h.cnc.ID, h.alice, apiAt(1, 10, 0), apiAt(1, 12, 0))
	cncHour := url.Values{"kind": {fablab.KindCNC}, "minutes": {"60"}, "limit": {"1"}, "to": {apiAt(10, 0, 0).Format(time.RFC3339)}}
	check("alice, quota used", slots(h.alice, cncHour), want{h.cnc, apiAt(7, 9, 0), apiAt(7, 21, 0), false})
	check("bob, quota free", slots(h.bob, cncHour), want{h.cnc, apiAt(0, 9, 0), apiAt(0, 21, 0), false})

	// An unknown kind is no machine.
	if got := slots(h.alice, url.Values{"kind": {"loom"}, "minutes": {"60"}}); len(got) != 0 {
		t.Errorf("unknown kind: %+v", got)
	}

	// Bad input.
	from := apiAt(1, 0, 0).Format(time.RFC3339)
	for _, tc := range []struct {
		name   string
		q      url.Values
		status int
		code   string
	}{
		{"no minutes", url.Values{"kind": {"cnc"}}, 400, fablab.EINVALID},
		{"zero minutes", url.Values{"kind": {"cnc"}, "minutes": {"0"}}, 400, fablab.EINVALID},
		{"negative minutes", url.Values{"kind": {"cnc"}, "minutes": {"-30"}}, 400, fablab.EINVALID},
		{"minutes beyond any booking", url.Values{"kind": {"cnc"}, "minutes": {"10081"}}, 400, fablab.EINVALID},
		{"minutes not a number", url.Values{"kind": {"cnc"}, "minutes": {"2h"}}, 400, fablab.EINVALID},
		{"neither kind nor machine", url.Values{"minutes": {"60"}}, 400, fablab.EINVALID},
		{"both kind and machine", url.Values{"kind": {"cnc"}, "machine_id": {h.cnc.ID.String()}, "minutes": {"60"}}, 400, fablab.EINVALID},
		{"bad machine id", url.Values{"machine_id": {"x"}, "minutes": {"60"}}, 400, fablab.EINVALID},
		{"unknown machine", url.Values{"machine_id": {"999999"}, "minutes": {"60"}}, 404, fablab.ENOTFOUND},
		{"bad from", url.Values{"kind": {"cnc"}, "minutes": {"60"}, "from": {"tomorrow"}}, 400, fablab.EINVALID},
		{"to before from", url.Values{"kind": {"cnc"}, "minutes": {"60"}, "from": {from}, "to": {apiAt(0, 0, 0).Format(time.RFC3339)}}, 400, fablab.EINVALID},
		{"more than 31 days", url.Values{"kind": {"cnc"}, "minutes": {"60"}, "from": {from}, "to": {apiAt(33, 0, 0).Format(time.RFC3339)}}, 400, fablab.EINVALID},
		{"limit too large", url.Values{"kind": {"cnc"}, "minutes": {"60"}, "limit": {"51"}}, 400, fablab.EINVALID},
		{"qualified not a boolean", url.Values{"kind": {"cnc"}, "minutes": {"60"}, "qualified": {"yes"}}, 400, fablab.EINVALID},
		{"one machine: too long for its rules", url.Values{"machine_id": {h.printer.ID.String()}, "minutes": {"300"}}, 422, fablab.CodeTooLong},
		{"one machine: off its slot grid", url.Values{"machine_id": {h.printer.ID.String()}, "minutes": {"45"}}, 422, fablab.CodeSlotGranularity},
	} {
		t.Run(tc.name, func(t *testing.T) {
			get(h.alice, tc.q).want(t, tc.status, tc.code)
		})
	}
	// One machine in maintenance says so.
	cnc, err := h.store.UpdateMachine(ctx, h.cnc.ID, func(m *fablab.Machine) error { m.State = fablab.MachineMaintenance; return nil })
	if err != nil {
		t.Fatal(err)
	}
	get(h.alice, url.Values{"machine_id": {cnc.ID.String()}, "minutes": {"60"}}).want(t, http.StatusUnprocessableEntity, fablab.CodeMachineUnavailable)
	h.do(t, "GET", "/api/v1/slots?kind=cnc&minutes=60", "", nil).want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)
}
