package access

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
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
// device (empty for a device bound to no machine), each hashed with the
// device's own key (protocol §8.1). The facts are read once, and each
// machine's list built once, whatever the number of devices. Publishes run
// one at a time, so a list built before a key rotation never lands after
// the lists of the new key.
func (e *Engine) PublishAllowlists(ctx context.Context) {
	e.allowPub.Lock()
	defer e.allowPub.Unlock()
	f, err := e.cfg.Store.AllowlistFacts(ctx)
	if err != nil {
		e.cfg.Log.Error("allow-lists: read", "err", err)
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
	// Machines in the same state needing the same trainings have the same
	// list: each list is built once.
	built := map[string]machineList{}
	lists := make([]machineList, len(f.Devices))
	for i, d := range f.Devices {
		mc, ok := f.Machines[d.MachineID]
		if !ok {
			continue // an unbound device gets an empty list in place of its old one
		}
		sig := listSignature(&mc)
		ml, ok := built[sig]
		if !ok {
			ml = buildAllowlist(f.Holders, &mc, now)
			built[sig] = ml
		}
		if ml.left > 0 {
			e.cfg.Log.Warn("allow-list bounded: members beyond it are decided online only", "device", d.ID, "machine", mc.ID, "max", wire.MaxAllowlistEntries, "left_out", ml.left)
		}
		lists[i] = ml
	}
	// Hashing, encoding and publishing are per device: spread over the cores.
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(f.Devices)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(f.Devices); i = int(next.Add(1) - 1) {
				e.publishAllowlist(ctx, f.Devices[i].ID, f.Key, lists[i], ver, now)
			}
		})
	}
	wg.Wait()
}

// publishAllowlist hashes a machine's list with device dev's key and
// publishes it, retained.
func (e *Engine) publishAllowlist(ctx context.Context, dev string, key bolt.AllowlistKey, ml machineList, ver int64, now time.Time) {
	h := auth.NewAllowlistHasher(auth.DeviceAllowlistKey(key.Root, key.ID, dev))
	w := wire.NewAllowlistWriter(make([]byte, 0, 64+len(ml.entries)*111), ver, now.Unix(), key.ID)
	var sum [32]byte
	for _, en := range ml.entries {
		h.Sum(en.H, &sum)
		w.Entry(&sum, en.Tier, en.Until)
	}
	payload, err := w.Bytes()
	if err != nil {
		e.cfg.Log.Error("encode allow-list", "device", dev, "err", err)
		return
	}
	if err := e.cfg.Pub.Publish(ctx, e.cfg.Topics.Device(dev, wire.KindAllowlist), payload, true); err != nil {
		e.cfg.Log.Warn("publish allow-list", "device", dev, "err", err)
	}
}

// listSignature is what a machine's allow-list depends on: its state and
// the trainings it requires.
func listSignature(mc *fablab.Machine) string {
	ids := slices.Clone(mc.RequiredTrainings)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	var b strings.Builder
	b.WriteString(mc.State)
	for _, id := range ids {
		fmt.Fprintf(&b, "/%d", id)
	}
	return b.String()
}

// machineList is a machine's allow-list before it is hashed for a device:
// H holds the badge's stored hash (lab key).
type machineList struct {
	entries []wire.AllowEntry
	left    int // eligible badges left out by the bound
}

// buildAllowlist lists the badges that may use machine mc offline, in the
// order and within the bound of protocol §8.2: first the badges of active
// staff and admins (admin tier; none for a retired machine), then those of
// the members fablab.Eligible admits to the machine at now (offline tier,
// until their right ends, at most offlineHorizon ahead), each group by
// member id; at most wire.MaxAllowlistEntries in all.
func buildAllowlist(holders []bolt.BadgeHolder, mc *fablab.Machine, now time.Time) machineList {
	var staff, makers []wire.AllowEntry
	horizon := now.Add(offlineHorizon)
	for i := range holders {
		h := &holders[i]
		el := fablab.Eligible(&h.Member, mc, h.Quals, now)
		switch {
		case el.Staff && el.Reason != fablab.IneligibleInactive && mc.State != fablab.MachineRetired:
			// DESIGN §5: the admin tier, whatever the machine needs.
			for _, b := range h.Badges {
				staff = append(staff, wire.AllowEntry{H: b, Tier: wire.TierAdmin})
			}
		case el.OK:
			until := horizon
			if !el.Until.IsZero() && el.Until.Before(horizon) {
				until = el.Until
			}
			for _, b := range h.Badges {
				makers = append(makers, wire.AllowEntry{H: b, Tier: wire.TierOffline, Until: until.Unix()})
			}
		}
	}
	all := append(staff, makers...)
	ml := machineList{entries: all}
	if len(all) > wire.MaxAllowlistEntries {
		ml.entries, ml.left = all[:wire.MaxAllowlistEntries], len(all)-wire.MaxAllowlistEntries
	}
	return ml
}
