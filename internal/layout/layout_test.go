package layout

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/pgrotate/pgrotate"

// pkg is what `go list -json` reports of a production package (tests not included).
type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports,Deps", module+"/...")
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 20 {
		t.Fatalf("go list found %d packages: not the module", len(pkgs))
	}
	return pkgs
}

// rel is the path inside the module, or "" for another module's package.
func rel(path string) string {
	if path == module {
		return "."
	}
	r, ok := strings.CutPrefix(path, module+"/")
	if !ok {
		return ""
	}
	return r
}

func under(r, dir string) bool { return r == dir || strings.HasPrefix(r, dir+"/") }

// layer ranks the layered packages: an import must point to a strictly lower layer.
// Packages outside the layers (cdk, local, the CLI, examples, test tools) are checked by
// the rules of TestNoForbiddenDependencies instead.
func layer(r string) (int, bool) {
	switch {
	case r == "workflow", r == "lambdas/spec", r == "statemachine", r == "internal/scram", r == "internal/wait", r == "internal/atomicfile":
		return 0, true // the contract, the registry's data, and leaf helpers (SCRAM verifiers, a cancellable sleep)
	case under(r, "adapters"):
		return 1, true
	case under(r, "tasks"), r == "rotator":
		return 2, true // the handlers (tasks/evidence: the evidence function's)
	case r == "internal/lambdaenv", under(r, "operator"):
		return 3, true // reading a Lambda's environment; the operator commands' library (over handlers' types and adapters)
	case r == "lambdas":
		return 4, true // the constructors the mains and local/ share
	case under(r, "cmd") && r != "cmd/pgrotate":
		return 5, true // the Lambda mains
	}
	return 0, false
}

// Layer names, for the messages.
var layerName = []string{"workflow (contract)", "adapters", "handlers", "environment or operator library", "constructors", "mains"}

func TestImportsPointDown(t *testing.T) {
	for _, p := range listPackages(t) {
		from := rel(p.ImportPath)
		lf, ok := layer(from)
		if !ok {
			continue
		}
		for _, imp := range p.Imports {
			to := rel(imp)
			if to == "" {
				continue
			}
			lt, ok := layer(to)
			if !ok {
				t.Errorf("%s (%s) imports %s, which is outside the layers", from, layerName[lf], to)
				continue
			}
			if under(from, "tasks") && under(to, "adapters") {
				// The state handlers declare the interfaces they need; the mains bring the adapters.
				t.Errorf("tasks imports %s: a state handler imports no adapter", to)
			}
			if lt >= lf {
				t.Errorf("back-arrow: %s (%s) imports %s (%s); arrows point mains → handlers → adapters → workflow",
					from, layerName[lf], to, layerName[lt])
			}
		}
	}
}

func TestNoForbiddenDependencies(t *testing.T) {
	for _, p := range listPackages(t) {
		from := rel(p.ImportPath)
		pgxReported := false
		for _, dep := range p.Deps {
			to := rel(dep)
			isPgx := strings.HasPrefix(dep, "github.com/jackc/pgx")
			switch {
			case isPgx && pgxReported:
				continue // one message for pgx and its packages
			case (from == "workflow" || from == "lambdas/spec" || from == "statemachine") && to != "":
				t.Errorf("%s imports %s: it imports nothing of the module", from, to)
			case under(to, "local") && !under(from, "local") && from != "cmd/pgrotate":
				// cmd/pgrotate is the CLI of the local proof (demo, bench); nothing else runs it.
				t.Errorf("production package %s depends on %s: only local/ and the pgrotate CLI may", from, to)
			case under(from, "cdk") && forbiddenForCDK(dep):
				pgxReported = pgxReported || isPgx
				t.Errorf("%s depends on %s: the CDK app never compiles pgx, a handler or an adapter", from, dep)
			}
		}
	}
}

func forbiddenForCDK(dep string) bool {
	if strings.HasPrefix(dep, "github.com/jackc/pgx") {
		return true
	}
	r := rel(dep)
	return under(r, "tasks") || r == "rotator" || r == "lambdas" || under(r, "adapters") || under(r, "local") || under(r, "cmd")
}
