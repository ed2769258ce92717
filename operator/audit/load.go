package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pgrotate/pgrotate/tasks/evidence"
)

// Objects is what Load needs of S3; *s3.Client satisfies it.
type Objects interface {
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

var _ Objects = (*s3.Client)(nil)

// InvalidSecretARN reports a secret that is not given as a Secrets Manager secret ARN: the
// evidence keys are made of the ARN's secret part, which a bare name does not have.
type InvalidSecretARN struct{ ARN string }

func (e *InvalidSecretARN) Error() string {
	return fmt.Sprintf("%q is not a Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-SUFFIX)", e.ARN)
}

// UnknownSchema reports an evidence record of a schema this report does not read.
type UnknownSchema struct {
	Key    string
	Schema string
}

func (e *UnknownSchema) Error() string {
	return fmt.Sprintf("evidence record %s has schema %q; this report reads %s only", e.Key, e.Schema, evidence.Schema)
}

// InvalidRecord reports an evidence object that is not a JSON record.
type InvalidRecord struct {
	Key    string
	Reason string
}

func (e *InvalidRecord) Error() string {
	return fmt.Sprintf("evidence record %s: %s", e.Key, e.Reason)
}

// maxRecordSize bounds what Load reads of one object: a record is a few kilobytes.
const maxRecordSize = 4 << 20

// recordKey matches the key of a record below the secret's folder, as tasks/evidence writes
// them: <execution name>/run-<n>.json, or secretsmanager/<event name>-<event id>.json (see
// Handler.statusChange and Handler.rotationFailure there). A key one folder deeper belongs
// to another secret whose name continues this one's (names may hold "/").
var recordKey = regexp.MustCompile(`^(?:[^/]+/run-[0-9]+|secretsmanager/[^/]+)\.json$`)

// Load reads every evidence record of one secret from the bucket, oldest end first. The
// keys are <prefix><secret name>-<suffix>/..., the ARN's part after "secret:"; a record of
// another secret (a longer name under the same folder) is left out, and a record of another
// schema is refused with UnknownSchema.
func Load(ctx context.Context, objs Objects, bucket, prefix, secretARN string) ([]evidence.Record, error) {
	_, id, ok := strings.Cut(secretARN, ":secret:")
	if !ok || id == "" || !strings.HasPrefix(secretARN, "arn:") {
		return nil, &InvalidSecretARN{ARN: secretARN}
	}
	folder := prefix + id + "/"
	keys, err := listKeys(ctx, objs, bucket, folder)
	if err != nil {
		return nil, err
	}
	var recs []evidence.Record
	for _, key := range keys {
		rec, err := getRecord(ctx, objs, bucket, key)
		if err != nil {
			return nil, err
		}
		if rec.SecretARN == secretARN {
			recs = append(recs, rec)
		}
	}
	sort.SliceStable(recs, func(i, j int) bool { return endOf(recs[i]).Before(endOf(recs[j])) })
	return recs, nil
}

// listKeys lists the record keys under folder, every page: ListObjectsV2 returns at most
// 1,000 keys a page and a NextContinuationToken while IsTruncated.
// https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html
func listKeys(ctx context.Context, objs Objects, bucket, folder string) ([]string, error) {
	var keys []string
	pages := s3.NewListObjectsV2Paginator(objs, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(folder)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list evidence s3://%s/%s: %w", bucket, folder, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if recordKey.MatchString(strings.TrimPrefix(key, folder)) {
				keys = append(keys, key)
			}
		}
	}
	return keys, nil
}

// getRecord reads one record, checking its schema before anything else of it.
func getRecord(ctx context.Context, objs Objects, bucket, key string) (evidence.Record, error) {
	out, err := objs.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return evidence.Record{}, fmt.Errorf("read evidence s3://%s/%s: %w", bucket, key, err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(io.LimitReader(out.Body, maxRecordSize+1))
	if err != nil {
		return evidence.Record{}, fmt.Errorf("read evidence s3://%s/%s: %w", bucket, key, err)
	}
	if len(body) > maxRecordSize {
		return evidence.Record{}, &InvalidRecord{Key: key, Reason: "larger than 4 MiB"}
	}
	var head struct {
		Schema string `json:"schema"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		return evidence.Record{}, &InvalidRecord{Key: key, Reason: "not a JSON object"}
	}
	if head.Schema != evidence.Schema {
		return evidence.Record{}, &UnknownSchema{Key: key, Schema: head.Schema}
	}
	var rec evidence.Record
	if err := json.Unmarshal(body, &rec); err != nil {
		return evidence.Record{}, &InvalidRecord{Key: key, Reason: "fields of the wrong type for " + evidence.Schema}
	}
	return rec, nil
}

// Source reads the evidence records of a bucket: operator.History's EvidenceSource.
type Source struct {
	S3             Objects
	Bucket, Prefix string
}

// Records loads every record of the secret (Load).
func (s Source) Records(ctx context.Context, secretARN string) ([]evidence.Record, error) {
	return Load(ctx, s.S3, s.Bucket, s.Prefix, secretARN)
}
