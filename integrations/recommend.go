package integrations

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"syscall"
	"time"

	"cuelang.org/go/cue/ast"
)

// MaxRecommendationSize is the largest recommendation file read.
const MaxRecommendationSize = 8 << 10

// RecommendationFiles are the names a repository recommends integrations
// in, looked for in this order; the first present is used.
var RecommendationFiles = []string{".jackin/integrations.cue", ".jackin/integrations.yaml", ".jackin/integrations.yml"}

// Recommendation is one repository's recommendation file.
type Recommendation struct {
	// Path is the file's host path; SHA256 its content's digest.
	Path   string   `json:"path"`
	SHA256 string   `json:"sha256"`
	Names  []string `json:"names"`
}

// FindRecommendation reads the recommendation file of the repository or
// directory at dir, if any (nil, nil when there is none). dir's content
// is hostile (an agent may write it): the file is opened inside dir
// through an os.Root (no symlink leads out), must be a regular file of at
// most MaxRecommendationSize bytes, and may hold one field, integrations,
// a list of built-in names: anything else is refused at file:line.
func FindRecommendation(dir string) (*Recommendation, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, nil // no such directory (yet): nothing recommended
	}
	defer root.Close()
	for _, name := range RecommendationFiles {
		f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		p := filepath.Join(dir, name)
		if err != nil {
			return nil, &Error{File: p, Msg: fmt.Sprintf("cannot open: %v", err)}
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return nil, &Error{File: p, Msg: err.Error()}
		}
		if !fi.Mode().IsRegular() {
			return nil, &Error{File: p, Msg: "not a regular file"}
		}
		src, err := io.ReadAll(io.LimitReader(f, MaxRecommendationSize+1))
		if err != nil {
			return nil, &Error{File: p, Msg: err.Error()}
		}
		if len(src) > MaxRecommendationSize {
			return nil, &Error{File: p, Msg: fmt.Sprintf("larger than %d bytes: a recommendation names integrations only", MaxRecommendationSize)}
		}
		return ParseRecommendation(p, src)
	}
	return nil, nil
}

// ParseRecommendation reads a recommendation file's content.
func ParseRecommendation(filename string, src []byte) (*Recommendation, error) {
	sum := sha256.Sum256(src)
	rec := &Recommendation{Path: filename, SHA256: hex.EncodeToString(sum[:])}
	f, err := parse(filename, src)
	if err != nil {
		return nil, err
	}
	top, err := fields(filename, f.Decls, "")
	if err != nil {
		return nil, err
	}
	for _, fl := range top {
		name := label(fl)
		if name != "integrations" {
			if _, bad := forbidden[name]; bad {
				return nil, refusal(filename, fl, name)
			}
			if name == "mounts" || name == "env" || name == "setEnv" || name == "caches" {
				return nil, errAt(filename, fl.Label, name, "a recommendation names built-in integrations only; what an integration adds is jackin's, never a repository's")
			}
			return nil, errAt(filename, fl.Label, name, "field %q is not allowed in a recommendation; the only field is integrations, a list of names (%v)", name, Names)
		}
		names, err := stringList(filename, fl.Value, name)
		if err != nil {
			return nil, errAt(filename, fl.Value, name, "a list of integration names only (%v)", Names)
		}
		for i, n := range names {
			if Builtin(n) == nil {
				return nil, errAt(filename, listElt(fl, i), fmt.Sprintf("integrations[%d]", i), "%q is not a built-in integration (%v)", n, Names)
			}
		}
		slices.Sort(names)
		rec.Names = slices.Compact(names)
	}
	return rec, nil
}

// Approval is one approved recommendation file.
type Approval struct {
	Path       string    `json:"path"`
	SHA256     string    `json:"sha256"`
	Names      []string  `json:"names"`
	ApprovedAt time.Time `json:"approvedAt"`
}

// Approvals are the operator's approvals, by file path.
type Approvals map[string]Approval

// ApprovalsFile is where approvals are kept, in the state dir (never a
// mount source: no agent can approve anything).
func ApprovalsFile(stateDir string) string {
	return filepath.Join(stateDir, "approvals", "integrations.json")
}

// LoadApprovals reads the approvals (none when the file is missing).
func LoadApprovals(stateDir string) (Approvals, error) {
	b, err := os.ReadFile(ApprovalsFile(stateDir))
	if errors.Is(err, fs.ErrNotExist) {
		return Approvals{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read integration approvals: %w", err)
	}
	var list []Approval
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("read integration approvals %s: %w", ApprovalsFile(stateDir), err)
	}
	out := Approvals{}
	for _, a := range list {
		out[a.Path] = a
	}
	return out, nil
}

// Approved reports whether rec, exactly as it is now, was approved.
func (as Approvals) Approved(rec *Recommendation) bool {
	a, ok := as[rec.Path]
	return ok && a.SHA256 == rec.SHA256
}

// Approve records rec's approval, replacing the file's earlier one.
func Approve(stateDir string, rec *Recommendation, now time.Time) error {
	as, err := LoadApprovals(stateDir)
	if err != nil {
		return err
	}
	as[rec.Path] = Approval{Path: rec.Path, SHA256: rec.SHA256, Names: rec.Names, ApprovedAt: now.UTC()}
	list := make([]Approval, 0, len(as))
	for _, a := range as {
		list = append(list, a)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Path < list[j].Path })
	b, _ := json.MarshalIndent(list, "", "  ")
	p := ApprovalsFile(stateDir)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("record the approval: %w", err)
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("record the approval: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("record the approval: %w", err)
	}
	return nil
}

// listElt is the i-th element of a list field's value (the field when it
// is not a list).
func listElt(fl *ast.Field, i int) ast.Node {
	if l, ok := fl.Value.(*ast.ListLit); ok && i < len(l.Elts) {
		return l.Elts[i]
	}
	return fl
}
