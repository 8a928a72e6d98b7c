package web

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// vendorLine is one package line of vendor.txt.
type vendorLine struct {
	spec, pkg, dest string
	files           []string
}

func readVendorTxt(t *testing.T) []vendorLine {
	t.Helper()
	f, err := os.Open("vendor.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []vendorLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		l := vendorLine{spec: fields[0], dest: "static/vendor", files: fields[1:]}
		if s, ok := strings.CutPrefix(l.spec, "test:"); ok {
			l.spec, l.dest = s, "testdata/vendor"
		}
		at := strings.LastIndex(l.spec, "@")
		if at <= 0 {
			t.Fatalf("vendor.txt: %q has no exact version", fields[0])
		}
		l.pkg = l.spec[:at]
		lines = append(lines, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// TestVendoredFiles checks that the committed files are what vendor.txt
// lists (run make assets after changing it): each file present, with its
// package's license, and each destination's VERSIONS naming the exact
// versions.
func TestVendoredFiles(t *testing.T) {
	lines := readVendorTxt(t)
	if len(lines) == 0 {
		t.Fatal("vendor.txt lists nothing")
	}
	versions := map[string]string{}
	for _, l := range lines {
		if _, ok := versions[l.dest]; !ok {
			b, err := os.ReadFile(filepath.Join(l.dest, "VERSIONS"))
			if err != nil {
				t.Fatalf("%s: %v (run make assets)", l.dest, err)
			}
			versions[l.dest] = string(b)
		}
		if !strings.Contains(versions[l.dest], l.spec+" ") {
			t.Errorf("%s/VERSIONS does not record %s (run make assets)", l.dest, l.spec)
		}
		dir := filepath.Join(l.dest, l.pkg)
		for _, f := range l.files {
			if _, err := os.Stat(filepath.Join(dir, filepath.Base(f))); err != nil {
				t.Errorf("%s: %v (run make assets)", l.spec, err)
			}
		}
		if lic, _ := filepath.Glob(filepath.Join(dir, "LICENSE*")); len(lic) == 0 {
			t.Errorf("%s has no LICENSE file in %s", l.spec, dir)
		}
	}
}

// TestFullCalendarBundle checks that the FullCalendar bundle is the
// standard one, with the views the pages use, and holds none of the
// premium (non-MIT) plugins.
func TestFullCalendarBundle(t *testing.T) {
	b, err := fs.ReadFile(Static(), "vendor/fullcalendar/index.global.min.js")
	if err != nil {
		t.Fatal(err)
	}
	js := string(b)
	if !strings.Contains(js, "FullCalendar Standard Bundle v6.") {
		t.Errorf("not FullCalendar 6's standard bundle: %.80q", js)
	}
	for _, plugin := range []string{"@fullcalendar/daygrid", "@fullcalendar/timegrid", "@fullcalendar/list", "@fullcalendar/interaction"} {
		if !strings.Contains(js, plugin) {
			t.Errorf("the bundle lacks %s", plugin)
		}
	}
	for _, premium := range []string{"@fullcalendar/resource", "schedulerLicenseKey", "@fullcalendar/premium-common"} {
		if strings.Contains(js, premium) {
			t.Errorf("the bundle holds premium code (%s)", premium)
		}
	}
	fr, err := fs.ReadFile(Static(), "vendor/@fullcalendar/core/fr.global.min.js")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(fr), `code:"fr"`) {
		t.Errorf("fr.global.min.js is not the French locale")
	}
	for _, f := range []string{"vendor/fullcalendar/LICENSE.md", "vendor/@fullcalendar/core/LICENSE.md"} {
		lic, err := fs.ReadFile(Static(), f)
		if err != nil || !strings.HasPrefix(string(lic), "MIT License") {
			t.Errorf("%s is not the MIT license: %v", f, err)
		}
	}
}

// TestTestOnlyAssetsNotEmbedded checks that axe-core, vendored for the
// browser tests, is not in the binary's static files.
func TestTestOnlyAssetsNotEmbedded(t *testing.T) {
	if _, err := os.Stat("testdata/vendor/axe-core/axe.min.js"); err != nil {
		t.Fatalf("axe-core is not vendored: %v (run make assets)", err)
	}
	err := fs.WalkDir(Static(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.Contains(p, "axe") {
			t.Errorf("%s is embedded and served", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
