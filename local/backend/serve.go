package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/pgrotate/pgrotate/lambdas"
	"github.com/pgrotate/pgrotate/lambdas/spec"
	"github.com/pgrotate/pgrotate/local/awsserve"
	localsecrets "github.com/pgrotate/pgrotate/local/secrets"
	"github.com/pgrotate/pgrotate/local/sfnlocal"
	"github.com/pgrotate/pgrotate/tasks/evidence"
)

// Local names of what ServeAWS serves besides the models.
const (
	// PreflightFunctionARN is the Preflight function, as the rotation function's tag names it.
	PreflightFunctionARN = functionPrefix + spec.Preflight
	// EvidenceBucket is the default evidence bucket.
	EvidenceBucket = "pgrotate-evidence"
	// EvidenceRetentionDays is the default retention of the evidence bucket, as the CDK
	// deploys it (issue 11: at least 400 days).
	EvidenceRetentionDays = 400
)

// ServeOptions configure ServeAWS. Zero values take the documented defaults.
type ServeOptions struct {
	// Addr is the loopback address to listen on; default a free port on 127.0.0.1.
	Addr string
	// Bucket and Prefix locate the evidence records; default EvidenceBucket and "".
	Bucket, Prefix string
	// Retention is the bucket's Object Lock default retention; default GOVERNANCE for
	// EvidenceRetentionDays days.
	Retention awsserve.Retention
	// Version is written into every record as pgrotateVersion; default the build's.
	Version string
}

// Served is the backend on the wire: one awsserve endpoint with the backend's Secrets
// Manager, ECS and Step Functions, the rotation and Preflight functions (Invoke and
// GetFunction, the rotation function tagged for the CLI's discovery) and the evidence bucket
// with Object Lock. Every execution end is delivered, as EventBridge delivers
// "Step Functions Execution Status Change", to the real evidence handler, which writes
// through a real S3 client to that bucket.
type Served struct {
	*awsserve.Server
	// Env is what a shell needs to reach it (awsserve.WriteEnvFile).
	Env    awsserve.Env
	Bucket string
	Prefix string

	b        *Backend
	s3       *s3.Client
	evidence *evidence.Handler
	wg       sync.WaitGroup
	mu       sync.Mutex
	errs     []error
	events   int
}

// ServeAWS serves the backend on a loopback endpoint until Served.Close, and from then on
// writes the evidence of every execution run that ends and of every failed rotation step.
// The access key is random; Env holds it. A backend is served by one endpoint at a time.
func (b *Backend) ServeAWS(opts ServeOptions) (*Served, error) {
	if b.getServed() != nil {
		return nil, errors.New("serve the local AWS APIs: the backend is already served (one endpoint at a time)")
	}
	if opts.Bucket == "" {
		opts.Bucket = EvidenceBucket
	}
	if opts.Retention == (awsserve.Retention{}) {
		opts.Retention = awsserve.Retention{Mode: awsserve.LockGovernance, Days: EvidenceRetentionDays}
	}
	if err := b.configureRotation(); err != nil {
		return nil, err
	}
	akid, secret, err := randomKey()
	if err != nil {
		return nil, err
	}
	env, err := b.functionEnv()
	if err != nil {
		return nil, err
	}
	env[spec.EnvEvidenceBucket], env[spec.EnvEvidencePrefix] = opts.Bucket, opts.Prefix
	if opts.Version != "" {
		env[spec.EnvVersion] = opts.Version
	}
	preflight, err := lambdas.Handler(spec.Preflight, b.deps(spec.Preflight, env, b.Machine, nil))
	if err != nil {
		return nil, fmt.Errorf("local %s function: %w", spec.Preflight, err)
	}
	rotatorName, preflightName := functionName(spec.Rotator), functionName(spec.Preflight)
	srv, err := awsserve.Start(awsserve.Options{
		SecretsManager: b.Secrets,
		ECS:            b.ECS,
		StepFunctions:  b.Machine,
		Lambda: map[string]awsserve.LambdaHandler{
			rotatorName:   awsserve.LambdaFunc(sfnlocal.LambdaFunc(b.Rotator.Handle)),
			preflightName: awsserve.LambdaFunc(sfnlocal.LambdaFunc(preflight)),
		},
		// cdk/rotation sets these tags; the CLI finds the deployment from them.
		LambdaTags: map[string]map[string]string{rotatorName: {
			spec.TagStateMachine:      StateMachineARN,
			spec.TagPreflightFunction: PreflightFunctionARN,
			spec.TagEvidenceBucket:    opts.Bucket,
			spec.TagEvidencePrefix:    opts.Prefix,
		}},
		ObjectLock:  map[string]awsserve.Retention{opts.Bucket: opts.Retention},
		Region:      localsecrets.Region,
		Account:     localsecrets.Account,
		AccessKeyID: akid,
		Addr:        opts.Addr,
	})
	if err != nil {
		return nil, err
	}
	s := &Served{Server: srv, Bucket: opts.Bucket, Prefix: opts.Prefix, b: b,
		Env: awsserve.Env{Endpoint: srv.URL(), Region: srv.Region(), AccessKeyID: akid, SecretAccessKey: secret, SecretARN: b.AppSecretARN}}
	s.s3 = s3.NewFromConfig(s.Config())
	d := b.deps(spec.Evidence, env, b.Machine, s.s3)
	if s.evidence = lambdas.NewEvidence(d); d.Env.Err() != nil {
		_ = srv.Close()
		return nil, fmt.Errorf("local %s function: %w", spec.Evidence, d.Env.Err())
	}
	b.setServed(s)
	return s, nil
}

// configureRotation names the rotation function on the app secret, as a deployment's
// rotation schedule does, unless it is already configured (TestConfiguration): the CLI
// finds the deployment from DescribeSecret's RotationLambdaARN.
func (b *Backend) configureRotation() error {
	desc, err := b.Secrets.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(b.AppSecretARN)})
	if err != nil {
		return fmt.Errorf("describe the app secret: %w", err)
	}
	if aws.ToString(desc.RotationLambdaARN) != "" {
		return nil
	}
	return b.Secrets.SetRotation(b.AppSecretARN, true, RotationFunctionARN)
}

func functionName(f string) string { return "pgrotate-" + f }

// randomKey is a throwaway access key of the served endpoint, from two random version ids.
func randomKey() (akid, secret string, err error) {
	a, err := newToken()
	if err != nil {
		return "", "", err
	}
	b, err := newToken()
	if err != nil {
		return "", "", err
	}
	h := strings.ReplaceAll(a+b, "-", "")
	return strings.ToUpper("AKIALOCAL" + h[:11]), h[11:], nil
}

// Config is an SDK configuration that reaches the endpoint with its access key.
func (s *Served) Config() aws.Config {
	return aws.Config{
		Region:       s.Env.Region,
		Credentials:  credentials.NewStaticCredentialsProvider(s.Env.AccessKeyID, s.Env.SecretAccessKey, ""),
		BaseEndpoint: aws.String(s.Env.Endpoint),
	}
}

// Close stops delivering evidence, waits for the deliveries under way, and stops serving.
func (s *Served) Close() error {
	s.b.setServed(nil)
	s.wg.Wait()
	return s.Server.Close()
}

// onEvent starts a delivery when an execution run ends, as EventBridge would.
func (s *Served) onEvent(executionArn string, ev types.HistoryEvent) {
	if _, end := endStatus[ev.Type]; !end {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.record(s.deliverExecution(context.Background(), executionArn))
	}()
}

func (s *Served) record(err error) {
	if err != nil {
		s.mu.Lock()
		s.errs = append(s.errs, err)
		s.mu.Unlock()
	}
}

// Settle waits for the deliveries under way, then delivers again the end of every run of
// every execution (a delivered one writes nothing new: the handler writes with
// If-None-Match: *), so every ended run has its record when it returns. It returns the
// errors of the deliveries so far.
func (s *Served) Settle(ctx context.Context) error {
	s.wg.Wait()
	var token *string
	for {
		page, err := s.b.Machine.ListExecutions(ctx, &sfn.ListExecutionsInput{StateMachineArn: aws.String(StateMachineARN), NextToken: token})
		if err != nil {
			return fmt.Errorf("list executions: %w", err)
		}
		for _, e := range page.Executions {
			s.record(s.deliverExecution(ctx, aws.ToString(e.ExecutionArn)))
		}
		if token = page.NextToken; token == nil {
			break
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.errs...)
}

// Deliveries counts the EventBridge events handed to the evidence handler.
func (s *Served) Deliveries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.events
}

// deliverExecution hands the evidence handler a status-change event for each ended run of
// the execution.
func (s *Served) deliverExecution(ctx context.Context, arn string) error {
	desc, err := s.b.Machine.DescribeExecution(ctx, describe(arn))
	if err != nil {
		return err
	}
	events, err := s.b.Machine.Events(arn)
	if err != nil {
		return err
	}
	for run, end := range runEnds(events) {
		ev, err := statusChangeEvent(desc, int32(run), end)
		if err != nil {
			return err
		}
		if err := s.deliver(ctx, ev); err != nil {
			return fmt.Errorf("evidence of %s run %d: %w", aws.ToString(desc.Name), run, err)
		}
	}
	return nil
}

func (s *Served) deliver(ctx context.Context, ev []byte) error {
	s.mu.Lock()
	s.events++
	s.mu.Unlock()
	return s.evidence.Handle(ctx, ev)
}

// runEnds lists the terminal event of each run (0, then each redrive) that has ended.
func runEnds(events []types.HistoryEvent) []types.HistoryEvent {
	var ends []types.HistoryEvent
	for _, ev := range events {
		if _, ok := endStatus[ev.Type]; ok {
			ends = append(ends, ev)
		}
	}
	return ends
}

// endStatus is the execution status each terminal history event ends a run with.
var endStatus = map[types.HistoryEventType]types.ExecutionStatus{
	types.HistoryEventTypeExecutionSucceeded: types.ExecutionStatusSucceeded,
	types.HistoryEventTypeExecutionFailed:    types.ExecutionStatusFailed,
	types.HistoryEventTypeExecutionAborted:   types.ExecutionStatusAborted,
	types.HistoryEventTypeExecutionTimedOut:  types.ExecutionStatusTimedOut,
}

// statusChangeEvent is the EventBridge event Step Functions sends when run ended with end
// (https://docs.aws.amazon.com/step-functions/latest/dg/cw-events.html): detail-type
// "Step Functions Execution Status Change", source aws.states, the execution in resources,
// and a detail with the execution's ARN, name, status, dates in epoch milliseconds and
// redriveCount.
func statusChangeEvent(desc *sfn.DescribeExecutionOutput, run int32, end types.HistoryEvent) ([]byte, error) {
	status := endStatus[end.Type]
	stop := aws.ToTime(end.Timestamp)
	detail := map[string]any{
		"executionArn": aws.ToString(desc.ExecutionArn), "stateMachineArn": aws.ToString(desc.StateMachineArn),
		"name": aws.ToString(desc.Name), "status": string(status),
		"startDate": aws.ToTime(desc.StartDate).UnixMilli(), "stopDate": stop.UnixMilli(),
		"input": aws.ToString(desc.Input), "inputDetails": map[string]bool{"included": true},
		"output": nil, "outputDetails": map[string]bool{"included": true},
		"error": nil, "cause": nil, "redriveCount": run,
	}
	if run == aws.ToInt32(desc.RedriveCount) { // the current run: DescribeExecution describes it
		detail["output"], detail["error"], detail["cause"] = desc.Output, desc.Error, desc.Cause
	}
	return json.Marshal(map[string]any{
		"version": "0", "id": "local-" + aws.ToString(desc.Name) + "-" + strconv.Itoa(int(run)),
		"detail-type": evidence.DetailTypeStatusChange, "source": evidence.SourceStates,
		"account": localsecrets.Account, "time": stop.UTC().Format(time.RFC3339), "region": localsecrets.Region,
		"resources": []string{aws.ToString(desc.ExecutionArn)}, "detail": detail,
	})
}

// rotationFailed delivers Secrets Manager's RotationFailed event, as EventBridge receives it
// from CloudTrail (https://docs.aws.amazon.com/secretsmanager/latest/userguide/cloudtrail_log_entries.html),
// for a rotation whose step failed. The message is the rotation function's error, which
// names no secret value.
func (s *Served) rotationFailed(ctx context.Context, stepErr error) error {
	id, _, err := randomKey()
	if err != nil {
		return err
	}
	now := time.Now().UTC().Format(time.RFC3339)
	detail := map[string]any{
		"eventVersion": "1.08", "eventID": id, "eventName": "RotationFailed", "eventSource": "secretsmanager.amazonaws.com",
		"eventTime": now, "eventType": "AwsServiceEvent", "awsRegion": localsecrets.Region,
		"errorMessage":        stepErr.Error(),
		"userIdentity":        map[string]string{"accountId": localsecrets.Account, "invokedBy": "secretsmanager.amazonaws.com"},
		"additionalEventData": map[string]string{"SecretId": s.b.AppSecretARN},
	}
	ev, err := json.Marshal(map[string]any{
		"version": "0", "id": "local-" + id, "detail-type": evidence.DetailTypeServiceEvent, "source": evidence.SourceSecretsManager,
		"account": localsecrets.Account, "time": now, "region": localsecrets.Region, "resources": []string{}, "detail": detail,
	})
	if err != nil {
		return err
	}
	return s.deliver(ctx, ev)
}

// S3 is a real S3 client of the endpoint, for reading the evidence bucket (operator/audit's
// Load reads records through it).
func (s *Served) S3() *s3.Client { return s.s3 }

// RecordKeys lists the keys of every record under the prefix through the S3 API.
func (s *Served) RecordKeys(ctx context.Context) ([]string, error) {
	var out []string
	p := s3.NewListObjectsV2Paginator(s.s3, &s3.ListObjectsV2Input{Bucket: aws.String(s.Bucket), Prefix: aws.String(s.Prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list evidence: %w", err)
		}
		for _, o := range page.Contents {
			out = append(out, aws.ToString(o.Key))
		}
	}
	return out, nil
}
