// Package localsecrets is an in-process Secrets Manager with the real service's
// version-stage semantics, for pgrotate's local mode and for tests.
//
// A Store has the method set of *secretsmanager.Client for the operations pgrotate uses
// (CreateSecret, GetSecretValue, PutSecretValue, DescribeSecret, UpdateSecretVersionStage,
// GetRandomPassword, ListSecretVersionIds, RotateSecret), so code written against a small consumer
// interface runs unchanged on either. Errors are the SDK's modelled exception types
// (*types.ResourceNotFoundException, *types.ResourceExistsException,
// *types.InvalidParameterException, *types.InvalidRequestException) wrapped in a
// *smithy.OperationError, as the SDK returns them, so callers must classify with errors.As.
//
// The rules it enforces are those of the service documentation:
//   - a staging label is attached to at most one version; attaching it elsewhere moves it;
//   - moving AWSCURRENT moves AWSPREVIOUS to the version AWSCURRENT left;
//   - UpdateSecretVersionStage needs RemoveFromVersionId naming the version that holds the
//     label whenever the label is attached elsewhere, and AWSCURRENT can only be moved,
//     never removed;
//   - PutSecretValue is idempotent for the same ClientRequestToken and the same data, and
//     fails with ResourceExistsException for the same token and other data;
//   - RotateSecret invokes the rotation function registered for the secret's
//     RotationLambdaARN (RegisterFunction): the four steps in the background, or, with
//     RotateImmediately false, only the configuration test (testSecret on an AWSPENDING
//     version it creates and then removes);
//   - a version with no label left is deprecated: GetSecretValue still finds it by id, but
//     DescribeSecret and ListSecretVersionIds (without IncludeDeprecated) omit it.
//
// Tests can inject an error or an action before the next call of an operation (Intercept,
// FailNext) and read the calls made (Calls). The record holds operations, secret ids,
// version ids and stages; never a secret value or a RotationToken.
package localsecrets

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/pgrotate/pgrotate/local/internal/apirec"
)

// Region and Account appear in the ARNs the store makes.
const (
	Region  = "local"
	Account = "000000000000"
)

// Staging labels with a meaning of their own.
const (
	StageCurrent  = "AWSCURRENT"
	StagePending  = "AWSPENDING"
	StagePrevious = "AWSPREVIOUS"
)

// Operation names, as the SDK names them; used by Intercept, FailNext and Call.Op.
const (
	OpCreateSecret             = "CreateSecret"
	OpGetSecretValue           = "GetSecretValue"
	OpPutSecretValue           = "PutSecretValue"
	OpDescribeSecret           = "DescribeSecret"
	OpUpdateSecretVersionStage = "UpdateSecretVersionStage"
	OpGetRandomPassword        = "GetRandomPassword"
	OpListSecretVersionIds     = "ListSecretVersionIds"
)

const serviceID = "Secrets Manager"

// Store is an in-process Secrets Manager. The zero value is not usable; call New. A Store
// is safe for concurrent use.
type Store struct {
	// Log gives the calls made (Calls, CallsOf; never a secret value or a RotationToken) and
	// queues interceptors (Intercept, FailNext: for example a *types.InternalServiceError).
	apirec.Log[Call]

	now func() time.Time

	mu        sync.Mutex
	secrets   map[string]*secret // by name
	api       apirec.API[Call]
	functions map[string]RotationFunction // rotation Lambdas by ARN
	rotating  sync.WaitGroup              // rotations started by RotateSecret
}

// Option configures a Store.
type Option func(*Store)

// WithClock sets the source of the dates the store records (CreatedDate, LastChangedDate,
// LastRotatedDate). The default is time.Now.
func WithClock(now func() time.Time) Option {
	return func(s *Store) { s.now = now }
}

// New returns an empty store.
func New(opts ...Option) *Store {
	s := &Store{
		now:     time.Now,
		secrets: make(map[string]*secret),
	}
	for _, o := range opts {
		o(s)
	}
	// Each operation runs in apirec.Do, without s.mu held.
	rec := apirec.New(func(c Call) string { return c.Op },
		func(c Call) Call { c.Stages = append([]string(nil), c.Stages...); return c })
	s.Log = rec.Log()
	s.api = apirec.API[Call]{Rec: rec, Service: serviceID, SetErr: func(c *Call, err error) { c.Err = err }}
	return s
}

type secret struct {
	name        string
	arn         string
	description string
	created     time.Time
	changed     time.Time
	rotated     *time.Time
	rotation    bool
	rotationARN string
	rules       *types.RotationRulesType
	configured  time.Time  // when RotateSecret last set the rotation configuration
	versions    []*version // in creation order
}

type version struct {
	id      string
	created time.Time
	str     *string
	bin     []byte
	stages  []string // in the order they were attached
}

func (v *version) has(stage string) bool {
	for _, s := range v.stages {
		if s == stage {
			return true
		}
	}
	return false
}

func (v *version) detach(stage string) {
	out := v.stages[:0]
	for _, s := range v.stages {
		if s != stage {
			out = append(out, s)
		}
	}
	v.stages = out
}

func (v *version) attach(stage string) {
	if !v.has(stage) {
		v.stages = append(v.stages, stage)
	}
}

func (sec *secret) version(id string) *version {
	for _, v := range sec.versions {
		if v.id == id {
			return v
		}
	}
	return nil
}

// holder returns the version that carries stage, or nil.
func (sec *secret) holder(stage string) *version {
	for _, v := range sec.versions {
		if v.has(stage) {
			return v
		}
	}
	return nil
}

// attach puts stage on v, taking it from whichever version holds it. Moving AWSCURRENT
// moves AWSPREVIOUS to the version AWSCURRENT left, as the service does.
func (sec *secret) attach(stage string, v *version) {
	old := sec.holder(stage)
	if old == v {
		return
	}
	if old != nil {
		old.detach(stage)
	}
	v.attach(stage)
	if stage == StageCurrent && old != nil {
		if prev := sec.holder(StagePrevious); prev != nil {
			prev.detach(StagePrevious)
		}
		old.attach(StagePrevious)
	}
}

func (sec *secret) stagesByVersion() map[string][]string {
	m := make(map[string][]string)
	for _, v := range sec.versions {
		if len(v.stages) > 0 {
			m[v.id] = append([]string(nil), v.stages...)
		}
	}
	return m
}

// lookup finds a secret by name, full ARN or partial ARN (the ARN without its random
// suffix). The caller holds s.mu.
func (s *Store) lookup(id string) (*secret, error) {
	if id == "" {
		return nil, &types.InvalidParameterException{Message: aws.String("SecretId is required")}
	}
	if sec, ok := s.secrets[id]; ok {
		return sec, nil
	}
	if strings.HasPrefix(id, "arn:") {
		for _, sec := range s.secrets {
			if sec.arn == id || partialARN(sec.name) == id {
				return sec, nil
			}
		}
	}
	return nil, &types.ResourceNotFoundException{Message: aws.String(fmt.Sprintf("Secrets Manager can't find the specified secret %q.", id))}
}

func partialARN(name string) string {
	return fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:%s", Region, Account, name)
}

// Call is one recorded operation. It never holds a secret value or a RotationToken.
type Call struct {
	Op       string
	SecretID string // as given: a name or an ARN
	// VersionID is the ClientRequestToken (CreateSecret, PutSecretValue), the VersionId
	// (GetSecretValue) or the MoveToVersionId (UpdateSecretVersionStage).
	VersionID string
	// RemoveFrom is UpdateSecretVersionStage's RemoveFromVersionId.
	RemoveFrom string
	// Stages are PutSecretValue's VersionStages, or the one VersionStage of
	// GetSecretValue and UpdateSecretVersionStage.
	Stages []string
	// RotationToken reports whether PutSecretValue received one; its value is not kept.
	RotationToken bool
	// Err is what the call returned.
	Err error
}

// SetRotation records the rotation configuration DescribeSecret reports (RotationEnabled,
// RotationLambdaARN). The store never rotates by itself.
func (s *Store) SetRotation(secretID string, enabled bool, lambdaARN string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.lookup(secretID)
	if err != nil {
		return err
	}
	sec.rotation = enabled
	sec.rotationARN = lambdaARN
	return nil
}

// String describes the store without any secret value, so printing a Store by accident
// (%v on a pointer prints the fields) leaks nothing.
func (s *Store) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("localsecrets.Store(%d secrets)", len(s.secrets))
}

// Format covers every fmt verb, including %#v and %+v.
func (s *Store) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// LogValue keeps secret values out of slog output.
func (s *Store) LogValue() slog.Value { return slog.StringValue(s.String()) }

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// randomString returns n characters of alphabet, chosen with crypto/rand.
func randomString(alphabet string, n int) string {
	var b strings.Builder
	for range n {
		b.WriteByte(alphabet[randIndex(len(alphabet))])
	}
	return b.String()
}

// randIndex returns a uniform integer in [0, n).
func randIndex(n int) int {
	i, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		// crypto/rand.Reader does not fail on supported platforms (Go 1.24+ panics
		// rather than return an error), so this is unreachable.
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return int(i.Int64())
}

// newUUID returns a random (version 4) UUID, the form Secrets Manager uses for version ids.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
