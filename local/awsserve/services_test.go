package awsserve

import (
	"errors"
	"github.com/pgrotate/pgrotate/internal/testctx"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"

	localecs "github.com/pgrotate/pgrotate/local/ecs"
	localsecrets "github.com/pgrotate/pgrotate/local/secrets"
)

func TestSecretsManagerOverTheWire(t *testing.T) {
	store := localsecrets.New(localsecrets.WithClock(func() time.Time { return t0 }))
	s := startServer(t, Options{SecretsManager: store})
	c := secretsmanager.NewFromConfig(sdkConfig(s.URL(), testAKID))
	ctx := testctx.Context(t)

	created, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: aws.String("app"), SecretString: aws.String(`{"password":"not-a-real-one"}`),
		ClientRequestToken: aws.String("11111111-1111-1111-1111-111111111111"),
	})
	if err != nil {
		t.Fatalf("CreateSecret: %v", err)
	}
	if aws.ToString(created.VersionId) != "11111111-1111-1111-1111-111111111111" || aws.ToString(created.ARN) == "" {
		t.Errorf("CreateSecret = version %q, ARN %q", aws.ToString(created.VersionId), aws.ToString(created.ARN))
	}
	_, err = c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId: created.ARN, SecretBinary: []byte{0, 1, 2, 0xff},
		ClientRequestToken: aws.String("22222222-2222-2222-2222-222222222222"), VersionStages: []string{"AWSPENDING"},
	})
	if err != nil {
		t.Fatalf("PutSecretValue: %v", err)
	}
	if _, err := c.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
		SecretId: aws.String("app"), VersionStage: aws.String("AWSCURRENT"),
		MoveToVersionId: aws.String("22222222-2222-2222-2222-222222222222"), RemoveFromVersionId: aws.String("11111111-1111-1111-1111-111111111111"),
	}); err != nil {
		t.Fatalf("UpdateSecretVersionStage: %v", err)
	}

	// Every read through the wire equals the model's own answer: values, timestamps
	// (CreatedDate is t0 to the millisecond), blobs, stage lists and maps.
	getIn := &secretsmanager.GetSecretValueInput{SecretId: aws.String("app")}
	wire, err := c.GetSecretValue(ctx, getIn)
	if err != nil {
		t.Fatalf("GetSecretValue: %v", err)
	}
	direct, err := store.GetSecretValue(ctx, getIn)
	if err != nil {
		t.Fatalf("store.GetSecretValue: %v", err)
	}
	sameOutput(t, "GetSecretValue", wire, direct)
	if wire.CreatedDate == nil || !wire.CreatedDate.Equal(t0) || len(wire.SecretBinary) != 4 {
		t.Errorf("GetSecretValue: CreatedDate %v (want %v), %d SecretBinary bytes (want 4)", wire.CreatedDate, t0, len(wire.SecretBinary))
	}
	descIn := &secretsmanager.DescribeSecretInput{SecretId: aws.String("app")}
	wireDesc, err := c.DescribeSecret(ctx, descIn)
	if err != nil {
		t.Fatalf("DescribeSecret: %v", err)
	}
	directDesc, _ := store.DescribeSecret(ctx, descIn)
	sameOutput(t, "DescribeSecret", wireDesc, directDesc)
	if len(wireDesc.VersionIdsToStages) != 2 {
		t.Errorf("DescribeSecret: VersionIdsToStages has %d versions, want 2", len(wireDesc.VersionIdsToStages))
	}

	// Pagination: the NextToken goes out and comes back.
	var ids []string
	p := secretsmanager.NewListSecretVersionIdsPaginator(c, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("app"), MaxResults: aws.Int32(1)})
	pages := 0
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("ListSecretVersionIds page %d: %v", pages, err)
		}
		pages++
		for _, v := range page.Versions {
			ids = append(ids, aws.ToString(v.VersionId))
		}
	}
	if pages != 2 || len(ids) != 2 {
		t.Errorf("ListSecretVersionIds: %d pages, versions %v; want 2 pages of 1", pages, ids)
	}

	pw, err := c.GetRandomPassword(ctx, &secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(24), ExcludePunctuation: aws.Bool(true)})
	if err != nil {
		t.Fatalf("GetRandomPassword: %v", err)
	}
	if n := len(aws.ToString(pw.RandomPassword)); n != 24 {
		t.Errorf("GetRandomPassword: length %d, want 24", n)
	}

	// Modelled errors arrive as the SDK's types.
	errTests := []struct {
		name  string
		call  func() error
		check func(error) bool
	}{
		{"ResourceNotFoundException", func() error {
			_, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("missing")})
			return err
		}, func(err error) bool {
			var e *smtypes.ResourceNotFoundException
			return errors.As(err, &e) && e.ErrorMessage() != ""
		}},
		{"ResourceExistsException", func() error {
			_, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("app")})
			return err
		}, func(err error) bool { var e *smtypes.ResourceExistsException; return errors.As(err, &e) }},
		{"InvalidParameterException", func() error {
			_, err := c.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("app"), MaxResults: aws.Int32(500)})
			return err
		}, func(err error) bool { var e *smtypes.InvalidParameterException; return errors.As(err, &e) }},
		{"InvalidNextTokenException", func() error {
			_, err := c.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("app"), NextToken: aws.String("x")})
			return err
		}, func(err error) bool { var e *smtypes.InvalidNextTokenException; return errors.As(err, &e) }},
		{"UnknownOperationException for an operation the model lacks", func() error {
			_, err := c.ListSecrets(ctx, &secretsmanager.ListSecretsInput{})
			return err
		}, func(err error) bool {
			var e smithy.APIError
			return errors.As(err, &e) && e.ErrorCode() == "UnknownOperationException"
		}},
	}
	for _, tc := range errTests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !tc.check(err) {
				t.Errorf("got %v (%T), want a %s", err, errors.Unwrap(err), tc.name)
			}
		})
	}
}

func TestECSOverTheWire(t *testing.T) {
	e := localecs.New(localecs.WithClock(func() time.Time { return t0 }), localecs.WithController(localecs.Manual{}))
	t.Cleanup(e.Close)
	if _, err := e.AddService("prod", "web", 3, t0.Add(-time.Hour)); err != nil {
		t.Fatalf("AddService: %v", err)
	}
	s := startServer(t, Options{ECS: e})
	c := ecs.NewFromConfig(sdkConfig(s.URL(), testAKID))
	ctx := testctx.Context(t)

	descIn := &ecs.DescribeServicesInput{Cluster: aws.String("prod"), Services: []string{"web"}}
	wire, err := c.DescribeServices(ctx, descIn)
	if err != nil {
		t.Fatalf("DescribeServices: %v", err)
	}
	direct, _ := e.DescribeServices(ctx, descIn)
	sameOutput(t, "DescribeServices", wire, direct)
	if len(wire.Services) != 1 || len(wire.Services[0].Deployments) != 1 ||
		wire.Services[0].Deployments[0].RolloutState != ecstypes.DeploymentRolloutStateCompleted {
		t.Fatalf("DescribeServices: want one service with one COMPLETED deployment")
	}

	var arns []string
	p := ecs.NewListTasksPaginator(c, &ecs.ListTasksInput{Cluster: aws.String("prod"), ServiceName: aws.String("web"), MaxResults: aws.Int32(2)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("ListTasks: %v", err)
		}
		arns = append(arns, page.TaskArns...)
	}
	if len(arns) != 3 {
		t.Fatalf("ListTasks over 2 pages: %d tasks, want 3", len(arns))
	}
	tasksIn := &ecs.DescribeTasksInput{Cluster: aws.String("prod"), Tasks: arns}
	wireTasks, err := c.DescribeTasks(ctx, tasksIn)
	if err != nil {
		t.Fatalf("DescribeTasks: %v", err)
	}
	directTasks, _ := e.DescribeTasks(ctx, tasksIn)
	sameOutput(t, "DescribeTasks", wireTasks, directTasks)

	up, err := c.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: aws.String("prod"), Service: aws.String("web"), ForceNewDeployment: true})
	if err != nil {
		t.Fatalf("UpdateService: %v", err)
	}
	if d := up.Service.Deployments; len(d) != 2 || d[0].RolloutState != ecstypes.DeploymentRolloutStateInProgress || !aws.ToTime(d[0].CreatedAt).Equal(t0) {
		t.Errorf("UpdateService: want a new IN_PROGRESS deployment created at %v first", t0)
	}

	errTests := []struct {
		name  string
		err   error
		check func(error) bool
	}{
		{"ClusterNotFoundException", func() error {
			_, err := c.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String("nope"), Services: []string{"web"}})
			return err
		}(), func(err error) bool { var e *ecstypes.ClusterNotFoundException; return errors.As(err, &e) }},
		{"ServiceNotFoundException", func() error {
			_, err := c.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: aws.String("prod"), Service: aws.String("nope")})
			return err
		}(), func(err error) bool { var e *ecstypes.ServiceNotFoundException; return errors.As(err, &e) }},
		{"InvalidParameterException", func() error {
			_, err := c.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String("prod"), NextToken: aws.String("x")})
			return err
		}(), func(err error) bool { var e *ecstypes.InvalidParameterException; return errors.As(err, &e) }},
	}
	for _, tc := range errTests {
		if !tc.check(tc.err) {
			t.Errorf("%s: got %v", tc.name, tc.err)
		}
	}
}
