package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/fabgate/fabgate/firmware-bridge/bridge"
	"github.com/fabgate/fabgate/firmware-bridge/reader"
	"github.com/fabgate/fabgate/firmware-bridge/relay"
	"github.com/fabgate/fabgate/internal/access"
	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/lab"
	"github.com/fabgate/fabgate/internal/mqtt"
	"github.com/fabgate/fabgate/internal/wire"
)

// demoBridges are the demo lab's devices: one fabgate-bridge device per demo
// machine, with a simulated reader and relay, connected to the embedded
// broker like a real one. A tap from the staff page is read by the
// simulated reader and travels the real path: bridge → broker → server →
// unlock → bridge → relay → ack.
type demoBridges struct {
	*access.Engine // the API's access engine; Tap goes through the readers
	store          *bolt.Store
	running        *lab.Lab
	devices        []*bridge.Device
	readers        map[string]*reader.Sim
	byID           map[string]*bridge.Device

	mu       sync.Mutex
	lastRead map[string]time.Time // device/uid → when the simulated reader last read it
}

// startDemoBridges registers (or re-keys: the demo makes new secrets at each
// start, since stored secrets are hashed) and starts a bridge device for
// every demo machine; their offline state lives under dataDir, and they keep
// the server's time (clock).
func startDemoBridges(ctx context.Context, store *bolt.Store, running *lab.Lab, dataDir string, clock bridge.Clock, log *slog.Logger) (*demoBridges, error) {
	page, err := store.Machines(ctx, 0, 1000)
	if err != nil {
		return nil, err
	}
	db := &demoBridges{Engine: running.Engine, store: store, running: running, readers: map[string]*reader.Sim{}, byID: map[string]*bridge.Device{}, lastRead: map[string]time.Time{}}
	for _, m := range page.Items {
		if m.DeviceID == "" {
			continue
		}
		secret := auth.NewToken()
		hash, err := mqtt.MosquittoPasswordHash(secret)
		if err != nil {
			db.Close()
			return nil, err
		}
		if err := registerDemoDevice(ctx, store, m, hash); err != nil {
			db.Close()
			return nil, err
		}
		key, err := store.AllowlistKey(ctx)
		if err != nil {
			db.Close()
			return nil, err
		}
		rd := reader.NewSim()
		d, err := bridge.Start(ctx, bridge.DeviceConfig{
			ID: m.DeviceID, Secret: secret, Broker: running.URL, TLS: running.ClientTLS, Prefix: running.Topics.Prefix, BadgeKey: store.BadgeSecret(),
			AllowlistKey: auth.DeviceAllowlistKey(key.Root, key.ID, m.DeviceID), AllowlistKeyID: key.ID,
			StateDir: filepath.Join(dataDir, "demo-bridge", m.DeviceID), Reader: rd, Relay: relay.NewSim(150),
			FW: "fabgate-bridge demo " + version, Clock: clock, Log: log.With("component", "demo_bridge"),
		})
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("demo device %s: %w", m.DeviceID, err)
		}
		db.devices = append(db.devices, d)
		db.readers[m.DeviceID], db.byID[m.DeviceID] = rd, d
	}
	log.Info("demo bridges running", "count", len(db.devices))
	return db, nil
}

// deviceRegistry is what registering a demo device needs of the store.
type deviceRegistry interface {
	Device(ctx context.Context, id string) (fablab.Device, error)
	CreateDevice(ctx context.Context, d fablab.Device) (fablab.Device, error)
	UpdateDevice(ctx context.Context, id string, fn func(*fablab.Device) error) (fablab.Device, error)
}

// registerDemoDevice creates machine m's bridge device with the secret hash
// hash, or gives the existing one that hash. Every failure is returned: a
// demo device left with an old secret could never connect.
func registerDemoDevice(ctx context.Context, store deviceRegistry, m fablab.Machine, hash string) error {
	_, err := store.Device(ctx, m.DeviceID)
	switch {
	case fablab.ErrorCode(err) == fablab.ENOTFOUND:
		_, err = store.CreateDevice(ctx, fablab.Device{ID: m.DeviceID, Kind: fablab.DeviceBridge, MachineID: m.ID, SecretHash: hash})
	case err == nil:
		_, err = store.UpdateDevice(ctx, m.DeviceID, func(d *fablab.Device) error { d.SecretHash = hash; return nil })
	}
	if err != nil {
		return fmt.Errorf("demo device %s: %w", m.DeviceID, err)
	}
	return nil
}

// Close stops the demo devices (their relays off).
func (db *demoBridges) Close() {
	for _, d := range db.devices {
		d.Close()
	}
}

// Tap reads a badge on a demo device's simulated reader and returns the
// server's decision, taken from the live tap event. A device without a
// simulated reader is decided directly.
func (db *demoBridges) Tap(ctx context.Context, dev, uid string) (access.Decision, error) {
	rd := db.readers[dev]
	if rd == nil {
		return db.Engine.Tap(ctx, dev, uid)
	}
	uid, err := fablab.NormalizeUID(uid)
	if err != nil {
		return access.Decision{}, err
	}
	// A reader ignores the same badge read again within 2 s (a badge held
	// on it): a simulated tap that comes sooner waits, as a hand would.
	db.mu.Lock()
	key := dev + "/" + uid
	wait := time.Until(db.lastRead[key].Add(wire.RereadWindow + 100*time.Millisecond))
	db.lastRead[key] = time.Now().Add(max(wait, 0))
	db.mu.Unlock()
	if wait > 0 {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return access.Decision{}, ctx.Err()
		}
	}
	// Just after the start a bridge may still be connecting: a tap then
	// would be decided offline. Give it a moment.
	for i := 0; i < 300; i++ {
		if st := db.byID[dev].Status(); st.Connected && st.ServerOnline {
			break
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return access.Decision{}, ctx.Err()
		}
	}
	events, stop := db.running.Hub.Subscribe(64)
	defer stop()
	if err := rd.Tap(uid); err != nil {
		return access.Decision{}, fablab.Errorf(fablab.ETOOMANY, "the reader of %s is busy; try again", dev)
	}
	timeout := time.NewTimer(3 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case e := <-events:
			ev, ok := e.Data.(fablab.AuditEvent)
			if e.Type != "tap" || !ok || ev.DeviceID != dev {
				continue
			}
			return db.decision(ctx, ev), nil
		case <-timeout.C:
			return access.Decision{}, fablab.Errorf(fablab.ECONFLICT, "no decision from %s within 3 s: is its bridge connected? (GET /api/v1/devices/%s)", dev, dev)
		case <-ctx.Done():
			return access.Decision{}, ctx.Err()
		}
	}
}

// decision turns a tap's audit event into the decision it records, as the
// engine's Tap returns it: a reason only on a denial.
func (db *demoBridges) decision(ctx context.Context, ev fablab.AuditEvent) access.Decision {
	var d access.Decision
	switch ev.Action {
	case "granted":
		d.Outcome = access.Grant
		if s, err := db.store.Session(ctx, ev.SessionID); err == nil {
			d.Until = s.Until
		}
	case "tap_out":
		d.Outcome = access.TapOut
	case "force_close":
		d.Outcome = access.ForceClose
	default:
		d.Outcome, d.Reason = access.Deny, ev.Reason
		d.Message, _ = ev.Detail["message"].(string)
	}
	return d
}
