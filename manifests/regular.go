package manifests

import (
	"fmt"
	"os"

	"github.com/jackin-dev/jackin/hostpath"
)

// notRegularError is a manifest path that is not a regular file.
type notRegularError struct{ kind string }

func (e *notRegularError) Error() string {
	return fmt.Sprintf("not a regular file (%s): a manifest must be a file; to read a stream, use -f - (stdin)", e.kind)
}

// openRegular opens a manifest file for reading. Anything but a regular
// file (a FIFO, a socket, a device, a directory) is refused before it is
// opened, and again after, by an fstat of what was opened (a swap between
// the two cannot fool it). It opens non-blocking: open(2) of a FIFO with
// no writer would otherwise wait for ever. Symlinks are followed.
func openRegular(path string) (*os.File, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, &notRegularError{fileKind(st.Mode())}
	}
	f, err := os.OpenFile(path, os.O_RDONLY|nonBlock, 0)
	if err != nil {
		return nil, err
	}
	if st, err = f.Stat(); err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, &notRegularError{fileKind(st.Mode())}
	}
	return f, nil
}

// fileKind names the kind of a file for a message (hostpath.KindOf).
func fileKind(m os.FileMode) string { return hostpath.KindOf(m) }
