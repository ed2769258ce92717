package sfnlocal

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"
)

// defaultTaskTimeoutSeconds is what aws-local-stepfunctions uses for a Task without
// TimeoutSeconds (Step Functions itself would wait up to a year).
const defaultTaskTimeoutSeconds = 60

// taskSpec is what the runner needs to override one Task state.
type taskSpec struct {
	Resource       string `json:"resource"`
	TimeoutSeconds int    `json:"timeoutSeconds"`
}

// definition is a parsed state machine definition and what the runs need from it.
type definition struct {
	raw       map[string]any
	tasks     map[string]taskSpec // by state name, nested states included
	waits     []string            // Wait state names
	retryable []string            // names of states with a Retry field
}

func parseDefinition(text string) (*definition, error) {
	var raw map[string]any
	if err := json.Unmarshal([]byte(text), &raw); err != nil {
		return nil, fmt.Errorf("parse definition: %w", err)
	}
	d := &definition{raw: raw, tasks: map[string]taskSpec{}}
	if err := d.collect(raw, "top level"); err != nil {
		return nil, err
	}
	return d, nil
}

// collect walks the states of one scope, and the scopes nested in Map and Parallel states.
// The interpreter's overrides are keyed by state name alone, so a Task name used twice with
// different resources cannot be overridden faithfully and is refused.
func (d *definition) collect(scope map[string]any, where string) error {
	states, ok := scope["States"].(map[string]any)
	if !ok {
		return fmt.Errorf("parse definition: %s has no States", where)
	}
	if _, ok := scope["StartAt"].(string); !ok {
		return fmt.Errorf("parse definition: %s has no StartAt", where)
	}
	for _, name := range slices.Sorted(maps.Keys(states)) {
		s, ok := states[name].(map[string]any)
		if !ok {
			return fmt.Errorf("parse definition: state %q is not an object", name)
		}
		if err := d.collectState(name, s); err != nil {
			return err
		}
	}
	return nil
}

// collectState records what the simulation needs of one state, and walks the scopes of a
// Map or Parallel state.
func (d *definition) collectState(name string, s map[string]any) error {
	if _, ok := s["Retry"]; ok && !slices.Contains(d.retryable, name) {
		d.retryable = append(d.retryable, name)
	}
	switch s["Type"] {
	case "Task":
		return d.collectTask(name, s)
	case "Wait":
		if !slices.Contains(d.waits, name) {
			d.waits = append(d.waits, name)
		}
	case "Map":
		for _, key := range []string{"ItemProcessor", "Iterator"} {
			if sub, ok := s[key].(map[string]any); ok {
				if err := d.collect(sub, fmt.Sprintf("Map %q", name)); err != nil {
					return err
				}
			}
		}
	case "Parallel":
		branches, _ := s["Branches"].([]any)
		for i, b := range branches {
			sub, ok := b.(map[string]any)
			if !ok {
				return fmt.Errorf("parse definition: Parallel %q branch %d is not an object", name, i)
			}
			if err := d.collect(sub, fmt.Sprintf("Parallel %q branch %d", name, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// collectTask records a Task state's resource and timeout.
func (d *definition) collectTask(name string, s map[string]any) error {
	resource, _ := s["Resource"].(string)
	if resource == "" {
		return fmt.Errorf("parse definition: Task %q has no Resource", name)
	}
	spec := taskSpec{Resource: resource, TimeoutSeconds: defaultTaskTimeoutSeconds}
	if t, ok := s["TimeoutSeconds"].(float64); ok && t > 0 {
		spec.TimeoutSeconds = int(t)
	}
	if prev, ok := d.tasks[name]; ok && prev != spec {
		return fmt.Errorf("parse definition: two Task states named %q with different resources or timeouts", name)
	}
	d.tasks[name] = spec
	return nil
}

// topLevelState reports whether name is a state of the top-level scope.
func (d *definition) topLevelState(name string) bool {
	_, ok := d.raw["States"].(map[string]any)[name]
	return ok
}

// startingAt returns the definition to run: scaled (see scaled), with StartAt set to
// state when it is not empty (how a redrive resumes).
func (d *definition) startingAt(state string, scale float64) map[string]any {
	out := d.raw
	if scale != 1 {
		out = scaled(d.raw, scale)
	}
	if state != "" {
		out = maps.Clone(out)
		out["StartAt"] = state
	}
	return out
}

// scaled returns a deep copy of a definition scope with every Wait state's Seconds and
// every retrier's IntervalSeconds and MaxDelaySeconds multiplied by scale: the same
// backoff shape and jitter, faster. Task timeouts are left alone.
func scaled(scope map[string]any, scale float64) map[string]any {
	var out map[string]any
	b, _ := json.Marshal(scope) // it was parsed from JSON
	_ = json.Unmarshal(b, &out)
	scaleScope(out, scale)
	return out
}

func scaleScope(scope map[string]any, scale float64) {
	states, _ := scope["States"].(map[string]any)
	for _, v := range states {
		s, _ := v.(map[string]any)
		if s == nil {
			continue
		}
		if secs, ok := s["Seconds"].(float64); ok && s["Type"] == "Wait" {
			s["Seconds"] = secs * scale
		}
		retry, _ := s["Retry"].([]any)
		for _, r := range retry {
			r, _ := r.(map[string]any)
			if r == nil {
				continue
			}
			interval := 1.0 // the States Language default
			if v, ok := r["IntervalSeconds"].(float64); ok {
				interval = v
			}
			r["IntervalSeconds"] = interval * scale
			if v, ok := r["MaxDelaySeconds"].(float64); ok {
				r["MaxDelaySeconds"] = v * scale
			}
		}
		for _, key := range []string{"ItemProcessor", "Iterator"} {
			if sub, ok := s[key].(map[string]any); ok {
				scaleScope(sub, scale)
			}
		}
		branches, _ := s["Branches"].([]any)
		for _, b := range branches {
			if sub, ok := b.(map[string]any); ok {
				scaleScope(sub, scale)
			}
		}
	}
}

// overrides expands per-state durations into the interpreter's millisecond maps. The key
// "*" applies to every listed state without an entry of its own.
func overrides(byName map[string]time.Duration, names []string) (map[string]int64, error) {
	out := map[string]int64{}
	for name, d := range byName {
		if d < 0 {
			return nil, fmt.Errorf("override for %q is negative", name)
		}
		if name != "*" && !slices.Contains(names, name) {
			return nil, fmt.Errorf("override for %q: no such state", name)
		}
	}
	for _, name := range names {
		d, ok := byName[name]
		if !ok {
			d, ok = byName["*"]
		}
		if ok {
			out[name] = d.Milliseconds()
		}
	}
	return out, nil
}
