package rotation

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdadestinations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/pgrotate/pgrotate/lambdas/spec"
)

// EvidenceFunction is the evidence function's name: cmd/evidence, built to
// <AssetDir>/evidence/bootstrap.
const EvidenceFunction = spec.Evidence

// Evidence defaults and limits.
const (
	// DefaultEvidenceRetentionDays keeps each record past a year of audit look-back.
	DefaultEvidenceRetentionDays = 400
	// MinEvidenceRetentionDays: auditors ask for a year or more (PCI DSS, SOC 2).
	MinEvidenceRetentionDays = 365
	EvidenceModeGovernance   = "GOVERNANCE"
	EvidenceModeCompliance   = "COMPLIANCE"
)

// The events the evidence function handles (tasks/evidence; a test checks they match: cdk
// imports no handler).
const (
	sourceStates           = "aws.states"
	detailTypeStatusChange = "Step Functions Execution Status Change"
	sourceSecretsManager   = "aws.secretsmanager"
	detailTypeServiceEvent = "AWS Service Event via CloudTrail"
)

var (
	terminalStatuses      = []string{"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}
	rotationFailureEvents = []string{"RotationFailed", "RotationAbandoned"}
)

// EvidenceEvents returns the event sources, detail types, statuses and Secrets Manager
// event names the rules match, for tests.
func EvidenceEvents() (sources, detailTypes, statuses, failures []string) {
	return []string{sourceStates, sourceSecretsManager}, []string{detailTypeStatusChange, detailTypeServiceEvent},
		terminalStatuses, rotationFailureEvents
}

// EvidenceProps configure the evidence store. The zero value creates a bucket with Object
// Lock in GOVERNANCE mode for 400 days.
type EvidenceProps struct {
	// RetentionDays of Object Lock's default retention on each record (default 400, at
	// least 365). Ignored with Bucket: that bucket's own default retention applies.
	RetentionDays int
	// Mode of the default retention: GOVERNANCE (default; a principal with
	// s3:BypassGovernanceRetention can still delete) or COMPLIANCE (nobody can, not even the
	// root user, until the retention ends).
	Mode string
	// Bucket brings your own bucket. It must have been created with Object Lock and a
	// default retention (Object Lock needs versioning), as pgrotate does not change it.
	Bucket awss3.IBucket
	// BucketKey is Bucket's SSE-KMS key, if it is a customer managed key the function must
	// be allowed to use; default: Bucket.EncryptionKey().
	BucketKey awskms.IKey
	// Prefix of the record keys in the bucket (e.g. "pgrotate/"); default none.
	Prefix string
}

// Evidence is the evidence store and its writer.
type Evidence struct {
	// Bucket holds the records; Key encrypts them (nil for a brought bucket without a key).
	Bucket awss3.IBucket
	Key    awskms.IKey
	// AccessLogs receives the bucket's server access logs (nil for a brought bucket).
	AccessLogs awss3.Bucket
	// Function writes one record per event; DeadLetters receives events it could not.
	Function    awslambda.Function
	DeadLetters awssqs.Queue
	// ExecutionRule sends the state machine's ends to Function; FailureRule sends Secrets
	// Manager's rotation failures of the app secret.
	ExecutionRule awsevents.Rule
	FailureRule   awsevents.Rule
}

func (e EvidenceProps) withDefaults() EvidenceProps {
	if e.RetentionDays == 0 {
		e.RetentionDays = DefaultEvidenceRetentionDays
	}
	if e.Mode == "" {
		e.Mode = EvidenceModeGovernance
	}
	if e.BucketKey == nil && e.Bucket != nil {
		e.BucketKey = e.Bucket.EncryptionKey()
	}
	return e
}

// validate reports the problems of e (after defaults).
func (e EvidenceProps) validate() []string {
	var bad []string
	if e.Bucket == nil && e.RetentionDays < MinEvidenceRetentionDays {
		bad = append(bad, fmt.Sprintf("Evidence.RetentionDays %d is under %d", e.RetentionDays, MinEvidenceRetentionDays))
	}
	if e.Mode != EvidenceModeGovernance && e.Mode != EvidenceModeCompliance {
		bad = append(bad, fmt.Sprintf("Evidence.Mode %q is neither %s nor %s", e.Mode, EvidenceModeGovernance, EvidenceModeCompliance))
	}
	return bad
}

// Reasons for the evidence suppressions.
const (
	reasonAccessLogBucket = "This is the server access log bucket of the evidence bucket; logging it to itself or another bucket " +
		"would loop. It is encrypted (SSE-S3, the only encryption S3 server access logging delivers to), TLS-only and private."
	reasonDeadLetterQueue = "This queue is the dead-letter queue of the evidence function and its EventBridge rules."
	reasonEvidenceObjects = "Record keys are <secret>/<execution>/run-<n>.json, chosen at run time; the wildcard is scoped " +
		"to objects of the evidence bucket (and prefix), and only s3:PutObject is granted on it."
)

// newEvidence deploys the evidence store and function.
func (r *Rotation) newEvidence(p Props, code string) *Evidence {
	c := r.Construct
	e := p.Evidence.withDefaults()
	ev := &Evidence{Bucket: e.Bucket, Key: e.BucketKey}
	if ev.Bucket == nil {
		ev.Key, ev.AccessLogs, ev.Bucket = newEvidenceBucket(r, e)
	}

	env := map[string]string{spec.EnvStateMachineARN: *r.StateMachineArn, spec.EnvEvidenceBucket: *ev.Bucket.BucketName()}
	if e.Prefix != "" {
		env[spec.EnvEvidencePrefix] = e.Prefix
	}
	r.grants.evidenceObjects, r.grants.evidenceKey = ev.Bucket.ArnForObjects(jsii.String(e.Prefix+"*")), ev.Key
	ev.Function = newFunction(c, lookup(spec.Evidence), r.grants, code, env, nil)

	// An event the function fails on (after Lambda's two retries of an asynchronous invoke)
	// or that EventBridge cannot deliver lands in the queue, for an operator to replay.
	// https://docs.aws.amazon.com/lambda/latest/dg/invocation-async.html
	ev.DeadLetters = awssqs.NewQueue(c, jsii.String("EvidenceDeadLetters"), &awssqs.QueueProps{
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:      jsii.Bool(true),
		RetentionPeriod: awscdk.Duration_Days(jsii.Number(14)),
	})
	ev.Function.ConfigureAsyncInvoke(&awslambda.EventInvokeConfigOptions{
		OnFailure:     awslambdadestinations.NewSqsDestination(ev.DeadLetters),
		RetryAttempts: jsii.Number(2),
		MaxEventAge:   awscdk.Duration_Hours(jsii.Number(6)),
	})
	target := func() awsevents.IRuleTarget {
		return awseventstargets.NewLambdaFunction(ev.Function, &awseventstargets.LambdaFunctionProps{
			DeadLetterQueue: ev.DeadLetters,
			RetryAttempts:   jsii.Number(8),
			MaxEventAge:     awscdk.Duration_Hours(jsii.Number(24)),
		})
	}

	// Step Functions sends "Step Functions Execution Status Change" to the default bus for
	// every Standard execution; the rule keeps this machine's ends.
	// https://docs.aws.amazon.com/step-functions/latest/dg/eventbridge-integration.html
	rule := func(id, description, source, detailType string, detail map[string]interface{}) awsevents.Rule {
		return awsevents.NewRule(c, jsii.String(id), &awsevents.RuleProps{
			Description:  jsii.String(description),
			EventPattern: &awsevents.EventPattern{Source: jsii.Strings(source), DetailType: jsii.Strings(detailType), Detail: &detail},
			Targets:      &[]awsevents.IRuleTarget{target()},
		})
	}
	ev.ExecutionRule = rule("EvidenceExecutionRule", "pgrotate: write evidence when a rotation execution ends",
		sourceStates, detailTypeStatusChange, map[string]interface{}{
			"stateMachineArn": []*string{r.StateMachineArn},
			"status":          terminalStatuses,
		})
	// Secrets Manager's rotation failures arrive via CloudTrail (best effort), with the
	// secret's ARN in additionalEventData.SecretId.
	// https://docs.aws.amazon.com/eventbridge/latest/ref/events-ref-secretsmanager.html
	secretMatch := []interface{}{map[string]interface{}{"prefix": p.AppSecret.SecretArn()}}
	if full := p.AppSecret.SecretFullArn(); full != nil {
		secretMatch = []interface{}{full}
	}
	ev.FailureRule = rule("EvidenceRotationFailureRule", "pgrotate: write evidence when Secrets Manager reports a failed rotation of the app secret",
		sourceSecretsManager, detailTypeServiceEvent, map[string]interface{}{
			"eventSource":         []string{"secretsmanager.amazonaws.com"},
			"eventName":           rotationFailureEvents,
			"additionalEventData": map[string]interface{}{"SecretId": secretMatch},
		})

	cdknag.NagSuppressions_AddResourceSuppressions(ev.DeadLetters, &[]*cdknag.NagPackSuppression{
		suppression("AwsSolutions-SQS3", reasonDeadLetterQueue),
	}, jsii.Bool(true))
	return ev
}

// newEvidenceBucket creates the Object Lock bucket, its key and its access log bucket.
// Object Lock is enabled at creation (it needs versioning, which CDK turns on with it) with
// a default retention applied to every new object version.
// https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock.html
// https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock-configure.html
func newEvidenceBucket(r *Rotation, e EvidenceProps) (awskms.IKey, awss3.Bucket, awss3.IBucket) {
	c := r.Construct
	key := awskms.NewKey(c, jsii.String("EvidenceKey"), &awskms.KeyProps{
		Description:       jsii.String("pgrotate: encrypts the rotation evidence records"),
		EnableKeyRotation: jsii.Bool(true),
		RemovalPolicy:     awscdk.RemovalPolicy_RETAIN,
	})
	logs := awss3.NewBucket(c, jsii.String("EvidenceAccessLogs"), &awss3.BucketProps{
		Encryption:        awss3.BucketEncryption_S3_MANAGED,
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		EnforceSSL:        jsii.Bool(true),
		RemovalPolicy:     awscdk.RemovalPolicy_RETAIN,
	})
	cdknag.NagSuppressions_AddResourceSuppressions(logs, &[]*cdknag.NagPackSuppression{
		suppression("AwsSolutions-S1", reasonAccessLogBucket),
	}, jsii.Bool(true))
	days := awscdk.Duration_Days(jsii.Number(float64(e.RetentionDays)))
	retention := awss3.ObjectLockRetention_Governance(days)
	if e.Mode == EvidenceModeCompliance {
		retention = awss3.ObjectLockRetention_Compliance(days)
	}
	bucket := awss3.NewBucket(c, jsii.String("EvidenceBucket"), &awss3.BucketProps{
		ObjectLockEnabled:          jsii.Bool(true),
		ObjectLockDefaultRetention: retention,
		Versioned:                  jsii.Bool(true),
		Encryption:                 awss3.BucketEncryption_KMS,
		EncryptionKey:              key,
		BucketKeyEnabled:           jsii.Bool(true),
		BlockPublicAccess:          awss3.BlockPublicAccess_BLOCK_ALL(),
		EnforceSSL:                 jsii.Bool(true),
		ObjectOwnership:            awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		ServerAccessLogsBucket:     logs,
		ServerAccessLogsPrefix:     jsii.String("evidence/"),
		RemovalPolicy:              awscdk.RemovalPolicy_RETAIN,
	})
	return key, logs, bucket
}
