package supervisor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/worklinks"
)

// A prompt is typed into an idle agent and refused, with the state named,
// for a working one. A shell runtime's state comes from its terminal:
// printing is working, silence is idle.
func TestPromptIdleOnlyAndTerminalLinks(t *testing.T) {
	// Reads a line, then prints a tag split over two writes and lines
	// (the terminal fallback's stream), then keeps printing for a while
	// (working) and reads again.
	script := `read a; printf '<jackin:pr>https://github.com/acme/app/'; sleep 0.2; printf 'pull/5</jackin:pr>\n'; ` +
		`i=0; while [ $i -lt 30 ]; do echo busy $i; i=$((i+1)); sleep 0.1; done; read b; echo "got:$b"`
	ts := startSupervisor(t, "/bin/sh", "-c", script)
	waitFor(t, "idle", func() bool { return ts.status(t).State == "idle" })

	c := ts.conn(t)
	// The operator's prompt holds a tag: its echo is not the agent's.
	if _, err := c.Prompt("first <jackin:issue>https://github.com/acme/app/issues/9</jackin:issue>"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	waitFor(t, "working", func() bool { return ts.status(t).State == "working" })
	c = ts.conn(t)
	_, err := c.Prompt("second")
	c.Close()
	if err == nil || !strings.Contains(err.Error(), "the agent is working") {
		t.Fatalf("a prompt to a working agent: %v", err)
	}
	waitFor(t, "idle again", func() bool { return ts.status(t).State == "idle" })
	c = ts.conn(t)
	if _, err := c.Prompt("third"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	waitFor(t, "the third prompt", func() bool { return strings.Contains(ts.out.String(), "got:third") })
	if strings.Contains(ts.out.String(), "got:second") {
		t.Fatal("the refused prompt was typed")
	}
	var links []worklinks.Link
	waitFor(t, "the links file", func() bool {
		links, err = ReadLinks(ts.dir)
		return err == nil && len(links) > 0
	})
	if len(links) != 1 || links[0].Kind != worklinks.KindPR || links[0].URL != "https://github.com/acme/app/pull/5" {
		t.Fatalf("links %+v", links)
	}
	// The agent ends after the third prompt: a supervisor left running
	// would reap the next test's agent (PID 1 reaps every child).
	<-ts.code
}

// The links file is the agent's to write: ReadLinks keeps only what the
// tag protocol allows.
func TestReadLinksHostile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, LinksFile), []byte(`{"v":1,"links":[
		{"kind":"pr","url":"https://github.com/a/b/pull/1","firstSeen":"2026-01-01T00:00:00Z","lastSeen":"2999-01-01T00:00:00Z"},
		{"kind":"pr","url":"https://github.com/a/b/pull/1"},
		{"kind":"pr","url":"https://x/$(id)"},
		{"kind":"shell","url":"/bin/sh"},
		{"kind":"repo","url":"/work/app\u001b[2J"}]}`), 0o644)
	ls, err := ReadLinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 1 || ls[0].URL != "https://github.com/a/b/pull/1" || ls[0].LastSeen.Year() > 2100 {
		t.Fatalf("%+v", ls)
	}
	os.Remove(filepath.Join(dir, LinksFile))
	os.Symlink("/etc/passwd", filepath.Join(dir, LinksFile))
	if _, err := ReadLinks(dir); err == nil {
		t.Fatal("a link was followed")
	}
}

func TestStandbyPromptTypedLater(t *testing.T) {
	ts := startSupervisor(t, "/bin/sh", "-c", `read a; echo "got:$a"; sleep 30`)
	waitFor(t, "idle", func() bool { return ts.status(t).State == "idle" })
	c := ts.conn(t)
	defer c.Close()
	if err := c.Standby(); err != nil {
		t.Fatal(err)
	}
	// Longer than the first line's read deadline would allow a plain
	// request: a standby waits for its prompt.
	time.Sleep(300 * time.Millisecond)
	if strings.Contains(ts.out.String(), "got:") {
		t.Fatal("typed before the prompt was sent")
	}
	if _, err := c.PromptLater("later"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the prompt", func() bool { return strings.Contains(ts.out.String(), "got:later") })
	// A standby followed by anything but a prompt is refused.
	c2 := ts.conn(t)
	defer c2.Close()
	if err := c2.Standby(); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Status(); err == nil || !strings.Contains(err.Error(), "standby is followed by a prompt") {
		t.Fatalf("status after standby: %v", err)
	}
}
