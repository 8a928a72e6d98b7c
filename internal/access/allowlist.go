package access

import (
	"context"
	"time"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/wire"
)

// allowlistDebounce is how long the allow-lists wait after a change before
// they are published, so that a batch of edits publishes once.
const allowlistDebounce = 2 * time.Second

// offlineHorizon caps the offline right of members whose membership and
// qualifications do not end: the lists are published again long before.
const offlineHorizon = 30 * 24 * time.Hour

// AllowlistsChanged notes that members, badges, qualifications or machines
// changed: the offline allow-lists are published again shortly.
func (e *Engine) AllowlistsChanged() {
	e.mu.Lock()
	e.allowDirty, e.allowChanged = true, e.cfg.Now()
	e.mu.Unlock()
}

// FlushAllowlists publishes the allow-lists if they changed at least the
// debounce delay ago.
func (e *Engine) FlushAllowlists(ctx context.Context) {
	e.mu.Lock()
	due := e.allowDirty && e.cfg.Now().Sub(e.allowChanged) >= allowlistDebounce
	if due {
		e.allowDirty = false
	}
	e.mu.Unlock()
	if due {
		e.PublishAllowlists(ctx)
	}
}

// PublishAllowlists publishes, retained, the offline allow-list of every
// device (empty for a device bound to no machine).
func (e *Engine) PublishAllowlists(ctx context.Context) {
	devices, err := e.cfg.Store.Devices(ctx)
	if err != nil {
		e.cfg.Log.Error("allow-lists: devices", "err", err)
		return
	}
	now := e.cfg.Now()
	e.mu.Lock()
	e.allowVer++
	if v := now.UnixMilli(); v > e.allowVer {
		e.allowVer = v // increasing across restarts too
	}
	ver := e.allowVer
	e.mu.Unlock()
	for _, d := range devices {
		var entries []bolt.AllowEntry
		if d.MachineID != 0 { // an unbound device gets an empty list in place of its old one
			if entries, err = e.cfg.Store.Allowlist(ctx, d.MachineID, now); err != nil {
				e.cfg.Log.Error("allow-list", "device", d.ID, "err", err)
				continue
			}
		}
		list := wire.Allowlist{Ver: ver, Issued: now.Unix(), Entries: make([]wire.AllowEntry, 0, len(entries))}
		for _, a := range entries {
			en := wire.AllowEntry{H: a.Hash, Tier: wire.TierOffline}
			switch {
			case a.Admin:
				en.Tier = wire.TierAdmin
			case a.Until.IsZero() || a.Until.Sub(now) > offlineHorizon:
				en.Until = now.Add(offlineHorizon).Unix()
			default:
				en.Until = a.Until.Unix()
			}
			list.Entries = append(list.Entries, en)
		}
		payload, err := wire.Encode(&list)
		if err != nil {
			e.cfg.Log.Error("encode allow-list", "device", d.ID, "err", err)
			continue
		}
		if err := e.cfg.Pub.Publish(ctx, e.cfg.Topics.Device(d.ID, wire.KindAllowlist), payload, true); err != nil {
			e.cfg.Log.Warn("publish allow-list", "device", d.ID, "err", err)
		}
	}
}
