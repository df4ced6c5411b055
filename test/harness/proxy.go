package harness

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
)

// EngineProxy puts a TCP endpoint in front of the engine's unix socket, so a
// test can make the engine vanish for one client and come back, as an engine
// restart looks from the client's side: Down cuts every connection (event
// streams end) and refuses new ones; Up accepts them again on the same port.
// The engine itself and everything else using it are not disturbed.
type EngineProxy struct {
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
}

// StartEngineProxy listens on a free 127.0.0.1 port and forwards to the
// socket DOCKER_HOST names (or /var/run/docker.sock).
func StartEngineProxy() (*EngineProxy, error) {
	target := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		if !strings.HasPrefix(h, "unix://") {
			return nil, fmt.Errorf("the engine proxy needs a unix socket engine, DOCKER_HOST is %s", h)
		}
		target = strings.TrimPrefix(h, "unix://")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &EngineProxy{target: target, addr: ln.Addr().String(), conns: map[net.Conn]bool{}}
	p.serve(ln)
	return p, nil
}

// Host is the DOCKER_HOST value that reaches the engine through the proxy.
func (p *EngineProxy) Host() string { return "tcp://" + p.addr }

// Down closes the listener and every connection through it.
func (p *EngineProxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

// Up listens again on the same address.
func (p *EngineProxy) Up() error {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return err
	}
	p.serve(ln)
	return nil
}

// Close stops the proxy.
func (p *EngineProxy) Close() { p.Down() }

func (p *EngineProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			go p.forward(c)
		}
	}()
}

func (p *EngineProxy) forward(c net.Conn) {
	up, err := net.Dial("unix", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil { // went down meanwhile
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	c.Close()
	up.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}
