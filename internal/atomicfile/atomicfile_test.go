package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	tests := []struct {
		name     string
		existing bool
		perm     os.FileMode
	}{
		{"new file, owner only", false, 0o600},
		{"replaces a file, readable by all", true, 0o644},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "out")
			if tc.existing {
				if err := os.WriteFile(path, []byte("old contents, longer than the new"), 0o666); err != nil {
					t.Fatal(err)
				}
			}
			if err := Write(path, []byte("new\n"), tc.perm); err != nil {
				t.Fatalf("Write: %v", err)
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != "new\n" {
				t.Errorf("contents %q, %v; want %q", got, err, "new\n")
			}
			if info, err := os.Stat(path); err != nil || info.Mode().Perm() != tc.perm {
				t.Errorf("mode %v, %v; want %v", info.Mode().Perm(), err, tc.perm)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Errorf("%d entries in the directory, want only the file", len(entries))
			}
		})
	}
}

func TestWriteFailsWholly(t *testing.T) {
	dir := t.TempDir()
	// The target is a directory that is not empty: the rename fails, and nothing is left.
	path := filepath.Join(dir, "taken")
	if err := os.MkdirAll(filepath.Join(path, "inside"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, []byte("x"), 0o600); err == nil {
		t.Fatal("Write over a non-empty directory succeeded")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d entries left in the directory, want only the directory that was there", len(entries))
	}
	if err := Write(filepath.Join(dir, "missing", "f"), []byte("x"), 0o600); err == nil {
		t.Error("Write into a missing directory succeeded")
	}
}
