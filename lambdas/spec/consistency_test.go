package spec_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/pgrotate/pgrotate/cdk/rotation"
	"github.com/pgrotate/pgrotate/internal/lambdaenv"
	"github.com/pgrotate/pgrotate/lambdas"
	"github.com/pgrotate/pgrotate/lambdas/spec"
	"github.com/pgrotate/pgrotate/statemachine"
)

// The registry is the one list: the Makefile, the cmd/ directories, the ASL placeholders,
// the CDK's functions and the constructors (through which cmd/ and local/backend wire the
// handlers; local/backend wires exactly spec.Steps) must all agree with it.
func TestRegistryConsistency(t *testing.T) {
	var steps, placeholders []string
	for _, f := range spec.Steps() {
		steps = append(steps, f.Name)
		placeholders = append(placeholders, f.Placeholder)
	}
	tests := []struct {
		name      string
		got, want []string
	}{
		{"Makefile LAMBDAS", makefileLambdas(t), sorted(spec.Names())},
		{"cmd/ directories of Lambda functions", cmdDirs(t), sorted(spec.Names())},
		{"ASL ${…FunctionArn} placeholders", aslPlaceholders(t), sorted(placeholders)},
		{"statemachine.Keys", functionKeys(statemachine.Keys()), sorted(placeholders)},
		{"cdk/rotation functions", sorted(rotation.FunctionNames()), sorted(steps)},
		{"lambdas constructors (cmd/ and local/backend wire through them)", sorted(lambdas.Names()), sorted(spec.Names())},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !slices.Equal(tc.got, tc.want) {
				t.Errorf("%s = %v, the registry (lambdas/spec) says %v", tc.name, tc.got, tc.want)
			}
		})
	}
}

// Every variable a function is given (its registry Env: the CDK and local/backend give no
// other, as their tests check) is read by its constructor, and it reads no other.
func TestConstructorsReadTheirEnv(t *testing.T) {
	for _, f := range spec.Functions() {
		t.Run(f.Name, func(t *testing.T) {
			read := map[string]bool{}
			env := &lambdaenv.Env{Lookup: func(k string) (string, bool) {
				read[k] = true
				return "", false
			}}
			// Required variables are missing: the constructor still asks for each, then
			// reports them; only what it asked for matters here.
			if _, err := lambdas.Handler(f.Name, lambdas.Deps{Env: env, Clients: unusedClients()}); err != nil && !strings.Contains(err.Error(), "is not set") {
				t.Fatalf("Handler(%s): %v", f.Name, err)
			}
			var got []string
			for k := range read {
				got = append(got, k)
			}
			if got, want := sorted(got), sorted(f.Env); !slices.Equal(got, want) {
				t.Errorf("%s's constructor reads %v; the registry gives it %v", f.Name, got, want)
			}
		})
	}
}

// unusedClients are SDK clients that are never called: no request leaves the test.
func unusedClients() lambdas.Clients {
	return lambdas.Clients{
		SecretsManager: secretsmanager.New(secretsmanager.Options{Region: "eu-west-1"}),
		StepFunctions:  sfn.New(sfn.Options{Region: "eu-west-1"}),
		ECS:            ecs.New(ecs.Options{Region: "eu-west-1"}),
	}
}

func TestRegistryEntriesAreComplete(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range spec.Functions() {
		if f.Name == "" || f.ID == "" || f.Description == "" {
			t.Errorf("%+v: name, id and description are required", f)
		}
		if seen[f.Name] {
			t.Errorf("%s listed twice", f.Name)
		}
		seen[f.Name] = true
		for _, e := range f.Env {
			if !strings.HasPrefix(e, "PGROTATE_") {
				t.Errorf("%s: env %q lacks the PGROTATE_ prefix", f.Name, e)
			}
		}
		if f.Has(spec.Database) != (f.Reads(spec.EnvCABundle) && f.Reads(spec.EnvConnectTimeout)) {
			t.Errorf("%s: database functions read exactly the connection settings", f.Name)
		}
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func makefileLambdas(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^LAMBDAS\s*:=\s*(.*)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("Makefile has no LAMBDAS := line")
	}
	return sorted(strings.Fields(string(m[1])))
}

// cmdDirs lists cmd/<name> directories except the CLI, pgrotate.
func cmdDirs(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(repoRoot(t), "cmd"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && e.Name() != "pgrotate" {
			out = append(out, e.Name())
		}
	}
	return sorted(out)
}

func aslPlaceholders(t *testing.T) []string {
	t.Helper()
	seen := map[string]bool{}
	for _, m := range regexp.MustCompile(`\$\{([A-Za-z0-9]+FunctionArn)\}`).FindAllStringSubmatch(statemachine.Definition, -1) {
		seen[m[1]] = true
	}
	var out []string
	for k := range seen {
		out = append(out, k)
	}
	return sorted(out)
}

func functionKeys(keys []string) []string {
	var out []string
	for _, k := range keys {
		if strings.HasSuffix(k, "FunctionArn") {
			out = append(out, k)
		}
	}
	return sorted(out)
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return out
}
