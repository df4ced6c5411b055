package runtimes

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/jackin-dev/jackin/agentstate"
)

// WatchServer follows a runtime that serves its events (OpenCode's
// server: GET /event, server-sent events of {"type", "properties"}) and
// reports them as state events until ctx ends. It reconnects while the
// runtime starts or restarts its server.
func (r Runtime) WatchServer(ctx context.Context, emit func(agentstate.Event)) {
	if r.State != StateServer {
		return
	}
	url := "http://127.0.0.1:" + OpenCodePort + "/event"
	client := &http.Client{} // no timeout: the stream is long-lived; ctx ends it
	connected := false
	emitOnce := func(ev agentstate.Event) {
		// server.connected starts the session once, not on every
		// reconnect in the middle of a turn.
		if ev.Kind == agentstate.EventSessionStart {
			if connected {
				return
			}
			connected = true
		}
		emit(ev)
	}
	for ctx.Err() == nil {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return
		}
		req.Header.Set("Accept", "text/event-stream")
		resp, err := client.Do(req)
		if err == nil {
			if resp.StatusCode == http.StatusOK {
				readEvents(resp, emitOnce)
			}
			resp.Body.Close()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// openCodeEvent is the part of an OpenCode bus event jackin reads.
type openCodeEvent struct {
	Type       string `json:"type"`
	Properties struct {
		Status struct {
			Type string `json:"type"` // idle, busy, retry
		} `json:"status"`
		// permission.updated (before 1.1) and permission.asked (after).
		Type       string `json:"type"`
		Permission string `json:"permission"`
		Title      string `json:"title"`
	} `json:"properties"`
}

func readEvents(resp *http.Response, emit func(agentstate.Event)) {
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data:")
		if !ok {
			continue
		}
		for _, ev := range TranslateServerEvent([]byte(strings.TrimSpace(data))) {
			emit(ev)
		}
	}
}

// TranslateServerEvent turns one OpenCode bus event into state events.
func TranslateServerEvent(data []byte) []agentstate.Event {
	var e openCodeEvent
	if json.Unmarshal(data, &e) != nil {
		return nil
	}
	one := func(k agentstate.EventKind, d string) []agentstate.Event {
		return []agentstate.Event{{Kind: k, Detail: cleanDetail(d)}}
	}
	switch e.Type {
	case "server.connected":
		return one(agentstate.EventSessionStart, "")
	case "session.status":
		switch e.Properties.Status.Type {
		case "busy", "retry":
			return one(agentstate.EventPrompt, "")
		case "idle":
			return one(agentstate.EventTurnEnd, "")
		}
	case "session.idle":
		return one(agentstate.EventTurnEnd, "")
	case "permission.asked":
		return one(agentstate.EventPermission, e.Properties.Permission)
	case "permission.updated":
		d := e.Properties.Type
		if d == "" {
			d = e.Properties.Title
		}
		return one(agentstate.EventPermission, d)
	case "question.asked":
		return one(agentstate.EventPermission, "question")
	case "permission.replied", "question.replied", "question.rejected":
		return one(agentstate.EventTool, "")
	}
	return nil
}
