package reconciler

import (
	"context"
	"testing"

	"github.com/jackin-dev/jackin/drivers/fake"
)

type tailFake struct {
	*fake.Driver
	lines []string
}

func (t tailFake) ContainerLogTail(context.Context, string, int) ([]string, error) {
	return t.lines, nil
}

// TestLastSafeLogLineNeverQuotesAValue: a line holding one of the
// instance's credential values is skipped however short the value (the
// redaction of known values leaves those under four bytes alone), as is a
// line of a secret's shape.
func TestLastSafeLogLineNeverQuotesAValue(t *testing.T) {
	in := &DesiredInstance{Credentials: &CredentialPlan{Values: map[string][]byte{"PIN": []byte("k9z\n")}}}
	drv := tailFake{Driver: fake.New(), lines: []string{"model loaded", "login with pin k9z failed", "export GITHUB_TOKEN=ghp_0123456789abcdefABCDEF0123456789abcd"}}
	if got := lastSafeLogLine(context.Background(), drv, "c1", in); got != `"model loaded"` {
		t.Fatalf("last safe line %s, want the line before the two that hold secrets", got)
	}
}
