// Package spec is the one list of pgrotate's Lambda functions, as data: each function's name
// (its cmd/<name> directory, Makefile LAMBDAS word and asset directory), the state machine
// placeholder of its ARN, the environment variables it reads and the rights its role needs.
// cmd/*, cdk/rotation and local/ read it; a test checks the Makefile, the ASL, the CDK
// functions and the local wiring against it. It imports nothing of the module, so the CDK
// reads it without compiling a handler or pgx.
package spec

import "slices"

// Function names.
const (
	Rotator       = "rotator"
	Preflight     = "preflight"
	CloneUser     = "cloneuser"
	SetPassword   = "setpassword"
	TestLogin     = "testlogin"
	CheckReplicas = "checkreplicas"
	Redeploy      = "redeploy"
	CheckRollout  = "checkrollout"
	// RetirePrevious runs only when retirement is on, but is always deployed: the
	// definition names it either way.
	RetirePrevious = "retireprevious"
	Rethrow        = "rethrow"
	Bootstrap      = "bootstrap"
	// Evidence is triggered by EventBridge, not by the state machine.
	Evidence = "evidence"
)

// Environment variables the functions read. Each function is given exactly the ones its
// Function.Env lists, and its constructor (package lambdas) reads them all.
const (
	EnvStateMachineARN   = "PGROTATE_STATE_MACHINE_ARN"
	EnvServices          = "PGROTATE_SERVICES"
	EnvPasswordLength    = "PGROTATE_PASSWORD_LENGTH"
	EnvExcludeCharacters = "PGROTATE_EXCLUDE_CHARACTERS"
	EnvCABundle          = "PGROTATE_CA_BUNDLE"
	EnvConnectTimeout    = "PGROTATE_CONNECT_TIMEOUT"
	EnvRolloutMaxChecks  = "PGROTATE_ROLLOUT_MAX_CHECKS"
	EnvReplicas          = "PGROTATE_REPLICAS"
	EnvEvidenceBucket    = "PGROTATE_EVIDENCE_BUCKET"
	EnvEvidencePrefix    = "PGROTATE_EVIDENCE_PREFIX"
	EnvVersion           = "PGROTATE_VERSION"
)

// Tags on the rotation function, set by cdk/rotation: the pgrotate CLI discovers a
// deployment from the app secret alone (DescribeSecret's RotationLambdaARN, then the
// function's tags through lambda:GetFunction).
const (
	// TagStateMachine is the rotation state machine's ARN.
	TagStateMachine = "pgrotate:state-machine"
	// TagPreflightFunction is the Preflight function's ARN (status invokes it in dry-run mode).
	TagPreflightFunction = "pgrotate:preflight-function"
	// TagEvidenceBucket and TagEvidencePrefix locate the evidence records; absent when the
	// deployment writes no evidence.
	TagEvidenceBucket = "pgrotate:evidence-bucket"
	TagEvidencePrefix = "pgrotate:evidence-prefix"
)

// Right is one thing a function's role may do beyond writing its own logs.
type Right string

// The rights. cdk/rotation turns each into IAM statements (or VPC placement).
const (
	// ReadAppSecret and ReadAdminSecret: secretsmanager:GetSecretValue (and kms:Decrypt via
	// Secrets Manager) on the secret.
	ReadAppSecret   Right = "read-app-secret"
	ReadAdminSecret Right = "read-admin-secret"
	// WriteAppSecret: the rotation function's rights, given by the rotation schedule.
	WriteAppSecret Right = "write-app-secret"
	// Database: the function runs in the database's VPC, with the CA bundle layer.
	Database Right = "database"
	// RunExecutions: start, follow, redrive and stop the state machine's executions, and
	// describe the state machine.
	RunExecutions Right = "run-executions"
	// ReadExecutions: describe the state machine's executions and read their history.
	ReadExecutions Right = "read-executions"
	// ReadExecutionHistory: read the history of the state machine's executions, nothing more.
	ReadExecutionHistory Right = "read-execution-history"
	// DescribeServices, DescribeTasks, UpdateServices: on the configured ECS services only.
	DescribeServices Right = "describe-services"
	DescribeTasks    Right = "describe-tasks"
	UpdateServices   Right = "update-services"
	// WriteEvidence: put objects in the evidence bucket (and encrypt them with its key).
	WriteEvidence Right = "write-evidence"
)

// dbEnv are read by every database-facing function (lambdaenv.Env.Postgres).
var dbEnv = []string{EnvCABundle, EnvConnectTimeout}

// Function describes one Lambda function.
type Function struct {
	// Name is the cmd/<Name> directory, the Makefile LAMBDAS word, the <AssetDir>/<Name>
	// directory and the local function ARN's suffix.
	Name string
	// ID is the CDK construct id.
	ID          string
	Description string
	// Placeholder is the ASL ${Placeholder} of its ARN (a DefinitionSubstitutions key);
	// "" for a function the state machine does not call.
	Placeholder string
	// Env are the variables it reads.
	Env []string
	// Rights its role needs.
	Rights []Right
}

// Has reports whether f needs right r.
func (f Function) Has(r Right) bool { return slices.Contains(f.Rights, r) }

// Reads reports whether f reads the environment variable name.
func (f Function) Reads(name string) bool { return slices.Contains(f.Env, name) }

func withDB(env ...string) []string { return append(env, dbEnv...) }

// functions, in state machine order; the bootstrap (a custom resource, not a state) last.
var functions = []Function{
	{Name: Rotator, ID: "Rotator", Placeholder: "RotationFunctionArn",
		Description: "pgrotate rotation function: Secrets Manager steps and promote; the only writer of the app secret",
		Env:         []string{EnvStateMachineARN, EnvServices, EnvPasswordLength, EnvExcludeCharacters},
		// ReadAdminSecret: the configuration test checks the admin secret names the same primary.
		Rights: []Right{WriteAppSecret, ReadAdminSecret, RunExecutions, DescribeServices}},
	{Name: Preflight, ID: "Preflight", Placeholder: "PreflightFunctionArn",
		Description: "pgrotate Preflight: validate secrets, check no one holds the pending user",
		Env:         withDB(EnvStateMachineARN, EnvReplicas),
		Rights:      []Right{ReadAppSecret, ReadAdminSecret, Database, ReadExecutions, DescribeServices, DescribeTasks}},
	{Name: CloneUser, ID: "CloneUser", Placeholder: "CloneUserFunctionArn",
		Description: "pgrotate CloneUser: create or verify the alternate user",
		Env:         withDB(), Rights: []Right{ReadAppSecret, ReadAdminSecret, Database}},
	{Name: SetPassword, ID: "SetPassword", Placeholder: "SetPasswordFunctionArn",
		Description: "pgrotate SetPassword: change the pending user's password",
		Env:         withDB(), Rights: []Right{ReadAppSecret, ReadAdminSecret, Database}},
	{Name: TestLogin, ID: "TestLogin", Placeholder: "TestLoginFunctionArn",
		Description: "pgrotate TestLogin: log in on the primary with the pending version",
		Env:         withDB(), Rights: []Right{ReadAppSecret, Database}},
	{Name: CheckReplicas, ID: "CheckReplicas", Placeholder: "CheckReplicasFunctionArn",
		Description: "pgrotate CheckReplicas: replicas replayed the change and accept the login",
		// The replicas come from the state (Preflight puts them there), not the environment.
		Env: withDB(), Rights: []Right{ReadAppSecret, ReadAdminSecret, Database}},
	{Name: Redeploy, ID: "Redeploy", Placeholder: "RedeployFunctionArn",
		Description: "pgrotate Redeploy: force a new deployment of one ECS service",
		Rights:      []Right{UpdateServices, DescribeServices}},
	{Name: CheckRollout, ID: "CheckRollout", Placeholder: "CheckRolloutFunctionArn",
		Description: "pgrotate CheckRollout: follow the forced deployment's rollout",
		Env:         []string{EnvRolloutMaxChecks}, Rights: []Right{DescribeServices}},
	{Name: RetirePrevious, ID: "RetirePrevious", Placeholder: "RetirePreviousFunctionArn",
		Description: "pgrotate RetirePrevious: expire the previous user's password after the grace (opt-in)",
		Env:         withDB(), Rights: []Right{ReadAppSecret, ReadAdminSecret, Database}},
	// RotationFailed's rethrow: no rights but its logs (it only returns the caught error).
	{Name: Rethrow, ID: "Rethrow", Placeholder: "RethrowFunctionArn",
		Description: "pgrotate RotationFailed: rethrow the caught failure, or resume a redriven execution"},
	{Name: Bootstrap, ID: "Bootstrap",
		Description: "pgrotate bootstrap: create the app secret's user in the database at deploy (custom resource)",
		Env:         withDB(), Rights: []Right{ReadAppSecret, ReadAdminSecret, Database}},
	{Name: Evidence, ID: "Evidence",
		Description: "pgrotate evidence: write one pgrotate.evidence/v1 record per rotation run to the Object Lock bucket",
		Env:         []string{EnvStateMachineARN, EnvEvidenceBucket, EnvEvidencePrefix, EnvVersion},
		Rights:      []Right{ReadExecutionHistory, WriteEvidence}},
}

// Functions returns every function, in state machine order, the bootstrap last.
func Functions() []Function {
	out := make([]Function, len(functions))
	copy(out, functions)
	return out
}

// Steps returns the functions the state machine calls (those with a Placeholder).
func Steps() []Function {
	var out []Function
	for _, f := range functions {
		if f.Placeholder != "" {
			out = append(out, f)
		}
	}
	return out
}

// Names returns the names of every function, in the order of Functions.
func Names() []string { return names(functions) }

// StepNames returns the names of the Steps, in their order.
func StepNames() []string { return names(Steps()) }

func names(fs []Function) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Name
	}
	return out
}

// Lookup returns the function called name.
func Lookup(name string) (Function, bool) {
	for _, f := range functions {
		if f.Name == name {
			return f, true
		}
	}
	return Function{}, false
}
