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
  serve                 run the server (fabgate serve -h for flags)
  user add              add a member to a stopped data directory
  check                 check the data file's consistency
  backup                copy a stopped data directory's file to --out
  mosquitto-config      write Mosquitto password, ACL and config files for the devices
  version               print the version
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
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("no command given")
	}
	switch args[0] {
	case "serve":
		cfg, err := loadConfig(args[1:], getenv, stdout)
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		if err != nil {
			return err
		}
		return serve(ctx, cfg, stdout, stderr, serveOptions{})
	case "user":
		if len(args) < 2 || args[1] != "add" {
			return fmt.Errorf("usage: fabgate user add --data DIR --email E --name N --role admin|staff|maker [--group G] --password-stdin")
		}
		return userAdd(ctx, args[2:], stdin, stdout)
	case "check":
		return check(args[1:], stdout)
	case "mosquitto-config":
		return mosquittoConfig(ctx, args[1:], stdout)
	case "backup":
		return backupCmd(args[1:], stdout)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "fabgate", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
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
