package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestLogLevelNames: -v N shows V(N) messages with a readable level,
// "debug2" for V(2) (zap alone prints "Level(-2)"), in both formats, and
// hides V(N+1).
func TestLogLevelNames(t *testing.T) {
	var buf bytes.Buffer
	log, err := newLogger("json", 3, &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("zero")
	log.V(1).Info("one")
	log.V(2).Info("two")
	log.V(3).Info("three")
	log.V(4).Info("four")
	want := map[string]string{"zero": "info", "one": "debug", "two": "debug2", "three": "debug3"}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec struct{ Level, Msg string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		got[rec.Msg] = rec.Level
	}
	if len(got) != len(want) {
		t.Errorf("logged %v, want %v (V(4) hidden at -v 3)", got, want)
	}
	for msg, level := range want {
		if got[msg] != level {
			t.Errorf("%s: level %q, want %q", msg, got[msg], level)
		}
	}

	buf.Reset()
	log, err = newLogger("console", 9, &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.V(2).Info("two")
	log.V(9).Info("nine")
	log.V(1).Info("one")
	out := buf.String()
	for _, w := range []string{"DEBUG2", "DEBUG9", "DEBUG"} {
		if !strings.Contains(out, w) {
			t.Errorf("console output lacks %s:\n%s", w, out)
		}
	}
	if strings.Contains(out, "Level(") {
		t.Errorf("zap's raw level name:\n%s", out)
	}
}
