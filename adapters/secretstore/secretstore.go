// Package secretstore reads and writes pgrotate's secrets in Secrets Manager and returns
// them as workflow types. The step handlers use it to re-read each secret by version id or
// stage (passwords never travel in the state), and the rotation function uses it to write
// AWSPENDING and move AWSCURRENT.
//
// It depends only on the API interface, which *secretsmanager.Client and the local mode's
// *localsecrets.Store both satisfy. Errors name the action, the secret ARN and the version
// or stage; they never carry a secret value.
package secretstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/pgrotate/pgrotate/workflow"
)

// API is the part of Secrets Manager the store uses.
type API interface {
	GetSecretValue(context.Context, *secretsmanager.GetSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
	DescribeSecret(context.Context, *secretsmanager.DescribeSecretInput, ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error)
	PutSecretValue(context.Context, *secretsmanager.PutSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error)
	UpdateSecretVersionStage(context.Context, *secretsmanager.UpdateSecretVersionStageInput, ...func(*secretsmanager.Options)) (*secretsmanager.UpdateSecretVersionStageOutput, error)
	GetRandomPassword(context.Context, *secretsmanager.GetRandomPasswordInput, ...func(*secretsmanager.Options)) (*secretsmanager.GetRandomPasswordOutput, error)
}

// Store is the Secrets Manager adapter.
type Store struct {
	api API
}

// New returns a Store backed by api.
func New(api API) *Store {
	if api == nil {
		panic("secretstore.New: nil API")
	}
	return &Store{api: api}
}

// IsNotFound reports whether err says the secret, the version or the stage does not exist.
func IsNotFound(err error) bool {
	var nf *types.ResourceNotFoundException
	return errors.As(err, &nf)
}

// IsNotFound is the package function IsNotFound, for consumers that take it through an
// interface.
func (*Store) IsNotFound(err error) bool { return IsNotFound(err) }

// AppSecret reads and validates the app secret's version versionID. A malformed value is a
// *workflow.InvalidSecret.
func (s *Store) AppSecret(ctx context.Context, arn, versionID string) (workflow.AppSecret, error) {
	if versionID == "" {
		return workflow.AppSecret{}, fmt.Errorf("read app secret %s: empty version id", arn)
	}
	app, _, err := s.app(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn), VersionId: aws.String(versionID)})
	if err != nil {
		return workflow.AppSecret{}, fmt.Errorf("read app secret %s version %s: %w", arn, versionID, err)
	}
	return app, nil
}

// AppSecretAt reads and validates the app secret's version labelled stage, and returns that
// version's id.
func (s *Store) AppSecretAt(ctx context.Context, arn, stage string) (workflow.AppSecret, string, error) {
	if stage == "" {
		return workflow.AppSecret{}, "", fmt.Errorf("read app secret %s: empty stage", arn)
	}
	app, id, err := s.app(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn), VersionStage: aws.String(stage)})
	if err != nil {
		return workflow.AppSecret{}, "", fmt.Errorf("read app secret %s at %s: %w", arn, stage, err)
	}
	return app, id, nil
}

func (s *Store) app(ctx context.Context, in *secretsmanager.GetSecretValueInput) (workflow.AppSecret, string, error) {
	str, id, err := s.get(ctx, in)
	if err != nil {
		return workflow.AppSecret{}, "", err
	}
	app, err := workflow.ParseAppSecret([]byte(str))
	if err != nil {
		return workflow.AppSecret{}, "", err
	}
	return app, id, nil
}

// AdminSecret reads and validates the admin secret's AWSCURRENT version.
func (s *Store) AdminSecret(ctx context.Context, arn string) (workflow.AdminSecret, error) {
	str, _, err := s.get(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn), VersionStage: aws.String(workflow.StageCurrent)})
	if err != nil {
		return workflow.AdminSecret{}, fmt.Errorf("read admin secret %s: %w", arn, err)
	}
	admin, err := workflow.ParseAdminSecret([]byte(str))
	if err != nil {
		return workflow.AdminSecret{}, fmt.Errorf("read admin secret %s: %w", arn, err)
	}
	return admin, nil
}

// get returns a version's SecretString and id. The caller wraps errors with the action.
func (s *Store) get(ctx context.Context, in *secretsmanager.GetSecretValueInput) (string, string, error) {
	out, err := s.api.GetSecretValue(ctx, in)
	if err != nil {
		return "", "", err
	}
	if out.SecretString == nil {
		return "", "", &workflow.InvalidSecret{Secret: aws.ToString(in.SecretId), Reason: "the version holds no SecretString (binary secrets are not supported)"}
	}
	return *out.SecretString, aws.ToString(out.VersionId), nil
}

// Stages returns the labels of every version of the secret (DescribeSecret's
// VersionIdsToStages).
func (s *Store) Stages(ctx context.Context, arn string) (workflow.Versions, error) {
	out, err := s.api.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(arn)})
	if err != nil {
		return nil, fmt.Errorf("describe secret %s: %w", arn, err)
	}
	v := make(workflow.Versions, len(out.VersionIdsToStages))
	for id, stages := range out.VersionIdsToStages {
		v[id] = append([]string(nil), stages...)
	}
	return v, nil
}

// VersionStages is Stages under the name the handlers' interfaces use.
func (s *Store) VersionStages(ctx context.Context, arn string) (workflow.Versions, error) {
	return s.Stages(ctx, arn)
}

// VersionCreated returns when version versionID of the secret was created. It reads the
// version (GetSecretValue, which the readers of the secret may already call) rather than
// listing versions, so it needs no permission beyond reading the secret; the value is
// dropped at once.
func (s *Store) VersionCreated(ctx context.Context, arn, versionID string) (time.Time, error) {
	if versionID == "" {
		return time.Time{}, fmt.Errorf("read creation date of %s: empty version id", arn)
	}
	out, err := s.api.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn), VersionId: aws.String(versionID)})
	if err != nil {
		return time.Time{}, fmt.Errorf("read creation date of %s version %s: %w", arn, versionID, err)
	}
	if out.CreatedDate == nil {
		return time.Time{}, fmt.Errorf("read creation date of %s version %s: Secrets Manager returned none", arn, versionID)
	}
	return *out.CreatedDate, nil
}

// PutPending writes app as version token labelled AWSPENDING. rotationToken, the one
// Secrets Manager sent the rotation function, is passed on when it is not empty. Writing
// the same version again with the same value succeeds; with another value it fails.
func (s *Store) PutPending(ctx context.Context, arn, token string, app workflow.AppSecret, rotationToken workflow.Password) error {
	if token == "" {
		return fmt.Errorf("put pending version of %s: empty token", arn)
	}
	str, err := app.SecretString()
	if err != nil {
		// json.Marshal of these fields cannot fail; keep the cause out of the message anyway.
		return fmt.Errorf("put pending version %s of %s: serialise the secret", token, arn)
	}
	in := &secretsmanager.PutSecretValueInput{
		SecretId:           aws.String(arn),
		ClientRequestToken: aws.String(token),
		SecretString:       aws.String(str),
		VersionStages:      []string{workflow.StagePending},
	}
	if !rotationToken.IsZero() {
		in.RotationToken = aws.String(rotationToken.Reveal())
	}
	if _, err := s.api.PutSecretValue(ctx, in); err != nil {
		return fmt.Errorf("put pending version %s of %s: %w", token, arn, err)
	}
	return nil
}

// MoveCurrent moves AWSCURRENT to toVersion from fromVersion (the version that holds it;
// empty if none does). Secrets Manager moves AWSPREVIOUS to fromVersion.
func (s *Store) MoveCurrent(ctx context.Context, arn, toVersion, fromVersion string) error {
	if toVersion == "" {
		return fmt.Errorf("move AWSCURRENT of %s: empty target version", arn)
	}
	in := &secretsmanager.UpdateSecretVersionStageInput{
		SecretId:        aws.String(arn),
		VersionStage:    aws.String(workflow.StageCurrent),
		MoveToVersionId: aws.String(toVersion),
	}
	if fromVersion != "" {
		in.RemoveFromVersionId = aws.String(fromVersion)
	}
	if _, err := s.api.UpdateSecretVersionStage(ctx, in); err != nil {
		return fmt.Errorf("move AWSCURRENT of %s from %s to %s: %w", arn, fromVersion, toVersion, err)
	}
	return nil
}

// RandomPassword asks Secrets Manager for a password of length characters (every character
// type included, at least one of each) without any character of exclude.
func (s *Store) RandomPassword(ctx context.Context, length int, exclude string) (workflow.Password, error) {
	in := &secretsmanager.GetRandomPasswordInput{
		PasswordLength:          aws.Int64(int64(length)),
		RequireEachIncludedType: aws.Bool(true),
	}
	if exclude != "" {
		in.ExcludeCharacters = aws.String(exclude)
	}
	out, err := s.api.GetRandomPassword(ctx, in)
	if err != nil {
		return workflow.Password{}, fmt.Errorf("generate a %d-character password: %w", length, err)
	}
	pw := aws.ToString(out.RandomPassword)
	if len(pw) != length {
		return workflow.Password{}, fmt.Errorf("generate a %d-character password: got %d characters", length, len(pw))
	}
	return workflow.NewPassword(pw), nil
}
