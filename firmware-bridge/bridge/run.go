package bridge

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/fabgate/fabgate/firmware-bridge/reader"
	"github.com/fabgate/fabgate/firmware-bridge/relay"
)

// RunOptions are the process-level settings of Run.
type RunOptions struct {
	// Sim replaces every reader and relay by a simulated one; badges are
	// then read from Stdin, one "<device id> <uid>" per line (or "<uid>"
	// with a single device).
	Sim   bool
	Stdin io.Reader
	FW    string
	Log   *slog.Logger
	Clock Clock
}

// Run starts every device of cfg and runs them until ctx ends, then stops
// them (relays off). A device whose hardware cannot be opened stops Run
// before anything runs: a bridge half started is worse than one that says
// what to fix.
func Run(ctx context.Context, cfg *Config, opts RunOptions) error {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	key, _ := hex.DecodeString(cfg.BadgeKey) // checked by Validate
	var devices []*Device
	var indicators []io.Closer
	sims := map[string]*reader.Sim{}
	stopAll := func() {
		// All at once: a relay slow to confirm its off must not leave the
		// others on when the service manager's stop timeout runs out.
		var wg sync.WaitGroup
		for _, d := range devices {
			wg.Go(d.Close)
		}
		wg.Wait()
		for _, c := range indicators {
			c.Close()
		}
	}
	for _, spec := range cfg.Devices {
		log := opts.Log.With("device", spec.ID)
		var rd reader.Reader
		var rl relay.Relay
		var ind Indicator
		var err error
		if opts.Sim {
			sim := reader.NewSim()
			sims[spec.ID], rd, rl = sim, sim, relay.NewSim(0)
		} else {
			if rd, err = readerKinds[spec.Reader.Kind](spec.Reader.Settings, log.With("component", "reader")); err != nil {
				stopAll()
				return fmt.Errorf("device %s: reader: %w", spec.ID, err)
			}
			if rl, err = relayKinds[spec.Relay.Kind].open(ctx, spec.Relay.Settings, log); err != nil {
				stopAll()
				return fmt.Errorf("device %s: relay: %w", spec.ID, err)
			}
			if spec.Indicator != nil {
				if ind, err = indicatorKinds[spec.Indicator.Kind].open(ctx, spec.Indicator.Settings, log.With("component", "indicator")); err != nil {
					rl.Close()
					stopAll()
					return fmt.Errorf("device %s: indicator: %w", spec.ID, err)
				}
				if c, ok := ind.(io.Closer); ok {
					indicators = append(indicators, c)
				}
			}
		}
		tlsCfg, err := spec.Broker.TLS()
		if err != nil {
			rl.Close()
			stopAll()
			return fmt.Errorf("device %s: broker: %w", spec.ID, err)
		}
		if spec.AllowlistKeyID == 0 {
			log.Warn("no allowlist_key for this device: its offline decisions match only a server without per-device keys; add the key shown for the device")
		}
		allowKey, _ := hex.DecodeString(spec.AllowlistKey) // checked by Validate
		d, err := Start(ctx, DeviceConfig{
			ID: spec.ID, Secret: spec.Secret, Broker: spec.Broker.URL, TLS: tlsCfg, Prefix: cfg.Prefix, BadgeKey: key,
			AllowlistKey: allowKey, AllowlistKeyID: spec.AllowlistKeyID,
			StateDir: cfg.deviceStateDir(spec.ID), MaxOfflineAge: time.Duration(cfg.MaxOfflineAge),
			OfflineSessionLimit: time.Duration(spec.OfflineSessionLimit),
			Reader:              rd, Relay: rl, Indicator: ind, FW: opts.FW, Clock: opts.Clock, Log: opts.Log,
		})
		if err != nil {
			rl.Close()
			stopAll()
			return err
		}
		devices = append(devices, d)
	}
	if opts.Sim && opts.Stdin != nil {
		go feedSims(ctx, opts.Stdin, sims, opts.Log)
	}
	<-ctx.Done()
	stopAll()
	return nil
}

// feedSims reads "<device id> <uid>" lines (or "<uid>" with one device) and
// taps them on the simulated readers.
func feedSims(ctx context.Context, in io.Reader, sims map[string]*reader.Sim, log *slog.Logger) {
	var only *reader.Sim
	if len(sims) == 1 {
		for _, s := range sims {
			only = s
		}
	}
	sc := bufio.NewScanner(in)
	for sc.Scan() && ctx.Err() == nil {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 1 && only != nil:
			only.Tap(f[0])
		case len(f) == 2 && sims[f[0]] != nil:
			sims[f[0]].Tap(f[1])
		case len(f) == 0:
		default:
			log.Warn("simulated read ignored: write \"<device id> <uid>\"", "line", sc.Text())
		}
	}
}
