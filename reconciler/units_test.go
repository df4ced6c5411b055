package reconciler

import "testing"

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{
		64 << 20: "64Mi", 1536 << 20: "1536Mi", 1 << 30: "1Gi", 512: "512B", 1000: "1k",
		2e9: "2G", 1 << 10: "1Ki", 3 << 40: "3Ti", 1001: "1001B",
	} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestShortIDs(t *testing.T) {
	if got := shortImageID("sha256:0123456789abcdef0123"); got != "sha256:0123456789ab" {
		t.Errorf("shortImageID = %q", got)
	}
	if got := shortHash(""); got != "none" {
		t.Errorf("shortHash(\"\") = %q", got)
	}
}

func TestPortString(t *testing.T) {
	for p, want := range map[SpecPort]string{
		{Container: 80, Host: 8080, Address: "127.0.0.1", Protocol: "tcp"}: "127.0.0.1:8080->80/tcp",
		{Container: 53, Protocol: "udp"}:                                   "auto->53/udp",
		{Container: 22}:                                                    "auto->22/tcp",
	} {
		if got := portString(p); got != want {
			t.Errorf("portString(%+v) = %q, want %q", p, got, want)
		}
	}
}
