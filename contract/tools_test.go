package contract

import (
	"bytes"
	"strings"
	"testing"

	"github.com/jackin-dev/jackin/schema"
)

// TestPromptToolsListed: explain names the tools that can type into the
// agent, and no exec tool (those run on the host).
func TestPromptToolsListed(t *testing.T) {
	f := fleetOf("edge", map[string]schema.Instance{"a": instance()})
	doc, err := Build(f, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if pt := doc.Instances[0].Identity.Supervisor.PromptTools; len(pt) != 0 {
		t.Fatalf("prompt tools without tools: %+v", pt)
	}
	f.Tools = map[string]schema.Tool{
		"summarize": {Name: "summarize", Key: "s", Prompt: "Summarize your work."},
		"open":      {Name: "open", Exec: []string{"xdg-open", "x"}},
		"again":     {Name: "again", Prompt: "Try again."},
	}
	doc, err = Build(f, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	pt := doc.Instances[0].Identity.Supervisor.PromptTools
	if len(pt) != 2 || pt[0].Name != "again" || pt[1].Name != "summarize" || pt[1].Key != "s" || pt[1].Prompt != "Summarize your work." {
		t.Fatalf("prompt tools %+v", pt)
	}
	var b bytes.Buffer
	if err := WriteText(&b, doc); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "prompt tools") || !strings.Contains(b.String(), "again, summarize (key s): operator tools that type their prompt") || strings.Contains(b.String(), "xdg-open") {
		t.Errorf("explain's text:\n%s", b.String())
	}
	if strings.Contains(b.String(), "work links") {
		t.Error("work links described without github")
	}
	f.GitHub = &schema.GitHub{APIURL: "https://ghe.example.com/api/v3/", Token: schema.CredentialSource{Kind: schema.SourceEnv, Env: "GH_TOKEN"}}
	doc, err = Build(f, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	gh := doc.Instances[0].Identity.Supervisor.GitHub
	if !strings.Contains(gh, "ask https://ghe.example.com/api/v3/") || !strings.Contains(gh, "token from env GH_TOKEN (read on the host, never delivered to the agent)") {
		t.Errorf("github: %q", gh)
	}
}

// TestQueueInstanceExplained: an instance of the queue is told where its
// prompts come from; one outside it is not.
func TestQueueInstanceExplained(t *testing.T) {
	f := fleetOf("edge", map[string]schema.Instance{"a": instance()})
	f.Queue = &schema.Queue{Instances: []string{"a"}, ReviewBeforeDone: true, Sources: []schema.TaskSource{
		{Name: "files", Kind: schema.TaskSourceDir, Dir: "/work/tasks"},
		{Name: "gh", Kind: schema.TaskSourceGitHub, GitHub: &schema.GitHubTasks{Repo: "acme/app", Labels: []string{"agent"}}},
	}}
	doc, err := Build(f, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteText(&b, doc); err != nil {
		t.Fatal(err)
	}
	want := "takes tasks from the fleet's queue: jackin watch types each task's prompt into the agent when it is idle or done, one task at a time, from files (task files in /work/tasks), gh (open issues of acme/app labelled agent): whoever can write those sources writes this agent's prompts; a finished task waits for jackin queue approve"
	if got := doc.Instances[0].Identity.Supervisor.Queue; got != want {
		t.Errorf("queue %q, want %q", got, want)
	}
	if !strings.Contains(b.String(), "task queue     takes tasks from the fleet's queue") {
		t.Errorf("explain's text lacks the queue:\n%s", b.String())
	}
	f.Queue.Instances = []string{"other"}
	if doc, _ = Build(f, nil, Options{}); doc.Instances[0].Identity.Supervisor.Queue != "" {
		t.Errorf("an instance outside the queue: %q", doc.Instances[0].Identity.Supervisor.Queue)
	}
}
