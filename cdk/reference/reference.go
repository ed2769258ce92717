// Package reference is the reference stack: the whole pgrotate design, end to end. A VPC,
// a KMS key, admin and app secrets whose passwords CloudFormation generates (never in the
// template), an RDS PostgreSQL primary with a self-managed master password and a read
// replica, the sample app (examples/app) on ECS Fargate behind an internal ALB, and the
// rotation construct wired to all of it. Its bootstrap custom resource creates app_user with
// the app secret's password before the app's service starts, so one deployment is enough.
package reference

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecr"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecs"
	elb "github.com/aws/aws-cdk-go/awscdk/v2/awselasticloadbalancingv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsrds"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/pgrotate/pgrotate/cdk/rotation"
	"github.com/pgrotate/pgrotate/workflow"
)

// Names and numbers of the reference deployment.
const (
	DBPort        = 5432
	DBName        = "app"
	AdminUsername = "dbadmin"
	AppUsername   = "app_user"
	// DefaultAppDesiredCount is the sample app's task count unless Props says otherwise.
	DefaultAppDesiredCount = 2
	appPort                = 8080
	appContainer           = "app"
	// The ALB waits this long for in-flight requests of a deregistered task before ECS
	// sends SIGTERM; the app then drains for up to drainTimeout, and ECS kills it only after
	// stopTimeout, so stopTimeout > drainTimeout.
	deregistrationDelaySeconds = 30
	drainTimeoutSeconds        = 30
	stopTimeoutSeconds         = 60
)

// Props configure the reference stack. The zero value of every field but StackProps'
// region has a working default.
type Props struct {
	awscdk.StackProps
	// AppImage is the sample app's image URI. When empty the image is AppRepository:AppImageTag
	// in this account's ECR (push examples/app there first).
	AppImage      string
	AppRepository string // default "pgrotate-example-app"
	AppImageTag   string // default "latest"
	// AppDesiredCount is the app's task count (nil: DefaultAppDesiredCount). The service is
	// created after the bootstrap custom resource has created app_user, whose login its
	// health check needs.
	AppDesiredCount *int
	// AppSSLRootCert is the CA bundle's path inside the app image (DB_SSLROOTCERT), e.g. the
	// RDS global bundle; empty means the image's system roots.
	AppSSLRootCert string
	// InstanceType of the primary and the replica (default t4g.small).
	InstanceType string
	// DeletionProtection of the database instances (default on: nil means true).
	DeletionProtection *bool
	// Rotation settings passed to the construct (see rotation.Props).
	MaxPasswordAge awscdk.Duration
	AssetDir       string
	CABundleFile   string
}

// Stack is the deployed reference design; the fields are there for tests and outputs.
type Stack struct {
	Stack       awscdk.Stack
	Key         awskms.Key
	Vpc         awsec2.Vpc
	AdminSecret awssecretsmanager.Secret
	AppSecret   awssecretsmanager.Secret
	Primary     awsrds.DatabaseInstance
	Replica     awsrds.DatabaseInstanceReadReplica
	Cluster     awsecs.Cluster
	Service     awsecs.FargateService
	TargetGroup elb.ApplicationTargetGroup
	Rotation    *rotation.Rotation
	// Bootstrap creates app_user from the app secret before the app's service starts.
	Bootstrap *rotation.Bootstrap

	dbSG, rotationSG, appSG awsec2.SecurityGroup
	endpointSG              awsec2.SecurityGroup
	secretsEndpoint         awsec2.InterfaceVpcEndpoint
	task                    awsecs.FargateTaskDefinition
	accessLogs              awss3.Bucket
	fromECR                 bool
}

// NewStack builds the reference stack. It panics when the stack has no region: ALB access
// logging needs one (pass it in StackProps.Env).
func NewStack(scope constructs.Construct, id string, props Props) *Stack {
	p := props
	if p.AppRepository == "" {
		p.AppRepository = "pgrotate-example-app"
	}
	if p.AppImageTag == "" {
		p.AppImageTag = "latest"
	}
	if p.AppDesiredCount == nil {
		n := DefaultAppDesiredCount
		p.AppDesiredCount = &n
	}
	if *p.AppDesiredCount < 0 {
		panic(fmt.Sprintf("reference stack %s: AppDesiredCount %d is negative", id, *p.AppDesiredCount))
	}
	if p.InstanceType == "" {
		p.InstanceType = "t4g.small"
	}
	if p.DeletionProtection == nil {
		p.DeletionProtection = jsii.Bool(true)
	}
	if p.Description == nil {
		p.Description = jsii.String("pgrotate reference: RDS PostgreSQL with a read replica, an ECS app, and zero-downtime alternating-users rotation")
	}
	stack := awscdk.NewStack(scope, jsii.String(id), &p.StackProps)
	if *awscdk.Token_IsUnresolved(stack.Region()) {
		panic(fmt.Sprintf("reference stack %s: a region is required (ALB access logs); set -c region=… or AWS_REGION", id))
	}
	s := &Stack{Stack: stack}

	s.Key = awskms.NewKey(stack, jsii.String("Key"), &awskms.KeyProps{
		Description:       jsii.String("pgrotate reference: encrypts the database and its secrets"),
		EnableKeyRotation: jsii.Bool(true),
	})
	s.network()
	s.database(p)
	s.app(p)

	s.Rotation = rotation.New(stack, "Rotation", rotation.Props{
		AppSecret:         s.AppSecret,
		AdminSecret:       s.AdminSecret,
		EncryptionKey:     s.Key,
		Vpc:               s.Vpc,
		Subnets:           &awsec2.SubnetSelection{SubnetGroupName: jsii.String(subnetApp)},
		SecurityGroup:     s.rotationSG,
		Replicas:          []workflow.Endpoint{{Host: *s.Replica.DbInstanceEndpointAddress(), Port: DBPort}},
		Services:          []workflow.Service{{Cluster: *s.Cluster.ClusterName(), Service: *s.Service.ServiceName()}},
		ServiceConstructs: []constructs.IDependable{s.Service},
		MaxPasswordAge:    p.MaxPasswordAge,
		AssetDir:          p.AssetDir,
		CABundleFile:      p.CABundleFile,
		Bootstrap:         true,
	})
	s.bootstrap()

	outputs := []struct {
		name  string
		value *string
	}{
		{"AppSecretArn", s.AppSecret.SecretArn()},
		{"AdminSecretArn", s.AdminSecret.SecretArn()},
		{"PrimaryHost", s.Primary.DbInstanceEndpointAddress()},
		{"ReplicaHost", s.Replica.DbInstanceEndpointAddress()},
		{"StateMachineArn", s.Rotation.StateMachineArn},
		{"AlarmTopicArn", s.Rotation.Topic.TopicArn()},
		{"ClusterName", s.Cluster.ClusterName()},
		{"ServiceName", s.Service.ServiceName()},
	}
	for _, o := range outputs {
		awscdk.NewCfnOutput(stack, jsii.String(o.name), &awscdk.CfnOutputProps{Value: o.value})
	}
	s.suppressNag()
	return s
}

// bootstrap orders the custom resource that creates app_user: after the database instances,
// the admin secret's attachment to the primary (which writes its host and port: the handler
// checks it names the app secret's primary) and the network paths of its function (the
// database's and the Secrets Manager endpoint's security group rules, which are resources of
// their own, and the endpoint); and before the app's service, whose tasks log in as
// app_user from their first health check.
func (s *Stack) bootstrap() {
	s.Bootstrap = s.Rotation.Bootstrap
	s.Bootstrap.Resource.Node().AddDependency(s.Primary, s.Replica, s.Primary.Secret(), s.dbSG, s.endpointSG, s.secretsEndpoint)
	s.Service.Node().AddDependency(s.Bootstrap.Resource)
}

// Subnet groups: the ALB, app tasks and rotation Lambdas in "app" (egress through NAT for
// the ECS, ECR and Step Functions APIs); the database in "db", with no route out.
const (
	subnetPublic = "public"
	subnetApp    = "app"
	subnetDB     = "db"
	vpcCIDR      = "10.20.0.0/16"
)

func (s *Stack) network() {
	s.Vpc = awsec2.NewVpc(s.Stack, jsii.String("Vpc"), &awsec2.VpcProps{
		IpAddresses: awsec2.IpAddresses_Cidr(jsii.String(vpcCIDR)),
		MaxAzs:      jsii.Number(2),
		NatGateways: jsii.Number(1),
		SubnetConfiguration: &[]*awsec2.SubnetConfiguration{
			{Name: jsii.String(subnetPublic), SubnetType: awsec2.SubnetType_PUBLIC, CidrMask: jsii.Number(24)},
			{Name: jsii.String(subnetApp), SubnetType: awsec2.SubnetType_PRIVATE_WITH_EGRESS, CidrMask: jsii.Number(22)},
			{Name: jsii.String(subnetDB), SubnetType: awsec2.SubnetType_PRIVATE_ISOLATED, CidrMask: jsii.Number(24)},
		},
	})
	flowLogs := awslogs.NewLogGroup(s.Stack, jsii.String("FlowLogs"), &awslogs.LogGroupProps{
		Retention: awslogs.RetentionDays_ONE_YEAR,
	})
	s.Vpc.AddFlowLog(jsii.String("FlowLog"), &awsec2.FlowLogOptions{
		Destination: awsec2.FlowLogDestination_ToCloudWatchLogs(flowLogs, nil),
		TrafficType: awsec2.FlowLogTrafficType_ALL,
	})
	s.dbSG = awsec2.NewSecurityGroup(s.Stack, jsii.String("DatabaseSg"), &awsec2.SecurityGroupProps{
		Vpc: s.Vpc, Description: jsii.String("pgrotate reference: PostgreSQL, from the app and the rotation Lambdas only"),
		AllowAllOutbound: jsii.Bool(false),
	})
	s.rotationSG = awsec2.NewSecurityGroup(s.Stack, jsii.String("RotationSg"), &awsec2.SecurityGroupProps{
		Vpc: s.Vpc, Description: jsii.String("pgrotate reference: rotation Lambdas that log in to the database"),
		AllowAllOutbound: jsii.Bool(true),
	})
	s.appSG = awsec2.NewSecurityGroup(s.Stack, jsii.String("AppSg"), &awsec2.SecurityGroupProps{
		Vpc: s.Vpc, Description: jsii.String("pgrotate reference: tasks of the sample app"),
		AllowAllOutbound: jsii.Bool(true),
	})
	for _, from := range []awsec2.ISecurityGroup{s.rotationSG, s.appSG} {
		s.dbSG.AddIngressRule(from, awsec2.Port_Tcp(jsii.Number(DBPort)), jsii.String("PostgreSQL"), nil)
	}

	// The rotation Lambdas reach Secrets Manager privately, and so does the ECS agent that
	// injects the app secret into the tasks (through the tasks' network interfaces).
	s.endpointSG = awsec2.NewSecurityGroup(s.Stack, jsii.String("SecretsManagerEndpointSg"), &awsec2.SecurityGroupProps{
		Vpc: s.Vpc, Description: jsii.String("pgrotate reference: Secrets Manager endpoint, HTTPS from the rotation Lambdas and app tasks"),
		AllowAllOutbound: jsii.Bool(false),
	})
	for _, from := range []awsec2.ISecurityGroup{s.rotationSG, s.appSG} {
		s.endpointSG.AddIngressRule(from, awsec2.Port_Tcp(jsii.Number(443)), jsii.String("HTTPS to Secrets Manager"), nil)
	}
	s.secretsEndpoint = s.Vpc.AddInterfaceEndpoint(jsii.String("SecretsManager"), &awsec2.InterfaceVpcEndpointOptions{
		Service:           awsec2.InterfaceVpcEndpointAwsService_SECRETS_MANAGER(),
		Subnets:           &awsec2.SubnetSelection{SubnetGroupName: jsii.String(subnetApp)},
		PrivateDnsEnabled: jsii.Bool(true),
		SecurityGroups:    &[]awsec2.ISecurityGroup{s.endpointSG},
		Open:              jsii.Bool(false),
	})
}

func (s *Stack) database(p Props) {
	excluded := rotation.DefaultExcludeCharacters
	s.AdminSecret = awssecretsmanager.NewSecret(s.Stack, jsii.String("AdminSecret"), &awssecretsmanager.SecretProps{
		Description:   jsii.String("pgrotate reference: database administrator (rotation code only, never the app)"),
		EncryptionKey: s.Key,
		GenerateSecretString: &awssecretsmanager.SecretStringGenerator{
			SecretStringTemplate: s.Stack.ToJsonString(map[string]interface{}{
				"engine": "postgres", "username": AdminUsername, "dbname": "postgres", "port": DBPort,
			}, nil),
			GenerateStringKey: jsii.String("password"),
			PasswordLength:    jsii.Number(rotation.DefaultPasswordLength),
			ExcludeCharacters: jsii.String(excluded),
		},
	})

	engine := awsrds.DatabaseInstanceEngine_Postgres(&awsrds.PostgresInstanceEngineProps{
		Version: awsrds.PostgresEngineVersion_VER_17()})
	params := awsrds.NewParameterGroup(s.Stack, jsii.String("Parameters"), &awsrds.ParameterGroupProps{
		Engine:      engine,
		Description: jsii.String("pgrotate reference: TLS only, SCRAM passwords"),
		Parameters: &map[string]*string{
			"rds.force_ssl":       jsii.String("1"),
			"password_encryption": jsii.String("scram-sha-256"),
		},
	})
	instanceType := awsec2.NewInstanceType(jsii.String(p.InstanceType))
	dbSubnets := &awsec2.SubnetSelection{SubnetGroupName: jsii.String(subnetDB)}

	s.Primary = awsrds.NewDatabaseInstance(s.Stack, jsii.String("Primary"), &awsrds.DatabaseInstanceProps{
		Engine:         engine,
		InstanceType:   instanceType,
		Vpc:            s.Vpc,
		VpcSubnets:     dbSubnets,
		SecurityGroups: &[]awsec2.ISecurityGroup{s.dbSG},
		Port:           jsii.Number(DBPort),
		DatabaseName:   jsii.String(DBName),
		// The master user is the admin secret's, self-managed: RDS-managed master passwords
		// rule out PostgreSQL read replicas. CloudFormation resolves the password from the
		// secret at deploy time; the template holds only the reference.
		Credentials:             awsrds.Credentials_FromSecret(s.AdminSecret, nil),
		ParameterGroup:          params,
		AllocatedStorage:        jsii.Number(20),
		StorageType:             awsrds.StorageType_GP3,
		StorageEncrypted:        jsii.Bool(true),
		StorageEncryptionKey:    s.Key,
		MultiAz:                 jsii.Bool(true),
		BackupRetention:         awscdk.Duration_Days(jsii.Number(7)),
		DeletionProtection:      p.DeletionProtection,
		IamAuthentication:       jsii.Bool(true),
		AutoMinorVersionUpgrade: jsii.Bool(true),
	})
	// Say so in the template too, not only by omission.
	s.Primary.Node().DefaultChild().(awsrds.CfnDBInstance).SetManageMasterUserPassword(jsii.Bool(false))

	s.Replica = awsrds.NewDatabaseInstanceReadReplica(s.Stack, jsii.String("Replica"), &awsrds.DatabaseInstanceReadReplicaProps{
		SourceDatabaseInstance: s.Primary,
		InstanceType:           instanceType,
		Vpc:                    s.Vpc,
		VpcSubnets:             dbSubnets,
		SecurityGroups:         &[]awsec2.ISecurityGroup{s.dbSG},
		Port:                   jsii.Number(DBPort),
		ParameterGroup:         params,
		// Encryption and its key are inherited from the primary.
		StorageType:             awsrds.StorageType_GP3,
		DeletionProtection:      p.DeletionProtection,
		IamAuthentication:       jsii.Bool(true),
		AutoMinorVersionUpgrade: jsii.Bool(true),
	})

	// The app secret's JSON is built from tokens (endpoints, the admin secret's ARN);
	// CloudFormation adds the generated password under "password".
	s.AppSecret = awssecretsmanager.NewSecret(s.Stack, jsii.String("AppSecret"), &awssecretsmanager.SecretProps{
		Description:   jsii.String("pgrotate reference: the app's database login, rotated with alternating users"),
		EncryptionKey: s.Key,
		GenerateSecretString: &awssecretsmanager.SecretStringGenerator{
			SecretStringTemplate: s.Stack.ToJsonString(map[string]interface{}{
				"engine":    "postgres",
				"host":      s.Primary.DbInstanceEndpointAddress(),
				"port":      DBPort,
				"dbname":    DBName,
				"username":  AppUsername,
				"masterarn": s.AdminSecret.SecretArn(),
				"replicas":  []map[string]interface{}{{"host": s.Replica.DbInstanceEndpointAddress(), "port": DBPort}},
				"sslmode":   "verify-full",
			}, nil),
			GenerateStringKey: jsii.String("password"),
			PasswordLength:    jsii.Number(rotation.DefaultPasswordLength),
			ExcludeCharacters: jsii.String(excluded),
		},
	})
}

func (s *Stack) app(p Props) {
	s.Cluster = awsecs.NewCluster(s.Stack, jsii.String("Cluster"), &awsecs.ClusterProps{
		Vpc:                 s.Vpc,
		ContainerInsightsV2: awsecs.ContainerInsights_ENABLED,
	})
	s.task = awsecs.NewFargateTaskDefinition(s.Stack, jsii.String("AppTask"), &awsecs.FargateTaskDefinitionProps{
		Cpu:            jsii.Number(256),
		MemoryLimitMiB: jsii.Number(512),
		RuntimePlatform: &awsecs.RuntimePlatform{
			CpuArchitecture:       awsecs.CpuArchitecture_ARM64(),
			OperatingSystemFamily: awsecs.OperatingSystemFamily_LINUX(),
		},
	})
	image := awsecs.ContainerImage_FromRegistry(jsii.String(p.AppImage), nil)
	if p.AppImage == "" {
		repo := awsecr.Repository_FromRepositoryName(s.Stack, jsii.String("AppRepository"), jsii.String(p.AppRepository))
		image = awsecs.ContainerImage_FromEcrRepository(repo, jsii.String(p.AppImageTag))
		s.fromECR = true
	}
	logs := awslogs.NewLogGroup(s.Stack, jsii.String("AppLogs"), &awslogs.LogGroupProps{
		Retention: awslogs.RetentionDays_ONE_YEAR,
	})
	// ECS reads the secret once, when a task starts: a rotation reaches the app through the
	// forced redeploy. Each JSON key becomes one variable.
	fromSecret := func(key string) awsecs.Secret {
		return awsecs.Secret_FromSecretsManager(s.AppSecret, jsii.String(key))
	}
	env := map[string]*string{
		"DB_REPLICA_HOST": s.Replica.DbInstanceEndpointAddress(),
		"DB_REPLICA_PORT": jsii.String(fmt.Sprint(DBPort)),
		"DB_SSLMODE":      jsii.String("verify-full"),
		"LISTEN_ADDR":     jsii.String(fmt.Sprintf(":%d", appPort)),
		"DRAIN_TIMEOUT":   jsii.String(fmt.Sprintf("%ds", drainTimeoutSeconds)),
	}
	if p.AppSSLRootCert != "" {
		env["DB_SSLROOTCERT"] = jsii.String(p.AppSSLRootCert)
	}
	s.task.AddContainer(jsii.String(appContainer), &awsecs.ContainerDefinitionOptions{
		Image:        image,
		Logging:      awsecs.LogDriver_AwsLogs(&awsecs.AwsLogDriverProps{StreamPrefix: jsii.String("app"), LogGroup: logs}),
		PortMappings: &[]*awsecs.PortMapping{{ContainerPort: jsii.Number(appPort)}},
		Secrets: &map[string]awsecs.Secret{
			"DB_HOST":     fromSecret("host"),
			"DB_PORT":     fromSecret("port"),
			"DB_NAME":     fromSecret("dbname"),
			"DB_USER":     fromSecret("username"),
			"DB_PASSWORD": fromSecret("password"),
		},
		Environment: &env,
		StopTimeout: awscdk.Duration_Seconds(jsii.Number(stopTimeoutSeconds)),
	})

	appSubnets := &awsec2.SubnetSelection{SubnetGroupName: jsii.String(subnetApp)}
	s.Service = awsecs.NewFargateService(s.Stack, jsii.String("AppService"), &awsecs.FargateServiceProps{
		Cluster:        s.Cluster,
		TaskDefinition: s.task,
		DesiredCount:   jsii.Number(float64(*p.AppDesiredCount)),
		// New tasks are healthy before old ones stop; a failed deployment rolls back.
		MinHealthyPercent:      jsii.Number(100),
		MaxHealthyPercent:      jsii.Number(200),
		CircuitBreaker:         &awsecs.DeploymentCircuitBreaker{Enable: jsii.Bool(true), Rollback: jsii.Bool(true)},
		HealthCheckGracePeriod: awscdk.Duration_Seconds(jsii.Number(60)),
		VpcSubnets:             appSubnets,
		SecurityGroups:         &[]awsec2.ISecurityGroup{s.appSG},
	})

	albSG := awsec2.NewSecurityGroup(s.Stack, jsii.String("AlbSg"), &awsec2.SecurityGroupProps{
		Vpc: s.Vpc, Description: jsii.String("pgrotate reference: internal ALB, HTTP from inside the VPC"),
		AllowAllOutbound: jsii.Bool(false),
	})
	albSG.AddIngressRule(awsec2.Peer_Ipv4(jsii.String(vpcCIDR)), awsec2.Port_Tcp(jsii.Number(80)), jsii.String("HTTP from the VPC"), nil)
	alb := elb.NewApplicationLoadBalancer(s.Stack, jsii.String("Alb"), &elb.ApplicationLoadBalancerProps{
		Vpc:                     s.Vpc,
		InternetFacing:          jsii.Bool(false),
		VpcSubnets:              appSubnets,
		SecurityGroup:           albSG,
		DropInvalidHeaderFields: jsii.Bool(true),
	})
	s.accessLogs = awss3.NewBucket(s.Stack, jsii.String("AlbLogs"), &awss3.BucketProps{
		Encryption:        awss3.BucketEncryption_S3_MANAGED, // ALB access logs support SSE-S3 only
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		EnforceSSL:        jsii.Bool(true),
		ObjectOwnership:   awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		LifecycleRules:    &[]*awss3.LifecycleRule{{Expiration: awscdk.Duration_Days(jsii.Number(365))}},
	})
	alb.LogAccessLogs(s.accessLogs, jsii.String("alb"))
	listener := alb.AddListener(jsii.String("Http"), &elb.BaseApplicationListenerProps{
		Port: jsii.Number(80),
		Open: jsii.Bool(false),
	})
	s.TargetGroup = listener.AddTargets(jsii.String("App"), &elb.AddApplicationTargetsProps{
		Port:     jsii.Number(appPort),
		Protocol: elb.ApplicationProtocol_HTTP,
		Targets: &[]elb.IApplicationLoadBalancerTarget{s.Service.LoadBalancerTarget(&awsecs.LoadBalancerTargetOptions{
			ContainerName: jsii.String(appContainer), ContainerPort: jsii.Number(appPort)})},
		// /healthz logs in to the primary and the replica: only a task that can connect gets traffic.
		HealthCheck: &elb.HealthCheck{
			Path:                    jsii.String("/healthz"),
			Interval:                awscdk.Duration_Seconds(jsii.Number(10)),
			Timeout:                 awscdk.Duration_Seconds(jsii.Number(5)),
			HealthyThresholdCount:   jsii.Number(2),
			UnhealthyThresholdCount: jsii.Number(2),
		},
		DeregistrationDelay: awscdk.Duration_Seconds(jsii.Number(deregistrationDelaySeconds)),
	})
	awscdk.NewCfnOutput(s.Stack, jsii.String("AlbDnsName"), &awscdk.CfnOutputProps{Value: alb.LoadBalancerDnsName()})
}
