package main

import (
	"strings"
	"time"
)

// amp is the Amp stand-in. Amp documents no lifecycle hooks, so the only
// sign of its state is terminal activity: "thinking..." at once, the reply
// after the thinking delay (STANDIN_TURN_MS, 300 ms by default). A "perm"
// prompt asks on the terminal only (no hook, no event); --dangerously-allow-all
// skips the question when STANDIN_RESPECT_BYPASS=1.
type amp struct {
	a        *app
	allowAll bool
}

func newAmp(a *app) *amp {
	return &amp{a: a, allowAll: hasArg(a.args, "--dangerously-allow-all")}
}

func (m *amp) banner() string { return "Amp stand-in " + version }
func (m *amp) start()         {}
func (m *amp) end(string)     {}

func (m *amp) turn(line string) bool {
	m.a.think(line)
	command := "echo " + shellQuote(line)
	if wantsPermission(line) && !(respectBypass() && m.allowAll) {
		m.a.out.println("Amp wants to run: " + command)
		if !m.a.ask("Allow?") {
			m.a.out.println("Cancelled.")
			return false
		}
	}
	m.a.out.println("$ " + command)
	time.Sleep(m.a.turnDelay / 3)
	m.a.out.println(strings.TrimSpace(line))
	m.a.out.println("reply: " + line)
	return true
}
