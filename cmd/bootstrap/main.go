// Command bootstrap is the Lambda behind the CloudFormation custom resource that creates the
// first app user of a new deployment from the app secret (see tasks.Bootstrap). cfn.LambdaWrap
// sends the answer to CloudFormation's response URL.
package main

import (
	"github.com/pgrotate/pgrotate/lambdas"
	"github.com/pgrotate/pgrotate/lambdas/spec"
)

func main() { lambdas.Main(spec.Bootstrap) }
