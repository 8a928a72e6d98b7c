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

func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
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
	fs := newFlags("user add")
	data := fs.String("data", "data", "data directory")
	email := fs.String("email", "", "email (login)")
	name := fs.String("name", "", "full name")
	role := fs.String("role", "maker", "admin, staff or maker")
	group := fs.String("group", "", "tariff group (default: staff for admin and staff, non-member for makers)")
	pwStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("user add: %w", err)
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
	fs := newFlags("check")
	data := fs.String("data", "data", "data directory")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("check: %w", err)
	}
	store, err := openStopped(*data, true)
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	defer store.Close()
	if err := store.Check(); err != nil {
		return fmt.Errorf("check: %s is inconsistent:\n%w", store.Path(), err)
	}
	fmt.Fprintf(stdout, "%s: ok\n", store.Path())
	return nil
}

// backupCmd copies the data file of a stopped server to --out, atomically:
// the copy is written beside the target and renamed into place once complete.
// The copy holds the badge key, the server's MQTT password and every
// password hash, so it is readable by its owner only (0600), whatever the
// umask and whatever file it replaces.
func backupCmd(args []string, stdout io.Writer) error {
	fs := newFlags("backup")
	data := fs.String("data", "data", "data directory")
	out := fs.String("out", "", "backup file to write")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if *out == "" {
		return errors.New("backup: --out FILE is required")
	}
	store, err := openStopped(*data, true)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer store.Close()
	tmp, err := os.CreateTemp(filepath.Dir(*out), ".fabgate-backup-*")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(tmp.Name())
	err = tmp.Chmod(0o600)
	var n int64
	if err == nil {
		n, err = store.WriteTo(tmp)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), *out)
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %d bytes to %s\n", n, *out)
	return nil
}

// mosquittoConfig writes the password file, ACL file and configuration
// snippet that let Mosquitto stand in for the embedded broker.
func mosquittoConfig(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("mosquitto-config")
	data := fs.String("data", "data", "data directory")
	out := fs.String("out", "", "directory to write passwd, acl and fabgate.conf into")
	listen := fs.String("listen", "127.0.0.1:1883", "address Mosquitto listens on")
	prefix := fs.String("prefix", "fabgate/v1", "MQTT topic prefix")
	user := fs.String("server-user", "fabgate-server", "the FabGate server's MQTT user")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("mosquitto-config: %w", err)
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
