package lambdatest

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/pgrotate/pgrotate/internal/modroot"
)

// emulatorPkg is the emulator's command. tools/go.mod, a module of its own, lists it as a tool,
// so its dependencies stay out of the main module's graph.
const emulatorPkg = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie"

// lambdas are the mains under test, as the Makefile builds them (but for this machine).
var lambdas = []string{"rotator", "preflight", "cloneuser", "setpassword", "testlogin", "checkreplicas", "redeploy", "checkrollout", "retireprevious", "rethrow", "evidence"}

// binDir holds aws-lambda-rie and <name>/bootstrap, built once by TestMain.
var binDir string

func TestMain(m *testing.M) {
	flag.Parse() // for testing.Verbose
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "lambdatest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "lambdatest:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	began := time.Now()
	if err := build(dir); err != nil {
		fmt.Fprintln(os.Stderr, "lambdatest:", err)
		return 1
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "lambdatest: built the emulator and %d mains in %s\n", len(lambdas), time.Since(began).Round(time.Millisecond))
	}
	binDir = dir
	return m.Run()
}

// build compiles the emulator and every main for the host, each main to <dir>/<name>/bootstrap
// with the flags of the deployed functions, for this machine instead of linux/arm64.
func build(dir string) error {
	root, err := modroot.Find()
	if err != nil {
		return err
	}
	goCmd, err := goBinary()
	if err != nil {
		return err
	}
	// One go build for all mains: they share most packages and the go command compiles them
	// in parallel. With several main packages, -o names a directory.
	mains := filepath.Join(dir, "mains")
	args := []string{"build", "-buildvcs=false", "-tags", "lambda.norpc", "-trimpath", "-o", mains + string(filepath.Separator)}
	for _, name := range lambdas {
		args = append(args, "./cmd/"+name)
	}
	if err := goBuild(goCmd, root, args...); err != nil {
		return err
	}
	for _, name := range lambdas {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			return err
		}
		if err := os.Rename(filepath.Join(mains, name+exeSuffix()), filepath.Join(dir, name, "bootstrap")); err != nil {
			return fmt.Errorf("place the %s bootstrap: %w", name, err)
		}
	}
	return goBuild(goCmd, filepath.Join(root, "tools"), "build", "-buildvcs=false", "-trimpath", "-o", filepath.Join(dir, "aws-lambda-rie"+exeSuffix()), emulatorPkg)
}

// goBuild runs the go command in dir, the root of the module whose packages args name.
func goBuild(goCmd, dir string, args ...string) error {
	cmd := exec.Command(goCmd, args...)
	cmd.Dir = dir
	// Static host binaries, whatever GOOS/GOARCH the caller's environment names.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %v: %w\n%s", args, err, out)
	}
	return nil
}

// goBinary finds the go command; go test puts its own toolchain first on PATH.
func goBinary() (string, error) {
	p, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("find the go command: %w", err)
	}
	return p, nil
}

func exeSuffix() string {
	if runtime.GOOS == "windows" {
		return ".exe"
	}
	return ""
}
