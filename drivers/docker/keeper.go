package docker

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
)

// A dial keeper holds one connection to an ssh:// engine ready between
// jackin commands, as ssh's ControlPersist holds the ssh connection: the
// operator's ssh running `docker system dial-stdio` on the engine's host,
// already started and answering. Without it every command pays, per
// engine, for starting ssh here and the docker CLI there (tens to hundreds
// of milliseconds) before its first request; with it a command connects to
// a socket. The keeper is jackin's own binary (a hidden command), started
// in the background by the first command that dials the engine, and gone
// after DialKeepIdle with no command connected. It hands each connection
// out once and pipes bytes both ways: every request still goes through the
// same ssh and dial-stdio, to which the keeper adds nothing.
//
// Its socket sits in jackin's ssh control directory (the user's own, mode
// 0700), beside the ssh control sockets that already give the same reach;
// it also refuses a peer of another uid.

// DialKeepIdle is how long a dial keeper stays after the last connection it
// handed out ended, as jackin's ssh connections are kept (ControlPersist).
const DialKeepIdle = 60 * time.Second

// DialKeepEnv turns dial keepers off when set to "off": every connection
// then starts its own ssh.
const DialKeepEnv = "JACKIN_DIAL_KEEP"

// keeperOK and keeperErr start the keeper's answer to a connection: the
// piped stream follows "ok"; "error: MESSAGE" is why there is none (the
// engine's command failed: ssh's own words).
const (
	keeperOK  = "ok\n"
	keeperErr = "error: "
)

// keptDialer is a DialFunc that takes its connections from the dial
// keeper for argv, starting one (keeper is the command that runs it) when
// none answers; that connection is dialled directly with CommandDialer.
// It is CommandDialer itself where keepers are off or have no place.
func keptDialer(log logr.Logger, argv []string, keeper []string) DialFunc {
	direct := CommandDialer(argv, nil)
	if len(keeper) == 0 || os.Getenv(DialKeepEnv) == "off" {
		return direct
	}
	dir, ok := sshMuxDir()
	if !ok {
		return direct
	}
	sock := keeperSocket(dir, argv)
	var startOnce sync.Once
	return func(ctx context.Context) (net.Conn, error) {
		c, err := dialKeeper(ctx, sock)
		if err == nil {
			log.V(2).Info("engine connection from the dial keeper", "socket", sock)
			return c, nil
		}
		var refused *keeperRefusal
		if errors.As(err, &refused) || ctx.Err() != nil {
			return nil, err
		}
		// No keeper: one for the next command, this connection directly.
		startOnce.Do(func() {
			log.V(2).Info("no dial keeper answers: dialling directly, and starting one for the next command", "socket", sock)
			startKeeper(keeper, sock, argv)
		})
		return direct(ctx)
	}
}

// keeperSocket is the socket of argv's keeper: one per distinct command
// (user, host, port, ssh program and options).
func keeperSocket(dir string, argv []string) string {
	h := sha256.Sum256([]byte(strings.Join(argv, "\x00")))
	return filepath.Join(dir, "dial-"+hex.EncodeToString(h[:10])+".sock")
}

// keeperRefusal is the keeper's report that the engine's command failed.
type keeperRefusal struct{ msg string }

func (e *keeperRefusal) Error() string { return e.msg }

// dialKeeper connects to the keeper at sock and reads its answer.
func dialKeeper(ctx context.Context, sock string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Now()) })
	defer stop()
	// One byte at a time: what follows the line is the engine's, and is
	// the HTTP client's to read.
	var line []byte
	b := make([]byte, 1)
	for len(line) < 4096 {
		if _, err := c.Read(b); err != nil {
			c.Close()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("dial keeper %s: %w", sock, err)
		}
		if b[0] == '\n' {
			break
		}
		line = append(line, b[0])
	}
	_ = c.SetReadDeadline(time.Time{})
	switch s := string(line); {
	case s+"\n" == keeperOK:
		return c, nil
	case strings.HasPrefix(s, keeperErr):
		c.Close()
		return nil, &keeperRefusal{msg: strings.TrimPrefix(s, keeperErr)}
	default:
		c.Close()
		return nil, fmt.Errorf("dial keeper %s: unexpected answer %q", sock, s)
	}
}

// startKeeper starts a keeper in the background, in a session of its own
// and with no standard streams: it outlives this command and holds none of
// its output open. A keeper that finds another already serving sock exits.
func startKeeper(keeper []string, sock string, argv []string) {
	args := append(append(append([]string{}, keeper[1:]...), "--socket", sock, "--"), argv...)
	cmd := exec.Command(keeper[0], args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return // the direct dial still serves this command
	}
	go func() { _ = cmd.Wait() }()
}

// RunDialKeeper serves sock with connections made by argv until it has
// been idle for idle: one connection kept ready (started and answering a
// ping), handed out to the first command that connects, and replaced once
// that command is done with it. It returns nil at once when another keeper
// already serves sock.
func RunDialKeeper(ctx context.Context, log logr.Logger, sock string, argv []string, idle time.Duration) error {
	if len(argv) == 0 {
		return errors.New("dial keeper: no command given")
	}
	dir := filepath.Dir(sock)
	if own, ok := sshMuxDir(); !ok || own != dir {
		return fmt.Errorf("dial keeper: %s is not in jackin's own control directory", sock)
	}
	lock, err := os.OpenFile(sock+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("dial keeper: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return nil // another keeper serves sock
	}
	_ = os.Remove(sock) // a dead keeper's
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("dial keeper: %w", err)
	}
	defer os.Remove(sock)
	if err := os.Chmod(sock, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("dial keeper: %w", err)
	}
	k := &keeper{log: log, dial: CommandDialer(argv, nil), lastUse: time.Now()}
	go k.replenish()
	go func() {
		t := time.NewTicker(idle / 10)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				ln.Close()
				return
			case <-t.C:
				if k.idleFor() >= idle {
					ln.Close()
					return
				}
			}
		}
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			k.closeSpare()
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("dial keeper: %w", err)
		}
		go k.serve(c.(*net.UnixConn))
	}
}

// keeper is a dial keeper's state.
type keeper struct {
	log  logr.Logger
	dial DialFunc

	mu      sync.Mutex
	spare   *readyConn
	filling bool
	active  int
	lastUse time.Time
}

// readyConn is an engine connection that has answered a ping; br holds
// anything read past the answer.
type readyConn struct {
	net.Conn
	br *bufio.Reader
}

func (k *keeper) idleFor() time.Duration {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.active > 0 {
		return 0
	}
	return time.Since(k.lastUse)
}

func (k *keeper) closeSpare() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.spare != nil {
		k.spare.Close()
		k.spare = nil
	}
}

// replenish makes the spare connection, unless there is one or one is
// being made.
func (k *keeper) replenish() {
	k.mu.Lock()
	if k.spare != nil || k.filling {
		k.mu.Unlock()
		return
	}
	k.filling = true
	k.mu.Unlock()
	rc, err := k.ready(30 * time.Second)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.filling = false
	if err != nil {
		k.log.V(1).Info("dial keeper: no spare connection", "error", err.Error())
		return
	}
	if k.spare != nil {
		rc.Close()
		return
	}
	k.spare = rc
}

// ready dials and pings, within limit.
func (k *keeper) ready(limit time.Duration) (*readyConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	c, err := k.dial(ctx)
	if err != nil {
		return nil, err
	}
	rc := &readyConn{Conn: c, br: bufio.NewReader(c)}
	if err := rc.ping(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return rc, nil
}

// ping asks the engine for /_ping and reads the whole answer, so the
// connection is left between requests.
func (rc *readyConn) ping(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { rc.Close() })
	if _, err := io.WriteString(rc, "GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n"); err != nil {
		stop()
		return err
	}
	res, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		stop()
		if ctx.Err() != nil {
			return fmt.Errorf("the engine did not answer a ping: %w", ctx.Err())
		}
		return err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if !stop() {
		// The deadline passed as the answer came: the connection is
		// being closed, however well it answered.
		return fmt.Errorf("the engine did not answer a ping: %w", ctx.Err())
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("the engine answered a ping with %s", res.Status)
	}
	return nil
}

// take hands out the spare when it still answers, else a new connection.
func (k *keeper) take() (*readyConn, error) {
	k.mu.Lock()
	rc := k.spare
	k.spare = nil
	k.mu.Unlock()
	if rc != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err := rc.ping(ctx)
		cancel()
		if err == nil {
			return rc, nil
		}
		rc.Close()
		k.log.V(1).Info("dial keeper: the spare connection no longer answers", "error", err.Error())
	}
	return k.ready(30 * time.Second)
}

// serve hands one connection to the command on c and pipes the two until
// both ends are done.
func (k *keeper) serve(c *net.UnixConn) {
	defer c.Close()
	if !sameUser(c) {
		return
	}
	k.mu.Lock()
	k.active++
	k.mu.Unlock()
	defer func() {
		k.mu.Lock()
		k.active--
		k.lastUse = time.Now()
		k.mu.Unlock()
	}()
	rc, err := k.take()
	if err != nil {
		msg := strings.ReplaceAll(strings.ReplaceAll(err.Error(), "\r", " "), "\n", " ")
		_, _ = io.WriteString(c, keeperErr+msg+"\n")
		return
	}
	defer rc.Close()
	if _, err := io.WriteString(c, keeperOK); err != nil {
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = io.Copy(rc, c)
		if cw, ok := rc.Conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	})
	_, _ = io.Copy(c, rc.br)
	_ = c.CloseWrite()
	wg.Wait()
	// Made now, not when the connection was handed out: off the critical
	// path of the command that is using it.
	go k.replenish()
}
