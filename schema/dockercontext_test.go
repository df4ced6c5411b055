package schema

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The docker CLI's current context names the engine when DOCKER_HOST does
// not, as the CLI reads it; only a unix:// endpoint is taken.
func TestDockerContextHost(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dir)
	t.Setenv("DOCKER_HOST", "")
	t.Setenv("DOCKER_CONTEXT", "")
	writeMeta := func(name, host string) {
		sum := sha256.Sum256([]byte(name))
		p := filepath.Join(dir, "contexts", "meta", hex.EncodeToString(sum[:]), "meta.json")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(`{"Name":"`+name+`","Metadata":{},"Endpoints":{"docker":{"Host":"`+host+`","SkipTLSVerify":false}}}`), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	check := func(wantHost, wantSkip string) {
		t.Helper()
		h, skip, err := DockerContextHost()
		if err != nil || h != wantHost || !strings.Contains(skip, wantSkip) || (wantSkip == "" && skip != "") {
			t.Errorf("DockerContextHost() = %q, %q, %v; want %q, %q", h, skip, err, wantHost, wantSkip)
		}
	}
	check("", "") // no config.json: the default engine
	writeMeta("colima", "unix:///Users/me/.colima/default/docker.sock")
	writeMeta("remote", "ssh://me@build")
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"auths":{},"currentContext":"colima"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	check("unix:///Users/me/.colima/default/docker.sock", "")
	t.Setenv("DOCKER_CONTEXT", "remote")
	check("", "only a unix:// endpoint")
	t.Setenv("DOCKER_CONTEXT", "default")
	check("", "")
	t.Setenv("DOCKER_CONTEXT", "missing")
	if _, _, err := DockerContextHost(); err == nil || !strings.Contains(err.Error(), `docker context "missing"`) {
		t.Errorf("a missing context: %v", err)
	}
	t.Setenv("DOCKER_CONTEXT", "colima")
	t.Setenv("DOCKER_HOST", "unix:///elsewhere.sock")
	check("", "") // DOCKER_HOST wins, as for the CLI
}
