package browsertest

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNotInProduction checks that no package of the module imports this
// package or chromedp outside its tests: they are for tests only, and
// without a direct import neither can reach a program.
func TestNotInProduction(t *testing.T) {
	t.Parallel()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH")
	}
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(goCmd, "list", "-f", `{{.ImportPath}}: {{join .Imports " "}}`, "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	self := modulePath + "/internal/browsertest"
	sawSelf := false
	for _, line := range strings.Split(string(out), "\n") {
		pkg, imports, _ := strings.Cut(line, ": ")
		for _, imp := range strings.Fields(imports) {
			if imp != self && !strings.HasPrefix(imp, "github.com/chromedp/") {
				continue
			}
			if pkg == self {
				sawSelf = true // browsertest may import chromedp
				continue
			}
			t.Errorf("%s imports %s, which is for tests only", pkg, imp)
		}
	}
	if !sawSelf {
		t.Errorf("go list did not show browsertest importing chromedp: the check looked at nothing\n%s", out)
	}
}
