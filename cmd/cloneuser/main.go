// Command cloneuser is the CloneUser step's Lambda: it makes the pending user the active
// user's twin on the primary and checks privilege parity.
package main

import (
	"github.com/pgrotate/pgrotate/lambdas"
	"github.com/pgrotate/pgrotate/lambdas/spec"
)

func main() { lambdas.Main(spec.CloneUser) }
