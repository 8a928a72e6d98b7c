package browsertest

import (
	"os"
	"path/filepath"
)

// Environment variables read by the harness.
const (
	// ChromiumEnv names the browser binary to use. When it is set, only that
	// path is tried, so a typo shows up as a missing browser rather than a
	// silent fallback to another installation.
	ChromiumEnv = "FABGATE_CHROMIUM"
	// RequireAllEnv, set to 1 (as CI does), makes a missing browser fail the
	// test instead of skipping it.
	RequireAllEnv = "FABGATE_REQUIRE_ALL"
	// ArtifactsEnv is the directory screenshots and accessibility reports go
	// to, instead of artifacts/ at the module root.
	ArtifactsEnv = "FABGATE_ARTIFACTS"
)

// Action is what Start does about the browser.
type Action string

// The outcomes of Find.
const (
	Run  Action = "run"  // a browser was found: start it
	Skip Action = "skip" // no browser, and missing test dependencies are allowed
	Fail Action = "fail" // no browser, and FABGATE_REQUIRE_ALL=1 forbids skipping
)

// Decision is the result of looking for Chromium.
type Decision struct {
	Action Action
	Path   string // the browser binary, when Action is Run
	Reason string // why there is no browser, when Action is not Run
}

// wellKnown are the absolute paths tried before PATH: Debian's package puts
// Chromium in /usr/bin, which a minimal test environment's PATH may lack.
var wellKnown = []string{"/usr/bin/chromium"}

// pathNames are the names looked up in PATH, in order.
var pathNames = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// Find looks for Chromium the way Start does, reading the environment through
// getenv (os.Getenv in Start), and decides whether the test runs, skips or
// fails. It starts nothing.
func Find(getenv func(string) string) Decision {
	return find(getenv, wellKnown)
}

func find(getenv func(string) string, fixed []string) Decision {
	missing := func(reason string) Decision {
		if getenv(RequireAllEnv) == "1" {
			return Decision{Action: Fail, Reason: reason + ", and " + RequireAllEnv + "=1 requires every test dependency"}
		}
		return Decision{Action: Skip, Reason: reason + " (set " + RequireAllEnv + "=1 to make this a failure)"}
	}
	if p := getenv(ChromiumEnv); p != "" {
		if executable(p) {
			return Decision{Action: Run, Path: p}
		}
		return missing(ChromiumEnv + "=" + p + " is not an executable file")
	}
	for _, p := range fixed {
		if executable(p) {
			return Decision{Action: Run, Path: p}
		}
	}
	for _, dir := range filepath.SplitList(getenv("PATH")) {
		if dir == "" {
			continue // an empty PATH entry means the working directory: never a browser here
		}
		for _, name := range pathNames {
			if p := filepath.Join(dir, name); executable(p) {
				return Decision{Action: Run, Path: p}
			}
		}
	}
	return missing("Chromium is not installed (apt-get install chromium, or set " + ChromiumEnv + ")")
}

// executable reports whether p is a regular file someone may execute.
func executable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
