// Command testlogin is the TestLogin step's Lambda: it logs in on the primary with the
// pending version.
package main

import (
	"github.com/pgrotate/pgrotate/lambdas"
	"github.com/pgrotate/pgrotate/lambdas/spec"
)

func main() { lambdas.Main(spec.TestLogin) }
