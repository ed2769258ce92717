// Package awsserve serves pgrotate's local AWS models on one loopback HTTP endpoint that
// speaks the real AWS wire protocols, so code built on the real aws-sdk-go-v2 clients runs
// against them with nothing but an endpoint override (AWS_ENDPOINT_URL, or BaseEndpoint in
// the client options): wire format, pagination tokens and modelled errors included.
//
// One listener carries every service; a request is routed by its shape:
//
//   - X-Amz-Target "secretsmanager.<Op>" and "AmazonEC2ContainerServiceV20141113.<Op>":
//     awsJson1_1 (Secrets Manager, ECS); "AWSStepFunctions.<Op>": awsJson1_0.
//     https://smithy.io/2.0/aws/protocols/aws-json-1_1-protocol.html
//     https://smithy.io/2.0/aws/protocols/aws-json-1_0-protocol.html
//   - POST /2015-03-31/functions/{FunctionName}/invocations: Lambda Invoke (restJson1),
//     routed to registered Go handlers.
//     https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html
//   - anything else: S3, served by github.com/johannesboyne/gofakes3 on an in-memory
//     backend, path-style (http://127.0.0.1:PORT/BUCKET/KEY; the SDK uses path style for
//     an IP endpoint on its own). gofakes3 v1.2.0 keeps a PutObject's x-amz-object-lock-*
//     headers and returns them on GetObject/HeadObject, but enforces no retention; for the
//     buckets of Options.ObjectLock a shim in front of it (objectlock.go) does what S3 does
//     for a bucket with Object Lock and a default retention.
//
// The JSON services are generic: an operation is any method of the backend with the
// signature of the SDK client's method (ctx, *svc.XInput, ...func(*svc.Options))
// (*svc.XOutput, error), so the models in local/secrets, local/ecs and local/sfnlocal serve
// every operation they implement, and a new model method is served without a change here.
// A request body is decoded into the SDK input struct by a small reflective decoder
// (decode.go); the output is written by the SDK's own Serialize method through a JSON
// smithy.ShapeSerializer (shapejson.go), so member names, timestamps (epoch seconds) and
// blobs (base64) are exactly what the SDK's deserializer reads. A model error that carries
// an AWS error code (smithy.APIError, possibly wrapped in smithy.OperationError) goes out as
// {"__type":CODE,"message":…} with the X-Amzn-Errortype header, which the SDK turns back
// into its modelled type (*types.ResourceNotFoundException, …).
//
// Nothing here logs; error messages are the models' own, which never carry a secret value.
package awsserve
