// Package lambdaenv reads the static configuration of pgrotate's Lambda functions from
// their environment, once, at start. A missing or malformed variable stops the function
// before it serves a single event, with a message that names the variable.
package lambdaenv

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/pgrotate/pgrotate/adapters/postgres"
	"github.com/pgrotate/pgrotate/lambdas/spec"
	"github.com/pgrotate/pgrotate/workflow"
)

// Env reads variables through a lookup function (os.LookupEnv in mains, a map in tests) and
// remembers the first problem.
type Env struct {
	Lookup func(string) (string, bool)
	errs   []error
}

// FromOS reads the process environment.
func FromOS() *Env { return &Env{Lookup: os.LookupEnv} }

// Required returns a variable that must be set.
func (e *Env) Required(name string) string {
	v, ok := e.Lookup(name)
	if !ok || v == "" {
		e.errs = append(e.errs, fmt.Errorf("%s is not set", name))
	}
	return v
}

// Optional returns a variable or def.
func (e *Env) Optional(name, def string) string {
	if v, ok := e.Lookup(name); ok && v != "" {
		return v
	}
	return def
}

// Int returns a positive integer variable or def.
func (e *Env) Int(name string, def int) int { return positive(e, name, def, strconv.Atoi, "integer") }

// Duration returns a Go duration variable or def.
func (e *Env) Duration(name string, def time.Duration) time.Duration {
	return positive(e, name, def, time.ParseDuration, "duration")
}

// positive reads name with parse, or def when it is unset or empty; a value parse refuses or
// that is not above zero is an error of e.
func positive[T int | time.Duration](e *Env, name string, def T, parse func(string) (T, error), what string) T {
	v, ok := e.Lookup(name)
	if !ok || v == "" {
		return def
	}
	n, err := parse(v)
	if err != nil || n <= 0 {
		e.errs = append(e.errs, fmt.Errorf("%s=%q is not a positive %s", name, v, what))
	}
	return n
}

// Services reads a JSON list of {"cluster","service"}.
func (e *Env) Services(name string) []workflow.Service {
	v := e.Optional(name, "[]")
	var out []workflow.Service
	if err := json.Unmarshal([]byte(v), &out); err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s is not a JSON list of {\"cluster\",\"service\"}", name))
		return nil
	}
	for i, s := range out {
		if s.Cluster == "" || s.Service == "" {
			e.errs = append(e.errs, fmt.Errorf("%s[%d] needs cluster and service", name, i))
		}
	}
	return out
}

// Endpoints reads an optional JSON list of {"host","port"}.
func (e *Env) Endpoints(name string) []workflow.Endpoint {
	var out []workflow.Endpoint
	if err := json.Unmarshal([]byte(e.Optional(name, "[]")), &out); err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s is not a JSON list of {\"host\",\"port\"}", name))
		return nil
	}
	for i, ep := range out {
		if ep.Host == "" || ep.Port < 1 || ep.Port > 65535 {
			e.errs = append(e.errs, fmt.Errorf("%s[%d] needs a host and a TCP port", name, i))
		}
	}
	return out
}

// Postgres reads the database connection settings shared by the database-facing steps.
func (e *Env) Postgres() postgres.Options {
	return postgres.Options{
		CABundle:       e.Optional(spec.EnvCABundle, ""),
		ConnectTimeout: e.Duration(spec.EnvConnectTimeout, postgres.DefaultConnectTimeout),
	}
}

// Err returns every problem found so far.
func (e *Env) Err() error {
	if len(e.errs) == 0 {
		return nil
	}
	return fmt.Errorf("configuration: %v", e.errs)
}

// Setup installs the Lambda JSON logger and loads the AWS configuration. It exits the
// process on failure: the function cannot serve anything without them.
func Setup(ctx context.Context, e *Env) aws.Config {
	slog.SetDefault(lambdacontext.NewLogger())
	if err := e.Err(); err != nil {
		Exit(err)
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		Exit(fmt.Errorf("load AWS configuration: %w", err))
	}
	return cfg
}

// Exit logs err and stops the process (only at start, never in a handler).
func Exit(err error) {
	slog.Error("cannot start", "error", err.Error())
	os.Exit(1)
}
