// Command rethrow is the RotationFailed step's Lambda: it fails the execution with the caught
// error, or lets a redriven execution resume at the failed state. It reads no secret.
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/pgrotate/pgrotate/internal/lambdaenv"
	"github.com/pgrotate/pgrotate/tasks"
)

func main() {
	lambdaenv.Setup(context.Background(), lambdaenv.FromOS())
	h := &tasks.Rethrow{}
	lambda.Start(h.Handle)
}
