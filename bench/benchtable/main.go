// Command benchtable reads the output of FabGate's benchmarks (`go test
// -bench ./bench/`) on standard input and prints one table of the figures
// FabGate must reach (DESIGN §10; docs/decisions.md, Benchmarks): each
// figure beside the baseline measured in the same run, their ratio, the
// target and whether it is met. `make bench` runs it.
//
// The targets are the benchmarks' own: a metric's unit carries its target,
// as in ratio(target≤2) or tap-p99-ms(target<20), and this program only
// reads them, so that a target is stated in one place. What it knows is
// which metrics of a benchmark are the value, the baseline and the ratio of
// a figure (figures, below). A benchmark that was not run, was skipped or
// failed still has its rows, saying so; a target-carrying metric of a
// benchmark it does not know gets a row of its own.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
)

func main() {
	md := flag.Bool("md", false, "print a Markdown table")
	flag.Parse()
	run, err := parse(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
	if err := write(os.Stdout, run, *md); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

// target is a bound a metric must keep, e.g. ≤ 2.
type target struct {
	op    string // ≤ < ≥ >
	limit float64
}

func (t target) met(v float64) bool {
	switch t.op {
	case "≤":
		return v <= t.limit
	case "<":
		return v < t.limit
	case "≥":
		return v >= t.limit
	default:
		return v > t.limit
	}
}

// metric is one value a benchmark reported, with the target its unit
// carried, if any.
type metric struct {
	value  float64
	target *target
}

// result is one benchmark's line.
type result struct {
	metrics map[string]metric // by unit, without its target
	order   []string          // units as printed
}

// benchRun is what the input said: results by benchmark name (without
// "Benchmark" and the GOMAXPROCS suffix), in order, the benchmarks skipped
// or failed, and the header lines (goos, cpu…).
type benchRun struct {
	results map[string]*result
	names   []string
	skipped map[string]string // name → reason
	failed  map[string]bool
	header  []string
}

var (
	benchLine  = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)
	statusLine = regexp.MustCompile(`^\s*--- (SKIP|FAIL): Benchmark(\S+?)(?:-\d+)?(?:\s|$)`)
	unitTarget = regexp.MustCompile(`^(.*)\(target(≤|<|≥|>)([0-9.eE+-]+)\)$`)
)

// parse reads go test -bench output.
func parse(r io.Reader) (*benchRun, error) {
	run := &benchRun{results: map[string]*result{}, skipped: map[string]string{}, failed: map[string]bool{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	skipping := "" // the benchmark whose skip reason comes next
	for sc.Scan() {
		line := sc.Text()
		if m := statusLine.FindStringSubmatch(line); m != nil {
			if m[1] == "FAIL" {
				run.failed[m[2]] = true
			} else {
				run.skipped[m[2]], skipping = "skipped", m[2]
			}
			continue
		}
		if skipping != "" && strings.HasPrefix(line, "    ") {
			reason := strings.TrimSpace(line)
			if _, after, found := strings.Cut(reason, ": "); found {
				reason = after // without the file:line
			}
			reason, _, _ = strings.Cut(reason, " (") // the gist
			run.skipped[skipping] = "skipped: " + reason
		}
		skipping = ""
		for _, h := range []string{"goos:", "goarch:", "cpu:"} {
			if strings.HasPrefix(line, h) {
				run.header = append(run.header, line)
			}
		}
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		name, fields := m[1], strings.Fields(m[2])
		if len(fields)%2 != 0 {
			return nil, fmt.Errorf("benchmark %s: odd number of value and unit fields: %q", name, m[2])
		}
		res := &result{metrics: map[string]metric{}}
		for i := 0; i < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				return nil, fmt.Errorf("benchmark %s: value %q: %v", name, fields[i], err)
			}
			unit, mt := fields[i+1], metric{value: v}
			if t := unitTarget.FindStringSubmatch(unit); t != nil {
				limit, err := strconv.ParseFloat(t[3], 64)
				if err != nil {
					return nil, fmt.Errorf("benchmark %s: target of %q: %v", name, unit, err)
				}
				unit, mt.target = t[1], &target{op: t[2], limit: limit}
			}
			res.metrics[unit] = mt
			res.order = append(res.order, unit)
		}
		if _, seen := run.results[name]; !seen {
			run.names = append(run.names, name)
		}
		run.results[name] = res
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(run.results) == 0 && len(run.skipped) == 0 && len(run.failed) == 0 {
		return nil, fmt.Errorf("no benchmark results in the input")
	}
	return run, nil
}

// figure is one row: which benchmark's metrics are its value, baseline
// and ratio.
type figure struct {
	label       string
	bench       string // a name, or a prefix ending in / for every sub-benchmark
	value, base string // units
	ratio       string // unit; "" for value / base
	unit        string // how value and baseline are shown: "ms", "/s", "MB" or ""
}

// figures are the rows of the table, in its order. A label may hold %s:
// the sub-benchmark's name (for a bench ending in /).
func figures() []figure {
	var fs []figure
	for _, broker := range []struct{ name, label string }{{"Embedded", "embedded broker"}, {"Mosquitto", "Mosquitto"}} {
		for _, c := range []struct{ suffix, label string }{{"OneReader", "1 device"}, {"", "20 devices"}, {"200", "200 devices"}} {
			bench := "TapUnlock" + broker.name + c.suffix
			fs = append(fs,
				figure{label: fmt.Sprintf("tap → unlock p50, %s, %s", broker.label, c.label), bench: bench, value: "tap-p50-ms", base: "base-p50-ms", ratio: "ratio", unit: "ms"},
				figure{label: fmt.Sprintf("tap → unlock p99, %s, %s", broker.label, c.label), bench: bench, value: "tap-p99-ms", base: "base-p99-ms", ratio: "p99-ratio", unit: "ms"})
		}
	}
	return append(fs,
		figure{label: "booking writes, 8 HTTP clients", bench: "BookingCreate", value: "bookings/s", base: "raw-updates/s", ratio: "ratio", unit: "/s"},
		figure{label: "availability reads", bench: "Availability", value: "reads/s", base: "bare-gin/s", ratio: "ratio", unit: "/s"},
		figure{label: "page %s reads", bench: "Pages/", value: "pages/s", base: "bare-gin/s", ratio: "ratio", unit: "/s"},
		figure{label: "page %s p99/p50", bench: "Pages/", value: "p99/p50", base: "bare-p99/p50"},
		figure{label: "usage report by machine", bench: "Reports/usage", value: "ms/report", base: "ms/raw-scan", ratio: "ratio", unit: "ms"},
		figure{label: "usage report by member", bench: "Reports/usage-by-member", value: "ms/report", base: "ms/raw-scan", ratio: "ratio", unit: "ms"},
		figure{label: "revenue report", bench: "Reports/revenue", value: "ms/report", base: "ms/raw-scan", ratio: "ratio", unit: "ms"},
		figure{label: "billing run, 1 000 sessions", bench: "Billing", value: "bill-ms", base: "raw-ms", ratio: "ratio", unit: "ms"},
		figure{label: "server RSS, 10 k members, 200 devices", bench: "ServerRSS", value: "rss-MB", base: "base-rss-MB", ratio: "ratio", unit: "MB"},
	)
}

// row is a figure as printed.
type row struct {
	figure, value, base, ratio, target, met string
}

// rows lays the run out as figures, then any target-carrying metric no
// figure shows.
func rows(run *benchRun) []row {
	var out []row
	shown := map[string]bool{} // bench + "\x00" + unit
	for _, f := range figures() {
		names := []string{f.bench}
		if strings.HasSuffix(f.bench, "/") {
			names = nil
			for _, n := range run.names {
				if strings.HasPrefix(n, f.bench) {
					names = append(names, n)
				}
			}
			if len(names) == 0 {
				names = []string{f.bench}
			}
		}
		for _, name := range names {
			label := f.label
			if strings.Contains(label, "%s") {
				label = fmt.Sprintf(label, strings.TrimPrefix(name, f.bench))
			}
			res, ok := run.results[name]
			if !ok {
				out = append(out, row{figure: label, value: "—", base: "—", ratio: "—", target: "—", met: status(run, strings.TrimSuffix(name, "/"))})
				continue
			}
			if n, ok := res.metrics["sessions"]; ok {
				label += ", " + count(n.value) + " sessions"
			}
			for _, u := range []string{f.value, f.base, f.ratio} {
				shown[name+"\x00"+u] = true
			}
			out = append(out, figureRow(label, f, res))
		}
	}
	for _, name := range run.names {
		res := run.results[name]
		for _, u := range res.order {
			if m := res.metrics[u]; m.target != nil && !shown[name+"\x00"+u] {
				r := row{figure: name + " " + u, value: num(m.value), base: "—", ratio: "—"}
				r.target, r.met = u+" "+m.target.op+" "+limit(m.target.limit), yesNo(m.target.met(m.value))
				out = append(out, r)
			}
		}
	}
	return out
}

// figureRow fills a figure's row from its benchmark's metrics.
func figureRow(label string, f figure, res *result) row {
	r := row{figure: label, value: "—", base: "—", ratio: "—", target: "—", met: "—"}
	v, okV := res.metrics[f.value]
	b, okB := res.metrics[f.base]
	if okV {
		r.value = withUnit(v.value, f.unit)
	}
	if okB {
		r.base = withUnit(b.value, f.unit)
	}
	ratio, okR := res.metrics[f.ratio]
	if f.ratio == "" && okV && okB && b.value != 0 {
		ratio, okR = metric{value: v.value / b.value}, true
	}
	if okR {
		r.ratio = num(ratio.value)
	}
	var targets []string
	met := true
	if okV && v.target != nil {
		targets = append(targets, v.target.op+" "+limit(v.target.limit)+suffix(f.unit))
		met = met && v.target.met(v.value)
	}
	if okR && ratio.target != nil {
		targets = append(targets, "ratio "+ratio.target.op+" "+limit(ratio.target.limit))
		met = met && ratio.target.met(ratio.value)
	}
	if len(targets) > 0 {
		r.target, r.met = strings.Join(targets, ", "), yesNo(met)
	}
	if !okV {
		r.met = "no value"
	}
	return r
}

// status says why a benchmark has no result.
func status(run *benchRun, name string) string {
	if run.failed[name] {
		return "failed"
	}
	for n, reason := range run.skipped {
		if n == name || strings.HasPrefix(name, n+"/") {
			return reason
		}
	}
	for n := range run.failed {
		if strings.HasPrefix(name, n+"/") {
			return "failed"
		}
	}
	return "not run"
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

// num prints three significant digits or so, without exponent.
func num(v float64) string {
	a := v
	if a < 0 {
		a = -a
	}
	switch {
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 0.1 || a == 0:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
}

// limit prints a target's bound as the benchmark wrote it.
func limit(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func withUnit(v float64, unit string) string { return num(v) + suffix(unit) }

// suffix is how a unit follows a number: 12/s, 3.2 ms.
func suffix(unit string) string {
	if unit == "" || strings.HasPrefix(unit, "/") {
		return unit
	}
	return " " + unit
}

// count writes 1000000 as 1 M and other counts as they are.
func count(v float64) string {
	if v >= 1e6 && v == float64(int64(v/1e6))*1e6 {
		return strconv.FormatInt(int64(v/1e6), 10) + " M"
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// write prints the table, aligned or in Markdown, and a line counting the
// targets met.
func write(w io.Writer, run *benchRun, md bool) error {
	rs := rows(run)
	head := row{"figure", "value", "baseline", "ratio", "target", "met"}
	met, missed, absent := 0, 0, 0
	for _, r := range rs {
		switch {
		case r.met == "yes":
			met++
		case r.met == "NO":
			missed++
		case r.target == "—" && r.value == "—":
			absent++
		}
	}
	summary := fmt.Sprintf("%d targets met, %d not met; %d figures without a result", met, missed, absent)
	if md {
		fmt.Fprintln(w, "| "+strings.Join(head.cells(), " | ")+" |")
		fmt.Fprintln(w, "|---|--:|--:|--:|---|---|")
		for _, r := range rs {
			fmt.Fprintln(w, "| "+strings.Join(r.cells(), " | ")+" |")
		}
		_, err := fmt.Fprintf(w, "\n%s\n", summary)
		return err
	}
	for _, h := range run.header {
		fmt.Fprintln(w, h)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range append([]row{head}, rs...) {
		fmt.Fprintln(tw, strings.Join(r.cells(), "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, summary)
	return err
}

func (r row) cells() []string { return []string{r.figure, r.value, r.base, r.ratio, r.target, r.met} }
