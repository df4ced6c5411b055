package contract

import (
	"maps"
	"slices"
	"strings"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/runtimes"
	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/supervisor"
)

// supervisorOf describes the rendered supervisor of the agent container.
func supervisorOf(fx facts, tools map[string]schema.Tool, gh *schema.GitHub, q *schema.Queue) Supervisor {
	sup := fx.agent.Supervisor
	if sup == nil {
		return Supervisor{}
	}
	rt := fx.inst.Runtime()
	sv := Supervisor{
		Binary:       supervisor.Binary,
		RuntimeHomes: []string{},
		Hooks:        []string{},
		Attach:       "through the engine's exec into the container (jackin attach, logs, exec, wait): no host socket, no published port",
	}
	if gh != nil {
		api := gh.APIURL
		if api == "" {
			api = "https://api.github.com/"
		}
		sv.GitHub = "the agent's <jackin:issue> and <jackin:pr> tags make jackin (get, watch, console) ask " + api +
			" for the state of the issues and pull requests they name, with the fleet's token from " + gh.Token.SourceText() +
			" (read on the host, never delivered to the agent): the agent chooses which of what the token can read is asked about, and the answers are shown to the operator only"
	}
	if q.Takes(fx.inst.Name) {
		sv.Queue = queueText(q)
	}
	for _, name := range slices.Sorted(maps.Keys(tools)) {
		if t := tools[name]; t.Prompt != "" {
			sv.PromptTools = append(sv.PromptTools, PromptTool{Name: name, Key: t.Key, Prompt: t.Prompt})
		}
	}
	for _, m := range fx.agent.Mounts {
		if fx.di.MountOrigin(m) != reconciler.MountFromSupervisor {
			continue
		}
		switch m.Target {
		case supervisor.BinDir:
			sv.HostBinary = m.Source + "/jackin"
		case supervisor.AgentDir:
			sv.StateDir = m.Source + " (mounted read-write at " + m.Target + "; the agent can write it too, so jackin reads it as untrusted input: small regular files, fields checked)"
		case supervisor.HomeStore:
			sv.HomeVolume = m.Source
		}
	}
	switch {
	case sup.ImageCommand && len(sup.Args) > 0:
		sv.Runs = "the image's entrypoint and CMD with " + quoteArgs(sup.Args) + " appended (the user's login shell if the image has neither)"
	case sup.ImageCommand:
		sv.Runs = "the image's entrypoint and CMD (the user's login shell if the image has neither)"
	default:
		sv.Runs = quoteArgs(sup.Command) + " (after the image's entrypoint, if it has one)"
	}
	for _, h := range fx.di.Spec.Run.Homes {
		sv.RuntimeHomes = append(sv.RuntimeHomes, "~/"+h)
	}
	switch rt.State {
	case runtimes.StateHooks:
		sv.State = "from " + rt.Name + "'s hooks, which call " + runtimes.HookCommand(rt.Name) + " (it prints nothing and always exits 0); terminal activity if its settings cannot be read"
	case runtimes.StateNotify:
		sv.State = "from Codex's notify program (" + runtimes.HookCommand(rt.Name) + ") at the end of each turn, and terminal activity for the start of one"
	case runtimes.StateServer:
		sv.State = "from OpenCode's server events (http://127.0.0.1:" + runtimes.OpenCodePort + "/event inside the container)"
	default:
		sv.State = "from terminal activity (output and CPU)"
	}
	switch rt.Name {
	case runtimes.Claude:
		sv.Hooks = append(sv.Hooks, "~/.claude/settings.json (or $CLAUDE_CONFIG_DIR/settings.json)")
	case runtimes.Gemini:
		sv.Hooks = append(sv.Hooks, "~/.gemini/settings.json")
	case runtimes.Codex:
		sv.Hooks = append(sv.Hooks, "$CODEX_HOME/config.toml (notify, default ~/.codex)")
	}
	return sv
}

// queueText says where the prompts of a queue instance come from: whoever
// writes those sources writes this agent's prompts.
func queueText(q *schema.Queue) string {
	var srcs []string
	for _, s := range q.Sources {
		switch s.Kind {
		case schema.TaskSourceDir:
			srcs = append(srcs, s.Name+" (task files in "+s.Dir+")")
		case schema.TaskSourceGitHub:
			what := "open issues of " + s.GitHub.Repo
			if len(s.GitHub.Labels) > 0 {
				what += " labelled " + strings.Join(s.GitHub.Labels, ", ")
			}
			srcs = append(srcs, s.Name+" ("+what+")")
		case schema.TaskSourceCommand:
			srcs = append(srcs, s.Name+" (the output of "+quoteArgs(s.Command)+")")
		}
	}
	gate := ""
	if q.ReviewBeforeDone {
		gate = "; a finished task waits for jackin queue approve"
	}
	return "takes tasks from the fleet's queue: jackin watch types each task's prompt into the agent when it is idle or done, one task at a time, from " +
		strings.Join(srcs, ", ") + ": whoever can write those sources writes this agent's prompts" + gate
}

func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

// supervisorMount describes one of the supervisor's mounts for the
// filesystem section.
func supervisorMount(m drivers.MountSpec, backend string) Mount {
	mt := Mount{Source: m.Source, Destination: m.Target, Access: access(m)}
	switch m.Target {
	case supervisor.BinDir:
		mt.Type, mt.Mode = MountBind, "ro"
		mt.EnforcedBy = "the engine (read-only bind mount of jackin's own executable, the supervisor)"
		mt.Persistence = "on the host under the state dir: replaced when jackin is upgraded"
		if backend == schema.BackendOrbStack {
			mt.EnforcedBy = "guest-enforced (the machine's Docker mounts it read-only; the machine's share of it is writable from inside the machine, so this copy is the instance's alone)"
			mt.Persistence = "a copy of jackin's executable for this machine alone, on the host under the state dir: replaced when jackin is upgraded; removed when the instance is deleted"
		}
	case supervisor.AgentDir:
		mt.Type, mt.Mode = MountBind, "rw"
		mt.EnforcedBy = "nothing: read-write, where the supervisor publishes the agent's state; the agent can write it too, and jackin reads it as untrusted input"
		mt.Persistence = "on the host under the state dir: survives recreates; removed when the instance is deleted"
	default:
		mt.Type, mt.Mode = MountVolume, "rw"
		mt.EnforcedBy = "the engine (a named volume, no host path): the runtime's homes, linked from HOME"
		mt.Persistence = volumePersists + "; removed " + volumeRemovedWhen
	}
	return mt
}

// isSupervisorMount tells the supervisor's mounts, which every agent has.
func isSupervisorMount(dst string) bool {
	return dst == supervisor.BinDir || dst == supervisor.AgentDir || dst == supervisor.HomeStore
}
