package taskqueue

import "time"

// plan is Plan's body (filled in by the dispatcher's implementation).
func plan(tasks []Task, agents []Agent, lim Limits, now time.Time) []Decision {
	return nil
}
