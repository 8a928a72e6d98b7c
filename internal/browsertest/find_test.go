package browsertest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// env is a fake environment for Find.
type env map[string]string

func (e env) get(k string) string { return e[k] }

// fakeBrowser writes an executable file called name in a new directory.
func fakeBrowser(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFindDecides(t *testing.T) {
	onPath := fakeBrowser(t, "chromium-browser")
	chrome := fakeBrowser(t, "google-chrome")
	notExec := filepath.Join(t.TempDir(), "chromium")
	if err := os.WriteFile(notExec, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	nowhere := filepath.Join(t.TempDir(), "no-such-chromium")

	tests := []struct {
		name     string
		env      env
		fixed    []string
		want     Action
		wantPath string
		reason   string // a part of the reason, when no browser
	}{
		{name: "explicit path wins", env: env{ChromiumEnv: chrome, "PATH": filepath.Dir(onPath)}, fixed: []string{onPath}, want: Run, wantPath: chrome},
		{name: "well-known path before PATH", env: env{"PATH": filepath.Dir(chrome)}, fixed: []string{onPath}, want: Run, wantPath: onPath},
		{name: "found on PATH", env: env{"PATH": "/nonexistent" + string(filepath.ListSeparator) + filepath.Dir(onPath)}, want: Run, wantPath: onPath},
		{name: "explicit path missing: skip", env: env{ChromiumEnv: nowhere, "PATH": filepath.Dir(onPath)}, fixed: []string{onPath}, want: Skip, reason: nowhere},
		{name: "explicit path missing, all required: fail", env: env{ChromiumEnv: nowhere, RequireAllEnv: "1", "PATH": ""}, want: Fail, reason: RequireAllEnv + "=1"},
		{name: "nothing installed: skip", env: env{"PATH": ""}, want: Skip, reason: "not installed"},
		{name: "nothing installed, all required: fail", env: env{"PATH": "", RequireAllEnv: "1"}, want: Fail, reason: "not installed"},
		{name: "not executable is not a browser", env: env{"PATH": filepath.Dir(notExec), RequireAllEnv: "1"}, want: Fail},
		{name: "REQUIRE_ALL other than 1 skips", env: env{"PATH": "", RequireAllEnv: "0"}, want: Skip},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := find(tc.env.get, tc.fixed)
			if d.Action != tc.want || d.Path != tc.wantPath {
				t.Fatalf("find = %+v, want action %s path %q", d, tc.want, tc.wantPath)
			}
			if !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("reason %q does not mention %q", d.Reason, tc.reason)
			}
		})
	}
}

// TestStartFailsWhenRequired runs TestStartWithoutBrowser in a child process
// with no browser to be found and FABGATE_REQUIRE_ALL=1: it must fail, not
// skip. Without the variable it must skip.
func TestStartFailsWhenRequired(t *testing.T) {
	if os.Getenv("BROWSERTEST_CHILD") == "1" {
		t.Skip("in the child process")
	}
	nowhere := filepath.Join(t.TempDir(), "no-such-chromium")
	for _, tc := range []struct {
		requireAll string
		wantFail   bool
		wantOutput string
	}{
		{"1", true, "--- FAIL: TestStartWithoutBrowser"},
		{"", false, "--- SKIP: TestStartWithoutBrowser"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestStartWithoutBrowser$", "-test.v")
		cmd.Env = append(os.Environ(), "BROWSERTEST_CHILD=1", ChromiumEnv+"="+nowhere, RequireAllEnv+"="+tc.requireAll)
		out, err := cmd.CombinedOutput()
		if failed := err != nil; failed != tc.wantFail {
			t.Errorf("%s=%q: child failed=%v (%v), want %v\n%s", RequireAllEnv, tc.requireAll, failed, err, tc.wantFail, out)
		}
		if !strings.Contains(string(out), tc.wantOutput) || !strings.Contains(string(out), nowhere) {
			t.Errorf("%s=%q: child output lacks %q and the browser path:\n%s", RequireAllEnv, tc.requireAll, tc.wantOutput, out)
		}
	}
}

// TestStartWithoutBrowser only runs as TestStartFailsWhenRequired's child.
func TestStartWithoutBrowser(t *testing.T) {
	if os.Getenv("BROWSERTEST_CHILD") != "1" {
		t.Skip("run by TestStartFailsWhenRequired")
	}
	Start(t)
	t.Error("Start returned without a browser")
}
