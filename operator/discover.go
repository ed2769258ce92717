// Package operator is the operator's side of pgrotate on real AWS: the status, history,
// rotate and redrive commands of the pgrotate CLI, as functions over the AWS SDK clients
// (each declares the small client interface it needs). A deployment is discovered from the
// app secret alone (Discover); no secret value is ever read here: the live user comes from
// the Preflight function's dry run, which reads the secret inside the deployment.
package operator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/pgrotate/pgrotate/lambdas/spec"
)

// SecretDescriber reads a secret's metadata (never its value).
type SecretDescriber interface {
	DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error)
}

// FunctionGetter reads a Lambda function's configuration and tags.
type FunctionGetter interface {
	GetFunction(ctx context.Context, in *lambda.GetFunctionInput, optFns ...func(*lambda.Options)) (*lambda.GetFunctionOutput, error)
}

// Overrides replace discovered values; an empty field is discovered. Prefix is a pointer
// because the empty prefix is a value.
type Overrides struct {
	StateMachine      string
	PreflightFunction string
	Bucket            string
	Prefix            *string
}

// Deployment is what the commands need to know of one app secret's rotation.
type Deployment struct {
	SecretARN  string `json:"secretArn"`
	SecretName string `json:"secretName"`
	// RotationFunction is the secret's rotation Lambda (DescribeSecret's RotationLambdaARN).
	RotationFunction  string `json:"rotationFunction,omitempty"`
	StateMachine      string `json:"stateMachine"`
	PreflightFunction string `json:"preflightFunction,omitempty"`
	// EvidenceBucket is empty when the deployment writes no evidence.
	EvidenceBucket string `json:"evidenceBucket,omitempty"`
	EvidencePrefix string `json:"evidencePrefix,omitempty"`

	RotationEnabled bool       `json:"rotationEnabled"`
	Schedule        string     `json:"schedule,omitempty"`
	LastRotated     *time.Time `json:"lastRotated,omitempty"`
	NextRotation    *time.Time `json:"nextRotation,omitempty"`
	// Versions maps each labelled version id to its staging labels.
	Versions map[string][]string `json:"versions"`
}

// SecretNotFound: Secrets Manager has no such secret (or the caller may not see it).
type SecretNotFound struct{ Secret string }

func (e *SecretNotFound) Error() string {
	return fmt.Sprintf("secret %s not found (check the name or ARN, --region and --profile)", e.Secret)
}

// NotDiscovered: a part of the deployment could not be found from the secret; Flag gives it
// by hand.
type NotDiscovered struct {
	What, Reason, Flag string
}

func (e *NotDiscovered) Error() string {
	return fmt.Sprintf("cannot discover the %s: %s; give it with %s", e.What, e.Reason, e.Flag)
}

// Discover finds the deployment from the secret's name or ARN: DescribeSecret gives the
// rotation function, the schedule and the version stages
// (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_DescribeSecret.html),
// and lambda:GetFunction gives the rotation function's tags
// (https://docs.aws.amazon.com/lambda/latest/api/API_GetFunction.html), which cdk/rotation
// sets to the state machine, the Preflight function and the evidence location
// (spec.TagStateMachine…). The function is read only when an override is missing.
func Discover(ctx context.Context, sm SecretDescriber, fn FunctionGetter, secret string, o Overrides) (*Deployment, error) {
	desc, err := sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(secret)})
	var missing *smtypes.ResourceNotFoundException
	if errors.As(err, &missing) {
		return nil, &SecretNotFound{Secret: secret}
	}
	if err != nil {
		return nil, fmt.Errorf("describe secret %s: %w", secret, err)
	}
	d := &Deployment{
		SecretARN: aws.ToString(desc.ARN), SecretName: aws.ToString(desc.Name),
		RotationFunction: aws.ToString(desc.RotationLambdaARN), RotationEnabled: aws.ToBool(desc.RotationEnabled),
		Schedule: schedule(desc.RotationRules), LastRotated: desc.LastRotatedDate, NextRotation: desc.NextRotationDate,
		Versions: desc.VersionIdsToStages,
	}
	var tags map[string]string
	if o.StateMachine == "" || o.PreflightFunction == "" || o.Bucket == "" || o.Prefix == nil {
		if tags, err = functionTags(ctx, fn, d.RotationFunction, o.StateMachine == ""); err != nil {
			return nil, err
		}
	}
	d.StateMachine = pick(o.StateMachine, tags[spec.TagStateMachine])
	d.PreflightFunction = pick(o.PreflightFunction, tags[spec.TagPreflightFunction])
	d.EvidenceBucket = pick(o.Bucket, tags[spec.TagEvidenceBucket])
	d.EvidencePrefix = tags[spec.TagEvidencePrefix]
	if o.Prefix != nil {
		d.EvidencePrefix = *o.Prefix
	}
	if d.StateMachine == "" {
		return nil, &NotDiscovered{What: "state machine", Reason: fmt.Sprintf("the rotation function %s has no %s tag", d.RotationFunction, spec.TagStateMachine), Flag: "--state-machine"}
	}
	return d, nil
}

// functionTags reads the rotation function's tags. Without a rotation function, or when the
// function cannot be read, only a needed state machine is an error: the other values are
// optional until a command needs them.
func functionTags(ctx context.Context, fn FunctionGetter, function string, needed bool) (map[string]string, error) {
	if function == "" {
		if needed {
			return nil, &NotDiscovered{What: "state machine", Reason: "the secret has no rotation function (rotation was never configured)", Flag: "--state-machine"}
		}
		return nil, nil
	}
	out, err := fn.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String(function)})
	var missing *lambdatypes.ResourceNotFoundException
	if errors.As(err, &missing) {
		return nil, &NotDiscovered{What: "state machine", Reason: fmt.Sprintf("the secret's rotation function %s does not exist", function), Flag: "--state-machine"}
	}
	if err != nil {
		return nil, fmt.Errorf("read the rotation function %s: %w", function, err)
	}
	// GetFunction returns the tags only to a caller allowed lambda:ListTags; otherwise it
	// says why in TagsError.
	if te := out.TagsError; te != nil && needed {
		return nil, &NotDiscovered{What: "state machine", Flag: "--state-machine",
			Reason: fmt.Sprintf("the tags of %s cannot be read (%s: %s; allow lambda:ListTags)", function, aws.ToString(te.ErrorCode), aws.ToString(te.Message))}
	}
	return out.Tags, nil
}

func pick(override, discovered string) string {
	if override != "" {
		return override
	}
	return discovered
}

// schedule describes RotationRules: a schedule expression, or every N days, with the window.
func schedule(r *smtypes.RotationRulesType) string {
	if r == nil {
		return ""
	}
	var parts []string
	switch {
	case aws.ToString(r.ScheduleExpression) != "":
		parts = append(parts, aws.ToString(r.ScheduleExpression))
	case r.AutomaticallyAfterDays != nil:
		parts = append(parts, fmt.Sprintf("every %d days", aws.ToInt64(r.AutomaticallyAfterDays)))
	}
	if w := aws.ToString(r.Duration); w != "" {
		parts = append(parts, "within "+w)
	}
	return strings.Join(parts, ", ")
}

// needPreflight returns the Preflight function, or why it is unknown.
func (d *Deployment) needPreflight() (string, error) {
	if d.PreflightFunction == "" {
		return "", &NotDiscovered{What: "Preflight function", Reason: fmt.Sprintf("the rotation function %s has no %s tag", d.RotationFunction, spec.TagPreflightFunction), Flag: "--preflight-function"}
	}
	return d.PreflightFunction, nil
}
