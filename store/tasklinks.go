package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
)

// AddTaskLinks adds the work links an agent wrote while on a task to the
// task's links, whatever its state (an agent publishes its links up to a
// second after it wrote them, often after the task moved on). It is not a
// transition: nothing else of the task changes and nothing is recorded
// but the links. It reports whether a link was new.
func (s *Store) AddTaskLinks(ctx context.Context, fleet, id string, links []string) (bool, error) {
	added := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		added = false
		t, err := taskTx(ctx, tx, fleet, id)
		if err != nil {
			return err
		}
		all := slices.Clone(t.Links)
		for _, l := range links {
			if !slices.Contains(all, l) {
				all = append(all, l)
				added = true
			}
		}
		if !added {
			return nil
		}
		slices.Sort(all)
		b, _ := json.Marshal(all)
		if _, err := tx.ExecContext(ctx, `UPDATE tasks SET links = ? WHERE fleet = ? AND id = ?`, string(b), fleet, id); err != nil {
			return fmt.Errorf("attach links to task %s: %w", id, err)
		}
		return nil
	})
	return added, err
}
