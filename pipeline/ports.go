package pipeline

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"

	"github.com/jackin-dev/jackin/reconciler"
)

// HostPortsInUse lists the host ports that the instances the plan creates
// or recreates would publish but something on this host already listens
// on (a process, or a container outside the instance). A recreate's ports
// that its last applied spec published are its own container's until it
// is replaced, and are not checked; a port it adds is, so a recreate that
// cannot get its port is refused before the old container is removed. Only
// TCP ports with a fixed host port can be checked, by trying to bind them.
func (r *Result) HostPortsInUse() []PortConflict {
	var out []PortConflict
	for _, act := range r.Plan.Actions {
		if act.Desired == nil || !act.Mutates() || (act.Type != reconciler.ActionCreate && act.Type != reconciler.ActionRecreate) {
			continue
		}
		held := map[string]bool{}
		if act.Type == reconciler.ActionRecreate {
			last, known := r.Last[act.Instance]
			if !known {
				continue // what the old container holds is unknown
			}
			for _, p := range last.Network.Ports {
				held[portKey(p.Address, p.Host, p.Protocol)] = true
			}
		}
		for _, port := range act.Desired.Spec.Network.Ports {
			if port.Host == 0 || port.Protocol != "tcp" || held[portKey(port.Address, port.Host, port.Protocol)] {
				continue
			}
			addr := net.JoinHostPort(port.Address, strconv.Itoa(port.Host))
			ln, err := net.Listen("tcp", addr)
			if err == nil {
				ln.Close()
				continue
			}
			if errors.Is(err, syscall.EADDRINUSE) {
				out = append(out, PortConflict{Instance: act.Instance, Message: fmt.Sprintf("%s: host port %s/tcp is already in use on this host (by a process, or a container of another instance or fleet): free it or choose another host port", act.Instance, addr)})
			}
		}
	}
	return out
}

func portKey(addr string, port int, proto string) string {
	return net.JoinHostPort(addr, strconv.Itoa(port)) + "/" + proto
}

// PortConflict is a host port an instance would publish that is taken.
type PortConflict struct {
	Instance string
	Message  string
}

// MayBeFreed reports whether the plan removes a container of another
// instance (a delete or a recreate), which may free the port c needs
// before c's instance takes it: the conflict is then only a warning.
func (r *Result) MayBeFreed(c PortConflict) bool {
	for _, act := range r.Plan.Actions {
		if act.Instance != c.Instance && act.Mutates() && (act.Type == reconciler.ActionDelete || act.Type == reconciler.ActionRecreate) {
			return true
		}
	}
	return false
}
