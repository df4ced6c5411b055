package orbstack

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"
)

// pipeSave is a host engine's export the test writes by hand.
type pipeSave struct {
	r *io.PipeReader
	w *io.PipeWriter
}

func newPipeSave() *pipeSave {
	r, w := io.Pipe()
	return &pipeSave{r: r, w: w}
}

func (p *pipeSave) save(ctx context.Context, _ string) (io.ReadCloser, error) {
	go func() {
		<-ctx.Done()
		p.r.CloseWithError(ctx.Err())
	}()
	return p.r, nil
}

// readAsync reads r to its end in the background.
func readAsync(r io.Reader) <-chan struct {
	b   []byte
	err error
} {
	ch := make(chan struct {
		b   []byte
		err error
	}, 1)
	go func() {
		b, err := io.ReadAll(r)
		ch <- struct {
			b   []byte
			err error
		}{b, err}
	}()
	return ch
}

// TestSpoolIsReadWhileTheExportRuns: a transfer that starts before the
// export ends gets every byte, in order, and ends when the export does;
// the spool leaves no file behind, even while it is open.
func TestSpoolIsReadWhileTheExportRuns(t *testing.T) {
	dir := t.TempDir()
	src := newPipeSave()
	sp, err := startSpool(context.Background(), dir, "role:v1", src.save)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.close()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("the spool left %d file(s) in its directory; want none (unlinked at once)", len(ents))
	}
	if _, err := src.w.Write([]byte("first ")); err != nil {
		t.Fatal(err)
	}
	got := readAsync(sp.reader(context.Background()))
	select {
	case r := <-got:
		t.Fatalf("the reader ended before the export did: %q, %v", r.b, r.err)
	case <-time.After(50 * time.Millisecond):
	}
	want := append([]byte("first "), bytes.Repeat([]byte("x"), 1<<20)...)
	if _, err := src.w.Write(want[len("first "):]); err != nil {
		t.Fatal(err)
	}
	src.w.Close()
	select {
	case r := <-got:
		if r.err != nil || !bytes.Equal(r.b, want) {
			t.Fatalf("read %d bytes, err %v; want the %d bytes exported and no error", len(r.b), r.err, len(want))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the reader did not end with the export")
	}
	// A second reader starts from the beginning of a finished export.
	b, err := io.ReadAll(sp.reader(context.Background()))
	if err != nil || !bytes.Equal(b, want) {
		t.Fatalf("second read: %d bytes, %v", len(b), err)
	}
}

// TestSpoolReportsTheExportsFailure: a reader of an export that broke ends
// with that error (not a short image), and failed reports it for the
// fallback to a direct stream.
func TestSpoolReportsTheExportsFailure(t *testing.T) {
	src := newPipeSave()
	sp, err := startSpool(context.Background(), t.TempDir(), "role:v1", src.save)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.close()
	got := readAsync(sp.reader(context.Background()))
	src.w.Write([]byte("partial"))
	boom := errors.New("engine went away")
	src.w.CloseWithError(boom)
	r := <-got
	if !errors.Is(r.err, boom) || string(r.b) != "partial" {
		t.Fatalf("read %q, %v; want %q then the export's error", r.b, r.err, "partial")
	}
	if !errors.Is(sp.failed(), boom) {
		t.Fatalf("failed() = %v; want the export's error", sp.failed())
	}

	failing := func(context.Context, string) (io.ReadCloser, error) { return nil, boom }
	sp2, err := startSpool(context.Background(), t.TempDir(), "role:v1", failing)
	if err != nil {
		t.Fatal(err)
	}
	defer sp2.close()
	if _, err := io.ReadAll(sp2.reader(context.Background())); !errors.Is(err, boom) {
		t.Fatalf("read of an export that never began: %v; want its error", err)
	}
}

// TestSpoolEndsWithItsReaderOrItsAction: a reader whose context ends
// stops waiting; close stops the export (no goroutine or host stream
// outlives the action) and a later read fails instead of hanging.
func TestSpoolEndsWithItsReaderOrItsAction(t *testing.T) {
	src := newPipeSave()
	sp, err := startSpool(context.Background(), t.TempDir(), "role:v1", src.save)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	got := readAsync(sp.reader(ctx))
	cancel()
	select {
	case r := <-got:
		if !errors.Is(r.err, context.Canceled) {
			t.Fatalf("read after its context ended: %v; want context.Canceled", r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a reader whose context ended kept waiting")
	}
	closed := make(chan struct{})
	go func() { sp.close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("close did not stop the export")
	}
	if _, err := src.w.Write([]byte("late")); err == nil {
		t.Fatal("the host's export stream was still read after close")
	}
	if _, err := io.ReadAll(sp.reader(context.Background())); err == nil {
		t.Fatal("a read of a closed spool succeeded")
	}
}

// TestFreeSpaceIsRead: the spool's room check reads the file system's
// free space where jackin runs (Linux here, macOS for OrbStack itself).
func TestFreeSpaceIsRead(t *testing.T) {
	free, ok := freeSpace(t.TempDir())
	if !ok || free == 0 {
		t.Fatalf("freeSpace(temp dir) = %d, %v; want some bytes read", free, ok)
	}
	if _, ok := freeSpace("/no/such/dir"); ok {
		t.Fatal("freeSpace of a missing directory claimed to read it")
	}
}

// TestSpoolsAreHandedOnOrGivenUp: the driver's bookkeeping of the exports
// it began for new machines: StageImages keeps the ones whose images the
// machine lacks and drops the rest, of that machine only; a spool handed
// to a transfer is no longer the driver's; every closed spool gives its
// reserved room back, once.
func TestSpoolsAreHandedOnOrGivenUp(t *testing.T) {
	d := &Driver{spools: map[machineImage]*imageSpool{}}
	var srcs []*pipeSave
	open := func(machine, ref string, size int64) *imageSpool {
		src := newPipeSave()
		srcs = append(srcs, src)
		sp, err := startSpool(context.Background(), t.TempDir(), ref, src.save)
		if err != nil {
			t.Fatal(err)
		}
		d.spoolReserved += size
		sp.release = func() { d.releaseSpool(size) }
		d.spools[machineImage{machine, ref}] = sp
		return sp
	}
	keep := open("jk-f-a", "role:v1", 100)
	drop := open("jk-f-a", "sidecar:v1", 10)
	other := open("jk-f-b", "sidecar:v1", 1000)

	d.dropSpools("jk-f-a", []string{"role:v1"})
	if _, err := io.ReadAll(drop.reader(context.Background())); !errors.Is(err, errSpoolClosed) {
		t.Fatalf("the dropped spool still reads (%v); want it closed", err)
	}
	if got := d.takeSpool("jk-f-b", "sidecar:v1"); got != other {
		t.Fatal("dropping machine jk-f-a's spools took another machine's")
	}
	if got := d.takeSpool("jk-f-a", "role:v1"); got != keep {
		t.Fatal("the spool of an image the machine lacks was not kept for its transfer")
	}
	if got := d.takeSpool("jk-f-a", "role:v1"); got != nil {
		t.Fatal("a spool was handed out twice")
	}
	if d.spoolReserved != 1100 {
		t.Fatalf("reserved %d bytes after one spool of 10 closed; want 1100", d.spoolReserved)
	}
	keep.close()
	other.close()
	keep.close() // twice: nothing more is given back
	if d.spoolReserved != 0 || len(d.spools) != 0 {
		t.Fatalf("after every spool closed: %d bytes reserved, %d spools held; want none", d.spoolReserved, len(d.spools))
	}
	for _, src := range srcs {
		if _, err := src.w.Write([]byte("x")); err == nil {
			t.Fatal("a closed spool's export stream was still read")
		}
	}
}
