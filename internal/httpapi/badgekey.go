package httpapi

import (
	"context"
	"encoding/hex"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
)

// deviceKey is what a device needs in its bridge configuration to match
// badges against its offline allowlist (docs/protocol.md §8.1).
type deviceKey struct {
	// BadgeKey is the lab's badge key (hex): the same for every device,
	// never rotated (stored badges are hashed with it).
	BadgeKey string `json:"badge_key"`
	// AllowlistKey is the device's own allowlist key (hex) and
	// AllowlistKeyID its id, which the device's allowlists carry as kid.
	AllowlistKey   string `json:"allowlist_key"`
	AllowlistKeyID int64  `json:"allowlist_key_id"`
}

// deviceKeyOf derives device dev's keys under allowlist key k.
func (s *Server) deviceKeyOf(k bolt.AllowlistKey, dev string) deviceKey {
	return deviceKey{
		BadgeKey:       hex.EncodeToString(s.store.BadgeSecret()),
		AllowlistKey:   hex.EncodeToString(auth.DeviceAllowlistKey(k.Root, k.ID, dev)),
		AllowlistKeyID: k.ID,
	}
}

// deviceCreatedView is a device with its MQTT credentials and keys, shown
// once when they are made.
func (s *Server) deviceCreatedView(ctx context.Context, d fablab.Device, secret string) (deviceCreated, error) {
	k, err := s.store.AllowlistKey(ctx)
	if err != nil {
		return deviceCreated{}, err
	}
	return deviceCreated{deviceView: s.view(d), MQTTUsername: d.ID, MQTTSecret: secret, deviceKey: s.deviceKeyOf(k, d.ID)}, nil
}

type badgeKeyRotated struct {
	KeyID   int64            `json:"key_id"`
	Devices []deviceKeyEntry `json:"devices"`
}

type deviceKeyEntry struct {
	ID string `json:"id"`
	deviceKey
}

// rotateBadgeKey replaces the allowlist key from which every device's key
// is derived, publishes every device's allowlist under its new key at once,
// and answers each device's new key for its bridge configuration. The lab
// badge key itself does not change (see docs/decisions.md).
func (s *Server) rotateBadgeKey(c *gin.Context) {
	ctx := c.Request.Context()
	by := member(c).ID
	k, err := s.store.RotateAllowlistKey(ctx, fablab.AuditEvent{At: s.now(), Kind: fablab.AuditAPI, Action: "badge_key_rotated", ActorID: by})
	if err != nil {
		s.fail(c, err)
		return
	}
	if s.access != nil {
		s.access.PublishAllowlists(context.WithoutCancel(ctx))
	}
	ds, err := s.store.Devices(ctx)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := badgeKeyRotated{KeyID: k.ID, Devices: make([]deviceKeyEntry, len(ds))}
	for i, d := range ds {
		out.Devices[i] = deviceKeyEntry{ID: d.ID, deviceKey: s.deviceKeyOf(k, d.ID)}
	}
	s.log.Warn("badge key rotated: every bridge needs its new allowlist_key", "key_id", k.ID, "by", by)
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, out)
}
