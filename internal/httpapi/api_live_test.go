package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/devicesim"
	"github.com/fabgate/fabgate/internal/fablab"
)

// apiLiveWait bounds every wait on real I/O (broker, event stream) in these
// tests: generous, as other test processes share the machine.
const apiLiveWait = 30 * time.Second

// startDevice connects a simulated device with its secret to the harness's
// embedded broker and waits until the server knows it is online.
func (h *apiHarness) startDevice(t *testing.T, d apiDevice) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), apiLiveWait)
	defer cancel()
	dev, err := devicesim.Start(ctx, devicesim.Config{Broker: "tcp://" + h.lab.Broker.Addr(), ID: d.ID, Secret: d.MQTTSecret, Now: h.clock.Now})
	if err != nil {
		t.Fatalf("start device %s: %v", d.ID, err)
	}
	t.Cleanup(dev.Close)
	deadline := time.Now().Add(apiLiveWait)
	for !h.lab.Engine.DeviceStates()[d.ID].Online {
		if time.Now().After(deadline) {
			t.Fatalf("device %s never came online", d.ID)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, not a timed assertion
	}
}

// apiLiveEvent is one event read from GET /events.
type apiLiveEvent struct {
	name, data string
}

// apiStream is an open GET /events stream.
type apiStream struct {
	t    *testing.T
	r    *bufio.Reader
	seen []apiLiveEvent
}

// openStream opens GET /events as a and reads its opening comment, so that
// the subscription is in place when it returns.
func (h *apiHarness) openStream(t *testing.T, a *apiAccount) *apiStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), apiLiveWait)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", h.srv.URL+"/api/v1/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+a.Token)
	res, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /events as %s: %d %q", a.Email, res.StatusCode, res.Header.Get("Content-Type"))
	}
	s := &apiStream{t: t, r: bufio.NewReader(res.Body)}
	if ev := s.next(); ev.name != "" {
		t.Fatalf("the stream opens with event %+v, want a comment", ev)
	}
	return s
}

// next reads the next block: an event, or a comment (empty name).
func (s *apiStream) next() apiLiveEvent {
	s.t.Helper()
	var ev apiLiveEvent
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			s.t.Fatalf("read the event stream (events so far: %+v): %v", s.seen, err)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if ev.name != "" {
				s.seen = append(s.seen, ev)
			}
			return ev
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.data += strings.TrimPrefix(line, "data: ")
		}
	}
}

// until reads events until one satisfies ok, and returns its data.
func (s *apiStream) until(what string, ok func(name string, data map[string]any) bool) map[string]any {
	s.t.Helper()
	for {
		ev := s.next()
		if ev.name == "" {
			continue
		}
		var e struct {
			Type string         `json:"type"`
			Data map[string]any `json:"data"`
		}
		if err := json.Unmarshal([]byte(ev.data), &e); err != nil {
			s.t.Fatalf("event %s data %q: %v", ev.name, ev.data, err)
		}
		if e.Type != ev.name {
			s.t.Errorf("event %s carries type %q", ev.name, e.Type)
		}
		if ok(ev.name, e.Data) {
			return e.Data
		}
	}
}

// TestAPIEventsForMakers watches one session open and end through three
// streams: staff see it all (who, the tap); the maker whose session it is
// sees their session; another maker sees the machine go in use and free,
// and device state, but never who, a tap, an ack or an alert.
func TestAPIEventsForMakers(t *testing.T) {
	h := newAPIAccessHarness(t, true)
	laser1 := h.registerDevice(t, "laser-1", h.laser.ID)
	h.enrol(t, h.alice, apiAliceUID)

	staff, alice, bob := h.openStream(t, h.staff), h.openStream(t, h.alice), h.openStream(t, h.bob)
	h.startDevice(t, laser1)
	bob.until("laser-1 online", func(name string, d map[string]any) bool {
		return name == "device" && d["device_id"] == "laser-1" && d["online"] == true
	})

	got := h.tap(t, "laser-1", apiAliceUID)
	if got.Decision != "grant" {
		t.Fatalf("tap: %+v", got)
	}
	aliceID, laserID := h.alice.ID.String(), h.laser.ID.String()
	staff.until("alice's session, with her id", func(name string, d map[string]any) bool {
		return name == "session" && d["member_id"] == aliceID && d["machine_id"] == laserID && d["ended"] == nil
	})
	staff.until("the granted tap", func(name string, d map[string]any) bool { return name == "tap" })
	alice.until("her own session in full", func(name string, d map[string]any) bool {
		return name == "session" && d["member_id"] == aliceID && d["machine_id"] == laserID
	})
	inUse := bob.until("the laser in use", func(name string, d map[string]any) bool {
		return name == "machine" && d["machine_id"] == laserID && d["in_use"] == true
	})
	if inUse["until"] == nil {
		t.Errorf("the machine event does not say until when: %v", inUse)
	}
	bob.until("the relay on", func(name string, d map[string]any) bool {
		return name == "device" && d["device_id"] == "laser-1" && d["relay"] == "on"
	})

	var sessions []fablab.Session
	h.do(t, "GET", "/api/v1/sessions?active=true", h.staff.Token, nil).decode(t, &sessions)
	if len(sessions) != 1 {
		t.Fatalf("open sessions: %+v", sessions)
	}
	h.do(t, "POST", "/api/v1/sessions/"+sessions[0].ID.String()+"/end", h.staff.Token, nil).want(t, http.StatusOK, "")
	bob.until("the laser free again", func(name string, d map[string]any) bool {
		return name == "machine" && d["machine_id"] == laserID && d["in_use"] == false
	})
	staff.until("the session ended, by staff", func(name string, d map[string]any) bool {
		return name == "session" && d["member_id"] == aliceID && d["end_reason"] == fablab.EndStaff
	})

	kinds := map[string]int{}
	for _, ev := range bob.seen {
		kinds[ev.name]++
		switch ev.name {
		case "machine", "device":
		default:
			t.Errorf("bob received a %s event: %s", ev.name, ev.data)
		}
		for _, leak := range []string{"member", "session", `"` + aliceID + `"`, h.alice.Name, h.alice.Email, "badge", "reason", "cmd_id"} {
			if strings.Contains(ev.data, leak) {
				t.Errorf("bob's %s event shows %q: %s", ev.name, leak, ev.data)
			}
		}
	}
	if kinds["machine"] < 2 || kinds["device"] < 2 {
		t.Errorf("bob's events by kind: %v", kinds)
	}
}

// TestAPIMachineStatus reads GET /machines/status through a machine's
// states: available, offline, maintenance (state or block), retired, in use,
// with who uses it shown to staff and to the user only.
func TestAPIMachineStatus(t *testing.T) {
	h := newAPIAccessHarness(t, true)
	ctx := context.Background()
	laser1 := h.registerDevice(t, "laser-1", h.laser.ID)
	h.registerDevice(t, "lathe-1", 0)
	lathe := apiSeedMachine(t, h.store, fablab.Machine{Name: "Lathe", Kind: "lathe", DeviceID: "lathe-1"})
	now := h.clock.Now()
	saw := apiSeedMachine(t, h.store, fablab.Machine{Name: "Saw", Kind: "saw", Maintenance: []fablab.MaintenanceBlock{
		{Start: now.Add(-time.Hour), End: now.Add(time.Hour), Reason: "blade"},
		{Start: now.Add(2 * time.Hour), End: now.Add(3 * time.Hour)},
	}})
	later := apiSeedMachine(t, h.store, fablab.Machine{Name: "Drill", Kind: "drill", Maintenance: []fablab.MaintenanceBlock{{Start: now.Add(time.Hour), End: now.Add(2 * time.Hour)}}})
	old := apiSeedMachine(t, h.store, fablab.Machine{Name: "Old", Kind: "saw", State: fablab.MachineRetired})
	if _, err := h.store.UpdateMachine(ctx, h.cnc.ID, func(m *fablab.Machine) error { m.State = fablab.MachineMaintenance; return nil }); err != nil {
		t.Fatal(err)
	}
	h.enrol(t, h.alice, apiAliceUID)

	status := func(a *apiAccount) map[fablab.ID]machineStatus {
		t.Helper()
		r := h.do(t, "GET", "/api/v1/machines/status", a.Token, nil)
		r.want(t, http.StatusOK, "")
		var list []machineStatus
		r.decode(t, &list)
		out := map[fablab.ID]machineStatus{}
		for i, st := range list {
			if i > 0 && list[i-1].MachineID >= st.MachineID {
				t.Errorf("machines not by id: %+v", list)
			}
			out[st.MachineID] = st
		}
		return out
	}
	want := func(what string, got map[fablab.ID]machineStatus, m fablab.ID, status string, online bool) machineStatus {
		t.Helper()
		st, ok := got[m]
		if !ok {
			t.Fatalf("%s: machine %s missing", what, m)
		}
		if st.Status != status || st.DeviceOnline != online {
			t.Errorf("%s: machine %s (%s) is %s online=%v, want %s online=%v", what, m, st.MachineName, st.Status, st.DeviceOnline, status, online)
		}
		return st
	}

	before := status(h.bob)
	if len(before) != 7 {
		t.Errorf("%d machines, want 7", len(before))
	}
	want("before", before, h.laser.ID, statusOffline, false)
	want("before", before, lathe.ID, statusOffline, false)
	want("before", before, h.printer.ID, statusAvailable, false) // no device: nothing is offline
	want("before", before, h.cnc.ID, statusMaintenance, false)
	if st := want("before", before, saw.ID, statusMaintenance, false); st.MaintenanceUntil == nil || !st.MaintenanceUntil.Equal(now.Add(time.Hour)) {
		t.Errorf("saw maintenance until %v, want %v", st.MaintenanceUntil, now.Add(time.Hour))
	}
	want("before", before, later.ID, statusAvailable, false)
	want("before", before, old.ID, statusRetired, false)

	h.startDevice(t, laser1)
	want("device online", status(h.bob), h.laser.ID, statusAvailable, true)

	if got := h.tap(t, "laser-1", apiAliceUID); got.Decision != "grant" {
		t.Fatalf("tap: %+v", got)
	}
	var sess fablab.Session
	var open []fablab.Session
	h.do(t, "GET", "/api/v1/sessions?active=true", h.staff.Token, nil).decode(t, &open)
	if len(open) != 1 {
		t.Fatalf("open sessions: %+v", open)
	}
	sess = open[0]
	for _, tc := range []struct {
		who  *apiAccount
		sees bool
	}{{h.bob, false}, {h.alice, true}, {h.staff, true}, {h.admin, true}} {
		st := want(tc.who.Email, status(tc.who), h.laser.ID, statusInUse, true)
		if st.InUseSince == nil || !st.InUseSince.Equal(sess.Started) || st.InUseUntil == nil || !st.InUseUntil.Equal(sess.Until) {
			t.Errorf("%s: in use %v–%v, want %v–%v", tc.who.Email, st.InUseSince, st.InUseUntil, sess.Started, sess.Until)
		}
		if shown := st.MemberID == h.alice.ID && st.SessionID == sess.ID; shown != tc.sees || !tc.sees && (st.MemberID != 0 || st.SessionID != 0) {
			t.Errorf("%s sees member %s session %s; want shown=%v", tc.who.Email, st.MemberID, st.SessionID, tc.sees)
		}
	}
	// The raw document a maker reads names nobody.
	if body := string(h.do(t, "GET", "/api/v1/machines/status", h.bob.Token, nil).body); strings.Contains(body, "member_id") || strings.Contains(body, "session_id") {
		t.Errorf("a maker's status shows who: %s", body)
	}
	h.do(t, "GET", "/api/v1/machines/status", "", nil).want(t, http.StatusUnauthorized, fablab.EUNAUTHORIZED)
}
