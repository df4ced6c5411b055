package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/jackin-dev/jackin/supervisor"
)

// newKubeInitCommand runs inside jackin's helper image on Kubernetes
// (backend kubernetes): as a Pod's init container it copies the static
// jackin binary into the Pod for the supervisor and opens the runtime
// home's kept directory to the agent's user; in the NetworkPolicy probe it
// listens (the target) or connects (the client: exit 0 when it reached the
// target, 3 when it could not). Operators never run it.
func newKubeInitCommand(a *app) *cobra.Command {
	var (
		copySelf, listen, connect string
		open                      []string
		timeout                   time.Duration
	)
	cmd := &cobra.Command{
		Use:    "kube-init [--copy-self PATH] [--open DIR]... | --listen ADDR | --connect ADDR",
		Short:  "Inside jackin's Kubernetes helper image: the init container and the NetworkPolicy probe",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case listen != "":
				return probeListen(cmd.Context(), listen)
			case connect != "":
				c, err := net.DialTimeout("tcp", connect, timeout)
				if err != nil {
					fmt.Fprintf(a.stderr, "kube-init: %s not reached: %v\n", connect, err)
					return exitWith(3, errors.New("not reached"))
				}
				c.Close()
				fmt.Fprintf(a.stdout, "kube-init: reached %s\n", connect)
				return nil
			}
			if copySelf != "" {
				exe, err := os.Executable()
				if err != nil {
					return err
				}
				if err := copyExecutable(exe, copySelf); err != nil {
					return fmt.Errorf("copy jackin to %s: %w", copySelf, err)
				}
			}
			for _, d := range open {
				if err := supervisor.OpenToAll(d); err != nil {
					return err
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&copySelf, "copy-self", "", "copy this binary to PATH (mode 0555)")
	f.StringArrayVar(&open, "open", nil, "make DIR and make it writable by every user (sticky)")
	f.StringVar(&listen, "listen", "", "accept TCP connections on ADDR until stopped")
	f.StringVar(&connect, "connect", "", "try one TCP connection to ADDR")
	f.DurationVar(&timeout, "timeout", 3*time.Second, "how long --connect tries")
	return cmd
}

func probeListen(ctx context.Context, addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		c.Close()
	}
}

func copyExecutable(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp")
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o555)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}
