package main

import (
	"encoding/json"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/jackin-dev/jackin/schema"
)

// TestVersionCommand: jackin version needs no engine and prints one line
// per field; -o json is a versioned document with the same fields.
func TestVersionCommand(t *testing.T) {
	out, errOut, code := runInProcess(t, "", "version")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	var keys []string
	fields := map[string]string{}
	for _, l := range lines {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			t.Fatalf("line %q is not key: value", l)
		}
		keys = append(keys, k)
		fields[k] = strings.TrimSpace(v)
	}
	if got := strings.Join(keys, ","); got != "version,commit,go,platform,apiVersion" {
		t.Errorf("fields %s, want version,commit,go,platform,apiVersion:\n%s", got, out)
	}
	if fields["go"] != runtime.Version() || fields["apiVersion"] != schema.APIVersion || fields["version"] == "" || fields["commit"] == "" {
		t.Errorf("unexpected values:\n%s", out)
	}

	out, errOut, code = runInProcess(t, "", "version", "-o", "json")
	if code != exitOK {
		t.Fatalf("-o json: exit %d: %s", code, errOut)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("-o json is not JSON: %v\n%s", err, out)
	}
	want := map[string]any{"apiVersion": "jackin.dev/v1alpha1", "kind": "Version", "goVersion": runtime.Version(), "schemaAPIVersion": schema.APIVersion, "platform": runtime.GOOS + "/" + runtime.GOARCH}
	for k, v := range want {
		if doc[k] != v {
			t.Errorf("%s = %v, want %v", k, doc[k], v)
		}
	}
	for _, k := range []string{"version", "commit"} {
		if s, _ := doc[k].(string); s == "" {
			t.Errorf("%s is missing: %s", k, out)
		}
	}

	if _, _, code := runInProcess(t, "", "version", "-o", "xml"); code != exitInvalid {
		t.Errorf("an unknown -o: exit %d, want 2", code)
	}
	if _, _, code := runInProcess(t, "", "version", "extra"); code != exitInvalid {
		t.Errorf("an argument: exit %d, want 2", code)
	}
}

func TestBuildVersion(t *testing.T) {
	stamped := &debug.BuildInfo{
		Main: debug.Module{Version: "v0.3.0"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	v := buildVersion(stamped, true, "", "")
	if v.Version != "v0.3.0" || v.Commit != "0123456789abcdef" || !v.Modified {
		t.Errorf("from build info: %+v", v)
	}
	if v.GoVersion != runtime.Version() || v.SchemaAPIVersion != schema.APIVersion {
		t.Errorf("go or schema version: %+v", v)
	}
	// -ldflags "-X main.version=... -X main.commit=..." wins.
	v = buildVersion(stamped, true, "v1.0.0", "feedface")
	if v.Version != "v1.0.0" || v.Commit != "feedface" || v.Modified {
		t.Errorf("link-time override: %+v", v)
	}
	// go run, go test: nothing recorded.
	v = buildVersion(&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, true, "", "")
	if v.Version != "devel" || v.Commit != "unknown" || v.Modified {
		t.Errorf("unstamped: %+v", v)
	}
	if v = buildVersion(nil, false, "", ""); v.Version != "devel" || v.Commit != "unknown" {
		t.Errorf("no build info: %+v", v)
	}
}
