package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// The network probes the egress tests run inside an agent:
//
//	agent fetch [-k] URL   GET URL with a client that honours HTTP_PROXY and
//	                       HTTPS_PROXY; prints "status N" and the body; exit 0
//	                       on a 2xx, 3 on another status, 4 when no answer
//	agent dial HOST:PORT   open a raw TCP connection; exit 0 when it opens, 4 if not
//	agent resolve NAME     look a name up; exit 0 with the addresses, 4 if not
//	agent ifaces           list the network interfaces that are up
func netCommand(args []string) (int, bool) {
	if len(args) == 0 {
		return 0, false
	}
	switch args[0] {
	case "fetch":
		insecure := false
		rest := args[1:]
		if len(rest) > 0 && rest[0] == "-k" {
			insecure, rest = true, rest[1:]
		}
		if len(rest) != 1 {
			return usage(), true
		}
		return fetch(rest[0], insecure), true
	case "dial":
		if len(args) != 2 {
			return usage(), true
		}
		c, err := net.DialTimeout("tcp", args[1], 3*time.Second)
		if err != nil {
			fmt.Printf("dial %s: %v\n", args[1], err)
			return 4, true
		}
		c.Close()
		fmt.Printf("dial %s: connected\n", args[1])
		return 0, true
	case "resolve":
		if len(args) != 2 {
			return usage(), true
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		addrs, err := net.DefaultResolver.LookupHost(ctx, args[1])
		if err != nil {
			fmt.Printf("resolve %s: %v\n", args[1], err)
			return 4, true
		}
		fmt.Printf("resolve %s: %s\n", args[1], strings.Join(addrs, " "))
		return 0, true
	case "ifaces":
		ifs, err := net.Interfaces()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1, true
		}
		for _, i := range ifs {
			if i.Flags&net.FlagUp != 0 {
				fmt.Println(i.Name)
			}
		}
		return 0, true
	}
	return 0, false
}

func fetch(url string, insecure bool) int {
	tr := &http.Transport{Proxy: http.ProxyFromEnvironment,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: insecure}} //nolint:gosec // test upstreams use a self-signed certificate
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Printf("fetch %s: %v\n", url, err)
		return 4
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	fmt.Printf("status %d\n%s", resp.StatusCode, body)
	if resp.StatusCode/100 != 2 {
		return 3
	}
	return 0
}
