package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
)

// reportSessions is how many billed sessions BenchmarkReports seeds:
// 1 000 000 (DESIGN §10), 50 000 with -short, or FABGATE_BENCH_SESSIONS.
func reportSessions(b *testing.B) int {
	if v := os.Getenv("FABGATE_BENCH_SESSIONS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("FABGATE_BENCH_SESSIONS=%q: want a positive number", v)
		}
		return n
	}
	if testing.Short() {
		return 50_000
	}
	return 1_000_000
}

// reportChunk is the chunk the raw scan reads per read transaction: the
// store's (internal/bolt reportChunk).
const reportChunk = 10_000

// seedReportFile writes n billed sessions over two years (20 machines,
// 2 000 members, 50 organisations, 5 tariff groups) and their charges'
// summaries to a new data file, in transactions of 50 000 without fsync,
// and returns its path and the range covered.
func seedReportFile(b *testing.B, n int) (path string, from, to time.Time) {
	b.Helper()
	ctx := context.Background()
	path = filepath.Join(b.TempDir(), "fabgate.db")
	s, err := bolt.Open(path, bolt.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var machines []fablab.ID
	for i := 0; i < 20; i++ {
		m, err := s.CreateMachine(ctx, fablab.Machine{Name: fmt.Sprintf("Machine %d", i), Kind: fablab.Kind3DPrinter})
		if err != nil {
			b.Fatal(err)
		}
		machines = append(machines, m.ID)
	}
	var orgs []fablab.ID
	for i := 0; i < 50; i++ {
		o, err := s.CreateOrganisation(ctx, fablab.Organisation{Name: fmt.Sprintf("Org %d", i), Group: "sme"})
		if err != nil {
			b.Fatal(err)
		}
		orgs = append(orgs, o.ID)
	}
	var members []fablab.ID
	for batch := 0; batch < 4; batch++ {
		var in []bolt.MemberImport
		for i := 0; i < 500; i++ {
			in = append(in, bolt.MemberImport{Member: fablab.Member{Email: fmt.Sprintf("m%d-%d@bench.test", batch, i), Name: "Maker", Group: "student"}})
		}
		ms, err := s.ImportMembers(ctx, in)
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range ms {
			members = append(members, m.ID)
		}
	}
	groups := []string{"student", "academic", "sme", "association", "non-member"}
	from = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	to = from.AddDate(2, 0, 0)
	step := to.Add(-5*time.Hour).Sub(from) / time.Duration(n)
	seeds := make([]bolt.UsageSeed, 0, 50_000)
	for i := 0; i < n; i++ {
		start := from.Add(time.Duration(i) * step).Truncate(time.Second)
		minutes := int64(30 + (i*37)%210)
		u := bolt.UsageSeed{
			Machine: machines[i%len(machines)], Member: members[(i*7)%len(members)], Group: groups[i%len(groups)],
			Started: start, Ended: start.Add(time.Duration(minutes) * time.Minute), Minutes: minutes, AmountCents: minutes * 25,
		}
		u.Payer = fablab.Payer{Kind: fablab.PayerIsMember, ID: u.Member}
		if i%3 != 0 {
			u.Organisation = orgs[i%len(orgs)]
			u.Payer = fablab.Payer{Kind: fablab.PayerIsOrganisation, ID: u.Organisation}
		}
		seeds = append(seeds, u)
		if len(seeds) == cap(seeds) || i == n-1 {
			if err := s.SeedBilledUsage(ctx, seeds); err != nil {
				b.Fatal(err)
			}
			seeds = seeds[:0]
		}
	}
	return path, from, to
}

// rawScan reads every key and value of bucket in read transactions of
// reportChunk keys, as the reports do, and returns how many keys it read.
func rawScan(b *testing.B, db *bbolt.DB, bucket string) int {
	var seek []byte
	n, sum := 0, 0
	for {
		var next []byte
		if err := db.View(func(tx *bbolt.Tx) error {
			c := tx.Bucket([]byte(bucket)).Cursor()
			k, v := c.First()
			if seek != nil {
				k, v = c.Seek(seek)
			}
			for i := 0; k != nil; k, v = c.Next() {
				if i == reportChunk {
					next = append([]byte(nil), k...)
					return nil
				}
				sum += len(k) + len(v) + int(v[len(v)-1])
				i++
				n++
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		if next == nil {
			break
		}
		seek = next
	}
	if sum == 0 {
		b.Fatal("the raw scan read nothing")
	}
	return n
}

// BenchmarkReports: the usage report (by machine) and the revenue report
// over every session of the file, against a raw bbolt scan of the buckets
// each reads (usage/, charges_at/), in the same chunked read transactions.
// Each side runs on its own open of the file (the store holds the file's
// lock) after a warm-up pass, in alternating rounds. Target (DESIGN §10):
// the usage report over 1 M sessions ≤ 1 s and ≤ 5 × the raw scan.
func BenchmarkReports(b *testing.B) {
	n := reportSessions(b)
	seedStart := time.Now()
	path, from, to := seedReportFile(b, n)
	b.Logf("seeded %d billed sessions in %s", n, time.Since(seedStart).Round(time.Millisecond))
	ctx := context.Background()

	run := func(b *testing.B, bucket string, report func(*bolt.Store) (int, error)) {
		var rawTime, repTime time.Duration
		var alloc uint64
		rounds := max(b.N, 3)
		b.ResetTimer()
		for r := 0; r < rounds; r++ {
			db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
			if err != nil {
				b.Fatal(err)
			}
			if got := rawScan(b, db, bucket); got != n {
				b.Fatalf("raw scan read %d keys, want %d", got, n)
			}
			t0 := time.Now()
			rawScan(b, db, bucket)
			rawTime += time.Since(t0)
			db.Close()

			s, err := bolt.Open(path, bolt.Options{})
			if err != nil {
				b.Fatal(err)
			}
			if got, err := report(s); err != nil || got != n {
				b.Fatalf("report counted %d sessions or charges (want %d): %v", got, n, err)
			}
			runtime.GC()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			t0 = time.Now()
			if _, err := report(s); err != nil {
				b.Fatal(err)
			}
			repTime += time.Since(t0)
			runtime.ReadMemStats(&m1)
			alloc += m1.TotalAlloc - m0.TotalAlloc
			s.Close()
		}
		b.StopTimer()
		per := float64(rounds)
		b.ReportMetric(repTime.Seconds()/per*1000, "ms/report(target≤1000)")
		b.ReportMetric(rawTime.Seconds()/per*1000, "ms/raw-scan")
		b.ReportMetric(float64(repTime.Nanoseconds())/per/float64(n), "ns/session")
		b.ReportMetric(float64(alloc)/per/float64(n), "B-alloc/session")
		b.ReportMetric(float64(repTime)/float64(rawTime), "ratio(target≤5)")
		b.ReportMetric(float64(n), "sessions")
	}
	b.Run("usage", func(b *testing.B) {
		run(b, "usage", func(s *bolt.Store) (int, error) {
			rep, err := s.UsageReport(ctx, from, to, bolt.ByMachine)
			return rep.Total.Sessions, err
		})
	})
	b.Run("usage-by-member", func(b *testing.B) {
		run(b, "usage", func(s *bolt.Store) (int, error) {
			rep, err := s.UsageReport(ctx, from, to, bolt.ByMember)
			return rep.Total.Sessions, err
		})
	})
	b.Run("revenue", func(b *testing.B) {
		run(b, "charges_at", func(s *bolt.Store) (int, error) {
			rep, err := s.RevenueReport(ctx, from, to)
			return rep.Charges, err
		})
	})
}
