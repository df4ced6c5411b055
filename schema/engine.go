package schema

import "strings"

// Engine schemes (an engine's host is SCHEME://...).
const (
	EngineSSH  = "ssh"
	EngineTCP  = "tcp"
	EngineUnix = "unix"
)

// Scheme is the engine's transport: EngineSSH, EngineTCP or EngineUnix.
func (e Engine) Scheme() string {
	s, _, _ := strings.Cut(e.Host, "://")
	return s
}

// Remote reports whether the engine runs on another machine (ssh and
// tcp): host paths its instances name are that machine's, and jackin's
// own files reach it through the engine's connection.
func (e Engine) Remote() bool { return e.Scheme() != EngineUnix }
