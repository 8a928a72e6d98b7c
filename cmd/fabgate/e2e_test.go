package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/demo"
	"github.com/fabgate/fabgate/internal/fablab"
)

// addrWriter collects output and reports the server's address once printed.
type addrWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	addr chan string
	sent bool
}

var runningAt = regexp.MustCompile(`running at (https?://[^/\s]+)/`)

func (w *addrWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if m := runningAt.FindSubmatch(w.buf.Bytes()); m != nil && !w.sent {
		w.sent = true
		w.addr <- string(m[1])
	}
	return len(p), nil
}

type server struct {
	url  string
	stop func()
	done chan error
}

// startServer runs `fabgate serve` through run() on a random port.
func startServer(t *testing.T, args ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &addrWriter{addr: make(chan string, 1)}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"serve", "--http", "127.0.0.1:0", "--mqtt-listen", "127.0.0.1:0", "--log-level", "warn"}, args...), strings.NewReader(""), out, io.Discard, envOf(nil))
	}()
	return awaitServer(t, &server{stop: cancel, done: done}, out.addr)
}

// awaitServer waits for s to listen (its URL arrives on url) and has the
// test stop it at the end.
func awaitServer(t *testing.T, s *server, url <-chan string) *server {
	t.Helper()
	select {
	case s.url = <-url:
	case err := <-s.done:
		s.stop()
		t.Fatalf("serve stopped before listening: %v", err)
	case <-time.After(60 * time.Second):
		s.stop()
		t.Fatal("serve did not start within 60 s")
	}
	t.Cleanup(func() { s.shutdown(t) })
	return s
}

func (s *server) shutdown(t *testing.T) {
	if s.stop == nil {
		return
	}
	s.stop()
	s.stop = nil
	if err := <-s.done; err != nil {
		t.Errorf("serve returned %v after shutdown", err)
	}
}

func call(t *testing.T, method, url, token string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, url, data, err)
		}
	}
	return resp.StatusCode
}

func login(t *testing.T, base, email, password string) string {
	t.Helper()
	var r struct{ Token string }
	if st := call(t, "POST", base+"/api/v1/auth/login", "", map[string]string{"email": email, "password": password}, &r); st != 200 || r.Token == "" {
		t.Fatalf("login %s: status %d", email, st)
	}
	return r.Token
}

func demoAccount(t *testing.T, role string) demo.Account {
	for _, a := range demo.Accounts {
		if string(a.Role) == role {
			return a
		}
	}
	t.Fatalf("no demo account with role %s", role)
	return demo.Account{}
}

// labTime is the lab time end-to-end tests run at unless they say otherwise:
// a Wednesday afternoon, with the demo week's bookings around it.
var labTime = time.Date(2026, 5, 13, 15, 7, 0, 0, parisTZ)

// TestE2EServeDemoLifecycle runs the demo lab the way `make run` does, uses
// it over HTTP, checks the lock and the admin subcommands, restarts it and
// checks that nothing was lost or reseeded.
func TestE2EServeDemoLifecycle(t *testing.T) {
	data := t.TempDir()
	clock := clockAt(labTime)
	srv := startServerAt(t, clock, "--data", data, "--demo", "--metrics-token", e2eMetricsToken)

	var health map[string]string
	if st := call(t, "GET", srv.url+"/healthz", "", nil, &health); st != 200 || health["status"] != "ok" {
		t.Fatalf("healthz: %d %v", st, health)
	}
	admin := demoAccount(t, "admin")
	maker := demoAccount(t, "maker")
	adminTok := login(t, srv.url, admin.Email, admin.Password)
	makerTok := login(t, srv.url, maker.Email, maker.Password)

	var machines []struct {
		ID, Name, Kind, State, DeviceID string
	}
	call(t, "GET", srv.url+"/api/v1/machines", makerTok, nil, &machines)
	kinds := map[string]bool{}
	for _, m := range machines {
		kinds[m.Kind] = true
	}
	if len(machines) < 6 || len(kinds) < 3 {
		t.Fatalf("demo lab has %d machines of %d kinds, want ≥6 of ≥3", len(machines), len(kinds))
	}

	// The maker books the first free slot found on a machine they may use
	// (not the tour's, which the taps below use as a walk-in).
	booked := false
	for _, m := range machines {
		if m.State != "available" || m.DeviceID == demo.TourDevice {
			continue
		}
		var av struct {
			Free []struct{ Start, End time.Time }
		}
		call(t, "GET", srv.url+"/api/v1/machines/"+m.ID+"/availability", makerTok, nil, &av)
		for _, f := range av.Free {
			start := f.Start.Truncate(time.Hour).Add(time.Hour)
			if start.Add(time.Hour).After(f.End) {
				continue
			}
			var b struct{ ID, State string }
			st := call(t, "POST", srv.url+"/api/v1/bookings", makerTok, map[string]any{"machine_id": m.ID, "start": start, "end": start.Add(time.Hour)}, &b)
			if st == 201 && b.State == "confirmed" {
				booked = true
				break
			}
		}
		if booked {
			break
		}
	}
	if !booked {
		t.Fatal("the demo maker could not book any free one-hour slot")
	}
	var mine []struct{ ID string }
	call(t, "GET", srv.url+"/api/v1/bookings", makerTok, nil, &mine)
	if len(mine) == 0 {
		t.Fatal("the maker's booking is not listed")
	}

	// The demo devices answer on the embedded broker: a simulated tap of the
	// demo maker's badge opens a session that the relay confirms.
	staff := demoAccount(t, "staff")
	staffTok := login(t, srv.url, staff.Email, staff.Password)
	var tap struct{ Decision string }
	if st := call(t, "POST", srv.url+"/api/v1/devices/"+demo.TourDevice+"/tap", staffTok, map[string]string{"uid": demo.MakerBadgeUID}, &tap); st != 200 || tap.Decision != "grant" {
		t.Fatalf("simulated tap: %d %+v", st, tap)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var open []struct{ Confirmed bool }
		call(t, "GET", srv.url+"/api/v1/sessions?active=true", staffTok, nil, &open)
		if len(open) == 1 && open[0].Confirmed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the demo device did not confirm the unlock: %+v", open)
		}
		runtime.Gosched()
	}
	// The same badge again at once: the simulated reader waits out its 2 s
	// re-read window, as a hand would, and the tap ends the session.
	if st := call(t, "POST", srv.url+"/api/v1/devices/"+demo.TourDevice+"/tap", staffTok, map[string]string{"uid": demo.MakerBadgeUID}, &tap); st != 200 || tap.Decision != "tap_out" {
		t.Fatalf("simulated tap-out: %d %+v", st, tap)
	}
	metrics := scrapeMetrics(t, srv.url)
	for name, want := range map[string]float64{"fabgate_taps_granted_total": 1, "fabgate_mqtt_connected": 1,
		"fabgate_backup_last_success_timestamp_seconds": 0} {
		if got := metricValue(t, metrics, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	metricValue(t, metrics, "fabgate_mqtt_refused_connects_total") // present
	// The runbook says what every metric means and what to do about it.
	runbook, err := os.ReadFile("../../docs/runbook.md")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(metrics) {
		if name, ok := strings.CutPrefix(line, "# HELP fabgate_"); ok {
			name = "fabgate_" + strings.Fields(name)[0]
			if !strings.Contains(string(runbook), "`"+name+"`") && !strings.Contains(string(runbook), "`"+name+"{") {
				t.Errorf("docs/runbook.md does not explain %s", name)
			}
		}
	}
	if n := metricValue(t, metrics, "fabgate_mqtt_clients"); n < 2 {
		t.Errorf("fabgate_mqtt_clients = %v, want the server and the demo's devices", n)
	}
	// The demo's seven simulated devices said hello (the tour's device just
	// answered a tap).
	if n := metricValue(t, metrics, "fabgate_devices_online"); n < 1 || n > 7 {
		t.Errorf("fabgate_devices_online = %v, want 1 to 7", n)
	}
	// Read before the file's size: it never shrinks.
	if v, fi := metricValue(t, metrics, "fabgate_data_file_bytes"), statFile(t, filepath.Join(data, "fabgate.db")); v < 32<<10 || v > float64(fi.Size()) {
		t.Errorf("fabgate_data_file_bytes = %v, the file has %v bytes", v, fi.Size())
	}

	// A second opener of the same data directory is refused with a clear message.
	err = run(context.Background(), []string{"check", "--data", data}, nil, io.Discard, io.Discard, envOf(nil))
	if err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("check on a running server's data: got %v, want a 'locked' error", err)
	}

	// Hot backup over HTTP.
	req, _ := http.NewRequest("POST", srv.url+"/api/v1/backup", nil)
	req.Header.Set("Authorization", "Bearer "+adminTok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || fmt.Sprint(len(snap)) != resp.Header.Get("Content-Length") {
		t.Fatalf("backup: status %d, %d bytes, Content-Length %s", resp.StatusCode, len(snap), resp.Header.Get("Content-Length"))
	}
	snapPath := filepath.Join(t.TempDir(), "snap.db")
	if err := os.WriteFile(snapPath, snap, 0o600); err != nil {
		t.Fatal(err)
	}
	if at := metricValue(t, scrapeMetrics(t, srv.url), "fabgate_backup_last_success_timestamp_seconds"); at < float64(labTime.Unix()) {
		t.Errorf("after a backup fabgate_backup_last_success_timestamp_seconds = %v, want the time it was taken", at)
	}
	bs, err := bolt.Open(snapPath, bolt.Options{})
	if err != nil {
		t.Fatalf("the hot backup does not open: %v", err)
	}
	n, _ := bs.CountMembers(context.Background())
	if err := bs.Check(); err != nil || n < 18 {
		t.Fatalf("hot backup: check %v, %d members", err, n)
	}
	bs.Close()

	srv.shutdown(t)

	// Admin subcommands on the stopped data directory.
	var out bytes.Buffer
	if err := run(context.Background(), []string{"check", "--data", data}, nil, &out, io.Discard, envOf(nil)); err != nil || !strings.Contains(out.String(), "ok") {
		t.Fatalf("check: %v %q", err, out.String())
	}
	backupFile := filepath.Join(t.TempDir(), "fabgate-backup.db")
	if err := run(context.Background(), []string{"backup", "--data", data, "--out", backupFile}, nil, io.Discard, io.Discard, envOf(nil)); err != nil {
		t.Fatalf("backup: %v", err)
	}
	if err := run(context.Background(), []string{"check", "--data", filepath.Dir(backupFile)}, nil, io.Discard, io.Discard, envOf(nil)); err == nil {
		t.Fatal("check of a directory without fabgate.db should fail")
	}
	err = run(context.Background(), []string{"user", "add", "--data", data, "--email", "New.Admin@Example.org", "--name", "Nouvelle Admin", "--role", "admin", "--password-stdin"},
		strings.NewReader("correct horse battery\n"), io.Discard, io.Discard, envOf(nil))
	if err != nil {
		t.Fatalf("user add: %v", err)
	}
	err = run(context.Background(), []string{"user", "add", "--data", data, "--email", "new.admin@example.org", "--name", "Twice", "--role", "maker", "--password-stdin"},
		strings.NewReader("another password\n"), io.Discard, io.Discard, envOf(nil))
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("user add with a taken email: got %v", err)
	}

	// Restart with --demo: the data is kept, not reseeded, and the new admin logs in.
	srv2 := startServerAt(t, clock, "--data", data, "--demo")
	tok := login(t, srv2.url, "new.admin@example.org", "correct horse battery")
	var page struct {
		Items []struct{ Email string }
		Next  string
	}
	total := 0
	for after := ""; ; after = page.Next {
		page.Next = ""
		call(t, "GET", srv2.url+"/api/v1/members?limit=1000&after="+after, tok, nil, &page)
		total += len(page.Items)
		if page.Next == "" {
			break
		}
	}
	if total != n+1 {
		t.Fatalf("after restart: %d members, want %d (demo data kept plus the new admin)", total, n+1)
	}
	call(t, "GET", srv2.url+"/api/v1/bookings", login(t, srv2.url, maker.Email, maker.Password), nil, &mine)
	if len(mine) == 0 {
		t.Fatal("the maker's booking did not survive the restart")
	}
}

func TestRunCommands(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
		wantOut string
	}{
		{"version", []string{"version"}, "", "fabgate"},
		{"serve help", []string{"serve", "-h"}, "", "-data"},
		{"no command", nil, "no command", ""},
		{"unknown", []string{"frobnicate"}, "unknown command", ""},
		{"user without add", []string{"user"}, "usage: fabgate user add", ""},
		{"user add without email", []string{"user", "add", "--data", t.TempDir(), "--name", "X"}, "--email and --name are required", ""},
		{"user add bad role", []string{"user", "add", "--data", t.TempDir(), "--email", "a@b.org", "--name", "X", "--role", "boss"}, "--role must be", ""},
		{"backup without out", []string{"backup", "--data", t.TempDir()}, "--out FILE is required", ""},
		{"check missing data", []string{"check", "--data", filepath.Join(t.TempDir(), "none")}, "no data file", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), tt.args, strings.NewReader(""), &out, io.Discard, envOf(nil))
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Fatalf("output %q lacks %q", out.String(), tt.wantOut)
			}
		})
	}
}

func TestUserAddRejectsShortPassword(t *testing.T) {
	data := t.TempDir()
	err := run(context.Background(), []string{"user", "add", "--data", data, "--email", "a@b.org", "--name", "A", "--password-stdin"}, strings.NewReader("short\n"), io.Discard, io.Discard, envOf(nil))
	if err == nil || !strings.Contains(err.Error(), "password") {
		t.Fatalf("got %v, want a password error", err)
	}
	// Nothing half-written: the member does not exist.
	s, err := bolt.Open(filepath.Join(data, "fabgate.db"), bolt.Options{})
	if err == nil {
		n, _ := s.CountMembers(context.Background())
		s.Close()
		if n != 0 {
			t.Fatalf("%d members after a refused user add", n)
		}
	}
}

// An interrupted demo seeding leaves no data file, so the next run seeds
// again from scratch; an existing data file is never seeded into.
func TestSeedDemoAllOrNothing(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	path := filepath.Join(t.TempDir(), "fabgate.db")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := seedDemo(ctx, path, labTime, log); err == nil {
		t.Fatal("seeding with a cancelled context succeeded")
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("an interrupted seeding left %s behind (%v)", path, err)
	}
	if left, _ := filepath.Glob(path + ".seeding*"); len(left) > 0 {
		t.Fatalf("an interrupted seeding left its temporary files behind: %v", left)
	}

	// A data file that exists (here: a lab with no members) is left alone.
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := seedDemo(context.Background(), path, labTime, log); err != nil {
		t.Fatal(err)
	}
	s, err = bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, _ := s.CountMembers(context.Background()); n != 0 {
		t.Fatalf("an existing data file was seeded: %d members", n)
	}
}

func TestErrorTextDropsTheCode(t *testing.T) {
	err := fmt.Errorf("check: %w", fablab.Errorf(fablab.ECONFLICT, "data file x is locked"))
	if got := errorText(err); got != "check: data file x is locked" {
		t.Fatalf("errorText = %q", got)
	}
	if got := errorText(errors.New("plain")); got != "plain" {
		t.Fatalf("errorText = %q", got)
	}
}

// A server that cannot listen stops before it creates any data file.
func TestServeListenFailureLeavesNoDataFile(t *testing.T) {
	data := filepath.Join(t.TempDir(), "new")
	err := run(context.Background(), []string{"serve", "--data", data, "--http", "256.0.0.1:1"}, nil, io.Discard, io.Discard, envOf(nil))
	if err == nil {
		t.Fatal("serve on an impossible address succeeded")
	}
	if _, err := os.Stat(filepath.Join(data, "fabgate.db")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a data file was created (%v)", err)
	}
}

// Two servers seeding the same empty directory at once: one lab results,
// complete, and no seeding file is left behind.
func TestSeedDemoConcurrent(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	path := filepath.Join(t.TempDir(), "fabgate.db")
	errs := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() { errs <- seedDemo(context.Background(), path, labTime, log) }()
	}
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if left, _ := filepath.Glob(path + ".seeding*"); len(left) > 0 {
		t.Fatalf("seeding files left behind: %v", left)
	}
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, _ := s.CountMembers(context.Background()); n < 18 {
		t.Fatalf("%d members in the seeded lab", n)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// scrapeMetrics reads the server's /metrics with the e2e metrics token.
func scrapeMetrics(t *testing.T, base string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+e2eMetricsToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d %v", resp.StatusCode, err)
	}
	return string(body)
}

// metricValue is the value of an unlabelled metric in a scrape.
func metricValue(t *testing.T, metrics, name string) float64 {
	t.Helper()
	for line := range strings.Lines(metrics) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %q", name, line)
			}
			return f
		}
	}
	t.Fatalf("/metrics lacks %s", name)
	return 0
}

func statFile(t *testing.T, path string) os.FileInfo {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}
