// Package sfnlocal runs an Amazon States Language definition on this machine with
// aws-local-stepfunctions (Node 22), its Task states calling Go handlers over HTTP on
// 127.0.0.1, and exposes it through the method set of the AWS SDK's Step Functions client
// (*sfn.Client), so code written against Step Functions runs unchanged in tests and in
// `pgrotate demo`.
//
// Each execution (and each redrive) is one Node process running the script runner.mjs,
// embedded here. The script overrides every Task state with a local handler that POSTs
// {"resource","state","input"} to the Machine's HTTP server (authenticated by a per-Machine
// token); the Go side calls the Handler registered for that Resource ARN and answers its
// output or the error aws-lambda-go would report: errorType is the Go type name of the
// returned error (ErrorName), and the cause is Lambda's JSON error payload. The script
// turns that answer into an error whose name the interpreter's Retry and Catch match, and
// streams the interpreter's event log as JSON lines, which the Machine turns into Step
// Functions history events (TaskStateEntered, LambdaFunctionScheduled/Started/Succeeded/
// Failed, TaskScheduled/… for service integrations, MapIteration…, ExecutionFailed, …).
//
// Faithful to Step Functions: idempotent StartExecution by name and input; a caught error
// still exits its state (TaskStateExited with the error output); a redrive resumes at the
// top-level state the execution ended in, with the input that state received, so states
// that succeeded are not re-run, and an execution that ended in a Fail state (after a
// Catch) fails there again.
// A closed execution can be redriven for 14 days and keeps its name taken, visible, for 90
// days, after which it is gone and its name free: both by the clock of Options.Now, which
// tests move forward. DescribeStateMachine describes the machine (ACTIVE, STANDARD).
//
// What differs: a redrive re-runs a whole Map state rather than only its failed
// iterations; Wait durations and Retry pauses can be overridden or scaled for speed; event
// ids are sequential, each event's previous id the one before it; executions live in
// memory only.
package sfnlocal
