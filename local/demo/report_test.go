package demo

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pgrotate/pgrotate/local/cause"
	"github.com/pgrotate/pgrotate/local/fleet"
	"github.com/pgrotate/pgrotate/local/probe"
)

func TestLatency(t *testing.T) {
	ms := func(vs ...int) []time.Duration {
		var out []time.Duration
		for _, v := range vs {
			out = append(out, time.Duration(v)*time.Millisecond)
		}
		return out
	}
	tests := []struct {
		in   []time.Duration
		want Latency
	}{
		{nil, Latency{}},
		{ms(7), Latency{7, 7}},
		{ms(30, 10), Latency{10, 30}},
		{ms(30, 10, 20), Latency{20, 30}},
		{ms(40, 10, 30, 20), Latency{20, 40}},
	}
	for _, tt := range tests {
		if got := latency(tt.in); got != tt.want {
			t.Errorf("latency(%v) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestReportOK(t *testing.T) {
	good := func(strategy string) Report {
		r := Report{Strategy: strategy, Rotations: RotationCounts{Requested: 2, Succeeded: 2},
			LoginsAfter: []Login{{Stage: "AWSCURRENT", OK: true}, {Stage: "AWSPREVIOUS", OK: true}}}
		r.Connections.Primary.Attempts, r.Connections.Replica.Attempts = 10, 10
		return r
	}
	tests := []struct {
		name   string
		change func(*Report)
		strat  string
		want   bool
	}{
		{"alternating, clean", func(*Report) {}, StrategyAlternating, true},
		{"alternating, a failed login", func(r *Report) { r.Connections.Failed = 1 }, StrategyAlternating, false},
		{"alternating, a failed request", func(r *Report) { r.Requests.Failed = 1 }, StrategyAlternating, false},
		{"alternating, a crashed task", func(r *Report) { r.Requests.Crashed = 1 }, StrategyAlternating, false},
		{"a failed rotation", func(r *Report) { r.Rotations.Succeeded, r.Rotations.Failed = 1, 1 }, StrategyAlternating, false},
		{"AWSCURRENT refused", func(r *Report) { r.LoginsAfter[0].OK = false }, StrategyAlternating, false},
		{"interrupted", func(r *Report) { r.Interrupted = true }, StrategyAlternating, false},
		{"alternating, AWSPREVIOUS refused", func(r *Report) { r.LoginsAfter[1].OK = false }, StrategyAlternating, false},
		{"alternating, the replica never probed", func(r *Report) { r.Connections.Replica.Attempts = 0 }, StrategyAlternating, false},
		{"alternating, the primary never probed", func(r *Report) { r.Connections.Primary.Attempts = 0 }, StrategyAlternating, false},
		{"single-user, AWSPREVIOUS refused (its password was changed in place)", func(r *Report) { r.LoginsAfter[1].OK = false }, StrategySingleUser, true},
		{"single-user with failed logins", func(r *Report) { r.Connections.Failed = 40 }, StrategySingleUser, true},
		{"single-user, a failed rotation", func(r *Report) { r.Rotations.Succeeded = 1 }, StrategySingleUser, false},
		{"configuration test passed", func(r *Report) { r.ConfigurationTest = &ConfigurationTest{Result: "passed"} }, StrategyAlternating, true},
		{"configuration test failed", func(r *Report) {
			r.ConfigurationTest = &ConfigurationTest{Result: "failed", Error: "RotationMisconfigured", Message: "service x missing"}
		}, StrategyAlternating, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := good(tt.strat)
			tt.change(&r)
			if got := r.OK(); got != tt.want {
				t.Errorf("OK() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestWriteSummaryAndMarkdown(t *testing.T) {
	refused := cause.Failure{Reason: "SQLSTATE 28P01: x", Cause: cause.AuthRefused}
	r := &Report{
		Strategy: StrategySingleUser, Tasks: 4, Rotations: RotationCounts{Requested: 2, Succeeded: 2},
		Connections: probe.Report{Attempts: 100, Failed: 3, Primary: probe.Counts{Attempts: 50, Failed: 2}, Replica: probe.Counts{Attempts: 50, Failed: 1},
			ByCause:  cause.Counts{cause.AuthRefused: 3},
			Failures: []probe.Failure{{Target: "primary", Failure: refused}, {Target: "primary", Failure: refused}, {Target: "replica", Failure: refused}}},
		Requests: fleet.Stats{Counts: fleet.Counts{Attempts: 10, Failed: 2}, Draining: fleet.Counts{Attempts: 4, Failed: 2},
			ByCause: cause.Counts{cause.AuthRefused: 1, cause.CutByShutdown: 1},
			Failures: []fleet.RequestFailure{{Draining: true, Failure: cause.Failure{Reason: `HTTP 503 {"error":"SQLSTATE 28P01"}`, Cause: cause.AuthRefused, SQLState: "28P01"}},
				{Draining: true, Failure: cause.Failure{Reason: `request: Get "http://127.0.0.1:1/work?sleep=1s": EOF`, Cause: cause.CutByShutdown}}}},
		PromoteMS:  Latency{P50: 40, Max: 1500},
		RotationMS: Latency{P50: 1200, Max: 1300},
		ActiveUser: "app_user",
	}
	var buf bytes.Buffer
	r.WriteSummary(&buf)
	for _, want := range []string{"2/2 rotations succeeded", "3 of 100 fresh logins failed (primary 2/50, replica 1/50)",
		"failed logins by cause:\n      3× authentication refused\n             2× primary: SQLSTATE 28P01",
		"failed app requests by cause:\n      1× authentication refused\n             1× draining task: HTTP 503 {\"error\":\"SQLSTATE 28P01\"}\n      1× request cut by the task's shutdown\n             1× draining task: request: Get",
		"p50 40ms, max 1.50s", "result: OK (the baseline"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, buf.String())
		}
	}
	buf.Reset()
	WriteMarkdown(&buf, []*Report{r})
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[2], "| single-user | 2/2 | 4 | 100 | 3 (primary 2, replica 1) | 10 | 2 (2 of 4) | 40ms | 1.50s | 1.20s |") {
		t.Errorf("markdown:\n%s", buf.String())
	}
}

func TestConfigurationTestReport(t *testing.T) {
	tests := []struct {
		name     string
		c        ConfigurationTest
		wantJSON string
		wantLine []string
	}{
		{"passed", ConfigurationTest{Result: "passed", MS: 12}, `"configuration_test":{"result":"passed","ms":12}`, []string{"testSecret): passed  12ms"}},
		{"failed", ConfigurationTest{Result: "failed", MS: 7, Error: "RotationMisconfigured", Message: "rotation of x is misconfigured: service prod/web: missing"},
			`"configuration_test":{"result":"failed","ms":7,"error":"RotationMisconfigured","message":"rotation of x is misconfigured: service prod/web: missing"}`,
			[]string{"failed  7ms", "RotationMisconfigured: rotation of x is misconfigured"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c
			r := &Report{Strategy: StrategyAlternating, ConfigurationTest: &c}
			js, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(js), tc.wantJSON) {
				t.Errorf("JSON %s lacks %s", js, tc.wantJSON)
			}
			var buf bytes.Buffer
			r.WriteSummary(&buf)
			for _, want := range tc.wantLine {
				if !strings.Contains(buf.String(), want) {
					t.Errorf("summary lacks %q:\n%s", want, buf.String())
				}
			}
		})
	}
}
