// Package lambdatest runs pgrotate's real Lambda mains (cmd/<name>) under the AWS Lambda
// runtime interface emulator and checks, through the real Runtime API, that each one starts,
// answers, and reports workflow errors under their Step Functions names (aws-lambda-go sends
// the Go error type name as errorType). It holds tests only.
package lambdatest
