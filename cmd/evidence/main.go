// Command evidence is the evidence Lambda: on each EventBridge event of the rotation (an
// execution ended; Secrets Manager reported a rotation failure) it writes one
// pgrotate.evidence/v1 record to the Object Lock bucket.
package main

import (
	"context"
	"log/slog"
	"runtime/debug"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/pgrotate/pgrotate/internal/lambdaenv"
	"github.com/pgrotate/pgrotate/tasks/evidence"
)

func main() {
	env := lambdaenv.FromOS()
	h := &evidence.Handler{
		StateMachineARN: env.Required("PGROTATE_STATE_MACHINE_ARN"),
		Bucket:          env.Required("PGROTATE_EVIDENCE_BUCKET"),
		Prefix:          env.Optional("PGROTATE_EVIDENCE_PREFIX", ""),
		Version:         env.Optional("PGROTATE_VERSION", buildVersion()),
	}
	cfg := lambdaenv.Setup(context.Background(), env)
	h.Executions = sfn.NewFromConfig(cfg)
	h.Objects = s3.NewFromConfig(cfg)
	h.Log = slog.Default()
	lambda.Start(h.Handle)
}

// buildVersion is the module version the binary was built from, "(devel)" for a local build.
func buildVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		return info.Main.Version
	}
	return "(devel)"
}
