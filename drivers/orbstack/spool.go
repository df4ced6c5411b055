package orbstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// imageSpool holds the host engine's export of one image while a new
// machine is made: the export runs beside `orb create` and the wait for the
// machine's engine (cloud-init installing docker.io takes far longer than
// exporting most role images), so the load into the machine starts from
// bytes already on disk instead of waiting for the host to begin writing
// them. The load may begin before the export ends: a reader follows the
// file as it grows.
//
// The file is unlinked as soon as it is made: nothing is left on disk when
// the process ends, however it ends.
type imageSpool struct {
	ref   string
	f     *os.File
	start time.Time

	mu      sync.Mutex
	written int64
	done    bool
	err     error         // the export's, once done
	grew    chan struct{} // closed and replaced on every write and at the end
	cancel  context.CancelFunc
	ended   chan struct{} // closed when the export goroutine returns
	// release, when set, gives back the room reserved for the spool.
	release   func()
	closeOnce sync.Once
}

// errSpoolClosed is a read of a spool given up (its action ended).
var errSpoolClosed = errors.New("image spool closed")

// startSpool begins exporting ref from save into a file in dir ("" is the
// system's temporary directory). The export stops when ctx ends or the
// spool is closed.
func startSpool(ctx context.Context, dir, ref string, save func(context.Context, string) (io.ReadCloser, error)) (*imageSpool, error) {
	f, err := os.CreateTemp(dir, "jackin-image-*.tar")
	if err != nil {
		return nil, fmt.Errorf("spool image %s: %w", ref, err)
	}
	// Unlinked at once: the open file is all the spool needs.
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("spool image %s: %w", ref, err)
	}
	sctx, cancel := context.WithCancel(ctx)
	s := &imageSpool{ref: ref, f: f, start: time.Now(), grew: make(chan struct{}), cancel: cancel, ended: make(chan struct{})}
	go s.fill(sctx, save)
	return s, nil
}

func (s *imageSpool) fill(ctx context.Context, save func(context.Context, string) (io.ReadCloser, error)) {
	defer close(s.ended)
	rc, err := save(ctx, s.ref)
	if err != nil {
		s.finish(fmt.Errorf("save image %s from the host engine: %w", s.ref, err))
		return
	}
	defer rc.Close()
	buf := make([]byte, 256<<10)
	for {
		n, rerr := rc.Read(buf)
		if n > 0 {
			if _, werr := s.f.Write(buf[:n]); werr != nil {
				s.finish(fmt.Errorf("spool image %s: %w", s.ref, werr))
				return
			}
			s.mu.Lock()
			s.written += int64(n)
			close(s.grew)
			s.grew = make(chan struct{})
			s.mu.Unlock()
		}
		if rerr == io.EOF { // itself, not an error wrapping it: a cut-off export is no image
			s.finish(nil)
			return
		}
		if rerr != nil {
			s.finish(fmt.Errorf("save image %s from the host engine: %w", s.ref, rerr))
			return
		}
	}
}

func (s *imageSpool) finish(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done, s.err = true, err
	close(s.grew)
	s.grew = make(chan struct{})
}

// failed is the export's error once it ended with one.
func (s *imageSpool) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return s.err
	}
	return nil
}

// reader reads the spool from its start, waiting for bytes the export has
// yet to write; it ends with the export's error, or when ctx ends.
func (s *imageSpool) reader(ctx context.Context) io.Reader {
	return &spoolReader{s: s, ctx: ctx}
}

// close stops the export and releases the file and its room; again, it
// does nothing.
func (s *imageSpool) close() {
	s.closeOnce.Do(func() {
		s.cancel()
		<-s.ended
		s.mu.Lock()
		// Whatever the export ended with, the file is gone now.
		s.done, s.err = true, errSpoolClosed
		s.f.Close()
		s.mu.Unlock()
		if s.release != nil {
			s.release()
		}
	})
}

type spoolReader struct {
	s   *imageSpool
	ctx context.Context
	off int64
}

func (r *spoolReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		r.s.mu.Lock()
		avail, done, err, grew := r.s.written-r.off, r.s.done, r.s.err, r.s.grew
		r.s.mu.Unlock()
		if avail > 0 {
			n, rerr := r.s.f.ReadAt(p[:min(int64(len(p)), avail)], r.off)
			r.off += int64(n)
			if n > 0 || rerr == nil {
				return n, nil
			}
			return 0, fmt.Errorf("read the spooled image %s: %w", r.s.ref, rerr)
		}
		if done {
			if err != nil {
				return 0, err
			}
			return 0, io.EOF
		}
		select {
		case <-grew:
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
	}
}
