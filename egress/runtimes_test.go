package egress

import (
	"slices"
	"strings"
	"testing"

	"github.com/jackin-dev/jackin/runtimes"
)

// @agent is each runtime's API hosts from the runtimes table, every one a
// valid allowlist entry; an unknown runtime has none.
func TestAgentPresetIsTheRuntimesTable(t *testing.T) {
	for _, rt := range runtimes.All() {
		hosts, err := PresetHosts("@agent", rt)
		if err != nil {
			t.Fatalf("@agent for %s: %v", rt.Name, err)
		}
		if !slices.Equal(hosts, rt.APIHosts) {
			t.Errorf("@agent for %s is %q, want %q", rt.Name, hosts, rt.APIHosts)
		}
		rules, err := Expand([]string{"@agent"}, rt)
		if err != nil {
			t.Fatalf("%s's API hosts are not valid allowlist entries: %v", rt.Name, err)
		}
		var got []string
		for _, r := range rules {
			if r.From != "@agent" || r.Port != 0 {
				t.Errorf("%s: rule %+v", rt.Name, r)
			}
			got = append(got, r.Host)
		}
		if !slices.Equal(got, rt.APIHosts) {
			t.Errorf("%s: @agent expands to %q, want %q", rt.Name, got, rt.APIHosts)
		}
	}
	if _, err := PresetHosts("@agent", runtimes.NewCustom("mine", []string{"mine"}, nil, nil, nil)); err == nil || !strings.Contains(err.Error(), `runtime "mine" declares no hosts`) {
		t.Errorf("@agent for a custom runtime without hosts: %v", err)
	}
	hosts, err := PresetHosts("@agent", runtimes.NewCustom("mine", []string{"mine"}, nil, nil, []string{"api.mine.test"}))
	if err != nil || !slices.Equal(hosts, []string{"api.mine.test"}) {
		t.Errorf("@agent for a custom runtime: %v %v", hosts, err)
	}
}

func rt(name string) runtimes.Runtime {
	r, _ := runtimes.Get(name)
	return r
}
