package browsertest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// modulePath is the module whose root the harness looks for.
const modulePath = "github.com/fabgate/fabgate"

// ModuleRoot returns the directory holding FabGate's go.mod, found by walking
// up from the working directory (go test runs a package's tests in its own
// directory).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module "+modulePath+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of %s above the working directory", modulePath)
		}
		dir = parent
	}
}

// AxePath is the vendored axe-core script, relative to the module root. It is
// under web/testdata so that it is neither embedded in the binary nor served.
const AxePath = "web/testdata/vendor/axe-core/axe.min.js"

var axeSource = sync.OnceValues(func() (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(root, AxePath))
	if err != nil {
		return "", fmt.Errorf("read axe-core (run make assets): %w", err)
	}
	return string(b), nil
})

// ArtifactsDir returns where screenshots and reports go: $FABGATE_ARTIFACTS,
// or artifacts/ at the module root. A relative FABGATE_ARTIFACTS is taken
// from the module root too, so every package writes to the same place.
func ArtifactsDir() (string, error) {
	dir := os.Getenv(ArtifactsEnv)
	if filepath.IsAbs(dir) {
		return dir, nil
	}
	if dir == "" {
		dir = "artifacts"
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, dir), nil
}

// steps numbers the files a test writes, across all its tabs, so that the
// screenshots of a test sort in the order they were taken. It is keyed by
// the test's name, not its testing.TB, so that a wrapper of t (as a test
// of a check's failure uses) counts with t; with -count=2 the second run
// goes on counting after the first.
var steps = struct {
	sync.Mutex
	n map[string]int
}{n: map[string]int{}}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// safeName turns a page or step name into a file name part.
func safeName(s string) string {
	s = strings.Trim(unsafeChars.ReplaceAllString(s, "-"), "-")
	if s == "" {
		return "step"
	}
	return s
}

// nextArtifact returns a new numbered path for t:
// <artifacts>/screenshots/<TestName>/<NN>-<name><ext>. The first call of a
// test empties the test's directory, so that files of an earlier run with
// more steps do not linger among the new ones. Test packages run in
// parallel processes, so two browser tests of the module must not share a
// name.
func nextArtifact(t testing.TB, name, ext string) (string, error) {
	base, err := ArtifactsDir()
	if err != nil {
		return "", err
	}
	parts := strings.Split(t.Name(), "/") // a subtest gets a subdirectory
	for i, p := range parts {
		parts[i] = safeName(p)
	}
	dir := filepath.Join(append([]string{base, "screenshots"}, parts...)...)

	steps.Lock()
	n, seen := steps.n[t.Name()]
	n++
	steps.n[t.Name()] = n
	steps.Unlock()
	if !seen {
		if err := removeFiles(dir); err != nil {
			return "", err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return filepath.Join(dir, fmt.Sprintf("%02d-%s%s", n, safeName(name), ext)), nil
}

// removeFiles removes the files directly in dir, leaving its subdirectories:
// they belong to subtests, which clean their own.
func removeFiles(dir string) error {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.IsDir() {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}
