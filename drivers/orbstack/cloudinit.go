package orbstack

import (
	"encoding/json"
	"fmt"

	"sigs.k8s.io/yaml"
)

// MarkerPath is the file in every machine jackin makes that says whose it
// is: jackin adopts or removes a machine only when it names the fleet and
// instance (a machine of the same name made by someone else is left alone).
const MarkerPath = "/jackin/machine.json"

// marker is MarkerPath's content.
type marker struct {
	Backend  string `json:"backend"`
	Fleet    string `json:"fleet"`
	Instance string `json:"instance"`
	// Shares are the host paths shared into the machine, fixed when it is
	// made.
	Shares []string `json:"shares"`
	// The machine's settings when it was made: they cannot change on a
	// made machine.
	Distro           string `json:"distro,omitempty"`
	BlockHostNetwork bool   `json:"blockHostNetwork"`
	SSHAgent         string `json:"sshAgent,omitempty"`
}

// userData is the cloud-init document a machine is made with: the
// distro's docker.io, jackin's directories and the marker.
func userData(m marker) ([]byte, error) {
	mj, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	doc := map[string]any{
		"packages": []string{"docker.io"},
		"write_files": []map[string]any{{
			"path":        MarkerPath,
			"permissions": "0644",
			"content":     string(mj) + "\n",
		}},
		"runcmd": [][]string{
			{"mkdir", "-p", "/jackin/images", "/jackin/state"},
			{"systemctl", "enable", "--now", "docker"},
		},
	}
	y, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("render cloud-init user data: %w", err)
	}
	return append([]byte("#cloud-config\n"), y...), nil
}
