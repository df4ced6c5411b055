package contract

import (
	"github.com/jackin-dev/jackin/schema"
)

// Engine is where an instance placed on a declared Docker engine (engine:
// NAME) runs: which engine, how jackin reaches it, and who besides the
// agent can see what the agent has. Absent for the local engine.
type Engine struct {
	Name string `json:"name"`
	Host string `json:"host"`
	// Transport is how jackin reaches the engine's API.
	Transport string `json:"transport"`
	// Remote is true when the engine runs on another machine.
	Remote bool `json:"remote"`
	// HostRoot says who on the engine's host can see the agent's files,
	// credentials and memory.
	HostRoot string `json:"hostRoot"`
	// HostFiles says where jackin's own files (the supervisor, the agent
	// directory, delivered credentials) are on the engine's host.
	HostFiles string `json:"hostFiles,omitempty"`
}

// RiskRemoteHostRoot is the residual risk of an instance on another
// machine's engine.
const RiskRemoteHostRoot = "remote-host-root"

// engineOf describes the instance's engine, nil for the local engine.
func engineOf(inst schema.Instance) *Engine {
	e := inst.EngineSpec
	if inst.Engine == "" || e == nil {
		return nil
	}
	out := &Engine{Name: e.Name, Host: e.Host, Remote: e.Remote()}
	switch e.Scheme() {
	case schema.EngineSSH:
		out.Transport = "ssh: the operator's own ssh (its config, agent and known hosts) runs docker system dial-stdio on the engine's host"
	case schema.EngineTCP:
		out.Transport = "tcp with mutual TLS (the client certificate and CA from the manifest's tls)"
	default:
		out.Transport = "unix socket on this machine"
	}
	if out.Remote {
		out.HostRoot = "root on " + e.Host + " (and anyone who can use its Docker engine) can see and change everything the agent has: its mounts, its home volume, the credentials delivered to it and its memory"
		out.HostFiles = "jackin's own files (the supervisor, the agent directory) are copied to /var/lib/jackin-remote, delivered credential files to /dev/shm/jackin-remote (a tmpfs) on the engine's host, through the engine's connection; host paths in mounts are that host's"
	} else {
		out.HostRoot = "root on this machine (and anyone who can use the engine's socket) can see and change everything the agent has"
	}
	return out
}

// engineRisk is the residual risk of an instance on a remote engine.
func engineRisk(e *Engine) (Risk, bool) {
	if e == nil || !e.Remote {
		return Risk{}, false
	}
	return Risk{RiskRemoteHostRoot, "the instance runs on engine " + e.Name + " (" + e.Host + "): " + e.HostRoot + "; jackin's guarantees hold only as far as that host is trusted"}, true
}

// engineSandboxLines adds the engine to the sandbox section's text.
func engineSandboxLines(s *textSection, e *Engine) {
	if e == nil {
		return
	}
	s.kv("engine", e.Name+" ("+e.Host+")")
	s.kv("transport", e.Transport)
	s.kv("engine host's root", e.HostRoot)
	if e.HostFiles != "" {
		s.kv("files on the engine's host", e.HostFiles)
	}
}
