// Command redeploy is the Redeploy Map's UpdateService Lambda: it forces a new deployment of
// one ECS service so its tasks relaunch with the promoted secret.
package main

import (
	"github.com/pgrotate/pgrotate/lambdas"
	"github.com/pgrotate/pgrotate/lambdas/spec"
)

func main() { lambdas.Main(spec.Redeploy) }
