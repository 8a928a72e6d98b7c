package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/bolt/bolttest"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/lab"
)

// A demo device the store refuses to register stops the demo with the
// store's error; it was lost to a shadowed err, and the demo went on with
// a device nobody could authenticate.
func TestDemoBridgesReportRegistrationErrors(t *testing.T) {
	store := bolttest.Open(t, func() time.Time { return time.Date(2026, 3, 3, 9, 0, 0, 0, time.UTC) })
	ctx := context.Background()
	st, err := store.Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A machine may name any well-formed device id; registering a device
	// under the server's reserved prefix is refused.
	if _, err := store.CreateMachine(ctx, fablab.Machine{Name: "Laser", Kind: fablab.KindLaserCutter, DeviceID: "fabgate-laser", Rules: st.DefaultRules}); err != nil {
		t.Fatal(err)
	}
	db, err := startDemoBridges(ctx, store, &lab.Lab{URL: "tcp://127.0.0.1:1"}, t.TempDir(), slog.New(slog.DiscardHandler))
	if err == nil {
		db.Close()
		t.Fatal("the demo started with a device the store refused")
	}
	if fablab.ErrorCode(err) != fablab.EINVALID || !strings.Contains(err.Error(), "reserved") {
		t.Fatalf("error %v, want the store's refusal of the reserved device id", err)
	}
}
