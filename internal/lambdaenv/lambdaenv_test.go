package lambdaenv

import (
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) *Env {
	return &Env{Lookup: func(k string) (string, bool) { v, ok := m[k]; return v, ok }}
}

func TestEnv(t *testing.T) {
	e := env(map[string]string{
		"A":        "x",
		"N":        "7",
		"D":        "3s",
		"SERVICES": `[{"cluster":"c","service":"s"}]`,
	})
	if e.Required("A") != "x" || e.Int("N", 1) != 7 || e.Duration("D", time.Second) != 3*time.Second || e.Optional("MISSING", "def") != "def" {
		t.Fatal("values read wrongly")
	}
	if s := e.Services("SERVICES"); len(s) != 1 || s[0].Cluster != "c" || s[0].Service != "s" {
		t.Fatalf("services: %+v", s)
	}
	if err := e.Err(); err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func TestEnvErrorsNameTheVariable(t *testing.T) {
	tests := map[string]func(*Env){
		"REQ":      func(e *Env) { e.Required("REQ") },
		"N":        func(e *Env) { e.Int("N", 1) },
		"D":        func(e *Env) { e.Duration("D", time.Second) },
		"SERVICES": func(e *Env) { e.Services("SERVICES") },
		"PARTIAL":  func(e *Env) { e.Services("PARTIAL") },
		"REPLICAS": func(e *Env) { e.Endpoints("REPLICAS") },
		"NOPORT":   func(e *Env) { e.Endpoints("NOPORT") },
	}
	vars := map[string]string{"N": "-2", "D": "soon", "SERVICES": "{", "PARTIAL": `[{"cluster":"c"}]`, "REPLICAS": "x", "NOPORT": `[{"host":"r"}]`}
	for name, read := range tests {
		t.Run(name, func(t *testing.T) {
			e := env(vars)
			read(e)
			if err := e.Err(); err == nil || !strings.Contains(err.Error(), name) {
				t.Fatalf("want an error naming %s, got %v", name, err)
			}
		})
	}
}
