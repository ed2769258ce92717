package rotation

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/pgrotate/pgrotate/workflow"
)

// Defaults of Props' zero values.
const (
	DefaultMaxPasswordAgeDays = 90
	DefaultPasswordLength     = 32
	// DefaultExcludeCharacters is workflow.DefaultExcludeCharacters: safe in URLs, DSNs and shell quoting.
	DefaultExcludeCharacters = workflow.DefaultExcludeCharacters
	DefaultAssetDir          = "build"
)

// Limits of Props.
const (
	MinPasswordLength = 16
	MaxPasswordLength = 4096 // GetRandomPassword's upper bound
	// maxScheduleDays is Secrets Manager's longest rotation interval.
	maxScheduleDays = 1000
)

// ErrInvalidProps is wrapped by every error Validate returns.
var ErrInvalidProps = errors.New("invalid rotation props")

// ErrInvalidMaxPasswordAge reports a maximum password age whose half is not a valid Secrets
// Manager schedule (a whole number of days from 1 to 1000).
var ErrInvalidMaxPasswordAge = errors.New("invalid MaxPasswordAge")

// Props configure a Rotation. Every field without a default is required.
type Props struct {
	// AppSecret is the secret the application reads and pgrotate rotates (alternating users).
	AppSecret awssecretsmanager.ISecret
	// AdminSecret holds the database administrator's credentials; only the task Lambdas read it.
	AdminSecret awssecretsmanager.ISecret
	// EncryptionKey is the customer managed KMS key of the secrets, if any: their readers
	// then get kms:Decrypt (via Secrets Manager only) and the rotation function kms:GenerateDataKey.
	EncryptionKey awskms.IKey

	// Vpc, Subnets and SecurityGroup place the database-facing Lambdas (preflight, cloneuser,
	// setpassword, testlogin, checkreplicas). The subnets must reach the database, Secrets
	// Manager, and for preflight the ECS and Step Functions APIs (NAT or interface endpoints).
	Vpc           awsec2.IVpc
	Subnets       *awsec2.SubnetSelection
	SecurityGroup awsec2.ISecurityGroup

	// Replicas are the read replicas that must have a new password before it is promoted.
	// They are passed to preflight as PGROTATE_REPLICAS (JSON), which refuses an app secret
	// that does not list each of them; the app secret's "replicas" key is what the steps
	// connect to.
	Replicas []workflow.Endpoint
	// Services are the ECS services (cluster and service names, not ARNs) that hold the app
	// secret and are force-redeployed after each promotion.
	Services []workflow.Service
	// ServiceConstructs are those services' constructs when they are in this app (e.g. an
	// awsecs.FargateService): the rotation schedule waits for them, since the configuration
	// test Secrets Manager runs when the schedule is created describes every service.
	ServiceConstructs []constructs.IDependable

	// MaxPasswordAge is the longest a password may live (default 90 days). Each rotation
	// changes the user that is not current, so each user's password changes every other
	// rotation: the schedule is half of it (90 days: every 45 days). Half of it must be a
	// whole number of days from 1 to 1000.
	MaxPasswordAge awscdk.Duration
	// PasswordLength of generated passwords (default 32, 16 to 4096).
	PasswordLength int
	// ExcludeCharacters from generated passwords (default DefaultExcludeCharacters).
	ExcludeCharacters string

	// AlarmTopic receives failure notifications: the state machine's NotifyFailure, the
	// alarms on failed or timed-out executions and on errors of the rotation function outside
	// them, and Secrets Manager's RotationFailed events. When nil a topic is created,
	// encrypted with a new KMS key, whose policies let exactly these alarms and this rule
	// publish. A topic given here keeps its owner's policy, which must allow sns:Publish to
	// cloudwatch.amazonaws.com and events.amazonaws.com (and, if it is encrypted, its key
	// kms:Decrypt and kms:GenerateDataKey* to both); the construct cannot add to it.
	AlarmTopic awssns.ITopic

	// AssetDir holds one <name>/bootstrap per function, built by `make build`. Default
	// "build"; a relative path is resolved against the directory holding go.mod, found by
	// walking up from the working directory.
	AssetDir string
	// StateMachineName is the state machine's name (default: unique, derived from the
	// construct path). It is explicit so the Lambdas can be given its ARN without a cycle.
	StateMachineName string
	// CABundleFile is a local PEM file (e.g. the RDS global bundle) shipped to the
	// database-facing Lambdas as a layer; PGROTATE_CA_BUNDLE points at it. Without it they
	// verify the database's certificate against the system roots.
	CABundleFile string
	// ConnectTimeout of database connections (PGROTATE_CONNECT_TIMEOUT); zero: the handlers' default.
	ConnectTimeout awscdk.Duration
	// RolloutMaxChecks bounds the CheckRollout loop (PGROTATE_ROLLOUT_MAX_CHECKS); zero: the
	// handler's default.
	RolloutMaxChecks int
	// RotateImmediately starts a rotation when the schedule is created or changed. Off by
	// default: the app user must exist in the database before the first rotation.
	RotateImmediately bool
	// Bootstrap deploys a custom resource that creates the app secret's user (AWSCURRENT)
	// in the database at deploy, with the admin secret, and waits until the replicas accept
	// its login (see Bootstrap). For a new database whose secrets CloudFormation generates;
	// the rotation schedule then waits for it. The function needs <AssetDir>/bootstrap, the
	// same network as the other database-facing functions, and a way to CloudFormation's
	// S3 response URL (NAT or an S3 gateway endpoint).
	Bootstrap bool
	// BootstrapAdoptExistingUser lets the bootstrap take over an app user (or alternate) that
	// already exists in the database and that pgrotate did not create: it sets its password
	// and grants like those of a user it created. Off by default: such a user is refused and
	// left unchanged, and the deployment fails. Requires Bootstrap.
	BootstrapAdoptExistingUser bool
	// LogRetention of the state machine's and the functions' logs (default one year; a
	// shorter retention is rejected, because execution history lasts only 90 days).
	LogRetention awslogs.RetentionDays
	// RetirePreviousAfter turns on retirement of the previous password (off when nil): once
	// every service's redeploy COMPLETED, the AWSPREVIOUS user's password expires after this
	// grace (VALID UNTIL, by the database's clock), so a leaked old credential stops working
	// long before the next rotation. Consumers outside the ECS services that cache the
	// secret must re-read it within the grace. At least one second, known at synth.
	RetirePreviousAfter awscdk.Duration

	// Evidence configures the Object Lock bucket that keeps one record per rotation
	// (default: a new bucket, GOVERNANCE, 400 days; see EvidenceProps).
	Evidence EvidenceProps
}

// shortRetention lists the retentions under a year.
var shortRetention = map[awslogs.RetentionDays]bool{
	awslogs.RetentionDays_ONE_DAY: true, awslogs.RetentionDays_THREE_DAYS: true, awslogs.RetentionDays_FIVE_DAYS: true,
	awslogs.RetentionDays_ONE_WEEK: true, awslogs.RetentionDays_TWO_WEEKS: true, awslogs.RetentionDays_ONE_MONTH: true,
	awslogs.RetentionDays_TWO_MONTHS: true, awslogs.RetentionDays_THREE_MONTHS: true, awslogs.RetentionDays_FOUR_MONTHS: true,
	awslogs.RetentionDays_FIVE_MONTHS: true, awslogs.RetentionDays_SIX_MONTHS: true,
}

var stateMachineName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)

// withDefaults returns p with its zero values replaced by the defaults.
func (p Props) withDefaults() Props {
	if p.MaxPasswordAge == nil {
		p.MaxPasswordAge = awscdk.Duration_Days(jsii.Number(DefaultMaxPasswordAgeDays))
	}
	if p.PasswordLength == 0 {
		p.PasswordLength = DefaultPasswordLength
	}
	if p.ExcludeCharacters == "" {
		p.ExcludeCharacters = DefaultExcludeCharacters
	}
	if p.AssetDir == "" {
		p.AssetDir = DefaultAssetDir
	}
	if p.LogRetention == "" {
		p.LogRetention = awslogs.RetentionDays_ONE_YEAR
	}
	p.Evidence = p.Evidence.withDefaults()
	return p
}

// Validate reports every problem of p (after defaults), each wrapping ErrInvalidProps.
func (p Props) Validate() error {
	p = p.withDefaults()
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidProps}, args...)...))
	}
	p.validateRequired(bad)
	p.validateTargets(bad)
	if _, err := Schedule(p.MaxPasswordAge); err != nil {
		errs = append(errs, fmt.Errorf("%w: %w", ErrInvalidProps, err))
	}
	p.validateSettings(bad)
	p.validateDurations(bad)
	return errors.Join(errs...)
}

// problem records one invalid property; Validate joins them.
type problem func(format string, args ...any)

func (p Props) validateRequired(bad problem) {
	for _, r := range []struct {
		name string
		set  bool
	}{
		{"AppSecret", p.AppSecret != nil}, {"AdminSecret", p.AdminSecret != nil}, {"Vpc", p.Vpc != nil},
		{"Subnets", p.Subnets != nil}, {"SecurityGroup", p.SecurityGroup != nil},
	} {
		if !r.set {
			bad("%s is required", r.name)
		}
	}
}

// validateTargets checks the ECS services to redeploy and the replicas to verify.
func (p Props) validateTargets(bad problem) {
	if len(p.Services) == 0 {
		bad("Services: at least one ECS service is required (new tasks must pick up the new password)")
	}
	for i, s := range p.Services {
		switch {
		case s.Cluster == "" || s.Service == "":
			bad("Services[%d]: cluster and service names are required", i)
		case strings.HasPrefix(s.Cluster, "arn:") || strings.HasPrefix(s.Service, "arn:"):
			bad("Services[%d]: give the cluster and service names, not ARNs", i)
		}
	}
	for i, r := range p.Replicas {
		if r.Host == "" || r.Port < 1 || r.Port > 65535 {
			bad("Replicas[%d]: host and a port from 1 to 65535 are required", i)
		}
	}
}

func (p Props) validateSettings(bad problem) {
	if p.PasswordLength < MinPasswordLength || p.PasswordLength > MaxPasswordLength {
		bad("PasswordLength %d is not from %d to %d", p.PasswordLength, MinPasswordLength, MaxPasswordLength)
	}
	if p.StateMachineName != "" && !stateMachineName.MatchString(p.StateMachineName) {
		bad("StateMachineName %q: use 1 to 80 letters, digits, - or _", p.StateMachineName)
	}
	if shortRetention[p.LogRetention] {
		bad("LogRetention %s is shorter than a year", p.LogRetention)
	}
	for _, problem := range p.Evidence.validate() {
		bad("%s", problem)
	}
	if p.BootstrapAdoptExistingUser && !p.Bootstrap {
		bad("BootstrapAdoptExistingUser requires Bootstrap")
	}
	if p.RolloutMaxChecks < 0 {
		bad("RolloutMaxChecks %d is negative", p.RolloutMaxChecks)
	}
}

// validateDurations checks the durations the state machine and Lambdas are given at synth.
func (p Props) validateDurations(bad problem) {
	if p.RetirePreviousAfter != nil {
		switch {
		case *p.RetirePreviousAfter.IsUnresolved():
			bad("RetirePreviousAfter must be known at synth, not a token")
		case *p.RetirePreviousAfter.ToMilliseconds(&awscdk.TimeConversionOptions{Integral: jsii.Bool(false)}) < 1000:
			bad("RetirePreviousAfter must be at least one second")
		}
	}
	if p.ConnectTimeout != nil && !*p.ConnectTimeout.IsUnresolved() {
		if s := *p.ConnectTimeout.ToSeconds(&awscdk.TimeConversionOptions{Integral: jsii.Bool(false)}); s <= 0 {
			bad("ConnectTimeout must be positive")
		}
	}
}

// Schedule returns the rotation interval for a maximum password age: half of it, because
// each of the two alternating users has its password changed every other rotation. It
// fails with ErrInvalidMaxPasswordAge unless half the age is a whole number of days from 1
// to 1000 (Secrets Manager's range).
func Schedule(maxAge awscdk.Duration) (awscdk.Duration, error) {
	if maxAge == nil {
		return nil, fmt.Errorf("%w: missing", ErrInvalidMaxPasswordAge)
	}
	if *maxAge.IsUnresolved() {
		return nil, fmt.Errorf("%w: must be known at synth, not a token", ErrInvalidMaxPasswordAge)
	}
	hours := *maxAge.ToHours(&awscdk.TimeConversionOptions{Integral: jsii.Bool(false)})
	halfDays := hours / 2 / 24
	if halfDays != math.Trunc(halfDays) || halfDays < 1 || halfDays > maxScheduleDays {
		return nil, fmt.Errorf("%w: %s cannot be halved into a schedule of a whole number of days from 1 to %d "+
			"(the schedule is half the maximum age because each user's password changes every other rotation; "+
			"use an even number of days from 2 to %d)", ErrInvalidMaxPasswordAge, *maxAge.ToHumanString(), maxScheduleDays, 2*maxScheduleDays)
	}
	return awscdk.Duration_Days(jsii.Number(halfDays)), nil
}
