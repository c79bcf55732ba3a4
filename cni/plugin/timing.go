package plugin

import (
	"encoding/json"
	"io"
	"time"
)

// TimingsEnv names a file that sluice-cni appends one line of step timings
// to per command (Timings); unset, nothing is measured. The emulated-node
// benchmark of ADD and DEL sets it (docs/benchmarks.md).
const TimingsEnv = "SLUICE_CNI_TIMINGS"

// Timing is one command's line in the timings file: its steps in order,
// each with the microseconds since the previous step ended.
type Timing struct {
	Command string `json:"command"`
	Result  string `json:"result"`
	Steps   []Step `json:"steps"`
	// TotalMicros is the command's time inside the process, from the
	// start of the command's function to the stats file written.
	TotalMicros int64 `json:"totalUs"`
}

// Step is one step of a command.
type Step struct {
	Name   string `json:"step"`
	Micros int64  `json:"us"`
}

// stepClock measures the steps of one command. A nil clock measures
// nothing, at the cost of a nil check.
type stepClock struct {
	start, last time.Time
	steps       []Step
}

func newStepClock() *stepClock {
	now := time.Now()
	return &stepClock{start: now, last: now}
}

// mark ends the step called name (the time since the previous mark).
func (c *stepClock) mark(name string) {
	if c == nil {
		return
	}
	now := time.Now()
	c.steps = append(c.steps, Step{Name: name, Micros: now.Sub(c.last).Microseconds()})
	c.last = now
}

// write appends the command's line to w.
func (c *stepClock) write(w io.Writer, command, result string) error {
	b, err := json.Marshal(Timing{Command: command, Result: result, Steps: c.steps, TotalMicros: time.Since(c.start).Microseconds()})
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// mark ends a step of the command being timed, if one is.
// At level debug each step is logged as it ends.
func (p *Plugin) mark(name string) {
	p.clock.mark(name)
	if p.log.enabled(LogDebug) {
		p.debugf("step %q done", name)
	}
}
