package access_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/access"
	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/bolt/bolttest"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/wire"
)

// retained keeps the last retained message of each topic, as a broker does.
type retained struct {
	mu   sync.Mutex
	last map[string][]byte
	n    int
}

func (r *retained) Publish(_ context.Context, topic string, payload []byte, keep bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !keep {
		return fmt.Errorf("allow-list published without retain on %s", topic)
	}
	r.last[topic] = payload
	r.n++
	return nil
}

// list decodes the allow-list retained for device dev.
func (r *retained) list(t *testing.T, dev string) wire.Allowlist {
	t.Helper()
	r.mu.Lock()
	raw, ok := r.last[wire.Topics{}.Device(dev, wire.KindAllowlist)]
	r.mu.Unlock()
	if !ok {
		t.Fatalf("no allow-list published for %s", dev)
	}
	l, err := wire.DecodeAllowlist(raw)
	if err != nil {
		t.Fatalf("allow-list of %s: %v", dev, err)
	}
	return l
}

// lab is a store with members, machines and devices, and an engine that
// publishes to a retained-message recorder.
type lab struct {
	store   *bolt.Store
	engine  *access.Engine
	pub     *retained
	now     time.Time
	uid     func(member int) string
	staff   []string // UIDs of the staff and admins
	devices []string // bound to machines needing the training, then to machines needing none
}

var allowNow = time.Date(2026, 3, 3, 14, 0, 0, 0, time.UTC)

// newLab makes makers trained members (each with one badge), a suspended
// member, and three staff and two admins created last (the highest ids);
// machines devices in all, half of them needing the training.
func newLab(t testing.TB, makers, machines int) *lab {
	t.Helper()
	ctx := t.Context()
	clock := bolttest.NewClock(allowNow)
	s := bolttest.Open(t, clock.Now)
	l := &lab{store: s, pub: &retained{last: map[string][]byte{}}, now: allowNow,
		uid: func(i int) string { return fmt.Sprintf("04%012X", i) }}
	tr, err := s.CreateTraining(ctx, fablab.Training{Name: "Laser safety"})
	if err != nil {
		t.Fatal(err)
	}
	secret := s.BadgeSecret()
	var in []bolt.MemberImport
	member := func(i int, role fablab.Role, status string) {
		mi := bolt.MemberImport{
			Member: fablab.Member{Email: fmt.Sprintf("m%d@example.org", i), Name: fmt.Sprintf("Member %d", i), Group: "student", Role: role, Status: status},
			Badges: []string{auth.BadgeHash(secret, l.uid(i))},
		}
		if role == fablab.RoleMaker {
			mi.Trainings, mi.GrantedBy = []fablab.ID{tr.ID}, 1
		}
		in = append(in, mi)
	}
	for i := range makers {
		member(i, fablab.RoleMaker, fablab.StatusActive)
	}
	member(makers, fablab.RoleMaker, fablab.StatusSuspended)
	for i := makers + 1; i <= makers+5; i++ {
		role := fablab.RoleStaff
		if i > makers+3 {
			role = fablab.RoleAdmin
		}
		member(i, role, fablab.StatusActive)
		l.staff = append(l.staff, l.uid(i))
	}
	startImport := time.Now()
	defer func() { t.Logf("set-up: %v", time.Since(startImport)) }()
	for len(in) > 0 { // in chunks: a bbolt node grows unsplit within one transaction
		n := min(len(in), 1000)
		if _, err := s.ImportMembers(ctx, in[:n]); err != nil {
			t.Fatal(err)
		}
		in = in[n:]
	}
	for i := range machines {
		var req []fablab.ID
		if i < (machines+1)/2 {
			req = []fablab.ID{tr.ID}
		}
		dev := fmt.Sprintf("dev-%02d", i)
		m, err := s.CreateMachine(ctx, fablab.Machine{Name: fmt.Sprintf("Machine %d", i), Kind: fablab.KindLaserCutter, RequiredTrainings: req})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateDevice(ctx, fablab.Device{ID: dev, MachineID: m.ID}); err != nil {
			t.Fatal(err)
		}
		l.devices = append(l.devices, dev)
	}
	l.engine = access.New(access.Config{Store: s, Pub: l.pub, Now: clock.Now})
	return l
}

// hash is badge uid's entry in device dev's list under key.
func (l *lab) hash(key bolt.AllowlistKey, dev, uid string) string {
	return auth.NewAllowlistHasher(auth.DeviceAllowlistKey(key.Root, key.ID, dev)).Hash(auth.BadgeHash(l.store.BadgeSecret(), uid))
}

func (l *lab) key(t *testing.T) bolt.AllowlistKey {
	t.Helper()
	k, err := l.store.AllowlistKey(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestAllowlistAt20000Members: the lab of DESIGN §10 and twice more. Every
// device gets a list that encodes, holds at most MaxAllowlistEntries
// entries, starts with the staff and admins (admin tier, although they
// have the highest member ids) and then the qualified members; the
// suspended member is on none.
func TestAllowlistAt20000Members(t *testing.T) {
	if testing.Short() {
		t.Skip("20 000 members: not in -short")
	}
	const makers = 20_000
	l := newLab(t, makers, 6)
	start := time.Now()
	l.engine.PublishAllowlists(t.Context())
	t.Logf("published %d allow-lists at %d members in %v", len(l.devices), makers+6, time.Since(start))
	key := l.key(t)
	for _, dev := range l.devices {
		got := l.pub.list(t, dev)
		if got.Kid != key.ID || got.Ver == 0 {
			t.Errorf("%s: kid %d ver %d, want kid %d and a version", dev, got.Kid, got.Ver, key.ID)
		}
		if len(got.Entries) != wire.MaxAllowlistEntries {
			t.Fatalf("%s: %d entries, want the bound %d (%d members qualify)", dev, len(got.Entries), wire.MaxAllowlistEntries, makers+5)
		}
		for i, uid := range l.staff {
			if e := got.Entries[i]; e.H != l.hash(key, dev, uid) || e.Tier != wire.TierAdmin {
				t.Errorf("%s: entry %d = %+v, want staff badge %s in the admin tier", dev, i, e, uid)
			}
		}
		for i, e := range got.Entries[len(l.staff):] {
			if e.Tier != wire.TierOffline || e.Until != l.now.Add(30*24*time.Hour).Unix() {
				t.Fatalf("%s: entry %d = %+v, want the offline tier for 30 days", dev, len(l.staff)+i, e)
			}
		}
		// The makers by member id: the first ones are in, the suspended one is not.
		in := map[string]bool{}
		for _, e := range got.Entries {
			in[e.H] = true
		}
		if !in[l.hash(key, dev, l.uid(0))] || in[l.hash(key, dev, l.uid(makers))] || in[l.hash(key, dev, l.uid(makers-1))] {
			t.Errorf("%s: want the first maker in, the last (beyond the bound) and the suspended one out", dev)
		}
	}
}

// TestAllowlistPerDeviceKeys: two devices get different entries for the
// same badge; each device's entries match the key its configuration gets
// (auth.DeviceAllowlistKey of the current key id), and no other device's.
func TestAllowlistPerDeviceKeys(t *testing.T) {
	l := newLab(t, 3, 2)
	l.engine.PublishAllowlists(t.Context())
	key := l.key(t)
	a, b := l.pub.list(t, l.devices[0]), l.pub.list(t, l.devices[1])
	find := func(list wire.Allowlist, h string) bool {
		for _, e := range list.Entries {
			if e.H == h {
				return true
			}
		}
		return false
	}
	for _, uid := range []string{l.uid(0), l.staff[0]} {
		ha, hb := l.hash(key, l.devices[0], uid), l.hash(key, l.devices[1], uid)
		if ha == hb {
			t.Fatalf("badge %s: the same entry on both devices", uid)
		}
		if !find(a, ha) || !find(b, hb) {
			t.Errorf("badge %s: not on the lists under each device's own key", uid)
		}
		if find(a, hb) || find(b, ha) {
			t.Errorf("badge %s: one device's key matches the other's list", uid)
		}
		if find(a, auth.BadgeHash(l.store.BadgeSecret(), uid)) {
			t.Errorf("badge %s: the lab key alone matches a list", uid)
		}
	}
}

// TestAllowlistKeyRotation: a rotation gives the next key id; the lists
// published then carry it, with a newer version and new entries, and the
// keys devices held before match none of them.
func TestAllowlistKeyRotation(t *testing.T) {
	l := newLab(t, 3, 2)
	l.engine.PublishAllowlists(t.Context())
	old := l.key(t)
	before := map[string]wire.Allowlist{}
	for _, dev := range l.devices {
		before[dev] = l.pub.list(t, dev)
	}
	k, err := l.store.RotateAllowlistKey(t.Context(), fablab.AuditEvent{At: l.now, Kind: fablab.AuditAPI, Action: "badge_key_rotated", ActorID: 1})
	if err != nil {
		t.Fatal(err)
	}
	if k.ID != old.ID+1 || string(k.Root) == string(old.Root) {
		t.Fatalf("rotated key %d, want %d with a new root", k.ID, old.ID+1)
	}
	if cur := l.key(t); cur.ID != k.ID {
		t.Fatalf("current key %d after rotation, want %d", cur.ID, k.ID)
	}
	l.engine.PublishAllowlists(t.Context())
	for _, dev := range l.devices {
		after := l.pub.list(t, dev)
		if after.Kid != k.ID || after.Ver <= before[dev].Ver {
			t.Errorf("%s: kid %d ver %d after rotation, want kid %d and a version above %d", dev, after.Kid, after.Ver, k.ID, before[dev].Ver)
		}
		if len(after.Entries) == 0 || len(after.Entries) != len(before[dev].Entries) {
			t.Fatalf("%s: %d entries after rotation, %d before", dev, len(after.Entries), len(before[dev].Entries))
		}
		oldHashes := map[string]bool{}
		for _, e := range before[dev].Entries {
			oldHashes[e.H] = true
		}
		for _, uid := range append([]string{l.uid(0), l.uid(1)}, l.staff...) {
			stale := l.hash(old, dev, uid)
			for _, e := range after.Entries {
				if e.H == stale || oldHashes[e.H] {
					t.Errorf("%s: badge %s still matches under the old key", dev, uid)
				}
			}
		}
	}
	evs, err := l.store.AuditEvents(t.Context(), bolt.AuditFilter{From: l.now.Add(-time.Hour), To: l.now.Add(time.Hour), Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Action != "badge_key_rotated" || evs[0].Detail["key_id"] != float64(k.ID) {
		t.Errorf("audit after rotation: %+v", evs)
	}
}

// BenchmarkPublishAllowlists: publishing every device's list at 20 000
// members, with as many devices as the demo lab and as DESIGN §10's.
func BenchmarkPublishAllowlists(b *testing.B) {
	for _, devices := range []int{6, 200} {
		b.Run(fmt.Sprintf("members=20000/devices=%d", devices), func(b *testing.B) {
			l := newLab(b, 20_000, devices)
			b.ResetTimer()
			for range b.N {
				l.engine.PublishAllowlists(context.Background())
			}
		})
	}
}
