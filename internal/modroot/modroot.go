// Package modroot finds the pgrotate module's root directory, where the Makefile, the
// Lambda assets (bin/), node_modules and examples/app are, from a working directory inside it.
package modroot

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
)

// module is the go.mod line naming the pgrotate module; tools/go.mod names another.
const module = "module github.com/pgrotate/pgrotate\n"

// ErrNotFound is returned when no directory at or above the working directory holds
// the pgrotate module's go.mod.
var ErrNotFound = errors.New("no pgrotate go.mod at or above the working directory")

// Find walks up from the working directory to the directory holding the pgrotate go.mod.
func Find() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte(module)) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", ErrNotFound
		}
		dir = parent
	}
}
