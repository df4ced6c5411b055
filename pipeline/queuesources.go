package pipeline

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackin-dev/jackin/credentials"
	"github.com/jackin-dev/jackin/linkstate"
	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/taskqueue"
)

// IssueSource is the queue's github source: the issues of q's repository
// through the fleet's github settings (API URL, token), its GitHub cache
// and rate limit in the store, as the link states use them. The token is
// read on the host when the source first asks GitHub and stays in memory.
func (e Env) IssueSource(fleet *schema.Fleet, q linkstate.IssueQuery) (taskqueue.Source, error) {
	if fleet.GitHub == nil {
		return nil, fmt.Errorf("github source %s: the fleet declares no github settings (its token)", q.Name)
	}
	if e.Store == nil {
		return nil, errors.New("github source " + q.Name + ": needs the state store")
	}
	src := fleet.GitHub.Token
	p, err := linkstate.New(linkstate.Config{
		Fleet: fleet.Name, APIURL: fleet.GitHub.APIURL, Store: e.Store,
		TokenFunc: func(ctx context.Context) (string, error) {
			v, err := (&credentials.Resolver{}).Resolve(ctx, src)
			return string(v), err
		},
	})
	if err != nil {
		return nil, fmt.Errorf("github source %s: %w", q.Name, err)
	}
	return p.IssueSource(q)
}
