package console

import (
	"context"
	"errors"
	"io"
	"os"

	tea "charm.land/bubbletea/v2"
)

// NoColor reports whether the environment asks for no colour
// (https://no-color.org: NO_COLOR set and not empty).
func NoColor() bool { return os.Getenv("NO_COLOR") != "" }

// Run draws the console on the terminal (in, out) until the operator
// quits (nil) or ctx ends (nil too: an interrupted console is a normal
// end). A Source that is a Watcher is refreshed on its events.
func Run(ctx context.Context, src Source, opts Options, in io.Reader, out io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m := New(ctx, src, opts)
	p := tea.NewProgram(m,
		tea.WithContext(ctx),
		tea.WithInput(in),
		tea.WithOutput(out),
		// jackin's own signal handling cancels ctx.
		tea.WithoutSignalHandler(),
	)
	if w, ok := src.(Watcher); ok {
		changes := w.Watch(ctx)
		go func() {
			for range changes {
				p.Send(changedMsg{})
			}
		}()
	}
	_, err := p.Run()
	m.closePane()
	if err != nil && errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		return nil
	}
	return err
}
