package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestValidateEnumAndFieldErrors: validate runs without an engine and words
// enum errors with exactly the allowed values, once, and a misspelled field
// with the nearest allowed one, each at its line; the exit code is 2.
func TestValidateEnumAndFieldErrors(t *testing.T) {
	const head = "apiVersion: \"jackin.dev/v1alpha1\"\nkind: \"Fleet\"\nname: \"demo\"\n"
	cases := []struct {
		name, body string
		at         string // the text the error points at
		want       string // after "<stdin>:4:COL: "
	}{
		{"bad mode", `mounts: [{dst: "/w", mode: "worktre"}]`, `mode`,
			`instances.web.mounts[0].mode: mode must be one of "rw", "ro", "tmpfs", "worktree", "clone", "ephemeral" (got "worktre")`},
		{"bad docker", `docker: "privat"`, `docker`,
			`instances.web.docker: docker must be one of "none", "private" (got "privat")`},
		{"bad profile", `profile: "hardend"`, `profile`,
			`instances.web.profile: profile must be one of "standard", "hardened", "locked" (got "hardend")`},
		{"misspelled field", `comand: ["sh"]`, `comand`,
			`instances.web.comand: field "comand" is not allowed here; allowed fields: agent, args, backend, command, credentials, description, docker, dockerDaemon, engine, env, idle, integrations, kubernetes, labels, mounts, network, orbstack, profile, recovery, resources, role, security, state; did you mean "command"?`},
		{"misspelled nested field", `resources: memroy: "1G"`, `memroy`,
			`instances.web.resources.memroy: field "memroy" is not allowed here; allowed fields: cpus, memory, memoryReservation, nofile, pids; did you mean "memory"?`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			line := "instances: web: {role: image: \"x\", " + c.body + "}"
			src := head + line + "\n"
			want := fmt.Sprintf("<stdin>:4:%d: %s", strings.Index(line, c.at)+1, c.want)
			out, errOut, code := runInProcess(t, src, "validate", "-f", "-")
			if code != exitInvalid {
				t.Fatalf("exit %d, want 2; stdout %q", code, out)
			}
			if !strings.Contains(errOut, want+"\n") {
				t.Errorf("stderr lacks\n  %s\ngot:\n%s", want, errOut)
			}
			if strings.Contains(errOut, "conflicting values") {
				t.Errorf("raw CUE error:\n%s", errOut)
			}
			if n := strings.Count(errOut, "must be one of"); n > 1 {
				t.Errorf("%d enum errors for one value:\n%s", n, errOut)
			}
		})
	}
}
