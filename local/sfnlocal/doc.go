// Package sfnlocal runs an Amazon States Language definition on this machine with
// aws-local-stepfunctions (Node 22), its Task states calling Go handlers over HTTP on
// 127.0.0.1, and exposes it through the method set of the AWS SDK's Step Functions client
// (*sfn.Client), so code written against Step Functions runs unchanged in tests and in
// `pgrotate demo`.
//
// Each execution (and each redrive) is one Node process running the script runner.mjs,
// embedded here. The script overrides every Task state with a local handler that POSTs
// {"resource","state","input"} to the Machine's HTTP server; the Go side calls the Handler
// registered for that Resource ARN and answers its output or the error aws-lambda-go would
// report (errorType = the Go type name of the error). The script streams the interpreter's
// event log as JSON lines, which the Machine turns into Step Functions history events.
//
// What differs from Step Functions: redrive re-runs a whole Map state rather than only its
// failed iterations; Retry intervals and Wait durations can be overridden for speed;
// history event ids are sequential, each event's previous id is the one before it.
package sfnlocal
