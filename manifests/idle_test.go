package manifests

import (
	"reflect"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/schema"
)

// TestIdleResolves: idle.after is parsed, exec kept for action "exec", and
// defaults merge under an instance field by field (an instance's own
// action drops an exec it inherited).
func TestIdleResolves(t *testing.T) {
	fx := newFixture(t, map[string]string{
		"f.cue": fleetHead + `defaults: idle: {after: "30m", action: "exec", exec: ["gradle", "--stop"]}
instances: {
	inherits: role: image: "x"
	stops: {role: image: "x", idle: {after: "2s", action: "stop"}}
	later: {role: image: "x", idle: after: "1h30m"}
}
`,
	})
	f := fx.mustLoad(t, "f.cue")
	want := map[string]*schema.Idle{
		"inherits": {After: 30 * time.Minute, Action: schema.IdleExec, Exec: []string{"gradle", "--stop"}},
		"stops":    {After: 2 * time.Second, Action: schema.IdleStop},
		"later":    {After: 90 * time.Minute, Action: schema.IdleExec, Exec: []string{"gradle", "--stop"}},
	}
	for name, w := range want {
		if got := f.Instances[name].Idle; !reflect.DeepEqual(got, w) {
			t.Errorf("%s: idle %+v, want %+v", name, got, w)
		}
	}

	fx = newFixture(t, map[string]string{"f.cue": inst("")})
	if got := fx.mustLoad(t, "f.cue").Instances["a"].Idle; got != nil {
		t.Errorf("no idle written: got %+v, want none", got)
	}

	// YAML keeps its lines too, and takes the same fields.
	fx = newFixture(t, map[string]string{"f.yaml": yamlHead + "instances:\n  a:\n    role: {image: x}\n    idle: {after: 45s, action: exec, exec: [sh, -c, 'echo hi > /tmp/m']}\n"})
	got := fx.mustLoad(t, "f.yaml").Instances["a"].Idle
	if got == nil || got.After != 45*time.Second || !reflect.DeepEqual(got.Exec, []string{"sh", "-c", "echo hi > /tmp/m"}) {
		t.Errorf("yaml: idle %+v", got)
	}
}

// TestIdleRefusals: every mistake is refused at file:line with the field.
func TestIdleRefusals(t *testing.T) {
	runRejects(t, []rejectCase{
		{name: "exec without a command", src: inst("idle: {after: \"5m\", «action: \"exec\"}"),
			path: "instances.a.idle.action", msg: `action "exec" needs exec`},
		{name: "exec with action stop", src: inst("idle: {after: \"5m\", action: \"stop\", «exec: [\"true\"]}"),
			path: "instances.a.idle.exec", msg: `exec applies to action "exec" only, and action is "stop"`},
		{name: "exec with stop from defaults", src: fleetHead + "defaults: idle: {after: \"5m\", action: \"stop\", «exec: [\"true\"]}\ninstances: a: role: image: \"x\"\n",
			path: "defaults.idle.exec", msg: `exec applies to action "exec" only`},
		{name: "after not a duration", src: inst("idle: {«after: \"soon\", action: \"stop\"}"),
			path: "instances.a.idle.after", msg: `after "soon" is not a duration`},
		{name: "after without a unit", src: inst("idle: {«after: \"30\", action: \"stop\"}"),
			path: "instances.a.idle.after", msg: `after "30" is not a duration`},
		{name: "after zero", src: inst("idle: {«after: \"0s\", action: \"stop\"}"),
			path: "instances.a.idle.after", msg: `after "0s" must be more than zero`},
		{name: "after negative", src: inst("idle: {«after: \"-5m\", action: \"stop\"}"),
			path: "instances.a.idle.after", msg: `must be more than zero`},
		{name: "unknown action", src: inst("idle: {after: \"5m\", «action: \"pause\"}"),
			path: "instances.a.idle.action", msg: `"pause"`},
		{name: "unknown idle field", src: inst("idle: {after: \"5m\", action: \"stop\", «when: \"idle\"}"),
			path: "instances.a.idle.when", msg: `field "when" is not allowed here; allowed fields: action, after, exec`},
		{name: "empty exec", src: inst("idle: {after: \"5m\", action: \"exec\", «exec: []}"),
			path: "instances.a.idle.exec", msg: ""},
		{name: "action missing", src: inst("«idle: {after: \"5m\"}"),
			path: "instances.a.idle", msg: `idle needs action`},
		{name: "after missing in both", src: fleetHead + "defaults: «idle: action: \"stop\"\ninstances: a: role: image: \"x\"\n",
			path: "defaults.idle", msg: `idle needs after`},
	})
}
