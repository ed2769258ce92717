// Command evidence is the evidence Lambda: on each EventBridge event of the rotation (an
// execution ended; Secrets Manager reported a rotation failure) it writes one
// pgrotate.evidence/v1 record to the Object Lock bucket.
package main

import (
	"github.com/pgrotate/pgrotate/lambdas"
	"github.com/pgrotate/pgrotate/lambdas/spec"
)

func main() { lambdas.Main(spec.Evidence) }
