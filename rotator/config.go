package rotator

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/pgrotate/pgrotate/workflow"
)

// noExecution is what the waits find when no execution belongs to the version.
type noExecution struct{ token string }

func (e *noExecution) Error() string {
	return fmt.Sprintf("no rotation execution for version %s: createSecret has not started it", e.token)
}

// testSecret waits for the execution to pass CheckReplicas. When there is none, and
// createSecret did not write the AWSPENDING version, this is Secrets Manager testing the
// rotation configuration: "if you don't immediately rotate the secret, Secrets Manager tests
// the rotation configuration by running the testSecret step of the Lambda rotation function.
// The test creates an AWSPENDING version of the secret and then removes it"
// (RotateImmediately, https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_RotateSecret.html).
// That is what a CloudFormation rotation schedule does when it is created; failing it for a
// missing execution would fail the stack, so it gets a real check of the configuration.
func (r *Rotator) testSecret(ctx context.Context, arn, token string) error {
	err := r.waitFor(ctx, arn, token, workflow.StateCheckReplicas)
	var none *noExecution
	if !errors.As(err, &none) {
		return err
	}
	if mine, rerr := r.writtenByCreateSecret(ctx, arn, token); rerr != nil {
		return rerr
	} else if mine {
		return err
	}
	r.log().InfoContext(ctx, "no execution for an AWSPENDING version createSecret did not write: testing the rotation configuration", "secret", arn, "version", token)
	if err := r.CheckConfiguration(ctx, arn); err != nil {
		return err
	}
	r.log().InfoContext(ctx, "rotation configuration test passed", "secret", arn, "version", token)
	return nil
}

// writtenByCreateSecret reports whether version token is one createSecret writes: the
// alternate of AWSCURRENT's user on the same database. Secrets Manager's test version is
// not (its value is not documented; whatever it holds, it is not that).
func (r *Rotator) writtenByCreateSecret(ctx context.Context, arn, token string) (bool, error) {
	v, err := r.stages(ctx, arn)
	if err != nil {
		return false, err
	}
	current, err := r.Secrets.AppSecret(ctx, arn, v.Current())
	if err != nil {
		return false, nil // the configuration test reports it
	}
	pending, err := r.Secrets.AppSecret(ctx, arn, token)
	if err != nil {
		if r.Secrets.IsNotFound(err) {
			return false, nil
		}
		var invalid *workflow.InvalidSecret
		if errors.As(err, &invalid) {
			return false, nil
		}
		return false, fmt.Errorf("read version %s of %s: %w", token, arn, err)
	}
	return workflow.ValidatePending(current, pending) == nil, nil
}

// CheckConfiguration checks, without changing anything (no PutSecretValue, no
// StartExecution), what a rotation of the app secret arn needs: AWSCURRENT and the admin
// secret it names parse and name the same primary; the state machine exists, is ACTIVE and
// of the STANDARD type (redrive and execution names rely on it), and this function may
// describe it; every configured ECS service exists and is ACTIVE. Every problem found is
// listed in one *RotationMisconfigured.
func (r *Rotator) CheckConfiguration(ctx context.Context, arn string) error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	if v, err := r.stages(ctx, arn); err != nil {
		add("app secret: %v", err)
	} else if current := v.Current(); current == "" {
		add("app secret: no version is AWSCURRENT")
	} else if app, err := r.Secrets.AppSecret(ctx, arn, current); err != nil {
		add("app secret AWSCURRENT: %v", err)
	} else if admin, err := r.Secrets.AdminSecret(ctx, app.MasterARN); err != nil {
		add("admin secret (masterarn): %v", err)
	} else if err := workflow.ValidatePair(app, admin); err != nil {
		add("app and admin secrets: %v", err)
	}

	// https://docs.aws.amazon.com/step-functions/latest/apireference/API_DescribeStateMachine.html
	if r.Config.StateMachineARN == "" {
		add("no state machine ARN configured")
	} else if sm, err := r.SFN.DescribeStateMachine(ctx, &sfn.DescribeStateMachineInput{StateMachineArn: aws.String(r.Config.StateMachineARN)}); err != nil {
		add("state machine %s: %v", r.Config.StateMachineARN, err)
	} else {
		if sm.Status != types.StateMachineStatusActive {
			add("state machine %s is %s, not ACTIVE", r.Config.StateMachineARN, sm.Status)
		}
		if sm.Type != types.StateMachineTypeStandard {
			add("state machine %s is of type %s, not STANDARD", r.Config.StateMachineARN, sm.Type)
		}
	}

	for _, svc := range r.Config.Services {
		if r.ECS == nil {
			add("service %s: no ECS client configured", svc)
			continue
		}
		if err := r.ECS.CheckService(ctx, svc); err != nil {
			add("service %s: %v", svc, err)
		}
	}
	if len(problems) > 0 {
		return &RotationMisconfigured{Secret: arn, Problems: problems}
	}
	return nil
}
