package manifests

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/schema"
)

const queueHead = fleetHead + "instances: {a: {role: image: \"x\", labels: pool: \"q\"}, b: role: image: \"x\", c: {role: image: \"x\", labels: pool: \"q\"}}\n"

func TestQueueLoad(t *testing.T) {
	fx := newFixture(t, map[string]string{
		"tasks/": "",
		"f.cue": queueHead +
			"github: token: env: \"GITHUB_TOKEN\"\n" +
			"queue: {\n" +
			"  sources: [\n" +
			"    {name: \"files\", dir: \"tasks\"},\n" +
			"    {name: \"issues\", github: {repo: \"acme/api\", labels: [\"agent\"], priorities: {urgent: 10}, every: \"30s\"}},\n" +
			"    {name: \"tracker\", command: [\"sh\", \"-c\", \"true\"], every: \"5s\"},\n" +
			"  ]\n" +
			"  instances: [\"c\", \"a\"]\n" +
			"  maxParallel: 2\n" +
			"  maxAttempts: 5\n" +
			"  dispatchTimeout: \"30s\"\n" +
			"  gates: beforeDone: \"review\"\n" +
			"}\n",
	})
	f := fx.mustLoad(t, "f.cue")
	q := f.Queue
	if q == nil {
		t.Fatal("no queue")
	}
	if !reflect.DeepEqual(q.Instances, []string{"a", "c"}) || q.MaxParallel != 2 || q.MaxAttempts != 5 || !q.ReviewBeforeDone || q.DispatchTimeout != 30*time.Second {
		t.Errorf("queue %+v", q)
	}
	if len(q.Sources) != 3 {
		t.Fatalf("sources %+v", q.Sources)
	}
	if s := q.Sources[0]; s.Kind != schema.TaskSourceDir || s.Dir != filepath.Join(fx.dir, "tasks") || s.Every != schema.DefaultDirEvery {
		t.Errorf("dir source %+v", s)
	}
	if s := q.Sources[1]; s.Kind != schema.TaskSourceGitHub || s.GitHub.Repo != "acme/api" || s.GitHub.Priorities["urgent"] != 10 || s.Every != 30*time.Second || len(s.GitHub.Labels) != 1 {
		t.Errorf("github source %+v", s)
	}
	if s := q.Sources[2]; s.Kind != schema.TaskSourceCommand || s.Command[0] != "sh" || s.WorkDir != fx.dir || s.Every != 5*time.Second {
		t.Errorf("command source %+v", s)
	}
	if !q.Takes("a") || q.Takes("b") {
		t.Error("Takes")
	}
}

func TestQueueInstancesDefaultAndSelector(t *testing.T) {
	fx := newFixture(t, map[string]string{
		"tasks/":  "",
		"all.cue": queueHead + "queue: sources: [{name: \"t\", dir: \"tasks\"}]\n",
		"sel.cue": queueHead + "queue: {sources: [{name: \"t\", dir: \"tasks\"}], selector: pool: \"q\"}\n",
	})
	all := fx.mustLoad(t, "all.cue").Queue
	if !reflect.DeepEqual(all.Instances, []string{"a", "b", "c"}) || all.MaxAttempts != schema.DefaultMaxAttempts || all.MaxParallel != 0 || all.ReviewBeforeDone || all.DispatchTimeout != schema.DefaultDispatchTimeout {
		t.Errorf("no instances named: %+v", all)
	}
	sel := fx.mustLoad(t, "sel.cue").Queue
	if !reflect.DeepEqual(sel.Instances, []string{"a", "c"}) {
		t.Errorf("selector: %+v", sel.Instances)
	}
	if f := fx.mustLoad(t, "all.cue"); f.Queue == nil {
		t.Error("queue dropped")
	}
}

func TestQueueRefusals(t *testing.T) {
	runRejects(t, []rejectCase{
		{name: "unknown instance", files: map[string]string{"tasks/": "", "f.cue": queueHead + "queue: {sources: [{name: \"t\", dir: \"tasks\"}], instances: [\"a\", «\"zz\"]}\n"},
			path: "queue.instances[1]", msg: `the fleet has no instance "zz"`},
		{name: "duplicate source", files: map[string]string{"tasks/": "", "f.cue": queueHead + "queue: sources: [{name: \"t\", dir: \"tasks\"}, {«name: \"t\", dir: \"tasks\"}]\n"},
			path: "queue.sources[1].name", msg: `sources 0 and 1 are both named "t"`},
		{name: "max parallel zero", files: map[string]string{"tasks/": "", "f.cue": queueHead + "queue: {sources: [{name: \"t\", dir: \"tasks\"}], «maxParallel: 0}\n"},
			path: "queue.maxParallel", msg: "0 is out of range: it must be at least 1"},
		{name: "two kinds", files: map[string]string{"tasks/": "", "f.cue": queueHead + "queue: sources: [«{name: \"t\", dir: \"tasks\", command: [\"sh\"]}]\n"},
			path: "queue.sources[0]", msg: "must be exactly one of dir, github and command; it names 2"},
		{name: "no kind", src: queueHead + "queue: sources: [«{name: \"t\"}]\n",
			path: "queue.sources[0]", msg: "it names 0"},
		{name: "dir missing", src: queueHead + "queue: sources: [{name: \"t\", «dir: \"nope\"}]\n",
			path: "queue.sources[0].dir", msg: "does not exist"},
		{name: "github without token", src: queueHead + "queue: sources: [{name: \"gh\", «github: repo: \"acme/api\"}]\n",
			path: "queue.sources[0].github", msg: "the fleet declares no github"},
		{name: "bad repo", src: queueHead + "github: token: env: \"T\"\nqueue: sources: [{name: \"gh\", github: «repo: \"acme\"}]\n",
			path: "queue.sources[0].github.repo", msg: "invalid value"},
		{name: "command not found", src: queueHead + "queue: sources: [{name: \"c\", command: [«\"no-such-jackin-cmd\"]}]\n",
			path: "queue.sources[0].command[0]", msg: "is not found"},
		{name: "bad every", src: queueHead + "queue: sources: [{name: \"c\", command: [\"sh\"], «every: \"soon\"}]\n",
			path: "queue.sources[0].every", msg: `"soon" is not a duration`},
		{name: "short every", src: queueHead + "queue: sources: [{name: \"c\", command: [\"sh\"], «every: \"1ms\"}]\n",
			path: "queue.sources[0].every", msg: "too short"},
		{name: "names and selector", files: map[string]string{"tasks/": "", "f.cue": queueHead + "queue: {sources: [{name: \"t\", dir: \"tasks\"}], instances: [\"a\"], «selector: pool: \"q\"}\n"},
			path: "queue.selector", msg: "both instances and a selector"},
		{name: "selector matches none", files: map[string]string{"tasks/": "", "f.cue": queueHead + "queue: {sources: [{name: \"t\", dir: \"tasks\"}], «selector: pool: \"none\"}\n"},
			path: "queue.selector", msg: "matches no instance"},
		{name: "no sources", src: queueHead + "queue: «sources: []\n",
			path: "queue.sources", msg: "incompatible list lengths"},
		{name: "unknown gate", files: map[string]string{"tasks/": "", "f.cue": queueHead + "queue: {sources: [{name: \"t\", dir: \"tasks\"}], gates: «beforeDone: \"ci\"}\n"},
			path: "queue.gates.beforeDone", msg: ""},
		{name: "unknown field", files: map[string]string{"tasks/": "", "f.cue": queueHead + "queue: {sources: [{name: \"t\", dir: \"tasks\"}], «parallel: 2}\n"},
			path: "queue.parallel", msg: `field "parallel" is not allowed here`},
	})
}
