package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/devicesim"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/logbuf"
	"github.com/fabgate/fabgate/internal/mqtt"
	"github.com/fabgate/fabgate/internal/mqtt/mqtttest"
	"github.com/fabgate/fabgate/internal/wire"
)

// The lab of DESIGN §10's memory target: 10 000 members, 200 devices (one
// per machine) and 1 000 000 sessions (reportSessions: fewer with -short or
// FABGATE_BENCH_SESSIONS).
const (
	rssMembers   = 10_000
	rssStaff     = 20 // of the members; on every machine's allowlist
	rssDevices   = 200
	rssTrainings = 10
)

// rssLab is a data directory seeded for BenchmarkServerRSS.
type rssLab struct {
	dir      string
	token    string // a staff member's login, for the pages and the API
	devices  []rssDevice
	from, to time.Time // the seeded sessions' span
	sessions int
}

// rssDevice is one device's credentials and the badge of a member who may
// use its machine.
type rssDevice struct{ id, secret, uid string }

// seedRSSLab writes the lab to dir/fabgate.db without fsync: 10 trainings;
// 200 machines, machine i requiring training i mod 10, each driven by its
// own device; 50 organisations; 10 000 members each with a badge, 20 of
// them staff, the makers holding two trainings each (so each machine's
// offline allowlist holds about 2 000 badges); and n sessions over the two
// years before now, billed (their charges and usage records written by the
// billing run's code). No bookings, invoices or audit events.
func seedRSSLab(b *testing.B, dir string, n int) *rssLab {
	b.Helper()
	ctx := context.Background()
	now := time.Now()
	s, err := bolt.Open(filepath.Join(dir, "fabgate.db"), bolt.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}()
	var trainings []fablab.ID
	for i := 0; i < rssTrainings; i++ {
		t, err := s.CreateTraining(ctx, fablab.Training{Name: fmt.Sprintf("Training %d", i)})
		if err != nil {
			b.Fatal(err)
		}
		trainings = append(trainings, t.ID)
	}
	l := &rssLab{dir: dir}
	kinds := []string{fablab.KindLaserCutter, fablab.Kind3DPrinter, fablab.KindCNC, "vinyl-cutter", "electronics"}
	var machines []fablab.ID
	for i := 0; i < rssDevices; i++ {
		dev := fmt.Sprintf("dev-%03d", i)
		m, err := s.CreateMachine(ctx, fablab.Machine{Name: fmt.Sprintf("Machine %03d", i), Kind: kinds[i%len(kinds)], DeviceID: dev,
			Rules: fablab.DefaultBookingRules(), RequiredTrainings: []fablab.ID{trainings[i%rssTrainings]},
			Prices: map[string]int64{"student": 300, "academic": 600, "sme": 1200}})
		if err != nil {
			b.Fatal(err)
		}
		machines = append(machines, m.ID)
		secret := auth.NewToken()
		hash, err := mqtt.MosquittoPasswordHash(secret)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.CreateDevice(ctx, fablab.Device{ID: dev, MachineID: m.ID, SecretHash: hash}); err != nil {
			b.Fatal(err)
		}
		// Maker i holds machine i's training (see below).
		l.devices = append(l.devices, rssDevice{id: dev, secret: secret, uid: badgeUID(i)})
	}
	var orgs []fablab.ID
	for i := 0; i < 50; i++ {
		o, err := s.CreateOrganisation(ctx, fablab.Organisation{Name: fmt.Sprintf("Org %d", i), Group: "sme"})
		if err != nil {
			b.Fatal(err)
		}
		orgs = append(orgs, o.ID)
	}
	secret := s.BadgeSecret()
	var staff []fablab.ID
	var in []bolt.MemberImport
	for i := 0; i < rssStaff; i++ {
		in = append(in, bolt.MemberImport{
			Member: fablab.Member{Email: fmt.Sprintf("staff%02d@bench.test", i), Name: fmt.Sprintf("Staff %02d", i), Role: fablab.RoleStaff, Group: "staff"},
			Badges: []string{auth.BadgeHash(secret, badgeUID(rssMembers+i))},
		})
	}
	got, err := s.ImportMembers(ctx, in)
	if err != nil {
		b.Fatal(err)
	}
	for _, m := range got {
		staff = append(staff, m.ID)
	}
	groups := []string{"student", "academic", "sme"}
	var makers []fablab.ID
	const batch = 2000 // ImportMembers' advice: a few thousand per call
	for first := 0; first < rssMembers-rssStaff; first += batch {
		in = in[:0]
		for j := first; j < min(first+batch, rssMembers-rssStaff); j++ {
			m := fablab.Member{Email: fmt.Sprintf("m%05d@bench.test", j), Name: fmt.Sprintf("Maker %05d", j), Group: groups[j%len(groups)]}
			if j%4 == 3 {
				m.Group, m.OrganisationID, m.Payer = "", orgs[j%len(orgs)], fablab.PayerOrganisation
			}
			in = append(in, bolt.MemberImport{Member: m, Badges: []string{auth.BadgeHash(secret, badgeUID(j))},
				Trainings: []fablab.ID{trainings[j%rssTrainings], trainings[(j+3)%rssTrainings]}, GrantedBy: staff[0]})
		}
		got, err := s.ImportMembers(ctx, in)
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range got {
			makers = append(makers, m.ID)
		}
	}

	l.sessions = n
	l.to = now.Add(-time.Hour).Truncate(time.Second)
	l.from = l.to.AddDate(-2, 0, 0)
	// Sessions of one machine start every 200 steps (3.5 h with 1 M) and
	// last at most 3 h: they never overlap.
	step := l.to.Add(-3*time.Hour).Sub(l.from) / time.Duration(n)
	// 20 000 per transaction: fewer and every commit rewrites most of the
	// member-keyed indexes' pages, more and bbolt's inserts into unsplit
	// nodes cost more (CPU time: 26 s per 200 000 at 5 000, 23 s at 20 000,
	// 33 s at 50 000).
	seeds := make([]fablab.Session, 0, 20_000)
	for i := 0; i < n; i++ {
		start := l.from.Add(time.Duration(i) * step).Truncate(time.Second)
		end := start.Add(time.Duration(30+(i*37)%150) * time.Minute)
		mi := i % rssDevices
		seeds = append(seeds, fablab.Session{
			MachineID: machines[mi], MemberID: makers[(i*7)%len(makers)], DeviceID: l.devices[mi].id,
			Started: start, Until: start.Add(3 * time.Hour), Ended: &end, EndReason: fablab.EndTapOut,
			TapMsgID: fmt.Sprintf("t%015x", i), CmdID: fmt.Sprintf("c%015x", i), Confirmed: true, Billable: true,
		})
		if len(seeds) == cap(seeds) || i == n-1 {
			if err := s.SeedBilledSessions(ctx, seeds); err != nil {
				b.Fatal(err)
			}
			seeds = seeds[:0]
		}
	}
	l.token = auth.NewToken()
	if err := s.PutToken(ctx, auth.TokenKey(l.token), bolt.Token{MemberID: staff[0], CSRF: "x", ExpiresAt: now.Add(24 * time.Hour)}); err != nil {
		b.Fatal(err)
	}
	return l
}

// badgeUID is the UID of the badge of maker i (staff: rssMembers + i).
func badgeUID(i int) string { return fmt.Sprintf("04%012X", i) }

// serverProcess is `fabgate serve` running as a child process.
type serverProcess struct {
	cmd    *exec.Cmd
	url    string // http://host:port
	mqtt   string // tcp://host:port of its embedded broker
	stderr *logbuf.Buffer
	exited chan struct{}
}

// buildServer builds cmd/fabgate as `make build` does (stripped, trimmed
// paths), since the binary's own pages count in its RSS.
func buildServer(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "fabgate")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "github.com/fabgate/fabgate/cmd/fabgate")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startServer runs bin serve on dir with its HTTP server on a free port and
// its embedded broker on another, and returns once it serves. The
// environment's FABGATE_ settings are left out: the flags say it all.
func startServer(b *testing.B, bin, dir string) *serverProcess {
	b.Helper()
	p := &serverProcess{mqtt: mqtttest.FreeAddr(b), stderr: &logbuf.Buffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, "serve", "--data", dir, "--http", "127.0.0.1:0", "--mqtt-listen", p.mqtt, "--log-level", "warn")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FABGATE_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	p.mqtt = "tcp://" + p.mqtt
	p.cmd.Stderr = p.stderr
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		defer close(p.exited)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "FabGate is running at "); ok {
				ready <- strings.TrimSuffix(strings.Fields(u)[0], "/")
			}
		}
		io.Copy(io.Discard, out)
		p.cmd.Wait()
	}()
	b.Cleanup(p.stop)
	select {
	case p.url = <-ready:
	case <-p.exited:
		b.Fatalf("fabgate serve exited before serving:\n%s", p.stderr)
	case <-time.After(2 * time.Minute):
		b.Fatalf("fabgate serve did not serve within 2 minutes:\n%s", p.stderr)
	}
	return p
}

// stop ends the server as systemd does (SIGTERM), killing it if it has not
// exited within 30 s.
func (p *serverProcess) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// get fetches path as the holder of token (a page: the session cookie; the
// API: a bearer token) and fails unless it answers 200.
func (p *serverProcess) get(b *testing.B, path, token string) {
	b.Helper()
	req, err := http.NewRequest("GET", p.url+path, nil)
	if err != nil {
		b.Fatal(err)
	}
	if token != "" {
		if strings.HasPrefix(path, "/api/") {
			req.Header.Set("Authorization", "Bearer "+token)
		} else {
			req.Header.Set("Cookie", "fabgate_session="+token)
			req.Header.Set("Accept", "text/html")
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("GET %s: %s\n%s", path, resp.Status, body[:min(len(body), 500)])
	}
}

// memory is what /proc/<pid>/status says of a process's memory, in kB.
type memory struct {
	rss, anon, file, hwm int64
}

func mb(kb int64) float64 { return float64(kb) / 1024 }

func readMemory(b *testing.B, pid int) memory {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	var m memory
	for _, line := range strings.Split(string(raw), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, _ := strconv.ParseInt(f[0], 10, 64)
		switch name {
		case "VmRSS":
			m.rss = v
		case "RssAnon":
			m.anon = v
		case "RssFile":
			m.file = v
		case "VmHWM":
			m.hwm = v
		}
	}
	if m.rss == 0 {
		b.Fatalf("/proc/%d/status has no VmRSS", pid)
	}
	return m
}

// mappedRSS returns how much of file is resident in the process's mappings
// of it (bbolt maps the data file), from /proc/<pid>/smaps, in kB.
func mappedRSS(b *testing.B, pid int, file string) int64 {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		b.Fatal(err)
	}
	var kb int64
	in := false
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 5 && strings.Contains(f[0], "-"): // a mapping's header: address range, perms, offset, dev, inode, path
			in = len(f) >= 6 && f[5] == file
		case in && len(f) == 3 && f[0] == "Rss:":
			v, _ := strconv.ParseInt(f[1], 10, 64)
			kb += v
		}
	}
	return kb
}

// settledMemory samples the server's memory four times a second until two
// seconds of samples lie within 1 MB (its allocations done, what the Go
// runtime gives back given back), for 20 s at most, and returns the last.
func (p *serverProcess) settledMemory(b *testing.B) memory {
	b.Helper()
	const window, spread = 8, 1024
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(20 * time.Second)
	var samples []int64
	for {
		m := readMemory(b, p.cmd.Process.Pid)
		samples = append(samples, m.rss)
		if len(samples) >= window {
			last := samples[len(samples)-window:]
			lo, hi := last[0], last[0]
			for _, v := range last {
				lo, hi = min(lo, v), max(hi, v)
			}
			if hi-lo <= spread || time.Now().After(deadline) {
				return m
			}
		}
		<-tick.C
	}
}

// BenchmarkServerRSS: the resident memory of `fabgate serve` (the built
// binary, as a child process) on a data file of 10 000 members and
// 1 000 000 billed sessions with 200 devices connected to its embedded
// broker, each having opened a session with a tap, after the staff pages
// and the two-year reports have been served; against the same binary on an
// empty data file with no device. Target (DESIGN §10): ≤ 150 MB. VmRSS
// counts the data file's pages the server has read (bbolt maps the file):
// rss-file-MB is the file-backed part (the data file's, rss-datafile-MB,
// and the binary's), rss-anon-MB the process's own memory, hwm-MB its
// peak. The memory after each step is logged.
func BenchmarkServerRSS(b *testing.B) {
	bin := buildServer(b)

	base := startServer(b, bin, b.TempDir())
	base.get(b, "/login", "")
	baseMem := base.settledMemory(b)
	base.stop()

	dir := b.TempDir()
	seedStart := time.Now()
	l := seedRSSLab(b, dir, reportSessions(b))
	fi, err := os.Stat(filepath.Join(dir, "fabgate.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d members, %d devices and %d sessions (%d MB) in %s", rssMembers, rssDevices, l.sessions, fi.Size()>>20, time.Since(seedStart).Round(time.Second))

	srv := startServer(b, bin, dir)
	dataFile := filepath.Join(dir, "fabgate.db")
	phase := func(name string) {
		m := readMemory(b, srv.cmd.Process.Pid)
		b.Logf("%-30s VmRSS %4.0f MB (anon %4.0f, file %4.0f, of which the data file %4.0f)", name, mb(m.rss), mb(m.anon), mb(m.file), mb(mappedRSS(b, srv.cmd.Process.Pid, dataFile)))
	}
	phase("started")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Devices log in 16 at a time: the broker drops connections beyond 32
	// not logged in yet from one address (mqtt.DefaultMaxPendingPerAddr),
	// and these all come from 127.0.0.1.
	connecting := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, d := range l.devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := tapUnlock(ctx, srv.mqtt, d, connecting); err != nil {
				b.Errorf("%s: %v", d.id, err)
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	phase("200 devices connected, tapped")
	for _, path := range []string{"/staff", "/staff/members", "/machines", "/staff/audit"} {
		srv.get(b, path, l.token)
	}
	phase("staff pages served")
	srv.get(b, "/staff/reports", l.token) // the last twelve months
	phase("reports page served")
	span := url.Values{"from": {l.from.Format(time.RFC3339)}, "to": {l.to.Format(time.RFC3339)}}
	srv.get(b, "/api/v1/reports/usage?by=member&"+span.Encode(), l.token)
	srv.get(b, "/api/v1/reports/revenue?"+span.Encode(), l.token)
	phase("two-year reports served")
	got := srv.settledMemory(b)

	b.ReportMetric(mb(got.rss), "rss-MB(target≤150)")
	b.ReportMetric(mb(baseMem.rss), "base-rss-MB")
	b.ReportMetric(float64(got.rss)/float64(baseMem.rss), "ratio")
	b.ReportMetric(mb(got.anon), "rss-anon-MB")
	b.ReportMetric(mb(got.file), "rss-file-MB")
	b.ReportMetric(mb(mappedRSS(b, srv.cmd.Process.Pid, dataFile)), "rss-datafile-MB")
	b.ReportMetric(mb(got.hwm), "hwm-MB")
	b.ReportMetric(float64(fi.Size()>>20), "data-MB")
	b.ReportMetric(float64(l.sessions), "sessions")
}

// tapUnlock connects device d to the broker at url (holding a place in
// connecting while it logs in), taps its maker's badge and waits for the
// unlock. The device stays connected until ctx ends.
func tapUnlock(ctx context.Context, url string, d rssDevice, connecting chan struct{}) error {
	connecting <- struct{}{}
	sim, err := devicesim.Start(ctx, devicesim.Config{Broker: url, ID: d.id, Secret: d.secret})
	<-connecting
	if err != nil {
		return err
	}
	context.AfterFunc(ctx, sim.Close)
	if _, err := sim.Tap(ctx, d.uid); err != nil {
		return err
	}
	for {
		c, err := sim.Next(ctx)
		if err != nil {
			return err
		}
		switch c.Op {
		case wire.OpUnlock:
			return nil
		case wire.OpDeny:
			return fmt.Errorf("tap denied: %s", c.Reason)
		}
	}
}
