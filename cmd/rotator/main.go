// Command rotator is the Secrets Manager rotation function of pgrotate (and the state
// machine's Promote target): the only writer of the app secret.
package main

import (
	"github.com/pgrotate/pgrotate/lambdas"
	"github.com/pgrotate/pgrotate/lambdas/spec"
)

func main() { lambdas.Main(spec.Rotator) }
