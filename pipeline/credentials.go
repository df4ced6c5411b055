package pipeline

import (
	"context"
	"sort"

	"github.com/jackin-dev/jackin/credentials"
	"github.com/jackin-dev/jackin/reconciler"
)

// hasCredentials reports whether any desired instance has credentials.
func hasCredentials(d *reconciler.Desired) bool {
	for i := range d.Instances {
		if d.Instances[i].Credentials != nil {
			return true
		}
	}
	return false
}

// ResolveCredentials reads the credentials of the desired instances from
// their host sources (see reconciler.ResolveCredentials). writable says the
// command may create the state dir's digest key; a read-only one uses a
// key of its own when there is none yet. An instance whose source cannot
// be read carries the error (its action fails); an error here is only a
// key that cannot be read or made.
func ResolveCredentials(ctx context.Context, stateDir string, d *reconciler.Desired, writable bool) (*reconciler.Desired, error) {
	if !hasCredentials(d) {
		return d, nil
	}
	key, err := credentials.LoadKey(stateDir, writable)
	if err != nil {
		return nil, err
	}
	return reconciler.ResolveCredentials(ctx, d, &credentials.Resolver{Key: key}), nil
}

// writeCredentials writes the file and proxy deliveries before a plan is
// executed; an instance whose credentials cannot be written fails its
// action (and only its). Refreshed values are logged by name.
func (e Env) writeCredentials(ctx context.Context, d *reconciler.Desired, p *reconciler.Plan) {
	failed := e.writeAndLog(ctx, d)
	for i := range p.Actions {
		act := &p.Actions[i]
		if e, ok := failed[act.Instance]; ok && act.Err == nil {
			act.Err = e
			act.Reasons = append([]string{e.Error()}, act.Reasons...)
		}
	}
}

// writeAndLog writes the file and proxy deliveries of d, logs the values
// refreshed (by name), copies those of instances on remote engines to
// their hosts, and returns why each instance failed.
func (e Env) writeAndLog(ctx context.Context, d *reconciler.Desired) map[string]error {
	changed, failed := reconciler.WriteCredentials(d)
	for _, name := range sortedNames(changed) {
		e.Log.Info("credentials refreshed in place (no recreate)", "instance", name, "credentials", changed[name])
	}
	for name, err := range e.carryRefreshed(ctx, d, changed) {
		if failed[name] == nil {
			failed[name] = err
		}
	}
	return failed
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// CredentialRefresh is a credential change apply makes by rewriting a file
// (file and proxy delivery; no recreate).
type CredentialRefresh struct {
	Instance    string   `json:"instance"`
	Credentials []string `json:"credentials"`
}

// pendingCredentials lists, for the instances the plan does not create or
// recreate, the file and proxy credentials whose delivered value is not
// the source's.
func pendingCredentials(res *Result) []CredentialRefresh {
	skip := map[string]bool{}
	for _, act := range res.Plan.Actions {
		if act.Type == reconciler.ActionCreate || act.Err != nil {
			skip[act.Instance] = true
		}
	}
	var out []CredentialRefresh
	for i := range res.Desired.Instances {
		in := &res.Desired.Instances[i]
		if skip[in.Name] {
			continue
		}
		if names := in.CredentialsPending(); len(names) > 0 {
			out = append(out, CredentialRefresh{Instance: in.Name, Credentials: names})
		}
	}
	return out
}

// ReadCredentials is watch's credential step, once per pass before it is
// planned: read every source again (writable: heal mode may create the
// digest key). It writes nothing: WriteCredentials does, under the fleet
// lock, when the pass heals. An instance whose credentials cannot be read
// fails its action.
func (e Env) ReadCredentials(ctx context.Context, d *reconciler.Desired, writable bool) *reconciler.Desired {
	if !hasCredentials(d) {
		return d
	}
	out, err := ResolveCredentials(ctx, e.StateDir, d, writable)
	if err != nil {
		e.Log.Error(err, "read credentials")
		out = reconciler.FailCredentials(d, err)
	}
	return out
}

// WriteCredentials writes the file and proxy deliveries a pass read, and
// marks the instances it could not write for as failed.
func (e Env) WriteCredentials(ctx context.Context, d *reconciler.Desired) *reconciler.Desired {
	failed := e.writeAndLog(ctx, d)
	if len(failed) == 0 {
		return d
	}
	cp := *d
	cp.Instances = append([]reconciler.DesiredInstance(nil), d.Instances...)
	for i := range cp.Instances {
		if e, ok := failed[cp.Instances[i].Name]; ok {
			cp.Instances[i].CredentialErr = e
		}
	}
	return &cp
}
