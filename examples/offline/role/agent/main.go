// Command agent is the offline demo agent: a tiny static program that stands
// in for a coding agent in the examples, tests and benchmarks, so everything
// runs on a bare engine with no registry.
//
//	agent [idle]       print "jackin demo agent <hostname> ready" and wait for SIGTERM or SIGINT
//	agent exit N       exit with code N at once (crash-loop tests)
//	agent serve :PORT  answer every HTTP request with 200 "ok <hostname>" until SIGTERM or SIGINT
//
// The image's entrypoint is /agent, so a manifest command that repeats it
// ("/agent", "idle") works too: a leading argument naming the program is skipped.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args))
}

func run(argv []string) int {
	args := argv[1:]
	// "/agent idle" as CMD after ENTRYPOINT ["/agent"] arrives as "/agent /agent idle".
	if len(args) > 0 && filepath.Base(args[0]) == filepath.Base(argv[0]) {
		args = args[1:]
	}
	host, _ := os.Hostname()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	if len(args) == 0 {
		args = []string{"idle"}
	}
	switch args[0] {
	case "idle":
		fmt.Printf("jackin demo agent %s ready\n", host)
		<-ctx.Done()
		fmt.Printf("jackin demo agent %s stopping\n", host)
		return 0
	case "exit":
		if len(args) != 2 {
			return usage()
		}
		code, err := strconv.Atoi(args[1])
		if err != nil {
			return usage()
		}
		fmt.Printf("jackin demo agent %s exiting with %d\n", host, code)
		return code
	case "serve":
		if len(args) != 2 {
			return usage()
		}
		return serve(ctx, args[1], host)
	default:
		return usage()
	}
}

func serve(ctx context.Context, addr, host string) int {
	srv := &http.Server{
		Addr:              addr,
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, "ok %s\n", host)
		}),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	fmt.Printf("jackin demo agent %s serving on %s\n", host, addr)
	select {
	case err := <-errc:
		fmt.Fprintf(os.Stderr, "agent: serve %s: %v\n", addr, err)
		return 1
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(os.Stderr, "agent: shutdown: %v\n", err)
		return 1
	}
	return 0
}

func usage() int {
	fmt.Fprintln(os.Stderr, "usage: agent [idle] | agent exit N | agent serve :PORT")
	return 2
}
