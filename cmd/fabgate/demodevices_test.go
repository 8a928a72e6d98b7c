package main

import (
	"context"
	"errors"
	"testing"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/bolt/bolttest"
	"github.com/fabgate/fabgate/internal/fablab"
)

// failingRegistry is a real store whose device writes or lookups fail on
// demand.
type failingRegistry struct {
	*bolt.Store
	lookup, create, update error
}

func (f failingRegistry) Device(ctx context.Context, id string) (fablab.Device, error) {
	if f.lookup != nil {
		return fablab.Device{}, f.lookup
	}
	return f.Store.Device(ctx, id)
}

func (f failingRegistry) CreateDevice(ctx context.Context, d fablab.Device) (fablab.Device, error) {
	if f.create != nil {
		return d, f.create
	}
	return f.Store.CreateDevice(ctx, d)
}

func (f failingRegistry) UpdateDevice(ctx context.Context, id string, fn func(*fablab.Device) error) (fablab.Device, error) {
	if f.update != nil {
		return fablab.Device{}, f.update
	}
	return f.Store.UpdateDevice(ctx, id, fn)
}

// A demo device is created, then re-keyed at each start; a store that fails
// to do either (or to look the device up) stops the demo with the error,
// instead of leaving a device whose bridge can never log in.
func TestRegisterDemoDevice(t *testing.T) {
	ctx := context.Background()
	s := bolttest.Open(t, nil)
	m, err := s.CreateMachine(ctx, fablab.Machine{Name: "Prusa", Kind: fablab.Kind3DPrinter, DeviceID: "fdm-1"})
	if err != nil {
		t.Fatal(err)
	}
	broken := errors.New("disk on fire")

	if err := registerDemoDevice(ctx, failingRegistry{Store: s, create: broken}, m, "hash-1"); !errors.Is(err, broken) {
		t.Fatalf("create failing: got %v, want %v", err, broken)
	}
	if err := registerDemoDevice(ctx, s, m, "hash-1"); err != nil {
		t.Fatal(err)
	}
	if d, err := s.Device(ctx, "fdm-1"); err != nil || d.SecretHash != "hash-1" || d.MachineID != m.ID {
		t.Fatalf("created device %+v, %v; want fdm-1 with hash-1 on machine %s", d, err, m.ID)
	}
	if err := registerDemoDevice(ctx, failingRegistry{Store: s, update: broken}, m, "hash-2"); !errors.Is(err, broken) {
		t.Fatalf("update failing: got %v, want %v", err, broken)
	}
	if err := registerDemoDevice(ctx, failingRegistry{Store: s, lookup: broken}, m, "hash-2"); !errors.Is(err, broken) {
		t.Fatalf("lookup failing: got %v, want %v", err, broken)
	}
	if err := registerDemoDevice(ctx, s, m, "hash-2"); err != nil {
		t.Fatal(err)
	}
	if d, err := s.Device(ctx, "fdm-1"); err != nil || d.SecretHash != "hash-2" {
		t.Fatalf("re-keyed device %+v, %v; want hash-2", d, err)
	}
}
