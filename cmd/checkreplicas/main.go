// Command checkreplicas is the CheckReplicas step's Lambda: one check per invocation that
// every replica replayed the change and accepts the pending version.
package main

import (
	"github.com/pgrotate/pgrotate/lambdas"
	"github.com/pgrotate/pgrotate/lambdas/spec"
)

func main() { lambdas.Main(spec.CheckReplicas) }
