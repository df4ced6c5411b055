package pipeline

import (
	"fmt"
	"strings"

	"github.com/jackin-dev/jackin/linkstate"
	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/taskqueue"
)

// QueueSource makes the scanner of one of the manifest's task sources;
// fleet is the fleet as last loaded (a github source takes its github
// settings from it).
func (e Env) QueueSource(fleet func() *schema.Fleet) func(schema.TaskSource) (TaskScanner, error) {
	return func(src schema.TaskSource) (TaskScanner, error) {
		switch src.Kind {
		case schema.TaskSourceDir:
			return taskqueue.NewDirSource(src.Name, src.Dir), nil
		case schema.TaskSourceCommand:
			return taskqueue.NewCommandSource(src.Name, src.Command, src.WorkDir), nil
		case schema.TaskSourceGitHub:
			if src.GitHub == nil {
				return nil, fmt.Errorf("source %s: no repository", src.Name)
			}
			owner, repo, _ := strings.Cut(src.GitHub.Repo, "/")
			return e.IssueSource(fleet(), linkstate.IssueQuery{Name: src.Name, Owner: owner, Repo: repo,
				Labels: src.GitHub.Labels, Priorities: src.GitHub.Priorities, Every: src.Every})
		}
		return nil, fmt.Errorf("source %s: unknown kind %q", src.Name, src.Kind)
	}
}
