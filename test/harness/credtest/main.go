// Command credtest is the credential tests' agent and test upstream, in one
// static binary (a FROM scratch image built by the harness):
//
//	credtest idle                      sleep until stopped
//	credtest cat PATH                  print a file
//	credtest env                       print the environment
//	credtest find TEXT                 list files (outside /proc, /sys, /dev) and env vars holding TEXT
//	credtest get [-insecure] [-auth VAR] URL
//	                                   GET through HTTPS_PROXY, sending "Authorization: Bearer $VAR"
//	credtest upstream NAME             HTTPS on :443 with /certs/cert.pem: answers
//	                                   "upstream NAME auth=<sha256 of the Authorization header>|none"
package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		os.Args = append(os.Args, "idle")
	}
	switch os.Args[1] {
	case "idle":
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
		<-c
	case "cat":
		b, err := os.ReadFile(os.Args[2])
		if err != nil {
			fail(err)
		}
		os.Stdout.Write(b)
	case "env":
		for _, e := range os.Environ() {
			fmt.Println(e)
		}
	case "find":
		find(os.Args[2])
	case "get":
		get(os.Args[2:])
	case "upstream":
		upstream(os.Args[2])
	default:
		fail(fmt.Errorf("unknown command %q", os.Args[1]))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "credtest:", err)
	os.Exit(1)
}

func find(text string) {
	for _, e := range os.Environ() {
		if strings.Contains(e, text) {
			fmt.Println("env:", strings.SplitN(e, "=", 2)[0])
		}
	}
	_ = filepath.WalkDir("/", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && (p == "/proc" || p == "/sys" || p == "/dev") {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(text)) {
			fmt.Println("file:", p)
		}
		return nil
	})
}

func get(args []string) {
	fl := flag.NewFlagSet("get", flag.ExitOnError)
	insecure := fl.Bool("insecure", false, "do not verify the server")
	auth := fl.String("auth", "", "send Authorization: Bearer $VAR")
	_ = fl.Parse(args)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if *insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	}
	c := &http.Client{Transport: tr, Timeout: 15 * time.Second}
	req, err := http.NewRequest(http.MethodGet, fl.Arg(0), nil)
	if err != nil {
		fail(err)
	}
	if *auth != "" {
		req.Header.Set("Authorization", "Bearer "+os.Getenv(*auth))
	}
	resp, err := c.Do(req)
	if err != nil {
		fail(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Printf("status=%d\n%s", resp.StatusCode, b)
}

func upstream(name string) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := "none"
		if v := r.Header.Get("Authorization"); v != "" {
			sum := sha256.Sum256([]byte(v))
			auth = hex.EncodeToString(sum[:])
		}
		fmt.Fprintf(w, "upstream %s auth=%s\n", name, auth)
	})
	srv := &http.Server{Addr: ":443", Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fail(srv.ListenAndServeTLS("/certs/cert.pem", "/certs/key.pem"))
}
