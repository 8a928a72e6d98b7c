// Command fabgate-bridge is FabGate's device program: it runs next to the
// machines and connects their badge readers and relays to the FabGate
// server over MQTT, deciding alone from an allowlist when the server is out
// of reach. See docs/hardware.md and docs/protocol.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/fabgate/fabgate/firmware-bridge/bridge"
)

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "fabgate-bridge:", err)
		switch {
		case errors.Is(err, errUsage):
			os.Exit(2)
		case errors.Is(err, errConfig):
			os.Exit(exitConfig)
		}
		os.Exit(1)
	}
}

var (
	errUsage  = errors.New("usage")
	errConfig = errors.New("configuration")
)

// exitConfig is the exit status of a bad configuration (EX_CONFIG): the
// systemd unit does not restart the bridge for it, since starting again
// would only fail again.
const exitConfig = 78

// run is the whole program, so that tests can run it.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "version" {
		fmt.Fprintln(stdout, "fabgate-bridge", version)
		return nil
	}
	fs := flag.NewFlagSet("fabgate-bridge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "/etc/fabgate-bridge/config.json", "configuration file (see docs/hardware.md)")
	sim := fs.Bool("sim", false, "simulate every reader and relay; read \"<device id> <uid>\" lines from standard input as badge taps")
	check := fs.Bool("check", false, "check the configuration and exit")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fabgate-bridge [--config FILE] [--sim] [--check] | fabgate-bridge version")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("%w: --log-level %q: use debug, info, warn or error", errUsage, *logLevel)
	}
	cfg, err := bridge.LoadConfig(*configPath)
	if err != nil {
		return fmt.Errorf("%w: %w", errConfig, err)
	}
	if *check {
		fmt.Fprintf(stdout, "%s: %d device(s), configuration OK\n", *configPath, len(cfg.Devices))
		return nil
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	log.Info("fabgate-bridge starting", "version", version, "devices", len(cfg.Devices), "sim", *sim)
	return bridge.Run(ctx, cfg, bridge.RunOptions{Sim: *sim, Stdin: stdin, FW: "fabgate-bridge " + version, Log: log})
}
