package httpapi

import (
	"encoding/hex"
	"net/http"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
)

// TestAPIDeviceKeys: a new device is shown its own allowlist key (derived
// from the server's allowlist key, different from another device's); a
// rotation answers every device's new key under the next key id, which no
// longer matches the old, and is audited with who asked.
func TestAPIDeviceKeys(t *testing.T) {
	h := newAPIAccessHarness(t, false)
	var keys struct {
		BadgeKey       string `json:"badge_key"`
		AllowlistKey   string `json:"allowlist_key"`
		AllowlistKeyID int64  `json:"allowlist_key_id"`
	}
	h.do(t, "POST", "/api/v1/devices", h.admin.Token, map[string]any{"id": "laser-9", "machine_id": h.laser.ID.String()}).want(t, http.StatusCreated, "")
	r := h.do(t, "POST", "/api/v1/devices", h.admin.Token, map[string]any{"id": "printer-9"})
	r.want(t, http.StatusCreated, "")
	r.decode(t, &keys)
	k, err := h.store.AllowlistKey(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if keys.AllowlistKeyID != k.ID || keys.AllowlistKey != hex.EncodeToString(auth.DeviceAllowlistKey(k.Root, k.ID, "printer-9")) ||
		keys.BadgeKey != hex.EncodeToString(h.store.BadgeSecret()) {
		t.Fatalf("keys of a new device %+v, want its derived key under key %d", keys, k.ID)
	}

	r = h.do(t, "POST", "/api/v1/badge-key/rotate", h.admin.Token, nil)
	r.want(t, http.StatusOK, "")
	var rot badgeKeyRotated
	r.decode(t, &rot)
	nk, err := h.store.AllowlistKey(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rot.KeyID != k.ID+1 || nk.ID != rot.KeyID || len(rot.Devices) != 2 {
		t.Fatalf("rotation answer %+v, stored key %d; want key %d and two devices", rot, nk.ID, k.ID+1)
	}
	seen := map[string]bool{}
	for _, d := range rot.Devices {
		want := hex.EncodeToString(auth.DeviceAllowlistKey(nk.Root, nk.ID, d.ID))
		if d.AllowlistKey != want || d.AllowlistKeyID != nk.ID || d.AllowlistKey == hex.EncodeToString(auth.DeviceAllowlistKey(k.Root, k.ID, d.ID)) {
			t.Errorf("device %s: %+v, want its new key %s", d.ID, d, want)
		}
		if seen[d.AllowlistKey] {
			t.Errorf("device %s: the same key as another device", d.ID)
		}
		seen[d.AllowlistKey] = true
	}
	evs, err := h.store.AuditEvents(t.Context(), bolt.AuditFilter{From: h.clock.Now().Add(-time.Hour), To: h.clock.Now().Add(time.Hour), Kind: fablab.AuditAPI, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	audited := false
	for _, e := range evs {
		audited = audited || e.Action == "badge_key_rotated" && e.ActorID == h.admin.ID && e.Detail["key_id"] == float64(nk.ID)
	}
	if !audited {
		t.Errorf("no audit of the rotation by the admin: %+v", evs)
	}
	h.do(t, "POST", "/api/v1/badge-key/rotate", h.staff.Token, nil).want(t, http.StatusForbidden, fablab.EFORBIDDEN)
}
