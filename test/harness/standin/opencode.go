package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// opencode is the OpenCode stand-in: a TUI (stdin lines) plus its HTTP
// server, on --hostname (default 127.0.0.1) and --port (default: a random
// one), with the bus as Server-Sent Events on GET /event (and wrapped with
// the directory on GET /global/event). Each event is one "data: {type,
// properties}" message; a new stream starts with server.connected.
//
// A turn emits: message.updated (user), message.part.updated (text),
// session.status busy, message.updated (assistant), for "perm"
// permission.asked {id, sessionID, permission, patterns, metadata, always,
// tool} then, once answered, permission.replied {sessionID, requestID,
// reply: once|reject} (STANDIN_OPENCODE_LEGACY=1: permission.updated /
// permission.replied {permissionID, response}), message.part.updated (tool,
// text), message.updated (assistant, completed), session.status idle,
// session.idle. A rejected permission ends the turn (status idle) too.
type opencode struct {
	a          *app
	addr       string
	ln         net.Listener
	session    string
	permission any
	legacy     bool
	mu         sync.Mutex
	subs       map[chan []byte]bool
	status     string
}

func newOpencode(a *app) *opencode {
	o := &opencode{a: a, session: "ses_" + newID("", 12), subs: map[chan []byte]bool{}, status: "idle",
		legacy: os.Getenv("STANDIN_OPENCODE_LEGACY") == "1"}
	host, ok := argValue(a.args, "--hostname")
	if !ok {
		host = "127.0.0.1"
	}
	port, ok := argValue(a.args, "--port")
	if !ok {
		port = "0"
	}
	// Config layers: global, OPENCODE_CONFIG, project, OPENCODE_CONFIG_CONTENT;
	// the last one setting "permission" wins.
	cfgHome := os.Getenv("XDG_CONFIG_HOME")
	if cfgHome == "" {
		cfgHome = filepath.Join(a.home, ".config")
	}
	var read []string
	layer := func(name string, b []byte) {
		var c map[string]any
		if json.Unmarshal(b, &c) != nil {
			return
		}
		read = append(read, name)
		if p, ok := c["permission"]; ok {
			o.permission = p
		}
	}
	for _, f := range []string{filepath.Join(cfgHome, "opencode", "opencode.json"), os.Getenv("OPENCODE_CONFIG"), filepath.Join(a.cwd, "opencode.json")} {
		if f == "" {
			continue
		}
		if b, err := os.ReadFile(f); err == nil {
			layer(f, b)
		}
	}
	if c := os.Getenv("OPENCODE_CONFIG_CONTENT"); c != "" {
		layer("OPENCODE_CONFIG_CONTENT", []byte(c))
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		fmt.Fprintf(os.Stderr, "opencode: listen %s:%s: %v\n", host, port, err)
		os.Exit(1)
	}
	o.ln, o.addr = ln, ln.Addr().String()
	a.log.record(map[string]any{"kind": "config", "config_read": read, "permission": o.permission, "listen": o.addr, "session": o.session})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /event", func(w http.ResponseWriter, r *http.Request) { o.stream(w, r, false) })
	mux.HandleFunc("GET /global/event", func(w http.ResponseWriter, r *http.Request) { o.stream(w, r, true) })
	mux.HandleFunc("GET /global/health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"healthy": true, "version": version})
	})
	mux.HandleFunc("GET /session/status", func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		st := o.status
		o.mu.Unlock()
		writeJSON(w, map[string]any{o.session: map[string]any{"type": st}})
	})
	mux.HandleFunc("GET /session", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, []any{map[string]any{"id": o.session, "directory": a.cwd, "title": "standin"}})
	})
	go http.Serve(ln, mux)
	return o
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// stream serves the SSE bus to one client.
func (o *opencode) stream(w http.ResponseWriter, r *http.Request, global bool) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "no streaming", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Connection", "keep-alive")
	ch := make(chan []byte, 256)
	o.mu.Lock()
	o.subs[ch] = true
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		delete(o.subs, ch)
		o.mu.Unlock()
	}()
	send := func(ev []byte) bool {
		if global {
			ev, _ = json.Marshal(map[string]any{"directory": o.a.cwd, "payload": json.RawMessage(ev)})
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", ev); err != nil {
			return false
		}
		fl.Flush()
		return true
	}
	hello, _ := json.Marshal(map[string]any{"type": "server.connected", "properties": map[string]any{}})
	if !send(hello) {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case ev := <-ch:
			if !send(ev) {
				return
			}
		}
	}
}

// emit publishes one bus event to every stream.
func (o *opencode) emit(typ string, props map[string]any) {
	ev, _ := json.Marshal(map[string]any{"type": typ, "properties": props})
	o.mu.Lock()
	if typ == "session.status" {
		if st, ok := props["status"].(map[string]any); ok {
			o.status, _ = st["type"].(string)
		}
	}
	n := len(o.subs)
	for ch := range o.subs {
		select {
		case ch <- ev:
		default: // a stuck client loses events rather than stalling the TUI
		}
	}
	o.mu.Unlock()
	o.a.log.record(map[string]any{"kind": "event", "event": typ, "properties": props, "subscribers": n})
}

func (o *opencode) banner() string {
	return "opencode stand-in " + version + " (server http://" + o.addr + ", session " + o.session + ")"
}

func (o *opencode) start() {}

func (o *opencode) end(string) { o.ln.Close() }

func (o *opencode) allowAll() bool {
	switch p := o.permission.(type) {
	case string:
		return p == "allow"
	case map[string]any:
		return p["bash"] == "allow" || p["*"] == "allow" && p["bash"] == nil
	}
	return false
}

func (o *opencode) turn(line string) bool {
	now := time.Now().UnixMilli()
	userID, asstID := newID("msg_", 12), newID("msg_", 12)
	o.emit("message.updated", map[string]any{"info": map[string]any{"id": userID, "sessionID": o.session, "role": "user",
		"time": map[string]any{"created": now}}})
	o.emit("message.part.updated", map[string]any{"part": map[string]any{"id": newID("prt_", 12), "sessionID": o.session,
		"messageID": userID, "type": "text", "text": line}})
	o.emit("session.status", map[string]any{"sessionID": o.session, "status": map[string]any{"type": "busy"}})
	asst := map[string]any{"id": asstID, "sessionID": o.session, "role": "assistant", "parentID": userID,
		"time": map[string]any{"created": time.Now().UnixMilli()}, "modelID": standinModel("standin"), "providerID": "standin", "mode": "build",
		"path": map[string]any{"cwd": o.a.cwd, "root": o.a.cwd}, "cost": 0,
		"tokens": map[string]any{"input": 0, "output": 0, "reasoning": 0, "cache": map[string]any{"read": 0, "write": 0}}}
	o.emit("message.updated", map[string]any{"info": asst})
	o.a.think(line)

	command := "echo " + shellQuote(line)
	callID := newID("call_", 12)
	output := line
	if wantsPermission(line) && !(respectBypass() && o.allowAll()) {
		permID := newID("per_", 12)
		if o.legacy {
			o.emit("permission.updated", map[string]any{"id": permID, "type": "bash", "pattern": []any{command},
				"sessionID": o.session, "messageID": asstID, "callID": callID, "title": command,
				"metadata": map[string]any{"command": command}, "time": map[string]any{"created": time.Now().UnixMilli()}})
		} else {
			o.emit("permission.asked", map[string]any{"id": permID, "sessionID": o.session, "permission": "bash",
				"patterns": []any{command}, "metadata": map[string]any{"command": command}, "always": []any{"echo *"},
				"tool": map[string]any{"messageID": asstID, "callID": callID}})
		}
		o.a.out.println("Permission required: bash " + command)
		ok := o.a.ask("Allow once?")
		reply := map[bool]string{true: "once", false: "reject"}[ok]
		if o.legacy {
			o.emit("permission.replied", map[string]any{"sessionID": o.session, "permissionID": permID, "response": reply})
		} else {
			o.emit("permission.replied", map[string]any{"sessionID": o.session, "requestID": permID, "reply": reply})
		}
		if !ok {
			o.a.out.println("The user rejected permission to use this specific tool call.")
			o.finish(asst, "")
			return true
		}
	}
	o.a.out.println("$ " + command)
	o.a.out.println(output)
	o.emit("message.part.updated", map[string]any{"part": map[string]any{"id": newID("prt_", 12), "sessionID": o.session,
		"messageID": asstID, "type": "tool", "tool": "bash", "callID": callID,
		"state": map[string]any{"status": "completed", "input": map[string]any{"command": command}, "output": output + "\n"}}})
	reply := "reply: " + line
	o.a.out.println(reply)
	o.emit("message.part.updated", map[string]any{"part": map[string]any{"id": newID("prt_", 12), "sessionID": o.session,
		"messageID": asstID, "type": "text", "text": reply}})
	o.finish(asst, reply)
	return true
}

// finish completes the assistant message and makes the session idle.
func (o *opencode) finish(asst map[string]any, reply string) {
	asst["time"].(map[string]any)["completed"] = time.Now().UnixMilli()
	asst["tokens"] = map[string]any{"input": 1000, "output": 10 + len(reply), "reasoning": 0,
		"cache": map[string]any{"read": 0, "write": 0}}
	o.emit("message.updated", map[string]any{"info": asst})
	o.emit("session.status", map[string]any{"sessionID": o.session, "status": map[string]any{"type": "idle"}})
	o.emit("session.idle", map[string]any{"sessionID": o.session})
}
