package executions

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

// Execution names. A rotation's execution is named after its version id (the
// ClientRequestToken), but a name is 1 to 80 characters and may not contain whitespace,
// brackets, wildcards, most punctuation or control characters; only 0-9, A-Z, a-z, - and _
// keep CloudWatch logging possible
// (https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html).
// A ClientRequestToken is 32 to 64 characters of anything
// (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_RotateSecret.html).
// Secrets Manager's own tokens are UUIDs, which are kept as they are, readable; any other
// token is mapped to "v-" and a hash of it, so a hostile token never reaches Step Functions.
//
// A name cannot be reused for 90 days and a failed execution can be redriven for 14 days
// only (https://docs.aws.amazon.com/step-functions/latest/apireference/API_RedriveExecution.html):
// a rotation whose execution can no longer be redriven continues in a successor execution,
// attempt n ≥ 2, named Name(token) + "_" + n.

const (
	maxName = 80
	// maxBase leaves room for the attempt suffix ("_" and up to two digits).
	maxBase = maxName - 3
	// MaxAttempts bounds the successors of one version: Latest probes at most this many names.
	MaxAttempts = 20
)

// Name is the name of the first execution of the rotation to version token.
func Name(token string) string {
	if token != "" && len(token) <= maxBase && plain(token) {
		return token
	}
	sum := sha256.Sum256([]byte(token))
	return "v-" + hex.EncodeToString(sum[:16])
}

// AttemptName is the name of attempt n (from 1) of the rotation to version token.
func AttemptName(token string, n int) string {
	if n <= 1 {
		return Name(token)
	}
	return Name(token) + "_" + strconv.Itoa(n)
}

func plain(s string) bool {
	for _, r := range s {
		ok := ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9') || r == '-'
		if !ok {
			return false
		}
	}
	return true
}

// Attempt is one execution of a rotation.
type Attempt struct {
	Name string
	N    int
	// Last is the highest attempt number in use: a successor is Last+1.
	Last int
}

// Latest finds the newest execution of the rotation to token: of the attempts that exist,
// the one started last. Found is false when none does.
func (r *Reader) Latest(ctx context.Context, token string) (Attempt, bool, error) {
	var best Attempt
	var bestStart int64
	found := false
	for n := 1; n <= MaxAttempts; n++ {
		name := AttemptName(token, n)
		desc, err := r.API.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(r.ARN(name))})
		var missing *types.ExecutionDoesNotExist
		if errors.As(err, &missing) {
			break
		}
		if err != nil {
			return Attempt{}, false, fmt.Errorf("describe execution %s: %w", name, err)
		}
		start := aws.ToTime(desc.StartDate).UnixNano()
		if !found || start >= bestStart {
			best, bestStart, found = Attempt{Name: name, N: n}, start, true
		}
		best.Last = n
	}
	return best, found, nil
}

// LatestProgress reads the newest execution of the rotation to token.
func (r *Reader) LatestProgress(ctx context.Context, token string) (Attempt, Progress, error) {
	a, found, err := r.Latest(ctx, token)
	if err != nil || !found {
		return Attempt{Name: Name(token), N: 1}, Progress{}, err
	}
	p, err := r.Progress(ctx, a.Name)
	return a, p, err
}

// IsAttemptOf reports whether the execution called name is an attempt of the rotation to
// token.
func IsAttemptOf(name, token string) bool {
	base := Name(token)
	if name == base {
		return true
	}
	n, err := strconv.Atoi(strings.TrimPrefix(name, base+"_"))
	return strings.HasPrefix(name, base+"_") && err == nil && n >= 2 && AttemptName(token, n) == name
}
