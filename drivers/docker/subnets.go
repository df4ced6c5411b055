package docker

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"os"
	"strings"
	"sync"

	"github.com/moby/moby/api/types/network"
)

// The engine's default address pools hold about thirty bridge networks, and
// jackin gives every instance its own network, so jackin assigns each one a
// small subnet from a pool of its own instead.
const (
	// DefaultSubnetPool is where instance networks get their subnets;
	// JACKIN_SUBNET_POOL overrides it (choose a range your host does not route).
	DefaultSubnetPool = "10.213.0.0/16"
	// SubnetBits sizes each instance network: a /28 leaves 13 addresses for
	// the agent and its sidecars.
	SubnetBits = 28
)

// subnetAllocator hands out non-overlapping subnets from the pool. Within one
// process it reserves what it hands out; across processes the engine
// refuses an overlapping subnet and the caller tries the next one.
type subnetAllocator struct {
	pool     netip.Prefix
	mu       sync.Mutex
	reserved map[netip.Prefix]bool
}

func newSubnetAllocator() (*subnetAllocator, error) {
	spec := DefaultSubnetPool
	if v := strings.TrimSpace(os.Getenv("JACKIN_SUBNET_POOL")); v != "" {
		spec = v
	}
	pool, err := netip.ParsePrefix(spec)
	if err != nil || !pool.Addr().Is4() || pool.Bits() > SubnetBits {
		return nil, fmt.Errorf("JACKIN_SUBNET_POOL %q must be an IPv4 prefix of /%d or wider, such as %s", spec, SubnetBits, DefaultSubnetPool)
	}
	return &subnetAllocator{pool: pool.Masked(), reserved: map[netip.Prefix]bool{}}, nil
}

func (a *subnetAllocator) blocks() int { return 1 << (SubnetBits - a.pool.Bits()) }

// block returns the i-th /SubnetBits block of the pool.
func (a *subnetAllocator) block(i int) netip.Prefix {
	base := a.pool.Addr().As4()
	n := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	n += uint32(i) << (32 - SubnetBits)
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), SubnetBits)
}

// candidates yields free blocks, starting at one derived from the network
// name so that concurrent writers rarely pick the same block, and reserves
// each one it yields. used lists subnets the engine already has.
func (a *subnetAllocator) next(name string, used []netip.Prefix, skip map[netip.Prefix]bool) (netip.Prefix, bool) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	n := a.blocks()
	start := int(h.Sum32() % uint32(n))
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := 0; i < n; i++ {
		b := a.block((start + i) % n)
		if a.reserved[b] || skip[b] || overlapsAny(b, used) {
			continue
		}
		a.reserved[b] = true
		return b, true
	}
	return netip.Prefix{}, false
}

// release returns a block that was not used.
func (a *subnetAllocator) release(b netip.Prefix) {
	a.mu.Lock()
	delete(a.reserved, b)
	a.mu.Unlock()
}

func overlapsAny(b netip.Prefix, used []netip.Prefix) bool {
	for _, u := range used {
		if u.Overlaps(b) {
			return true
		}
	}
	return false
}

// usedSubnets collects the IPv4 subnets of the engine's networks.
func usedSubnets(nets []network.Summary) []netip.Prefix {
	var out []netip.Prefix
	for _, n := range nets {
		for _, c := range n.IPAM.Config {
			if c.Subnet.IsValid() {
				out = append(out, c.Subnet.Masked())
			}
		}
	}
	return out
}

// isPoolOverlap reports the engine refusing a subnet another network holds.
func isPoolOverlap(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "overlaps") || strings.Contains(msg, "Pool overlaps")
}
