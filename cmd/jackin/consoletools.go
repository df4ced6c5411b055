package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"sort"
	"strings"

	"github.com/jackin-dev/jackin/console"
	"github.com/jackin-dev/jackin/pipeline"
	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/store"
)

// Tools are the manifest's operator tools (none with --fleet: the tools
// are the reviewed manifest's).
func (s *consoleSource) Tools() []console.Tool {
	if s.manifest == nil {
		return nil
	}
	var out []console.Tool
	for _, name := range slices.Sorted(maps.Keys(s.manifest.Tools)) {
		t := s.manifest.Tools[name]
		out = append(out, console.Tool{Name: name, Key: t.Key, Prompt: t.Prompt != ""})
	}
	return out
}

// ToolCommand is jackin tool NAME INSTANCE with the console's manifest.
func (s *consoleSource) ToolCommand(name, instance string) (*exec.Cmd, error) {
	if s.manifest == nil || slices.Contains(s.files, "-") {
		return nil, errors.New("tools need the manifest's files (jackin console -f PATH)")
	}
	args := []string{"--state-dir", s.a.global.stateDir, "tool"}
	for _, f := range s.files {
		args = append(args, "-f", f)
	}
	return exec.Command(s.exe, append(args, name, instance)...), nil
}

// OpenCommand runs a handler for the instance: handlers.web on its
// newest http(s) link, handlers.review on its checkout.
func (s *consoleSource) OpenCommand(what, instance string) (*exec.Cmd, error) {
	if s.manifest == nil {
		return nil, errors.New("handlers need the manifest (jackin console -f PATH)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), consoleCallTimeout)
	defer cancel()
	argv, err := s.a.handlerArgv(ctx, s.store(ctx), s.manifest, what, instance)
	if err != nil {
		return nil, err
	}
	return exec.Command(argv[0], argv[1:]...), nil
}

// handlerArgv is the command a handler runs for an instance: web with
// {url} its newest http(s) link (a pull request, else an issue, else a
// repository), review with {path} its first checkout. The values are
// single argv elements, never a shell's input unless the handler makes
// them one (and then only of the links' shell-inert charset).
func (a *app) handlerArgv(ctx context.Context, st *store.Store, fleet *schema.Fleet, what, instance string) ([]string, error) {
	var argv []string
	var placeholder, value string
	switch what {
	case console.OpenWeb:
		argv, placeholder = fleet.Handlers.Web, "{url}"
		if len(argv) == 0 {
			return nil, errors.New("the fleet declares no handlers.web")
		}
		links, err := pipeline.Env{StateDir: a.global.stateDir, Store: st, Log: a.log}.FleetLinks(ctx, fleet.Name)
		if err != nil {
			return nil, err
		}
		items := make([]linkItem, 0, len(links[instance]))
		for _, l := range links[instance] {
			items = append(items, linkItem{Kind: l.Kind, URL: l.URL, LastSeen: l.LastSeen})
		}
		for _, l := range bestFirst(items) {
			if strings.HasPrefix(l.URL, "https://") || strings.HasPrefix(l.URL, "http://") {
				value = l.URL
				break
			}
		}
		if value == "" {
			return nil, fmt.Errorf("%s has no http(s) link to open", instance)
		}
	case console.OpenReview:
		argv, placeholder = fleet.Handlers.Review, "{path}"
		if len(argv) == 0 {
			return nil, errors.New("the fleet declares no handlers.review")
		}
		var paths []string
		if st != nil {
			recs, err := st.Checkouts(ctx, fleet.Name)
			if err != nil {
				return nil, err
			}
			for _, c := range recs {
				if c.Instance == instance {
					paths = append(paths, c.Path)
				}
			}
		}
		if len(paths) == 0 {
			return nil, fmt.Errorf("%s has no worktree or clone checkout to review", instance)
		}
		sort.Strings(paths)
		value = paths[0]
	default:
		return nil, fmt.Errorf("unknown handler %q", what)
	}
	out := make([]string, len(argv))
	for i, arg := range argv {
		out[i] = strings.ReplaceAll(arg, placeholder, value)
	}
	return out, nil
}

// workHandler is jackin work --review / --web: the manifest's handler for
// one instance, run on this machine.
func (a *app) workHandler(ctx context.Context, files []string, instance string, review bool) error {
	if len(files) == 0 || instance == "" {
		return exitWith(exitInvalid, errors.New("--review and --web run the manifest's handlers for one instance: give -f PATH and INSTANCE"))
	}
	fleet, err := a.loadFleet(ctx, files)
	if err != nil {
		return err
	}
	if _, ok := fleet.Instances[instance]; !ok {
		return exitWith(exitInvalid, fmt.Errorf("the fleet %s has no instance %q", fleet.Name, instance))
	}
	st, err := a.openStoreReadOnly(ctx)
	if err != nil {
		return err
	}
	if st != nil {
		defer st.Close()
	}
	what := console.OpenWeb
	if review {
		what = console.OpenReview
	}
	argv, err := a.handlerArgv(ctx, st, fleet, what, instance)
	if err != nil {
		return exitWith(exitInvalid, err)
	}
	c := exec.CommandContext(ctx, argv[0], argv[1:]...)
	c.Stdin, c.Stdout, c.Stderr = a.stdin, a.stdout, a.stderr
	if err := c.Run(); err != nil {
		return exitWith(exitChanges, fmt.Errorf("handlers.%s: %w", what, err))
	}
	return nil
}
