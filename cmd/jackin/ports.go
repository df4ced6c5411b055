package main

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"

	"github.com/jackin-dev/jackin/reconciler"
)

// hostPortsInUse lists the host ports that instances the plan creates would
// publish but something on this host already listens on (a process, or a
// container outside the instance). A recreate is not checked: the
// instance's own container holds its ports until it is replaced. Only TCP
// ports with a fixed host port can be checked, by trying to bind them.
func hostPortsInUse(p *reconciler.Plan) []string {
	var out []string
	for _, act := range p.Actions {
		if act.Type != reconciler.ActionCreate || act.Desired == nil {
			continue
		}
		for _, port := range act.Desired.Spec.Network.Ports {
			if port.Host == 0 || port.Protocol != "tcp" {
				continue
			}
			addr := net.JoinHostPort(port.Address, strconv.Itoa(port.Host))
			ln, err := net.Listen("tcp", addr)
			if err == nil {
				ln.Close()
				continue
			}
			if errors.Is(err, syscall.EADDRINUSE) {
				out = append(out, fmt.Sprintf("%s: host port %s/tcp is already in use on this host (by a process, or a container of another instance or fleet): free it or choose another host port", act.Instance, addr))
			}
		}
	}
	return out
}

// releasesPorts reports whether the plan removes containers (a delete or a
// recreate), which may free a port a create then takes: a busy port is then
// only a warning.
func releasesPorts(p *reconciler.Plan) bool {
	for _, act := range p.Actions {
		if act.Mutates() && (act.Type == reconciler.ActionDelete || act.Type == reconciler.ActionRecreate) {
			return true
		}
	}
	return false
}
