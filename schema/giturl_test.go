package schema

import (
	"strings"
	"testing"
)

// TestParseGitURL: the forms a checkout clones, their hosts and ports;
// refusals never quote a credential the src holds.
func TestParseGitURL(t *testing.T) {
	for src, want := range map[string]GitRemote{
		"https://git.example/a.git":     {Scheme: "https", Host: "git.example", Port: 443},
		"http://10.0.0.1:8080/a.git":    {Scheme: "http", Host: "10.0.0.1", Port: 8080},
		"ssh://git@git.example:2222/a":  {Scheme: "ssh", Host: "git.example", Port: 2222},
		"git@github.com:org/repo.git":   {Scheme: "ssh", Host: "github.com", Port: 22},
		"git://git.example/project.git": {Scheme: "git", Host: "git.example", Port: 9418},
	} {
		if got, err := ParseGitURL(src); err != nil || got != want {
			t.Errorf("%s: %+v %v, want %+v", src, got, err, want)
		}
	}
	for _, src := range []string{
		"https://bot:s3cret@git.example/a.git",
		"https://s3cret@git.example/a.git",
		"ftp://u:s3cret@h/x",
		"https://u:s3cret%zz@h/x",
		"user:s3cret@github.com:org/repo",
		"/srv/repo",
		"https://git.example:99999/a.git",
	} {
		_, err := ParseGitURL(src)
		if err == nil {
			t.Errorf("%s accepted", src)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: the error quotes the credential: %v", src, err)
		}
	}
}
