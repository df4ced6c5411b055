package manifests

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/jackin-dev/jackin/schema"
)

// rawQueue is the fleet's queue as written.
type rawQueue struct {
	Sources []struct {
		Name   string `json:"name"`
		Dir    string `json:"dir"`
		GitHub *struct {
			Repo       string         `json:"repo"`
			Labels     []string       `json:"labels"`
			Priorities map[string]int `json:"priorities"`
			Every      string         `json:"every"`
		} `json:"github"`
		Command []string `json:"command"`
		Every   string   `json:"every"`
	} `json:"sources"`
	Instances       []string          `json:"instances"`
	Selector        map[string]string `json:"selector"`
	MaxParallel     int               `json:"maxParallel"`
	MaxAttempts     int               `json:"maxAttempts"`
	DispatchTimeout string            `json:"dispatchTimeout"`
	Gates           struct {
		BeforeDone string `json:"beforeDone"`
	} `json:"gates"`
}

// queue decodes and checks the fleet's queue from the exported manifest
// b, after the instances are resolved: each source exactly one kind with
// a name of its own, a dir that is a directory (relative to the manifest
// naming it), a command that is found, a github source only where the
// fleet declares github (its token), instances the fleet has, and either
// names or a selector that picks at least one of them.
func (l *loader) queue(b []byte, fleet *schema.Fleet) {
	var doc struct {
		Queue *rawQueue `json:"queue"`
	}
	_ = json.Unmarshal(b, &doc) // a mistyped part stays zero; the schema pass reported it
	raw := doc.Queue
	if raw == nil {
		return
	}
	errAt := func(p []string, format string, args ...any) {
		l.errAtPos(l.posOfPath(p), formatPath(p), fmt.Sprintf(format, args...))
	}
	q := &schema.Queue{MaxParallel: raw.MaxParallel, MaxAttempts: raw.MaxAttempts, ReviewBeforeDone: raw.Gates.BeforeDone == schema.GateReview,
		DispatchTimeout: schema.DefaultDispatchTimeout}
	if q.MaxAttempts == 0 {
		q.MaxAttempts = schema.DefaultMaxAttempts
	}
	if raw.DispatchTimeout != "" {
		if d, ok := l.duration(raw.DispatchTimeout, []string{"queue", "dispatchTimeout"}, errAt); ok {
			q.DispatchTimeout = d
		}
	}
	names := map[string]int{}
	for i, s := range raw.Sources {
		at := func(f ...string) []string { return append([]string{"queue", "sources", strconv.Itoa(i)}, f...) }
		if j, dup := names[s.Name]; dup && s.Name != "" {
			errAt(at("name"), "sources %d and %d are both named %q: a task's ID starts with its source's name, so each is unique", j, i, s.Name)
			continue
		}
		names[s.Name] = i
		src := schema.TaskSource{Name: s.Name}
		kinds := 0
		for _, set := range []bool{s.Dir != "", s.GitHub != nil, len(s.Command) > 0} {
			if set {
				kinds++
			}
		}
		if kinds != 1 {
			errAt(at(), "source %q must be exactly one of dir, github and command; it names %d", s.Name, kinds)
			continue
		}
		every := func(v string, p []string, def time.Duration) (time.Duration, bool) {
			if v == "" {
				return def, true
			}
			return l.duration(v, p, errAt)
		}
		ok := true
		switch {
		case s.Dir != "":
			src.Kind = schema.TaskSourceDir
			src.Every, ok = every(s.Every, at("every"), schema.DefaultDirEvery)
			dir, found := l.fleetPath(s.Dir, at("dir"), errAt)
			if !found {
				continue
			}
			switch st, err := os.Stat(dir); {
			case err != nil:
				errAt(at("dir"), "the task directory %s does not exist (or cannot be read): %v", dir, plainErr(err))
				continue
			case !st.IsDir():
				errAt(at("dir"), "the task directory %s is not a directory", dir)
				continue
			}
			src.Dir = dir
		case s.GitHub != nil:
			src.Kind = schema.TaskSourceGitHub
			if s.Every != "" {
				errAt(at("every"), "a github source's interval is github.every")
				continue
			}
			src.Every, ok = every(s.GitHub.Every, at("github", "every"), schema.DefaultGitHubEvery)
			if !l.data.LookupPath(selectorPath([]string{"github"})).Exists() {
				errAt(at("github"), "source %q reads GitHub issues, but the fleet declares no github (github: {token: {env: \"GITHUB_TOKEN\"}}): the issues are asked with that token", s.Name)
				continue
			}
			src.GitHub = &schema.GitHubTasks{Repo: s.GitHub.Repo, Labels: s.GitHub.Labels, Priorities: s.GitHub.Priorities}
		default:
			src.Kind = schema.TaskSourceCommand
			src.Every, ok = every(s.Every, at("every"), schema.DefaultCommandEvery)
			argv, found := l.fleetCommand(s.Command, at("command", "0"), errAt)
			if !found {
				continue
			}
			src.Command = argv
			src.WorkDir = l.opts.WorkDir
			if pos := l.posOfPath(at("command")); pos.IsValid() {
				if d, known := l.dirs[pos.Filename()]; known {
					src.WorkDir = d
				}
			}
		}
		if ok {
			q.Sources = append(q.Sources, src)
		}
	}
	switch {
	case len(raw.Instances) > 0 && raw.Selector != nil:
		errAt([]string{"queue", "selector"}, "queue names both instances and a selector: name the instances, or select them by label")
	case len(raw.Instances) > 0:
		seen := map[string]bool{}
		for i, n := range raw.Instances {
			p := []string{"queue", "instances", strconv.Itoa(i)}
			if _, ok := fleet.Instances[n]; !ok {
				errAt(p, "the fleet has no instance %q (it has %s)", n, instanceList(fleet))
				continue
			}
			if seen[n] {
				errAt(p, "instance %q is named twice", n)
				continue
			}
			seen[n] = true
			q.Instances = append(q.Instances, n)
		}
	case raw.Selector != nil:
		q.Selector = raw.Selector
		for n, inst := range fleet.Instances {
			if matchLabels(inst.Labels, raw.Selector) {
				q.Instances = append(q.Instances, n)
			}
		}
		if len(q.Instances) == 0 {
			errAt([]string{"queue", "selector"}, "the selector matches no instance of the fleet: no agent would take a task")
		}
	default:
		for n := range fleet.Instances {
			q.Instances = append(q.Instances, n)
		}
	}
	sort.Strings(q.Instances)
	fleet.Queue = q
}

// matchLabels reports whether labels carries every label of sel.
func matchLabels(labels, sel map[string]string) bool {
	for k, v := range sel {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// instanceList names the fleet's instances for an error.
func instanceList(f *schema.Fleet) string {
	if len(f.Instances) == 0 {
		return "none"
	}
	names := sortedKeys(f.Instances)
	return schema.Quote(names)
}

// duration parses a Go duration the schema's pattern let through; zero
// and negative ones are refused.
func (l *loader) duration(v string, p []string, errAt func([]string, string, ...any)) (time.Duration, bool) {
	d, err := time.ParseDuration(v)
	if err != nil {
		errAt(p, "%q is not a duration (\"30s\", \"5m\", \"1h\")", v)
		return 0, false
	}
	if d < 100*time.Millisecond {
		errAt(p, "%s is too short: at least 100ms", v)
		return 0, false
	}
	return d, true
}
