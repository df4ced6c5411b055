package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// EgressAgentImage is the demo agent for egress tests, under its own tag:
// other tests rebuild AgentImage from their own tree at any time.
const EgressAgentImage = "jackin-e2e-egress-agent:v1"

// BuildEgressAgentImage builds the demo agent (with its network probes)
// into EgressAgentImage.
func BuildEgressAgentImage(dir string) error {
	ctxDir := filepath.Join(dir, "egress-agent-image")
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		return err
	}
	if err := GoBuild(filepath.Join(ctxDir, "agent"), "./examples/offline/role/agent"); err != nil {
		return err
	}
	df := "FROM scratch\nCOPY agent /agent\nENTRYPOINT [\"/agent\"]\nCMD [\"idle\"]\n"
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(df), 0o644); err != nil {
		return err
	}
	cmd := exec.Command("docker", "build", "-q", "-t", EgressAgentImage, ctxDir)
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("docker build %s: %v\n%s", EgressAgentImage, err, b)
	}
	return nil
}

// UpstreamImage is the test internet's server (test/harness/upstream): HTTP
// on :80 and HTTPS on :443 with a self-signed certificate.
const UpstreamImage = "jackin-e2e-upstream:v1"

// BuildUpstreamImage builds UpstreamImage, using dir as scratch space.
func BuildUpstreamImage(dir string) error {
	ctxDir := filepath.Join(dir, "upstream-image")
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		return err
	}
	if err := GoBuild(filepath.Join(ctxDir, "upstream"), "./test/harness/upstream"); err != nil {
		return err
	}
	df := "FROM scratch\nCOPY upstream /upstream\nENTRYPOINT [\"/upstream\"]\n"
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(df), 0o644); err != nil {
		return err
	}
	cmd := exec.Command("docker", "build", "-q", "-t", UpstreamImage, ctxDir)
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("docker build %s: %v\n%s", UpstreamImage, err, b)
	}
	return nil
}

// TestInternet is a bridge network holding upstream servers, each known on
// it by its own names (network aliases): the "internet" of egress tests.
type TestInternet struct {
	Network string
	// IPs maps each upstream's first name to its address on Network.
	IPs map[string]string
}

// StartTestInternet creates network (labelled with label, for cleanup) and
// one upstream container per name, named prefix-<name> and reachable as
// <name> on the network.
func StartTestInternet(network, label string, names ...string) (*TestInternet, error) {
	ti := &TestInternet{Network: network, IPs: map[string]string{}}
	if out, err := exec.Command("docker", "network", "create", "--label", label, network).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("docker network create %s: %v: %s", network, err, out)
	}
	for _, n := range names {
		cname := network + "-" + n
		out, err := exec.Command("docker", "run", "-d", "--name", cname, "--label", label, "--network", network,
			"--network-alias", n, UpstreamImage, n).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("docker run %s: %v: %s", cname, err, out)
		}
		ips := DockerLines("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", cname)
		if len(ips) == 1 {
			ti.IPs[n] = ips[0]
		}
	}
	return ti, nil
}
