package bolt

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/fabgate/fabgate/internal/fablab"
)

// migrateAccess creates the buckets of devices, sessions, taps and audit,
// and indexes the device ids that machines already name.
func migrateAccess(tx *bbolt.Tx) error {
	for _, name := range [][]byte{bDevices, bMachineDevice, bDeviceSeq, bSessions, bSessionsMach, bSessionsStart, bSessionsMember, bSessionsOpen, bTapsSeen, bUnknownTaps, bAudit} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	idx := tx.Bucket(bMachineDevice)
	return tx.Bucket(bMachines).ForEach(func(k, v []byte) error {
		var m fablab.Machine
		if err := getJSONBytes(v, &m); err != nil {
			return err
		}
		if m.DeviceID == "" {
			return nil
		}
		if idx.Get([]byte(m.DeviceID)) != nil {
			return fmt.Errorf("device %s is named by two machines; unbind one before upgrading", m.DeviceID)
		}
		return idx.Put([]byte(m.DeviceID), k)
	})
}

// migrateOpenUnindexed takes the open sessions out of the time indexes,
// which from version 4 hold ended sessions only.
func migrateOpenUnindexed(tx *bbolt.Tx) error {
	return tx.Bucket(bSessionsOpen).ForEach(func(_, v []byte) error {
		sess, err := getSession(tx, btoi(v))
		if err != nil {
			return err
		}
		id, start := itob(sess.ID), tkey(sess.Started)
		if err := tx.Bucket(bSessionsMach).Delete(cat(itob(sess.MachineID), start, id)); err != nil {
			return err
		}
		if err := tx.Bucket(bSessionsStart).Delete(cat(start, id)); err != nil {
			return err
		}
		return tx.Bucket(bSessionsMember).Delete(cat(itob(sess.MemberID), start, id))
	})
}

// bindDevice keeps machine_device/ in step with machine m's DeviceID (was:
// the device id m had before). Errors: ECONFLICT when another machine already
// uses the device.
func bindDevice(tx *bbolt.Tx, m fablab.Machine, was string) error {
	idx := tx.Bucket(bMachineDevice)
	if was != m.DeviceID && tx.Bucket(bSessionsOpen).Get(itob(m.ID)) != nil {
		return fablab.Errorf(fablab.ECONFLICT, "machine %s has an open session: end it before changing its device", m.ID)
	}
	if was != "" && was != m.DeviceID {
		if err := idx.Delete([]byte(was)); err != nil {
			return err
		}
	}
	if m.DeviceID == "" {
		return nil
	}
	if cur := idx.Get([]byte(m.DeviceID)); cur != nil && btoi(cur) != m.ID {
		return fablab.Errorf(fablab.ECONFLICT, "device %s already drives machine %s; unbind it there first", m.DeviceID, btoi(cur))
	}
	return idx.Put([]byte(m.DeviceID), itob(m.ID))
}

// deviceRecord is a device as stored, with its secret hash.
type deviceRecord struct {
	fablab.Device
	SecretHash string `json:"secret_hash"`
}

func getDevice(tx *bbolt.Tx, id string) (fablab.Device, error) {
	var r deviceRecord
	if err := getJSON(tx.Bucket(bDevices), []byte(id), &r, fmt.Sprintf("device %s", id)); err != nil {
		return fablab.Device{}, err
	}
	d := r.Device
	d.SecretHash = r.SecretHash
	if m := tx.Bucket(bMachineDevice).Get([]byte(id)); m != nil {
		d.MachineID = btoi(m)
	}
	return d, nil
}

func putDevice(tx *bbolt.Tx, d fablab.Device) error {
	d.MachineID = 0 // the binding lives in the machine and the index
	return putJSON(tx.Bucket(bDevices), []byte(d.ID), deviceRecord{Device: d, SecretHash: d.SecretHash})
}

// setDeviceBinding points machine (0: none) at device d, unbinding d from
// any other machine.
func setDeviceBinding(tx *bbolt.Tx, dev string, machine fablab.ID) error {
	if cur := tx.Bucket(bMachineDevice).Get([]byte(dev)); cur != nil && btoi(cur) != machine {
		if tx.Bucket(bSessionsOpen).Get(cur) != nil {
			return fablab.Errorf(fablab.ECONFLICT, "device %s drives machine %s, which has an open session: end it before moving the device", dev, btoi(cur))
		}
		old, err := getMachine(tx, btoi(cur))
		if err != nil {
			return err
		}
		old.DeviceID = ""
		if err := putJSON(tx.Bucket(bMachines), itob(old.ID), old); err != nil {
			return err
		}
		if err := tx.Bucket(bMachineDevice).Delete([]byte(dev)); err != nil {
			return err
		}
	}
	if machine == 0 {
		return nil
	}
	m, err := getMachine(tx, machine)
	if err != nil {
		return err
	}
	was := m.DeviceID
	m.DeviceID = dev
	if err := bindDevice(tx, m, was); err != nil {
		return err
	}
	return putJSON(tx.Bucket(bMachines), itob(m.ID), m)
}

// CreateDevice stores a new device (with its secret hash) and binds it to
// d.MachineID when set. Errors: EINVALID, ENOTFOUND (machine), ECONFLICT
// (the id is taken).
func (s *Store) CreateDevice(ctx context.Context, d fablab.Device) (fablab.Device, error) {
	if err := d.Validate(); err != nil {
		return d, err
	}
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		if tx.Bucket(bDevices).Get([]byte(d.ID)) != nil {
			return fablab.Errorf(fablab.ECONFLICT, "device %s already exists; rotate its secret instead", d.ID)
		}
		d.CreatedAt = s.now().UTC().Truncate(0)
		if err := putDevice(tx, d); err != nil {
			return err
		}
		if d.MachineID != 0 {
			return setDeviceBinding(tx, d.ID, d.MachineID)
		}
		if m := tx.Bucket(bMachineDevice).Get([]byte(d.ID)); m != nil {
			d.MachineID = btoi(m) // a machine named it before it existed
		}
		return nil
	})
	return d, err
}

// Device returns a device (with its secret hash and machine). Errors: ENOTFOUND.
func (s *Store) Device(ctx context.Context, id string) (fablab.Device, error) {
	var d fablab.Device
	err := s.view(ctx, func(tx *bbolt.Tx) (err error) {
		d, err = getDevice(tx, id)
		return err
	})
	return d, err
}

// Devices lists every device by id. (A lab has tens to hundreds.)
func (s *Store) Devices(ctx context.Context) ([]fablab.Device, error) {
	out := []fablab.Device{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		return tx.Bucket(bDevices).ForEach(func(k, _ []byte) error {
			d, err := getDevice(tx, string(k))
			if err != nil {
				return err
			}
			out = append(out, d)
			return nil
		})
	})
	return out, err
}

// UpdateDevice changes a device's kind, secret hash or machine binding
// (MachineID 0 unbinds). Errors: ENOTFOUND, EINVALID, ECONFLICT.
func (s *Store) UpdateDevice(ctx context.Context, id string, fn func(*fablab.Device) error) (fablab.Device, error) {
	var out fablab.Device
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		d, err := getDevice(tx, id)
		if err != nil {
			return err
		}
		was := d.MachineID
		if err := fn(&d); err != nil {
			return err
		}
		d.ID = id
		if err := d.Validate(); err != nil {
			return err
		}
		if d.MachineID != was {
			if err := setDeviceBinding(tx, id, d.MachineID); err != nil {
				return err
			}
		}
		out = d
		return putDevice(tx, d)
	})
	return out, err
}

// DeleteDevice removes a device: its record and its machine binding (the
// machine is left without a device). Its reserved command seq numbers are
// kept, so a device made again under the same id never takes a new command
// for a stale one. It returns the device as it was. Errors: ENOTFOUND,
// ECONFLICT (its machine has an open session: end it first).
func (s *Store) DeleteDevice(ctx context.Context, id string) (fablab.Device, error) {
	var d fablab.Device
	err := s.update(ctx, func(tx *bbolt.Tx) (err error) {
		if d, err = getDevice(tx, id); err != nil {
			return err
		}
		if err := setDeviceBinding(tx, id, 0); err != nil {
			return err
		}
		return tx.Bucket(bDevices).Delete([]byte(id))
	})
	return d, err
}

// MachineOfDevice returns the machine a device drives. Errors: ENOTFOUND
// (the device drives no machine).
func (s *Store) MachineOfDevice(ctx context.Context, dev string) (fablab.Machine, error) {
	var m fablab.Machine
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		id := tx.Bucket(bMachineDevice).Get([]byte(dev))
		if id == nil {
			return fablab.Errorf(fablab.ENOTFOUND, "device %s drives no machine", dev)
		}
		var err error
		m, err = s.readMachine(tx, btoi(id))
		return err
	})
	return m, err
}

// seqBlock is how many command seq numbers are reserved per write.
const seqBlock = 1000

// ReserveSeq durably reserves the next block of command seq numbers of a
// device and returns [first, last]. Numbers are never reused, even across
// restarts, so a device never takes a new command for a stale one.
func (s *Store) ReserveSeq(ctx context.Context, dev string) (first, last uint64, err error) {
	err = s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bDeviceSeq)
		var cur uint64
		if v := b.Get([]byte(dev)); len(v) == 8 {
			cur = uint64(btoi(v))
		}
		first, last = cur+1, cur+seqBlock
		return b.Put([]byte(dev), u64(last))
	})
	return first, last, err
}

var kMQTTServerPassword = []byte("mqtt_server_password")

// ServerMQTTPassword returns the password of the server's own user on an
// external broker, making one the first time. It is stored in the clear
// (the file is the server's own, mode 0600): the server needs it to log in.
func (s *Store) ServerMQTTPassword(ctx context.Context) (string, error) {
	var pw string
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bMeta)
		if v := meta.Get(kMQTTServerPassword); v != nil {
			pw = string(v)
			return nil
		}
		pw = newSecret()
		return meta.Put(kMQTTServerPassword, []byte(pw))
	})
	return pw, err
}

// newSecret returns 32 random bytes as unpadded URL-safe base64.
func newSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
