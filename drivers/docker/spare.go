package docker

import (
	"bufio"
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// SpareDialer is a DialFunc source that can start engine connections ahead
// of need. On an engine reached through a command per connection (an
// OrbStack machine's `orb -m NAME -u root docker system dial-stdio`), a second
// request made while the first is in flight waits for a whole command to
// start before its first byte; a spare started beside the wait for the
// engine is ready when the engine is. A spare has answered a ping before
// it is handed out, and is handed out once.
type SpareDialer struct {
	dial DialFunc
	log  logr.Logger

	mu      sync.Mutex
	spares  []spareConn
	filling bool
	closed  bool
}

type spareConn struct {
	c    *readyConn
	made time.Time
}

// spareRecheck is the age past which a spare is pinged again before it is
// handed out: the engine may have gone since.
const spareRecheck = 2 * time.Second

// NewSpareDialer wraps dial; its Dial hands out spares first.
func NewSpareDialer(log logr.Logger, dial DialFunc) *SpareDialer {
	return &SpareDialer{dial: dial, log: log}
}

// Dial hands out a spare that still answers, or dials.
func (s *SpareDialer) Dial(ctx context.Context) (net.Conn, error) {
	for {
		s.mu.Lock()
		if len(s.spares) == 0 {
			s.mu.Unlock()
			return s.dial(ctx)
		}
		sp := s.spares[0]
		s.spares = s.spares[1:]
		s.mu.Unlock()
		if time.Since(sp.made) < spareRecheck {
			return pingedConn{sp.c}, nil
		}
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := sp.c.ping(pctx)
		cancel()
		if err == nil {
			return pingedConn{sp.c}, nil
		}
		sp.c.Close()
		s.log.V(2).Info("a spare engine connection no longer answers", "error", err.Error())
	}
}

// Fill makes one spare connection: it dials and pings, again after retry
// (doubling up to 2 s) until one answers or ctx ends (the engine may still
// be coming up). It does nothing while a spare is parked or another Fill
// is making one: one spare is all a command needs.
func (s *SpareDialer) Fill(ctx context.Context, retry time.Duration) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("spare dialer closed")
	}
	if s.filling || len(s.spares) > 0 {
		s.mu.Unlock()
		return nil
	}
	s.filling = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.filling = false
		s.mu.Unlock()
	}()
	for {
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if closed {
			return errors.New("spare dialer closed")
		}
		c, err := s.dial(ctx)
		if err == nil {
			rc := &readyConn{Conn: c, br: bufio.NewReader(c)}
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err = rc.ping(pctx)
			cancel()
			if err == nil {
				s.mu.Lock()
				defer s.mu.Unlock()
				if s.closed {
					rc.Close()
					return errors.New("spare dialer closed")
				}
				s.spares = append(s.spares, spareConn{c: rc, made: time.Now()})
				return nil
			}
			rc.Close()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(retry):
		}
		retry = min(2*retry, 2*time.Second)
	}
}

// Close closes the spares not handed out; Fill parks none after it.
func (s *SpareDialer) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, sp := range s.spares {
		sp.c.Close()
	}
	s.spares = nil
}

// pingedConn is a handed-out spare: its reads go through the buffer its
// ping's answer was read with, and it can close its writing half as the
// command connection under it can (an exec's end of input).
type pingedConn struct{ *readyConn }

func (p pingedConn) Read(b []byte) (int, error) { return p.br.Read(b) }

func (p pingedConn) CloseWrite() error {
	if cw, ok := p.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
