package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/demo"
)

// tourTimes are the lab times the README's tour is run at: 08:45 (just
// before the first bookings of a weekday) and 20:55 (just before closing),
// on a weekday and on a Sunday, when the lab is closed.
var tourTimes = []struct {
	name string
	at   time.Time
}{
	{"wednesday 08:45", time.Date(2026, 5, 13, 8, 45, 0, 0, parisTZ)},
	{"wednesday 20:55", time.Date(2026, 5, 13, 20, 55, 0, 0, parisTZ)},
	{"sunday 08:45", time.Date(2026, 5, 17, 8, 45, 0, 0, parisTZ)},
	{"sunday 20:55", time.Date(2026, 5, 17, 20, 55, 0, 0, parisTZ)},
}

var parisTZ = func() *time.Location {
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		panic(err)
	}
	return loc
}()

// TestE2EReadmeTour runs the README's five-minute tour, command by command,
// against `fabgate serve --demo` started at each of tourTimes. The shell
// commands are read from the README and carried out by a small interpreter
// of the shell they use (variables, functions, $(…), curl, sed, date -d,
// echo): a command it does not understand fails the test, so the README and
// this test stay in step. What a command's comment promises is checked:
// "granted", "tap-out" and "denied: CODE" on taps, the session "confirmed by
// the relay", and every request answering 2xx. After the tap-out, the relay
// must stay off and no session open for several seconds.
func TestE2EReadmeTour(t *testing.T) {
	tour := readmeTour(t)
	for _, tc := range tourTimes {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := clockAt(tc.at)
			srv := startServerAt(t, clock, "--data", t.TempDir(), "--demo")
			sh := &tourShell{t: t, srv: srv, clock: clock, vars: map[string]string{}, funcs: map[string]string{}, dir: t.TempDir()}
			for _, line := range tour {
				sh.line(line)
			}
			for _, want := range []string{"grant", "tap_out", "deny"} {
				if !sh.seen[want] {
					t.Errorf("the tour never showed a %s", want)
				}
			}
			if !sh.booked {
				t.Error("the tour booked nothing")
			}
		})
	}
}

// tourLine is one logical line of the README's tour: a command and its
// comment.
type tourLine struct{ cmd, comment string }

// readmeTour returns the commands of the sh blocks of the README's
// "A five-minute tour" section, continuation lines joined.
func readmeTour(t *testing.T) []tourLine {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i := strings.Index(text, "## A five-minute tour")
	if i < 0 {
		t.Fatal("README has no \"## A five-minute tour\" section")
	}
	text = text[i+3:]
	if j := strings.Index(text, "\n## "); j >= 0 {
		text = text[:j]
	}
	var lines []tourLine
	in, pending := false, ""
	for _, l := range strings.Split(text, "\n") {
		switch {
		case !in && l == "```sh":
			in = true
			continue
		case in && l == "```":
			in = false
			continue
		case !in:
			continue
		}
		if strings.HasSuffix(l, "\\") {
			pending += strings.TrimSuffix(l, "\\")
			continue
		}
		l, pending = pending+l, ""
		cmd, comment := splitComment(l)
		if strings.TrimSpace(cmd) == "" {
			continue
		}
		lines = append(lines, tourLine{strings.TrimSpace(cmd), strings.TrimSpace(comment)})
	}
	if len(lines) < 15 {
		t.Fatalf("README tour: %d commands found, the tour has more", len(lines))
	}
	return lines
}

// splitComment splits a shell line at a # that starts a comment (outside
// quotes, after a blank).
func splitComment(l string) (cmd, comment string) {
	var quote rune
	escaped := false
	for i, r := range l {
		switch {
		case escaped:
			escaped = false
		case quote == '"' && r == '\\':
			escaped = true
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '"':
			quote = r
		case r == '#' && (i == 0 || l[i-1] == ' ' || l[i-1] == '\t'):
			return l[:i], l[i+1:]
		}
	}
	return l, ""
}

// tourShell carries out the tour's shell commands.
type tourShell struct {
	t      *testing.T
	srv    *server
	clock  labClock
	vars   map[string]string
	funcs  map[string]string // name → body
	args   []string          // positional parameters inside a function
	dir    string            // where -o files go
	umask  os.FileMode       // set by umask; applies to -o files
	seen   map[string]bool   // tap decisions seen
	booked bool
}

var (
	funcDef   = regexp.MustCompile(`^([a-z_]+)\(\) *\{(.*)\}$`)
	assign    = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)=(.*)$`)
	sedSubst  = regexp.MustCompile(`^s/(.*)/(.*)/$`)
	nextDay   = regexp.MustCompile(`^next (monday|tuesday|wednesday|thursday|friday|saturday|sunday) (\d{1,2}):(\d{2})$`)
	denyCode  = regexp.MustCompile(`denied: ([a-z_]+)`)
	readmeAPI = "http://" + DefaultConfig().HTTP + "/api/v1"
)

// line runs one line of the tour and checks what its comment promises.
func (sh *tourShell) line(l tourLine) {
	t := sh.t
	t.Helper()
	if m := funcDef.FindStringSubmatch(l.cmd); m != nil {
		sh.funcs[m[1]] = m[2]
		return
	}
	out := sh.run(l.cmd, "")
	if strings.HasPrefix(l.cmd, "tap ") {
		var d struct{ Decision, Reason, Message string }
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			t.Fatalf("%s: answer %q: %v", l.cmd, out, err)
		}
		sh.seenDecision(d.Decision)
		want, reason := "", ""
		switch {
		case denyCode.MatchString(l.comment):
			want, reason = "deny", denyCode.FindStringSubmatch(l.comment)[1]
		case strings.Contains(l.comment, "tap-out"):
			want = "tap_out"
		case strings.Contains(l.comment, "granted"):
			want = "grant"
		default:
			t.Fatalf("README tour: %q does not say what the tap should do (granted, tap-out or denied: CODE)", l.cmd)
		}
		if d.Decision != want || d.Reason != reason {
			t.Fatalf("%s at %s: %s; the README says %q", l.cmd, sh.clock.Now().In(parisTZ).Format("Mon 15:04"), out, l.comment)
		}
		if want == "deny" && d.Message == "" {
			t.Errorf("%s: the answer has no message for the reader: %s", l.cmd, out)
		}
		if want == "tap_out" {
			sh.watchOff(strings.Fields(l.cmd)[1])
		}
	}
	if strings.Contains(l.comment, "confirmed by the relay") {
		// The relay's ack follows the answer: run it again, as a reader of
		// the README would, until the session shows confirmed.
		deadline := time.Now().Add(10 * time.Second)
		for !oneConfirmed(out) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s; want the open session, confirmed by the relay", l.cmd, out)
			}
			time.Sleep(50 * time.Millisecond) // polling a condition, as a reader re-running the command would
			out = sh.run(l.cmd, "")
		}
	}
}

// oneConfirmed reports whether out lists one session, confirmed.
func oneConfirmed(out string) bool {
	var ss []struct{ Confirmed bool }
	return json.Unmarshal([]byte(out), &ss) == nil && len(ss) == 1 && ss[0].Confirmed
}

func (sh *tourShell) seenDecision(d string) {
	if sh.seen == nil {
		sh.seen = map[string]bool{}
	}
	sh.seen[d] = true
}

// watchOff waits for dev's relay to report off after a tap-out, then
// watches the live events for 4 s: no tap, no session and no relay on may
// appear on dev. (A bridge that took the tap-out's lock for no answer
// decided the tap again offline 2 s later and switched the machine on for
// the few milliseconds before the server's lock: only the events show it.)
func (sh *tourShell) watchOff(dev string) {
	t := sh.t
	t.Helper()
	admin := demoAccount(t, "admin")
	tok := login(t, sh.srv.url, admin.Email, admin.Password)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := liveEvents(t, ctx, sh.srv.url, tok)
	state := func() (relay string, open []json.RawMessage) {
		call(t, "GET", sh.srv.url+"/api/v1/sessions?active=true", tok, nil, &open)
		var devs []struct{ ID, Relay string }
		call(t, "GET", sh.srv.url+"/api/v1/devices", tok, nil, &devs)
		for _, d := range devs {
			if d.ID == dev {
				relay = d.Relay
			}
		}
		return relay, open
	}
	deadline := time.Now().Add(10 * time.Second)
	for relay, open := state(); relay != "off" || len(open) != 0; relay, open = state() {
		if time.Now().After(deadline) {
			t.Fatalf("10 s after the tap-out, %s's relay is %q, open sessions: %s", dev, relay, open)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition
	}
	watch := time.NewTimer(4 * time.Second) // watching over time is the point here
	defer watch.Stop()
	for {
		select {
		case <-watch.C:
			if relay, open := state(); relay != "off" || len(open) != 0 {
				t.Fatalf("4 s after the tap-out, %s's relay is %q, open sessions: %s", dev, relay, open)
			}
			return
		case e := <-events:
			var d struct {
				DeviceID string     `json:"device_id"`
				Relay    string     `json:"relay"`
				Action   string     `json:"action"`
				Ended    *time.Time `json:"ended"`
			}
			json.Unmarshal(e.Data, &d)
			if d.DeviceID != dev {
				continue
			}
			switch {
			case e.Type == "device" && d.Relay == "on",
				e.Type == "tap",
				e.Type == "session" && d.Ended == nil:
				t.Fatalf("after the tap-out, on %s: %s %s", dev, e.Type, e.Data)
			}
		}
	}
}

// liveEvent is one event of GET /api/v1/events.
type liveEvent struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// liveEvents follows the server's live events until ctx ends.
func liveEvents(t *testing.T, ctx context.Context, base, tok string) <-chan liveEvent {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		t.Fatalf("GET /api/v1/events: %s", resp.Status)
	}
	out := make(chan liveEvent, 256)
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var e liveEvent
			if json.Unmarshal([]byte(data), &e) == nil {
				select {
				case out <- e:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// run runs a command line (pipelines and ; lists of simple commands) with
// stdin and returns its standard output.
func (sh *tourShell) run(cmdline, stdin string) string {
	out := ""
	for _, part := range splitUnquoted(cmdline, ';') {
		if strings.TrimSpace(part) == "" {
			continue
		}
		in := stdin
		if sub, ok := subshell(part); ok { // ( … ): its umask and variables stay inside
			saved, savedVars := sh.umask, maps.Clone(sh.vars)
			in = sh.run(sub, in)
			sh.umask, sh.vars = saved, savedVars
			out += in
			continue
		}
		for _, stage := range splitUnquoted(part, '|') {
			in = sh.simple(strings.TrimSpace(stage), in)
		}
		out += in
	}
	return out
}

// subshell returns the inside of a command line written as ( … ).
func subshell(part string) (string, bool) {
	part = strings.TrimSpace(part)
	if !strings.HasPrefix(part, "(") || !strings.HasSuffix(part, ")") {
		return "", false
	}
	return part[1 : len(part)-1], true
}

// splitUnquoted splits s at sep outside quotes, ( … ) and $(…).
func splitUnquoted(s string, sep byte) []string {
	var parts []string
	var quote byte
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else if c == '\\' && quote == '"' {
				i++
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '$' && i+1 < len(s) && s[i+1] == '(':
			depth++
			i++
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case c == sep && depth == 0:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// simple runs one simple command.
func (sh *tourShell) simple(cmd, stdin string) string {
	t := sh.t
	t.Helper()
	words := sh.words(cmd)
	env := map[string]string{}
	for len(words) > 0 {
		m := assign.FindStringSubmatch(words[0])
		if m == nil {
			break
		}
		env[m[1]], words = m[2], words[1:]
	}
	if len(words) == 0 { // only assignments: shell variables
		for k, v := range env {
			if k == "api" {
				if v != readmeAPI {
					t.Fatalf("README tour: api=%s, but fabgate serve listens on %s by default", v, readmeAPI)
				}
				v = sh.srv.url + "/api/v1"
			}
			sh.vars[k] = v
		}
		return ""
	}
	if body, ok := sh.funcs[words[0]]; ok {
		saved := sh.args
		sh.args = words
		defer func() { sh.args = saved }()
		return sh.run(body, stdin)
	}
	switch words[0] {
	case "curl":
		return sh.curl(cmd, words[1:])
	case "sed":
		return sed(t, words[1:], stdin)
	case "echo":
		return strings.Join(words[1:], " ") + "\n"
	case "date":
		return sh.date(env["TZ"], words[1:])
	case "umask":
		if len(words) != 2 {
			t.Fatalf("README tour: %q: umask takes one octal mask here", cmd)
		}
		m, err := strconv.ParseUint(words[1], 8, 32)
		if err != nil {
			t.Fatalf("README tour: %q: %v", cmd, err)
		}
		sh.umask = os.FileMode(m)
		return ""
	}
	t.Fatalf("README tour: %q is not a command this test knows; teach TestE2EReadmeTour or change the README", cmd)
	return ""
}

// words splits a command into words the way the shell does for the forms
// the tour uses: quotes, $VAR, $1, ${VAR} and $(…).
func (sh *tourShell) words(s string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				sh.t.Fatalf("README tour: unterminated quote in %q", s)
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				switch {
				case s[i] == '\\' && i+1 < len(s) && strings.IndexByte(`"\$`+"`", s[i+1]) >= 0:
					cur.WriteByte(s[i+1])
					i++
				case s[i] == '$':
					v, n := sh.expand(s[i:])
					cur.WriteString(v)
					i += n - 1
				default:
					cur.WriteByte(s[i])
				}
			}
			inWord = true
		case c == '$':
			v, n := sh.expand(s[i:])
			cur.WriteString(v)
			i += n - 1
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

var varName = regexp.MustCompile(`^\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*)|([0-9]))`)

// expand expands the $ form at the start of s; it returns the value and
// the length of the form.
func (sh *tourShell) expand(s string) (string, int) {
	if strings.HasPrefix(s, "$(") {
		depth := 0
		var quote byte
		for i := 1; i < len(s); i++ {
			c := s[i]
			switch {
			case quote != 0:
				if c == quote {
					quote = 0
				}
			case c == '\'' || c == '"':
				quote = c
			case c == '(':
				depth++
			case c == ')':
				depth--
				if depth == 0 {
					return strings.TrimRight(sh.run(s[2:i], ""), "\n"), i + 1
				}
			}
		}
		sh.t.Fatalf("README tour: unterminated $( in %q", s)
	}
	m := varName.FindStringSubmatch(s)
	if m == nil {
		return "$", 1
	}
	switch {
	case m[3] != "":
		n := int(m[3][0] - '0')
		if n >= len(sh.args) {
			sh.t.Fatalf("README tour: $%d outside a function or missing", n)
		}
		return sh.args[n], len(m[0])
	default:
		name := m[1] + m[2]
		v, ok := sh.vars[name]
		if !ok {
			sh.t.Fatalf("README tour: $%s is used before it is set", name)
		}
		return v, len(m[0])
	}
}

// curl carries out the curl options the tour uses.
func (sh *tourShell) curl(cmd string, args []string) string {
	t := sh.t
	t.Helper()
	method, url, body, outFile, stream := "", "", "", "", false
	header := http.Header{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		next := func() string {
			if i+1 >= len(args) {
				t.Fatalf("README tour: %s needs a value in %q", a, cmd)
			}
			i++
			return args[i]
		}
		switch {
		case a == "-s":
		case a == "-sN" || a == "-N":
			stream = true
		case a == "-X":
			method = next()
		case a == "-H":
			k, v, ok := strings.Cut(next(), ":")
			if !ok {
				t.Fatalf("README tour: bad header in %q", cmd)
			}
			header.Set(k, strings.TrimSpace(v))
		case a == "-d":
			body = next()
		case a == "-o":
			outFile = filepath.Join(sh.dir, filepath.Base(next()))
		case strings.HasPrefix(a, "-"):
			t.Fatalf("README tour: curl option %s is not one this test knows (%q)", a, cmd)
		default:
			url = a
		}
	}
	if method == "" {
		method = "GET"
		if body != "" {
			method = "POST"
		}
	}
	if !strings.HasPrefix(url, sh.srv.url) {
		t.Fatalf("README tour: %q calls %s, not the server", cmd, url)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		data, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s at %s: %s %s", cmd, sh.clock.Now().In(parisTZ).Format("Mon 2006-01-02 15:04"), resp.Status, data)
	}
	if stream {
		// A live stream (the tour stops it with Ctrl-C): it must be one.
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
			t.Fatalf("%s: Content-Type %q, want text/event-stream", cmd, ct)
		}
		return ""
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	if outFile != "" {
		// As curl does: a new file gets 0666 less the umask. The README's
		// backup is written under umask 077, so it must come out 0600.
		if err := os.WriteFile(outFile, data, 0o666&^sh.umask); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(outFile); err != nil {
			t.Fatal(err)
		} else if strings.Contains(outFile, "backup") && fi.Mode().Perm()&0o077 != 0 {
			t.Fatalf("%s: the backup %s is readable by others (%v): run it under umask 077", cmd, outFile, fi.Mode().Perm())
		}
		if len(data) == 0 {
			t.Fatalf("%s: empty download", cmd)
		}
		return ""
	}
	if !json.Valid(data) {
		t.Fatalf("%s: not JSON: %q", cmd, data)
	}
	if method == "POST" && strings.HasSuffix(url, "/bookings") {
		var b struct{ State string }
		if json.Unmarshal(data, &b); resp.StatusCode != http.StatusCreated || b.State != "confirmed" {
			t.Fatalf("%s: %d %s", cmd, resp.StatusCode, data)
		}
		sh.booked = true
	}
	return string(data)
}

// sed carries out sed 's/RE/REPL/' (a basic regular expression).
func sed(t *testing.T, args []string, stdin string) string {
	t.Helper()
	if len(args) != 1 {
		t.Fatalf("README tour: sed %q is not one this test knows", args)
	}
	m := sedSubst.FindStringSubmatch(args[0])
	if m == nil {
		t.Fatalf("README tour: sed %q is not s/RE/REPL/", args[0])
	}
	re := strings.NewReplacer(`\(`, `(`, `\)`, `)`, `(`, `\(`, `)`, `\)`).Replace(m[1])
	repl := regexp.MustCompile(`\\([0-9])`).ReplaceAllString(m[2], `$${$1}`)
	rx := regexp.MustCompile(re)
	var out bytes.Buffer
	for _, l := range strings.SplitAfter(stdin, "\n") {
		nl := strings.HasSuffix(l, "\n")
		l = strings.TrimSuffix(l, "\n")
		if l == "" && !nl {
			continue
		}
		if loc := rx.FindStringSubmatchIndex(l); loc != nil {
			l = l[:loc[0]] + string(rx.ExpandString(nil, repl, l, loc)) + l[loc[1]:]
		}
		out.WriteString(l + "\n")
	}
	return out.String()
}

// date carries out `date -d 'next WEEKDAY HH:MM' --iso-8601=seconds` with
// the server's clock in zone tz, as GNU date reads it: "next tuesday" is
// the first Tuesday after today (a week ahead on a Tuesday).
func (sh *tourShell) date(tz string, args []string) string {
	t := sh.t
	t.Helper()
	if len(args) != 3 || args[0] != "-d" || args[2] != "--iso-8601=seconds" {
		t.Fatalf("README tour: date %q is not one this test knows", args)
	}
	m := nextDay.FindStringSubmatch(args[1])
	if m == nil {
		t.Fatalf("README tour: date -d %q is not one this test knows", args[1])
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		t.Fatalf("README tour: TZ=%s: %v", tz, err)
	}
	now := sh.clock.Now().In(loc)
	var hour, minute int
	fmt.Sscan(m[2], &hour)
	fmt.Sscan(m[3], &minute)
	day := time.Date(now.Year(), now.Month(), now.Day()+1, hour, minute, 0, 0, loc)
	for !strings.EqualFold(day.Weekday().String(), m[1]) {
		day = time.Date(day.Year(), day.Month(), day.Day()+1, hour, minute, 0, 0, loc)
	}
	return day.Format("2006-01-02T15:04:05-07:00") + "\n"
}

// The tour's promise about the tapped machine is the demo's: keep the
// README's tap on the machine the demo leaves free.
func TestReadmeTourTapsTheDemoTourMachine(t *testing.T) {
	for _, l := range readmeTour(t) {
		if strings.HasPrefix(l.cmd, "tap ") && strings.Contains(l.comment, "granted") {
			if f := strings.Fields(l.cmd); len(f) < 3 || f[1] != demo.TourDevice || f[2] != demo.MakerBadgeUID {
				t.Errorf("README tour: %q; the demo keeps %s free for the maker's badge %s", l.cmd, demo.TourDevice, demo.MakerBadgeUID)
			}
		}
	}
}

// startServerAt runs `fabgate serve` with args on random ports, its clock
// starting at the lab time clock reads.
func startServerAt(t *testing.T, clock labClock, args ...string) *server {
	t.Helper()
	cfg, err := loadConfig(append([]string{"--http", "127.0.0.1:0", "--mqtt-listen", "127.0.0.1:0", "--log-level", "warn"}, args...), envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, cfg, io.Discard, io.Discard, serveOptions{clock: clock, ready: func(a string) { addr <- "http://" + a }})
	}()
	return awaitServer(t, &server{stop: cancel, done: done}, addr)
}

// The tour's `date -d 'next tuesday 14:00'`, as GNU date reads it: the first
// Tuesday after today, a week ahead on a Tuesday, in the zone's offset of
// that day.
func TestTourShellDate(t *testing.T) {
	for _, tc := range []struct {
		now  time.Time
		want string
	}{
		{time.Date(2026, 5, 18, 8, 45, 0, 0, parisTZ), "2026-05-19T14:00:00+02:00"},   // Monday
		{time.Date(2026, 5, 19, 8, 45, 0, 0, parisTZ), "2026-05-26T14:00:00+02:00"},   // Tuesday morning
		{time.Date(2026, 5, 19, 20, 55, 0, 0, parisTZ), "2026-05-26T14:00:00+02:00"},  // Tuesday evening
		{time.Date(2026, 5, 17, 20, 55, 0, 0, parisTZ), "2026-05-19T14:00:00+02:00"},  // Sunday
		{time.Date(2026, 10, 24, 23, 30, 0, 0, parisTZ), "2026-10-27T14:00:00+01:00"}, // across the end of summer time
	} {
		sh := &tourShell{t: t, clock: clockAt(tc.now)}
		got := sh.date("Europe/Paris", []string{"-d", "next tuesday 14:00", "--iso-8601=seconds"})
		if got != tc.want+"\n" {
			t.Errorf("at %s: %q, want %q", tc.now, got, tc.want)
		}
	}
}
