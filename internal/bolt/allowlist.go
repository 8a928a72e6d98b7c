package bolt

import (
	"context"
	"crypto/rand"

	bbolt "go.etcd.io/bbolt"

	"github.com/fabgate/fabgate/internal/fablab"
)

// kAllowlistKey holds the allowlist key (meta/"allowlist_key", made on
// first use): the server-only root from which each device's allowlist key
// is derived, and its id.
var kAllowlistKey = []byte("allowlist_key")

// AllowlistKey is the root of the devices' allowlist keys (see
// auth.DeviceAllowlistKey) and its id, which a rotation increases. It never
// leaves the server; devices get keys derived from it.
type AllowlistKey struct {
	ID   int64
	Root []byte // 32 random bytes
}

// allowlistKeyRecord is the stored form of an AllowlistKey.
type allowlistKeyRecord struct {
	ID   int64  `json:"id"`
	Root []byte `json:"root"`
}

func readAllowlistKey(tx *bbolt.Tx) (AllowlistKey, bool, error) {
	raw := tx.Bucket(bMeta).Get(kAllowlistKey)
	if raw == nil {
		return AllowlistKey{}, false, nil
	}
	var r allowlistKeyRecord
	if err := getJSONBytes(raw, &r); err != nil {
		return AllowlistKey{}, false, err
	}
	return AllowlistKey(r), true, nil
}

func putAllowlistKey(tx *bbolt.Tx, id int64) (AllowlistKey, error) {
	k := AllowlistKey{ID: id, Root: make([]byte, 32)}
	if _, err := rand.Read(k.Root); err != nil {
		return AllowlistKey{}, err
	}
	return k, putJSON(tx.Bucket(bMeta), kAllowlistKey, allowlistKeyRecord(k))
}

// AllowlistKey returns the current allowlist key, making the first one
// (id 1) if there is none yet.
func (s *Store) AllowlistKey(ctx context.Context) (AllowlistKey, error) {
	var k AllowlistKey
	var ok bool
	err := s.view(ctx, func(tx *bbolt.Tx) (err error) {
		k, ok, err = readAllowlistKey(tx)
		return err
	})
	if err != nil || ok {
		return k, err
	}
	err = s.update(ctx, func(tx *bbolt.Tx) (err error) {
		if k, ok, err = readAllowlistKey(tx); err != nil || ok {
			return err
		}
		k, err = putAllowlistKey(tx, 1)
		return err
	})
	return k, err
}

// RotateAllowlistKey replaces the allowlist key by a new random one with
// the next id, and records events (the audit of who asked) in the same
// transaction. Badge hashes are not touched: they are keyed with the lab
// key, which does not change (raw UIDs are not kept to hash again).
func (s *Store) RotateAllowlistKey(ctx context.Context, events ...fablab.AuditEvent) (AllowlistKey, error) {
	var k AllowlistKey
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		cur, _, err := readAllowlistKey(tx)
		if err != nil {
			return err
		}
		if k, err = putAllowlistKey(tx, cur.ID+1); err != nil {
			return err
		}
		for i := range events {
			if events[i].Detail == nil {
				events[i].Detail = map[string]any{}
			}
			events[i].Detail["key_id"] = k.ID
		}
		return appendAudit(tx, events)
	})
	return k, err
}

// BadgeHolder is a member who holds badges, with what deciding their
// offline right needs.
type BadgeHolder struct {
	Member fablab.Member
	Badges []string // the badges' hashes (lab key)
	Quals  []fablab.Qualification
}

// AllowlistFacts is what publishing every device's allowlist reads, in one
// transaction: read once per publish, not once per device.
type AllowlistFacts struct {
	Key      AllowlistKey
	Devices  []fablab.Device              // by id
	Machines map[fablab.ID]fablab.Machine // the machines devices drive
	Holders  []BadgeHolder                // by member id
}

// AllowlistFacts reads the facts of the allowlists: the allowlist key (made
// if there is none yet), the devices and their machines, and every member
// holding a badge with their qualifications. It reads every badge: it runs
// when the lists change, never on a request path.
func (s *Store) AllowlistFacts(ctx context.Context) (AllowlistFacts, error) {
	key, err := s.AllowlistKey(ctx)
	if err != nil {
		return AllowlistFacts{}, err
	}
	f := AllowlistFacts{Machines: map[fablab.ID]fablab.Machine{}}
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		if k, ok, err := readAllowlistKey(tx); err != nil {
			return err
		} else if ok {
			key = k // a rotation since: the newest
		}
		f.Key = key
		if err := tx.Bucket(bDevices).ForEach(func(k, _ []byte) error {
			d, err := getDevice(tx, string(k))
			if err != nil {
				return err
			}
			f.Devices = append(f.Devices, d)
			if _, ok := f.Machines[d.MachineID]; d.MachineID != 0 && !ok {
				if f.Machines[d.MachineID], err = s.readMachine(tx, d.MachineID); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
		// badges_member/ is member id | hash: one run of keys per holder.
		c := tx.Bucket(bBadgesMember).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if len(k) <= 8 {
				continue
			}
			id := btoi(k[:8])
			if n := len(f.Holders); n == 0 || f.Holders[n-1].Member.ID != id {
				r, err := s.readMember(tx, id)
				if err != nil {
					return err
				}
				quals, err := qualificationsOf(tx, id)
				if err != nil {
					return err
				}
				f.Holders = append(f.Holders, BadgeHolder{Member: r.Member, Quals: quals})
			}
			h := &f.Holders[len(f.Holders)-1]
			h.Badges = append(h.Badges, string(k[8:]))
		}
		return nil
	})
	return f, err
}
