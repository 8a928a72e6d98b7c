package browsertest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// axeTags are the rule sets CheckAccessibility runs: WCAG 2.0 and 2.1, levels
// A and AA, plus axe's best practices.
var axeTags = []string{"wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"}

// AxeViolation is one failed axe-core rule with the elements failing it.
type AxeViolation struct {
	ID      string `json:"id"`
	Impact  string `json:"impact"` // minor, moderate, serious or critical
	Help    string `json:"help"`
	HelpURL string `json:"helpUrl"`
	Nodes   []struct {
		Target         []any  `json:"target"` // CSS selectors (arrays of them inside shadow DOM)
		FailureSummary string `json:"failureSummary"`
	} `json:"nodes"`
}

// blocking reports whether a violation fails the test.
func (v AxeViolation) blocking() bool { return v.Impact == "serious" || v.Impact == "critical" }

// CheckAccessibility runs axe-core's WCAG 2.1 A/AA and best-practice rules
// on the current page, writes the full result next to the screenshots as
// <NN>-<pageName>.axe.json, and fails t listing every serious or critical
// violation with the elements concerned. It returns all the violations, so a
// test may also look at the minor and moderate ones.
func (tab *Tab) CheckAccessibility(t testing.TB, pageName string) []AxeViolation {
	t.Helper()
	src, err := axeSource()
	if err != nil {
		t.Fatalf("browsertest: %v", err)
	}
	// Evaluated through the DevTools protocol, the script is not subject to
	// the page's Content-Security-Policy, and the page never links it.
	// Compiling the 650 kB script is most of the check's cost: a page
	// checked again (after a click, say) keeps the copy it has.
	if !do(tab, "look for axe-core", chromedp.Evaluate[bool](`typeof window.axe === "object"`)) {
		do(tab, "inject axe-core", chromedp.Evaluate[chromedp.Void](src+"\n;0"))
	}
	tags, _ := json.Marshal(axeTags)
	raw := do(tab, "run axe-core", chromedp.Evaluate[[]byte](
		`axe.run(document, {runOnly: {type: "tag", values: `+string(tags)+`}}).then(r => JSON.stringify(r))`,
		chromedp.EvalAwaitPromise))
	var text string
	if err := json.Unmarshal(raw, &text); err != nil {
		t.Fatalf("browsertest: axe-core's result: %v", err)
	}
	var result struct {
		URL        string         `json:"url"`
		Violations []AxeViolation `json:"violations"`
	}
	if err := json.Unmarshal([]byte(text), &result); err != nil {
		t.Fatalf("browsertest: decode axe-core's result: %v", err)
	}
	report, err := writeReport(t, pageName, text)
	if err != nil {
		t.Errorf("browsertest: write the accessibility report: %v", err)
	}

	var blocking []string
	for _, v := range result.Violations {
		if !v.blocking() {
			continue
		}
		var targets []string
		for _, n := range v.Nodes {
			b, _ := json.Marshal(n.Target)
			targets = append(targets, string(b))
		}
		blocking = append(blocking, fmt.Sprintf("%s (%s): %s\n      %s\n      on %s",
			v.ID, v.Impact, v.Help, v.HelpURL, strings.Join(targets, ", ")))
	}
	if len(blocking) > 0 {
		t.Errorf("browsertest: %s (%s) has %d serious or critical accessibility violation(s):\n  %s\n  full report: %s",
			pageName, result.URL, len(blocking), strings.Join(blocking, "\n  "), report)
	}
	return result.Violations
}

// writeReport saves axe-core's JSON result, indented for reading.
func writeReport(t testing.TB, pageName, text string) (string, error) {
	var v any
	if err := json.Unmarshal([]byte(text), &v); err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return "", err
	}
	p, err := nextArtifact(t, pageName, ".axe.json")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(p, append(b, '\n'), 0o644); err != nil {
		return "", errors.Join(fmt.Errorf("write %s", p), err)
	}
	return p, nil
}
