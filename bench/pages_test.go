package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/httpapi"
)

// pageLab is a lab of the size the web pages must serve: 50 machines,
// 10 000 members and a year of bookings (six months back, six ahead).
type pageLab struct {
	url          string
	uncachedURL  string // the same lab, served without the pages' cache
	maker, staff string // session tokens, sent as the page cookie
	machine      fablab.ID
	now          time.Time
	bookings     int
	close        func()
}

const (
	pageMachines = 50
	pageMembers  = 10000
	// bookingsPerDay per machine: four 2-hour slots from 08:00 UTC.
	bookingsPerDay = 4
)

var (
	pageLabOnce sync.Once
	sharedPage  *pageLab
	pageLabErr  error
)

// newPageLab seeds the lab once per run (seeding without fsync, then
// reopening the file as a server does) and serves it.
func newPageLab(b *testing.B) *pageLab {
	pageLabOnce.Do(func() { sharedPage, pageLabErr = seedPageLab() })
	if pageLabErr != nil {
		b.Fatal(pageLabErr)
	}
	return sharedPage
}

func seedPageLab() (*pageLab, error) {
	dir, err := tempDir()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "fabgate.db")
	now := time.Date(2026, 3, 4, 9, 0, 0, 0, time.UTC) // a Wednesday
	clock := func() time.Time { return now }
	s, err := bolt.Open(path, bolt.Options{Now: clock, NoSync: true})
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	allDay := []fablab.TimeRange{{Open: 0, Close: 24 * 60}}
	if _, err := s.UpdateSettings(ctx, func(st *fablab.Settings) error {
		st.OpeningHours = fablab.OpeningHours{Monday: allDay, Tuesday: allDay, Wednesday: allDay, Thursday: allDay, Friday: allDay, Saturday: allDay, Sunday: allDay}
		return nil
	}); err != nil {
		return nil, err
	}
	training, err := s.CreateTraining(ctx, fablab.Training{Name: "Safety"})
	if err != nil {
		return nil, err
	}
	kinds := []string{fablab.KindLaserCutter, fablab.Kind3DPrinter, fablab.KindCNC, "vinyl-cutter", "electronics"}
	var machines []fablab.ID
	for i := 0; i < pageMachines; i++ {
		rules := fablab.DefaultBookingRules()
		rules.MaxAheadDays = 366
		m, err := s.CreateMachine(ctx, fablab.Machine{Name: fmt.Sprintf("Machine %02d", i), Kind: kinds[i%len(kinds)], Rules: rules,
			RequiredTrainings: []fablab.ID{training.ID}, Prices: map[string]int64{"student": 300, "sme": 1200}})
		if err != nil {
			return nil, err
		}
		machines = append(machines, m.ID)
	}
	staff, err := s.CreateMember(ctx, fablab.Member{Email: "staff@bench.test", Name: "Staff", Role: fablab.RoleStaff, Group: "staff"})
	if err != nil {
		return nil, err
	}
	var members []fablab.ID
	for i := 0; i < pageMembers; i++ {
		m, err := s.CreateMember(ctx, fablab.Member{Email: fmt.Sprintf("m%05d@bench.test", i), Name: fmt.Sprintf("Maker %05d", i), Group: "student"})
		if err != nil {
			return nil, err
		}
		members = append(members, m.ID)
	}
	if _, err := s.GrantQualification(ctx, fablab.Qualification{MemberID: members[0], TrainingID: training.ID, GrantedBy: staff.ID}); err != nil {
		return nil, err
	}
	first := now.Add(-182 * 24 * time.Hour).Truncate(24 * time.Hour)
	n := 0
	for d := 0; d < 365; d++ {
		day := first.Add(time.Duration(d) * 24 * time.Hour)
		for _, machine := range machines {
			for k := 0; k < bookingsPerDay; k++ {
				start := day.Add(time.Duration(8+2*k) * time.Hour)
				// The measured maker holds one booking in forty.
				member := members[1+(n%(pageMembers-1))]
				if n%40 == 0 {
					member = members[0]
				}
				if _, err := s.CreateBooking(ctx, fablab.Booking{MachineID: machine, MemberID: member, CreatedBy: member, Start: start, End: start.Add(2 * time.Hour)},
					func(bolt.BookingContext) error { return nil }); err != nil {
					return nil, err
				}
				n++
			}
		}
	}
	if err := s.Close(); err != nil {
		return nil, err
	}
	s, err = bolt.Open(path, bolt.Options{Now: clock})
	if err != nil {
		return nil, err
	}
	l := &pageLab{machine: machines[0], now: now, bookings: n}
	l.maker, l.staff = auth.NewToken(), auth.NewToken()
	for tok, id := range map[string]fablab.ID{l.maker: members[0], l.staff: staff.ID} {
		if err := s.PutToken(ctx, auth.TokenKey(tok), bolt.Token{MemberID: id, CSRF: "x", ExpiresAt: now.Add(24 * time.Hour)}); err != nil {
			return nil, err
		}
	}
	api, err := httpapi.New(httpapi.Config{Store: s, Now: clock})
	if err != nil {
		return nil, err
	}
	srv := httptest.NewServer(api.Handler())
	l.url = srv.URL
	// The first view after any change renders in full: the same server
	// without its cache measures that path.
	uncached, err := httpapi.New(httpapi.Config{Store: s, Now: clock, PageCacheBytes: -1})
	if err != nil {
		return nil, err
	}
	usrv := httptest.NewServer(uncached.Handler())
	l.uncachedURL = usrv.URL
	l.close = func() { srv.Close(); usrv.Close(); s.Close() }
	return l, nil
}

// benchTmp holds files shared by several benchmarks (the page lab), which
// outlive any one benchmark's b.TempDir; TestMain removes it.
var benchTmp string

func TestMain(m *testing.M) {
	var err error
	if benchTmp, err = os.MkdirTemp("", "fabgate-bench-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if sharedPage != nil {
		sharedPage.close()
	}
	os.RemoveAll(benchTmp)
	os.Exit(code)
}

func tempDir() (string, error) {
	dir := filepath.Join(benchTmp, "pages")
	return dir, os.MkdirAll(dir, 0o700)
}

// loadResult is one measured load: requests per second, latency quantiles
// and the size of one answer.
type loadResult struct {
	wall, cpu time.Duration // the whole load's, and this process's CPU time in it
	lat       []time.Duration
	bytes     int
}

// load drives n GETs of target from 4 keep-alive clients, with an optional
// session cookie, and checks every answer is a 200.
func load(b *testing.B, target, cookie string, n int) loadResult {
	return loadFrom(b, target, cookie, n, 4)
}

// loadFrom is load from a given number of clients.
func loadFrom(b *testing.B, target, cookie string, n, clients int) loadResult {
	var next, bad atomic.Int64
	var size atomic.Int64
	lat := make([]time.Duration, n)
	var wg, connected sync.WaitGroup
	ready := make(chan struct{})
	for w := 0; w < clients; w++ {
		connected.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer client.CloseIdleConnections()
			get := func() (int64, bool) {
				req, _ := http.NewRequest("GET", target, nil)
				req.Header.Set("Accept", "text/html")
				req.Header.Set("Accept-Language", "fr-FR")
				if cookie != "" {
					req.Header.Set("Cookie", "fabgate_session="+cookie)
				}
				resp, err := client.Do(req)
				if err != nil {
					return 0, false
				}
				k, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return k, err == nil && resp.StatusCode == http.StatusOK
			}
			// Each client opens its connection before the measured
			// requests: the latencies are those of pages, not of TCP
			// handshakes (which would be the slowest 2 % of a short load).
			if _, ok := get(); !ok {
				bad.Add(1)
			}
			connected.Done()
			<-ready
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				t0 := time.Now()
				k, ok := get()
				lat[i] = time.Since(t0)
				if !ok {
					bad.Add(1)
				}
				size.Store(k)
			}
		}()
	}
	connected.Wait()
	start, cpu0 := time.Now(), processCPU(b)
	close(ready)
	wg.Wait()
	if bad.Load() > 0 {
		b.Fatalf("%d requests to %s failed", bad.Load(), target)
	}
	return loadResult{wall: time.Since(start), cpu: processCPU(b) - cpu0, lat: lat, bytes: int(size.Load())}
}

// quantiles returns the median and the 99th percentile of lat, which it sorts.
func quantiles(lat []time.Duration) (p50, p99 time.Duration) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat[len(lat)/2], lat[len(lat)*99/100]
}

// bareSameBytes serves size bytes of HTML from a bare Gin handler: the
// baseline of a page of that size.
func bareSameBytes(size int) *httptest.Server {
	gin.SetMode(gin.ReleaseMode)
	body := make([]byte, size)
	for i := range body {
		body[i] = 'x'
	}
	e := gin.New()
	e.GET("/page", func(c *gin.Context) { c.Data(http.StatusOK, "text/html; charset=utf-8", body) })
	return httptest.NewServer(e)
}

// BenchmarkPages renders each page of the web UI over loopback HTTP, as the
// member who would open it, against a bare Gin handler answering the same
// number of bytes, measured in the same run. Targets: ratio ≥ 0.25 and
// p99 < 10 × p50. Pages are served as a server serves them, with the
// pages' cache of rendered content; uncached-ratio is the same ratio for a
// server without it, every request rendered in full as after a change.
func BenchmarkPages(b *testing.B) {
	l := newPageLab(b)
	m := l.machine.String()
	pages := []struct{ name, path, who string }{
		{"login", "/login", ""},
		{"machines", "/machines", l.maker},
		{"machine", "/machines/" + m, l.maker},
		{"bookings", "/bookings", l.maker},
		{"sessions", "/sessions", l.maker},
		{"profile", "/profile", l.maker},
		{"find", "/find", l.maker},
		{"dashboard", "/staff", l.staff},
		{"members", "/staff/members", l.staff},
		{"audit", "/staff/audit", l.staff},
		{"staff-machines", "/staff/machines", l.staff},
	}
	for _, p := range pages {
		b.Run(p.name, func(b *testing.B) {
			probe, err := http.NewRequest("GET", l.url+p.path, nil)
			if err != nil {
				b.Fatal(err)
			}
			probe.Header.Set("Accept", "text/html")
			if p.who != "" {
				probe.Header.Set("Cookie", "fabgate_session="+p.who)
			}
			res, err := http.DefaultClient.Do(probe)
			if err != nil {
				b.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode == http.StatusNotFound {
				b.Skipf("%s is not served", p.path)
			}
			n := max(b.N, 1000)
			load(b, l.url+p.path, p.who, 100) // warm up
			page := load(b, l.url+p.path, p.who, 100)
			bare := bareSameBytes(page.bytes)
			defer bare.Close()
			load(b, bare.URL+"/page", "", 100)
			// The two sides take turns in rounds, so that both see the same
			// machine when other processes come and go on it.
			const rounds = 10
			load(b, l.uncachedURL+p.path, p.who, 100)
			var bareWall, pageWall, bareCPU, pageCPU, fullWall time.Duration
			b.ResetTimer()
			for r := 0; r < rounds; r++ {
				base := load(b, bare.URL+"/page", "", n/rounds)
				bareWall, bareCPU = bareWall+base.wall, bareCPU+base.cpu
				got := load(b, l.url+p.path, p.who, n/rounds)
				pageWall, pageCPU = pageWall+got.wall, pageCPU+got.cpu
				full := load(b, l.uncachedURL+p.path, p.who, n/rounds)
				fullWall += full.wall
			}
			// Latency is measured apart, from one client: with four clients
			// on two cores the requests queue behind each other, and the
			// tail is the queue's (the bare handler's own p99/p50 is 10–20
			// there), not the page's.
			lat := loadFrom(b, l.url+p.path, p.who, n, 1).lat
			bareLat := loadFrom(b, bare.URL+"/page", "", n, 1).lat
			b.StopTimer()
			p50, p99 := quantiles(lat)
			bp50, bp99 := quantiles(bareLat)
			b.ReportMetric(float64(bp99)/float64(bp50), "bare-p99/p50")
			done := float64(n / rounds * rounds)
			b.ReportMetric(done/pageWall.Seconds(), "pages/s")
			b.ReportMetric(done/bareWall.Seconds(), "bare-gin/s")
			b.ReportMetric(bareWall.Seconds()/pageWall.Seconds(), "ratio(target≥0.25)")
			// The same ratio from this process's CPU time on each side: what
			// the rates would be on a machine of its own (see BenchmarkAvailability).
			b.ReportMetric(bareCPU.Seconds()/pageCPU.Seconds(), "cpu-ratio")
			b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(p99)/float64(p50), "p99/p50(target<10)")
			b.ReportMetric(float64(page.bytes), "bytes")
			// Every request rendered in full, as after a change.
			b.ReportMetric(bareWall.Seconds()/fullWall.Seconds(), "uncached-ratio")
		})
	}
}
