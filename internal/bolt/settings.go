package bolt

import (
	"context"
	"encoding/json"

	bbolt "go.etcd.io/bbolt"

	"github.com/fabgate/fabgate/internal/fablab"
)

func loadSettings(tx *bbolt.Tx) (fablab.Settings, error) {
	raw := tx.Bucket(bMeta).Get(kSettings)
	if raw == nil {
		return fablab.Settings{}, fablab.Errorf(fablab.ENOTFOUND, "settings do not exist")
	}
	return decodeSettings(raw)
}

func decodeSettings(raw []byte) (fablab.Settings, error) {
	var s fablab.Settings
	if err := getJSONBytes(raw, &s); err != nil {
		return s, err
	}
	if err := s.Validate(); err != nil { // loads the time zone
		return s, fablab.Internal(err, "stored settings are invalid")
	}
	return s, nil
}

// readSettings is loadSettings through the decode cache, for read-only use.
func (s *Store) readSettings(tx *bbolt.Tx) (fablab.Settings, error) {
	raw := tx.Bucket(bMeta).Get(kSettings)
	if raw == nil {
		return fablab.Settings{}, fablab.Errorf(fablab.ENOTFOUND, "settings do not exist")
	}
	return s.settingsCache.get(0, raw)
}

func loadTariffs(tx *bbolt.Tx) ([]fablab.TariffGroup, error) {
	var gs []fablab.TariffGroup
	err := getJSON(tx.Bucket(bMeta), kTariffs, &gs, "tariff groups")
	return gs, err
}

// Settings returns the lab settings. The slices of the result are shared
// with the store's cache: callers must not modify them.
func (s *Store) Settings(ctx context.Context) (fablab.Settings, error) {
	var out fablab.Settings
	err := s.view(ctx, func(tx *bbolt.Tx) (err error) {
		out, err = s.readSettings(tx)
		return err
	})
	return out, err
}

// UpdateSettings applies fn to the settings and stores the result if it
// validates. Errors: whatever fn returns, EINVALID.
func (s *Store) UpdateSettings(ctx context.Context, fn func(*fablab.Settings) error) (fablab.Settings, error) {
	var out fablab.Settings
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		cur, err := loadSettings(tx)
		if err != nil {
			return err
		}
		if err := fn(&cur); err != nil {
			return err
		}
		if err := cur.Validate(); err != nil {
			return err
		}
		raw, err := json.Marshal(cur)
		if err != nil {
			return fablab.Internal(err, "encode settings")
		}
		// The file must stay openable: what is stored must read back.
		if _, err := decodeSettings(raw); err != nil {
			return fablab.Internal(err, "settings would not read back")
		}
		out = cur
		return tx.Bucket(bMeta).Put(kSettings, raw)
	})
	return out, err
}

// TariffGroups returns the tariff groups.
func (s *Store) TariffGroups(ctx context.Context) ([]fablab.TariffGroup, error) {
	var out []fablab.TariffGroup
	err := s.view(ctx, func(tx *bbolt.Tx) (err error) {
		out, err = loadTariffs(tx)
		return err
	})
	return out, err
}

// PutTariffGroups replaces the tariff groups. Groups may be added and renamed
// but not removed, since members, organisations and prices refer to them.
// Errors: EINVALID.
func (s *Store) PutTariffGroups(ctx context.Context, gs []fablab.TariffGroup) ([]fablab.TariffGroup, error) {
	if err := fablab.ValidateTariffGroups(gs); err != nil {
		return nil, err
	}
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		cur, err := loadTariffs(tx)
		if err != nil {
			return err
		}
		keep := map[string]bool{}
		for _, g := range gs {
			keep[g.ID] = true
		}
		for _, g := range cur {
			if !keep[g.ID] {
				return fablab.Errorf(fablab.EINVALID, "tariff group %q cannot be removed: members, organisations and prices may refer to it (rename it instead)", g.ID)
			}
		}
		return putJSON(tx.Bucket(bMeta), kTariffs, gs)
	})
	if err != nil {
		return nil, err
	}
	return gs, nil
}
