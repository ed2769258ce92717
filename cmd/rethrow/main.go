// Command rethrow is the RotationFailed step's Lambda: it fails the execution with the caught
// error, or lets a redriven execution resume at the failed state. It reads no secret.
package main

import (
	"github.com/pgrotate/pgrotate/lambdas"
	"github.com/pgrotate/pgrotate/lambdas/spec"
)

func main() { lambdas.Main(spec.Rethrow) }
