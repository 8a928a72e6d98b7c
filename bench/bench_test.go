// Package bench holds FabGate's performance benchmarks (`make bench`). Each
// measures a baseline in the same run on the same machine and reports the
// target as a ratio of it, since absolute numbers on shared machines are noise.
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	bbolt "go.etcd.io/bbolt"

	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/httpapi"
)

type bookingLab struct {
	store   *bolt.Store
	handler http.Handler
	token   string
	machine fablab.ID
	members []fablab.ID
	now     time.Time
}

// newLab builds a server over a real data file with one machine open around
// the clock and n members, and a staff token that books for any of them.
func newLab(b *testing.B, members int) *bookingLab {
	b.Helper()
	now := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	s, err := bolt.Open(filepath.Join(b.TempDir(), "fabgate.db"), bolt.Options{Now: clock})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	ctx := context.Background()
	allDay := []fablab.TimeRange{{Open: 0, Close: 24 * 60}}
	if _, err := s.UpdateSettings(ctx, func(st *fablab.Settings) error {
		st.OpeningHours = fablab.OpeningHours{Monday: allDay, Tuesday: allDay, Wednesday: allDay, Thursday: allDay, Friday: allDay, Saturday: allDay, Sunday: allDay}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	rules := fablab.DefaultBookingRules()
	rules.MaxAheadDays, rules.RequireTraining = 366, false
	m, err := s.CreateMachine(ctx, fablab.Machine{Name: "Laser", Kind: fablab.KindLaserCutter, Rules: rules})
	if err != nil {
		b.Fatal(err)
	}
	l := &bookingLab{store: s, machine: m.ID, now: now}
	staff, err := s.CreateMember(ctx, fablab.Member{Email: "staff@bench.test", Name: "Staff", Role: fablab.RoleStaff, Group: "staff"})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < members; i++ {
		mm, err := s.CreateMember(ctx, fablab.Member{Email: fmt.Sprintf("m%d@bench.test", i), Name: "Maker", Group: "student"})
		if err != nil {
			b.Fatal(err)
		}
		l.members = append(l.members, mm.ID)
	}
	l.token = auth.NewToken()
	if err := s.PutToken(ctx, auth.TokenKey(l.token), bolt.Token{MemberID: staff.ID, ExpiresAt: now.Add(24 * time.Hour)}); err != nil {
		b.Fatal(err)
	}
	api, err := httpapi.New(httpapi.Config{Store: s, Now: clock})
	if err != nil {
		b.Fatal(err)
	}
	l.handler = api.Handler()
	return l
}

// rawUpdateRate measures sequential bbolt Update transactions writing one
// booking-sized record each, on a fresh file in the same directory kind.
func rawUpdateRate(b *testing.B, n int) float64 {
	db, err := bbolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	val := bytes.Repeat([]byte("x"), 220)
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := db.Update(func(tx *bbolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists([]byte("b"))
			if err != nil {
				return err
			}
			id, _ := bk.NextSequence()
			return bk.Put([]byte(fmt.Sprintf("%016x", id)), val)
		}); err != nil {
			b.Fatal(err)
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

// BenchmarkBookingCreate: booking creation over HTTP by 8 concurrent clients
// against the raw sequential bbolt Update rate. Target: ratio ≥ 0.8, and no
// overlapping bookings.
func BenchmarkBookingCreate(b *testing.B) {
	const clients = 8
	l := newLab(b, clients)
	srv := httptest.NewServer(l.handler)
	defer srv.Close()
	n := max(b.N, 200)
	baseline := rawUpdateRate(b, n)

	var next, failed atomic.Int64
	var wg sync.WaitGroup
	transport := &http.Transport{MaxIdleConnsPerHost: clients}
	defer transport.CloseIdleConnections()
	b.ResetTimer()
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(member fablab.ID) {
			defer wg.Done()
			client := &http.Client{Transport: transport}
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				// Consecutive 30-minute slots from tomorrow on: never overlapping.
				st := l.now.Add(24*time.Hour + time.Duration(i)*30*time.Minute)
				body, _ := json.Marshal(map[string]any{"machine_id": l.machine, "member_id": member, "start": st, "end": st.Add(30 * time.Minute)})
				req, _ := http.NewRequest("POST", srv.URL+"/api/v1/bookings", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+l.token)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil || resp.StatusCode != http.StatusCreated {
					failed.Add(1)
				}
				if resp != nil {
					io.Copy(io.Discard, resp.Body) // read to the end so the connection is reused
					resp.Body.Close()
				}
			}
		}(l.members[c])
	}
	wg.Wait()
	rate := float64(n) / time.Since(start).Seconds()
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d of %d bookings failed", failed.Load(), n)
	}
	bs, err := l.store.Bookings(context.Background(), bolt.BookingFilter{MachineID: l.machine, From: l.now, To: l.now.Add(366 * 24 * time.Hour)})
	if err != nil {
		b.Fatal(err)
	}
	for i := 1; i < len(bs); i++ {
		if bs[i].Start.Before(bs[i-1].End) {
			b.Fatalf("bookings %s and %s overlap", bs[i-1].ID, bs[i].ID)
		}
	}
	b.ReportMetric(rate, "bookings/s")
	b.ReportMetric(baseline, "raw-updates/s")
	b.ReportMetric(rate/baseline, "ratio(target≥0.8)")
}

// BenchmarkAvailability: one machine-week availability read (40 bookings in
// the week) against a bare Gin JSON handler, both served over loopback HTTP to
// the same 4 keep-alive clients, in alternating rounds. Target: ratio ≥ 0.4.
func BenchmarkAvailability(b *testing.B) {
	l := newLab(b, 4)
	ctx := context.Background()
	// A realistic week: 40 bookings over the week read.
	for i := 0; i < 40; i++ {
		st := l.now.Add(time.Duration(i) * 4 * time.Hour)
		if _, err := l.store.CreateBooking(ctx, fablab.Booking{MachineID: l.machine, MemberID: l.members[i%4], CreatedBy: l.members[i%4], Start: st, End: st.Add(time.Hour)}, func(bolt.BookingContext) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
	gin.SetMode(gin.ReleaseMode)
	bare := gin.New()
	bare.GET("/ping", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"free": []string{"a", "b"}, "busy": []string{}}) })

	from := l.now.Format(time.RFC3339)
	to := l.now.Add(7 * 24 * time.Hour).Format(time.RFC3339)
	api := httptest.NewServer(l.handler)
	defer api.Close()
	ping := httptest.NewServer(bare)
	defer ping.Close()
	availURL := fmt.Sprintf("%s/api/v1/machines/%s/availability?from=%s&to=%s", api.URL, l.machine, url.QueryEscape(from), url.QueryEscape(to))
	// measure drives n GETs over loopback HTTP from 4 keep-alive clients
	// and returns how long they took.
	measure := func(target, token string, n int) (time.Duration, time.Duration) {
		cpu0 := processCPU(b)
		var next, bad atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
				defer client.CloseIdleConnections()
				for next.Add(1) <= int64(n) {
					req, _ := http.NewRequest("GET", target, nil)
					if token != "" {
						req.Header.Set("Authorization", "Bearer "+token)
					}
					resp, err := client.Do(req)
					if err != nil {
						bad.Add(1)
						continue
					}
					if _, err := io.Copy(io.Discard, resp.Body); err != nil || resp.StatusCode != 200 {
						bad.Add(1)
					}
					resp.Body.Close()
				}
			}()
		}
		wg.Wait()
		if bad.Load() > 0 {
			b.Fatalf("%d requests to %s failed", bad.Load(), target)
		}
		return time.Since(start), processCPU(b) - cpu0
	}
	n := max(b.N, 2000)
	measure(availURL, l.token, 200) // warm up
	measure(ping.URL+"/ping", "", 200)
	// The two sides take turns in rounds, so that both see the same machine
	// when other processes come and go on it (a baseline taken apart can
	// land in a quiet second and the reads in a busy one, or the reverse).
	const rounds = 10
	var pingTime, readTime, pingCPU, readCPU time.Duration
	b.ResetTimer()
	for r := 0; r < rounds; r++ {
		wall, cpu := measure(ping.URL+"/ping", "", n/rounds)
		pingTime, pingCPU = pingTime+wall, pingCPU+cpu
		wall, cpu = measure(availURL, l.token, n/rounds)
		readTime, readCPU = readTime+wall, readCPU+cpu
	}
	b.StopTimer()
	baseline := float64(n/rounds*rounds) / pingTime.Seconds()
	rate := float64(n/rounds*rounds) / readTime.Seconds()
	b.ReportMetric(rate, "reads/s")
	b.ReportMetric(baseline, "bare-gin/s")
	b.ReportMetric(rate/baseline, "ratio(target≥0.4)")
	// The same ratio from the CPU time this process spent on each side (the
	// clients', the server's and the runtime's): what the rates would be on
	// a machine it had to itself. When other processes crowd the machine,
	// the wall-clock ratio above swings with them and this one much less.
	b.ReportMetric(pingCPU.Seconds()/readCPU.Seconds(), "cpu-ratio")
}

// processCPU returns the CPU time (user and system) this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
