// Package byo is the bring-your-own stack: pgrotate's rotation attached to an existing
// database, secrets, VPC and ECS services, all named by CDK context values. It makes no
// lookups, so `cdk synth` works offline and without AWS credentials; the stack is deployed
// to the account and region of the app secret's ARN.
package byo

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/pgrotate/pgrotate/cdk/rotation"
	"github.com/pgrotate/pgrotate/workflow"
)

// Context keys. Lists are comma-separated strings (-c key=a,b) or JSON lists in cdk.json.
const (
	KeyAppSecretArn       = "appSecretArn"       // required: complete ARN (with the 6-character suffix)
	KeyAdminSecretArn     = "adminSecretArn"     // required: complete ARN
	KeyVpcID              = "vpcId"              // required
	KeyAvailabilityZones  = "availabilityZones"  // required: the AZs of SubnetIDs
	KeySubnetIDs          = "subnetIds"          // required: private subnets that reach the database
	KeySecurityGroupID    = "securityGroupId"    // required: the database admits it
	KeyServices           = "services"           // required: cluster/service, …
	KeyReplicas           = "replicas"           // optional: host[:port], …
	KeyKMSKeyArn          = "kmsKeyArn"          // optional: the secrets' customer managed key
	KeyMaxPasswordAgeDays = "maxPasswordAgeDays" // optional: default 90 (rotates every 45 days)
	KeyPasswordLength     = "passwordLength"     // optional: default 32
	KeyExcludeCharacters  = "excludeCharacters"  // optional: default :/@"'\ and space
	KeyAlarmTopicArn      = "alarmTopicArn"      // optional: default a new encrypted topic
	KeyStateMachineName   = "stateMachineName"   // optional: default derived from the stack
	KeyCABundle           = "caBundle"           // optional: local PEM file for the database's CA
	KeyStackName          = "stackName"          // optional: default "Pgrotate"
)

// DefaultStackName is the stack's id when KeyStackName is not set.
const DefaultStackName = "Pgrotate"

var (
	required = []string{KeyAppSecretArn, KeyAdminSecretArn, KeyVpcID, KeyAvailabilityZones, KeySubnetIDs,
		KeySecurityGroupID, KeyServices}
	optional = []string{KeyReplicas, KeyKMSKeyArn, KeyMaxPasswordAgeDays, KeyPasswordLength, KeyExcludeCharacters,
		KeyAlarmTopicArn, KeyStateMachineName, KeyCABundle, KeyStackName}
)

// Keys returns every context key of the stack, required ones first.
func Keys() []string { return append(RequiredKeys(), optional...) }

// RequiredKeys returns the context keys the stack cannot do without.
func RequiredKeys() []string { return append([]string{}, required...) }

// Config is the stack's configuration.
type Config struct {
	StackName          string
	AppSecretArn       string
	AdminSecretArn     string
	KMSKeyArn          string
	VpcID              string
	AvailabilityZones  []string
	SubnetIDs          []string
	SecurityGroupID    string
	Services           []workflow.Service
	Replicas           []workflow.Endpoint
	MaxPasswordAgeDays int
	PasswordLength     int
	ExcludeCharacters  string
	AlarmTopicArn      string
	StateMachineName   string
	CABundleFile       string
	// AssetDir is the app-wide Lambda asset directory (see rotation.Props.AssetDir).
	AssetDir string
	// Account and Region come from AppSecretArn.
	Account, Region string
}

// Requested reports whether any of the stack's required context keys is set: then the
// stack is wanted, and ConfigFromContext reports what is missing. (Optional keys such as
// caBundle may be meant for the reference stack.)
func Requested(lookup func(string) any) bool {
	for _, k := range required {
		if lookup(k) != nil {
			return true
		}
	}
	return false
}

// ErrMissingContext is wrapped by ConfigFromContext's error when required keys are unset.
var ErrMissingContext = errors.New("missing context")

var completeSecretArn = regexp.MustCompile(`^arn:(aws[a-z-]*):secretsmanager:([a-z0-9-]+):(\d{12}):secret:.+-[A-Za-z0-9]{6}$`)

// ConfigFromContext reads the configuration through lookup (the app node's TryGetContext).
// It reports every missing key, with all of the required ones listed, then every invalid value.
func ConfigFromContext(lookup func(string) any) (Config, error) {
	if err := checkRequired(lookup); err != nil {
		return Config{}, err
	}
	r := &contextReader{lookup: lookup}
	c := r.config()
	r.checkSecretArns(&c)
	r.checkIDs(c)
	c.Services = r.services()
	c.Replicas = r.replicas()
	return c, errors.Join(r.errs...)
}

// checkRequired names every required key that is unset or empty.
func checkRequired(lookup func(string) any) error {
	var missing []string
	for _, k := range required {
		if v := lookup(k); v == nil || fmt.Sprint(v) == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("bring-your-own stack: %w: %s (required: %s; set them with -c key=value or in cdk.json, see cdk/README.md)",
			ErrMissingContext, strings.Join(missing, ", "), strings.Join(required, ", "))
	}
	return nil
}

// contextReader reads context values and collects every invalid one.
type contextReader struct {
	lookup func(string) any
	errs   []error
}

func (r *contextReader) bad(key, format string, args ...any) {
	r.errs = append(r.errs, fmt.Errorf("context %s: "+format, append([]any{key}, args...)...))
}

// str is the value of key, trimmed; "" when unset.
func (r *contextReader) str(key string) string {
	if v := r.lookup(key); v != nil {
		return strings.TrimSpace(fmt.Sprint(v))
	}
	return ""
}

// num is the positive whole number at key; 0 when unset.
func (r *contextReader) num(key string) int {
	s := r.str(key)
	if s == "" {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		r.bad(key, "%q is not a positive whole number", s)
	}
	return n
}

// config reads the plain values, with the defaults that need no checking.
func (r *contextReader) config() Config {
	c := Config{
		StackName:          r.str(KeyStackName),
		AppSecretArn:       r.str(KeyAppSecretArn),
		AdminSecretArn:     r.str(KeyAdminSecretArn),
		KMSKeyArn:          r.str(KeyKMSKeyArn),
		VpcID:              r.str(KeyVpcID),
		AvailabilityZones:  list(r.lookup(KeyAvailabilityZones)),
		SubnetIDs:          list(r.lookup(KeySubnetIDs)),
		SecurityGroupID:    r.str(KeySecurityGroupID),
		MaxPasswordAgeDays: r.num(KeyMaxPasswordAgeDays),
		PasswordLength:     r.num(KeyPasswordLength),
		AlarmTopicArn:      r.str(KeyAlarmTopicArn),
		StateMachineName:   r.str(KeyStateMachineName),
		CABundleFile:       r.str(KeyCABundle),
	}
	if v := r.lookup(KeyExcludeCharacters); v != nil {
		c.ExcludeCharacters = fmt.Sprint(v) // spaces are characters to exclude here
	}
	if c.StackName == "" {
		c.StackName = DefaultStackName
	}
	return c
}

// checkSecretArns requires complete secret ARNs, both in one account and region, and takes
// the stack's account and region from the app secret's.
func (r *contextReader) checkSecretArns(c *Config) {
	appArn := completeSecretArn.FindStringSubmatch(c.AppSecretArn)
	if appArn == nil {
		r.bad(KeyAppSecretArn, "%q is not a complete Secrets Manager secret ARN (arn:…:secret:name-AbCdEf)", c.AppSecretArn)
	} else {
		c.Region, c.Account = appArn[2], appArn[3]
	}
	if adm := completeSecretArn.FindStringSubmatch(c.AdminSecretArn); adm == nil {
		r.bad(KeyAdminSecretArn, "%q is not a complete Secrets Manager secret ARN", c.AdminSecretArn)
	} else if appArn != nil && (adm[2] != c.Region || adm[3] != c.Account) {
		r.bad(KeyAdminSecretArn, "must be in the app secret's account and region (%s, %s)", c.Account, c.Region)
	}
}

// checkIDs checks the shape of the ARNs and resource ids, and that the subnets spread evenly
// over the availability zones.
func (r *contextReader) checkIDs(c Config) {
	for _, id := range []struct {
		key, value, prefix, what string
		optional                 bool
	}{
		{KeyKMSKeyArn, c.KMSKeyArn, "arn:", "a KMS key ARN", true},
		{KeyAlarmTopicArn, c.AlarmTopicArn, "arn:", "an SNS topic ARN", true},
		{KeyVpcID, c.VpcID, "vpc-", "a VPC id", false},
		{KeySecurityGroupID, c.SecurityGroupID, "sg-", "a security group id", false},
	} {
		if (id.value != "" || !id.optional) && !strings.HasPrefix(id.value, id.prefix) {
			r.bad(id.key, "%q is not %s", id.value, id.what)
		}
	}
	for _, s := range c.SubnetIDs {
		if !strings.HasPrefix(s, "subnet-") {
			r.bad(KeySubnetIDs, "%q is not a subnet id", s)
		}
	}
	if n := len(c.AvailabilityZones); n == 0 || len(c.SubnetIDs)%n != 0 {
		r.bad(KeySubnetIDs, "%d subnets for %d availability zones: give the same number of subnets in each zone, in zone order",
			len(c.SubnetIDs), len(c.AvailabilityZones))
	}
}

// services reads the cluster/service list.
func (r *contextReader) services() []workflow.Service {
	var out []workflow.Service
	for _, s := range list(r.lookup(KeyServices)) {
		cluster, service, ok := strings.Cut(s, "/")
		if !ok || cluster == "" || service == "" || strings.Contains(service, "/") {
			r.bad(KeyServices, "%q is not cluster/service", s)
			continue
		}
		out = append(out, workflow.Service{Cluster: cluster, Service: service})
	}
	return out
}

// replicas reads the host[:port] list; the port defaults to 5432.
func (r *contextReader) replicas() []workflow.Endpoint {
	var out []workflow.Endpoint
	for _, s := range list(r.lookup(KeyReplicas)) {
		host, port := s, "5432"
		if h, p, err := net.SplitHostPort(s); err == nil {
			host, port = h, p
		}
		n, err := strconv.Atoi(port)
		if err != nil || host == "" || n < 1 || n > 65535 {
			r.bad(KeyReplicas, "%q is not host[:port]", s)
			continue
		}
		out = append(out, workflow.Endpoint{Host: host, Port: n})
	}
	return out
}

// list reads a context list: a JSON list, or a comma-separated string.
func list(v any) []string {
	var raw []string
	switch v := v.(type) {
	case nil:
		return nil
	case []any:
		for _, x := range v {
			raw = append(raw, fmt.Sprint(x))
		}
	default:
		raw = strings.Split(fmt.Sprint(v), ",")
	}
	var out []string
	for _, s := range raw {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// NewStack builds the stack from cfg (see ConfigFromContext). It panics, as constructs do,
// when the rotation props are invalid.
func NewStack(scope constructs.Construct, cfg Config) awscdk.Stack {
	stack := awscdk.NewStack(scope, jsii.String(cfg.StackName), &awscdk.StackProps{
		Env:         &awscdk.Environment{Account: jsii.String(cfg.Account), Region: jsii.String(cfg.Region)},
		Description: jsii.String("pgrotate: zero-downtime alternating-users rotation of an existing RDS PostgreSQL app secret"),
	})
	var key awskms.IKey
	if cfg.KMSKeyArn != "" {
		key = awskms.Key_FromKeyArn(stack, jsii.String("SecretsKey"), jsii.String(cfg.KMSKeyArn))
	}
	secret := func(id, arn string) awssecretsmanager.ISecret {
		return awssecretsmanager.Secret_FromSecretAttributes(stack, jsii.String(id), &awssecretsmanager.SecretAttributes{
			SecretCompleteArn: jsii.String(arn), EncryptionKey: key})
	}
	vpc := awsec2.Vpc_FromVpcAttributes(stack, jsii.String("Vpc"), &awsec2.VpcAttributes{
		VpcId:             jsii.String(cfg.VpcID),
		AvailabilityZones: jsii.Strings(cfg.AvailabilityZones...),
		PrivateSubnetIds:  jsii.Strings(cfg.SubnetIDs...),
	})
	// The subnets only place the Lambdas; nothing reads their route tables.
	awscdk.Annotations_Of(vpc).AcknowledgeWarning(jsii.String("@aws-cdk/aws-ec2:noSubnetRouteTableId"),
		jsii.String("the imported subnets only place the rotation Lambdas; their route tables are not used"))
	props := rotation.Props{
		AppSecret:         secret("AppSecret", cfg.AppSecretArn),
		AdminSecret:       secret("AdminSecret", cfg.AdminSecretArn),
		EncryptionKey:     key,
		Vpc:               vpc,
		Subnets:           &awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PRIVATE_WITH_EGRESS},
		SecurityGroup:     awsec2.SecurityGroup_FromSecurityGroupId(stack, jsii.String("SecurityGroup"), jsii.String(cfg.SecurityGroupID), nil),
		Replicas:          cfg.Replicas,
		Services:          cfg.Services,
		PasswordLength:    cfg.PasswordLength,
		ExcludeCharacters: cfg.ExcludeCharacters,
		StateMachineName:  cfg.StateMachineName,
		CABundleFile:      cfg.CABundleFile,
		AssetDir:          cfg.AssetDir,
	}
	if cfg.MaxPasswordAgeDays > 0 {
		props.MaxPasswordAge = awscdk.Duration_Days(jsii.Number(float64(cfg.MaxPasswordAgeDays)))
	}
	if cfg.AlarmTopicArn != "" {
		props.AlarmTopic = awssns.Topic_FromTopicArn(stack, jsii.String("AlarmTopic"), jsii.String(cfg.AlarmTopicArn))
	}
	r := rotation.New(stack, "Rotation", props)
	outputs := map[string]*string{"StateMachineArn": r.StateMachineArn, "AlarmTopicArn": r.Topic.TopicArn()}
	names := make([]string, 0, len(outputs))
	for n := range outputs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		awscdk.NewCfnOutput(stack, jsii.String(n), &awscdk.CfnOutputProps{Value: outputs[n]})
	}
	return stack
}
