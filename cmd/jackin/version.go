package main

import (
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/jackin-dev/jackin/schema"
)

// version and commit, when set at link time, win over what the Go toolchain
// recorded in the binary:
//
//	go build -ldflags "-X main.version=v1.2.3 -X main.commit=abc1234" ./cmd/jackin
var (
	version string
	commit  string
	// sourceID is make build's: the commit and a hash of uncommitted
	// changes. It is only read back from the link flags Go records
	// (linuxexe compares them between jackin and its Linux build).
	sourceID string
)

var _ = sourceID

// versionInfo is the document `jackin version -o json` prints.
type versionInfo struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Version is jackin's module version: a release tag, a pseudo-version
	// of the commit it was built from, or "devel".
	Version string `json:"version"`
	// Commit is the VCS revision it was built from, "unknown" when not
	// recorded (go run, go test, a build outside the repository).
	Commit string `json:"commit"`
	// Modified is true when the work tree had uncommitted changes.
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"goVersion"`
	// SchemaAPIVersion is the apiVersion of the manifests this binary reads.
	SchemaAPIVersion string `json:"schemaAPIVersion"`
	Platform         string `json:"platform"`
}

// buildVersion reads the version from the link-time overrides and the
// build info the Go toolchain embeds.
func buildVersion(info *debug.BuildInfo, ok bool, linkVersion, linkCommit string) versionInfo {
	v := versionInfo{
		APIVersion:       "jackin.dev/v1alpha1",
		Kind:             "Version",
		Version:          "devel",
		Commit:           "unknown",
		GoVersion:        runtime.Version(),
		SchemaAPIVersion: schema.APIVersion,
		Platform:         runtime.GOOS + "/" + runtime.GOARCH,
	}
	if ok && info != nil {
		if mv := info.Main.Version; mv != "" && mv != "(devel)" {
			v.Version = mv
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Commit = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	if linkVersion != "" {
		v.Version = linkVersion
	}
	if linkCommit != "" {
		v.Commit, v.Modified = linkCommit, false
	}
	return v
}

func newVersionCommand(a *app) *cobra.Command {
	var out outputFlag
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print jackin's version, commit, Go version and manifest apiVersion",
		Long: `version prints, one line each: jackin's version (a release tag, the
pseudo-version of the commit it was built from, or "devel"), the commit
("(modified)" when the work tree had uncommitted changes; "unknown" when the
build recorded none), the Go version it was built with, the platform, and
the apiVersion of the manifests it reads. It needs no engine.

-o json prints one versioned document (apiVersion jackin.dev/v1alpha1, kind
Version).`,
		Example: `  jackin version
  jackin version -o json | jq -r .commit`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			info, ok := debug.ReadBuildInfo()
			v := buildVersion(info, ok, version, commit)
			if out.format != "text" {
				return writeStructured(a.stdout, out.format, v)
			}
			c := v.Commit
			if v.Modified {
				c += " (modified)"
			}
			t := &table{}
			t.add("version:", v.Version)
			t.add("commit:", c)
			t.add("go:", v.GoVersion)
			t.add("platform:", v.Platform)
			t.add("apiVersion:", v.SchemaAPIVersion)
			t.write(a.stdout)
			return nil
		},
	}
	out.register(cmd, "text", "text", "json", "yaml")
	return cmd
}
