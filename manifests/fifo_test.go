//go:build unix

package manifests

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// loadWithin loads paths (absolute, or "-") and fails the test if Load has
// not returned within limit: the attack is an open(2) that blocks for ever.
func loadWithin(t *testing.T, opts Options, limit time.Duration, paths ...string) (*Result, Diagnostics) {
	t.Helper()
	type res struct {
		r   *Result
		err error
	}
	done := make(chan res, 1)
	go func() {
		r, err := Load(context.Background(), paths, opts)
		done <- res{r, err}
	}()
	select {
	case got := <-done:
		if got.err == nil {
			return got.r, nil
		}
		var diags Diagnostics
		if !errors.As(got.err, &diags) {
			t.Fatalf("want Diagnostics, got %T: %v", got.err, got.err)
		}
		return nil, diags
	case <-time.After(limit):
		t.Fatalf("Load(%v) has not returned after %s", paths, limit)
		return nil, nil
	}
}

func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
}

// A FIFO as the manifest (-f fifo.yaml), alone or among a directory's
// files, is refused at once, naming it; -f - still reads stdin.
func TestLoadRefusesAFIFOManifest(t *testing.T) {
	fx := newFixture(t, map[string]string{"dir/a.cue": inst(`agent: "shell"`)})
	fifo := filepath.Join(fx.dir, "fifo.yaml")
	mkfifo(t, fifo)
	_, diags := loadWithin(t, fx.opts(), 5*time.Second, fifo)
	expect(t, diags, fifo, "", "not a regular file (a FIFO)")

	inDir := filepath.Join(fx.dir, "dir", "b.yaml")
	mkfifo(t, inDir)
	_, diags = loadWithin(t, fx.opts(), 5*time.Second, filepath.Join(fx.dir, "dir"))
	expect(t, diags, inDir, "", "not a regular file (a FIFO)")

	// A symlink to a FIFO, a socket, a device: refused the same way.
	link := filepath.Join(fx.dir, "link.cue")
	if err := os.Symlink(fifo, link); err != nil {
		t.Fatal(err)
	}
	_, diags = loadWithin(t, fx.opts(), 5*time.Second, link)
	expect(t, diags, link, "", "not a regular file (a FIFO)")
	sock := filepath.Join(fx.dir, "sock.cue")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, diags = loadWithin(t, fx.opts(), 5*time.Second, sock)
	expect(t, diags, sock, "", "not a regular file (a socket)")
	dev := filepath.Join(fx.dir, "null.json")
	if err := os.Symlink("/dev/null", dev); err != nil {
		t.Fatal(err)
	}
	_, diags = loadWithin(t, fx.opts(), 5*time.Second, dev)
	expect(t, diags, dev, "", "not a regular file (a device)")

	// Stdin stays the way to read a stream, a pipe included.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_, _ = io.WriteString(pw, inst(`agent: "shell"`))
		pw.Close()
	}()
	opts := fx.opts()
	opts.Stdin = pr
	if res, diags := loadWithin(t, opts, 5*time.Second, "-"); diags != nil || res.Fleet.Instances["a"].Agent != "shell" {
		t.Fatalf("-f - from a pipe: %v", diags)
	}
}

// A FIFO (or a socket, or a device) as a credential's file source is
// refused by validate at its file:line:col: reading it at apply would
// block for ever.
func TestLoadRefusesANonRegularCredentialFile(t *testing.T) {
	for _, tc := range []struct {
		kind  string
		setup func(t *testing.T, path string)
	}{
		{"a FIFO", func(t *testing.T, p string) { mkfifo(t, p) }},
		{"a socket", func(t *testing.T, p string) {
			ln, err := net.Listen("unix", p)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
		}},
		{"a device", func(t *testing.T, p string) {
			if err := os.Symlink("/dev/zero", p); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			fx := newFixture(t, map[string]string{"f.cue": inst("credentials: GH_TOKEN: from: «file: \"tok\"")})
			tok := filepath.Join(fx.dir, "tok")
			tc.setup(t, tok)
			_, diags := loadWithin(t, fx.opts(), 5*time.Second, filepath.Join(fx.dir, "f.cue"))
			if diags == nil {
				t.Fatal("the manifest was accepted")
			}
			expect(t, diags, fx.where, "instances.a.credentials.GH_TOKEN.from.file", "the file source "+tok+" is not a regular file ("+tc.kind+")")
			for _, d := range diags {
				if strings.Contains(d.Msg, "does not exist") {
					t.Errorf("a second message: %v", d)
				}
			}
		})
	}
}
