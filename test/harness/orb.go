package harness

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// OrbMachineLabel marks the containers the orb stand-in (test/harness/orb)
// runs as machines; its value is the machine's name.
const OrbMachineLabel = "dev.jackin.orbsim.machine"

// BuildOrb builds the orb stand-in into dir/orb (put dir on PATH).
func BuildOrb(dir string) (string, error) {
	bin := filepath.Join(dir, "orb")
	return bin, GoBuild(bin, "./test/harness/orb")
}

// OrbMachines lists the stand-in's machines whose names start with prefix.
func OrbMachines(prefix string) []string {
	var out []string
	for _, l := range DockerLines("ps", "-a", "--filter", "label="+OrbMachineLabel, "--format", `{{.Label "`+OrbMachineLabel+`"}}`) {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// OrbMachineContainer is the engine container that is the machine name.
func OrbMachineContainer(name string) string { return "orbsim-" + name }

// RemoveOrbMachines removes the stand-in's machines whose names start with
// prefix, and their networks, through the docker CLI.
func RemoveOrbMachines(prefix string) {
	for _, name := range OrbMachines(prefix) {
		_, _ = exec.Command("docker", "rm", "-f", "-v", OrbMachineContainer(name)).CombinedOutput()
		_, _ = exec.Command("docker", "network", "rm", "orbsim-net-"+name).CombinedOutput()
	}
}

// OrbImageLoads counts the image loads a stand-in machine's engine has
// done since it started (its own "load" events), however the image came
// in: `orb -m NAME docker load` or a load request over a dial-stdio
// connection. A machine that is gone counts -1.
func OrbImageLoads(machine string) int {
	out, err := exec.Command("docker", "exec", OrbMachineContainer(machine), "docker", "events",
		"--since", "0", "--until", strconv.FormatFloat(float64(time.Now().UnixNano())/1e9, 'f', 6, 64),
		"--filter", "type=image", "--filter", "event=load", "--format", "{{.Action}}").Output()
	if err != nil {
		return -1
	}
	return strings.Count(string(out), "load")
}

// OrbCalls reads the stand-in's call log (ORB_SIM_LOG): the arguments of
// every invocation, oldest first.
func OrbCalls(logPath string) [][]string {
	f, err := os.Open(logPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec struct {
			Args []string `json:"args"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) == nil {
			out = append(out, rec.Args)
		}
	}
	return out
}

// CountOrbCalls counts the logged invocations whose arguments start with
// prefix ("create"; "-m", NAME, "docker", "load").
func CountOrbCalls(logPath string, prefix ...string) int {
	n := 0
	for _, args := range OrbCalls(logPath) {
		if len(args) < len(prefix) {
			continue
		}
		match := true
		for i, p := range prefix {
			if args[i] != p {
				match = false
				break
			}
		}
		if match {
			n++
		}
	}
	return n
}
