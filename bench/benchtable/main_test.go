package main

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
)

// sample is go test -bench output as the bench package prints it, cut
// down: a tap benchmark at one device, one at 20, a page, the reports, a
// skipped and a failed benchmark, and one this program does not know.
const sample = `goos: linux
goarch: amd64
pkg: github.com/fabgate/fabgate/bench
cpu: AMD EPYC
BenchmarkTapUnlockEmbeddedOneReader-2    	     133	  36815231 ns/op	         0.9106 base-commit-p50-ms	 1.2 base-p50-ms	 9.5 base-p99-ms	 1.0 devices	 2.1 p99-ratio	         2.639 ratio(target≤2)	         3.191 tap-p50-ms	        20 tap-p99-ms
BenchmarkTapUnlockEmbedded-2             	       1	3818876983 ns/op	 10 base-p50-ms	 50 base-p99-ms	 20 devices	 3.15 p99-ratio	         2.446 ratio	        24.69 tap-p50-ms	       157.5 tap-p99-ms(target<20)
BenchmarkPages/login-2                   	       4	 661440252 ns/op	      6036 bare-gin/s	        59.87 bare-p99/p50	      1900 bytes	      2146 pages/s	         0.3555 ratio(target≥0.25)	 7.5 p99/p50(target<10)
--- BENCH: BenchmarkReports
    reports_test.go:157: seeded 1000000 billed sessions in 20s
BenchmarkReports/usage-2                 	       1	6814450785 ns/op	 85.5 ms/raw-scan	 1200 ms/report(target≤1000)	 2.37 ratio(target≤5)	 1000000 sessions
--- SKIP: BenchmarkTapUnlockMosquittoOneReader
    mqtttest.go:47: mosquitto is not installed (set FABGATE_REQUIRE_ALL=1 to make this a failure)
--- FAIL: BenchmarkServerRSS
    rss_test.go:300: fabgate serve exited before serving
BenchmarkNew-2	1	100 ns/op	 0.5 speed(target>1)	 3 other(target≤5)
FAIL
`

func tableRows(t *testing.T, input string) map[string]row {
	t.Helper()
	run, err := parse(strings.NewReader(input))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]row{}
	for _, r := range rows(run) {
		out[r.figure] = r
	}
	return out
}

func TestRows(t *testing.T) {
	got := tableRows(t, sample)
	for _, c := range []struct {
		name string
		want row
	}{
		{"the p50 ratio's target, missed", row{"tap → unlock p50, embedded broker, 1 device", "3.19 ms", "1.20 ms", "2.64", "ratio ≤ 2", "NO"}},
		{"a p99 without target is shown beside its baseline", row{"tap → unlock p99, embedded broker, 1 device", "20.0 ms", "9.50 ms", "2.10", "—", "—"}},
		{"the p50 ratio at 20 devices carries no target", row{"tap → unlock p50, embedded broker, 20 devices", "24.7 ms", "10.0 ms", "2.45", "—", "—"}},
		{"a target on the value", row{"tap → unlock p99, embedded broker, 20 devices", "158 ms", "50.0 ms", "3.15", "< 20 ms", "NO"}},
		{"a sub-benchmark's name in the label", row{"page login reads", "2146/s", "6036/s", "0.36", "ratio ≥ 0.25", "yes"}},
		{"a ratio computed from value and baseline", row{"page login p99/p50", "7.50", "59.9", "0.13", "< 10", "yes"}},
		{"two targets: met only if both are", row{"usage report by machine, 1 M sessions", "1200 ms", "85.5 ms", "2.37", "≤ 1000 ms, ratio ≤ 5", "NO"}},
		{"skipped, with the gist of why", row{"tap → unlock p50, Mosquitto, 1 device", "—", "—", "—", "—", "skipped: mosquitto is not installed"}},
		{"failed", row{"server RSS, 10 k members, 200 devices", "—", "—", "—", "—", "failed"}},
		{"not in the output at all", row{"billing run, 1 000 sessions", "—", "—", "—", "—", "not run"}},
		{"an unknown benchmark's target, missed", row{"New speed", "0.50", "—", "—", "speed > 1", "NO"}},
		{"an unknown benchmark's target, met", row{"New other", "3.00", "—", "—", "other ≤ 5", "yes"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if r, ok := got[c.want.figure]; !ok {
				t.Errorf("no row %q", c.want.figure)
			} else if r != c.want {
				t.Errorf("row %q:\n got %q\nwant %q", c.want.figure, r.cells(), c.want.cells())
			}
		})
	}
	// Every figure has its row, with or without a result: 12 tap rows,
	// booking, availability, two per page (one page here), three reports,
	// billing, memory; and the two unknown metrics.
	if want := 12 + 2 + 2 + 3 + 1 + 1 + 2; len(got) != want {
		t.Errorf("%d rows, want %d", len(got), want)
	}
}

func TestTargets(t *testing.T) {
	for _, c := range []struct {
		unit string
		v    float64
		met  bool
	}{
		{"ratio(target≤2)", 2, true},
		{"ratio(target≤2)", 2.01, false},
		{"ms(target<20)", 20, false},
		{"ms(target<20)", 19.9, true},
		{"ratio(target≥0.8)", 0.8, true},
		{"ratio(target≥0.8)", 0.79, false},
		{"x(target>1)", 1, false},
		{"x(target>1)", 1.5, true},
	} {
		m := unitTarget.FindStringSubmatch(c.unit)
		if m == nil {
			t.Fatalf("%s: no target read", c.unit)
		}
		run, err := parse(strings.NewReader("BenchmarkX-2\t1\t1 ns/op\t" + strconv.FormatFloat(c.v, 'f', -1, 64) + " " + c.unit + "\n"))
		if err != nil {
			t.Fatal(err)
		}
		mt := run.results["X"].metrics[m[1]]
		if mt.target == nil || mt.target.met(c.v) != c.met {
			t.Errorf("%v against %s: target %+v, want met=%v", c.v, c.unit, mt.target, c.met)
		}
	}
}

func TestWrite(t *testing.T) {
	run, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	var text, md bytes.Buffer
	if err := write(&text, run, false); err != nil {
		t.Fatal(err)
	}
	if err := write(&md, run, true); err != nil {
		t.Fatal(err)
	}
	summary := "3 targets met, 4 not met; 14 figures without a result"
	for name, out := range map[string]string{"text": text.String(), "markdown": md.String()} {
		if !strings.Contains(out, summary) {
			t.Errorf("%s: no summary %q in\n%s", name, summary, out)
		}
	}
	if !strings.HasPrefix(text.String(), "goos: linux\ngoarch: amd64\ncpu: AMD EPYC\nfigure ") {
		t.Errorf("text table does not start with the machine and the header:\n%s", text.String())
	}
	// Aligned: the header's columns start where the rows' do.
	lines := strings.Split(text.String(), "\n")
	col := strings.Index(lines[3], "value")
	if r := []rune(lines[4]); col < 0 || len(r) <= col || r[col-1] != ' ' || r[col] == ' ' {
		t.Errorf("columns not aligned:\n%s\n%s", lines[3], lines[4])
	}
	if !strings.Contains(md.String(), "| usage report by machine, 1 M sessions | 1200 ms | 85.5 ms | 2.37 | ≤ 1000 ms, ratio ≤ 5 | NO |") {
		t.Errorf("markdown table lacks the report row:\n%s", md.String())
	}
}

func TestParseRefusesEmptyInput(t *testing.T) {
	if _, err := parse(strings.NewReader("ok  \tgithub.com/fabgate/fabgate/bench\t0.01s\n")); err == nil {
		t.Error("no benchmark in the input: no error")
	}
}
