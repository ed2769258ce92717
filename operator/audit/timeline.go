package audit

import (
	"fmt"
	"time"
)

// The timeline's drawing area, in SVG user units (the viewBox): lanes for the rotations,
// the policy (intervals between successful rotations) and the failures, over a time axis.
const (
	svgWidth     = 1000.0
	svgHeight    = 250.0
	plotLeft     = 110.0
	plotRight    = 980.0
	laneRotation = 60.0
	lanePolicy   = 115.0
	laneFailure  = 165.0
	axisY        = 200.0
	policyHeight = 22.0
	maxTicks     = 8
)

// timeline is the geometry the HTML template draws; every number is computed here.
type timeline struct {
	Width, Height, Left, Right, AxisY     float64
	LaneRotation, LanePolicy, LaneFailure float64
	PolicyTop, PolicyHeight               float64
	Ticks                                 []tick
	Spans                                 []span // rotation start → end
	Windows                               []band // within the policy window
	Overdue                               []band // past the policy window
	Deadlines                             []mark // where an interval ran out of policy (or will)
	Rotations                             []mark
	Failures                              []mark
}

type tick struct {
	X     float64
	Label string
}

type span struct{ X1, X2 float64 }

type band struct {
	X, W  float64
	Title string
}

type mark struct {
	X     float64
	Class string
	Title string
}

// axis maps times of [from, to] onto [plotLeft, plotRight].
type axis struct{ from, to time.Time }

func (a axis) x(t time.Time) float64 {
	switch {
	case t.Before(a.from):
		t = a.from
	case t.After(a.to):
		t = a.to
	}
	return plotLeft + (plotRight-plotLeft)*float64(t.Sub(a.from))/float64(a.to.Sub(a.from))
}

func (a axis) contains(t time.Time) bool { return !t.Before(a.from) && !t.After(a.to) }

// newTimeline lays the report out on the period's axis.
func newTimeline(r *Report) timeline {
	a := axis{from: r.From, to: r.Until}
	if !a.to.After(a.from) {
		a.from = a.to.Add(-time.Hour)
	}
	tl := timeline{
		Width: svgWidth, Height: svgHeight, Left: plotLeft, Right: plotRight, AxisY: axisY,
		LaneRotation: laneRotation, LanePolicy: lanePolicy, LaneFailure: laneFailure,
		PolicyTop: lanePolicy - policyHeight/2, PolicyHeight: policyHeight, Ticks: ticks(a),
	}
	maxAge := time.Duration(r.MaxAge)
	for _, iv := range r.Intervals {
		tl.addInterval(a, iv, maxAge)
	}
	for _, rot := range r.Rotations {
		at := rot.StartedAt
		if rot.EndedAt != nil {
			at = *rot.EndedAt
			tl.Spans = append(tl.Spans, span{X1: a.x(rot.StartedAt), X2: a.x(at)})
		}
		if rot.RotatedAt != nil {
			at = *rot.RotatedAt
		}
		tl.Rotations = append(tl.Rotations, mark{X: a.x(at), Class: rot.Outcome,
			Title: fmt.Sprintf("%s: %s, %s (%s)", rot.Version, rot.Outcome, fmtTime(at), rot.Execution)})
	}
	for _, f := range r.Failures {
		class := "resolved"
		if f.Resolution == ResolvedOpen {
			class = "open"
		}
		tl.Failures = append(tl.Failures, mark{X: a.x(f.At), Class: class,
			Title: fmt.Sprintf("%s %s in %s at %s: %s", orDash(f.Version), failureName(f), orDash(f.State), fmtTime(f.At), f.Resolution)})
	}
	return tl
}

// addInterval draws an interval as its policy window (from its start, MaxAge long) and,
// past the window, its overdue part, with the deadline between them.
func (tl *timeline) addInterval(a axis, iv Interval, maxAge time.Duration) {
	deadline := iv.From.Add(maxAge)
	end := iv.To
	if deadline.Before(end) {
		end = deadline
	}
	if x1, x2 := a.x(iv.From), a.x(end); x2 > x1 {
		tl.Windows = append(tl.Windows, band{X: x1, W: x2 - x1,
			Title: fmt.Sprintf("%s → %s: %s, within the policy", fmtTime(iv.From), fmtTime(iv.To), iv.Length)})
	}
	if iv.OverPolicy {
		if x1, x2 := a.x(deadline), a.x(iv.To); x2 > x1 {
			tl.Overdue = append(tl.Overdue, band{X: x1, W: x2 - x1,
				Title: fmt.Sprintf("%s → %s: %s, over the policy of %s by %s", fmtTime(iv.From), fmtTime(iv.To), iv.Length,
					Seconds(maxAge), Seconds(time.Duration(iv.Length)-maxAge))})
		}
	}
	if a.contains(deadline) && (iv.OverPolicy || iv.ToVersion == "") {
		tl.Deadlines = append(tl.Deadlines, mark{X: a.x(deadline), Class: "deadline", Title: "rotation due by " + fmtTime(deadline)})
	}
}

// tickSteps are the axis steps, smallest first; the smallest giving at most maxTicks ticks
// is used.
var tickSteps = []time.Duration{
	time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute, 15 * time.Minute,
	time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour, 7 * 24 * time.Hour, 14 * 24 * time.Hour,
	30 * 24 * time.Hour, 91 * 24 * time.Hour, 182 * 24 * time.Hour, 365 * 24 * time.Hour,
}

func ticks(a axis) []tick {
	span := a.to.Sub(a.from)
	step := tickSteps[len(tickSteps)-1]
	for _, s := range tickSteps {
		if span/s <= maxTicks {
			step = s
			break
		}
	}
	layout := "2006-01-02"
	switch {
	case step < time.Minute:
		layout = "15:04:05"
	case step < 24*time.Hour:
		layout = "01-02 15:04"
	}
	var out []tick
	for t := a.from.Truncate(step); !t.After(a.to); t = t.Add(step) {
		if !t.Before(a.from) {
			out = append(out, tick{X: a.x(t), Label: t.UTC().Format(layout)})
		}
	}
	return out
}
