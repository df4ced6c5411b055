package manifests

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzLoad feeds arbitrary text to the loader as CUE, YAML and JSON. It must
// never panic or hang, and must either return a fleet or Diagnostics.
// `make fuzz` runs it for five minutes.
func FuzzLoad(f *testing.F) {
	for _, p := range []string{"../examples/fleet.cue", "../examples/fleet.yaml", "../examples/fleet.json", "../examples/offline/fleet.cue"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b, uint8(0))
		}
	}
	seeds := []string{
		header + "instances: a: role: image: \"x\"\n",
		header + "instances: a: {role: image: \"x\", mounts: [{src: \"/var/run\", dst: \"/x\", mode: \"rw\"}]}\n",
		header + "defaults: env: A: \"1\"\ninstances: a: {role: build: context: \".\", env: B: \"2\"}\n",
		"apiVersion: jackin.dev/v1alpha1\nkind: Fleet\nname: t\ninstances:\n  a:\n    role: {image: x}\n    agent: [1, 2]\n",
		"{\"apiVersion\": \"jackin.dev/v1alpha1\", \"kind\": \"Fleet\", \"name\": \"t\", \"instances\": {\"a\": {\"role\": 1}}}",
		header + "instances: [for x in [1,2] {x}]\n",
		header + "x: y\ny: x\n",
		"a: b: c: d:\n  - - - [",
		"\xff\xfe{",
		"",
	}
	for i, s := range seeds {
		f.Add([]byte(s), uint8(i))
	}
	f.Fuzz(func(t *testing.T, data []byte, kind uint8) {
		dir := t.TempDir()
		name := []string{"f.cue", "f.yaml", "f.json"}[int(kind)%3]
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done := make(chan struct{})
		go func() {
			defer close(done)
			res, err := Load(ctx, []string{path}, Options{Home: dir, WorkDir: dir, HostCPUs: 2})
			var diags Diagnostics
			switch {
			case err == nil && (res == nil || res.Fleet == nil):
				t.Errorf("no error and no fleet")
			case err != nil && !errors.As(err, &diags):
				t.Errorf("error is not Diagnostics: %T %v", err, err)
			case err != nil && len(diags) == 0:
				t.Errorf("empty Diagnostics")
			}
		}()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("Load hung on %q", data)
		}
	})
}
