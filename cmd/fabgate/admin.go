package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/mqtt"
)

// commandFlags are an admin command's flags. -h prints the command's usage
// and flags to stdout and ends the command with flag.ErrHelp, which run
// turns into success; a bad flag or a stray argument is an error that
// points to -h.
type commandFlags struct {
	*flag.FlagSet
	usage  string // the synopsis after "usage: fabgate "
	about  string // what the command does, in a sentence or two
	stdout io.Writer
}

func newFlags(name, usage, about string, stdout io.Writer) *commandFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {} // printed by parse, on -h only
	return &commandFlags{FlagSet: fs, usage: usage, about: about, stdout: stdout}
}

// parse parses args; see commandFlags.
func (f *commandFlags) parse(args []string) error {
	err := f.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		f.printUsage()
		return fmt.Errorf("%s: %w", f.Name(), err)
	case err != nil:
		return fmt.Errorf("%s: %w (see fabgate %s -h)", f.Name(), err, f.Name())
	case f.NArg() > 0:
		return fmt.Errorf("%s: unexpected argument %q (see fabgate %s -h)", f.Name(), f.Arg(0), f.Name())
	}
	return nil
}

func (f *commandFlags) printUsage() {
	fmt.Fprintf(f.stdout, "usage: fabgate %s\n\n%s\n", f.usage, f.about)
	n := 0
	f.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return
	}
	fmt.Fprint(f.stdout, "\nflags:\n")
	f.SetOutput(f.stdout)
	f.PrintDefaults()
	f.SetOutput(io.Discard)
}

// userAddUsage is the synopsis of `fabgate user add`.
const userAddUsage = "user add --data DIR --email E --name N [--role admin|staff|maker] [--group G] [--password-stdin]"

// userAddFlags are the flags of `fabgate user add`.
func userAddFlags(stdout io.Writer) *commandFlags {
	return newFlags("user add", userAddUsage,
		"Adds an account to a stopped data directory (the first admin of a new lab). Without\n--password-stdin the account has no password: staff send it an invitation.", stdout)
}

// openStopped opens the data file of a stopped server; a running server holds
// the lock, and the error says to use the HTTP API instead.
func openStopped(data string, mustExist bool) (*bolt.Store, error) {
	path := filepath.Join(data, "fabgate.db")
	if mustExist {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("no data file at %s (check --data)", path)
		}
	} else if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	return bolt.Open(path, bolt.Options{})
}

func userAdd(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := userAddFlags(stdout)
	data := fs.String("data", "data", "data directory")
	email := fs.String("email", "", "email (login)")
	name := fs.String("name", "", "full name")
	role := fs.String("role", "maker", "admin, staff or maker")
	group := fs.String("group", "", "tariff group (default: staff for admin and staff, non-member for makers)")
	pwStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	if err := fs.parse(args); err != nil {
		return err
	}
	if *email == "" || *name == "" {
		return errors.New("user add: --email and --name are required")
	}
	r := fablab.Role(*role)
	if !r.Valid() {
		return fmt.Errorf("user add: --role must be admin, staff or maker, not %q", *role)
	}
	if *group == "" {
		*group = "non-member"
		if r.AtLeast(fablab.RoleStaff) {
			*group = "staff"
		}
	}
	m := fablab.Member{Email: *email, Name: *name, Role: r, Group: *group}
	if *pwStdin {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("user add: read password: %w", err)
		}
		pw := strings.TrimRight(line, "\r\n")
		if m.PasswordHash, err = auth.HashPassword(auth.OWASPParams, pw); err != nil {
			return fmt.Errorf("user add: %s", fablab.ErrorMessage(err))
		}
	}
	store, err := openStopped(*data, false)
	if err != nil {
		return fmt.Errorf("user add: %w", err)
	}
	defer store.Close()
	m, err = store.CreateMember(ctx, m)
	if err != nil {
		return fmt.Errorf("user add: %s", fablab.ErrorMessage(err))
	}
	fmt.Fprintf(stdout, "added %s %s <%s> as member %s\n", m.Role, m.Name, m.Email, m.ID)
	return nil
}

func check(args []string, stdout io.Writer) error {
	fs := newFlags("check", "check --data DIR",
		"Runs bbolt's consistency check on a stopped data directory's file, after the\nmigrations to this fabgate's schema (which it writes), then checks the lab's\ninvariants: no overlapping confirmed bookings, at most one open session per\nmachine, every ended session billed once or waiting to be, gap-free invoice\nnumbers, every index in step with its records. Exits 1 when a problem is found.", stdout)
	data := fs.String("data", "data", "data directory")
	if err := fs.parse(args); err != nil {
		return err
	}
	store, err := openStopped(*data, true)
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	defer store.Close()
	if err := store.Check(); err != nil {
		return fmt.Errorf("check: %s is inconsistent:\n%w", store.Path(), err)
	}
	if err := store.CheckInvariants(context.Background()); err != nil {
		return fmt.Errorf("check: %s breaks the lab's invariants:\n%w", store.Path(), err)
	}
	fmt.Fprintf(stdout, "%s: ok\n", store.Path())
	return nil
}

// mosquittoConfig writes the password file, ACL file and configuration
// snippet that let Mosquitto stand in for the embedded broker.
func mosquittoConfig(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("mosquitto-config", "mosquitto-config --data DIR --out DIR [--listen ADDR] [--prefix P] [--server-user U]",
		"Writes Mosquitto's password file, ACL file and fabgate.conf for the registered devices\nof a stopped data directory, to use Mosquitto instead of the embedded broker.", stdout)
	data := fs.String("data", "data", "data directory")
	out := fs.String("out", "", "directory to write passwd, acl and fabgate.conf into")
	listen := fs.String("listen", "127.0.0.1:1883", "address Mosquitto listens on")
	prefix := fs.String("prefix", "fabgate/v1", "MQTT topic prefix")
	user := fs.String("server-user", "fabgate-server", "the FabGate server's MQTT user")
	if err := fs.parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("mosquitto-config: --out DIR is required")
	}
	store, err := openStopped(*data, true)
	if err != nil {
		return fmt.Errorf("mosquitto-config: %w", err)
	}
	defer store.Close()
	password, err := store.ServerMQTTPassword(ctx)
	if err != nil {
		return fmt.Errorf("mosquitto-config: %w", err)
	}
	devices, err := store.Devices(ctx)
	if err != nil {
		return fmt.Errorf("mosquitto-config: %w", err)
	}
	hashes := make(map[string]string, len(devices))
	disabled := 0
	for _, d := range devices {
		if d.Disabled { // left out: Mosquitto refuses it
			disabled++
			continue
		}
		hashes[d.ID] = d.SecretHash
	}
	if err := os.MkdirAll(*out, 0o700); err != nil {
		return fmt.Errorf("mosquitto-config: %w", err)
	}
	if err := mqtt.WriteMosquittoConfig(*out, *prefix, *listen, mqtt.MosquittoUser{Username: *user, Password: password}, hashes); err != nil {
		return fmt.Errorf("mosquitto-config: %w", err)
	}
	abs, _ := filepath.Abs(*out)
	fmt.Fprintf(stdout, "wrote %s/{passwd,acl,fabgate.conf} for %d devices (%d disabled left out)\n", abs, len(hashes), disabled)
	fmt.Fprintf(stdout, "run:   mosquitto -c %s/fabgate.conf\n", abs)
	fmt.Fprintf(stdout, "then:  fabgate serve --data %s --mqtt-url tcp://%s --mqtt-username %s\n", *data, *listen, *user)
	fmt.Fprintln(stdout, "run this command again after adding, rotating, disabling or deleting devices (with fabgate stopped), then reload Mosquitto (SIGHUP): it disconnects the clients whose password no longer matches")
	return nil
}
