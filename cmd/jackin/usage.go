package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/jackin-dev/jackin/pipeline"
	"github.com/jackin-dev/jackin/store"
	"github.com/jackin-dev/jackin/supervisor"
	"github.com/jackin-dev/jackin/telemetry"
	"github.com/jackin-dev/jackin/usage"
)

// usageItem is one row of `jackin usage -o json`: an instance's use of a
// model.
type usageItem struct {
	Fleet            string   `json:"fleet"`
	Instance         string   `json:"instance"`
	Model            string   `json:"model"`
	InputTokens      int64    `json:"inputTokens"`
	OutputTokens     int64    `json:"outputTokens"`
	CacheReadTokens  int64    `json:"cacheReadTokens"`
	CacheWriteTokens int64    `json:"cacheWriteTokens"`
	CostUSD          *float64 `json:"costUSD"`
}

type usageList struct {
	APIVersion string      `json:"apiVersion"`
	Kind       string      `json:"kind"`
	PricesDate string      `json:"pricesDate"`
	Items      []usageItem `json:"items"`
}

func newUsageCommand(a *app) *cobra.Command {
	var mf manifestFlags
	var fleetName, since string
	var out outputFlag
	cmd := &cobra.Command{
		Use:   "usage [-f PATH... | --fleet NAME] [INSTANCE]",
		Short: "Show the tokens and estimated cost of each instance, per model",
		Long: `usage lists, per instance and model, the tokens the agents used (input,
output, cache reads, cache writes) and an estimated cost in USD. Instances
deleted since are included: their totals stay in the state dir. Without -f
or --fleet it shows every fleet; naming an instance shows only it.

The agents' supervisors read the runtime's own records in the container
(Claude Code's transcripts, Codex's rollout files, Gemini CLI's chats,
OpenCode's stored messages or server events; Amp and custom runtimes
record none jackin reads) and publish them in the instance's agent
directory; usage (like get, apply, delete, watch and history) records what
they published first. Per session and model the largest total seen is
kept, so a record read again after a restart is never counted twice.

The cost is an estimate from a price table (USD per million tokens, dated;
see the README), overridden per model by prices.json in the state dir. A
model the table does not know has no cost ("-", null in JSON), never a
zero one, and neither has a total that includes it.

--since keeps the sessions whose usage grew since then (a duration back from
now, "24h", or an RFC 3339 time): their whole totals count, including what
they used before it.`,
		Example: `  jackin usage
  jackin usage -f fleet.cue web
  jackin usage --fleet demo --since 24h -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			ctx := cmd.Context()
			fleet, err := a.fleetFromFlags(ctx, mf.files, fleetName, false)
			if err != nil {
				return err
			}
			instance := ""
			if len(args) == 1 {
				instance = args[0]
				if !validInstanceName(instance) {
					return exitWith(exitInvalid, fmt.Errorf("%q is not an instance name: a lowercase DNS label", instance))
				}
			}
			from, err := parseSince(since, time.Now())
			if err != nil {
				return exitWith(exitInvalid, err)
			}
			prices, err := usage.LoadPrices(a.global.stateDir)
			if err != nil {
				return exitWith(exitInvalid, err)
			}
			var st *store.Store
			if _, serr := os.Stat(filepath.Join(a.global.stateDir, "agents")); serr == nil {
				st, err = a.openStore(ctx) // what the agents published is recorded first (a write)
			} else {
				st, err = a.openStoreReadOnly(ctx)
			}
			if err != nil {
				return err
			}
			items := []usageItem{}
			if st != nil {
				defer st.Close()
				a.recordUsage(ctx, st, fleet)
				rows, err := st.Usage(ctx, store.UsageQuery{Fleet: fleet, Instance: instance, Since: from})
				if err != nil {
					return exitWith(exitInvalid, err)
				}
				items = usageItems(rows, prices)
			}
			if out.format != "table" {
				return writeStructured(a.stdout, out.format, usageList{APIVersion: "jackin.dev/v1alpha1", Kind: "Usage", PricesDate: prices.Date, Items: items})
			}
			if len(items) == 0 {
				fmt.Fprintln(a.stdout, "No token usage recorded.")
				return nil
			}
			writeUsageTable(a, items, prices.Date)
			return nil
		},
	}
	mf.register(cmd)
	cmd.Flags().StringVar(&fleetName, "fleet", "", "fleet name, instead of -f")
	cmd.Flags().StringVar(&since, "since", "", `only sessions whose usage grew since then: a duration ("24h") or an RFC 3339 time`)
	out.register(cmd, "table", "table", "json", "yaml")
	return cmd
}

// validInstanceName: instance names are DNS labels (the schema allows up
// to 63 characters).
func validInstanceName(s string) bool { return len(s) <= 63 && fleetNameRE.MatchString(s) }

// usageItems adds up the rows per fleet, instance and model.
func usageItems(rows []store.UsageRow, prices usage.Prices) []usageItem {
	type key struct{ fleet, instance, model string }
	sums := map[key]usage.Tokens{}
	for _, r := range rows {
		k := key{r.Fleet, r.Instance, r.Model}
		sums[k] = sums[k].Add(r.Tokens)
	}
	items := make([]usageItem, 0, len(sums))
	for k, t := range sums {
		items = append(items, usageItem{Fleet: k.fleet, Instance: k.instance, Model: k.model,
			InputTokens: t.Input, OutputTokens: t.Output, CacheReadTokens: t.CacheRead, CacheWriteTokens: t.CacheWrite,
			CostUSD: prices.CostOf(k.model, t)})
	}
	sort.Slice(items, func(i, j int) bool {
		a, b := items[i], items[j]
		if a.Fleet != b.Fleet {
			return a.Fleet < b.Fleet
		}
		if a.Instance != b.Instance {
			return a.Instance < b.Instance
		}
		return a.Model < b.Model
	})
	return items
}

func writeUsageTable(a *app, items []usageItem, date string) {
	t := &table{}
	t.add("FLEET", "INSTANCE", "MODEL", "INPUT", "OUTPUT", "CACHE-READ", "CACHE-WRITE", "COST")
	var total usage.Tokens
	cost, unknown := 0.0, false
	for _, it := range items {
		t.add(it.Fleet, it.Instance, it.Model, strconv.FormatInt(it.InputTokens, 10), strconv.FormatInt(it.OutputTokens, 10),
			strconv.FormatInt(it.CacheReadTokens, 10), strconv.FormatInt(it.CacheWriteTokens, 10), formatCost(it.CostUSD))
		total = total.Add(usage.Tokens{Input: it.InputTokens, Output: it.OutputTokens, CacheRead: it.CacheReadTokens, CacheWrite: it.CacheWriteTokens})
		if it.CostUSD == nil {
			unknown = true
		} else {
			cost += *it.CostUSD
		}
	}
	if len(items) > 1 {
		tc := formatCost(&cost)
		if unknown {
			tc = "-" // a model's price is unknown: so is the total's
		}
		t.add("TOTAL", "", "", strconv.FormatInt(total.Input, 10), strconv.FormatInt(total.Output, 10),
			strconv.FormatInt(total.CacheRead, 10), strconv.FormatInt(total.CacheWrite, 10), tc)
	}
	t.write(a.stdout)
	fmt.Fprintf(a.stdout, "Estimated at list prices of %s; \"-\": a model without a price (add it to %s).\n", date, filepath.Join(a.global.stateDir, usage.PricesFile))
}

// formatCost shows a cost in USD, "-" when unknown.
func formatCost(c *float64) string {
	switch {
	case c == nil:
		return "-"
	case *c > 0 && *c < 0.01:
		return fmt.Sprintf("$%.4f", *c)
	}
	return fmt.Sprintf("$%.2f", *c)
}

// recordUsage records the token usage the agents of fleet (every fleet
// when "") published since last time; errors are logged, never fatal.
func (a *app) recordUsage(ctx context.Context, st *store.Store, fleet string) {
	if st == nil {
		return
	}
	env := pipeline.Env{StateDir: a.global.stateDir, Store: st, Log: a.log}
	if fleet != "" {
		env.RecordUsageLogged(ctx, fleet)
		return
	}
	ents, err := os.ReadDir(filepath.Join(a.global.stateDir, "agents"))
	if err != nil {
		return
	}
	for _, e := range ents {
		if e.IsDir() {
			env.RecordUsageLogged(ctx, e.Name())
		}
	}
}

// usageByInstance is, per instance of fleet (deleted ones included), its
// token usage over all its models and the estimated cost: what the store
// holds merged with what the agents publish now (the larger figure per
// session and model, as recording would keep), without writing anything,
// so get stays a read. The model is the instance's main model (the one
// that wrote the most output); `jackin usage INSTANCE` breaks it down.
// usage.Summary has telemetry.Usage's fields: telemetry.Usage(u) converts.
// st may be nil (no state dir yet): the published usage alone.
func (a *app) usageByInstance(ctx context.Context, st *store.Store, fleet string) (map[string]usage.Summary, error) {
	byInstance, prices, err := a.usageByModel(ctx, st, fleet)
	if err != nil {
		return nil, err
	}
	out := make(map[string]usage.Summary, len(byInstance))
	for inst, m := range byInstance {
		out[inst] = usage.Summarize(m, prices)
	}
	return out, nil
}

// usageByModel is each instance's tokens per model (the store's rows
// merged with what the agents publish, the larger per session and model),
// and the prices to estimate them with. It reads without writing.
func (a *app) usageByModel(ctx context.Context, st *store.Store, fleet string) (map[string]map[string]usage.Tokens, usage.Prices, error) {
	type key struct {
		instance string
		usage.Key
	}
	merged := map[key]usage.Tokens{}
	if st != nil {
		rows, err := st.Usage(ctx, store.UsageQuery{Fleet: fleet})
		if err != nil {
			return nil, usage.Prices{}, err
		}
		for _, r := range rows {
			merged[key{r.Instance, usage.Key{Session: r.Session, Model: r.Model}}] = r.Tokens
		}
	}
	root := filepath.Dir(supervisor.HostDir(a.global.stateDir, fleet, "x"))
	ents, _ := os.ReadDir(root)
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		rep, err := supervisor.ReadUsage(filepath.Join(root, e.Name()))
		if err != nil {
			continue // none yet, or unreadable: the store's figures stand
		}
		for _, en := range rep.Entries {
			k := key{e.Name(), usage.Key{Session: en.Session, Model: en.Model}}
			merged[k] = merged[k].Max(en.Tokens)
		}
	}
	prices, err := usage.LoadPrices(a.global.stateDir)
	if err != nil {
		a.log.Error(err, "read the price overrides; the built-in prices are used")
	}
	byInstance := map[string]map[string]usage.Tokens{}
	for k, t := range merged {
		m := byInstance[k.instance]
		if m == nil {
			m = map[string]usage.Tokens{}
			byInstance[k.instance] = m
		}
		m[k.Model] = m[k.Model].Add(t)
	}
	return byInstance, prices, nil
}

// costCell is get's COST cell for an instance: "-" when it has no usage
// recorded, "?" when a model it used has no price, else the cost.
func costCell(recorded bool, costUSD *float64) string {
	switch {
	case !recorded:
		return "-"
	case costUSD == nil:
		return "?"
	}
	return formatCost(costUSD)
}

// addUsage sets each item's usage: the instance's totals over its sessions
// and models, from the store and what its agent has published.
func (a *app) addUsage(ctx context.Context, sess *session, items []instanceStatus) error {
	byInstance, err := a.usageByInstance(ctx, sess.st, sess.fleet.Name)
	if err != nil {
		return fmt.Errorf("read usage: %w", err)
	}
	for i := range items {
		if u, ok := byInstance[items[i].Instance]; ok {
			tu := telemetry.Usage(u)
			items[i].Usage = &tu
		}
	}
	return nil
}

// costHeader is get's COST column (none when telemetry is off).
func costHeader(flags resourceFlags) []string {
	if flags.off {
		return nil
	}
	return []string{"COST"}
}

// costCells is an instance's COST cell (none when telemetry is off).
func costCells(flags resourceFlags, u *telemetry.Usage) []string {
	if flags.off {
		return nil
	}
	if u == nil {
		return []string{costCell(false, nil)}
	}
	return []string{costCell(true, u.CostUSD)}
}

// usageRows is each instance's use per model as the console shows it.
func (a *app) usageRows(ctx context.Context, st *store.Store, fleet string) (map[string][]telemetry.Usage, error) {
	byInstance, prices, err := a.usageByModel(ctx, st, fleet)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]telemetry.Usage, len(byInstance))
	for inst, m := range byInstance {
		models := make([]string, 0, len(m))
		for model := range m {
			models = append(models, model)
		}
		sort.Strings(models)
		for _, model := range models {
			t := m[model]
			out[inst] = append(out[inst], telemetry.Usage{Model: model, InputTokens: t.Input, OutputTokens: t.Output,
				CacheReadTokens: t.CacheRead, CacheWriteTokens: t.CacheWrite, CostUSD: prices.CostOf(model, t)})
		}
	}
	return out, nil
}
