package httpapi

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/mqtt"
)

// The access routes run against the real access side (newAPIAccessHarness):
// the embedded broker, the engine and its hub, on the harness clock.

// apiDevice is a device as the API shows it, with the credentials that
// POST /devices and POST /devices/{id}/secret add.
type apiDevice struct {
	ID           string    `json:"id"`
	MachineID    fablab.ID `json:"machine_id"`
	Kind         string    `json:"kind"`
	CreatedAt    time.Time `json:"created_at"`
	Online       bool      `json:"online"`
	MQTTUsername string    `json:"mqtt_username"`
	MQTTSecret   string    `json:"mqtt_secret"`
	BadgeKey     string    `json:"badge_key"`
	Disabled     bool      `json:"disabled"`
}

// device decodes a device response, failing on keys that show a secret.
func (r apiResp) device(t testing.TB) apiDevice {
	t.Helper()
	var keys map[string]any
	r.decode(t, &keys)
	for k := range keys {
		if strings.Contains(k, "hash") {
			t.Errorf("the device shows %q", k)
		}
	}
	var d apiDevice
	r.decode(t, &d)
	return d
}

// registerDevice registers a device as admin and returns it with its secret.
func (h *apiHarness) registerDevice(t testing.TB, id string, machine fablab.ID) apiDevice {
	t.Helper()
	body := map[string]any{"id": id}
	if machine != 0 {
		body["machine_id"] = machine.String()
	}
	r := h.do(t, "POST", "/api/v1/devices", h.admin.Token, body)
	r.want(t, http.StatusCreated, "")
	return r.device(t)
}

// machineDevice returns the device_id a machine shows.
func (h *apiHarness) machineDevice(t testing.TB, m fablab.ID) string {
	t.Helper()
	r := h.do(t, "GET", "/api/v1/machines/"+m.String(), h.alice.Token, nil)
	r.want(t, http.StatusOK, "")
	var got fablab.Machine
	r.decode(t, &got)
	return got.DeviceID
}

// secretHash returns the stored hash of a device's MQTT secret.
func (h *apiHarness) secretHash(t testing.TB, dev string) string {
	t.Helper()
	d, err := h.store.Device(context.Background(), dev)
	if err != nil {
		t.Fatal(err)
	}
	return d.SecretHash
}

func TestAPIDevices(t *testing.T) {
	h := newAPIAccessHarness(t, false)
	laser, printer := h.laser.ID, h.printer.ID

	created := h.registerDevice(t, "laser-1", laser)
	if created.ID != "laser-1" || created.MachineID != laser || created.Kind != fablab.DeviceBridge || created.Online {
		t.Errorf("created %+v, want laser-1, a bridge driving the laser, not online", created)
	}
	if created.MQTTUsername != "laser-1" || len(created.MQTTSecret) < 32 {
		t.Errorf("credentials %q / %q, want the id and a long secret", created.MQTTUsername, created.MQTTSecret)
	}
	if created.BadgeKey != hex.EncodeToString(h.store.BadgeSecret()) {
		t.Errorf("badge_key %q is not the lab's badge key", created.BadgeKey)
	}
	secret := created.MQTTSecret
	hash := h.secretHash(t, "laser-1")
	if !mqtt.VerifyMosquittoHash(hash, secret) {
		t.Errorf("the stored hash %q does not verify the secret returned", hash)
	}
	if mqtt.VerifyMosquittoHash(hash, secret+"x") {
		t.Error("the stored hash verifies a wrong secret")
	}
	if got := h.machineDevice(t, laser); got != "laser-1" {
		t.Errorf("laser device_id %q, want laser-1", got)
	}

	t.Run("the secret is shown once", func(t *testing.T) {
		for _, path := range []string{"/api/v1/devices", "/api/v1/devices/laser-1"} {
			r := h.do(t, "GET", path, h.admin.Token, nil)
			r.want(t, http.StatusOK, "")
			for _, leak := range []string{secret, hash, "mqtt_secret", "secret", "$7$", "badge_key", created.BadgeKey} {
				if strings.Contains(string(r.body), leak) {
					t.Errorf("GET %s shows %q: %s", path, leak, r.body)
				}
			}
		}
		var list []apiDevice
		h.do(t, "GET", "/api/v1/devices", h.admin.Token, nil).decode(t, &list)
		if len(list) != 1 || list[0].ID != "laser-1" || list[0].MachineID != laser {
			t.Errorf("GET /devices = %+v, want laser-1 on the laser", list)
		}
	})

	t.Run("refused", func(t *testing.T) {
		before := h.state(t)
		for _, tc := range []struct {
			name         string
			body         map[string]any
			status       int
			code, detail string
		}{
			{"duplicate id", map[string]any{"id": "laser-1"}, 409, fablab.ECONFLICT, "already exists"},
			{"upper case id", map[string]any{"id": "Laser-2"}, 400, fablab.EINVALID, "device id"},
			{"id with a blank", map[string]any{"id": "laser 2"}, 400, fablab.EINVALID, "device id"},
			{"empty id", map[string]any{"id": ""}, 400, fablab.EINVALID, "device id"},
			{"id too long", map[string]any{"id": strings.Repeat("a", 33)}, 400, fablab.EINVALID, "device id"},
			{"unknown kind", map[string]any{"id": "laser-2", "kind": "zigbee"}, 400, fablab.EINVALID, "kind"},
			{"missing machine", map[string]any{"id": "laser-2", "machine_id": "999999"}, 404, fablab.ENOTFOUND, "999999"},
			{"secret given", map[string]any{"id": "laser-2", "mqtt_secret": "mine"}, 400, fablab.EINVALID, "mqtt_secret"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := h.do(t, "POST", "/api/v1/devices", h.admin.Token, tc.body)
				r.want(t, tc.status, tc.code)
				if d := r.problem(t).Detail; !strings.Contains(d, tc.detail) {
					t.Errorf("detail %q does not say %q", d, tc.detail)
				}
			})
		}
		h.unchanged(t, before)
		h.do(t, "GET", "/api/v1/devices/laser-2", h.admin.Token, nil).want(t, http.StatusNotFound, fablab.ENOTFOUND)
		if !mqtt.VerifyMosquittoHash(h.secretHash(t, "laser-1"), secret) {
			t.Error("the refused duplicate changed laser-1's secret")
		}
	})

	patch := func(t *testing.T, dev string, body map[string]any) apiDevice {
		t.Helper()
		r := h.do(t, "PATCH", "/api/v1/devices/"+dev, h.admin.Token, body)
		r.want(t, http.StatusOK, "")
		return r.device(t)
	}

	t.Run("binding moves", func(t *testing.T) {
		if d := patch(t, "laser-1", map[string]any{"machine_id": printer.String()}); d.MachineID != printer {
			t.Errorf("after the move, machine_id %s, want the printer %s", d.MachineID, printer)
		}
		if got := h.machineDevice(t, laser); got != "" {
			t.Errorf("the laser still names device %q", got)
		}
		if got := h.machineDevice(t, printer); got != "laser-1" {
			t.Errorf("printer device_id %q, want laser-1", got)
		}
		h.do(t, "PATCH", "/api/v1/devices/laser-1", h.admin.Token, map[string]any{"machine_id": "999999"}).want(t, http.StatusNotFound, fablab.ENOTFOUND)
		if got := h.machineDevice(t, printer); got != "laser-1" {
			t.Errorf("a refused move changed the printer's device to %q", got)
		}

		// A second device takes the printer: the first one drives nothing.
		h.registerDevice(t, "laser-2", laser)
		if d := patch(t, "laser-2", map[string]any{"machine_id": printer.String()}); d.MachineID != printer {
			t.Errorf("laser-2 machine_id %s, want the printer", d.MachineID)
		}
		var first apiDevice
		h.do(t, "GET", "/api/v1/devices/laser-1", h.admin.Token, nil).decode(t, &first)
		if first.MachineID != 0 {
			t.Errorf("laser-1 still drives machine %s", first.MachineID)
		}
		if l, p := h.machineDevice(t, laser), h.machineDevice(t, printer); l != "" || p != "laser-2" {
			t.Errorf("laser and printer name %q and %q, want none and laser-2", l, p)
		}
	})

	t.Run("kind and unbind", func(t *testing.T) {
		if d := patch(t, "laser-2", map[string]any{"kind": "tasmota"}); d.Kind != fablab.DeviceTasmota || d.MachineID != printer {
			t.Errorf("after a kind change %+v, want a tasmota still on the printer", d)
		}
		if d := patch(t, "laser-2", map[string]any{"unbind": true}); d.MachineID != 0 {
			t.Errorf("after unbind machine_id %s", d.MachineID)
		}
		if got := h.machineDevice(t, printer); got != "" {
			t.Errorf("the printer still names device %q", got)
		}
	})

	t.Run("rotation", func(t *testing.T) {
		r := h.do(t, "POST", "/api/v1/devices/laser-1/secret", h.admin.Token, nil)
		r.want(t, http.StatusOK, "")
		d := r.device(t)
		if d.MQTTUsername != "laser-1" || d.MQTTSecret == "" || d.MQTTSecret == secret {
			t.Fatalf("rotation gave %q / %q, want laser-1 and a new secret", d.MQTTUsername, d.MQTTSecret)
		}
		hash := h.secretHash(t, "laser-1")
		if !mqtt.VerifyMosquittoHash(hash, d.MQTTSecret) {
			t.Error("the new secret does not verify")
		}
		if mqtt.VerifyMosquittoHash(hash, secret) {
			t.Error("the old secret still verifies")
		}
		h.do(t, "POST", "/api/v1/devices/nobody/secret", h.admin.Token, nil).want(t, http.StatusNotFound, fablab.ENOTFOUND)
	})
}

// tap simulates a tap of uid on dev as staff.
func (h *apiHarness) tap(t testing.TB, dev, uid string) tapResult {
	t.Helper()
	r := h.do(t, "POST", "/api/v1/devices/"+dev+"/tap", h.staff.Token, map[string]any{"uid": uid})
	r.want(t, http.StatusOK, "")
	var out tapResult
	r.decode(t, &out)
	return out
}

// sessions lists sessions as a with the query q.
func (h *apiHarness) sessions(t testing.TB, a *apiAccount, q string) []fablab.Session {
	t.Helper()
	r := h.do(t, "GET", "/api/v1/sessions?"+q, a.Token, nil)
	r.want(t, http.StatusOK, "")
	var out []fablab.Session
	r.decode(t, &out)
	return out
}

// auditLog reads the audit log as staff with the query q.
func (h *apiHarness) auditLog(t testing.TB, q string) []fablab.AuditEvent {
	t.Helper()
	r := h.do(t, "GET", "/api/v1/audit?"+q, h.staff.Token, nil)
	r.want(t, http.StatusOK, "")
	var out []fablab.AuditEvent
	r.decode(t, &out)
	return out
}

// enrol enrols uid to a over HTTP.
func (h *apiHarness) enrol(t testing.TB, a *apiAccount, uid string) {
	t.Helper()
	h.do(t, "POST", "/api/v1/members/"+a.ID.String()+"/badges", h.staff.Token, map[string]any{"uid": uid}).want(t, http.StatusCreated, "")
}

const (
	apiAliceUID   = "04:A2:B3:C4:D5:E6:F7"
	apiBobUID     = "04:B0:B0:B0"
	apiUnknownUID = "de:ad:be:ef"
)

func TestAPISimulatedTapNeedsTheDemo(t *testing.T) {
	h := newAPIAccessHarness(t, false)
	h.registerDevice(t, "laser-1", h.laser.ID)
	h.enrol(t, h.alice, apiAliceUID)
	before := h.state(t)
	r := h.do(t, "POST", "/api/v1/devices/laser-1/tap", h.staff.Token, map[string]any{"uid": apiAliceUID})
	r.want(t, http.StatusForbidden, fablab.EFORBIDDEN)
	if d := r.problem(t).Detail; !strings.Contains(d, "--demo") {
		t.Errorf("detail %q does not say how to allow simulated taps", d)
	}
	h.unchanged(t, before)
}

func TestAPITapsAndSessions(t *testing.T) {
	h := newAPIAccessHarness(t, true)
	h.registerDevice(t, "laser-1", h.laser.ID)
	h.enrol(t, h.alice, apiAliceUID)
	h.enrol(t, h.bob, apiBobUID)
	now := h.clock.Now().UTC()

	// Bob lacks the laser's training.
	// The answer carries the reader's message as well as the code.
	bobDenied := "Formation requise : " + h.training.Name
	if got := h.tap(t, "laser-1", apiBobUID); got.Decision != "deny" || got.Reason != "training_required" || got.Detail != h.training.Name || got.Message != bobDenied {
		t.Errorf("bob's tap: %+v, want deny training_required (%s) with the message %q", got, h.training.Name, bobDenied)
	}

	// Alice walks in: a session opens.
	grant := h.tap(t, "laser-1", apiAliceUID)
	if grant.Decision != "grant" || !grant.Until.After(now) || grant.Reason != "" {
		t.Fatalf("alice's tap: %+v, want a grant until after now", grant)
	}
	open := h.sessions(t, h.staff, "active=true")
	if len(open) != 1 {
		t.Fatalf("open sessions %+v, want alice's", open)
	}
	s := open[0]
	if s.MemberID != h.alice.ID || s.MachineID != h.laser.ID || s.DeviceID != "laser-1" || !s.Open() || !s.Until.Equal(grant.Until) || !s.Billable {
		t.Errorf("open session %+v, want alice's on the laser until %s", s, grant.Until)
	}

	// The same badge again taps out.
	if got := h.tap(t, "laser-1", apiAliceUID); got.Decision != "tap_out" {
		t.Errorf("alice's second tap: %+v, want tap_out", got)
	}
	if open := h.sessions(t, h.staff, "active=true"); len(open) != 0 {
		t.Errorf("open sessions after tap-out: %+v", open)
	}
	ended := h.sessions(t, h.staff, "member_id="+h.alice.ID.String())
	if len(ended) != 1 || ended[0].ID != s.ID || ended[0].Open() || ended[0].EndReason != fablab.EndTapOut {
		t.Errorf("alice's sessions %+v, want session %s ended by tap_out", ended, s.ID)
	}

	// A badge nobody holds is denied and listed for enrolment.
	const unknownDenied = "Badge inconnu : voyez l'équipe"
	if got := h.tap(t, "laser-1", apiUnknownUID); got.Decision != "deny" || got.Reason != "unknown_badge" || got.Message != unknownDenied {
		t.Errorf("unknown badge: %+v, want deny unknown_badge with the message %q", got, unknownDenied)
	}
	uid, err := fablab.NormalizeUID(apiUnknownUID)
	if err != nil {
		t.Fatal(err)
	}
	unknownHash := auth.BadgeHash(h.store.BadgeSecret(), uid)
	var unknown []fablab.UnknownTap
	r := h.do(t, "GET", "/api/v1/taps/unknown", h.staff.Token, nil)
	r.want(t, http.StatusOK, "")
	r.decode(t, &unknown)
	if len(unknown) != 1 || unknown[0].Hash != unknownHash || unknown[0].DeviceID != "laser-1" || !unknown[0].At.Equal(now) {
		t.Errorf("unknown taps %+v, want %s on laser-1 at %s", unknown, unknownHash, now)
	}
	if strings.Contains(strings.ToUpper(string(r.body)), uid) {
		t.Errorf("GET /taps/unknown shows the UID: %s", r.body)
	}
	if strings.Contains(string(h.do(t, "GET", "/api/v1/audit", h.staff.Token, nil).body), uid) {
		t.Error("the audit log shows the UID")
	}

	// A staff member ends a session.
	h.tap(t, "laser-1", apiAliceUID)
	open = h.sessions(t, h.staff, "active=true")
	if len(open) != 1 {
		t.Fatalf("open sessions %+v, want one", open)
	}
	end := "/api/v1/sessions/" + open[0].ID.String() + "/end"
	r = h.do(t, "POST", end, h.staff.Token, nil)
	r.want(t, http.StatusOK, "")
	var byStaff fablab.Session
	r.decode(t, &byStaff)
	if byStaff.ID != open[0].ID || byStaff.Open() || byStaff.EndReason != fablab.EndStaff || byStaff.EndedBy != h.staff.ID {
		t.Errorf("ended session %+v, want reason staff by %s", byStaff, h.staff.ID)
	}
	h.do(t, "POST", end, h.staff.Token, nil).want(t, http.StatusConflict, fablab.ECONFLICT)
	h.do(t, "POST", end, h.admin.Token, nil).want(t, http.StatusConflict, fablab.ECONFLICT)
	if open := h.sessions(t, h.staff, "active=true"); len(open) != 0 {
		t.Errorf("open sessions after the end: %+v", open)
	}

	t.Run("audit", func(t *testing.T) {
		taps := h.auditLog(t, "kind=tap")
		type line struct{ action, reason string }
		var got []line
		for _, e := range taps {
			if e.Kind != fablab.AuditTap || e.DeviceID != "laser-1" || e.MachineID != h.laser.ID {
				t.Errorf("tap event %+v, want a tap on laser-1 of the laser", e)
			}
			got = append(got, line{e.Action, e.Reason})
		}
		want := []line{ // newest first
			{"granted", ""},
			{"denied", "unknown_badge"},
			{"tap_out", "tap_out"},
			{"granted", ""},
			{"denied", "training_required"},
		}
		if !slices.Equal(got, want) {
			t.Errorf("tap events %v, want %v", got, want)
		}
		if len(taps) == len(want) {
			if taps[4].MemberID != h.bob.ID || taps[3].MemberID != h.alice.ID || taps[3].SessionID != s.ID || taps[1].MemberID != 0 {
				t.Errorf("tap events name the wrong member or session: %+v", taps)
			}
			if b, _ := taps[1].Detail["badge"].(string); b != unknownHash {
				t.Errorf("the unknown badge's event has badge %q, want its hash", b)
			}
			// The decision log says what the reader showed.
			for i, want := range map[int]string{1: unknownDenied, 4: bobDenied} {
				if m, _ := taps[i].Detail["message"].(string); m != want {
					t.Errorf("tap event %d (%s %s) has message %q, want %q", i, taps[i].Action, taps[i].Reason, m, want)
				}
			}
		}

		sessions := h.auditLog(t, "kind=session")
		if len(sessions) != 1 || sessions[0].Action != "ended" || sessions[0].Reason != fablab.EndStaff ||
			sessions[0].ActorID != h.staff.ID || sessions[0].SessionID != byStaff.ID {
			t.Errorf("session events %+v, want the staff end of %s", sessions, byStaff.ID)
		}

		// Another device: filters by device, member and limit.
		h.registerDevice(t, "printer-1", h.printer.ID)
		h.tap(t, "printer-1", apiBobUID)
		for _, e := range h.auditLog(t, "device_id=laser-1") {
			if e.DeviceID != "laser-1" {
				t.Errorf("device_id=laser-1 lists %+v", e)
			}
		}
		printer := h.auditLog(t, "device_id=printer-1&kind=tap")
		if len(printer) != 1 || printer[0].Action != "granted" || printer[0].MemberID != h.bob.ID {
			t.Errorf("printer-1's taps %+v, want bob's grant", printer)
		}
		bob := h.auditLog(t, "kind=tap&member_id="+h.bob.ID.String())
		if len(bob) != 2 || bob[0].DeviceID != "printer-1" || bob[1].Reason != "training_required" {
			t.Errorf("bob's taps %+v, want the printer grant then the laser deny", bob)
		}
		if got := h.auditLog(t, "kind=tap&machine_id="+h.printer.ID.String()); len(got) != 1 {
			t.Errorf("the printer's taps %+v, want one", got)
		}
		if got := h.auditLog(t, "limit=1"); len(got) != 1 || got[0].Kind != fablab.AuditAPI || got[0].Action != "POST /api/v1/devices/:id/tap" || got[0].ActorID != h.staff.ID {
			t.Errorf("limit=1 gives %+v, want the newest event: the staff's simulated tap call", got)
		}
		if got := h.auditLog(t, "limit=1&kind=tap"); len(got) != 1 || got[0].DeviceID != "printer-1" {
			t.Errorf("limit=1&kind=tap gives %+v, want the newest tap", got)
		}
		if got := h.auditLog(t, "kind=nothing"); len(got) != 0 {
			t.Errorf("an unknown kind lists %+v", got)
		}
		past := url.Values{"from": {now.Add(-48 * time.Hour).Format(time.RFC3339)}, "to": {now.Add(-24 * time.Hour).Format(time.RFC3339)}}
		if got := h.auditLog(t, past.Encode()); len(got) != 0 {
			t.Errorf("the day before yesterday lists %+v", got)
		}
	})

	t.Run("unknown sessions", func(t *testing.T) {
		h.do(t, "POST", "/api/v1/sessions/999999/end", h.staff.Token, nil).want(t, http.StatusNotFound, fablab.ENOTFOUND)
		h.do(t, "POST", "/api/v1/sessions/abc/end", h.staff.Token, nil).want(t, http.StatusNotFound, fablab.ENOTFOUND)
		h.do(t, "POST", "/api/v1/devices/nobody/tap", h.staff.Token, map[string]any{"uid": apiAliceUID}).want(t, http.StatusNotFound, fablab.ENOTFOUND)
	})
}

func TestAPITapOnAnUnboundDevice(t *testing.T) {
	h := newAPIAccessHarness(t, true)
	h.registerDevice(t, "spare-1", 0)
	h.enrol(t, h.alice, apiAliceUID)
	if got := h.tap(t, "spare-1", apiAliceUID); got.Decision != "deny" || got.Reason != "no_machine" {
		t.Errorf("tap on an unbound device: %+v, want deny no_machine", got)
	}
	if open := h.sessions(t, h.staff, "active=true"); len(open) != 0 {
		t.Errorf("open sessions %+v", open)
	}
}

// TestAPISessionVisibility checks that makers see their own sessions only.
func TestAPISessionVisibility(t *testing.T) {
	h := newAPIAccessHarness(t, true)
	h.registerDevice(t, "printer-1", h.printer.ID)
	h.enrol(t, h.alice, apiAliceUID)
	h.enrol(t, h.bob, apiBobUID)
	if got := h.tap(t, "printer-1", apiAliceUID); got.Decision != "grant" {
		t.Fatalf("alice's tap: %+v", got)
	}
	h.tap(t, "printer-1", apiAliceUID) // out
	if got := h.tap(t, "printer-1", apiBobUID); got.Decision != "grant" {
		t.Fatalf("bob's tap: %+v", got)
	}
	elsewhere := h.openSession(t, h.alice) // on a lathe of its own

	only := func(t *testing.T, ss []fablab.Session, who *apiAccount, n int) {
		t.Helper()
		if len(ss) != n {
			t.Errorf("%d sessions, want %d: %+v", len(ss), n, ss)
		}
		for _, s := range ss {
			if s.MemberID != who.ID {
				t.Errorf("session %s of member %s listed, want only %s's", s.ID, s.MemberID, who.Name)
			}
		}
	}
	only(t, h.sessions(t, h.alice, ""), h.alice, 2)
	only(t, h.sessions(t, h.alice, "member_id="+h.alice.ID.String()), h.alice, 2)
	only(t, h.sessions(t, h.bob, ""), h.bob, 1)
	only(t, h.sessions(t, h.bob, "active=false"), h.bob, 1)
	for _, q := range []string{
		"active=true",
		"member_id=" + h.bob.ID.String(),
		"machine_id=" + h.printer.ID.String(),
		"machine_id=" + h.printer.ID.String() + "&member_id=" + h.alice.ID.String(),
	} {
		h.do(t, "GET", "/api/v1/sessions?"+q, h.alice.Token, nil).want(t, http.StatusForbidden, fablab.EFORBIDDEN)
	}

	// Staff filter by machine, member or both.
	if got := h.sessions(t, h.staff, ""); len(got) != 3 {
		t.Errorf("staff see %d sessions, want all 3", len(got))
	}
	if got := h.sessions(t, h.staff, "active=true"); len(got) != 2 {
		t.Errorf("staff see %d open sessions, want bob's and alice's on the lathe: %+v", len(got), got)
	}
	if got := h.sessions(t, h.staff, "machine_id="+h.printer.ID.String()); len(got) != 2 {
		t.Errorf("the printer has %d sessions, want 2", len(got))
	}
	only(t, h.sessions(t, h.staff, "machine_id="+h.printer.ID.String()+"&member_id="+h.bob.ID.String()), h.bob, 1)
	only(t, h.sessions(t, h.staff, "machine_id="+elsewhere.MachineID.String()+"&member_id="+h.bob.ID.String()), h.bob, 0)
	only(t, h.sessions(t, h.admin, "member_id="+h.alice.ID.String()), h.alice, 2)

	// A maker cannot end a session, even their own.
	h.do(t, "POST", "/api/v1/sessions/"+elsewhere.ID.String()+"/end", h.alice.Token, nil).want(t, http.StatusForbidden, fablab.EFORBIDDEN)

	// Sessions outside [from, to) are not listed.
	next := url.Values{"from": {apiAt(1, 0, 0).Format(time.RFC3339)}}
	if got := h.sessions(t, h.alice, next.Encode()); len(got) != 0 {
		t.Errorf("sessions from tomorrow: %+v", got)
	}
}

// TestAPIEventStream reads GET /events with a real HTTP client: a tap that
// opens a session shows as a "session" event, then its "tap" event.
func TestAPIEventStream(t *testing.T) {
	h := newAPIAccessHarness(t, true)
	h.registerDevice(t, "laser-1", h.laser.ID)
	h.enrol(t, h.alice, apiAliceUID)

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", h.srv.URL+"/api/v1/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+h.staff.Token)
	res, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET /events: %d %q %q, want 200 text/event-stream, no-cache", res.StatusCode, res.Header.Get("Content-Type"), res.Header.Get("Cache-Control"))
	}
	stream := bufio.NewReader(res.Body)
	// next returns the next block's event name and data (none for a comment).
	next := func() (event, data string) {
		t.Helper()
		for {
			line, err := stream.ReadString('\n')
			if err != nil {
				t.Fatalf("read the event stream: %v", err)
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "":
				return event, data
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data += strings.TrimPrefix(line, "data: ")
			case strings.HasPrefix(line, ":"):
			default:
				t.Fatalf("not a line of an event stream: %q", line)
			}
		}
	}
	// The opening comment: the subscription is in place.
	if event, data := next(); event != "" || data != "" {
		t.Fatalf("the stream opens with event %q data %q, want a comment", event, data)
	}

	if got := h.tap(t, "laser-1", apiAliceUID); got.Decision != "grant" {
		t.Fatalf("tap: %+v", got)
	}
	event, data := next()
	if event != "session" {
		t.Fatalf("first event %q (%s), want session", event, data)
	}
	var se struct {
		Type string         `json:"type"`
		At   time.Time      `json:"at"`
		Data fablab.Session `json:"data"`
	}
	if err := json.Unmarshal([]byte(data), &se); err != nil {
		t.Fatalf("session event data %q: %v", data, err)
	}
	if se.Type != "session" || !se.At.Equal(h.clock.Now()) || se.Data.ID == 0 || se.Data.MemberID != h.alice.ID ||
		se.Data.MachineID != h.laser.ID || se.Data.DeviceID != "laser-1" || !se.Data.Open() {
		t.Errorf("session event %+v, want alice's new session on the laser", se)
	}

	event, data = next()
	var te struct {
		Type string   `json:"type"`
		Data struct { // the live copy of the audit line (its id is not the stored one)
			Kind      string    `json:"kind"`
			Action    string    `json:"action"`
			SessionID fablab.ID `json:"session_id"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(data), &te); err != nil {
		t.Fatalf("tap event data %q: %v", data, err)
	}
	if event != "tap" || te.Type != "tap" || te.Data.Kind != fablab.AuditTap || te.Data.Action != "granted" || te.Data.SessionID != se.Data.ID {
		t.Errorf("second event %q %+v, want the granted tap of session %s", event, te, se.Data.ID)
	}
}

// TestAPIAccessBadInput sends malformed requests to the access routes: each
// gets its status and code (problem+json, never a 5xx), and nothing is written.
func TestAPIAccessBadInput(t *testing.T) {
	h := newAPIAccessHarness(t, true)
	h.registerDevice(t, "laser-1", h.laser.ID)
	q := url.QueryEscape
	now := h.clock.Now()
	type tc = apiRefusal
	post := func(path, body string) apiReq { return apiReq{method: "POST", path: path, body: body} }
	patch := func(path, body string) apiReq { return apiReq{method: "PATCH", path: path, body: body} }
	get := func(path string) apiReq { return apiReq{method: "GET", path: path} }
	const tap = "/api/v1/devices/laser-1/tap"
	cases := []tc{
		{"device unknown field", h.admin, post("/api/v1/devices", `{"id":"saw-1","colour":"red"}`), 400, fablab.EINVALID},
		{"device field in another case", h.admin, post("/api/v1/devices", `{"ID":"saw-1"}`), 400, fablab.EINVALID},
		{"device secret_hash is not a field", h.admin, post("/api/v1/devices", `{"id":"saw-1","secret_hash":"$7$101$x$y"}`), 400, fablab.EINVALID},
		{"device machine_id as a number", h.admin, post("/api/v1/devices", `{"id":"saw-1","machine_id":`+h.laser.ID.String()+`}`), 400, fablab.EINVALID},
		{"device machine_id zero", h.admin, post("/api/v1/devices", `{"id":"saw-1","machine_id":"0"}`), 400, fablab.EINVALID},
		{"device machine_id not an id", h.admin, post("/api/v1/devices", `{"id":"saw-1","machine_id":"laser"}`), 400, fablab.EINVALID},
		{"device id as a number", h.admin, post("/api/v1/devices", `{"id":7}`), 400, fablab.EINVALID},
		{"device malformed JSON", h.admin, post("/api/v1/devices", `{"id":`), 400, fablab.EINVALID},
		{"device no body", h.admin, apiReq{method: "POST", path: "/api/v1/devices"}, 400, fablab.EINVALID},
		{"device as text/plain", h.admin, apiReq{method: "POST", path: "/api/v1/devices", body: `{"id":"saw-1"}`, contentType: "text/plain"}, 415, "unsupported_media_type"},
		{"device body over 1 MiB", h.admin, post("/api/v1/devices", `{"id":"`+strings.Repeat("a", maxBody)+`"}`), 413, "payload_too_large"},
		{"patch unknown field", h.admin, patch("/api/v1/devices/laser-1", `{"name":"x"}`), 400, fablab.EINVALID},
		{"patch unbind as a string", h.admin, patch("/api/v1/devices/laser-1", `{"unbind":"yes"}`), 400, fablab.EINVALID},
		{"patch unknown kind", h.admin, patch("/api/v1/devices/laser-1", `{"kind":"zigbee"}`), 400, fablab.EINVALID},
		{"patch machine_id not an id", h.admin, patch("/api/v1/devices/laser-1", `{"machine_id":"-1"}`), 400, fablab.EINVALID},
		{"patch an unknown device", h.admin, patch("/api/v1/devices/nobody", `{"kind":"tasmota"}`), 404, fablab.ENOTFOUND},
		{"patch a device id that cannot be", h.admin, patch("/api/v1/devices/NO%20BODY", `{"kind":"tasmota"}`), 404, fablab.ENOTFOUND},
		{"get an unknown device", h.admin, get("/api/v1/devices/nobody"), 404, fablab.ENOTFOUND},
		{"tap unknown field", h.staff, post(tap, `{"uid":"04A2B3C4","device":"x"}`), 400, fablab.EINVALID},
		{"tap uid not hex", h.staff, post(tap, `{"uid":"xyz"}`), 400, fablab.EINVALID},
		{"tap uid empty", h.staff, post(tap, `{"uid":""}`), 400, fablab.EINVALID},
		{"tap uid missing", h.staff, post(tap, `{}`), 400, fablab.EINVALID},
		{"tap uid of odd length", h.staff, post(tap, `{"uid":"04A2B"}`), 400, fablab.EINVALID},
		{"tap uid too long", h.staff, post(tap, `{"uid":"`+strings.Repeat("AB", 33)+`"}`), 400, fablab.EINVALID},
		{"tap uid as a number", h.staff, post(tap, `{"uid":4162}`), 400, fablab.EINVALID},
		{"tap null body", h.staff, post(tap, `null`), 400, fablab.EINVALID},
		{"tap on an unknown device", h.staff, post("/api/v1/devices/nobody/tap", `{"uid":"04A2B3C4"}`), 404, fablab.ENOTFOUND},
		{"sessions active=yes", h.staff, get("/api/v1/sessions?active=yes"), 400, fablab.EINVALID},
		{"sessions bad machine_id", h.staff, get("/api/v1/sessions?machine_id=laser"), 400, fablab.EINVALID},
		{"sessions bad member_id", h.alice, get("/api/v1/sessions?member_id=0"), 400, fablab.EINVALID},
		{"sessions bad from", h.alice, get("/api/v1/sessions?from=yesterday"), 400, fablab.EINVALID},
		{"sessions to before from", h.staff, get("/api/v1/sessions?from=" + q(now.Format(time.RFC3339)) + "&to=" + q(now.Add(-time.Hour).Format(time.RFC3339))), 400, fablab.EINVALID},
		{"sessions over a year", h.staff, get("/api/v1/sessions?from=" + q(now.Format(time.RFC3339)) + "&to=" + q(now.AddDate(1, 1, 0).Format(time.RFC3339))), 400, fablab.EINVALID},
		{"end a session id that is not one", h.staff, post("/api/v1/sessions/0/end", ""), 404, fablab.ENOTFOUND},
		{"audit limit zero", h.staff, get("/api/v1/audit?limit=0"), 400, fablab.EINVALID},
		{"audit limit negative", h.staff, get("/api/v1/audit?limit=-1"), 400, fablab.EINVALID},
		{"audit limit not a number", h.staff, get("/api/v1/audit?limit=ten"), 400, fablab.EINVALID},
		{"audit limit a fraction", h.staff, get("/api/v1/audit?limit=1.5"), 400, fablab.EINVALID},
		{"audit limit too big", h.staff, get("/api/v1/audit?limit=5001"), 400, fablab.EINVALID},
		{"audit limit with sign", h.staff, get("/api/v1/audit?limit=+5"), 400, fablab.EINVALID},
		{"audit bad machine_id", h.staff, get("/api/v1/audit?machine_id=laser"), 400, fablab.EINVALID},
		{"audit bad member_id", h.staff, get("/api/v1/audit?member_id=01"), 400, fablab.EINVALID},
		{"audit bad to", h.staff, get("/api/v1/audit?to=" + q("2026-13-01T00:00:00Z")), 400, fablab.EINVALID},
		{"audit date only", h.staff, get("/api/v1/audit?from=2026-03-01"), 400, fablab.EINVALID},
		{"audit over a year", h.staff, get("/api/v1/audit?from=" + q(now.AddDate(-2, 0, 0).Format(time.RFC3339)) + "&to=" + q(now.Format(time.RFC3339))), 400, fablab.EINVALID},
	}
	details := map[string]string{
		"device unknown field":     `"colour"`,
		"tap uid not hex":          "hexadecimal",
		"audit limit zero":         "limit",
		"sessions active=yes":      "active",
		"tap on an unknown device": "nobody",
	}
	apiCheckRefusals(t, h, cases, details)
	if evs := h.auditLog(t, "kind=tap"); len(evs) != 0 {
		t.Errorf("refused taps reached the audit log: %+v", evs)
	}
}

// "Enrol the badge just tapped on the laser": staff enrol an unknown badge
// by the hash GET /taps/unknown lists, and the next tap of it is granted.
func TestAPIEnrolUnknownTappedBadge(t *testing.T) {
	h := newAPIAccessHarness(t, true)
	d := h.seedDevice(t, "printer-1", h.printer.ID)
	tap := func() tapResult {
		r := h.do(t, "POST", "/api/v1/devices/"+d.ID+"/tap", h.staff.Token, map[string]string{"uid": "04:77:88:99:AA:BB:CC"})
		r.want(t, http.StatusOK, "")
		var out tapResult
		r.decode(t, &out)
		return out
	}
	if got := tap(); got.Decision != "deny" || got.Reason != "unknown_badge" {
		t.Fatalf("first tap: %+v", got)
	}
	var unknown []fablab.UnknownTap
	h.do(t, "GET", "/api/v1/taps/unknown", h.staff.Token, nil).decode(t, &unknown)
	if len(unknown) != 1 || unknown[0].DeviceID != d.ID {
		t.Fatalf("unknown taps: %+v", unknown)
	}
	path := "/api/v1/members/" + h.bob.ID.String() + "/badges"
	h.do(t, "POST", path, h.staff.Token, map[string]string{"hash": strings.Repeat("0", 64)}).want(t, http.StatusNotFound, fablab.ENOTFOUND)
	h.do(t, "POST", path, h.staff.Token, map[string]string{"hash": unknown[0].Hash, "uid": "0477"}).want(t, http.StatusBadRequest, fablab.EINVALID)
	h.do(t, "POST", path, h.staff.Token, map[string]string{"hash": unknown[0].Hash}).want(t, http.StatusCreated, "")
	if got := tap(); got.Decision != "grant" {
		t.Fatalf("tap after enrolment: %+v", got)
	}
}
