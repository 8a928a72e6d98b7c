package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/devicesim"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/logbuf"
	"github.com/fabgate/fabgate/internal/mqtt"
	"github.com/fabgate/fabgate/internal/wire"
)

// The crash loop runs `fabgate serve` as a child process: the test binary
// itself, started again with crashChildEnv set, runs main's code (run, or
// serve with the lab clock of crashClockEnv) instead of the tests. It is
// the same program as bin/fabgate, built with the test's flags (-race
// included), and it lives at the lab time the test chose.
const (
	crashChildEnv = "FABGATE_TEST_CHILD"        // "1": this process is fabgate, not the tests
	crashClockEnv = "FABGATE_TEST_CLOCK_OFFSET" // the lab clock's offset from the system clock (a Go duration)
)

// fabgateChild is main for the re-executed test binary.
func fabgateChild(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if len(args) > 0 && args[0] == "serve" {
		var offset time.Duration
		if offset, err = time.ParseDuration(os.Getenv(crashClockEnv)); err == nil {
			var cfg Config
			if cfg, err = loadConfig(args[1:], os.Getenv, os.Stdout); err == nil {
				err = serve(ctx, cfg, os.Stdout, os.Stderr, serveOptions{clock: labClock{offset: offset}})
			}
		}
	} else {
		err = run(ctx, args, os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fabgate:", errorText(err))
		return 1
	}
	return 0
}

// crashIterations is how many times TestCrashLoopE2E kills the server:
// FABGATE_CRASH_ITERATIONS, else 100 (`make soak` asks for 1000).
func crashIterations(t *testing.T) int {
	v := os.Getenv("FABGATE_CRASH_ITERATIONS")
	if v == "" {
		return 100
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("FABGATE_CRASH_ITERATIONS=%q: want a positive number", v)
	}
	return n
}

// crashSeed is the seed of the loop's choices: FABGATE_CRASH_SEED to replay
// a run, else a new one (logged).
func crashSeed(t *testing.T) uint64 {
	if v := os.Getenv("FABGATE_CRASH_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("FABGATE_CRASH_SEED=%q: want a number", v)
		}
		return n
	}
	return uint64(time.Now().UnixNano())
}

// TestCrashLoopE2E kills `fabgate serve` with SIGKILL, at a random moment
// under booking, tap and billing load, again and again, and checks after
// each crash that nothing acknowledged was lost:
//   - every booking answered 201 is in the file, as acknowledged (a
//     cancellation answered 200 too), and no two occupying bookings of a
//     machine overlap;
//   - every session a device was told to unlock is in the file, closed if
//     its tap-out was answered; at most one session is open per machine;
//   - every charge and invoice listed before the crash is in the file,
//     unchanged; no session has two charges, no charge is on two invoices,
//     invoice numbers have no gap;
//   - `fabgate check` passes on the file as the crash left it;
//
// and, once the server is back, that reconciliation leaves no relay on
// without its open session, nor a session open (or unconfirmed) without
// its relay. The devices and the broker (an embedded one run by the test,
// standing for Mosquitto) outlive the server, as they do in a lab: a relay
// switched on before a crash is still on after it.
//
// Most crashes hit a server under load; some hit one shutting down
// (SIGKILL shortly after SIGTERM) or one starting (reconciling, catching
// up). Halfway, the lab clock jumps over the month's end while the server
// is down, so the restart catches up on the month's invoices, and is
// killed while it starts. At the end the server is stopped cleanly and
// every ended session has been billed exactly once.
func TestCrashLoopE2E(t *testing.T) {
	iterations := crashIterations(t)
	seed := crashSeed(t)
	t.Logf("crash loop: %d iterations, FABGATE_CRASH_SEED=%d", iterations, seed)
	rng := rand.New(rand.NewPCG(seed, seed>>32|1))
	lab := newCrashLab(t)
	ack := newAcked()

	// Where the time goes, by phase, over the whole loop.
	phases := []string{"reconciliation", "load and crash", "fabgate check", "file checks", "restart"}
	spent := make([]time.Duration, len(phases))
	modes := map[string]int{}
	began := time.Now()
	var slowest time.Duration
	proc := lab.start(t)
	lab.login(t, proc)
	for i := 1; i <= iterations; i++ {
		itStart := time.Now()
		mark := itStart
		phase := func(k int) {
			now := time.Now()
			spent[k] += now.Sub(mark)
			mark = now
		}
		lab.awaitReconciled(t, proc, fmt.Sprintf("iteration %d, before the load", i))
		phase(0)

		delay := time.Duration(rng.IntN(300)) * time.Millisecond
		mode := "under load"
		switch r := rng.IntN(10); {
		case r < 2:
			mode = "shutting down"
		case r < 4:
			mode = "starting"
		}
		monthChange := i == (iterations+1)/2
		if monthChange {
			mode = "starting, after the month's end"
		}
		modes[mode]++
		when := fmt.Sprintf("iteration %d (%s, killed %s into the load)", i, mode, delay)
		load := lab.startLoad(proc, ack, rng.Uint64())
		<-time.After(delay) // the fault's moment: waiting on time is the fault here
		if mode == "shutting down" {
			proc.sigterm(t)
			select {
			case <-proc.exited:
			case <-time.After(time.Duration(rng.IntN(100)) * time.Millisecond):
			}
		}
		err := proc.kill()
		load.stop()
		if err == nil {
			err = proc.raceOrPanic()
		}
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		phase(1)
		lab.check(t, when)
		phase(2)
		lab.verifyFile(t, ack, when)
		phase(3)
		if t.Failed() {
			t.Fatalf("stopped at iteration %d of %d (FABGATE_CRASH_SEED=%d); the server's log:\n%s", i, iterations, seed, proc.stderr.String())
		}

		if monthChange {
			lab.clock.jumpTo(crashMonthChange)
		}
		if strings.HasPrefix(mode, "starting") {
			// A server killed while it starts: reconciling the relays,
			// catching up on jobs, or not even listening yet.
			p := lab.spawn(t)
			early := time.Duration(rng.IntN(400)) * time.Millisecond
			select {
			case <-p.exited:
			case <-time.After(early):
			}
			err := p.kill()
			if err == nil {
				err = p.raceOrPanic()
			}
			when := fmt.Sprintf("iteration %d (%s, killed %s after its start)", i, mode, early)
			if err != nil {
				t.Fatalf("%s: %v", when, err)
			}
			lab.check(t, when)
			lab.verifyFile(t, ack, when)
		}
		proc = lab.start(t)
		if monthChange {
			lab.login(t, proc) // the login did not last over the weekend
		}
		phase(4)
		slowest = max(slowest, time.Since(itStart))
	}

	// The last server: reconciled, every ended session billed, and stopped
	// cleanly; the relays stay as reconciliation left them.
	lab.awaitReconciled(t, proc, "after the last crash")
	var st struct {
		LastOutcome string `json:"last_outcome"`
	}
	if code, err := lab.do(proc, "POST", "/api/v1/jobs/billing/run", nil, &st); err != nil || code != 200 || st.LastOutcome != "ok" {
		t.Fatalf("billing run after the last crash: %d %v %+v", code, err, st)
	}
	lab.holdsReconciled(t, proc, time.Second)
	proc.terminate(t)
	lab.check(t, "after the clean stop")
	lab.verifyFile(t, ack, "after the clean stop")
	lab.verifyAllBilled(t)

	total := time.Since(began)
	t.Logf("crash loop: %d crashes in %s (%s per iteration on average, slowest %s); server killed %v",
		iterations, total.Round(time.Millisecond), (total / time.Duration(iterations)).Round(time.Millisecond), slowest.Round(time.Millisecond), modes)
	var per []string
	for k, name := range phases {
		per = append(per, fmt.Sprintf("%s %s", name, (spent[k]/time.Duration(iterations)).Round(time.Millisecond)))
	}
	t.Logf("per iteration: %s", strings.Join(per, ", "))
	t.Logf("acknowledged: %s", ack.summary())
	if ack.grants == 0 || ack.tapOuts == 0 || ack.created == 0 || len(ack.charges) == 0 {
		t.Errorf("the load did too little to prove anything: %s", ack.summary())
	}
}

// The loop's lab time: it starts on a Friday afternoon, at the end of a
// month, and jumps halfway (the server down) to the Monday just after the
// month's invoices were due (lab.InvoiceHour on the 1st).
var (
	crashStart       = time.Date(2026, 5, 29, 15, 7, 0, 0, parisTZ)
	crashMonthChange = time.Date(2026, 6, 1, 2, 0, 5, 0, parisTZ)
	crashMonth       = fablab.Period{Year: 2026, Month: time.May}
)

// crashClock is the loop's lab clock, shared by the test, its devices and
// each server it starts (which gets its offset at start): the system
// clock moved by an offset that only grows.
type crashClock struct{ offset atomic.Int64 }

func (c *crashClock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// labClock is the clock a server started now runs on.
func (c *crashClock) labClock() labClock { return labClock{offset: time.Duration(c.offset.Load())} }

// jumpTo moves the lab time forward to t.
func (c *crashClock) jumpTo(t time.Time) { c.offset.Store(int64(time.Until(t))) }

const (
	crashAdminEmail    = "admin@crash.test"
	crashAdminPassword = "crash loop admin password"
	crashDevices       = 3
)

// crashLab is the lab the loop runs: its data directory, the broker the
// devices and every server connect to, the devices, and the lab clock.
type crashLab struct {
	data     string
	broker   string // tcp://host:port
	clock    *crashClock
	members  []fablab.ID
	machines []fablab.ID
	devices  []*crashDevice
	admin    string // the admin's token, kept across crashes

	starts int
}

// crashDevice is a simulated device and the two members whose badges it
// reads.
type crashDevice struct {
	id      string
	machine fablab.ID
	sim     *devicesim.Device
	uids    [2]string
}

// deviceSecrets verifies device logins on the test's broker.
type deviceSecrets map[string]string

func (d deviceSecrets) VerifyDevice(_ context.Context, id, secret string) (bool, error) {
	s, ok := d[id]
	return ok && s == secret, nil
}

// newCrashLab writes the lab's data file (an admin, six makers, three
// machines with devices, one without), starts the broker and the devices.
func newCrashLab(t *testing.T) *crashLab {
	t.Helper()
	lab := &crashLab{data: t.TempDir(), clock: &crashClock{}}
	lab.clock.jumpTo(crashStart)
	s, err := bolt.Open(filepath.Join(lab.data, "fabgate.db"), bolt.Options{Now: lab.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	secrets := seedDeviceLab(t, s, lab, deviceLab{devices: crashDevices, prefix: "crash", domain: "crash.test", uid: "04C0FFEE"}, nil)
	lab.startDevices(t, s, secrets)
	return lab
}

// deviceLab shapes the lab seedDeviceLab writes.
type deviceLab struct {
	devices int    // machines with a device, plus one machine without
	prefix  string // device ids: prefix-1, prefix-2…
	domain  string // the makers' email domain
	uid     string // badge UIDs: uid, then the machine's and the maker's number in hex
}

// seedDeviceLab writes into s an admin, spec.devices+1 machines (all but
// the last with a device) and two makers per device (student, sme), each
// with a badge; maker, when not nil, is called for each maker added. It
// returns the devices' secrets.
func seedDeviceLab(t *testing.T, s *bolt.Store, lab *crashLab, spec deviceLab, maker func(d *crashDevice, m fablab.Member, j int)) deviceSecrets {
	t.Helper()
	ctx := context.Background()
	hash, err := auth.HashPassword(auth.OWASPParams, crashAdminPassword)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateMember(ctx, fablab.Member{Email: crashAdminEmail, Name: "Admin", Role: fablab.RoleAdmin, Group: "staff", PasswordHash: hash}); err != nil {
		t.Fatal(err)
	}
	secrets := deviceSecrets{}
	for i := range spec.devices + 1 {
		m := fablab.Machine{Name: fmt.Sprintf("Machine %d", i+1), Kind: fablab.Kind3DPrinter, Prices: map[string]int64{"student": 1200, "sme": 3000}}
		if i < spec.devices {
			m.DeviceID = fmt.Sprintf("%s-%d", spec.prefix, i+1)
		}
		if m, err = s.CreateMachine(ctx, m); err != nil {
			t.Fatal(err)
		}
		lab.machines = append(lab.machines, m.ID)
		if m.DeviceID == "" {
			continue
		}
		d := &crashDevice{id: m.DeviceID, machine: m.ID}
		secret := auth.NewToken()
		sh, err := mqtt.MosquittoPasswordHash(secret)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateDevice(ctx, fablab.Device{ID: d.id, MachineID: m.ID, SecretHash: sh}); err != nil {
			t.Fatal(err)
		}
		secrets[d.id] = secret
		for j := range d.uids {
			group := []string{"student", "sme"}[j]
			mem, err := s.CreateMember(ctx, fablab.Member{Email: fmt.Sprintf("maker%d-%d@%s", i+1, j+1, spec.domain), Name: fmt.Sprintf("Maker %d-%d", i+1, j+1), Group: group})
			if err != nil {
				t.Fatal(err)
			}
			lab.members = append(lab.members, mem.ID)
			d.uids[j] = fmt.Sprintf("%s%02X%02X", spec.uid, i+1, j+1)
			if _, err := s.AddBadge(ctx, fablab.Badge{Hash: auth.BadgeHash(s.BadgeSecret(), d.uids[j]), MemberID: mem.ID}); err != nil {
				t.Fatal(err)
			}
			if maker != nil {
				maker(d, mem, j)
			}
		}
		lab.devices = append(lab.devices, d)
	}
	return secrets
}

// startDevices starts a broker that knows the devices' secrets and the
// server's password from s, and the lab's simulated devices on it.
func (lab *crashLab) startDevices(t *testing.T, s *bolt.Store, secrets deviceSecrets) {
	t.Helper()
	ctx := context.Background()
	password, err := s.ServerMQTTPassword(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := mqtt.StartBroker(mqtt.BrokerConfig{Listen: "127.0.0.1:0", Devices: secrets, ServerUser: "fabgate-server", ServerPassword: password})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	lab.broker = "tcp://" + b.Addr()
	for _, d := range lab.devices {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		d.sim, err = devicesim.Start(cctx, devicesim.Config{Broker: lab.broker, ID: d.id, Secret: secrets[d.id], Now: lab.clock.Now})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(d.sim.Close)
	}
}

// fabgateProc is one `fabgate serve` child process.
type fabgateProc struct {
	cmd      *exec.Cmd
	ready    chan string // its URL, once it serves
	url      string
	stderr   *logbuf.Buffer
	exited   chan struct{} // closed once the process has been waited for
	err      error         // Wait's outcome, once exited is closed
	stopping bool          // SIGTERM was sent
	client   *http.Client
}

// childEnv is the environment of a fabgate child: the test's, without the
// FABGATE_ settings it might hold, plus extra. A child built with -race
// exits without the race runtime's default second of sleep (its reports
// are written as races happen).
func childEnv(extra ...string) []string {
	var env []string
	gorace := "atexit_sleep_ms=0"
	for _, kv := range os.Environ() {
		switch {
		case strings.HasPrefix(kv, "GORACE="):
			gorace = strings.TrimPrefix(kv, "GORACE=") + " " + gorace
		case !strings.HasPrefix(kv, "FABGATE_"):
			env = append(env, kv)
		}
	}
	return append(append(env, "GORACE="+gorace), extra...)
}

// fabgateCommand is `fabgate args…` as a child process.
func fabgateCommand(t *testing.T, clock labClock, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = childEnv(crashChildEnv+"=1", crashClockEnv+"="+clock.offset.String())
	return cmd
}

// spawn starts `fabgate serve` on the lab's data, on a random HTTP port,
// connected to the lab's broker, without waiting for it.
func (lab *crashLab) spawn(t *testing.T) *fabgateProc {
	t.Helper()
	lab.starts++
	out := &addrWriter{addr: make(chan string, 1)}
	p := &fabgateProc{ready: out.addr, stderr: &logbuf.Buffer{}, exited: make(chan struct{}), client: &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{}}}
	p.cmd = fabgateCommand(t, lab.clock.labClock(), "serve", "--data", lab.data, "--http", "127.0.0.1:0", "--mqtt-url", lab.broker, "--log-level", "warn")
	p.cmd.Stdout, p.cmd.Stderr = out, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() { p.kill() })
	return p
}

// start spawns a server and waits until it serves.
func (lab *crashLab) start(t *testing.T) *fabgateProc {
	t.Helper()
	p := lab.spawn(t)
	select {
	case p.url = <-p.ready:
	case <-p.exited:
		t.Fatalf("start %d: fabgate serve stopped before serving (%v):\n%s", lab.starts, p.err, p.stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("start %d: fabgate serve did not serve within 60 s:\n%s", lab.starts, p.stderr.String())
	}
	var health map[string]string
	if code, err := lab.do(p, "GET", "/healthz", nil, &health); err != nil || code != 200 || health["status"] != "ok" {
		t.Fatalf("start %d: healthz %d %v %v", lab.starts, code, err, health)
	}
	return p
}

// login logs the admin in; the token lasts across crashes.
func (lab *crashLab) login(t *testing.T, p *fabgateProc) {
	t.Helper()
	lab.admin = login(t, p.url, crashAdminEmail, crashAdminPassword)
}

// kill kills the server with SIGKILL, unless it has exited, and waits for
// it to be gone. It reports a server that ended by itself (but for a clean
// exit after SIGTERM): a crash of its own, not the test's.
func (p *fabgateProc) kill() error {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Signal(syscall.SIGKILL) // fails only if it has just exited
		<-p.exited
	}
	p.client.CloseIdleConnections()
	ws, _ := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case ws.Signaled() && ws.Signal() == syscall.SIGKILL:
		return nil
	case p.stopping && ws.Exited() && ws.ExitStatus() == 0:
		return nil // stopped cleanly before the SIGKILL
	}
	return fmt.Errorf("fabgate serve ended by itself (%v):\n%s", p.err, p.stderr.String())
}

// sigterm asks the server to stop, as an operator (or systemd) does.
func (p *fabgateProc) sigterm(t *testing.T) {
	t.Helper()
	p.stopping = true
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("SIGTERM: %v", err)
	}
}

// terminate stops the server with SIGTERM and expects a clean exit.
func (p *fabgateProc) terminate(t *testing.T) {
	t.Helper()
	p.sigterm(t)
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("fabgate serve did not stop within 60 s of SIGTERM:\n%s", p.stderr.String())
	}
	if p.err != nil {
		t.Fatalf("fabgate serve stopped with %v:\n%s", p.err, p.stderr.String())
	}
	if err := p.raceOrPanic(); err != nil {
		t.Fatal(err)
	}
	p.client.CloseIdleConnections()
}

// raceOrPanic reports a data race or a panic the server wrote.
func (p *fabgateProc) raceOrPanic() error {
	out := p.stderr.String()
	for _, bad := range []string{"WARNING: DATA RACE", "panic:", "fatal error:"} {
		if strings.Contains(out, bad) {
			return fmt.Errorf("fabgate serve wrote %q:\n%s", bad, out)
		}
	}
	return nil
}

// do makes an API request as the admin; it returns the status, or the
// error of a request that got no answer.
func (lab *crashLab) do(p *fabgateProc, method, path string, body, out any) (int, error) {
	return p.do(context.Background(), method, path, lab.admin, body, out)
}

func (p *fabgateProc) do(ctx context.Context, method, path, token string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.url+path, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err // a body cut short is no answer
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode %q: %w", method, path, data, err)
		}
	}
	return resp.StatusCode, nil
}

// check runs `fabgate check` on the stopped server's data, as an operator
// would after a crash.
func (lab *crashLab) check(t *testing.T, when string) {
	t.Helper()
	cmd := fabgateCommand(t, lab.clock.labClock(), "check", "--data", lab.data)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), ": ok") {
		t.Fatalf("%s: fabgate check: %v\n%s", when, err, out)
	}
}

// awaitReconciled waits until the server hears every device, and every
// relay is on exactly when its machine has an open session, for that
// session, confirmed: the server reconciles the relays with the file as it
// comes back (DESIGN §3).
func (lab *crashLab) awaitReconciled(t *testing.T, p *fabgateProc, when string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		bad, err := lab.unreconciled(p)
		if err == nil && bad == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: relays and sessions not reconciled within 20 s: %s (err %v)\nserver log:\n%s", when, bad, err, p.stderr.String())
		}
		<-tick.C
	}
}

// holdsReconciled checks that the relays and sessions stay reconciled for
// d: nothing switches back on by itself.
func (lab *crashLab) holdsReconciled(t *testing.T, p *fabgateProc, d time.Duration) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for end := time.Now().Add(d); time.Now().Before(end); <-tick.C {
		if bad, err := lab.unreconciled(p); err != nil || bad != "" {
			t.Fatalf("relays and sessions came apart after reconciliation: %s (err %v)", bad, err)
		}
	}
}

// unreconciled describes the devices whose relay disagrees with the open
// sessions ("" when none does).
func (lab *crashLab) unreconciled(p *fabgateProc) (string, error) {
	var open []fablab.Session
	code, err := lab.do(p, "GET", "/api/v1/sessions?active=true", nil, &open)
	if err != nil || code != 200 {
		return "", fmt.Errorf("open sessions: %d %v", code, err)
	}
	byMachine := map[fablab.ID]fablab.Session{}
	for _, s := range open {
		if o, twice := byMachine[s.MachineID]; twice {
			return fmt.Sprintf("machine %s has two open sessions, %s and %s", s.MachineID, o.ID, s.ID), nil
		}
		byMachine[s.MachineID] = s
	}
	// The server hears every device: each is online, with the relay the
	// device has.
	var views []struct {
		ID     string
		Online bool
		Relay  string
	}
	if code, err := lab.do(p, "GET", "/api/v1/devices", nil, &views); err != nil || code != 200 {
		return "", fmt.Errorf("devices: %d %v", code, err)
	}
	seen := map[string]string{}
	for _, v := range views {
		if v.Online {
			seen[v.ID] = v.Relay
		}
	}
	var bad []string
	for _, d := range lab.devices {
		relay, session := d.sim.Relay()
		s, isOpen := byMachine[d.machine]
		switch server, online := seen[d.id]; {
		case !online:
			bad = append(bad, fmt.Sprintf("%s: not online for the server", d.id))
			continue
		case server != relay:
			bad = append(bad, fmt.Sprintf("%s: relay %s, %q for the server", d.id, relay, server))
			continue
		}
		switch {
		case relay == wire.RelayOn && !isOpen:
			bad = append(bad, fmt.Sprintf("%s: relay on for session %s, no open session", d.id, session))
		case relay == wire.RelayOn && s.ID.String() != session:
			bad = append(bad, fmt.Sprintf("%s: relay on for session %s, open session %s", d.id, session, s.ID))
		case relay == wire.RelayOn && !s.Confirmed:
			// Its ack lost in the crash: the relay's state confirms it,
			// or it would be closed unbilled.
			bad = append(bad, fmt.Sprintf("%s: relay on for session %s, not confirmed", d.id, session))
		case relay != wire.RelayOn && isOpen:
			bad = append(bad, fmt.Sprintf("%s: relay %s, open session %s", d.id, relay, s.ID))
		}
	}
	return strings.Join(bad, "; "), nil
}

// acked is what the server acknowledged, across every crash.
type acked struct {
	mu sync.Mutex
	// bookings answered 201, as last acknowledged (a 200 to a DELETE
	// makes it cancelled); cancelling marks those a DELETE was sent for
	// without an answer (which may or may not have been committed).
	bookings   map[fablab.ID]fablab.Booking
	cancelling map[fablab.ID]bool
	// sessions a device was told to unlock; closed, those whose tap-out
	// was answered.
	sessions map[fablab.ID]string // → device
	closed   map[fablab.ID]bool
	charges  map[fablab.ID]fablab.Charge
	invoices map[fablab.ID]fablab.Invoice

	created, cancelled, conflicts, grants, tapOuts, denials, billingRuns int
}

func newAcked() *acked {
	return &acked{bookings: map[fablab.ID]fablab.Booking{}, cancelling: map[fablab.ID]bool{},
		sessions: map[fablab.ID]string{}, closed: map[fablab.ID]bool{}, charges: map[fablab.ID]fablab.Charge{}, invoices: map[fablab.ID]fablab.Invoice{}}
}

func (a *acked) summary() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return fmt.Sprintf("%d bookings created, %d cancelled (%d refused as conflicts), %d sessions opened, %d tapped out, %d taps denied, %d charges seen in %d billing runs, %d invoices",
		a.created, a.cancelled, a.conflicts, a.grants, a.tapOuts, a.denials, len(a.charges), a.billingRuns, len(a.invoices))
}

// crashLoad is the load of one iteration: bookers, tappers and a biller.
type crashLoad struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (l *crashLoad) stop() {
	l.cancel()
	l.wg.Wait()
}

// startLoad starts the load against p: two bookers (create and cancel
// bookings for the makers, as the admin), one tapper per device (walk-ins
// and tap-outs, a denial when the other member's session runs), and a
// biller (the billing job, then the charges listed).
func (lab *crashLab) startLoad(p *fabgateProc, ack *acked, seed uint64) *crashLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &crashLoad{cancel: cancel}
	for i := range 2 {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				lab.bookOrCancel(ctx, p, ack, rng)
			}
		}()
	}
	for i, d := range lab.devices {
		rng := rand.New(rand.NewPCG(seed, uint64(10+i)))
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil && tap(ctx, d, ack, rng) {
			}
		}()
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for ctx.Err() == nil && lab.bill(ctx, p, ack) {
		}
	}()
	return l
}

// bookOrCancel creates a booking of a weekday slot one to twenty days
// ahead for a random maker, or cancels an acknowledged one.
func (lab *crashLab) bookOrCancel(ctx context.Context, p *fabgateProc, ack *acked, rng *rand.Rand) {
	if rng.IntN(3) == 0 {
		ack.mu.Lock()
		var pick fablab.ID
		for id, b := range ack.bookings { // map order is random enough
			if b.State == fablab.BookingConfirmed && !ack.cancelling[id] {
				pick = id
				break
			}
		}
		if pick != 0 {
			ack.cancelling[pick] = true
		}
		ack.mu.Unlock()
		if pick == 0 {
			return
		}
		var b fablab.Booking
		code, err := p.do(ctx, "DELETE", "/api/v1/bookings/"+pick.String(), lab.admin, nil, &b)
		if err == nil && code == 200 {
			ack.mu.Lock()
			ack.bookings[pick], ack.cancelled = b, ack.cancelled+1
			ack.mu.Unlock()
		}
		return
	}
	now := lab.clock.Now().In(parisTZ)
	day := now.AddDate(0, 0, 1+rng.IntN(20))
	for day.Weekday() == time.Saturday || day.Weekday() == time.Sunday {
		day = day.AddDate(0, 0, 1)
	}
	start := time.Date(day.Year(), day.Month(), day.Day(), 9, 0, 0, 0, parisTZ).Add(time.Duration(rng.IntN(22)) * 30 * time.Minute)
	end := start.Add(time.Duration(1+rng.IntN(3)) * 30 * time.Minute)
	req := map[string]any{"machine_id": lab.machines[rng.IntN(len(lab.machines))].String(), "member_id": lab.members[rng.IntN(len(lab.members))].String(), "start": start, "end": end}
	var b fablab.Booking
	code, err := p.do(ctx, "POST", "/api/v1/bookings", lab.admin, req, &b)
	ack.mu.Lock()
	defer ack.mu.Unlock()
	switch {
	case err == nil && code == 201:
		ack.bookings[b.ID], ack.created = b, ack.created+1
	case err == nil && code == 409:
		ack.conflicts++
	}
}

// tap taps one of the device's two badges and waits for the server's
// answer to it, recording an unlock (an acknowledged session) or a
// tap-out's lock (an acknowledged end). It returns false when no answer
// came (the server is gone).
func tap(ctx context.Context, d *crashDevice, ack *acked, rng *rand.Rand) bool {
	msgID, err := d.sim.Tap(ctx, d.uids[rng.IntN(len(d.uids))])
	if err != nil {
		return false
	}
	for {
		c, err := d.sim.Next(ctx)
		if err != nil {
			return false
		}
		if c.TapID != msgID {
			continue // a command of reconciliation, or the answer to an earlier tap
		}
		id, _ := fablab.ParseID(c.SessionID)
		ack.mu.Lock()
		switch c.Op {
		case wire.OpUnlock:
			ack.sessions[id], ack.grants = d.id, ack.grants+1
		case wire.OpLock:
			ack.closed[id], ack.tapOuts = true, ack.tapOuts+1
		case wire.OpDeny:
			ack.denials++
		}
		ack.mu.Unlock()
		return true
	}
}

// bill runs the billing job and records the charges then listed (those
// of the last ten minutes of use: a session is billed within seconds of its
// end, and the whole ledger is too long a list to finish before most
// crashes); past the month's end, it first runs the month's invoices (a
// second run issues nothing) and records the invoices listed.
func (lab *crashLab) bill(ctx context.Context, p *fabgateProc, ack *acked) bool {
	if !lab.clock.Now().Before(crashMonthChange) {
		var run struct{ Invoices []fablab.Invoice }
		if code, err := p.do(ctx, "POST", "/api/v1/invoices/run?period="+crashMonth.String(), lab.admin, nil, &run); err != nil || code != 200 && code != 201 {
			return false
		}
		var invs []fablab.Invoice
		if code, err := p.do(ctx, "GET", "/api/v1/invoices", lab.admin, nil, &invs); err != nil || code != 200 {
			return false
		}
		ack.mu.Lock()
		for _, inv := range append(run.Invoices, invs...) {
			ack.invoices[inv.ID] = inv
		}
		ack.mu.Unlock()
	}
	code, err := p.do(ctx, "POST", "/api/v1/jobs/billing/run", lab.admin, nil, nil)
	if err != nil || code != 200 && code != 409 { // 409: the scheduled run is on
		return false
	}
	from := lab.clock.Now().Add(-10 * time.Minute).UTC().Format(time.RFC3339)
	var charges []fablab.Charge
	if code, err := p.do(ctx, "GET", "/api/v1/charges?from="+url.QueryEscape(from), lab.admin, nil, &charges); err != nil || code != 200 {
		return false
	}
	ack.mu.Lock()
	defer ack.mu.Unlock()
	ack.billingRuns++
	for _, c := range charges {
		ack.charges[c.ID] = c
	}
	return true
}

// fileContents is what the loop checks of a data file, read in a few
// transactions.
type fileContents struct {
	bookings map[fablab.ID]fablab.Booking
	sessions map[fablab.ID]fablab.Session
	charges  map[fablab.ID]fablab.Charge
	invoices []fablab.Invoice
}

func readFile(t *testing.T, s *bolt.Store, machines []fablab.ID, when string) fileContents {
	t.Helper()
	ctx := context.Background()
	f := fileContents{bookings: map[fablab.ID]fablab.Booking{}, sessions: map[fablab.ID]fablab.Session{}, charges: map[fablab.ID]fablab.Charge{}}
	for _, m := range machines {
		bs, err := s.Bookings(ctx, bolt.BookingFilter{MachineID: m, From: crashStart.Add(-24 * time.Hour), To: crashStart.Add(60 * 24 * time.Hour)})
		if err != nil {
			t.Fatalf("%s: bookings of machine %s: %v", when, m, err)
		}
		for _, b := range bs {
			f.bookings[b.ID] = b
		}
	}
	ss, err := s.SessionsStarted(ctx, crashStart.Add(-time.Hour), crashStart.Add(30*24*time.Hour), 1<<30)
	if err != nil {
		t.Fatalf("%s: sessions: %v", when, err)
	}
	for _, sess := range ss {
		f.sessions[sess.ID] = sess
	}
	cs, err := s.Charges(ctx, bolt.ChargeFilter{})
	if err != nil {
		t.Fatalf("%s: charges: %v", when, err)
	}
	for _, c := range cs {
		f.charges[c.ID] = c
	}
	if f.invoices, err = s.Invoices(ctx, bolt.InvoiceFilter{}); err != nil {
		t.Fatalf("%s: invoices: %v", when, err)
	}
	return f
}

// verifyFile opens the stopped server's data file and checks that it
// holds everything acknowledged and keeps the invariants of bookings,
// sessions and the ledger.
func (lab *crashLab) verifyFile(t *testing.T, ack *acked, when string) {
	t.Helper()
	s, err := bolt.Open(filepath.Join(lab.data, "fabgate.db"), bolt.Options{Now: lab.clock.Now})
	if err != nil {
		t.Fatalf("%s: open the data file: %v", when, err)
	}
	f := readFile(t, s, lab.machines, when)
	if err := s.Close(); err != nil {
		t.Fatalf("%s: close the data file: %v", when, err)
	}
	ack.mu.Lock()
	defer ack.mu.Unlock()

	for id, want := range ack.bookings {
		got, ok := f.bookings[id]
		if !ok {
			t.Errorf("%s: acknowledged booking %s is not in the file", when, id)
			continue
		}
		state := got.State
		if state == fablab.BookingCancelled && want.State == fablab.BookingConfirmed && ack.cancelling[id] {
			state = want.State // its cancellation was sent, its answer lost
		}
		if got.MachineID != want.MachineID || got.MemberID != want.MemberID || !got.Start.Equal(want.Start) || !got.End.Equal(want.End) || state != want.State {
			t.Errorf("%s: booking %s is %+v, acknowledged as %+v", when, id, got, want)
		}
	}
	occupied := map[fablab.ID][]fablab.Booking{}
	for _, b := range f.bookings {
		if b.Occupies() {
			occupied[b.MachineID] = append(occupied[b.MachineID], b)
		}
	}
	for m, bs := range occupied {
		slices.SortFunc(bs, func(a, b fablab.Booking) int { return a.Start.Compare(b.Start) })
		for i := 1; i < len(bs); i++ {
			if bs[i].Start.Before(bs[i-1].End) {
				t.Errorf("%s: bookings %s and %s of machine %s overlap", when, bs[i-1].ID, bs[i].ID, m)
			}
		}
	}

	for id, dev := range ack.sessions {
		got, ok := f.sessions[id]
		switch {
		case !ok:
			t.Errorf("%s: session %s, unlocked on %s, is not in the file", when, id, dev)
		case got.DeviceID != dev:
			t.Errorf("%s: session %s is on device %s, was unlocked on %s", when, id, got.DeviceID, dev)
		case ack.closed[id] && got.Open():
			t.Errorf("%s: session %s is open, its tap-out was answered", when, id)
		}
	}
	for id := range ack.closed {
		if got, ok := f.sessions[id]; !ok || got.Open() {
			t.Errorf("%s: session %s, whose tap-out was answered: %+v (in the file: %t)", when, id, got, ok)
		}
	}
	open := map[fablab.ID]fablab.ID{}
	for _, sess := range f.sessions {
		if !sess.Open() {
			continue
		}
		if other, twice := open[sess.MachineID]; twice {
			t.Errorf("%s: machine %s has two open sessions, %s and %s", when, sess.MachineID, other, sess.ID)
		}
		open[sess.MachineID] = sess.ID
	}

	for id, want := range ack.charges {
		got, ok := f.charges[id]
		if !ok {
			t.Errorf("%s: listed charge %s is not in the file", when, id)
			continue
		}
		if got.Kind != want.Kind || got.SessionID != want.SessionID || got.Payer != want.Payer || got.Minutes != want.Minutes || got.AmountCents != want.AmountCents || !got.At.Equal(want.At) {
			t.Errorf("%s: charge %s is %+v, was listed as %+v", when, id, got, want)
		}
	}
	billed := map[fablab.ID]fablab.ID{}
	for _, c := range f.charges {
		if c.Kind != fablab.ChargeSession {
			continue
		}
		if first, twice := billed[c.SessionID]; twice {
			t.Errorf("%s: session %s is billed twice: charges %s and %s", when, c.SessionID, first, c.ID)
			continue
		}
		billed[c.SessionID] = c.ID
		if sess, ok := f.sessions[c.SessionID]; !ok || sess.ChargeID != c.ID || sess.Open() {
			t.Errorf("%s: charge %s bills session %s, which is %+v (in the file: %t)", when, c.ID, c.SessionID, sess, ok)
		}
	}
	for _, sess := range f.sessions {
		if sess.ChargeID != 0 && billed[sess.ID] != sess.ChargeID {
			t.Errorf("%s: session %s names charge %s, which does not bill it", when, sess.ID, sess.ChargeID)
		}
	}
	verifyInvoices(t, f, ack, when)
}

// verifyInvoices checks that every invoice listed is in the file,
// unchanged, that the numbers of each year run from 1 without a gap, that
// no charge is on two invoices and each line is its charge's amount, and
// that a payer has one monthly invoice per period at most.
func verifyInvoices(t *testing.T, f fileContents, ack *acked, when string) {
	t.Helper()
	byID := map[fablab.ID]fablab.Invoice{}
	numbers := map[string][]int{} // year → numbers
	onInvoice := map[fablab.ID]string{}
	monthly := map[string]string{}
	for _, inv := range f.invoices {
		byID[inv.ID] = inv
		parts := strings.Split(inv.Number, "-")
		n, err := strconv.Atoi(parts[len(parts)-1])
		if len(parts) < 3 || err != nil {
			t.Errorf("%s: invoice %s has the number %q", when, inv.ID, inv.Number)
			continue
		}
		year := parts[len(parts)-2]
		numbers[year] = append(numbers[year], n)
		if inv.Kind != fablab.InvoiceKindInvoice {
			continue
		}
		key := inv.Period + " " + inv.Payer.String()
		if other, twice := monthly[key]; twice {
			t.Errorf("%s: payer %s has two invoices for %s: %s and %s", when, inv.Payer, inv.Period, other, inv.Number)
		}
		monthly[key] = inv.Number
		for _, l := range inv.Lines {
			if other, twice := onInvoice[l.ChargeID]; twice {
				t.Errorf("%s: charge %s is on invoices %s and %s", when, l.ChargeID, other, inv.Number)
			}
			onInvoice[l.ChargeID] = inv.Number
			if c, ok := f.charges[l.ChargeID]; !ok || c.AmountCents != l.AmountCents {
				t.Errorf("%s: invoice %s bills charge %s at %d¢; the charge: %+v (in the file: %t)", when, inv.Number, l.ChargeID, l.AmountCents, c, ok)
			}
		}
	}
	for year, ns := range numbers {
		seen := map[int]bool{}
		for _, n := range ns {
			if seen[n] || n < 1 || n > len(ns) {
				t.Errorf("%s: the invoice numbers of %s are not 1 to %d without a gap: %v", when, year, len(ns), ns)
				break
			}
			seen[n] = true
		}
	}
	for id, want := range ack.invoices {
		got, ok := byID[id]
		if !ok {
			t.Errorf("%s: listed invoice %s is not in the file", when, id)
			continue
		}
		if got.Number != want.Number || got.Payer != want.Payer || got.Period != want.Period || got.TotalInclCents != want.TotalInclCents || len(got.Lines) != len(want.Lines) {
			t.Errorf("%s: invoice %s is %s %+v %s %d¢ (%d lines), was listed as %s %+v %s %d¢ (%d lines)", when, id,
				got.Number, got.Payer, got.Period, got.TotalInclCents, len(got.Lines), want.Number, want.Payer, want.Period, want.TotalInclCents, len(want.Lines))
		}
	}
}

// verifyAllBilled checks, on the stopped server's file after the last
// billing run, that every ended session is billed exactly once.
func (lab *crashLab) verifyAllBilled(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	s, err := bolt.Open(filepath.Join(lab.data, "fabgate.db"), bolt.Options{Now: lab.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, err := s.UnbilledSessions(ctx); err != nil || n != 0 {
		t.Errorf("%d ended sessions left unbilled (%v)", n, err)
	}
	if ran, err := s.InvoicesRun(ctx, crashMonth); err != nil || !ran {
		t.Errorf("the invoices of %s were not run after the month's end (%v)", crashMonth, err)
	}
	f := readFile(t, s, lab.machines, "after the clean stop")
	bySession := map[fablab.ID]int{}
	for _, c := range f.charges {
		if c.Kind == fablab.ChargeSession {
			bySession[c.SessionID]++
		}
	}
	ended := 0
	for _, sess := range f.sessions {
		switch {
		case sess.Open() && (sess.ChargeID != 0 || bySession[sess.ID] != 0):
			t.Errorf("open session %s is billed", sess.ID)
		case !sess.Open() && (sess.ChargeID == 0 || bySession[sess.ID] != 1):
			t.Errorf("ended session %s: charge %s, %d session charges", sess.ID, sess.ChargeID, bySession[sess.ID])
		case !sess.Open():
			ended++
		}
	}
	if ended == 0 {
		t.Error("no session ended in the whole loop")
	}
	t.Logf("in the file: %d sessions, %d of them ended and billed once; %d charges; %d invoices", len(f.sessions), ended, len(f.charges), len(f.invoices))
}
