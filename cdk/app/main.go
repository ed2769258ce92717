// Command app is pgrotate's CDK app (cdk.json runs it). It synthesizes:
//
//   - PgrotateReference, the reference design end to end (VPC, KMS, generated secrets, RDS
//     primary and read replica, the sample app on ECS behind an ALB, and the rotation);
//   - Pgrotate (or -c stackName=…), the rotation of an existing database's app secret,
//     configured by context keys (see cdk/README.md); built when any of its keys is set.
//
// Every stack is checked by cdk-nag's AwsSolutions pack during synthesis.
//
// App-wide context: region (the reference stack's region; default: the CLI's
// CDK_DEFAULT_REGION), assetDir (the Lambda bootstraps, default build/), and the
// reference stack's app* and db* keys.
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/pgrotate/pgrotate/cdk/byo"
	"github.com/pgrotate/pgrotate/cdk/reference"
)

// Stack ids.
const ReferenceStackName = "PgrotateReference"

// App-wide and reference-stack context keys.
const (
	KeyRegion             = "region"
	KeyAssetDir           = "assetDir"
	KeyAppImage           = "appImage"
	KeyAppRepository      = "appRepository"
	KeyAppImageTag        = "appImageTag"
	KeyAppDesiredCount    = "appDesiredCount"
	KeyAppSSLRootCert     = "appSslRootCert"
	KeyDBInstanceType     = "dbInstanceType"
	KeyDeletionProtection = "deletionProtection"
)

func main() {
	app := awscdk.NewApp(nil)
	err := build(app, os.Getenv)
	if err == nil {
		app.Synth(nil)
	}
	jsii.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgrotate:", err)
		os.Exit(1)
	}
}

// build adds the stacks to app, reading context from app and the environment through getenv.
func build(app awscdk.App, getenv func(string) string) error {
	awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
	lookup := func(k string) any { return app.Node().TryGetContext(jsii.String(k)) }
	str := func(k string) string {
		if v := lookup(k); v != nil {
			return strings.TrimSpace(fmt.Sprint(v))
		}
		return ""
	}
	assetDir := str(KeyAssetDir)

	region := str(KeyRegion)
	if region == "" {
		region = getenv("CDK_DEFAULT_REGION")
	}
	if region == "" {
		return fmt.Errorf("%s needs a region: set -c %s=… or AWS_REGION", ReferenceStackName, KeyRegion)
	}
	env := &awscdk.Environment{Region: jsii.String(region)}
	if account := getenv("CDK_DEFAULT_ACCOUNT"); account != "" {
		env.Account = jsii.String(account)
	}
	props := reference.Props{
		StackProps:     awscdk.StackProps{Env: env},
		AppImage:       str(KeyAppImage),
		AppRepository:  str(KeyAppRepository),
		AppImageTag:    str(KeyAppImageTag),
		AppSSLRootCert: str(KeyAppSSLRootCert),
		InstanceType:   str(KeyDBInstanceType),
		AssetDir:       assetDir,
		CABundleFile:   str(byo.KeyCABundle),
	}
	if s := str(KeyAppDesiredCount); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return fmt.Errorf("context %s: %q is not a task count", KeyAppDesiredCount, s)
		}
		props.AppDesiredCount = &n
	}
	if s := str(KeyDeletionProtection); s != "" {
		on, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("context %s: %q is not true or false", KeyDeletionProtection, s)
		}
		props.DeletionProtection = jsii.Bool(on)
	}
	reference.NewStack(app, ReferenceStackName, props)

	if !byo.Requested(lookup) {
		fmt.Fprintf(os.Stderr, "pgrotate: bring-your-own stack not synthesized: set its context keys (%s; see cdk/README.md)\n",
			strings.Join(byo.RequiredKeys(), ", "))
		return nil
	}
	cfg, err := byo.ConfigFromContext(lookup)
	if err != nil {
		return err
	}
	cfg.AssetDir = assetDir
	byo.NewStack(app, cfg)
	return nil
}
