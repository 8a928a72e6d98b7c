// Command fabgate is the FabGate server: `fabgate serve` runs the lab, and
// the admin subcommands work on a stopped data directory.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/fabgate/fabgate/internal/fablab"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `usage: fabgate <command> [flags]

commands:
  serve                 run the server
  user add              add a member to a stopped data directory
  check                 check the data file's consistency
  backup                write a backup of the data file (a stopped or a running server's)
  mosquitto-config      write Mosquitto password, ACL and config files for the devices
  version               print the version

fabgate <command> -h prints the command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fabgate:", errorText(err))
		os.Exit(1)
	}
}

// run is main without the process: end-to-end tests call it directly.
// A command's -h prints its usage and flags to stdout and succeeds.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	err := runCommand(ctx, args, stdin, stdout, stderr, getenv)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

func runCommand(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("no command given")
	}
	switch args[0] {
	case "serve":
		cfg, err := loadConfig(args[1:], getenv, stdout)
		if err != nil {
			return err
		}
		return serve(ctx, cfg, stdout, stderr, serveOptions{})
	case "user":
		if len(args) >= 2 && isHelp(args[1]) {
			return userAddFlags(stdout).parse([]string{"-h"})
		}
		if len(args) < 2 || args[1] != "add" {
			return fmt.Errorf("usage: fabgate %s (see fabgate user add -h)", userAddUsage)
		}
		return userAdd(ctx, args[2:], stdin, stdout)
	case "check":
		return check(args[1:], stdout)
	case "mosquitto-config":
		return mosquittoConfig(ctx, args[1:], stdout)
	case "backup":
		return backupCmd(ctx, args[1:], stdin, stdout)
	case "version", "--version", "-version":
		if err := newFlags("version", "version", "Prints the version.", stdout).parse(args[1:]); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "fabgate", version)
		return nil
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

// isHelp says whether arg asks for help, as the flag package understands it.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "--h", "-help", "--help":
		return true
	}
	return false
}

// errorText is what the command line shows of err: the message of a FabGate
// error without its code, anything else as it is.
func errorText(err error) string {
	var fe *fablab.Error
	if errors.As(err, &fe) && fe.Code != fablab.EINTERNAL {
		return strings.Replace(err.Error(), fe.Code+": ", "", 1)
	}
	return err.Error()
}
