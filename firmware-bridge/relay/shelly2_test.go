package relay

import (
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/mqtt"
)

// fakeShellyGen2 is a Shelly Plus 1PM as its RPC-over-MQTT documentation
// describes it: requests on <prefix>/rpc, replies on <src>/rpc with the
// request's id and dst = its src, NotifyStatus with the changed fields only
// on <prefix>/events/rpc, and <prefix>/online as LWT.
type fakeShellyGen2 struct {
	fakeDevice
	prefix   string
	id       string // the device id: the src of its frames
	requests chan fakeRPCRequest

	mu          sync.Mutex
	output      bool
	apower      float64
	mute        bool // takes requests but does nothing, like a hung device
	straysOnly  bool // answers with stray replies only
	failSet     *ShellyRPCError
	beforeReply func(req fakeRPCRequest) // publishes stray frames before the real reply
}

// fakeRPCRequest is a request as the fake device received it.
type fakeRPCRequest struct {
	ID     json.RawMessage `json:"id"`
	Src    string          `json:"src"`
	Method string          `json:"method"`
	Params struct {
		ID          *int     `json:"id"`
		On          *bool    `json:"on"`
		ToggleAfter *float64 `json:"toggle_after"`
	} `json:"params"`
}

func newFakeShellyGen2(t *testing.T, b Broker, prefix string) *fakeShellyGen2 {
	t.Helper()
	f := &fakeShellyGen2{prefix: prefix, id: prefix, requests: make(chan fakeRPCRequest, 64)}
	f.fakeDevice = dialFake(t, b, prefix, &mqtt.Message{Topic: prefix + "/online", Payload: []byte("false"), QoS: 1, Retained: true})
	f.subscribe(prefix+"/rpc", f.onRequest)
	f.publish(prefix+"/online", "true", true)
	return f
}

func (f *fakeShellyGen2) set(fn func(f *fakeShellyGen2)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeShellyGen2) onRequest(_ string, payload []byte) {
	var req fakeRPCRequest
	if err := json.Unmarshal(payload, &req); err != nil {
		f.t.Errorf("fake shelly gen2: bad request %s: %v", payload, err)
		return
	}
	select {
	case f.requests <- req:
	default:
		f.t.Errorf("fake shelly gen2: too many requests")
	}
	f.mu.Lock()
	mute, strays, failSet, before := f.mute, f.straysOnly, f.failSet, f.beforeReply
	f.mu.Unlock()
	if mute {
		return
	}
	if strays {
		f.strayReplies(req)
		return
	}
	if before != nil {
		before(req)
	}
	switch req.Method {
	case "Switch.Set":
		if failSet != nil {
			f.reply(req, nil, failSet)
			return
		}
		if req.Params.ID == nil || *req.Params.ID != 0 || req.Params.On == nil {
			f.reply(req, nil, &ShellyRPCError{Code: -103, Message: "Invalid argument"})
			return
		}
		f.mu.Lock()
		wasOn := f.output
		f.output = *req.Params.On
		f.mu.Unlock()
		if wasOn != *req.Params.On {
			f.notifyStatus(map[string]any{"id": 0, "output": *req.Params.On, "source": "MQTT"})
		}
		f.reply(req, map[string]any{"was_on": wasOn}, nil)
	case "Switch.GetStatus":
		f.reply(req, f.status(), nil)
	default:
		f.reply(req, nil, &ShellyRPCError{Code: 404, Message: "No handler for " + req.Method})
	}
}

func (f *fakeShellyGen2) status() map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return map[string]any{"id": 0, "source": "init", "output": f.output, "apower": f.apower,
		"voltage": 230.9, "current": 0.0, "temperature": map[string]any{"tC": 41.2, "tF": 106.2}}
}

// reply answers req the way the device does: to <src>/rpc, with the
// request's id, its own id as src and the request's src as dst.
func (f *fakeShellyGen2) reply(req fakeRPCRequest, result any, rpcErr *ShellyRPCError) {
	f.replyAs(req, req.ID, f.id, req.Src, result, rpcErr)
}

func (f *fakeShellyGen2) replyAs(req fakeRPCRequest, id json.RawMessage, src, dst string, result any, rpcErr *ShellyRPCError) {
	frame := map[string]any{"id": id, "src": src, "dst": dst}
	if rpcErr != nil {
		frame["error"] = map[string]any{"code": rpcErr.Code, "message": rpcErr.Message}
	} else {
		frame["result"] = result
	}
	b, err := json.Marshal(frame)
	if err != nil {
		f.t.Errorf("fake shelly gen2: %v", err)
		return
	}
	f.publish(req.Src+"/rpc", string(b), false)
}

func (f *fakeShellyGen2) notify(method string, params map[string]any) {
	params["ts"] = 1700000000.25
	b, err := json.Marshal(map[string]any{"src": f.id, "dst": f.prefix + "/events", "method": method, "params": params})
	if err != nil {
		f.t.Errorf("fake shelly gen2: %v", err)
		return
	}
	f.publish(f.prefix+"/events/rpc", string(b), false)
}

// notifyStatus sends a NotifyStatus with the switch fields that changed.
func (f *fakeShellyGen2) notifyStatus(changed map[string]any) {
	f.notify("NotifyStatus", map[string]any{"switch:0": changed})
}

// press is someone pressing the device's button.
func (f *fakeShellyGen2) press() {
	f.mu.Lock()
	f.output = !f.output
	on := f.output
	f.mu.Unlock()
	f.notifyStatus(map[string]any{"id": 0, "output": on, "source": "button"})
}

// power sends a power reading: a NotifyStatus with apower alone.
func (f *fakeShellyGen2) power(w float64) {
	f.mu.Lock()
	f.apower = w
	f.mu.Unlock()
	f.notifyStatus(map[string]any{"id": 0, "apower": w})
}

// strayReplies answers req with errors that are not the answer: another
// id, a string id, another dst, another device's src.
func (f *fakeShellyGen2) strayReplies(req fakeRPCRequest) {
	fail := &ShellyRPCError{Code: -108, Message: "stray"}
	f.replyAs(req, json.RawMessage(`1000000`), f.id, req.Src, nil, fail)
	f.replyAs(req, json.RawMessage(`"`+string(req.ID)+`"`), f.id, req.Src, nil, fail)
	f.replyAs(req, req.ID, f.id, "someone-else", nil, fail)
	f.replyAs(req, req.ID, "shellyplus1pm-000000000000", req.Src, nil, fail)
}

// waitRequest returns the next request for method, skipping others.
func (f *fakeShellyGen2) waitRequest(t *testing.T, method string) fakeRPCRequest {
	t.Helper()
	timer := time.NewTimer(waitLong)
	defer timer.Stop()
	for {
		select {
		case req := <-f.requests:
			if req.Method == method {
				return req
			}
		case <-timer.C:
			t.Fatalf("no %s request within %s", method, waitLong)
		}
	}
}

func newTestShellyGen2(t *testing.T, b Broker, prefix, deviceID string, timeout time.Duration) *ShellyGen2 {
	t.Helper()
	r, err := NewShellyGen2(testCtx(t), ShellyGen2Config{Broker: b, Prefix: prefix, DeviceID: deviceID, ConfirmTimeout: timeout, Log: testLog(t)})
	if err != nil {
		t.Fatalf("NewShellyGen2: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func (s *ShellyGen2) knownStatus() shellySwitchStatus {
	s.smu.Lock()
	defer s.smu.Unlock()
	return s.status
}

func TestShellyGen2(t *testing.T) {
	b := startMosquitto(t)
	dev := newFakeShellyGen2(t, b, "shellyplus1pm-a8032ab636ec")
	dev.set(func(f *fakeShellyGen2) { f.output = true }) // on from before the bridge started
	r := newTestShellyGen2(t, b, dev.prefix, dev.id, 0)

	// At start: switch off, and read the full status (in either order:
	// the retained LWT may ask for the status first).
	var set *fakeRPCRequest
	for seen := map[string]bool{}; len(seen) < 2; {
		req := recv(t, dev.requests, "the requests at start")
		seen[req.Method] = true
		if req.Method == "Switch.Set" && set == nil {
			set = &req
		}
	}
	if set.Params.On == nil || *set.Params.On || set.Params.ToggleAfter != nil {
		t.Fatalf("the start request: on=%v toggle_after=%v, want off without a timer", set.Params.On, set.Params.ToggleAfter)
	}
	waitEvent(t, r.Events(), "online from the LWT", isOnline(true))
	if st := r.knownStatus(); st.Output == nil || *st.Output {
		t.Fatalf("status after start %s, want output off", fmtStatus(st))
	}
	// The status may have been read before the switch off, and found the
	// output on: reported, as it should be. Nothing else is pending.
	drain(r.Events())

	t.Run("on with a lease sets toggle_after; partial status merges", func(t *testing.T) {
		if err := r.Set(testCtx(t), true, 90*time.Second); err != nil {
			t.Fatalf("Set on: %v", err)
		}
		req := dev.waitRequest(t, "Switch.Set")
		if req.Params.On == nil || !*req.Params.On || req.Params.ToggleAfter == nil || *req.Params.ToggleAfter != 90 {
			t.Fatalf("request on=%v toggle_after=%v, want on with toggle_after 90", req.Params.On, req.Params.ToggleAfter)
		}
		dev.power(12.5)
		_, before := waitEvent(t, r.Events(), "the power reading", isPower(12.5))
		noStateEvent(t, "switched on by Set", before)
		if st := r.knownStatus(); st.Output == nil || !*st.Output || st.APower == nil || *st.APower != 12.5 {
			t.Errorf("status %s, want output on (apower alone must not reset it) and apower 12.5", fmtStatus(st))
		}

		// Already on: no notification comes; the full status confirms.
		if err := r.Set(testCtx(t), true, 1500*time.Millisecond); err != nil {
			t.Fatalf("Set on again: %v", err)
		}
		if req := dev.waitRequest(t, "Switch.Set"); req.Params.ToggleAfter == nil || *req.Params.ToggleAfter != 2 {
			t.Errorf("toggle_after %v, want 2 (rounded up)", req.Params.ToggleAfter)
		}

		if err := r.Set(testCtx(t), false, 90*time.Second); err != nil {
			t.Fatalf("Set off: %v", err)
		}
		if req := dev.waitRequest(t, "Switch.Set"); req.Params.On == nil || *req.Params.On || req.Params.ToggleAfter != nil {
			t.Errorf("request on=%v toggle_after=%v, want off without a timer (it would switch on again)", req.Params.On, req.Params.ToggleAfter)
		}
		dev.power(0)
		_, before = waitEvent(t, r.Events(), "the power reading", isPower(0))
		noStateEvent(t, "switched off by Set", before)
	})

	t.Run("a button press is an event", func(t *testing.T) {
		dev.press()
		waitEvent(t, r.Events(), "on by the button", isOn(true))
		dev.press()
		waitEvent(t, r.Events(), "off by the button", isOn(false))
	})

	t.Run("a full status replaces what was known", func(t *testing.T) {
		dev.set(func(f *fakeShellyGen2) { f.output, f.apower = true, 3 })
		dev.notify("NotifyFullStatus", map[string]any{"switch:0": dev.status(), "sys": map[string]any{"uptime": 12}})
		waitEvent(t, r.Events(), "on from the full status", isOn(true))
		waitEvent(t, r.Events(), "the power from the full status", isPower(3))
		if err := r.Set(testCtx(t), false, 0); err != nil {
			t.Fatalf("Set off: %v", err)
		}
	})

	t.Run("a reboot is reported and the status read again", func(t *testing.T) {
		dev.press()
		waitEvent(t, r.Events(), "on by the button", isOn(true))
		dev.set(func(f *fakeShellyGen2) { f.output = false }) // comes up off, says nothing
		dev.publish(dev.prefix+"/online", "false", true)      // the broker publishes the LWT
		waitEvent(t, r.Events(), "offline", isOnline(false))
		dev.publish(dev.prefix+"/online", "true", true)
		waitAll(t, r.Events(), map[string]func(Event) bool{
			"online":                    isOnline(true),
			"off from Switch.GetStatus": isOn(false),
		})
	})

	t.Run("stray replies before the answer are dropped", func(t *testing.T) {
		dropped := r.Dropped()
		dev.set(func(f *fakeShellyGen2) { f.beforeReply = f.strayReplies })
		if err := r.Set(testCtx(t), true, 0); err != nil {
			t.Fatalf("Set on: %v (a stray reply was taken for the answer)", err)
		}
		dev.set(func(f *fakeShellyGen2) { f.beforeReply = nil })
		eventually(t, "the stray replies dropped", func() bool { return r.Dropped()-dropped >= 4 })
		if err := r.Set(testCtx(t), false, 0); err != nil {
			t.Fatalf("Set off: %v", err)
		}
	})

	t.Run("the device's error is returned", func(t *testing.T) {
		dev.set(func(f *fakeShellyGen2) {
			f.failSet = &ShellyRPCError{Code: -103, Message: "Invalid argument 'id': no such component"}
		})
		err := r.Set(testCtx(t), true, 0)
		var rpcErr *ShellyRPCError
		if !errors.As(err, &rpcErr) || rpcErr.Code != -103 {
			t.Fatalf("Set on: %v, want the device's error -103", err)
		}
		if errors.Is(err, ErrUnconfirmed) {
			t.Errorf("Set on: %v: the device answered, it is not unconfirmed", err)
		}
		dev.set(func(f *fakeShellyGen2) { f.failSet = nil })
	})

	t.Run("malformed notifications are dropped and change nothing", func(t *testing.T) {
		dropped := r.Dropped()
		dev.publish(dev.prefix+"/events/rpc", `{"src":"`+dev.id+`","method":"NotifyStatus","params":{"switch:0":{"out`, false)
		dev.publish(dev.prefix+"/events/rpc", `{"src":"`+dev.id+`","method":"NotifyStatus","params":{"switch:0":{"id":0,"output":"on"}}}`, false)
		dev.publish(dev.prefix+"/events/rpc", `{"src":"shellyplus1pm-000000000000","method":"NotifyStatus","params":{"switch:0":{"id":0,"output":true}}}`, false)
		dev.publish(dev.prefix+"/online", "yes", false)
		eventually(t, "4 dropped messages", func() bool { return r.Dropped()-dropped >= 4 })
		if got := r.Dropped() - dropped; got != 4 {
			t.Errorf("Dropped grew by %d, want 4", got)
		}
		noStateEvent(t, "malformed notifications", drain(r.Events()))
		if st := r.knownStatus(); st.Output == nil || *st.Output {
			t.Errorf("status %s, want output off as the device last said", fmtStatus(st))
		}
	})

	t.Run("close switches off and closes the events", func(t *testing.T) {
		if err := r.Set(testCtx(t), true, 0); err != nil {
			t.Fatalf("Set on: %v", err)
		}
		for len(dev.requests) > 0 {
			<-dev.requests
		}
		if err := r.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		waitClosed(t, r.Events())
		if req := dev.waitRequest(t, "Switch.Set"); req.Params.On == nil || *req.Params.On {
			t.Errorf("request at close on=%v, want off", req.Params.On)
		}
		dev.mu.Lock()
		on := dev.output
		dev.mu.Unlock()
		if on {
			t.Error("the device is still on after Close")
		}
	})
}

func TestShellyGen2Unconfirmed(t *testing.T) {
	b := startMosquitto(t)
	dev := newFakeShellyGen2(t, b, "shellyplus1-mute")
	r := newTestShellyGen2(t, b, dev.prefix, "", shortConfirm)
	dev.set(func(f *fakeShellyGen2) { f.mute = true })

	start := time.Now()
	err := r.Set(testCtx(t), true, time.Minute)
	elapsed := time.Since(start)
	if !errors.Is(err, ErrUnconfirmed) {
		t.Fatalf("Set on a mute device: %v, want ErrUnconfirmed", err)
	}
	if elapsed < shortConfirm || elapsed > shortConfirm+5*time.Second {
		t.Errorf("gave up after %s, want about %s", elapsed, shortConfirm)
	}
	for {
		req := dev.waitRequest(t, "Switch.Set")
		if req.Params.On != nil && !*req.Params.On {
			break // the off after the failed on
		}
	}
	if err := r.Close(); !errors.Is(err, ErrUnconfirmed) {
		t.Errorf("Close on a mute device: %v, want ErrUnconfirmed", err)
	}
}

// TestShellyGen2StrayRepliesOnly: a device that answers only with replies
// that are not the answer (another id, dst or src) leaves the Set
// unconfirmed; none of their errors is taken for the device's.
func TestShellyGen2StrayRepliesOnly(t *testing.T) {
	b := startMosquitto(t)
	dev := newFakeShellyGen2(t, b, "shellyplus1-stray")
	r := newTestShellyGen2(t, b, dev.prefix, dev.id, shortConfirm)
	dropped := r.Dropped()
	dev.set(func(f *fakeShellyGen2) { f.straysOnly = true })
	err := r.Set(testCtx(t), true, 0)
	var rpcErr *ShellyRPCError
	if errors.As(err, &rpcErr) {
		t.Fatalf("Set on: %v: a stray reply was taken for the answer", err)
	}
	if !errors.Is(err, ErrUnconfirmed) {
		t.Fatalf("Set on: %v, want ErrUnconfirmed", err)
	}
	eventually(t, "the stray replies dropped", func() bool { return r.Dropped()-dropped >= 4 })
}
