// Command retireprevious is the RetirePrevious step's Lambda: once every service's redeploy
// completed, it expires the previous user's password after the grace (opt-in).
package main

import (
	"github.com/pgrotate/pgrotate/lambdas"
	"github.com/pgrotate/pgrotate/lambdas/spec"
)

func main() { lambdas.Main(spec.RetirePrevious) }
