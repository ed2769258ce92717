// Command preflight is the Preflight step's Lambda: it validates the rotation and proves
// nobody still holds the pending user's password before anything changes.
package main

import (
	"github.com/pgrotate/pgrotate/lambdas"
	"github.com/pgrotate/pgrotate/lambdas/spec"
)

func main() { lambdas.Main(spec.Preflight) }
