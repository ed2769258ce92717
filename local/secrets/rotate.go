package localsecrets

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/pgrotate/pgrotate/local/internal/apirec"
)

// OpRotateSecret is RotateSecret's operation name.
const OpRotateSecret = "RotateSecret"

// Rotation steps, as Secrets Manager names them in the event it sends the rotation function
// (https://docs.aws.amazon.com/secretsmanager/latest/userguide/rotate-secrets_how.html).
const (
	StepCreate = "createSecret"
	StepSet    = "setSecret"
	StepTest   = "testSecret"
	StepFinish = "finishSecret"
)

// RotationEvent is what Secrets Manager sends the rotation function for one step.
// RotationToken is a secret, like the one the service sends.
type RotationEvent struct {
	Step               string
	SecretID           string // the secret's ARN
	ClientRequestToken string // the version being rotated to
	RotationToken      string
}

// RotationFunction is a rotation Lambda: it runs one step and returns its error, whose Go
// type name is the Lambda errorType (as aws-lambda-go reports it).
type RotationFunction func(ctx context.Context, ev RotationEvent) error

// RotationFunctionFailed is RotateSecret's error when the rotation function failed a step
// it ran synchronously (the configuration test): the Lambda error's type and message.
type RotationFunctionFailed struct {
	Step         string
	ErrorType    string
	ErrorMessage string
}

func (e *RotationFunctionFailed) Error() string {
	return fmt.Sprintf("the rotation function failed %s: %s: %s", e.Step, e.ErrorType, e.ErrorMessage)
}

// RegisterFunction makes fn the Lambda function arn: RotateSecret invokes it when arn is the
// secret's rotation function.
func (s *Store) RegisterFunction(arn string, fn RotationFunction) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.functions == nil {
		s.functions = map[string]RotationFunction{}
	}
	s.functions[arn] = fn
}

// WaitRotations waits for the rotations RotateSecret started in the background to end.
func (s *Store) WaitRotations() { s.rotating.Wait() }

// RotateSecret records the rotation configuration (RotationLambdaARN, RotationRules) and
// then, as the RotateSecret reference documents
// (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_RotateSecret.html):
//   - with RotateImmediately true (the default), starts a rotation in the background: the
//     four steps with a new version id, stopping at the first failure (see WaitRotations);
//   - with RotateImmediately false, "tests the rotation configuration by running the
//     testSecret step of the Lambda rotation function. The test creates an AWSPENDING
//     version of the secret and then removes it." The test runs before RotateSecret
//     returns; if testSecret fails, RotateSecret returns a *RotationFunctionFailed. The
//     test version's value is not documented: the model copies AWSCURRENT's.
//
// "If the AWSPENDING staging label is present but not attached to the same version as
// AWSCURRENT, then any later invocation of RotateSecret assumes that a previous rotation
// request is still in progress and returns an error": an InvalidRequestException.
func (s *Store) RotateSecret(ctx context.Context, in *secretsmanager.RotateSecretInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.RotateSecretOutput, error) {
	c := Call{Op: OpRotateSecret, SecretID: aws.ToString(in.SecretId), VersionID: aws.ToString(in.ClientRequestToken)}
	return apirec.Do(ctx, s.api, c, in, s.rotateSecret, func(c *Call, out *secretsmanager.RotateSecretOutput, _ error) {
		if out != nil {
			c.VersionID = aws.ToString(out.VersionId)
		}
	})
}

func (s *Store) rotateSecret(ctx context.Context, in *secretsmanager.RotateSecretInput) (*secretsmanager.RotateSecretOutput, error) {
	token, err := checkRotate(in)
	if err != nil {
		return nil, err
	}

	s.mu.Lock()
	sec, current, fn, err := s.configureRotation(in, token)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	out := &secretsmanager.RotateSecretOutput{ARN: aws.String(sec.arn), Name: aws.String(sec.name), VersionId: aws.String(token)}
	ev := RotationEvent{SecretID: sec.arn, ClientRequestToken: token}

	if in.RotateImmediately != nil && !*in.RotateImmediately {
		v := &version{id: token, created: s.now(), str: cloneString(current.str), bin: slices.Clone(current.bin)}
		sec.versions = append(sec.versions, v)
		sec.attach(StagePending, v)
		s.mu.Unlock()
		if err := s.testConfiguration(ctx, fn, ev, v); err != nil {
			return nil, err
		}
		out.VersionId = nil // no rotation was started
		return out, nil
	}
	s.mu.Unlock()

	s.rotating.Add(1)
	go func() {
		defer s.rotating.Done()
		for _, step := range []string{StepCreate, StepSet, StepTest, StepFinish} {
			e := ev
			e.Step, e.RotationToken = step, randomString(alnum, 64)
			if err := fn(context.WithoutCancel(ctx), e); err != nil {
				return
			}
		}
	}()
	return out, nil
}

// checkRotate checks the request's parameters and returns the version id to rotate to:
// ClientRequestToken, or a new one.
func checkRotate(in *secretsmanager.RotateSecretInput) (string, error) {
	token := aws.ToString(in.ClientRequestToken)
	if token == "" {
		token = newUUID()
	} else if err := validateToken(token); err != nil {
		return "", err
	}
	if r := in.RotationRules; r != nil && r.AutomaticallyAfterDays != nil && (*r.AutomaticallyAfterDays < 1 || *r.AutomaticallyAfterDays > 1000) {
		return "", invalidParameter("AutomaticallyAfterDays must be between 1 and 1000.")
	}
	return token, nil
}

// configureRotation checks, under s.mu, that the secret can rotate to token with the
// request's function, then records the rotation configuration. It returns the secret, its
// AWSCURRENT version and the rotation function.
func (s *Store) configureRotation(in *secretsmanager.RotateSecretInput, token string) (*secret, *version, RotationFunction, error) {
	sec, err := s.lookup(aws.ToString(in.SecretId))
	if err != nil {
		return nil, nil, nil, err
	}
	current := sec.holder(StageCurrent)
	if current == nil {
		return nil, nil, nil, &types.InvalidRequestException{Message: aws.String("The secret has no AWSCURRENT version to rotate.")}
	}
	if p := sec.holder(StagePending); p != nil && p != current {
		return nil, nil, nil, &types.InvalidRequestException{Message: aws.String("A previous rotation isn't complete. That rotation will be reattempted.")}
	}
	fnARN := aws.ToString(in.RotationLambdaARN)
	if fnARN == "" {
		fnARN = sec.rotationARN
	}
	fn := s.functions[fnARN]
	if fnARN == "" || fn == nil {
		return nil, nil, nil, &types.InvalidRequestException{Message: aws.String(fmt.Sprintf("No rotation function %q to invoke.", fnARN))}
	}
	if sec.version(token) != nil {
		return nil, nil, nil, &types.ResourceExistsException{Message: aws.String(fmt.Sprintf("A version with the ClientRequestToken %s already exists.", token))}
	}
	sec.rotation, sec.rotationARN, sec.configured = true, fnARN, s.now()
	if in.RotationRules != nil {
		r := *in.RotationRules
		sec.rules = &r
	}
	return sec, current, fn, nil
}

// testConfiguration runs the testSecret step on the test version v, which holds AWSPENDING,
// then removes the label. The caller does not hold s.mu.
func (s *Store) testConfiguration(ctx context.Context, fn RotationFunction, ev RotationEvent, v *version) error {
	ev.Step, ev.RotationToken = StepTest, randomString(alnum, 64)
	testErr := fn(ctx, ev)

	s.mu.Lock()
	if v.has(StagePending) {
		v.detach(StagePending)
	}
	s.mu.Unlock()
	if testErr != nil {
		return &RotationFunctionFailed{Step: StepTest, ErrorType: errorType(testErr), ErrorMessage: testErr.Error()}
	}
	return nil
}

// errorType is the errorType a Go Lambda reports for err: the type of a
// messages.InvokeResponse_Error, otherwise the Go type name of err (pointer dereferenced).
func errorType(err error) string {
	var ire messages.InvokeResponse_Error
	if errors.As(err, &ire) {
		return ire.Type
	}
	var irp *messages.InvokeResponse_Error
	if errors.As(err, &irp) {
		return irp.Type
	}
	t := reflect.TypeOf(err)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name()
}
