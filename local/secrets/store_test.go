package localsecrets

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"

	"github.com/pgrotate/pgrotate/internal/testctx"
)

// api is every operation the store implements; both the SDK client and the store must
// satisfy it, which pins the signatures to the SDK's.
type api interface {
	CreateSecret(context.Context, *secretsmanager.CreateSecretInput, ...func(*secretsmanager.Options)) (*secretsmanager.CreateSecretOutput, error)
	GetSecretValue(context.Context, *secretsmanager.GetSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
	PutSecretValue(context.Context, *secretsmanager.PutSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error)
	DescribeSecret(context.Context, *secretsmanager.DescribeSecretInput, ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error)
	UpdateSecretVersionStage(context.Context, *secretsmanager.UpdateSecretVersionStageInput, ...func(*secretsmanager.Options)) (*secretsmanager.UpdateSecretVersionStageOutput, error)
	GetRandomPassword(context.Context, *secretsmanager.GetRandomPasswordInput, ...func(*secretsmanager.Options)) (*secretsmanager.GetRandomPasswordOutput, error)
	ListSecretVersionIds(context.Context, *secretsmanager.ListSecretVersionIdsInput, ...func(*secretsmanager.Options)) (*secretsmanager.ListSecretVersionIdsOutput, error)
}

var (
	_ api = (*secretsmanager.Client)(nil)
	_ api = (*Store)(nil)
)

// tok returns a valid ClientRequestToken (36 characters) for version i.
func tok(i int) string { return fmt.Sprintf("a0000000-0000-4000-8000-%012d", i) }

// A RotationToken-shaped value; tests check that it never shows up anywhere.
const rotationToken = "f00dfeed-0000-4000-8000-123456789abc"

// newSecret creates "app" with version tok(1) = AWSCURRENT and returns the store and ARN.
func newSecret(t *testing.T, opts ...Option) (*Store, string) {
	t.Helper()
	s := New(opts...)
	out, err := s.CreateSecret(testctx.Context(t), &secretsmanager.CreateSecretInput{
		Name: aws.String("app"), SecretString: aws.String(`{"password":"v1"}`), ClientRequestToken: aws.String(tok(1)),
	})
	if err != nil {
		t.Fatalf("CreateSecret: %v", err)
	}
	return s, aws.ToString(out.ARN)
}

func put(t *testing.T, s *Store, token, value string, stages ...string) {
	t.Helper()
	if _, err := s.PutSecretValue(testctx.Context(t), &secretsmanager.PutSecretValueInput{
		SecretId: aws.String("app"), ClientRequestToken: aws.String(token), SecretString: aws.String(value), VersionStages: stages,
	}); err != nil {
		t.Fatalf("PutSecretValue(%s, %v): %v", token, stages, err)
	}
}

func stages(t *testing.T, s *Store) map[string][]string {
	t.Helper()
	out, err := s.DescribeSecret(testctx.Context(t), &secretsmanager.DescribeSecretInput{SecretId: aws.String("app")})
	if err != nil {
		t.Fatalf("DescribeSecret: %v", err)
	}
	for id := range out.VersionIdsToStages {
		slices.Sort(out.VersionIdsToStages[id])
	}
	return out.VersionIdsToStages
}

func wantStages(t *testing.T, s *Store, want map[string][]string) {
	t.Helper()
	got := stages(t, s)
	for id := range want {
		slices.Sort(want[id])
	}
	if !maps.EqualFunc(got, want, slices.Equal[[]string]) {
		t.Fatalf("VersionIdsToStages = %v, want %v", got, want)
	}
}

// wantErr checks err against the modelled type named by want ("" = no error) and that it
// comes wrapped in a *smithy.OperationError, as the SDK returns it.
func wantErr(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("got no error, want %s", want)
	}
	var op *smithy.OperationError
	if !errors.As(err, &op) {
		t.Errorf("error %v is not a *smithy.OperationError", err)
	}
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != want {
		t.Fatalf("error = %v, want %s", err, want)
	}
}

func TestCreateSecret(t *testing.T) {
	s, arn := newSecret(t)
	if !regexp.MustCompile(`^arn:aws:secretsmanager:local:000000000000:secret:app-[A-Za-z0-9]{6}$`).MatchString(arn) {
		t.Errorf("ARN = %q", arn)
	}
	wantStages(t, s, map[string][]string{tok(1): {StageCurrent}})

	tests := []struct {
		name string
		in   secretsmanager.CreateSecretInput
		want string
	}{
		{"duplicate name", secretsmanager.CreateSecretInput{Name: aws.String("app"), SecretString: aws.String("x")}, "ResourceExistsException"},
		{"short token", secretsmanager.CreateSecretInput{Name: aws.String("b"), SecretString: aws.String("x"), ClientRequestToken: aws.String("v1")}, "InvalidParameterException"},
		{"bad name", secretsmanager.CreateSecretInput{Name: aws.String("a b"), SecretString: aws.String("x")}, "InvalidParameterException"},
		{"no name", secretsmanager.CreateSecretInput{SecretString: aws.String("x")}, "InvalidParameterException"},
		{"string and binary", secretsmanager.CreateSecretInput{Name: aws.String("c"), SecretString: aws.String("x"), SecretBinary: []byte("y")}, "InvalidParameterException"},
		{"without value", secretsmanager.CreateSecretInput{Name: aws.String("empty")}, ""},
		{"generated version id", secretsmanager.CreateSecretInput{Name: aws.String("path/to/d"), SecretString: aws.String("x")}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := s.CreateSecret(testctx.Context(t), &tc.in)
			wantErr(t, err, tc.want)
			if err == nil && tc.in.SecretString != nil && len(aws.ToString(out.VersionId)) != 36 {
				t.Errorf("VersionId = %q, want a UUID", aws.ToString(out.VersionId))
			}
		})
	}

	// A secret created without a value has no AWSCURRENT until its first PutSecretValue,
	// which gets AWSCURRENT even when it asked for AWSPENDING only.
	_, err := s.GetSecretValue(testctx.Context(t), &secretsmanager.GetSecretValueInput{SecretId: aws.String("empty")})
	wantErr(t, err, "ResourceNotFoundException")
	if _, err := s.PutSecretValue(testctx.Context(t), &secretsmanager.PutSecretValueInput{
		SecretId: aws.String("empty"), ClientRequestToken: aws.String(tok(9)), SecretString: aws.String("x"), VersionStages: []string{StagePending},
	}); err != nil {
		t.Fatal(err)
	}
	d, err := s.DescribeSecret(testctx.Context(t), &secretsmanager.DescribeSecretInput{SecretId: aws.String("empty")})
	if err != nil {
		t.Fatal(err)
	}
	got := slices.Sorted(slices.Values(d.VersionIdsToStages[tok(9)]))
	if !slices.Equal(got, []string{StageCurrent, StagePending}) {
		t.Errorf("first version stages = %v, want AWSCURRENT and AWSPENDING", got)
	}
}

func TestGetSecretValue(t *testing.T) {
	s, arn := newSecret(t)
	put(t, s, tok(2), `{"password":"v2"}`, StagePending)
	put(t, s, tok(3), `{"password":"v3"}`, "CUSTOM")
	// tok(3) loses its only label: deprecated, but still readable by id.
	if _, err := s.UpdateSecretVersionStage(testctx.Context(t), &secretsmanager.UpdateSecretVersionStageInput{
		SecretId: aws.String("app"), VersionStage: aws.String("CUSTOM"), RemoveFromVersionId: aws.String(tok(3)),
	}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name              string
		id, version, stg  string
		wantVal, wantErr  string
		wantVersionStages []string
	}{
		{name: "default AWSCURRENT by name", id: "app", wantVal: `{"password":"v1"}`, wantVersionStages: []string{StageCurrent}},
		{name: "by full ARN", id: arn, wantVal: `{"password":"v1"}`, wantVersionStages: []string{StageCurrent}},
		{name: "by partial ARN", id: strings.TrimSuffix(arn, arn[len(arn)-7:]), wantVal: `{"password":"v1"}`, wantVersionStages: []string{StageCurrent}},
		{name: "by stage", id: "app", stg: StagePending, wantVal: `{"password":"v2"}`, wantVersionStages: []string{StagePending}},
		{name: "by version", id: "app", version: tok(2), wantVal: `{"password":"v2"}`, wantVersionStages: []string{StagePending}},
		{name: "version and its stage", id: "app", version: tok(2), stg: StagePending, wantVal: `{"password":"v2"}`, wantVersionStages: []string{StagePending}},
		{name: "deprecated version by id", id: "app", version: tok(3), wantVal: `{"password":"v3"}`, wantVersionStages: []string{}},
		{name: "version and another stage", id: "app", version: tok(2), stg: StageCurrent, wantErr: "ResourceNotFoundException"},
		{name: "unknown version", id: "app", version: tok(7), wantErr: "ResourceNotFoundException"},
		{name: "unattached stage", id: "app", stg: StagePrevious, wantErr: "ResourceNotFoundException"},
		{name: "unknown secret", id: "nope", wantErr: "ResourceNotFoundException"},
		{name: "unknown ARN", id: arn + "x", wantErr: "ResourceNotFoundException"},
		{name: "no id", wantErr: "InvalidParameterException"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := &secretsmanager.GetSecretValueInput{SecretId: aws.String(tc.id)}
			if tc.version != "" {
				in.VersionId = aws.String(tc.version)
			}
			if tc.stg != "" {
				in.VersionStage = aws.String(tc.stg)
			}
			out, err := s.GetSecretValue(testctx.Context(t), in)
			wantErr(t, err, tc.wantErr)
			if err != nil {
				if strings.Contains(err.Error(), `"password"`) {
					t.Errorf("error carries a value: %v", err)
				}
				return
			}
			if got := aws.ToString(out.SecretString); got != tc.wantVal {
				t.Errorf("SecretString = %s, want %s", got, tc.wantVal)
			}
			if aws.ToString(out.ARN) != arn || aws.ToString(out.Name) != "app" {
				t.Errorf("ARN, Name = %s, %s", aws.ToString(out.ARN), aws.ToString(out.Name))
			}
			if !slices.Equal(out.VersionStages, tc.wantVersionStages) && len(out.VersionStages)+len(tc.wantVersionStages) > 0 {
				t.Errorf("VersionStages = %v, want %v", out.VersionStages, tc.wantVersionStages)
			}
		})
	}
}

func TestPutSecretValueStages(t *testing.T) {
	tests := []struct {
		name string
		do   func(t *testing.T, s *Store)
		want map[string][]string
	}{
		{
			name: "default stage moves AWSCURRENT and AWSPREVIOUS",
			do: func(t *testing.T, s *Store) {
				put(t, s, tok(2), "v2")
				put(t, s, tok(3), "v3")
			},
			want: map[string][]string{tok(2): {StagePrevious}, tok(3): {StageCurrent}},
		},
		{
			name: "AWSPENDING on a new version leaves AWSCURRENT",
			do:   func(t *testing.T, s *Store) { put(t, s, tok(2), "v2", StagePending) },
			want: map[string][]string{tok(1): {StageCurrent}, tok(2): {StagePending}},
		},
		{
			name: "AWSPENDING moves between versions, the old one is deprecated",
			do: func(t *testing.T, s *Store) {
				put(t, s, tok(2), "v2", StagePending)
				put(t, s, tok(3), "v3", StagePending)
			},
			want: map[string][]string{tok(1): {StageCurrent}, tok(3): {StagePending}},
		},
		{
			name: "AWSCURRENT and AWSPENDING on one put",
			do: func(t *testing.T, s *Store) {
				put(t, s, tok(2), "v2", StagePending)
				put(t, s, tok(3), "v3", StageCurrent, StagePending)
			},
			want: map[string][]string{tok(1): {StagePrevious}, tok(3): {StageCurrent, StagePending}},
		},
		{
			name: "a custom stage moves alone",
			do: func(t *testing.T, s *Store) {
				put(t, s, tok(2), "v2", "BLUE")
				put(t, s, tok(3), "v3", "BLUE", StagePending)
			},
			want: map[string][]string{tok(1): {StageCurrent}, tok(3): {"BLUE", StagePending}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newSecret(t)
			tc.do(t, s)
			wantStages(t, s, tc.want)
		})
	}
}

func TestPutSecretValueIdempotency(t *testing.T) {
	tests := []struct {
		name    string
		value   *string
		binary  []byte
		stages  []string
		wantErr string
	}{
		{name: "same token, same data", value: aws.String("v2"), stages: []string{StagePending}},
		{name: "same token, same data, other stages: nothing moves", value: aws.String("v2"), stages: []string{StageCurrent}},
		{name: "same token, changed data", value: aws.String("v2-changed"), stages: []string{StagePending}, wantErr: "ResourceExistsException"},
		{name: "same token, binary instead of string", binary: []byte("v2"), stages: []string{StagePending}, wantErr: "ResourceExistsException"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newSecret(t)
			put(t, s, tok(2), "v2", StagePending)
			before := stages(t, s)
			out, err := s.PutSecretValue(testctx.Context(t), &secretsmanager.PutSecretValueInput{
				SecretId: aws.String("app"), ClientRequestToken: aws.String(tok(2)),
				SecretString: tc.value, SecretBinary: tc.binary, VersionStages: tc.stages, RotationToken: aws.String(rotationToken),
			})
			wantErr(t, err, tc.wantErr)
			if err != nil && strings.Contains(err.Error(), "v2-changed") {
				t.Errorf("error carries the value: %v", err)
			}
			if err == nil && (aws.ToString(out.VersionId) != tok(2) || !slices.Equal(out.VersionStages, []string{StagePending})) {
				t.Errorf("output = %s %v, want %s [AWSPENDING]", aws.ToString(out.VersionId), out.VersionStages, tok(2))
			}
			wantStages(t, s, before)
			got, err := s.GetSecretValue(testctx.Context(t), &secretsmanager.GetSecretValueInput{SecretId: aws.String("app"), VersionId: aws.String(tok(2))})
			if err != nil || aws.ToString(got.SecretString) != "v2" {
				t.Fatalf("version %s no longer holds its first value (err %v)", tok(2), err)
			}
		})
	}
}

func TestPutSecretValueValidation(t *testing.T) {
	tests := []struct {
		name string
		in   secretsmanager.PutSecretValueInput
		want string
	}{
		{"no value", secretsmanager.PutSecretValueInput{ClientRequestToken: aws.String(tok(2))}, "InvalidParameterException"},
		{"both values", secretsmanager.PutSecretValueInput{ClientRequestToken: aws.String(tok(2)), SecretString: aws.String("x"), SecretBinary: []byte("x")}, "InvalidParameterException"},
		{"short token", secretsmanager.PutSecretValueInput{ClientRequestToken: aws.String("tok-2"), SecretString: aws.String("x")}, "InvalidParameterException"},
		{"long token", secretsmanager.PutSecretValueInput{ClientRequestToken: aws.String(strings.Repeat("a", 65)), SecretString: aws.String("x")}, "InvalidParameterException"},
		{"short rotation token", secretsmanager.PutSecretValueInput{ClientRequestToken: aws.String(tok(2)), SecretString: aws.String("x"), RotationToken: aws.String("secret-rt")}, "InvalidParameterException"},
		{"rotation token with bad characters", secretsmanager.PutSecretValueInput{ClientRequestToken: aws.String(tok(2)), SecretString: aws.String("x"), RotationToken: aws.String(rotationToken + "_secret!")}, "InvalidParameterException"},
		{"empty stage", secretsmanager.PutSecretValueInput{ClientRequestToken: aws.String(tok(2)), SecretString: aws.String("x"), VersionStages: []string{""}}, "InvalidParameterException"},
		{"unknown secret", secretsmanager.PutSecretValueInput{SecretId: aws.String("nope"), ClientRequestToken: aws.String(tok(2)), SecretString: aws.String("x")}, "ResourceNotFoundException"},
		{"valid rotation token", secretsmanager.PutSecretValueInput{ClientRequestToken: aws.String(tok(2)), SecretString: aws.String("x"), RotationToken: aws.String(rotationToken), VersionStages: []string{StagePending}}, ""},
		{"generated version id", secretsmanager.PutSecretValueInput{SecretString: aws.String("x"), VersionStages: []string{StagePending}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newSecret(t)
			if tc.in.SecretId == nil {
				tc.in.SecretId = aws.String("app")
			}
			before := stages(t, s)
			_, err := s.PutSecretValue(testctx.Context(t), &tc.in)
			wantErr(t, err, tc.want)
			if err != nil {
				wantStages(t, s, before)
				if strings.Contains(err.Error(), "secret") && strings.Contains(err.Error(), rotationToken) {
					t.Errorf("error echoes the RotationToken: %v", err)
				}
			}
		})
	}
}

func TestUpdateSecretVersionStage(t *testing.T) {
	// Every case starts from: tok(1) AWSPREVIOUS, tok(2) AWSCURRENT, tok(3) AWSPENDING,
	// tok(4) deprecated.
	setup := func(t *testing.T) *Store {
		t.Helper()
		s, _ := newSecret(t)
		put(t, s, tok(2), "v2")
		put(t, s, tok(4), "v4", StagePending)
		put(t, s, tok(3), "v3", StagePending)
		return s
	}
	start := map[string][]string{tok(1): {StagePrevious}, tok(2): {StageCurrent}, tok(3): {StagePending}}
	tests := []struct {
		name        string
		stage       string
		to, from    string
		wantErr     string
		want        map[string][]string
		wantRotated bool
	}{
		{
			name: "move AWSCURRENT moves AWSPREVIOUS", stage: StageCurrent, to: tok(3), from: tok(2),
			want:        map[string][]string{tok(2): {StagePrevious}, tok(3): {StageCurrent, StagePending}},
			wantRotated: true,
		},
		{name: "move AWSCURRENT without RemoveFromVersionId", stage: StageCurrent, to: tok(3), wantErr: "InvalidParameterException", want: start},
		{name: "move AWSCURRENT naming the wrong holder", stage: StageCurrent, to: tok(3), from: tok(1), wantErr: "InvalidParameterException", want: start},
		{name: "move AWSCURRENT naming an unknown version", stage: StageCurrent, to: tok(3), from: tok(9), wantErr: "ResourceNotFoundException", want: start},
		{name: "move AWSCURRENT to an unknown version", stage: StageCurrent, to: tok(9), from: tok(2), wantErr: "ResourceNotFoundException", want: start},
		{
			name: "move AWSCURRENT back to AWSPREVIOUS swaps them", stage: StageCurrent, to: tok(1), from: tok(2),
			want:        map[string][]string{tok(1): {StageCurrent}, tok(2): {StagePrevious}, tok(3): {StagePending}},
			wantRotated: true,
		},
		{name: "move AWSCURRENT to its holder is a no-op", stage: StageCurrent, to: tok(2), want: start},
		{name: "move AWSCURRENT to its holder naming it is a no-op", stage: StageCurrent, to: tok(2), from: tok(2), want: start},
		{
			name: "move AWSPENDING to a deprecated version", stage: StagePending, to: tok(4), from: tok(3),
			want: map[string][]string{tok(1): {StagePrevious}, tok(2): {StageCurrent}, tok(4): {StagePending}},
		},
		{name: "move AWSPENDING without RemoveFromVersionId", stage: StagePending, to: tok(4), wantErr: "InvalidParameterException", want: start},
		{
			name: "attach an unattached label needs no RemoveFromVersionId", stage: "BLUE", to: tok(4),
			want: map[string][]string{tok(1): {StagePrevious}, tok(2): {StageCurrent}, tok(3): {StagePending}, tok(4): {"BLUE"}},
		},
		{name: "attach an unattached label naming a version", stage: "BLUE", to: tok(4), from: tok(3), wantErr: "InvalidParameterException", want: start},
		{
			name: "remove AWSPENDING", stage: StagePending, from: tok(3),
			want: map[string][]string{tok(1): {StagePrevious}, tok(2): {StageCurrent}},
		},
		{name: "remove AWSPENDING from a version without it", stage: StagePending, from: tok(2), wantErr: "InvalidParameterException", want: start},
		{name: "remove AWSCURRENT is refused", stage: StageCurrent, from: tok(2), wantErr: "InvalidParameterException", want: start},
		{name: "neither version", stage: StagePending, wantErr: "InvalidParameterException", want: start},
		{name: "no stage", to: tok(3), from: tok(2), wantErr: "InvalidParameterException", want: start},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := setup(t)
			in := &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String("app"), VersionStage: aws.String(tc.stage)}
			if tc.to != "" {
				in.MoveToVersionId = aws.String(tc.to)
			}
			if tc.from != "" {
				in.RemoveFromVersionId = aws.String(tc.from)
			}
			_, err := s.UpdateSecretVersionStage(testctx.Context(t), in)
			wantErr(t, err, tc.wantErr)
			wantStages(t, s, tc.want)
			d, err := s.DescribeSecret(testctx.Context(t), &secretsmanager.DescribeSecretInput{SecretId: aws.String("app")})
			if err != nil {
				t.Fatal(err)
			}
			if got := d.LastRotatedDate != nil; got != tc.wantRotated {
				t.Errorf("LastRotatedDate set = %v, want %v", got, tc.wantRotated)
			}
		})
	}
}

func TestRotationLifecycle(t *testing.T) {
	// The sequence pgrotate's rotation function runs, twice, checked end to end.
	s, arn := newSecret(t)
	for i, pair := range [][2]int{{1, 2}, {2, 3}} {
		cur, next := tok(pair[0]), tok(pair[1])
		if _, err := s.PutSecretValue(testctx.Context(t), &secretsmanager.PutSecretValueInput{
			SecretId: aws.String(arn), ClientRequestToken: aws.String(next), SecretString: aws.String(fmt.Sprintf("v%d", i+2)),
			VersionStages: []string{StagePending}, RotationToken: aws.String(rotationToken),
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.UpdateSecretVersionStage(testctx.Context(t), &secretsmanager.UpdateSecretVersionStageInput{
			SecretId: aws.String(arn), VersionStage: aws.String(StageCurrent), MoveToVersionId: aws.String(next), RemoveFromVersionId: aws.String(cur),
		}); err != nil {
			t.Fatal(err)
		}
	}
	wantStages(t, s, map[string][]string{tok(2): {StagePrevious}, tok(3): {StageCurrent, StagePending}})
}

func TestDescribeSecret(t *testing.T) {
	clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s, arn := newSecret(t, WithClock(func() time.Time { return clock }))
	if err := s.SetRotation(arn, true, "arn:aws:lambda:local:000000000000:function:rotator"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRotation("nope", true, ""); err == nil {
		t.Error("SetRotation on an unknown secret succeeded")
	}
	clock = clock.Add(time.Hour)
	put(t, s, tok(2), "v2", StagePending)
	d, err := s.DescribeSecret(testctx.Context(t), &secretsmanager.DescribeSecretInput{SecretId: aws.String("app")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(d.ARN) != arn || aws.ToString(d.Name) != "app" || !aws.ToBool(d.RotationEnabled) ||
		aws.ToString(d.RotationLambdaARN) == "" {
		t.Errorf("DescribeSecret = ARN %s Name %s RotationEnabled %v Lambda %s", aws.ToString(d.ARN), aws.ToString(d.Name), aws.ToBool(d.RotationEnabled), aws.ToString(d.RotationLambdaARN))
	}
	if !d.CreatedDate.Equal(clock.Add(-time.Hour)) || !d.LastChangedDate.Equal(clock) || d.LastRotatedDate != nil {
		t.Errorf("dates: created %v changed %v rotated %v", d.CreatedDate, d.LastChangedDate, d.LastRotatedDate)
	}
	_, err = s.DescribeSecret(testctx.Context(t), &secretsmanager.DescribeSecretInput{SecretId: aws.String("nope")})
	wantErr(t, err, "ResourceNotFoundException")
}

func TestListSecretVersionIds(t *testing.T) {
	s, _ := newSecret(t)
	put(t, s, tok(2), "v2", StagePending)
	put(t, s, tok(3), "v3", StagePending) // tok(2) is now deprecated
	put(t, s, tok(4), "v4", "BLUE")

	list := func(t *testing.T, deprecated bool, max int32) []string {
		t.Helper()
		var ids []string
		var next *string
		for {
			out, err := s.ListSecretVersionIds(testctx.Context(t), &secretsmanager.ListSecretVersionIdsInput{
				SecretId: aws.String("app"), IncludeDeprecated: aws.Bool(deprecated), MaxResults: aws.Int32(max), NextToken: next,
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Versions) > int(max) {
				t.Fatalf("page of %d > MaxResults %d", len(out.Versions), max)
			}
			for _, v := range out.Versions {
				ids = append(ids, aws.ToString(v.VersionId))
			}
			if next = out.NextToken; next == nil {
				return ids
			}
		}
	}
	tests := []struct {
		name       string
		deprecated bool
		max        int32
		want       []string
	}{
		{"labelled only", false, 100, []string{tok(1), tok(3), tok(4)}},
		{"with deprecated", true, 100, []string{tok(1), tok(2), tok(3), tok(4)}},
		{"paged", true, 1, []string{tok(1), tok(2), tok(3), tok(4)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := list(t, tc.deprecated, tc.max); !slices.Equal(got, tc.want) {
				t.Errorf("versions = %v, want %v", got, tc.want)
			}
		})
	}
	_, err := s.ListSecretVersionIds(testctx.Context(t), &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("app"), NextToken: aws.String("x")})
	wantErr(t, err, "InvalidNextTokenException")
}

func TestGetRandomPassword(t *testing.T) {
	has := func(pw, set string) bool { return strings.ContainsAny(pw, set) }
	tests := []struct {
		name    string
		in      secretsmanager.GetRandomPasswordInput
		wantLen int
		wantErr string
		check   func(t *testing.T, pw string)
	}{
		{
			name: "defaults: 32 characters of every type", wantLen: 32,
			check: func(t *testing.T, pw string) {
				if !has(pw, upperChars) || !has(pw, lowerChars) || !has(pw, digitChars) || !has(pw, punctuationChars) || has(pw, " ") {
					t.Errorf("default password lacks a type or has a space (%d chars)", len(pw))
				}
			},
		},
		{
			name: "length and excluded characters", in: secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(64), ExcludeCharacters: aws.String(":/@\"'\\ ")},
			wantLen: 64,
			check: func(t *testing.T, pw string) {
				if has(pw, ":/@\"'\\ ") {
					t.Error("password has an excluded character")
				}
			},
		},
		{
			name: "no punctuation", in: secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(40), ExcludePunctuation: aws.Bool(true)},
			wantLen: 40,
			check: func(t *testing.T, pw string) {
				if has(pw, punctuationChars) {
					t.Error("password has punctuation")
				}
			},
		},
		{
			name: "digits only", in: secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(20), ExcludeUppercase: aws.Bool(true), ExcludeLowercase: aws.Bool(true), ExcludePunctuation: aws.Bool(true)},
			wantLen: 20,
			check: func(t *testing.T, pw string) {
				if strings.Trim(pw, digitChars) != "" {
					t.Error("password has a non-digit")
				}
			},
		},
		{
			name: "space included", in: secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(4096), IncludeSpace: aws.Bool(true)},
			wantLen: 4096,
			check: func(t *testing.T, pw string) {
				if !has(pw, " ") { // 4096 draws from 95 characters: a missing space is a bug
					t.Error("no space in a long password with IncludeSpace")
				}
			},
		},
		{
			name: "each type required in a 4-character password", in: secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(4)},
			wantLen: 4,
			check: func(t *testing.T, pw string) {
				if !has(pw, upperChars) || !has(pw, lowerChars) || !has(pw, digitChars) || !has(pw, punctuationChars) {
					t.Error("4-character password lacks a type")
				}
			},
		},
		{name: "too short for every type", in: secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(3)}, wantErr: "InvalidParameterException"},
		{name: "too short, types not required", in: secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(3), RequireEachIncludedType: aws.Bool(false)}, wantLen: 3},
		{name: "zero length", in: secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(0)}, wantErr: "InvalidParameterException"},
		{name: "too long", in: secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(4097)}, wantErr: "InvalidParameterException"},
		{
			name: "everything excluded",
			in: secretsmanager.GetRandomPasswordInput{ExcludeUppercase: aws.Bool(true), ExcludeLowercase: aws.Bool(true), ExcludeNumbers: aws.Bool(true),
				ExcludeCharacters: aws.String(punctuationChars)},
			wantErr: "InvalidParameterException",
		},
	}
	s := New()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Several draws, so a requirement met by chance once does not pass.
			for range 50 {
				out, err := s.GetRandomPassword(testctx.Context(t), &tc.in)
				wantErr(t, err, tc.wantErr)
				if err != nil {
					return
				}
				pw := aws.ToString(out.RandomPassword)
				if len(pw) != tc.wantLen {
					t.Fatalf("length %d, want %d", len(pw), tc.wantLen)
				}
				if tc.check != nil {
					tc.check(t, pw)
				}
			}
		})
	}
	a, _ := s.GetRandomPassword(testctx.Context(t), &secretsmanager.GetRandomPasswordInput{})
	b, _ := s.GetRandomPassword(testctx.Context(t), &secretsmanager.GetRandomPasswordInput{})
	if aws.ToString(a.RandomPassword) == aws.ToString(b.RandomPassword) {
		t.Error("two passwords are equal")
	}
}

func TestHooks(t *testing.T) {
	t.Run("FailNext fails one call and changes nothing", func(t *testing.T) {
		s, _ := newSecret(t)
		s.FailNext(OpPutSecretValue, &types.InternalServiceError{Message: aws.String("boom")})
		_, err := s.PutSecretValue(testctx.Context(t), &secretsmanager.PutSecretValueInput{
			SecretId: aws.String("app"), ClientRequestToken: aws.String(tok(2)), SecretString: aws.String("v2"), VersionStages: []string{StagePending},
		})
		wantErr(t, err, "InternalServiceError")
		wantStages(t, s, map[string][]string{tok(1): {StageCurrent}})
		put(t, s, tok(2), "v2", StagePending) // the next call is not affected
		wantStages(t, s, map[string][]string{tok(1): {StageCurrent}, tok(2): {StagePending}})
	})
	t.Run("Intercept runs before the call and may use the store", func(t *testing.T) {
		s, _ := newSecret(t)
		// A concurrent writer moves AWSPENDING between our read and our write.
		s.Intercept(OpUpdateSecretVersionStage, func() error {
			put(t, s, tok(3), "v3", StagePending)
			return nil
		})
		put(t, s, tok(2), "v2", StagePending)
		_, err := s.UpdateSecretVersionStage(testctx.Context(t), &secretsmanager.UpdateSecretVersionStageInput{
			SecretId: aws.String("app"), VersionStage: aws.String(StagePending), RemoveFromVersionId: aws.String(tok(2)),
		})
		wantErr(t, err, "InvalidParameterException")
		wantStages(t, s, map[string][]string{tok(1): {StageCurrent}, tok(3): {StagePending}})
	})
	t.Run("Calls record ids and stages, never values", func(t *testing.T) {
		s, _ := newSecret(t)
		if _, err := s.PutSecretValue(testctx.Context(t), &secretsmanager.PutSecretValueInput{
			SecretId: aws.String("app"), ClientRequestToken: aws.String(tok(2)), SecretString: aws.String("hunter2-value"),
			VersionStages: []string{StagePending}, RotationToken: aws.String(rotationToken),
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetSecretValue(testctx.Context(t), &secretsmanager.GetSecretValueInput{SecretId: aws.String("app"), VersionStage: aws.String(StagePending)}); err != nil {
			t.Fatal(err)
		}
		_, _ = s.UpdateSecretVersionStage(testctx.Context(t), &secretsmanager.UpdateSecretVersionStageInput{
			SecretId: aws.String("app"), VersionStage: aws.String(StageCurrent), MoveToVersionId: aws.String(tok(2)),
		})
		calls := s.Calls()
		want := []Call{
			{Op: OpCreateSecret, SecretID: "app", VersionID: tok(1), Stages: []string{StageCurrent}},
			{Op: OpPutSecretValue, SecretID: "app", VersionID: tok(2), Stages: []string{StagePending}, RotationToken: true},
			{Op: OpGetSecretValue, SecretID: "app", VersionID: tok(2), Stages: []string{StagePending}},
			{Op: OpUpdateSecretVersionStage, SecretID: "app", VersionID: tok(2), Stages: []string{StageCurrent}},
		}
		if len(calls) != len(want) {
			t.Fatalf("got %d calls, want %d: %+v", len(calls), len(want), calls)
		}
		for i := range want {
			got := calls[i]
			if got.Op != want[i].Op || got.SecretID != want[i].SecretID || got.VersionID != want[i].VersionID ||
				!slices.Equal(got.Stages, want[i].Stages) || got.RotationToken != want[i].RotationToken || (got.Err != nil) != (i == 3) {
				t.Errorf("call %d = %+v, want %+v", i, got, want[i])
			}
		}
		if n := len(s.CallsOf(OpPutSecretValue)); n != 1 {
			t.Errorf("CallsOf(PutSecretValue) = %d calls, want 1", n)
		}
		dump := fmt.Sprintf("%+v %#v", calls, calls)
		for _, secret := range []string{"hunter2-value", rotationToken, "v1"} {
			if strings.Contains(dump, secret) {
				t.Errorf("call record contains a secret value %q", secret)
			}
		}
	})
}

func TestStoreDoesNotPrintValues(t *testing.T) {
	s, _ := newSecret(t)
	put(t, s, tok(2), `{"password":"hunter2-value"}`, StagePending)
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("store", "store", s)
	for _, out := range []string{fmt.Sprintf("%v", s), fmt.Sprintf("%+v", s), fmt.Sprintf("%#v", s), fmt.Sprint(s), logged.String()} {
		if strings.Contains(out, "hunter2") || strings.Contains(out, "v1") {
			t.Errorf("printing the store shows a value: %s", out)
		}
	}
	//lint:ignore SA9005 the test proves that marshalling a Store, whose fields are all unexported, shows no value
	if b, err := json.Marshal(s); err == nil && strings.Contains(string(b), "hunter2") {
		t.Errorf("json.Marshal(store) shows a value: %s", b)
	}
}

func TestSnapshot(t *testing.T) {
	s, arn := newSecret(t)
	put(t, s, tok(2), `{"password":"v2"}`, StagePending)
	put(t, s, tok(3), "not json", StagePending)
	if _, err := s.CreateSecret(testctx.Context(t), &secretsmanager.CreateSecretInput{
		Name: aws.String("bin"), SecretBinary: []byte{1, 2, 3}, ClientRequestToken: aws.String(tok(8)),
	}); err != nil {
		t.Fatal(err)
	}
	b, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]struct {
		ARN      string `json:"arn"`
		Versions []struct {
			ID     string          `json:"id"`
			Stages []string        `json:"stages"`
			Value  json.RawMessage `json:"value"`
		} `json:"versions"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("snapshot is not JSON: %v", err)
	}
	app := got["app"]
	if app.ARN != arn || len(app.Versions) != 3 {
		t.Fatalf("app: ARN %s, %d versions", app.ARN, len(app.Versions))
	}
	wantVersions := []struct {
		id, value string
		stages    []string
	}{
		{tok(1), `{"password":"v1"}`, []string{StageCurrent}},
		{tok(2), `{"password":"v2"}`, []string{}},
		{tok(3), `"not json"`, []string{StagePending}},
	}
	for i, w := range wantVersions {
		v := app.Versions[i]
		var compact bytes.Buffer
		_ = json.Compact(&compact, v.Value)
		if v.ID != w.id || compact.String() != w.value || !slices.Equal(v.Stages, w.stages) {
			t.Errorf("version %d = %s %v %s, want %s %v %s", i, v.ID, v.Stages, compact.String(), w.id, w.stages, w.value)
		}
	}
	if bin := got["bin"]; len(bin.Versions) != 1 || string(bin.Versions[0].Value) != `"AQID"` {
		t.Errorf("binary secret snapshot = %+v", bin)
	}
	if names := s.Names(); !slices.Equal(names, []string{"app", "bin"}) {
		t.Errorf("Names = %v", names)
	}
}

func TestConcurrentUse(t *testing.T) {
	// Many writers and readers at once: run with -race. Afterwards every label is on at
	// most one version and AWSCURRENT is on exactly one.
	s, _ := newSecret(t)
	ctx := testctx.Context(t)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 20 {
				id := tok(1000 + w*100 + i)
				_, _ = s.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
					SecretId: aws.String("app"), ClientRequestToken: aws.String(id), SecretString: aws.String(id), VersionStages: []string{StagePending},
				})
				d, err := s.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("app")})
				if err != nil {
					t.Error(err)
					return
				}
				var cur string
				for v, st := range d.VersionIdsToStages {
					if slices.Contains(st, StageCurrent) {
						cur = v
					}
				}
				// Races with the other writers are expected to fail sometimes.
				_, _ = s.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
					SecretId: aws.String("app"), VersionStage: aws.String(StageCurrent), MoveToVersionId: aws.String(id), RemoveFromVersionId: aws.String(cur),
				})
				_, _ = s.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("app")})
				_, _ = s.GetRandomPassword(ctx, &secretsmanager.GetRandomPasswordInput{})
			}
		})
	}
	wg.Wait()
	if n := len(s.Calls()); n != 1+8*20*5 {
		t.Errorf("recorded %d calls, want %d", n, 1+8*20*5)
	}
	counts := map[string]int{}
	for _, st := range stages(t, s) {
		for _, label := range st {
			counts[label]++
		}
	}
	for label, n := range counts {
		if n != 1 {
			t.Errorf("label %s is on %d versions", label, n)
		}
	}
	if counts[StageCurrent] != 1 || counts[StagePrevious] != 1 {
		t.Errorf("label counts = %v", counts)
	}
}

func TestCanceledContext(t *testing.T) {
	s, _ := newSecret(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := s.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("app")})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want context.Canceled", err)
	}
}
