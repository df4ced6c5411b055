package schema

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// DockerContextHost is the engine address of the docker CLI's current context
// when DOCKER_HOST is unset: DOCKER_CONTEXT, else config.json's
// currentContext, read from DOCKER_CONFIG (default ~/.docker) as the CLI
// reads it. Colima, and Docker Desktop or OrbStack without their
// /var/run/docker.sock link, are reached only through a context. Only a
// unix:// endpoint is taken (a context's TLS or ssh settings are the CLI's
// own): "" means the client's default, with a reason why when a context
// was named but not used.
func DockerContextHost() (host, skipped string, err error) {
	if os.Getenv("DOCKER_HOST") != "" {
		return "", "", nil
	}
	dir := os.Getenv("DOCKER_CONFIG")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", "", nil
		}
		dir = filepath.Join(home, ".docker")
	}
	name := os.Getenv("DOCKER_CONTEXT")
	if name == "" {
		b, err := os.ReadFile(filepath.Join(dir, "config.json"))
		if err != nil {
			return "", "", nil // no config: the default engine
		}
		var cfg struct {
			CurrentContext string `json:"currentContext"`
		}
		if err := json.Unmarshal(b, &cfg); err != nil {
			return "", "", fmt.Errorf("read the docker CLI's current context from %s: %w", filepath.Join(dir, "config.json"), err)
		}
		name = cfg.CurrentContext
	}
	if name == "" || name == "default" {
		return "", "", nil
	}
	sum := sha256.Sum256([]byte(name))
	meta := filepath.Join(dir, "contexts", "meta", hex.EncodeToString(sum[:]), "meta.json")
	b, err := os.ReadFile(meta)
	if err != nil {
		return "", "", fmt.Errorf("docker context %q: %w (set DOCKER_HOST, or docker context use default)", name, err)
	}
	var m struct {
		Endpoints map[string]struct {
			Host string `json:"Host"`
		} `json:"Endpoints"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return "", "", fmt.Errorf("docker context %q: read %s: %w", name, meta, err)
	}
	h := m.Endpoints["docker"].Host
	if !strings.HasPrefix(h, "unix://") {
		return "", fmt.Sprintf("docker context %q has endpoint %q; jackin takes only a unix:// endpoint from a context: set DOCKER_HOST for another", name, h), nil
	}
	return h, "", nil
}
