// Command setpassword is the SetPassword step's Lambda: it sets the pending user's password
// on the primary as a SCRAM verifier and records the WAL position.
package main

import (
	"github.com/pgrotate/pgrotate/lambdas"
	"github.com/pgrotate/pgrotate/lambdas/spec"
)

func main() { lambdas.Main(spec.SetPassword) }
