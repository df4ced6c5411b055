package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/store"
	"github.com/jackin-dev/jackin/test/harness"
)

// Work links (issue 19) through the real binary: runtime stand-ins write
// the tag protocol in their replies (Claude Code's transcript; Amp, which
// has none jackin reads, on its terminal), the supervisors publish the
// links, jackin get shows them with the state a GitHub stand-in serves
// (checked token, ETags, rate-limit headers): a PR open with passing
// checks and an approval, an issue open; asked again before it is due
// costs no request, forced it costs only 304s.

type wlState struct {
	Kind   string `json:"kind"`
	State  string `json:"state"`
	Checks string `json:"checks"`
	Review string `json:"review"`
	Error  string `json:"error"`
}

type wlLink struct {
	Kind      string    `json:"kind"`
	URL       string    `json:"url"`
	FirstSeen time.Time `json:"firstSeen"`
	LastSeen  time.Time `json:"lastSeen"`
	State     *wlState  `json:"state"`
}

type wlItem struct {
	Instance string   `json:"instance"`
	Links    []wlLink `json:"links"`
}

// wlLinks is each instance's links from `jackin get -o json ARGS...`.
func (e *env) wlLinks(t *testing.T, args ...string) map[string][]wlLink {
	t.Helper()
	out := map[string][]wlLink{}
	for _, it := range getItems[wlItem](t, e, args...) {
		out[it.Instance] = it.Links
	}
	return out
}

// wlSay types line into the instance's agent and waits for its reply.
func (e *env) wlSay(t *testing.T, instance, line string) {
	t.Helper()
	e.agtWait(t, instance, "idle,done", 60*time.Second)
	p := e.agtAttach(t, instance)
	p.waitText("stand-in", 15*time.Second)
	p.send(line + "\r")
	p.waitText("reply: "+line[:10], 20*time.Second)
	e.agtWait(t, instance, "done,idle", 20*time.Second)
	p.send("\x10\x11") // detach
	if code := p.waitExit(10 * time.Second); code != 0 {
		t.Fatalf("attach %s: exit %d\n%s", instance, code, p.String())
	}
}

func TestWorkLinksAndGitHubState(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	img := agtRuntimeImage(t)
	const token = "e2e-gh-token-5f1c"
	gh := harness.StartGitHub(token)
	defer gh.Close()
	gh.SetPull("acme", "app", 7, harness.GitHubPull{State: "open", SHA: "c0ffee", CheckRuns: [][2]string{{"completed", "success"}},
		Statuses: []string{"success"}, Reviews: [][2]string{{"ann", "APPROVED"}}})
	gh.SetIssue("acme", "app", 3, "open")
	pr, issue := gh.Link("acme", "app", "pull", 7), gh.Link("acme", "app", "issues", 3)
	tokenFile := e.writeFile("gh-token", token+"\n")
	envOut := filepath.Join(e.dir, "tool-env")
	webOut := filepath.Join(e.dir, "web-opened")
	m := e.manifest(fmt.Sprintf(`github: {token: file: %s, apiURL: %s}
tools: {
	status: {key: "s", prompt: "status please"}
	again: prompt: "second ask"
	envdump: exec: ["sh", "-c", "env > \"$0\"", %s]
}
handlers: web: ["sh", "-c", "echo \"$0\" > \"$1\"", "{url}", %s]
instances: {
	cl: {role: image: %[5]q, agent: "claude", env: STANDIN_TURN_MS: "6000"}
	amp: {role: image: %[5]q, agent: "amp", env: STANDIN_TURN_MS: "100"}
}`, agtCUE(tokenFile), agtCUE(gh.APIURL()), agtCUE(envOut), agtCUE(webOut), img))
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply")

	// The stand-ins reply "reply: LINE": the tag is in the agent's own text.
	e.wlSay(t, "cl", "on it <jackin:pr>"+pr+"</jackin:pr> and <jackin:repo>/home/agent/app</jackin:repo>")
	e.wlSay(t, "amp", "filed <multicode:issue>"+issue+"</multicode:issue>")

	var links map[string][]wlLink
	if !agtUntil(60*time.Second, func() bool {
		links = e.wlLinks(t, "-f", m)
		return len(links["cl"]) == 2 && len(links["amp"]) == 1
	}) {
		b, _ := os.ReadFile(filepath.Join(e.stateDir, "agents", e.fleet, "cl", "links.json"))
		t.Fatalf("get never showed the links; it shows %+v\ncl links.json: %s\n%s", links, b, e.agtDiag("amp"))
	}
	byURL := map[string]wlLink{}
	for _, ls := range links {
		for _, l := range ls {
			byURL[l.URL] = l
		}
	}
	if l := byURL[pr]; l.Kind != "pr" || l.State == nil || l.State.State != "open" || l.State.Checks != "passing" || l.State.Review != "approved" {
		t.Errorf("the PR link: %+v (state %+v)", l, l.State)
	}
	if l := byURL[issue]; l.Kind != "issue" || l.State == nil || l.State.State != "open" || l.State.Error != "" {
		t.Errorf("the issue link (from amp's terminal): %+v (state %+v)", l, l.State)
	}
	if l := byURL["/home/agent/app"]; l.Kind != "repo" || l.State != nil || l.FirstSeen.IsZero() || l.LastSeen.Before(l.FirstSeen) {
		t.Errorf("the repo link: %+v", l)
	}
	reqs := gh.Requests()
	for _, r := range reqs {
		if !r.Authorized || r.Status != 200 {
			t.Errorf("GitHub stand-in: %+v", r)
		}
	}
	// The PR: pull, check runs, status, reviews; the issue: one.
	if len(reqs) != 5 {
		t.Errorf("%d requests to GitHub, want 5: %+v", len(reqs), reqs)
	}

	// Nothing is due yet: get asks nothing.
	e.wlLinks(t, "-f", m)
	if n := len(gh.Requests()); n != len(reqs) {
		t.Errorf("a get with nothing due made %d requests", n-len(reqs))
	}
	// Forced, with nothing changed: every request is conditional and
	// answered 304 (no rate limit spent); the states stand.
	links = e.wlLinks(t, "-f", m, "--refresh-links")
	forced := gh.Requests()[len(reqs):]
	if len(forced) != 5 {
		t.Errorf("--refresh-links made %d requests, want 5: %+v", len(forced), forced)
	}
	for _, r := range forced {
		if r.Status != 304 || r.IfNoneMatch == "" {
			t.Errorf("an unchanged item cost a full request: %+v", r)
		}
	}
	for _, l := range links["cl"] {
		if l.URL == pr && (l.State == nil || l.State.Review != "approved") {
			t.Errorf("after the 304s the PR reads %+v", l.State)
		}
	}
	// A change is seen at the next forced refresh.
	gh.SetPull("acme", "app", 7, harness.GitHubPull{State: "closed", Merged: true, SHA: "c0ffee"})
	links = e.wlLinks(t, "-f", m, "--refresh-links")
	for _, l := range links["cl"] {
		if l.URL == pr && (l.State == nil || l.State.State != "merged") {
			t.Errorf("the merged PR reads %+v", l.State)
		}
	}

	// The wide table's LINKS column.
	r := e.jackin("get", "-f", m, "-o", "wide")
	mustCode(t, r, 0, "get -o wide")
	if !strings.Contains(r.stdout, "LINKS") || !strings.Contains(r.stdout, "pr acme/app#7 merged (+1)") || !strings.Contains(r.stdout, "issue acme/app#3 open") {
		t.Errorf("get -o wide lacks the links:\n%s", r.stdout)
	}

	// The token went to GitHub only: not into the agents' containers, the
	// state dir or any output.
	for _, inst := range []string{"cl", "amp"} {
		if env := agtInspect(t, e.name(inst), "{{json .Config.Env}}"); strings.Contains(env, token) {
			t.Errorf("%s: the GitHub token is in the container's env", inst)
		}
	}
	if out, _ := exec.Command("grep", "-rl", token, e.stateDir).CombinedOutput(); len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("the GitHub token is written in the state dir: %s", out)
	}
	if strings.Contains(r.stdout+r.stderr, token) {
		t.Error("the GitHub token is in get's output")
	}

	// Operator tools. An exec tool runs on the host with the instance's
	// identity and links in its environment, and no secret.
	mustCode(t, e.jackin("tool", "-f", m, "envdump", "cl"), 0, "tool envdump")
	b, err := os.ReadFile(envOut)
	if err != nil {
		t.Fatal(err)
	}
	toolEnv := string(b)
	for _, want := range []string{"JACKIN_FLEET=" + e.fleet + "\n", "JACKIN_INSTANCE=cl\n", "JACKIN_TOOL=envdump\n", "JACKIN_PR=" + pr + "\n",
		"JACKIN_REPO=/home/agent/app\n", "JACKIN_ISSUE=\n", "JACKIN_CHECKOUTS=\n"} {
		if !strings.Contains(toolEnv, want) {
			t.Errorf("the exec tool's environment lacks %q:\n%s", want, toolEnv)
		}
	}
	if !strings.Contains(toolEnv, "JACKIN_LINKS=") || !strings.Contains(toolEnv, pr) || strings.Contains(toolEnv, token) {
		t.Errorf("the exec tool's links, or a secret in its environment:\n%s", toolEnv)
	}
	// A prompt tool reaches an idle agent...
	e.agtWait(t, "cl", "idle,done", 30*time.Second)
	r = e.jackin("tool", "-f", m, "status", "cl")
	mustCode(t, r, 0, "tool status")
	if !strings.Contains(r.stdout, "typed its prompt into cl") {
		t.Errorf("tool status: %s", r)
	}
	// ... and is refused, naming the state, while it works on it.
	e.agtWait(t, "cl", "working", 10*time.Second)
	r = e.jackin("tool", "-f", m, "again", "cl")
	mustCode(t, r, 1, "tool again while the agent works")
	if !strings.Contains(r.stderr, "the agent is working") {
		t.Errorf("the refusal does not name the state: %s", r)
	}
	e.agtWait(t, "cl", "done,idle", 30*time.Second)
	logs := e.jackin("logs", "--fleet", e.fleet, "cl")
	if !strings.Contains(logs.stdout, "reply: status please") || strings.Contains(logs.stdout, "second ask") {
		t.Errorf("the agent's terminal: the first prompt answered, the refused one never typed:\n%s", logs.stdout)
	}
	r = e.jackin("tool", "-f", m, "nope", "cl")
	mustCode(t, r, 2, "an unknown tool")
	if !strings.Contains(r.stderr, `declares no tool "nope" (it declares again, envdump, status)`) {
		t.Errorf("unknown tool: %s", r)
	}

	// Tools are part of the reviewed manifest: apply recorded them, diff
	// shows a change (and exits 1) until the next apply.
	mustCode(t, e.jackin("diff", "-f", m), 0, "diff after apply")
	b, _ = os.ReadFile(m)
	if err := os.WriteFile(m, []byte(strings.Replace(string(b), `"status please"`, `"status and push please"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	r = e.jackin("diff", "-f", m)
	mustCode(t, r, 1, "diff after a tool change")
	if !strings.Contains(r.stdout, `~ tool status: types "status and push please" into the agent (key s); was: types "status please"`) {
		t.Errorf("diff does not show the tool change:\n%s", r)
	}
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply the tool change")
	mustCode(t, e.jackin("diff", "-f", m), 0, "diff after applying the tool change")
	r = e.jackin("explain", "-f", m, "cl")
	mustCode(t, r, 0, "explain")
	if !strings.Contains(r.stdout, "again, status (key s): operator tools that type their prompt") {
		t.Errorf("explain does not list the prompt tools:\n%s", r.stdout)
	}

	// jackin work runs the handlers: web on the newest link; review needs
	// a checkout (and a handler).
	mustCode(t, e.jackin("work", "-f", m, "cl", "--web"), 0, "work --web")
	if b, _ := os.ReadFile(webOut); strings.TrimSpace(string(b)) != pr {
		t.Errorf("handlers.web opened %q, want %s", b, pr)
	}
	r = e.jackin("work", "-f", m, "cl", "--review")
	mustCode(t, r, 2, "work --review without a handler")
	if !strings.Contains(r.stderr, "declares no handlers.review") {
		t.Errorf("work --review: %s", r)
	}

	// The console: the PR/CI/REVIEW column, and the tool's key types into
	// the selected agent (amp, the first row).
	e.agtWait(t, "amp", "idle,done", 30*time.Second)
	p := e.consoleTerm(t, "-f", m)
	p.waitText("PR/CI/REVIEW", 20*time.Second)
	p.waitText("pr acme/app#7 merged", 10*time.Second)
	p.send("s")
	// The status line is redrawn in pieces: the agent's terminal says it.
	var ampLogs result
	if !agtUntil(30*time.Second, func() bool {
		ampLogs = e.jackin("logs", "--fleet", e.fleet, "amp")
		return strings.Contains(ampLogs.stdout, "reply: status and push please")
	}) {
		t.Errorf("the console's prompt tool never reached amp:\n%s\nconsole:\n%q", ampLogs.stdout, p.String())
	}
	time.Sleep(200 * time.Millisecond)
	p.send("q")
	if code := p.waitExit(10 * time.Second); code != 0 {
		t.Fatalf("q: jackin console exited %d; terminal:\n%q", code, p.String())
	}

	// jackin watch polls too: a link amp adds now is asked by a running
	// watch (no get), and get then shows the state without asking again.
	gh.SetIssue("acme", "app", 5, "closed")
	issue5 := gh.Link("acme", "app", "issues", 5)
	e.wlSay(t, "amp", "also <jackin:issue>"+issue5+"</jackin:issue>")
	if !agtUntil(20*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(e.stateDir, "agents", e.fleet, "amp", "links.json"))
		return strings.Contains(string(b), issue5)
	}) {
		t.Fatalf("amp never published %s", issue5)
	}
	before := len(gh.Requests())
	w := e.startWatch(nil, "-f", m)
	// Stopped once the state is stored (the stand-in answering is not
	// enough: a watch stopped in between stores nothing).
	st, err := store.Open(t.Context(), e.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if !agtUntil(30*time.Second, func() bool {
		states, err := st.LinkStates(t.Context(), e.fleet)
		return err == nil && states[issue5].State == "closed"
	}) {
		t.Errorf("the running watch never stored the state of %s: %+v", issue5, gh.Requests()[before:])
	}
	asked := false
	for _, r := range gh.Requests()[before:] {
		asked = asked || (strings.HasSuffix(r.Path, "/repos/acme/app/issues/5") && r.Status == 200)
	}
	if !asked {
		t.Errorf("the watch did not ask GitHub for %s: %+v", issue5, gh.Requests()[before:])
	}
	_ = w.cmd.Process.Signal(os.Interrupt)
	select {
	case <-w.done:
	case <-time.After(20 * time.Second):
		t.Fatal("watch did not stop on SIGINT")
	}
	n := len(gh.Requests())
	found := false
	for _, l := range e.wlLinks(t, "-f", m)["amp"] {
		if l.URL == issue5 {
			found = true
			if l.State == nil || l.State.State != "closed" {
				t.Errorf("get shows %s as %+v, want the closed state watch stored", issue5, l.State)
			}
		}
	}
	if !found || len(gh.Requests()) != n {
		t.Errorf("get: %s listed %v, %d new requests (want none)", issue5, found, len(gh.Requests())-n)
	}
}
