package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/demo"
)

// TestBackupRestoreScriptsE2E runs deploy/fabgate-backup.sh and
// deploy/fabgate-restore.sh with bash, as the backup timer and a lab manager
// would: nightly backups of a running server with their retention, then,
// the server stopped, the newest backup restored into a new data directory
// and served again with every booking, and the restore's refusals (a running
// server, a data directory in use or not empty, a damaged backup).
func TestBackupRestoreScriptsE2E(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	script := func(name string, env []string, args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(bash, append([]string{filepath.Join("..", "..", "deploy", name)}, args...)...)
		cmd.Env = fabgateEnv(t, env...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}

	data := t.TempDir()
	srv := startServerAt(t, clockAt(labTime), "--data", data, "--demo")
	admin, maker := demoAccount(t, "admin"), demoAccount(t, "maker")
	makerTok := login(t, srv.url, maker.Email, maker.Password)
	booked := bookFreeHours(t, srv.url, makerTok, 3)

	secrets := t.TempDir()
	password := filepath.Join(secrets, "backup-password")
	if err := os.WriteFile(password, []byte(admin.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrong := filepath.Join(secrets, "wrong-password")
	if err := os.WriteFile(wrong, []byte("not the password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "backups")
	// A file of the lab manager's in the backup directory, named almost as
	// backups are: retention never touches it.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "fabgate-20200101T000000Z.db.keep")
	if err := os.WriteFile(other, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}

	night := time.Date(2026, 5, 10, 1, 15, 0, 0, time.UTC)
	backup := func(at time.Time, pwFile string, retention ...string) (string, error) {
		t.Helper()
		args := append([]string{"--url", srv.url, "--email", admin.Email, "--password-file", pwFile, "--dir", dir}, retention...)
		return script("fabgate-backup.sh", []string{"FABGATE_BACKUP_NOW=" + strconv.FormatInt(at.Unix(), 10)}, args...)
	}
	name := func(at time.Time) string { return "fabgate-" + at.UTC().Format("20060102T150405Z") + ".db" }
	day := func(n int) time.Time { return night.AddDate(0, 0, n) }
	listing := func() []string {
		t.Helper()
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			if e.Name() != filepath.Base(other) {
				names = append(names, e.Name())
			}
		}
		return names
	}

	steps := []struct {
		what      string
		at        time.Time
		pwFile    string
		retention []string
		fails     bool
		want      []string // the backups afterwards
	}{
		{"first night", day(0), password, []string{"--keep", "2"}, false, []string{name(day(0))}},
		{"second night", day(1), password, []string{"--keep", "2"}, false, []string{name(day(0)), name(day(1))}},
		{"third night: the oldest goes", day(2), password, []string{"--keep", "2"}, false, []string{name(day(1)), name(day(2))}},
		{"a wrong password: no backup, nothing removed", day(3), wrong, []string{"--keep", "1"}, true, []string{name(day(1)), name(day(2))}},
		{"fourth night", day(3), password, []string{"--keep", "2"}, false, []string{name(day(2)), name(day(3))}},
		{"the same second again: refused", day(3), password, []string{"--keep", "2"}, true, []string{name(day(2)), name(day(3))}},
		// By age: one copy, and every copy younger than 7 days.
		{"a week on: younger than 7 days kept", day(8), password, []string{"--keep", "1", "--keep-days", "7"}, false, []string{name(day(2)), name(day(3)), name(day(8))}},
		{"two days more: older than 7 days go", day(10), password, []string{"--keep", "1", "--keep-days", "7"}, false, []string{name(day(3)), name(day(8)), name(day(10))}},
	}
	for i, st := range steps {
		if i == len(steps)-1 {
			// Booked after every backup but the last: only the newest holds it.
			booked = append(booked, bookFreeHours(t, srv.url, makerTok, 1)...)
		}
		out, err := backup(st.at, st.pwFile, st.retention...)
		if st.fails != (err != nil) {
			t.Fatalf("%s: exit %v, want failure %v; output:\n%s", st.what, err, st.fails, out)
		}
		if got := listing(); !slices.Equal(got, st.want) {
			t.Fatalf("%s: backups %v, want %v; output:\n%s", st.what, got, st.want, out)
		}
		if !st.fails {
			if fi, err := os.Stat(filepath.Join(dir, name(st.at))); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("%s: the new backup: %v, mode %v, want 0600", st.what, err, fi.Mode())
			}
		}
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatalf("retention removed a file that is not a backup: %v", err)
	}
	newest := filepath.Join(dir, name(day(10)))

	// The server still runs: a restore into its data directory is refused,
	// and its data file is left alone.
	if out, err := script("fabgate-restore.sh", nil, "--force", newest, data); err == nil || !strings.Contains(out, "in use") {
		t.Fatalf("restore over a running server's data: %v\n%s", err, out)
	}
	if left, _ := filepath.Glob(filepath.Join(data, "*restore*")); len(left) != 0 {
		t.Fatalf("the refused restore left %v behind", left)
	}
	srv.shutdown(t)

	// Stopped, but not empty: refused without --force.
	if out, err := script("fabgate-restore.sh", nil, newest, data); err == nil || !strings.Contains(out, "not empty") {
		t.Fatalf("restore into a data directory that is not empty: %v\n%s", err, out)
	}

	// A damaged backup: nothing is put in place.
	damaged := filepath.Join(t.TempDir(), "damaged.db")
	whole, err := os.ReadFile(newest)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(damaged, whole[:len(whole)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	spoilt := filepath.Join(t.TempDir(), "data")
	if out, err := script("fabgate-restore.sh", nil, damaged, spoilt); err == nil || !strings.Contains(out, "cut short") || !strings.Contains(out, "nothing was changed") {
		t.Fatalf("restore of a damaged backup: %v\n%s", err, out)
	}
	if left, _ := os.ReadDir(spoilt); len(left) != 0 {
		t.Fatalf("a refused restore left %v behind", left)
	}

	// The newest backup into a new data directory, served again.
	restored := filepath.Join(t.TempDir(), "data")
	if out, err := script("fabgate-restore.sh", nil, newest, restored); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	if fi, err := os.Stat(filepath.Join(restored, "fabgate.db")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("restored data file: %v, mode %v, want 0600", err, fi.Mode())
	}
	if left, _ := filepath.Glob(filepath.Join(restored, ".restore*")); len(left) != 0 {
		t.Fatalf("the restore left %v behind", left)
	}
	checkBookings(t, restored, maker.Email, maker.Password, booked)

	// --force over the stopped lab: the replaced file is kept beside it.
	if out, err := script("fabgate-restore.sh", nil, "--force", newest, data); err != nil {
		t.Fatalf("restore --force: %v\n%s", err, out)
	}
	if kept, _ := filepath.Glob(filepath.Join(data, "fabgate.db.before-restore-*")); len(kept) != 1 {
		t.Fatalf("the replaced data file was not kept: %v", kept)
	}
	checkBookings(t, data, maker.Email, maker.Password, booked)
}

// checkBookings serves the data directory data, checks that the member's
// bookings include want, stops the server and checks the file with
// `fabgate check`.
func checkBookings(t *testing.T, data, email, password string, want []string) {
	t.Helper()
	srv := startServerAt(t, clockAt(labTime), "--data", data)
	var mine []struct{ ID string }
	call(t, "GET", srv.url+"/api/v1/bookings", login(t, srv.url, email, password), nil, &mine)
	have := map[string]bool{}
	for _, b := range mine {
		have[b.ID] = true
	}
	for _, id := range want {
		if !have[id] {
			t.Errorf("booking %s is missing from %s", id, data)
		}
	}
	srv.shutdown(t)
	var out bytes.Buffer
	if err := run(context.Background(), []string{"check", "--data", data}, nil, &out, io.Discard, envOf(nil)); err != nil || !strings.HasSuffix(out.String(), ": ok\n") {
		t.Fatalf("check %s: %v %q", data, err, out.String())
	}
}

// bookFreeHours books n one-hour slots, on whole hours, in the free time of
// the machines the member may use (the tour's machine apart), and returns
// their ids.
func bookFreeHours(t *testing.T, base, tok string, n int) []string {
	t.Helper()
	var machines []struct{ ID, State, DeviceID string }
	call(t, "GET", base+"/api/v1/machines", tok, nil, &machines)
	var ids []string
	for _, m := range machines {
		if m.State != "available" || m.DeviceID == demo.TourDevice {
			continue
		}
		var av struct {
			Free []struct{ Start, End time.Time }
		}
		call(t, "GET", base+"/api/v1/machines/"+m.ID+"/availability", tok, nil, &av)
		refused := 0 // a rule of the machine's (a quota, training) refuses them all: the next machine
	slots:
		for _, f := range av.Free {
			for start := f.Start.Truncate(time.Hour).Add(time.Hour); !start.Add(time.Hour).After(f.End); start = start.Add(2 * time.Hour) {
				var b struct{ ID, State string }
				if st := call(t, "POST", base+"/api/v1/bookings", tok, map[string]any{"machine_id": m.ID, "start": start, "end": start.Add(time.Hour)}, &b); st != 201 || b.State != "confirmed" {
					if refused++; refused == 3 {
						break slots
					}
					continue
				}
				ids = append(ids, b.ID)
				if len(ids) == n {
					return ids
				}
			}
		}
	}
	t.Fatalf("booked %d one-hour slots, want %d", len(ids), n)
	return nil
}
