package rotation_test

import (
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/jsii-runtime-go"

	"github.com/pgrotate/pgrotate/cdk/internal/cdktest"
	"github.com/pgrotate/pgrotate/cdk/rotation"
	"github.com/pgrotate/pgrotate/tasks/evidence"
)

// evidenceDeparture reports the two reasoned non-IAM5 suppressions of the evidence store:
// its access log bucket has no access logs of its own (S1), and its dead-letter queue is
// one (SQS3).
func evidenceDeparture(s cdktest.Suppression) bool {
	return (s.Rule == "AwsSolutions-S1" && strings.Contains(s.Resource, "EvidenceAccessLogs")) ||
		(s.Rule == "AwsSolutions-SQS3" && strings.Contains(s.Resource, "EvidenceDeadLetters"))
}

// The rules match exactly what the handler accepts.
func TestEvidenceEventsMatchTheHandler(t *testing.T) {
	sources, detailTypes, statuses, failures := rotation.EvidenceEvents()
	if !slices.Equal(sources, []string{evidence.SourceStates, evidence.SourceSecretsManager}) ||
		!slices.Equal(detailTypes, []string{evidence.DetailTypeStatusChange, evidence.DetailTypeServiceEvent}) ||
		!slices.Equal(statuses, evidence.TerminalStatuses) || !slices.Equal(failures, evidence.RotationFailureEvents) {
		t.Errorf("rules match %v %v %v %v; the handler accepts %v %v %v %v", sources, detailTypes, statuses, failures,
			[]string{evidence.SourceStates, evidence.SourceSecretsManager},
			[]string{evidence.DetailTypeStatusChange, evidence.DetailTypeServiceEvent}, evidence.TerminalStatuses, evidence.RotationFailureEvents)
	}
}

func TestEvidenceBucket(t *testing.T) {
	tests := []struct {
		name     string
		props    rotation.EvidenceProps
		wantMode string
		wantDays float64
	}{
		{"defaults", rotation.EvidenceProps{}, "GOVERNANCE", 400},
		{"compliance, two years", rotation.EvidenceProps{Mode: rotation.EvidenceModeCompliance, RetentionDays: 730}, "COMPLIANCE", 730},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stack, r := newStack(t, func(p *rotation.Props) { p.Evidence = tc.props })
			tmpl := cdktest.Template(t, stack)
			id := cdktest.LogicalID(stack, r.Evidence.Bucket)
			b := cdktest.Props(cdktest.Resources(tmpl, "AWS::S3::Bucket")[id])
			if b == nil {
				t.Fatalf("no evidence bucket %s", id)
			}
			if b["ObjectLockEnabled"] != true {
				t.Errorf("ObjectLockEnabled = %v", b["ObjectLockEnabled"])
			}
			rule := cdktest.JSON(b["ObjectLockConfiguration"])
			want := `{"ObjectLockEnabled":"Enabled","Rule":{"DefaultRetention":{"Days":` + strings.TrimSuffix(cdktest.JSON(tc.wantDays), ".0") + `,"Mode":"` + tc.wantMode + `"}}}`
			if rule != want {
				t.Errorf("ObjectLockConfiguration = %s, want %s", rule, want)
			}
			if v := cdktest.JSON(b["VersioningConfiguration"]); v != `{"Status":"Enabled"}` {
				t.Errorf("VersioningConfiguration = %s", v)
			}
			enc := cdktest.JSON(b["BucketEncryption"])
			keyID := cdktest.LogicalID(stack, r.Evidence.Key)
			if !strings.Contains(enc, `"SSEAlgorithm":"aws:kms"`) || !strings.Contains(enc, keyID) {
				t.Errorf("BucketEncryption = %s, want aws:kms with %s", enc, keyID)
			}
			if pab := cdktest.JSON(b["PublicAccessBlockConfiguration"]); pab != `{"BlockPublicAcls":true,"BlockPublicPolicy":true,"IgnorePublicAcls":true,"RestrictPublicBuckets":true}` {
				t.Errorf("PublicAccessBlockConfiguration = %s", pab)
			}
			if logs := cdktest.JSON(b["LoggingConfiguration"]); !strings.Contains(logs, cdktest.LogicalID(stack, r.Evidence.AccessLogs)) {
				t.Errorf("LoggingConfiguration = %s, want the access log bucket", logs)
			}
			// TLS only: the bucket policy denies every request without aws:SecureTransport.
			tls := false
			for _, pol := range cdktest.Resources(tmpl, "AWS::S3::BucketPolicy") {
				p := cdktest.Props(pol)
				doc := cdktest.JSON(p["PolicyDocument"])
				if strings.Contains(cdktest.JSON(p["Bucket"]), id) && strings.Contains(doc, `"Effect":"Deny"`) &&
					strings.Contains(doc, `{"Bool":{"aws:SecureTransport":"false"}}`) {
					tls = true
				}
			}
			if !tls {
				t.Error("no bucket policy denies requests without TLS")
			}
			if errs, warns := cdktest.NagFindings(stack); len(errs)+len(warns) > 0 {
				t.Errorf("cdk-nag:\n%s", strings.Join(append(errs, warns...), "\n"))
			}
			cdktest.CheckSuppressionReasons(t, cdktest.Suppressions(tmpl))
		})
	}
}

func TestEvidenceRules(t *testing.T) {
	stack, r := newStack(t, nil)
	tmpl := cdktest.Template(t, stack)
	fnID := cdktest.LogicalID(stack, r.Evidence.Function)
	smArn := cdktest.JSON(stack.Resolve(r.StateMachineArn))
	patterns := map[string]string{}
	for id, res := range cdktest.Resources(tmpl, "AWS::Events::Rule") {
		p := cdktest.Props(res)
		if !strings.Contains(cdktest.JSON(p["Targets"]), fnID) {
			continue
		}
		if tg := cdktest.JSON(p["Targets"]); !strings.Contains(tg, "DeadLetterConfig") || !strings.Contains(tg, "RetryPolicy") {
			t.Errorf("rule %s targets %s, want a dead-letter queue and a retry policy", id, tg)
		}
		patterns[id] = cdktest.JSON(p["EventPattern"])
	}
	want := map[string]string{
		cdktest.LogicalID(stack, r.Evidence.ExecutionRule): `{"detail":{"stateMachineArn":[` + smArn + `],"status":["SUCCEEDED","FAILED","TIMED_OUT","ABORTED"]},` +
			`"detail-type":["Step Functions Execution Status Change"],"source":["aws.states"]}`,
		cdktest.LogicalID(stack, r.Evidence.FailureRule): `{"detail":{"additionalEventData":{"SecretId":["` + appSecretArn + `"]},` +
			`"eventName":["RotationFailed","RotationAbandoned"],"eventSource":["secretsmanager.amazonaws.com"]},` +
			`"detail-type":["AWS Service Event via CloudTrail"],"source":["aws.secretsmanager"]}`,
	}
	for id, w := range want {
		if patterns[id] != w {
			t.Errorf("rule %s pattern:\n got %s\nwant %s", id, patterns[id], w)
		}
	}
	if len(patterns) != len(want) {
		t.Errorf("rules targeting the evidence function: %v, want %d", patterns, len(want))
	}
	// Failed invocations go to the dead-letter queue.
	for _, cfg := range cdktest.Resources(tmpl, "AWS::Lambda::EventInvokeConfig") {
		p := cdktest.Props(cfg)
		if strings.Contains(cdktest.JSON(p["FunctionName"]), fnID) &&
			!strings.Contains(cdktest.JSON(p["DestinationConfig"]), cdktest.LogicalID(stack, r.Evidence.DeadLetters)) {
			t.Errorf("evidence invoke config %s has no on-failure queue", cdktest.JSON(p))
		}
	}
}

// The evidence function reads this machine's execution history, creates objects in the
// bucket and encrypts them; nothing else (beyond its logs, traces and dead-letter queue).
func TestEvidenceLeastPrivilege(t *testing.T) {
	tests := []struct {
		name      string
		byo       bool
		wantKey   bool
		wantPaths string
	}{
		{"own bucket", false, true, "EvidenceBucket"},
		{"brought bucket without a key", true, false, ":s3:::audit-evidence/pgrotate/*"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stack, r := newStack(t, func(p *rotation.Props) {
				if tc.byo {
					p.Evidence = rotation.EvidenceProps{
						Bucket: awss3.Bucket_FromBucketName(p.Vpc.Stack(), jsii.String("Byo"), jsii.String("audit-evidence")),
						Prefix: "pgrotate/",
					}
				}
			})
			tmpl := cdktest.Template(t, stack)
			role := cdktest.LogicalID(stack, r.Evidence.Function.Role())
			got := map[string][]string{}
			for _, s := range cdktest.Statements(tmpl) {
				if s.Role != role {
					continue
				}
				for _, a := range s.Actions {
					got[a] = append(got[a], cdktest.JSON(s.Resources))
				}
			}
			var actions []string
			for a := range got {
				actions = append(actions, a)
			}
			sort.Strings(actions)
			want := []string{"logs:CreateLogStream", "logs:PutLogEvents", "s3:PutObject", "sqs:GetQueueAttributes", "sqs:GetQueueUrl",
				"sqs:SendMessage", "states:GetExecutionHistory", "xray:PutTelemetryRecords", "xray:PutTraceSegments"}
			if tc.wantKey {
				want = append(want, "kms:GenerateDataKey")
				sort.Strings(want)
			}
			if !slices.Equal(actions, want) {
				t.Errorf("evidence role actions:\n got %v\nwant %v", actions, want)
			}
			if put := strings.Join(got["s3:PutObject"], " "); !strings.Contains(put, tc.wantPaths) {
				t.Errorf("s3:PutObject on %s, want %s", put, tc.wantPaths)
			}
			if h := strings.Join(got["states:GetExecutionHistory"], " "); !strings.Contains(h, ":execution:") {
				t.Errorf("states:GetExecutionHistory on %s, want this machine's executions", h)
			}
			if tc.byo && len(cdktest.Resources(tmpl, "AWS::S3::Bucket")) != 0 {
				t.Error("a bucket was created although one was brought")
			}
			if errs, warns := cdktest.NagFindings(stack); len(errs)+len(warns) > 0 {
				t.Errorf("cdk-nag:\n%s", strings.Join(append(errs, warns...), "\n"))
			}
		})
	}
}

func TestEvidencePropsValidation(t *testing.T) {
	tests := []struct {
		name  string
		props rotation.EvidenceProps
		want  string
	}{
		{"short retention", rotation.EvidenceProps{RetentionDays: 90}, "Evidence.RetentionDays 90 is under 365"},
		{"unknown mode", rotation.EvidenceProps{Mode: "LEGAL_HOLD"}, `Evidence.Mode "LEGAL_HOLD"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg := panicMessage(t, func() { newStack(t, func(p *rotation.Props) { p.Evidence = tc.props }) })
			if !strings.Contains(msg, tc.want) {
				t.Errorf("panic %q, want %q", msg, tc.want)
			}
		})
	}
}
