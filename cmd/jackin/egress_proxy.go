package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/jackin-dev/jackin/egress"
)

// newEgressProxyCommand is the hidden command the egress sidecar runs (the
// sidecar image is jackin's own executable): the allowlist proxy of one
// instance, and the forwarders of its published ports. Decisions go to
// stdout, one JSON line each; everything else to stderr.
func newEgressProxyCommand(a *app) *cobra.Command {
	var policyPath, listen, upstream, credDir string
	var forwards []string
	cmd := &cobra.Command{
		Use:    "egress-proxy",
		Short:  "Run an instance's egress proxy and port forwarders (inside the egress sidecar)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if listen != "" && policyPath == "" {
				return exitWith(exitInvalid, errors.New("--listen needs --policy"))
			}
			if listen == "" && len(forwards) == 0 {
				return exitWith(exitInvalid, errors.New("nothing to do: give --listen and --policy, or --forward"))
			}
			type fwd struct{ listen, target string }
			var fwds []fwd
			for _, f := range forwards {
				l, t, ok := strings.Cut(f, "=")
				if !ok || l == "" || t == "" {
					return exitWith(exitInvalid, fmt.Errorf("--forward %q: want LISTEN=TARGET (:40000=host:3000)", f))
				}
				fwds = append(fwds, fwd{l, t})
			}
			ctx := cmd.Context()
			// A signal (docker stop) shuts the proxy down gracefully.
			defer signals.hold("the connections in flight")()
			var wg sync.WaitGroup
			errs := make(chan error, len(fwds)+1)
			for _, f := range fwds {
				wg.Add(1)
				go func() {
					defer wg.Done()
					fmt.Fprintf(a.stderr, "jackin egress: forwarding %s to %s\n", f.listen, f.target)
					if err := egress.Forward(ctx, f.listen, f.target); err != nil {
						errs <- err
					}
				}()
			}
			if listen != "" {
				pol, err := egress.LoadPolicy(policyPath)
				if err != nil {
					return exitWith(exitInvalid, err)
				}
				px := egress.NewProxy(pol, a.stdout)
				if upstream != "" {
					if err := egress.CheckUpstream(upstream); err != nil {
						return exitWith(exitInvalid, err)
					}
					px.Upstream, _ = url.Parse(upstream)
				}
				go px.WatchPolicy(ctx, policyPath, time.Second, func(p *egress.Policy) {
					fmt.Fprintf(a.stderr, "jackin egress: policy of %s in force: %d rules\n", p.Instance, len(p.Rules))
				}, func(err error) {
					fmt.Fprintf(a.stderr, "jackin egress: keeping the policy in force: %v\n", err)
				})
				if credDir != "" {
					// Loaded before the first connection is accepted, and
					// again whenever jackin rewrites it (a rotated value).
					if err := px.SetCredentialsDir(credDir); err != nil {
						fmt.Fprintf(a.stderr, "jackin egress: credentials not loaded yet: %v\n", err)
					}
					go px.WatchCredentials(ctx, credDir, time.Second, func(hosts int) {
						fmt.Fprintf(a.stderr, "jackin egress: credentials in force for %d host(s)\n", hosts)
					}, func(err error) {
						fmt.Fprintf(a.stderr, "jackin egress: keeping the credentials in force: %v\n", err)
					})
				}
				ln, err := net.Listen("tcp", listen)
				if err != nil {
					return exitWith(exitInvalid, err)
				}
				srv := &http.Server{Handler: px, ReadHeaderTimeout: 30 * time.Second}
				wg.Add(1)
				go func() {
					defer wg.Done()
					fmt.Fprintf(a.stderr, "jackin egress: proxy for %s listening on %s\n", pol.Instance, listen)
					if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
						errs <- err
					}
				}()
				go func() {
					<-ctx.Done()
					sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					defer cancel()
					_ = srv.Shutdown(sctx)
				}()
			}
			select {
			case err := <-errs:
				return exitWith(exitInvalid, err)
			case <-ctx.Done():
			}
			wg.Wait()
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&policyPath, "policy", "", "the policy file (reloaded when it changes)")
	f.StringVar(&listen, "listen", "", "address the proxy listens on (:3128); empty runs forwarders only")
	f.StringVar(&upstream, "upstream", "", "an upstream proxy, http://host:port, for every allowed connection")
	f.StringArrayVar(&forwards, "forward", nil, "LISTEN=TARGET: relay TCP connections (repeatable)")
	f.StringVar(&credDir, "credentials-dir", "", "a directory of proxy-delivered credentials (credentials.json, tls.pem, tls-key.pem, roots.pem), reloaded when it changes")
	return cmd
}
