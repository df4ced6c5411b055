package main

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestMakeHelpListsEveryTarget: every .PHONY target of the Makefile has a
// "## " description and `make help` lists it (e2e was missing: the
// pattern allowed no digits).
func TestMakeHelpListsEveryTarget(t *testing.T) {
	const makefile = "../../Makefile"
	src, err := os.ReadFile(makefile)
	if err != nil {
		t.Fatalf("the Makefile beside the module is missing: %v", err)
	}
	m := regexp.MustCompile(`(?m)^\.PHONY:(.*)$`).FindSubmatch(src)
	if m == nil {
		t.Fatal("the Makefile has no .PHONY line")
	}
	targets := strings.Fields(string(m[1]))
	if _, err := exec.LookPath("make"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true and no make on PATH")
		}
		t.Skip("SKIPPING: no make on PATH (CI=true makes this a failure)")
	}
	out, err := exec.Command("make", "-s", "-f", makefile, "help").Output()
	if err != nil {
		t.Fatalf("make help: %v", err)
	}
	listed := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			listed[f[0]] = true
		}
	}
	for _, target := range targets {
		if !listed[target] {
			t.Errorf("make help omits %s:\n%s", target, out)
		}
	}
	if !listed["e2e"] {
		t.Error("make help omits e2e")
	}
}
