// Command checkrollout is the Redeploy Map's CheckRollout Lambda: one read of the forced
// deployment's rollout state per invocation.
package main

import (
	"github.com/pgrotate/pgrotate/lambdas"
	"github.com/pgrotate/pgrotate/lambdas/spec"
)

func main() { lambdas.Main(spec.CheckRollout) }
