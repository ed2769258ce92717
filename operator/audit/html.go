package audit

import (
	_ "embed"
	"html/template"
	"io"
	"strconv"
	"time"
)

//go:embed report.html.tmpl
var htmlSource string

// htmlTemplate escapes every field by its context (html/template): the page is one file,
// with its CSS inline and its timeline an inline SVG, and a Content-Security-Policy that
// allows no request at all.
var htmlTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"num":         func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) },
	"add":         func(a, b float64) float64 { return a + b },
	"date":        htmlDate,
	"users":       users,
	"startedBy":   startedBy,
	"tasks":       taskCounts,
	"failureName": failureName,
	"runOf":       runOf,
}).Parse(htmlSource))

func htmlDate(t any) string {
	switch t := t.(type) {
	case time.Time:
		return fmtTime(t)
	case *time.Time:
		return fmtTimePtr(t)
	}
	return ""
}

// htmlView is what the template reads: the report, its timeline and a few counts.
type htmlView struct {
	R               *Report
	T               timeline
	Over            bool
	Succeeded, Open int
	Verdict         string
}

func (r *Report) writeHTML(w io.Writer) error {
	v := htmlView{R: r, T: newTimeline(r), Over: r.Longest != nil && r.Longest.OverPolicy}
	for _, rot := range r.Rotations {
		if rot.RotatedAt != nil {
			v.Succeeded++
		}
	}
	for _, f := range r.Failures {
		if f.Resolution == ResolvedOpen {
			v.Open++
		}
	}
	v.Verdict = "Longest interval between successful rotations: " + r.policyLine() + "."
	return htmlTemplate.Execute(w, v)
}
