package rotation

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"
)

// StateMachineAlias is the alias of the rotation function through which the state machine
// (Promote) invokes it. Secrets Manager invokes the unqualified function.
const StateMachineAlias = "statemachine"

// Service principals that publish to the alarm topic.
const (
	cloudWatchPrincipal  = "cloudwatch.amazonaws.com"
	eventBridgePrincipal = "events.amazonaws.com"
)

// Secrets Manager's CloudTrail event for a rotation that failed, as EventBridge delivers it:
// a service event (not an API call) whose additionalEventData.SecretId is the secret's ARN.
// https://docs.aws.amazon.com/secretsmanager/latest/userguide/cloudtrail_log_entries.html
// https://docs.aws.amazon.com/eventbridge/latest/ref/events-ref-secretsmanager.html
// https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-service-event-cloudtrail.html
const (
	secretsManagerSource    = "aws.secretsmanager"
	serviceEventDetailType  = "AWS Service Event via CloudTrail"
	rotationFailedEventName = "RotationFailed"
)

// newStateMachineAlias creates the alias the state machine invokes the rotation function
// through. It points at $LATEST, so both callers always run the same code; it exists only
// to tell the callers apart in the Lambda metrics (the Resource dimension).
func (r *Rotation) newStateMachineAlias() {
	fn := r.Functions[Rotator]
	r.StateMachineAlias = awslambda.NewAlias(r.Construct, jsii.String("RotatorStateMachineAlias"), &awslambda.AliasProps{
		AliasName:   jsii.String(StateMachineAlias),
		Version:     fn.LatestVersion(),
		Description: jsii.String("pgrotate: the state machine's calls of the rotation function (Promote)"),
	})
}

// newAlarms alarms the topic on failures:
//
//   - FailedRotations: an execution failed or timed out (the state machine's own failures,
//     including the RotationFailed rethrow);
//   - RotationFunctionErrors: the rotation function failed when Secrets Manager called it
//     (createSecret, StartExecution, the configuration test, a timeout), outside any
//     execution. Its errors through the state machine's alias are subtracted: those end the
//     execution, which FailedRotations already reports. (The RotationFailed rethrow, which
//     returns an error by design after every caught failure, is a function of its own.) setSecret, testSecret and
//     finishSecret wait for the execution, so one that fails before Promote fails them too;
//   - RotationFailedEvents: Secrets Manager reports the rotation of the app secret failed.
//
// It then lets CloudWatch and EventBridge publish to the topic, when the construct created it.
func (r *Rotation) newAlarms(p Props) {
	period := awscdk.Duration_Minutes(jsii.Number(5))
	opts := &awscloudwatch.MetricOptions{Period: period, Statistic: jsii.String("Sum")}
	action := awscloudwatchactions.NewSnsAction(r.Topic)
	alarmOn := func(id, description, label, expression string, metrics map[string]awscloudwatch.IMetric) awscloudwatch.Alarm {
		expr := awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
			Expression: jsii.String(expression), UsingMetrics: &metrics, Label: jsii.String(label), Period: period,
		})
		alarm := expr.CreateAlarm(r.Construct, jsii.String(id), &awscloudwatch.CreateAlarmOptions{
			AlarmDescription:   jsii.String(description),
			Threshold:          jsii.Number(1),
			EvaluationPeriods:  jsii.Number(1),
			ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
			// No invocation, no data point: nothing failed.
			TreatMissingData: awscloudwatch.TreatMissingData_NOT_BREACHING,
		})
		alarm.AddAlarmAction(action)
		return alarm
	}

	r.Alarm = alarmOn("FailedRotations",
		"pgrotate: a rotation execution failed or timed out; see its execution history",
		"Failed or timed-out rotations", "FILL(failed, 0) + FILL(timedOut, 0)",
		map[string]awscloudwatch.IMetric{
			"failed":   r.StateMachine.MetricFailed(opts),
			"timedOut": r.StateMachine.MetricTimedOut(opts),
		})

	// Lambda's Errors counts invocations that end in a function error: errors the handler
	// returns and those of the runtime, such as timeouts and failed initialization. Its
	// FunctionName dimension aggregates all versions and aliases; FunctionName+Resource
	// counts one alias. https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html
	r.FunctionErrorsAlarm = alarmOn("RotationFunctionErrors",
		"pgrotate: the rotation function failed when Secrets Manager called it (createSecret, starting the "+
			"execution, the rotation configuration test, a timeout); see the function's log",
		"Rotation function errors outside the state machine", "FILL(all, 0) - FILL(viaStateMachine, 0)",
		map[string]awscloudwatch.IMetric{
			"all":             r.Functions[Rotator].MetricErrors(opts),
			"viaStateMachine": r.StateMachineAlias.MetricErrors(opts),
		})

	r.newRotationFailedRule(p)

	topicArn := []*string{r.Topic.TopicArn()}
	account := awscdk.Stack_Of(r.Construct).Account()
	// The topic policy replaces SNS's default one, so each service that publishes needs a
	// statement, scoped to this account and the publishing resources (confused deputy).
	// https://docs.aws.amazon.com/sns/latest/dg/sns-access-policy-use-cases.html
	// https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-resource-based.html#eb-sns-permissions
	allow := func(sid, principal string, sources interface{}) {
		r.Topic.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:        jsii.String(sid),
			Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String(principal), nil)},
			Actions:    jsii.Strings("sns:Publish"),
			Resources:  &topicArn,
			Conditions: &map[string]interface{}{
				"StringEquals": map[string]interface{}{"aws:SourceAccount": account},
				"ArnEquals":    map[string]interface{}{"aws:SourceArn": sources},
			},
		}))
	}
	allow("AllowCloudWatchAlarms", cloudWatchPrincipal, []*string{r.Alarm.AlarmArn(), r.FunctionErrorsAlarm.AlarmArn()})
	allow("AllowRotationFailedEvents", eventBridgePrincipal, r.RotationFailedRule.AttrArn())
}

// newRotationFailedRule forwards Secrets Manager's RotationFailed events of the app secret
// to the topic, as one readable line.
func (r *Rotation) newRotationFailedRule(p Props) {
	// The full ARN when it is known; otherwise the partial one is a prefix of it.
	var secret interface{} = []*string{p.AppSecret.SecretFullArn()}
	if p.AppSecret.SecretFullArn() == nil {
		secret = []interface{}{map[string]*string{"prefix": p.AppSecret.SecretArn()}}
	}
	r.RotationFailedRule = awsevents.NewCfnRule(r.Construct, jsii.String("RotationFailedEvents"), &awsevents.CfnRuleProps{
		Description: jsii.String("pgrotate: Secrets Manager reports that a rotation of the app secret failed"),
		State:       jsii.String("ENABLED"),
		EventPattern: map[string]interface{}{
			"source":      []string{secretsManagerSource},
			"detail-type": []string{serviceEventDetailType},
			"detail": map[string]interface{}{
				"eventSource":         []string{"secretsmanager.amazonaws.com"},
				"eventName":           []string{rotationFailedEventName},
				"additionalEventData": map[string]interface{}{"SecretId": secret},
			},
		},
		Targets: &[]*awsevents.CfnRule_TargetProperty{{
			Arn: r.Topic.TopicArn(),
			Id:  jsii.String("AlarmTopic"),
			InputTransformer: &awsevents.CfnRule_InputTransformerProperty{
				InputPathsMap: &map[string]*string{
					"secret": jsii.String("$.detail.additionalEventData.SecretId"),
					"time":   jsii.String("$.detail.eventTime"),
					"error":  jsii.String("$.detail.errorMessage"),
				},
				InputTemplate: jsii.String(`"pgrotate: Secrets Manager reports that the rotation of <secret> failed at <time>: <error>"`),
			},
		}},
	})
}
