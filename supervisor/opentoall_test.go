package supervisor

import (
	"os"
	"path/filepath"
	"testing"
)

func TestOpenToAll(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "home-store", "kept")
	if err := OpenToAll(dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fi.Mode()&(os.ModePerm|os.ModeSticky), os.ModePerm|os.ModeSticky; got != want {
		t.Errorf("mode %v, want %v", got, want)
	}

	// A link in the directory's place is refused; what it names keeps its mode.
	target := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "kept")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := OpenToAll(link); err == nil {
		t.Errorf("OpenToAll through a link: no error")
	}
	if fi, err := os.Stat(target); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the link's target: %v %v, want 0700 untouched", fi.Mode(), err)
	}
}
