package awsserve

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"github.com/pgrotate/pgrotate/internal/testctx"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// lockedClient is a real S3 client that sends a checksum only when an operation requires
// one, so a PutObject without ChecksumAlgorithm or ContentMD5 goes out without either.
func lockedClient(s *Server) *s3.Client {
	return s3.NewFromConfig(sdkConfig(s.URL(), testAKID), func(o *s3.Options) {
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	})
}

func apiCode(err error) (string, int) {
	var api smithy.APIError
	var resp *awshttp.ResponseError
	code, status := "", 0
	if errors.As(err, &api) {
		code = api.ErrorCode()
	}
	if errors.As(err, &resp) {
		status = resp.HTTPStatusCode()
	}
	return code, status
}

func TestObjectLock(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clk := &clock{t: start}
	s := startServer(t, Options{
		AccessKeyID: testAKID,
		Buckets:     []string{"plain"},
		ObjectLock: map[string]Retention{
			"gov":  {Mode: LockGovernance, Days: 400},
			"comp": {Mode: LockCompliance, Days: 1},
		},
		Now: clk.now,
	})
	c := lockedClient(s)
	ctx := testctx.Context(t)

	put := func(bucket, key, body string, edit func(*s3.PutObjectInput)) (*s3.PutObjectOutput, error) {
		in := &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader([]byte(body)),
			ChecksumAlgorithm: s3types.ChecksumAlgorithmSha256}
		if edit != nil {
			edit(in)
		}
		return c.PutObject(ctx, in)
	}
	noChecksum := func(in *s3.PutObjectInput) { in.ChecksumAlgorithm = "" }
	withMD5 := func(in *s3.PutObjectInput) {
		sum := md5.Sum([]byte("md5 body"))
		in.ChecksumAlgorithm, in.ContentMD5, in.Body = "", aws.String(base64.StdEncoding.EncodeToString(sum[:])), bytes.NewReader([]byte("md5 body"))
	}
	ifNoneMatch := func(in *s3.PutObjectInput) { in.IfNoneMatch = aws.String("*") }

	t.Run("configuration", func(t *testing.T) {
		for _, tc := range []struct {
			bucket string
			mode   s3types.ObjectLockRetentionMode
			days   int32
		}{{"gov", s3types.ObjectLockRetentionModeGovernance, 400}, {"comp", s3types.ObjectLockRetentionModeCompliance, 1}} {
			out, err := c.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: aws.String(tc.bucket)})
			if err != nil {
				t.Fatalf("GetObjectLockConfiguration %s: %v", tc.bucket, err)
			}
			cfg := out.ObjectLockConfiguration
			if cfg.ObjectLockEnabled != s3types.ObjectLockEnabledEnabled || cfg.Rule == nil || cfg.Rule.DefaultRetention == nil ||
				cfg.Rule.DefaultRetention.Mode != tc.mode || aws.ToInt32(cfg.Rule.DefaultRetention.Days) != tc.days {
				t.Errorf("GetObjectLockConfiguration %s: %+v", tc.bucket, cfg)
			}
			v, err := c.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String(tc.bucket)})
			if err != nil || v.Status != s3types.BucketVersioningStatusEnabled {
				t.Errorf("GetBucketVersioning %s: %v, %v; want Enabled", tc.bucket, v, err)
			}
			_, err = c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(tc.bucket),
				VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusSuspended}})
			if code, _ := apiCode(err); code != "InvalidBucketState" {
				t.Errorf("suspend versioning of %s: %v, want InvalidBucketState", tc.bucket, err)
			}
		}
	})

	t.Run("puts", func(t *testing.T) {
		tests := []struct {
			name, bucket, key string
			edit              func(*s3.PutObjectInput)
			wantCode          string
			wantStatus        int
		}{
			{"sha256 checksum", "gov", "a", nil, "", 200},
			{"content-md5", "gov", "b", withMD5, "", 200},
			{"no checksum", "gov", "c", noChecksum, "InvalidRequest", 400},
			{"no checksum, compliance", "comp", "c", noChecksum, "InvalidRequest", 400},
			{"no checksum, bucket without lock", "plain", "c", noChecksum, "", 200},
			{"if-none-match on a new key", "gov", "d", ifNoneMatch, "", 200},
			{"if-none-match on an existing key", "gov", "d", ifNoneMatch, "PreconditionFailed", 412},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				_, err := put(tc.bucket, tc.key, "body of "+tc.key, tc.edit)
				code, status := apiCode(err)
				if tc.wantCode == "" && err != nil {
					t.Fatalf("PutObject: %v", err)
				}
				if tc.wantCode != "" && (code != tc.wantCode || status != tc.wantStatus) {
					t.Fatalf("PutObject: %v (code %q, status %d), want %s %d", err, code, status, tc.wantCode, tc.wantStatus)
				}
			})
		}
		// A refused PUT stored nothing; If-None-Match left the first version alone.
		if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("gov"), Key: aws.String("c")}); err == nil {
			t.Error("the refused PUT stored an object")
		}
		vs, err := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String("gov"), Prefix: aws.String("d")})
		if err != nil || len(vs.Versions) != 1 {
			t.Errorf("versions of d: %v, %v; want 1", vs, err)
		}
	})

	t.Run("default retention and delete", func(t *testing.T) {
		gov, err := put("gov", "rec", "governed", nil)
		if err != nil {
			t.Fatal(err)
		}
		comp, err := put("comp", "rec", "compliant", nil)
		if err != nil {
			t.Fatal(err)
		}
		head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("gov"), Key: aws.String("rec"), VersionId: gov.VersionId})
		if err != nil {
			t.Fatal(err)
		}
		if head.ObjectLockMode != s3types.ObjectLockModeGovernance || !aws.ToTime(head.ObjectLockRetainUntilDate).Equal(start.AddDate(0, 0, 400)) {
			t.Errorf("HeadObject: mode %q, until %v; want GOVERNANCE, %v", head.ObjectLockMode, head.ObjectLockRetainUntilDate, start.AddDate(0, 0, 400))
		}
		ret, err := c.GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: aws.String("comp"), Key: aws.String("rec")})
		if err != nil || ret.Retention.Mode != s3types.ObjectLockRetentionModeCompliance || !aws.ToTime(ret.Retention.RetainUntilDate).Equal(start.AddDate(0, 0, 1)) {
			t.Errorf("GetObjectRetention: %+v, %v; want COMPLIANCE until %v", ret, err, start.AddDate(0, 0, 1))
		}

		del := func(bucket string, version *string, bypass bool) error {
			_, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("rec"), VersionId: version,
				BypassGovernanceRetention: aws.Bool(bypass)})
			return err
		}
		refused := func(name string, err error) {
			t.Helper()
			if code, status := apiCode(err); code != "AccessDenied" || status != http.StatusForbidden {
				t.Errorf("%s: %v, want AccessDenied 403", name, err)
			}
		}
		refused("delete a compliance version", del("comp", comp.VersionId, false))
		refused("delete a compliance version with bypass", del("comp", comp.VersionId, true))
		refused("delete a governance version", del("gov", gov.VersionId, false))
		_, err = c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("gov"), Delete: &s3types.Delete{
			Objects: []s3types.ObjectIdentifier{{Key: aws.String("rec"), VersionId: gov.VersionId}}}})
		refused("DeleteObjects of a governance version", err)
		if err := del("gov", nil, false); err != nil {
			t.Errorf("delete without a version (a delete marker): %v", err)
		}
		if _, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("gov"), Key: aws.String("rec"), VersionId: gov.VersionId}); err != nil {
			t.Errorf("the locked version is gone after a delete marker: %v", err)
		}
		if err := del("gov", gov.VersionId, true); err != nil {
			t.Errorf("delete a governance version with bypass: %v", err)
		}
		clk.add(25 * time.Hour)
		if err := del("comp", comp.VersionId, false); err != nil {
			t.Errorf("delete a compliance version after its retention: %v", err)
		}
	})
}

func TestObjectLockRefusesABadRetention(t *testing.T) {
	for _, ret := range []Retention{{Mode: "governance", Days: 1}, {Mode: LockCompliance}, {Mode: LockGovernance, Days: -1}} {
		if s, err := Start(Options{ObjectLock: map[string]Retention{"b": ret}}); err == nil {
			s.Close()
			t.Errorf("Start with retention %+v: no error", ret)
		}
	}
}
