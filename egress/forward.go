package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// Forward relays TCP connections accepted on listen to target until ctx
// ends. It publishes an agent's service port when the agent sits on an
// internal network the engine cannot publish from: the forwarder straddles
// that network and a bridge the engine publishes from.
func Forward(ctx context.Context, listen, target string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("forward %s: %w", listen, err)
	}
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go func() {
			defer c.Close()
			var d net.Dialer
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			up, err := d.DialContext(dctx, "tcp", target)
			cancel()
			if err != nil {
				return
			}
			defer up.Close()
			pipe(c, c, up)
		}()
	}
}
