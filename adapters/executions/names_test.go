package executions

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

// validName is Step Functions' rule for execution names, written out from the
// StartExecution reference: 1 to 80 characters, none of whitespace, < > { } [ ], ? *,
// " # % \ ^ | ~ ` $ & , ; : /, or control characters.
func validName(name string) bool {
	if name == "" || len([]rune(name)) > 80 {
		return false
	}
	for _, r := range name {
		if r <= 0x20 || (r >= 0x7f && r <= 0x9f) || strings.ContainsRune("<>{}[]?*\"#%\\^|~`$&,;:/", r) || r == 0xFFFE || r == 0xFFFF {
			return false
		}
	}
	return true
}

func TestNameOfHostileTokens(t *testing.T) {
	uuid := "a0b1c2d3-e4f5-4a6b-8c7d-0e1f2a3b4c5d"
	tests := []struct {
		name, token string
		kept        bool
	}{
		{"a Secrets Manager UUID is kept", uuid, true},
		{"64 plain characters are kept", strings.Repeat("a", 64), true},
		{"slash and colon", "aaaaaaaa/bbbbbbbb:cccccccc-dddddddd-eeee", false},
		{"whitespace and newline", "rotation token with spaces\nand a newline!!", false},
		{"brackets, wildcards, specials", "<{[*?]}>\"#%\\^|~`$&,;:/" + strings.Repeat("x", 20), false},
		{"control characters", "\x00\x01\x1f\x7f" + strings.Repeat("y", 40), false},
		{"unicode", "ünïcödé-tökén-" + strings.Repeat("z", 30), false},
		{"underscore (the attempt separator)", strings.Repeat("a", 30) + "_2", false},
		{"empty", "", false},
	}
	seen := map[string]string{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for n := 1; n <= MaxAttempts; n++ {
				got := AttemptName(tc.token, n)
				if !validName(got) {
					t.Fatalf("AttemptName(%q, %d) = %q is not a valid execution name", tc.token, n, got)
				}
			}
			got := Name(tc.token)
			if (got == tc.token) != tc.kept {
				t.Errorf("Name(%q) = %q, want kept = %v", tc.token, got, tc.kept)
			}
			if Name(tc.token) != got {
				t.Errorf("Name is not deterministic")
			}
			if other, ok := seen[got]; ok && other != tc.token {
				t.Errorf("tokens %q and %q share the name %q", other, tc.token, got)
			}
			seen[got] = tc.token
		})
	}
	if AttemptName(uuid, 1) != uuid || AttemptName(uuid, 3) != uuid+"_3" {
		t.Errorf("attempt names: %q, %q", AttemptName(uuid, 1), AttemptName(uuid, 3))
	}
}

// attempts is a Step Functions with the executions named in started (name → start date).
type attempts map[string]time.Time

func (a attempts) DescribeExecution(_ context.Context, in *sfn.DescribeExecutionInput, _ ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error) {
	for name, start := range a {
		if ExecutionARN(machine, name) == aws.ToString(in.ExecutionArn) {
			return &sfn.DescribeExecutionOutput{Name: aws.String(name), StartDate: aws.Time(start), Status: types.ExecutionStatusFailed}, nil
		}
	}
	return nil, &types.ExecutionDoesNotExist{Message: aws.String("Execution Does Not Exist")}
}

func (a attempts) GetExecutionHistory(context.Context, *sfn.GetExecutionHistoryInput, ...func(*sfn.Options)) (*sfn.GetExecutionHistoryOutput, error) {
	return &sfn.GetExecutionHistoryOutput{}, nil
}

func TestLatest(t *testing.T) {
	const tok = "a0b1c2d3-e4f5-4a6b-8c7d-0e1f2a3b4c5d"
	tests := []struct {
		name     string
		execs    attempts
		found    bool
		want     string
		wantLast int
	}{
		{"none", attempts{}, false, "", 0},
		{"the first", attempts{tok: t0}, true, tok, 1},
		{"a successor", attempts{tok: t0, tok + "_2": t0.Add(15 * 24 * time.Hour)}, true, tok + "_2", 2},
		// After 90 days the first name is free again and reused: the newest start wins.
		{"the first name reused", attempts{tok: t0.Add(100 * 24 * time.Hour), tok + "_2": t0.Add(15 * 24 * time.Hour)}, true, tok, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &Reader{API: tc.execs, StateMachineARN: machine}
			a, found, err := r.Latest(context.Background(), tok)
			if err != nil {
				t.Fatal(err)
			}
			if found != tc.found || a.Name != tc.want || a.Last != tc.wantLast {
				t.Errorf("Latest = %+v, found %v; want %q (last %d), found %v", a, found, tc.want, tc.wantLast, tc.found)
			}
		})
	}
}
