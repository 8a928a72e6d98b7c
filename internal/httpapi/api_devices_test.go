package httpapi

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/mqtt"
)

// Revoking a device (rotation, disabling, deletion) against the real
// embedded broker, with the device's own MQTT client connected.

// apiWaitLong bounds every wait for something that should happen.
const apiWaitLong = 15 * time.Second

// apiEventually waits until cond holds.
func apiEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(apiWaitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", apiWaitLong, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// connectDevice connects a device's MQTT client (client id = device id) to
// the harness's broker; it keeps reconnecting until the test ends.
func (h *apiHarness) connectDevice(t *testing.T, id, secret string) *mqtt.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), apiWaitLong)
	defer cancel()
	c, err := mqtt.Connect(ctx, mqtt.ClientConfig{
		Broker: "tcp://" + h.lab.Broker.Addr(), ClientID: id, Username: id, Password: secret,
	})
	if err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	t.Cleanup(func() { c.Close(nil) })
	return c
}

// refusedAgain waits until the broker has refused a login more than before.
func (h *apiHarness) refusedAgain(t *testing.T, before uint64, what string) {
	t.Helper()
	apiEventually(t, what, func() bool { return h.lab.Broker.Stats().RefusedConnects > before })
}

func TestAPIDeviceRevocationCutsConnections(t *testing.T) {
	h := newAPIAccessHarness(t, false)
	saw := h.registerDevice(t, "saw-1", h.printer.ID)
	outer := t // the device's client outlives the subtest that connects it
	dev := h.connectDevice(t, "saw-1", saw.MQTTSecret)

	t.Run("rotation", func(t *testing.T) {
		refused := h.lab.Broker.Stats().RefusedConnects
		r := h.do(t, "POST", "/api/v1/devices/saw-1/secret", h.admin.Token, nil)
		r.want(t, http.StatusOK, "")
		saw.MQTTSecret = r.device(t).MQTTSecret
		apiEventually(t, "the old secret's connection to be cut", func() bool { return !dev.Connected() })
		h.refusedAgain(t, refused, "the old secret's reconnection to be refused")
		if dev.Connected() {
			t.Error("the old secret connected again")
		}
		dev = h.connectDevice(outer, "saw-1", saw.MQTTSecret)
	})

	t.Run("disable and enable", func(t *testing.T) {
		refused := h.lab.Broker.Stats().RefusedConnects
		r := h.do(t, "POST", "/api/v1/devices/saw-1/disable", h.admin.Token, nil)
		r.want(t, http.StatusOK, "")
		if d := r.device(t); !d.Disabled || d.MachineID != h.printer.ID {
			t.Errorf("disabled device %+v, want disabled and still on the printer", d)
		}
		apiEventually(t, "the disabled device's connection to be cut", func() bool { return !dev.Connected() })
		h.refusedAgain(t, refused, "the disabled device's reconnection to be refused")
		if dev.Connected() {
			t.Error("the disabled device connected again")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if c, err := mqtt.Connect(ctx, mqtt.ClientConfig{Broker: "tcp://" + h.lab.Broker.Addr(),
			ClientID: "saw-1", Username: "saw-1", Password: saw.MQTTSecret}); err == nil {
			c.Close(nil)
			t.Error("a disabled device logged in")
		}

		r = h.do(t, "POST", "/api/v1/devices/saw-1/enable", h.admin.Token, nil)
		r.want(t, http.StatusOK, "")
		if r.device(t).Disabled {
			t.Error("still disabled after enable")
		}
		// The device's own client gets back in by itself, with its secret.
		apiEventually(t, "the enabled device to reconnect", dev.Connected)
	})

	t.Run("delete", func(t *testing.T) {
		h.do(t, "DELETE", "/api/v1/devices/saw-1", h.admin.Token, nil).want(t, http.StatusNoContent, "")
		apiEventually(t, "the deleted device's connection to be cut", func() bool { return !dev.Connected() })
		if got := h.machineDevice(t, h.printer.ID); got != "" {
			t.Errorf("the printer still names device %q", got)
		}
		if _, err := h.store.MachineOfDevice(context.Background(), "saw-1"); fablab.ErrorCode(err) != fablab.ENOTFOUND {
			t.Errorf("MachineOfDevice after delete: %v, want not found", err)
		}
		h.do(t, "GET", "/api/v1/devices/saw-1", h.admin.Token, nil).want(t, http.StatusNotFound, fablab.ENOTFOUND)
		h.do(t, "DELETE", "/api/v1/devices/saw-1", h.admin.Token, nil).want(t, http.StatusNotFound, fablab.ENOTFOUND)
		// The id may be registered again, with a new secret.
		again := h.registerDevice(t, "saw-1", 0)
		h.connectDevice(t, "saw-1", again.MQTTSecret)
	})

	t.Run("audited", func(t *testing.T) {
		seen := map[string]bool{}
		for _, ev := range h.auditLog(t, "kind=api&limit=100") {
			if ev.ActorID == h.admin.ID {
				seen[ev.Action] = true
			}
		}
		for _, a := range []string{"POST /api/v1/devices/:id/secret", "POST /api/v1/devices/:id/disable",
			"POST /api/v1/devices/:id/enable", "DELETE /api/v1/devices/:id"} {
			if !seen[a] {
				t.Errorf("no audit event %q (have %v)", a, seen)
			}
		}
	})
}

func TestAPIDeviceDeleteWithOpenSession(t *testing.T) {
	h := newAPIAccessHarness(t, true)
	h.registerDevice(t, "laser-1", h.laser.ID)
	h.enrol(t, h.alice, apiAliceUID)
	if d := h.tap(t, "laser-1", apiAliceUID); d.Decision != "grant" {
		t.Fatalf("tap: %+v, want a grant", d)
	}
	h.do(t, "DELETE", "/api/v1/devices/laser-1", h.admin.Token, nil).want(t, http.StatusConflict, fablab.ECONFLICT)
	if got := h.machineDevice(t, h.laser.ID); got != "laser-1" {
		t.Errorf("the laser names %q after a refused delete, want laser-1", got)
	}
}

func TestAPIDeviceRevocationIsAdminOnly(t *testing.T) {
	h := newAPIAccessHarness(t, false)
	h.registerDevice(t, "saw-1", 0)
	for _, rq := range []struct{ method, path string }{
		{"POST", "/api/v1/devices/saw-1/disable"},
		{"POST", "/api/v1/devices/saw-1/enable"},
		{"POST", "/api/v1/devices/saw-1/secret"},
		{"DELETE", "/api/v1/devices/saw-1"},
	} {
		for _, a := range []*apiAccount{h.staff, h.alice} {
			h.do(t, rq.method, rq.path, a.Token, nil).want(t, http.StatusForbidden, fablab.EFORBIDDEN)
		}
	}
	var d apiDevice
	h.do(t, "GET", "/api/v1/devices/saw-1", h.admin.Token, nil).decode(t, &d)
	if d.Disabled {
		t.Error("disabled by someone who may not")
	}
}
