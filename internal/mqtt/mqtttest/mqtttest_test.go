package mqtttest

import (
	"fmt"
	"testing"
)

// recorder stands in for the test, to see how RequireTool reacts.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper()                          {}
func (r *recorder) Skipf(format string, args ...any) { r.skipped = fmt.Sprintf(format, args...) }
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
}

func TestRequireToolMissing(t *testing.T) {
	t.Setenv(RequireAllEnv, "")
	r := &recorder{TB: t}
	if p := RequireTool(r, "fabgate-no-such-tool"); p != "" || r.skipped == "" || r.failed != "" {
		t.Errorf("without %s: path %q, skipped %q, failed %q; want a skip", RequireAllEnv, p, r.skipped, r.failed)
	}

	t.Setenv(RequireAllEnv, "1")
	r = &recorder{TB: t}
	if RequireTool(r, "fabgate-no-such-tool"); r.failed == "" {
		t.Errorf("with %s=1: skipped %q, want a failure", RequireAllEnv, r.skipped)
	}
}

func TestListenerAddr(t *testing.T) {
	for conf, want := range map[string]string{
		"listener 1883 127.0.0.1\n":          "127.0.0.1:1883",
		"# x\nlistener 18830\nfoo bar\n":     "127.0.0.1:18830",
		"listener 1883 0.0.0.0\n":            "127.0.0.1:1883",
		"listener 1883 ::1\nlistener 1884\n": "[::1]:1883",
	} {
		if got, err := listenerAddr(conf); err != nil || got != want {
			t.Errorf("listenerAddr(%q) = %q, %v; want %q", conf, got, err, want)
		}
	}
	if _, err := listenerAddr("port 1883\n"); err == nil {
		t.Error("no listener line accepted")
	}
}
