package lab_test

import (
	"context"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/wire"
)

// TestAllowlistEndToEnd: each device receives, retained, the badges that may
// use its machine offline; a change is published again once, after the
// debounce, with a higher version.
func TestAllowlistEndToEnd(t *testing.T) {
	for _, kind := range []brokerKind{embedded, mosquitto} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, kind)
			in := &inbox{}
			topic := e.topics.Device(devLaser, wire.KindAllowlist)
			if err := e.raw(devLaser).Subscribe(topic, 1, in.handle); err != nil {
				t.Fatal(err)
			}
			latest := func() wire.Allowlist {
				msgs := in.on(topic)
				l, err := wire.DecodeAllowlist(msgs[len(msgs)-1])
				if err != nil {
					t.Fatal(err)
				}
				return l
			}
			e.eventually("the retained allow-list", func() bool { return len(in.on(topic)) > 0 })
			first := latest()
			key, err := e.store.AllowlistKey(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if first.Kid != key.ID {
				t.Errorf("allow-list of key %d, want the current key %d", first.Kid, key.ID)
			}
			// Hashed with the device's own key (protocol §8.1).
			devKey := auth.NewAllowlistHasher(auth.DeviceAllowlistKey(key.Root, key.ID, devLaser))
			hash := func(uid string) string { return devKey.Hash(auth.BadgeHash(e.store.BadgeSecret(), uid)) }
			tiers := map[string]wire.AllowEntry{}
			for _, en := range first.Entries {
				tiers[en.H] = en
			}
			if en, ok := tiers[hash(uidSam)]; !ok || en.Tier != wire.TierAdmin {
				t.Errorf("staff: %+v, want the admin tier", en)
			}
			for _, uid := range []string{uidAda, uidBob} {
				en, ok := tiers[hash(uid)]
				// Qualified for a year: capped 30 days ahead.
				if !ok || en.Tier != wire.TierOffline || en.Until != t0.Add(30*24*time.Hour).Unix() {
					t.Errorf("member %s: %+v", uid, en)
				}
			}
			for _, uid := range []string{uidSuspended, uidExpired, uidUntrained, uidUnknown} {
				if _, ok := tiers[hash(uid)]; ok {
					t.Errorf("badge %s is on the allow-list", uid)
				}
			}

			// Ugo is trained: after the debounce, the list includes him.
			exp := t0.Add(10 * 24 * time.Hour)
			if _, err := e.store.GrantQualification(context.Background(), fablab.Qualification{MemberID: e.untrained.ID, TrainingID: e.training.ID, GrantedBy: e.sam.ID, ExpiresAt: &exp}); err != nil {
				t.Fatal(err)
			}
			e.lab.Engine.AllowlistsChanged()
			e.lab.Engine.FlushAllowlists(context.Background())
			e.clock.Advance(2 * time.Second)
			e.lab.Engine.FlushAllowlists(context.Background())
			e.lab.Engine.FlushAllowlists(context.Background()) // nothing more to publish
			e.eventually("the new allow-list", func() bool { return latest().Ver > first.Ver })
			second := latest()
			found := false
			for _, en := range second.Entries {
				if en.H == hash(uidUntrained) {
					found = en.Tier == wire.TierOffline && en.Until == exp.Unix()
				}
			}
			if !found {
				t.Errorf("the newly trained member is not on the list until his qualification ends: %+v", second.Entries)
			}
			if n := len(in.on(topic)); n != 2 {
				t.Errorf("%d allow-lists received, want 2 (the change published once, after the debounce)", n)
			}
		})
	}
}
