package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/jackin-dev/jackin/drivers"
)

// CPU in get is a rate: two readings of a container's CPU counter. get's
// first reading runs while it plans; the earlier reading is either the
// last one a get of the same fleet took (kept in the state dir, when it is
// recent enough) or a second pass at least minCPUWindow later. Repeated
// gets (watch -n2 jackin get, a script's loop) then measure CPU since the
// previous one, over a longer, steadier window, and wait for nothing.

// cpuReadingMaxAge is the oldest kept reading get measures from: an
// average over more than this is no longer what the agent is doing now.
const cpuReadingMaxAge = 10 * time.Second

// cpuReadingsMaxBytes bounds the file read (10,000 containers' readings
// are about 1 MB).
const cpuReadingsMaxBytes = 4 << 20

type cpuReading struct {
	CPUNanos uint64    `json:"cpuNanos"`
	At       time.Time `json:"at"`
}

type cpuReadingsFile struct {
	V          int                   `json:"v"`
	Containers map[string]cpuReading `json:"containers"`
}

func cpuReadingsPath(stateDir, fleet string) string {
	return filepath.Join(stateDir, "telemetry", fleet+".cpu.json")
}

// loadCPUReadings reads the kept readings of fleet; none when there are
// none or the file is unreadable (get then takes a second pass).
func loadCPUReadings(stateDir, fleet string) (map[string]cpuReading, error) {
	if stateDir == "" {
		return nil, nil
	}
	f, err := os.Open(cpuReadingsPath(stateDir, fleet))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open the kept CPU readings: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, cpuReadingsMaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read the kept CPU readings: %w", err)
	}
	if len(b) > cpuReadingsMaxBytes {
		return nil, fmt.Errorf("the kept CPU readings %s exceed %d bytes", f.Name(), cpuReadingsMaxBytes)
	}
	var doc cpuReadingsFile
	if err := json.Unmarshal(b, &doc); err != nil || doc.V != 1 {
		return nil, fmt.Errorf("the kept CPU readings %s are not jackin's (version 1): %v", f.Name(), err)
	}
	return doc.Containers, nil
}

// useKeptReadings gives each container of first read from files (no
// earlier reading of its own) the kept reading of the same container as
// its earlier one, where that reading is at least minCPUWindow and at
// most cpuReadingMaxAge older and its counter not ahead (a restarted
// container's counter starts again). It returns how many it gave one.
func useKeptReadings(first *drivers.ResourceSamples, kept map[string]cpuReading) int {
	n := 0
	for i := range first.Containers {
		c := &first.Containers[i]
		r, ok := kept[c.ID]
		if !ok || !c.PrevAt.IsZero() {
			continue
		}
		age := c.At.Sub(r.At)
		if age < minCPUWindow || age > cpuReadingMaxAge || r.CPUNanos > c.CPUNanos {
			continue
		}
		c.PrevCPUNanos, c.PrevAt = r.CPUNanos, r.At
		n++
	}
	return n
}

// saveCPUReadings keeps the latest reading of each container sampled, for
// the next get (written whole and renamed into place: a reader never sees
// half a file).
func saveCPUReadings(stateDir, fleet string, passes []*drivers.ResourceSamples) error {
	if stateDir == "" {
		return nil
	}
	doc := cpuReadingsFile{V: 1, Containers: map[string]cpuReading{}}
	for _, p := range passes {
		if p == nil {
			continue
		}
		for _, c := range p.Containers {
			if c.ID != "" && !c.At.IsZero() {
				doc.Containers[c.ID] = cpuReading{CPUNanos: c.CPUNanos, At: c.At}
			}
		}
	}
	dir := filepath.Dir(cpuReadingsPath(stateDir, fleet))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("keep CPU readings: %w", err)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("keep CPU readings: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+fleet+".cpu-*")
	if err != nil {
		return fmt.Errorf("keep CPU readings: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("keep CPU readings: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("keep CPU readings: %w", err)
	}
	if err := os.Rename(tmp.Name(), cpuReadingsPath(stateDir, fleet)); err != nil {
		return fmt.Errorf("keep CPU readings: %w", err)
	}
	return nil
}
