package kubernetes

// SetProbed records a probe result for a namespace (no probe Pods run on a
// fake clientset).
func (d *Driver) SetProbed(ns string, enforced bool) {
	d.mu.Lock()
	d.probed[ns] = enforced
	d.mu.Unlock()
}
