package backend

// Evidence tests: the evidence handler (tasks/evidence) writes the record of real executions
// of statemachine/rotation.asl.json (aws-local-stepfunctions, real handlers, real PostgreSQL
// primary and replica), from the EventBridge event Step Functions would send, reading the
// interpreter's history as it reads Step Functions'. Each record is scanned for every
// password, SCRAM verifier and RotationToken of the run.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/smithy-go"

	"github.com/pgrotate/pgrotate/local/sfnlocal"
	"github.com/pgrotate/pgrotate/rotator"
	"github.com/pgrotate/pgrotate/tasks/evidence"
	"github.com/pgrotate/pgrotate/workflow"
)

// objectLockBucket is a versioned bucket with Object Lock: a PUT adds a version and no
// version is ever replaced; If-None-Match: * on an existing key answers 412; a PUT without
// Content-MD5 or a checksum is refused, as S3 refuses it with a default retention
// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html).
type objectLockBucket struct {
	mu       sync.Mutex
	versions map[string][][]byte
	puts     int
}

func newBucket() *objectLockBucket { return &objectLockBucket{versions: map[string][][]byte{}} }

func (b *objectLockBucket) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	body, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.puts++
	key := aws.ToString(in.Key)
	switch {
	case in.ContentMD5 == nil && in.ChecksumAlgorithm == "":
		return nil, &smithy.GenericAPIError{Code: "InvalidRequest", Message: "Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters"}
	case aws.ToString(in.IfNoneMatch) == "*" && len(b.versions[key]) > 0:
		return nil, &smithy.GenericAPIError{Code: "PreconditionFailed", Message: "At least one of the pre-conditions you specified did not hold"}
	}
	b.versions[key] = append(b.versions[key], body)
	return &s3.PutObjectOutput{}, nil
}

// objects returns the latest version of each key.
func (b *objectLockBucket) objects() map[string][]byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string][]byte{}
	for k, v := range b.versions {
		out[k] = v[len(v)-1]
	}
	return out
}

func (b *objectLockBucket) versionCount(key string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.versions[key])
}

// statusChange is the EventBridge event Step Functions sends when the execution called
// token reached its current status (https://docs.aws.amazon.com/step-functions/latest/dg/eventbridge-integration.html).
func (f *fixture) statusChange(token string) []byte {
	f.t.Helper()
	d := f.describe(token)
	stop := aws.ToTime(d.StopDate)
	detail := map[string]any{
		"executionArn": aws.ToString(d.ExecutionArn), "stateMachineArn": aws.ToString(d.StateMachineArn),
		"name": aws.ToString(d.Name), "status": string(d.Status),
		"startDate": aws.ToTime(d.StartDate).UnixMilli(), "stopDate": stop.UnixMilli(),
		"input": aws.ToString(d.Input), "inputDetails": map[string]bool{"included": true},
		"output": d.Output, "error": d.Error, "cause": d.Cause,
		"redriveCount": aws.ToInt32(d.RedriveCount), "redriveStatus": string(d.RedriveStatus),
	}
	ev, err := json.Marshal(map[string]any{
		"version": "0", "id": fmt.Sprintf("ev-%s-%s-%d", token, d.Status, aws.ToInt32(d.RedriveCount)),
		"detail-type": evidence.DetailTypeStatusChange, "source": evidence.SourceStates,
		"account": "000000000000", "time": stop.UTC().Format(time.RFC3339), "region": "local",
		"resources": []string{aws.ToString(d.ExecutionArn)}, "detail": detail,
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return ev
}

func (f *fixture) evidence(bucket *objectLockBucket) *evidence.Handler {
	return &evidence.Handler{Executions: f.b.Machine, Objects: bucket, Bucket: "evidence", StateMachineARN: StateMachineARN,
		Version: "test", Log: f.b.log()}
}

// record writes the record of token's current status and returns it with its key.
func (f *fixture) record(h *evidence.Handler, bucket *objectLockBucket, token string) (evidence.Record, string) {
	f.t.Helper()
	if err := h.Handle(f.ctx, f.statusChange(token)); err != nil {
		f.t.Fatalf("evidence of %s: %v", token, err)
	}
	d := f.describe(token)
	key := fmt.Sprintf("%s/%s/run-%d.json", strings.SplitN(f.b.AppSecretARN, ":secret:", 2)[1], token, aws.ToInt32(d.RedriveCount))
	body, ok := bucket.objects()[key]
	if !ok {
		f.t.Fatalf("no record at %s; keys %v", key, keys(bucket.objects()))
	}
	var rec evidence.Record
	if err := json.Unmarshal(body, &rec); err != nil {
		f.t.Fatalf("record %s: %v", key, err)
	}
	return rec, key
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// stateNames lists the record's states as name:result.
func stateNames(rec evidence.Record) []string {
	var out []string
	for _, s := range rec.States {
		if workflow.IsTopLevel(s.Name) {
			out = append(out, s.Name+":"+s.Result)
		}
	}
	return out
}

func checkRecord(t *testing.T, rec evidence.Record, f *fixture, token, status string) {
	t.Helper()
	if rec.Schema != evidence.Schema || rec.Kind != evidence.KindExecution || rec.PgrotateVersion != "test" ||
		rec.SecretARN != f.b.AppSecretARN || rec.SecretVersion != token || rec.ExecutionARN != f.arn(token) ||
		rec.ExecutionName != token || rec.Outcome.Status != status || rec.StartedAt == nil || rec.EndedAt == nil ||
		rec.StartedBy.ClientRequestToken != token {
		t.Errorf("record of %s: %+v", token, rec)
	}
	if rec.FromUser == "" || rec.ToUser != workflow.Alternate(rec.FromUser) || rec.FromVersion == "" {
		t.Errorf("record of %s: from %q (%s) to %q", token, rec.FromUser, rec.FromVersion, rec.ToUser)
	}
}

// A succeeded rotation: users, versions, every state, the replicas verified at the LSN,
// each service's deployment; writing it again adds nothing.
func TestEvidenceSucceededRotation(t *testing.T) {
	services := []workflow.Service{{Cluster: "prod", Service: "api"}, {Cluster: "prod", Service: "worker"}}
	f := newFixture(t, "evid_ok_user", Options{Services: services})
	before, beforeVersion := f.secret(workflow.StageCurrent)
	r := f.rotate()
	f.mustSucceed(r)
	bucket := newBucket()
	h := f.evidence(bucket)
	rec, key := f.record(h, bucket, r.Token)

	checkRecord(t, rec, f, r.Token, "SUCCEEDED")
	if rec.FromUser != before.Username || rec.FromVersion != beforeVersion || rec.Run != 0 {
		t.Errorf("from %s (%s), run %d; want %s (%s), run 0", rec.FromUser, rec.FromVersion, rec.Run, before.Username, beforeVersion)
	}
	want := []string{"Preflight:succeeded", "CloneUser:succeeded", "SetPassword:succeeded", "TestLogin:succeeded",
		"CheckReplicas:succeeded", "Promote:succeeded", "Redeploy:succeeded"}
	if got := stateNames(rec); !slices.Equal(got, want) {
		t.Errorf("states %v, want %v", got, want)
	}
	for _, s := range rec.States {
		if s.Exited == nil || s.Exited.Before(s.Entered) || s.Error != "" {
			t.Errorf("state %+v", s)
		}
	}
	out := f.output(r.Token)
	if len(rec.Replicas) != 1 || rec.Replicas[0].Host != f.c.Replica.Host || rec.Replicas[0].Port != f.c.Replica.Port ||
		rec.Replicas[0].LSN == "" || rec.Replicas[0].LSN != out.LSN {
		t.Errorf("replicas %+v, want %s:%d at %s", rec.Replicas, f.c.Replica.Host, f.c.Replica.Port, out.LSN)
	}
	ids := f.steady(services, out.Promotion.PromotedAt)
	if len(rec.Deployments) != len(services) {
		t.Fatalf("deployments %+v, want one per service", rec.Deployments)
	}
	for _, d := range rec.Deployments {
		svc := workflow.Service{Cluster: d.Cluster, Service: d.Service}
		if d.DeploymentID == "" || d.DeploymentID != ids[svc] || d.RolloutState != "COMPLETED" {
			t.Errorf("deployment %+v, want %s COMPLETED", d, ids[svc])
		}
	}
	if rec.Outcome.PromotedAt == nil || !rec.Outcome.PromotedAt.Equal(out.Promotion.PromotedAt) || rec.Outcome.Error != "" {
		t.Errorf("outcome %+v, want promoted at %s", rec.Outcome, out.Promotion.PromotedAt)
	}

	// The same event again (EventBridge delivers at least once; Lambda retries): nothing new.
	first := bucket.objects()[key]
	if err := h.Handle(f.ctx, f.statusChange(r.Token)); err != nil {
		t.Fatal(err)
	}
	if n := bucket.versionCount(key); n != 1 || bucket.puts != 2 {
		t.Errorf("after a repeated event: %d versions, %d PUTs; want 1 and 2", n, bucket.puts)
	}
	// And a fresh write of the same event holds the same bytes.
	again := newBucket()
	if err := f.evidence(again).Handle(f.ctx, f.statusChange(r.Token)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.objects()[key], first) {
		t.Errorf("a second write of the same event differs:\n%s\n%s", first, again.objects()[key])
	}
	f.noSecretsIn(bucket)
}

// A rotation that fails in SetPassword, then is redriven: the failure's record stays as
// written, the redriven run gets its own record holding both runs.
func TestEvidenceFailedThenRedriven(t *testing.T) {
	var armed atomic.Bool
	armed.Store(true)
	f := newFixture(t, "evid_redrive_user", Options{
		Services: []workflow.Service{{Cluster: "prod", Service: "api"}},
		Intercept: func(res string, next sfnlocal.Handler) sfnlocal.Handler {
			if res != resource("setpassword") {
				return next
			}
			return func(ctx context.Context, payload []byte) ([]byte, error) {
				if armed.CompareAndSwap(true, false) {
					return nil, &injected{what: "SetPassword"}
				}
				return next(ctx, payload)
			}
		},
	})
	token, err := newToken()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.b.Step(f.ctx, rotator.StepCreate, token); err != nil {
		t.Fatalf("createSecret: %v", err)
	}
	if err := f.b.Step(f.ctx, rotator.StepSet, token); err == nil {
		t.Fatal("setSecret succeeded; the injected failure did not happen")
	} else {
		f.mu.Lock()
		f.texts = append(f.texts, err.Error())
		f.mu.Unlock()
	}
	bucket := newBucket()
	h := f.evidence(bucket)
	failed, failedKey := f.record(h, bucket, token)
	failedEvent := f.statusChange(token)
	checkRecord(t, failed, f, token, "FAILED")
	if failed.Run != 0 || failed.Outcome.Error != "injected" || failed.Outcome.FailedState != workflow.StateSetPassword {
		t.Errorf("failed run: run %d, outcome %+v; want run 0, injected in SetPassword", failed.Run, failed.Outcome)
	}
	wantFailed := []string{"Preflight:succeeded", "CloneUser:succeeded", "SetPassword:caught", "NotifyFailure:succeeded"}
	if got := stateNames(failed); !slices.Equal(got, wantFailed) {
		t.Errorf("failed run states %v, want %v", got, wantFailed)
	}
	for _, s := range failed.States {
		if s.Name == workflow.StateSetPassword && s.Error != "injected" {
			t.Errorf("SetPassword error %q, want injected", s.Error)
		}
	}
	if len(failed.Replicas) != 0 || len(failed.Deployments) != 0 || failed.Outcome.PromotedAt != nil {
		t.Errorf("failed run claims replicas %v, deployments %v, promotion %v", failed.Replicas, failed.Deployments, failed.Outcome.PromotedAt)
	}
	failedBytes := bucket.objects()[failedKey]

	if _, err := f.b.Machine.RedriveExecution(f.ctx, &sfn.RedriveExecutionInput{ExecutionArn: aws.String(f.arn(token))}); err != nil {
		t.Fatalf("RedriveExecution: %v", err)
	}
	for _, step := range []string{rotator.StepSet, rotator.StepTest, rotator.StepFinish} {
		if err := f.b.Step(f.ctx, step, token); err != nil {
			t.Fatalf("%s after the redrive: %v", step, err)
		}
	}
	if status, err := f.b.Machine.Wait(f.ctx, f.arn(token)); err != nil || status != types.ExecutionStatusSucceeded {
		t.Fatalf("redriven execution: %s %v", status, err)
	}
	redriven, redrivenKey := f.record(h, bucket, token)
	checkRecord(t, redriven, f, token, "SUCCEEDED")
	if redriven.Run != 1 || redrivenKey == failedKey {
		t.Errorf("redriven run %d at %s; want run 1 in its own record", redriven.Run, redrivenKey)
	}
	wantRedriven := append(slices.Clone(wantFailed), "SetPassword:succeeded", "TestLogin:succeeded", "CheckReplicas:succeeded",
		"Promote:succeeded", "Redeploy:succeeded")
	if got := stateNames(redriven); !slices.Equal(got, wantRedriven) {
		t.Errorf("redriven states %v, want %v", got, wantRedriven)
	}
	if len(redriven.Replicas) != 1 || len(redriven.Deployments) != 1 || redriven.Outcome.PromotedAt == nil {
		t.Errorf("redriven run: replicas %v, deployments %v, promotion %v", redriven.Replicas, redriven.Deployments, redriven.Outcome.PromotedAt)
	}

	// The failure's event, delivered late (after the redrive), changes nothing and would
	// write the same bytes: a run's record stops at the run's end.
	if err := h.Handle(f.ctx, failedEvent); err != nil {
		t.Fatal(err)
	}
	if n := bucket.versionCount(failedKey); n != 1 {
		t.Errorf("the failed run's record has %d versions", n)
	}
	late := newBucket()
	if err := f.evidence(late).Handle(f.ctx, failedEvent); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(late.objects()[failedKey], failedBytes) {
		t.Errorf("the failed run's record written after the redrive differs:\n%s\n%s", failedBytes, late.objects()[failedKey])
	}
	f.collectVerifiers()
	f.noSecretsIn(bucket)
}

// A superseded rotation: its record says ABORTED by RotationSuperseded in CloneUser; the
// rotation that superseded it has its own SUCCEEDED record.
func TestEvidenceSupersededRotation(t *testing.T) {
	hold := newHold()
	hold.armed.Store(false)
	f := newFixture(t, "evid_super_user", Options{
		Services: []workflow.Service{{Cluster: "prod", Service: "api"}},
		Intercept: func(res string, next sfnlocal.Handler) sfnlocal.Handler {
			if res != resource("cloneuser") {
				return next
			}
			return hold.wrap(next)
		},
	})
	t.Cleanup(hold.Release)
	f.mustSucceed(f.rotate()) // a first rotation, so that both users have a password
	hold.armed.Store(true)
	first, err := newToken()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.b.Step(f.ctx, rotator.StepCreate, first); err != nil {
		t.Fatal(err)
	}
	f.waitClosed(hold.entered, "CloneUser of the first rotation never ran")
	r := f.rotate()
	f.mustSucceed(r)
	hold.Release()
	select {
	case <-hold.done:
	case <-f.ctx.Done():
		t.Fatal("the held CloneUser never returned")
	}

	bucket := newBucket()
	h := f.evidence(bucket)
	sup, _ := f.record(h, bucket, first)
	checkRecord(t, sup, f, first, "ABORTED")
	if sup.Outcome.Error != "RotationSuperseded" || sup.Outcome.FailedState != workflow.StateCloneUser {
		t.Errorf("superseded outcome %+v, want RotationSuperseded in CloneUser", sup.Outcome)
	}
	if got, want := stateNames(sup), []string{"Preflight:succeeded", "CloneUser:aborted"}; !slices.Equal(got, want) {
		t.Errorf("superseded states %v, want %v", got, want)
	}
	if len(sup.Replicas) != 0 || len(sup.Deployments) != 0 || sup.Outcome.PromotedAt != nil {
		t.Errorf("superseded run claims replicas %v, deployments %v, promotion %v", sup.Replicas, sup.Deployments, sup.Outcome.PromotedAt)
	}
	won, _ := f.record(h, bucket, r.Token)
	checkRecord(t, won, f, r.Token, "SUCCEEDED")
	if won.FromUser != sup.FromUser || won.ToUser != sup.ToUser {
		t.Errorf("the superseding rotation went %s -> %s, the superseded one %s -> %s", won.FromUser, won.ToUser, sup.FromUser, sup.ToUser)
	}
	f.noSecretsIn(bucket)
}

// A malformed event, or one of another state machine, is refused by name; nothing is written.
func TestEvidenceRefusesForeignEvents(t *testing.T) {
	f := newFixture(t, "evid_bad_user", Options{Services: []workflow.Service{{Cluster: "prod", Service: "api"}}})
	r := f.rotate()
	f.mustSucceed(r)
	good := f.statusChange(r.Token)
	other := bytes.Replace(good, []byte(`"stateMachineArn":"`+StateMachineARN+`"`), []byte(`"stateMachineArn":"`+StateMachineARN+`-other"`), 1)
	running := bytes.Replace(good, []byte(`"status":"SUCCEEDED"`), []byte(`"status":"RUNNING"`), 1)
	bucket := newBucket()
	h := f.evidence(bucket)
	for name, ev := range map[string][]byte{"not JSON": []byte(`{`), "another machine": other, "running": running,
		"no detail": []byte(`{"source":"aws.states","detail-type":"Step Functions Execution Status Change","detail":{}}`)} {
		var invalid *evidence.InvalidEvent
		if err := h.Handle(f.ctx, ev); !errors.As(err, &invalid) {
			t.Errorf("%s: %v, want InvalidEvent", name, err)
		}
	}
	if bucket.puts != 0 {
		t.Errorf("%d PUTs for refused events", bucket.puts)
	}
}

// noSecretsIn scans every record for the run's passwords, SCRAM verifiers (and their keys)
// and RotationTokens, then runs the fixture's own scan of everything else.
func (f *fixture) noSecretsIn(bucket *objectLockBucket) {
	f.t.Helper()
	f.noSecretsInRecords(bucket.objects())
}

// noSecretsInRecords scans records (by key) as noSecretsIn does.
func (f *fixture) noSecretsInRecords(records map[string][]byte) {
	f.t.Helper()
	f.scanRecords(records)
	f.noSecrets()
}

// scanRecords scans records (by key) for every password, SCRAM verifier (and its keys) and
// RotationToken of the run.
func (f *fixture) scanRecords(records map[string][]byte) {
	f.t.Helper()
	f.collectVerifiers()
	snap, err := f.b.Secrets.Snapshot()
	if err != nil {
		f.t.Fatal(err)
	}
	var store map[string]struct {
		Versions []struct {
			Value json.RawMessage `json:"value"`
		} `json:"versions"`
	}
	if err := json.Unmarshal(snap, &store); err != nil {
		f.t.Fatal(err)
	}
	var needles []string
	for _, sec := range store {
		for _, v := range sec.Versions {
			var val struct {
				Password string `json:"password"`
			}
			if json.Unmarshal(v.Value, &val) != nil || val.Password == "" {
				f.t.Fatal("a secret version without a password")
			}
			needles = append(needles, val.Password)
		}
	}
	f.mu.Lock()
	for v := range f.verifiers {
		needles = append(needles, v)
		if _, keys, ok := strings.Cut(strings.TrimPrefix(v, "SCRAM-SHA-256$"), "$"); ok {
			stored, server, _ := strings.Cut(keys, ":")
			needles = append(needles, stored, server)
		}
	}
	needles = append(needles, f.rotationTokens...)
	tokens := len(f.rotationTokens)
	f.mu.Unlock()
	if len(records) == 0 || tokens == 0 || len(needles) < 4 {
		f.t.Fatalf("scan of %d records for %d values (%d RotationTokens): nothing to scan", len(records), len(needles), tokens)
	}
	for key, body := range records {
		for _, n := range needles {
			escaped, _ := json.Marshal(n)
			if bytes.Contains(body, []byte(n)) || bytes.Contains(body, bytes.Trim(escaped, `"`)) {
				f.t.Errorf("record %s holds a secret value", key) // never print the value
			}
		}
	}
}
