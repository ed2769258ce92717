package modroot

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestFind(t *testing.T) {
	here, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(filepath.Dir(here)) // internal/modroot → the module root
	for _, tc := range []struct {
		name, cwd string
	}{
		{"module root", root},
		{"package dir", here},
		{"tools module inside", filepath.Join(root, "tools")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Chdir(tc.cwd)
			got, err := Find()
			if err != nil || got != root {
				t.Fatalf("Find() = %q, %v; want %q", got, err, root)
			}
		})
	}
	t.Run("outside", func(t *testing.T) {
		t.Chdir(t.TempDir())
		if got, err := Find(); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Find() = %q, %v; want ErrNotFound", got, err)
		}
	})
}
