package docker

import (
	"net/netip"
	"testing"
)

func TestSubnetAllocatorSkipsUsedAndReserved(t *testing.T) {
	t.Setenv("JACKIN_SUBNET_POOL", "10.99.0.0/26") // four /28 blocks
	a, err := newSubnetAllocator()
	if err != nil {
		t.Fatal(err)
	}
	used := []netip.Prefix{netip.MustParsePrefix("10.99.0.16/28")}
	got := map[netip.Prefix]bool{}
	for i := 0; i < 3; i++ {
		b, ok := a.next("net", used, nil)
		if !ok {
			t.Fatalf("allocation %d failed", i)
		}
		if b.Bits() != SubnetBits || !a.pool.Contains(b.Addr()) || got[b] || b == used[0] {
			t.Fatalf("bad block %v (have %v)", b, got)
		}
		got[b] = true
	}
	if _, ok := a.next("net", used, nil); ok {
		t.Fatal("the pool should be exhausted")
	}
	for b := range got {
		a.release(b)
		if again, ok := a.next("other", used, nil); !ok || again != b {
			t.Fatalf("released %v, got %v %v", b, again, ok)
		}
		break
	}
}

func TestSubnetPoolValidation(t *testing.T) {
	for _, bad := range []string{"nonsense", "10.0.0.0/30", "fd00::/64"} {
		t.Setenv("JACKIN_SUBNET_POOL", bad)
		if _, err := newSubnetAllocator(); err == nil {
			t.Errorf("pool %q should be refused", bad)
		}
	}
}
