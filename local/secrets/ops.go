package localsecrets

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/pgrotate/pgrotate/local/internal/apirec"
)

// CreateSecret creates a secret. With a SecretString or SecretBinary it also creates the
// first version, labelled AWSCURRENT, whose id is ClientRequestToken (or a new UUID).
func (s *Store) CreateSecret(ctx context.Context, in *secretsmanager.CreateSecretInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.CreateSecretOutput, error) {
	c := Call{Op: OpCreateSecret, SecretID: aws.ToString(in.Name), VersionID: aws.ToString(in.ClientRequestToken)}
	return apirec.Do(ctx, s.api, c, in, s.createSecret, func(c *Call, out *secretsmanager.CreateSecretOutput, _ error) {
		if out != nil && out.VersionId != nil {
			c.VersionID = *out.VersionId
			c.Stages = []string{StageCurrent}
		}
	})
}

func (s *Store) createSecret(ctx context.Context, in *secretsmanager.CreateSecretInput) (*secretsmanager.CreateSecretOutput, error) {
	name := aws.ToString(in.Name)
	if err := validateName(name); err != nil {
		return nil, err
	}
	hasValue := in.SecretString != nil || in.SecretBinary != nil
	if in.SecretString != nil && in.SecretBinary != nil {
		return nil, invalidParameter("You can't specify both SecretString and SecretBinary.")
	}
	token := aws.ToString(in.ClientRequestToken)
	if token != "" {
		if err := validateToken(token); err != nil {
			return nil, err
		}
	} else if hasValue {
		token = newUUID()
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.secrets[name]; ok {
		return nil, &types.ResourceExistsException{Message: aws.String(fmt.Sprintf("The operation failed because the secret %s already exists.", name))}
	}
	now := s.now()
	sec := &secret{
		name:        name,
		arn:         partialARN(name) + "-" + randomString(alnum, 6),
		description: aws.ToString(in.Description),
		created:     now,
		changed:     now,
	}
	s.secrets[name] = sec
	out := &secretsmanager.CreateSecretOutput{ARN: aws.String(sec.arn), Name: aws.String(name)}
	if hasValue {
		v := &version{id: token, created: now, str: cloneString(in.SecretString), bin: bytes.Clone(in.SecretBinary)}
		sec.versions = append(sec.versions, v)
		sec.attach(StageCurrent, v)
		out.VersionId = aws.String(token)
	}
	return out, nil
}

// GetSecretValue returns a version's value: the one with VersionId, the one labelled
// VersionStage, or AWSCURRENT when neither is given. With both, the label must be on that
// version.
func (s *Store) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	c := Call{Op: OpGetSecretValue, SecretID: aws.ToString(in.SecretId), VersionID: aws.ToString(in.VersionId)}
	if in.VersionStage != nil {
		c.Stages = []string{*in.VersionStage}
	}
	return apirec.Do(ctx, s.api, c, in, s.getSecretValue, func(c *Call, out *secretsmanager.GetSecretValueOutput, _ error) {
		if out != nil && c.VersionID == "" {
			c.VersionID = aws.ToString(out.VersionId)
		}
	})
}

func (s *Store) getSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput) (*secretsmanager.GetSecretValueOutput, error) {
	return withSecret(s, in.SecretId, func(sec *secret) (*secretsmanager.GetSecretValueOutput, error) {
		id, stage := aws.ToString(in.VersionId), aws.ToString(in.VersionStage)
		var v *version
		switch {
		case id != "":
			v = sec.version(id)
			if v == nil {
				return nil, notFound(fmt.Sprintf("Secrets Manager can't find the specified secret value for VersionId: %s", id))
			}
			if stage != "" && !v.has(stage) {
				return nil, notFound(fmt.Sprintf("Secrets Manager can't find the specified secret value for VersionId: %s and staging label: %s", id, stage))
			}
		default:
			if stage == "" {
				stage = StageCurrent
			}
			v = sec.holder(stage)
			if v == nil {
				return nil, notFound(fmt.Sprintf("Secrets Manager can't find the specified secret value for staging label: %s", stage))
			}
		}
		created := v.created
		return &secretsmanager.GetSecretValueOutput{
			ARN:           aws.String(sec.arn),
			Name:          aws.String(sec.name),
			VersionId:     aws.String(v.id),
			VersionStages: slices.Clone(v.stages),
			SecretString:  cloneString(v.str),
			SecretBinary:  bytes.Clone(v.bin),
			CreatedDate:   &created,
		}, nil
	})
}

// PutSecretValue creates a version (id ClientRequestToken, or a new UUID) labelled
// VersionStages, AWSCURRENT by default; the first version of a secret is AWSCURRENT
// whatever the labels asked. Labels move from the versions that held them. A repeated call
// with the same token and the same data succeeds and changes nothing; the same token with
// other data fails with ResourceExistsException.
func (s *Store) PutSecretValue(ctx context.Context, in *secretsmanager.PutSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error) {
	c := Call{
		Op: OpPutSecretValue, SecretID: aws.ToString(in.SecretId), VersionID: aws.ToString(in.ClientRequestToken),
		Stages: slices.Clone(in.VersionStages), RotationToken: in.RotationToken != nil,
	}
	return apirec.Do(ctx, s.api, c, in, s.putSecretValue, func(c *Call, out *secretsmanager.PutSecretValueOutput, _ error) {
		if out != nil && c.VersionID == "" {
			c.VersionID = aws.ToString(out.VersionId)
		}
	})
}

func (s *Store) putSecretValue(ctx context.Context, in *secretsmanager.PutSecretValueInput) (*secretsmanager.PutSecretValueOutput, error) {
	token, stages, err := checkPut(in)
	if err != nil {
		return nil, err
	}
	return withSecret(s, in.SecretId, func(sec *secret) (*secretsmanager.PutSecretValueOutput, error) {
		out := func(v *version) *secretsmanager.PutSecretValueOutput {
			return &secretsmanager.PutSecretValueOutput{
				ARN: aws.String(sec.arn), Name: aws.String(sec.name),
				VersionId: aws.String(v.id), VersionStages: slices.Clone(v.stages),
			}
		}
		if v := sec.version(token); v != nil {
			if !sameData(v, in.SecretString, in.SecretBinary) {
				return nil, &types.ResourceExistsException{Message: aws.String(fmt.Sprintf(
					"You can't modify an existing version, you can only create new versions. VersionId: %s", token))}
			}
			return out(v), nil
		}
		now := s.now()
		v := &version{id: token, created: now, str: cloneString(in.SecretString), bin: bytes.Clone(in.SecretBinary)}
		first := sec.holder(StageCurrent) == nil
		sec.versions = append(sec.versions, v)
		for _, st := range stages {
			sec.attach(st, v)
		}
		if first {
			sec.attach(StageCurrent, v)
		}
		sec.changed = now
		return out(v), nil
	})
}

// checkPut checks PutSecretValue's parameters and returns the version id (ClientRequestToken
// or a new one) and the labels to attach (VersionStages, by default AWSCURRENT).
func checkPut(in *secretsmanager.PutSecretValueInput) (token string, stages []string, err error) {
	switch {
	case in.SecretString == nil && in.SecretBinary == nil:
		return "", nil, invalidParameter("You must provide either SecretString or SecretBinary.")
	case in.SecretString != nil && in.SecretBinary != nil:
		return "", nil, invalidParameter("You can't specify both SecretString and SecretBinary.")
	}
	token = aws.ToString(in.ClientRequestToken)
	if token == "" {
		token = newUUID()
	} else if err := validateToken(token); err != nil {
		return "", nil, err
	}
	if in.RotationToken != nil {
		if err := validateRotationToken(*in.RotationToken); err != nil {
			return "", nil, err
		}
	}
	stages = in.VersionStages
	if len(stages) == 0 {
		stages = []string{StageCurrent}
	}
	for _, st := range stages {
		if err := validateStage(st); err != nil {
			return "", nil, err
		}
	}
	return token, stages, nil
}

// DescribeSecret returns a secret's metadata and the labels of its versions (deprecated
// versions, which carry no label, are left out).
func (s *Store) DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error) {
	c := Call{Op: OpDescribeSecret, SecretID: aws.ToString(in.SecretId)}
	return apirec.Do(ctx, s.api, c, in, s.describeSecret, nil)
}

func (s *Store) describeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput) (*secretsmanager.DescribeSecretOutput, error) {
	return withSecret(s, in.SecretId, func(sec *secret) (*secretsmanager.DescribeSecretOutput, error) {
		created, changed := sec.created, sec.changed
		out := &secretsmanager.DescribeSecretOutput{
			ARN:                aws.String(sec.arn),
			Name:               aws.String(sec.name),
			CreatedDate:        &created,
			LastChangedDate:    &changed,
			RotationEnabled:    aws.Bool(sec.rotation),
			VersionIdsToStages: sec.stagesByVersion(),
		}
		if sec.description != "" {
			out.Description = aws.String(sec.description)
		}
		if sec.rotationARN != "" {
			out.RotationLambdaARN = aws.String(sec.rotationARN)
		}
		if sec.rotated != nil {
			r := *sec.rotated
			out.LastRotatedDate = &r
		}
		if sec.rules != nil {
			r := *sec.rules
			out.RotationRules = &r
		}
		out.NextRotationDate = sec.nextRotation()
		return out, nil
	})
}

// nextRotation is DescribeSecret's NextRotationDate: "The next rotation is scheduled to
// occur on or before this date. If the secret isn't configured for rotation or rotation has
// been disabled, Secrets Manager returns null"
// (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_DescribeSecret.html).
// The model knows AutomaticallyAfterDays schedules only: the last rotation (or, before any,
// the moment rotation was configured) plus that many days; a ScheduleExpression gives null.
func (sec *secret) nextRotation() *time.Time {
	if !sec.rotation || sec.rules == nil || sec.rules.AutomaticallyAfterDays == nil {
		return nil
	}
	from := sec.configured
	if sec.rotated != nil && sec.rotated.After(from) {
		from = *sec.rotated
	}
	if from.IsZero() {
		return nil
	}
	next := from.AddDate(0, 0, int(*sec.rules.AutomaticallyAfterDays))
	return &next
}

// UpdateSecretVersionStage moves VersionStage to MoveToVersionId, or removes it from
// RemoveFromVersionId when MoveToVersionId is absent. When the label is attached to another
// version, RemoveFromVersionId must name that version. Moving AWSCURRENT moves AWSPREVIOUS
// to the version AWSCURRENT left and sets LastRotatedDate; AWSCURRENT cannot be removed.
func (s *Store) UpdateSecretVersionStage(ctx context.Context, in *secretsmanager.UpdateSecretVersionStageInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.UpdateSecretVersionStageOutput, error) {
	c := Call{
		Op: OpUpdateSecretVersionStage, SecretID: aws.ToString(in.SecretId),
		VersionID: aws.ToString(in.MoveToVersionId), RemoveFrom: aws.ToString(in.RemoveFromVersionId),
	}
	if in.VersionStage != nil {
		c.Stages = []string{*in.VersionStage}
	}
	return apirec.Do(ctx, s.api, c, in, s.updateSecretVersionStage, nil)
}

func (s *Store) updateSecretVersionStage(ctx context.Context, in *secretsmanager.UpdateSecretVersionStageInput) (*secretsmanager.UpdateSecretVersionStageOutput, error) {
	stage, to, from, err := checkStageMove(in)
	if err != nil {
		return nil, err
	}
	return withSecret(s, in.SecretId, func(sec *secret) (*secretsmanager.UpdateSecretVersionStageOutput, error) {
		out := &secretsmanager.UpdateSecretVersionStageOutput{ARN: aws.String(sec.arn), Name: aws.String(sec.name)}
		holder := sec.holder(stage)
		fromV, err := sec.labelledVersion(from, stage)
		if err != nil {
			return nil, err
		}

		if to == "" { // remove only
			if stage == StageCurrent {
				return nil, invalidParameter("You can only move staging label AWSCURRENT to a different secret version. It can't be completely removed.")
			}
			fromV.detach(stage)
			sec.changed = s.now()
			return out, nil
		}

		toV := sec.version(to)
		if toV == nil {
			return nil, notFound(fmt.Sprintf("Secrets Manager can't find the specified secret version: %s", to))
		}
		if holder != nil && holder != toV && fromV != holder {
			return nil, invalidParameter(fmt.Sprintf(
				"The parameter RemoveFromVersionId can't be empty. Staging label %s is currently attached to version %s, so you must explicitly reference that version in RemoveFromVersionId.",
				stage, holder.id))
		}
		if holder == toV {
			return out, nil // already there
		}
		now := s.now()
		sec.attach(stage, toV)
		sec.changed = now
		if stage == StageCurrent {
			sec.rotated = &now
		}
		return out, nil
	})
}

// checkStageMove checks UpdateSecretVersionStage's parameters and returns the label and the
// version ids to move it to and from ("" when absent).
func checkStageMove(in *secretsmanager.UpdateSecretVersionStageInput) (stage, to, from string, err error) {
	stage = aws.ToString(in.VersionStage)
	if err := validateStage(stage); err != nil {
		return "", "", "", err
	}
	to, from = aws.ToString(in.MoveToVersionId), aws.ToString(in.RemoveFromVersionId)
	if to == "" && from == "" {
		return "", "", "", invalidParameter("You must specify MoveToVersionId or RemoveFromVersionId.")
	}
	return stage, to, from, nil
}

// labelledVersion is the version id, which must carry stage; nil when id is "".
func (sec *secret) labelledVersion(id, stage string) (*version, error) {
	if id == "" {
		return nil, nil
	}
	v := sec.version(id)
	if v == nil {
		return nil, notFound(fmt.Sprintf("Secrets Manager can't find the specified secret version: %s", id))
	}
	if !v.has(stage) {
		return nil, invalidParameter(fmt.Sprintf("The staging label %s is not attached to version %s.", stage, id))
	}
	return v, nil
}

// ListSecretVersionIds lists a secret's versions, oldest first; deprecated versions only
// with IncludeDeprecated. It pages with MaxResults (default 100) and NextToken.
func (s *Store) ListSecretVersionIds(ctx context.Context, in *secretsmanager.ListSecretVersionIdsInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.ListSecretVersionIdsOutput, error) {
	c := Call{Op: OpListSecretVersionIds, SecretID: aws.ToString(in.SecretId)}
	return apirec.Do(ctx, s.api, c, in, s.listSecretVersionIds, nil)
}

func (s *Store) listSecretVersionIds(ctx context.Context, in *secretsmanager.ListSecretVersionIdsInput) (*secretsmanager.ListSecretVersionIdsOutput, error) {
	limit := 100
	if in.MaxResults != nil {
		if *in.MaxResults < 1 || *in.MaxResults > 100 {
			return nil, invalidParameter("MaxResults must be between 1 and 100.")
		}
		limit = int(*in.MaxResults)
	}
	start := 0
	if in.NextToken != nil {
		n, err := strconv.Atoi(*in.NextToken)
		if err != nil || n < 0 {
			return nil, &types.InvalidNextTokenException{Message: aws.String("The NextToken value is invalid.")}
		}
		start = n
	}
	return withSecret(s, in.SecretId, func(sec *secret) (*secretsmanager.ListSecretVersionIdsOutput, error) {
		var all []types.SecretVersionsListEntry
		for _, v := range sec.versions {
			if len(v.stages) == 0 && !aws.ToBool(in.IncludeDeprecated) {
				continue
			}
			created := v.created
			all = append(all, types.SecretVersionsListEntry{
				VersionId: aws.String(v.id), VersionStages: slices.Clone(v.stages), CreatedDate: &created,
			})
		}
		if start > len(all) {
			return nil, &types.InvalidNextTokenException{Message: aws.String("The NextToken value is invalid.")}
		}
		end := min(start+limit, len(all))
		out := &secretsmanager.ListSecretVersionIdsOutput{
			ARN: aws.String(sec.arn), Name: aws.String(sec.name), Versions: all[start:end],
		}
		if end < len(all) {
			out.NextToken = aws.String(strconv.Itoa(end))
		}
		return out, nil
	})
}

// withSecret runs f on the secret id names, with the store locked.
func withSecret[Out any](s *Store, id *string, f func(*secret) (*Out, error)) (*Out, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.lookup(aws.ToString(id))
	if err != nil {
		return nil, err
	}
	return f(sec)
}

// Names returns the names of the stored secrets, sorted.
func (s *Store) Names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.secrets))
	for n := range s.secrets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func sameData(v *version, str *string, bin []byte) bool {
	if (v.str == nil) != (str == nil) {
		return false
	}
	if str != nil && *v.str != *str {
		return false
	}
	return bytes.Equal(v.bin, bin)
}

func cloneString(p *string) *string {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func notFound(msg string) error { return &types.ResourceNotFoundException{Message: aws.String(msg)} }

func invalidParameter(msg string) error {
	return &types.InvalidParameterException{Message: aws.String(msg)}
}

// validateName applies the service's rule for secret names: 1 to 512 characters among
// letters, digits and /_+=.@-.
func validateName(name string) error {
	if name == "" || len(name) > 512 {
		return invalidParameter("The secret name must be 1 to 512 characters.")
	}
	for _, r := range name {
		ok := ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9') || bytes.ContainsRune([]byte("/_+=.@-"), r)
		if !ok {
			return invalidParameter(fmt.Sprintf("Invalid name %q: use letters, digits and /_+=.@- only.", name))
		}
	}
	return nil
}

// validateToken applies the service's length rule to a ClientRequestToken (a version id).
func validateToken(token string) error {
	if len(token) < 32 || len(token) > 64 {
		return invalidParameter(fmt.Sprintf("ClientRequestToken %q must be 32 to 64 characters long (%d given).", token, len(token)))
	}
	return nil
}

// validateRotationToken applies the service's rule (36 to 256 of [a-zA-Z0-9-]); the
// message never echoes the token, which is sensitive.
func validateRotationToken(tok string) error {
	if len(tok) < 36 || len(tok) > 256 {
		return invalidParameter("RotationToken must be 36 to 256 characters long.")
	}
	for _, r := range tok {
		if !(('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9') || r == '-') {
			return invalidParameter("RotationToken may contain only letters, digits and hyphens.")
		}
	}
	return nil
}

func validateStage(stage string) error {
	if stage == "" || len(stage) > 256 {
		return invalidParameter("A staging label must be 1 to 256 characters long.")
	}
	return nil
}
