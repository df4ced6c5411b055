package pipeline_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/supervisor"
	"github.com/jackin-dev/jackin/test/harness"
)

// TestPollLinks: watch's poller records what the agents published and
// asks GitHub for the due states with the token read from its host
// source; a hostile links file costs only its own instance.
func TestPollLinks(t *testing.T) {
	env := newEnv(t, newBackend())
	gh := harness.StartGitHub("tok-from-env")
	defer gh.Close()
	gh.SetIssue("o", "r", 4, "closed")
	t.Setenv("JK_TEST_GH_TOKEN", "tok-from-env")
	write := func(inst, body string) {
		dir := supervisor.HostDir(env.StateDir, "demo", inst)
		os.MkdirAll(dir, 0o755)
		if err := os.WriteFile(filepath.Join(dir, supervisor.LinksFile), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	issue := gh.Link("o", "r", "issues", 4)
	write("web", `{"v":1,"updated":"2026-12-01T10:00:00Z","links":[{"kind":"issue","url":"`+issue+`","firstSeen":"2026-12-01T09:00:00Z","lastSeen":"2026-12-01T09:30:00Z"},`+
		`{"kind":"pr","url":"https://x.example/a;rm -rf ~","firstSeen":"2026-12-01T09:00:00Z","lastSeen":"2026-12-01T09:30:00Z"}]}`)
	write("api", `{"v":1,"links":[`) // broken: api's problem only
	fleet := &schema.Fleet{Name: "demo", GitHub: &schema.GitHub{APIURL: gh.APIURL(), Token: schema.CredentialSource{Kind: schema.SourceEnv, Env: "JK_TEST_GH_TOKEN"}}}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		env.PollLinks(ctx, func() *schema.Fleet { return fleet }, time.Hour)
	}()
	var states map[string]string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		st, err := env.Store.LinkStates(t.Context(), "demo")
		if err != nil {
			t.Fatal(err)
		}
		if s, ok := st[issue]; ok {
			states = map[string]string{issue: s.State}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
	if states[issue] != "closed" {
		t.Fatalf("the poller never stored the issue's state: %v", states)
	}
	links, err := env.Store.Links(t.Context(), "demo")
	if err != nil || len(links["web"]) != 1 || links["web"][0].URL != issue || len(links["api"]) != 0 {
		t.Fatalf("recorded links %+v %v: want web's issue alone (the hostile value and api's broken file dropped)", links, err)
	}
	for _, r := range gh.Requests() {
		if !r.Authorized {
			t.Errorf("a request without the token from the host env: %+v", r)
		}
	}
	if n := len(gh.Requests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}
