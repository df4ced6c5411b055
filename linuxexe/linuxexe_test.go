package linuxexe

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeELF writes a minimal 64-bit little-endian ELF executable header for
// machine, with a PT_INTERP program header when dynamic.
func writeELF(t *testing.T, path string, machine elf.Machine, dynamic bool) {
	t.Helper()
	var b bytes.Buffer
	progs := []elf.ProgType{elf.PT_LOAD}
	if dynamic {
		progs = append(progs, elf.PT_INTERP)
	}
	hdr := elf.Header64{
		Type: uint16(elf.ET_EXEC), Machine: uint16(machine), Version: uint32(elf.EV_CURRENT),
		Phoff: 64, Ehsize: 64, Phentsize: 56, Phnum: uint16(len(progs)),
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS], hdr.Ident[elf.EI_DATA], hdr.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	must(t, binary.Write(&b, binary.LittleEndian, hdr))
	for _, p := range progs {
		must(t, binary.Write(&b, binary.LittleEndian, elf.Prog64{Type: uint32(p), Off: 0, Filesz: 1, Memsz: 1}))
	}
	must(t, os.WriteFile(path, b.Bytes(), 0o755))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestCheckELF(t *testing.T) {
	dir := t.TempDir()
	static, dynamic, arm, text := filepath.Join(dir, "static"), filepath.Join(dir, "dynamic"), filepath.Join(dir, "arm"), filepath.Join(dir, "text")
	writeELF(t, static, elf.EM_X86_64, false)
	writeELF(t, dynamic, elf.EM_X86_64, true)
	writeELF(t, arm, elf.EM_AARCH64, false)
	must(t, os.WriteFile(text, []byte("#!/bin/sh\n"), 0o755))
	if err := checkELF(static, "amd64"); err != nil {
		t.Errorf("static amd64 for amd64: %v", err)
	}
	if err := checkELF(arm, "arm64"); err != nil {
		t.Errorf("static arm64 for arm64: %v", err)
	}
	for _, c := range []struct{ path, arch, want string }{
		{dynamic, "amd64", "dynamically linked"},
		{arm, "amd64", "built for EM_AARCH64"},
		{static, "arm64", "built for EM_X86_64"},
		{text, "amd64", "not a Linux (ELF) executable"},
		{filepath.Join(dir, "missing"), "amd64", "not a Linux (ELF) executable"},
	} {
		err := checkELF(c.path, c.arch)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("checkELF(%s, %s) = %v, want %q", filepath.Base(c.path), c.arch, err, c.want)
		}
	}
}

// The test binary is a Go build of this module: the same build as itself,
// and gofmt (another program) is not.
func TestSameBuild(t *testing.T) {
	self, err := os.Executable()
	must(t, err)
	if err := sameBuild(self, self); err != nil {
		t.Errorf("the test binary against itself: %v", err)
	}
	gofmt := filepath.Join(filepath.Dir(filepath.Dir(os.Args[0])), "gofmt")
	for _, p := range []string{filepath.Join(os.Getenv("GOROOT"), "bin", "gofmt"), "/usr/local/go/bin/gofmt", gofmt} {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if err := sameBuild(p, self); err == nil || !strings.Contains(err.Error(), "another build of jackin") {
			t.Errorf("gofmt taken for this build: %v", err)
		}
		break
	}
	text := filepath.Join(t.TempDir(), "text")
	must(t, os.WriteFile(text, []byte("x"), 0o755))
	if err := sameBuild(text, self); err == nil || !strings.Contains(err.Error(), "not a Go build") {
		t.Errorf("a non-Go file: %v", err)
	}
}

// find's order: Env, then the executable itself on Linux, then the
// companion beside it; each error says what to do.
func TestFind(t *testing.T) {
	dir := t.TempDir()
	self := filepath.Join(dir, "jackin")
	comp := filepath.Join(dir, CompanionName("arm64"))
	good := map[string]bool{}
	check := func(path, arch, s string) error {
		if s != self {
			t.Errorf("check got self %s", s)
		}
		if !good[path] {
			return errors.New(path + " refused")
		}
		return nil
	}
	linux := host{goos: "linux", goarch: "arm64", self: self}
	mac := host{goos: "darwin", goarch: "arm64", self: self}

	// A static Linux jackin is its own.
	good[self] = true
	if p, err := find(linux, check); err != nil || p != self {
		t.Errorf("linux, static self: %s %v", p, err)
	}
	// On macOS it never is, and without a companion the error names the
	// file to put there and how to build it.
	_, err := find(mac, check)
	if err == nil || !strings.Contains(err.Error(), comp+" is missing") || !strings.Contains(err.Error(), "GOOS=linux GOARCH=arm64") || !strings.Contains(err.Error(), Env) {
		t.Errorf("mac without a companion: %v", err)
	}
	// The companion, checked.
	must(t, os.WriteFile(comp, nil, 0o755))
	if _, err := find(mac, check); err == nil || !strings.Contains(err.Error(), comp+" refused") {
		t.Errorf("mac with a refused companion: %v", err)
	}
	good[comp] = true
	if p, err := find(mac, check); err != nil || p != comp {
		t.Errorf("mac with a companion: %s %v", p, err)
	}
	// A dynamic Linux jackin uses the companion too.
	good[self] = false
	if p, err := find(linux, check); err != nil || p != comp {
		t.Errorf("linux, dynamic self with a companion: %s %v", p, err)
	}
	must(t, os.Remove(comp))
	if _, err := find(linux, check); err == nil || !strings.Contains(err.Error(), self+" refused") || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Errorf("linux, dynamic self, no companion: %v", err)
	}
	// Env wins, and is checked.
	other := filepath.Join(dir, "elsewhere")
	mac.override, linux.override = other, other
	if _, err := find(mac, check); err == nil || !strings.Contains(err.Error(), Env+"="+other) {
		t.Errorf("a refused %s: %v", Env, err)
	}
	good[other], good[self] = true, true
	if p, err := find(linux, check); err != nil || p != other {
		t.Errorf("%s on linux: %s %v", Env, p, err)
	}
}
