package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/devicesim"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/lab"
	"github.com/fabgate/fabgate/internal/mqtt"
)

// startDemoDevices gives every demo machine a simulated device on the
// broker: registered (or re-keyed: the demo makes new secrets at each start,
// since stored secrets are hashed), connected, answering commands. Taps from
// the staff page then travel the real path server → broker → device → ack.
func startDemoDevices(ctx context.Context, store *bolt.Store, running *lab.Lab, log *slog.Logger) ([]*devicesim.Device, error) {
	page, err := store.Machines(ctx, 0, 1000)
	if err != nil {
		return nil, err
	}
	var sims []*devicesim.Device
	stopAll := func() {
		for _, d := range sims {
			d.Close()
		}
	}
	for _, m := range page.Items {
		if m.DeviceID == "" {
			continue
		}
		secret := auth.NewToken()
		hash, err := mqtt.MosquittoPasswordHash(secret)
		if err != nil {
			stopAll()
			return nil, err
		}
		if _, err := store.Device(ctx, m.DeviceID); fablab.ErrorCode(err) == fablab.ENOTFOUND {
			_, err = store.CreateDevice(ctx, fablab.Device{ID: m.DeviceID, Kind: fablab.DeviceBridge, MachineID: m.ID, SecretHash: hash})
		} else if err == nil {
			_, err = store.UpdateDevice(ctx, m.DeviceID, func(d *fablab.Device) error { d.SecretHash = hash; return nil })
		}
		if err != nil {
			stopAll()
			return nil, fmt.Errorf("demo device %s: %w", m.DeviceID, err)
		}
		sim, err := devicesim.Start(ctx, devicesim.Config{
			Broker: running.URL, ID: m.DeviceID, Secret: secret, Prefix: running.Topics.Prefix,
			PowerW: 150, Log: log.With("component", "sim", "device", m.DeviceID),
		})
		if err != nil {
			stopAll()
			return nil, fmt.Errorf("demo device %s: %w", m.DeviceID, err)
		}
		sims = append(sims, sim)
	}
	log.Info("demo devices running", "count", len(sims))
	return sims, nil
}
