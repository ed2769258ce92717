package reference

import (
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// suppressNag records why the reference stack departs from an AwsSolutions rule.
func (s *Stack) suppressNag() {
	port := "PostgreSQL keeps its standard port 5432: the instances are in isolated subnets and their security group admits only the " +
		"app's and the rotation Lambdas' security groups, so a non-standard port would hide nothing from the only clients that can connect."
	departures := []struct {
		construct interface{}
		rule      string
		reason    string
		appliesTo []interface{}
		when      bool // false: the construct does not depart here
	}{
		{s.AdminSecret, "AwsSolutions-SMG4", "The admin secret is the RDS master credential, read only by pgrotate's task Lambdas; pgrotate rotates the app secret. " +
			"Rotating the admin secret needs a single-user rotation timed between pgrotate executions, which this reference leaves to operators.", nil, true},
		{s.Primary, "AwsSolutions-RDS11", port, nil, true},
		{s.Replica, "AwsSolutions-RDS11", port, nil, true},
		{s.Replica, "AwsSolutions-RDS2", "A read replica inherits storage encryption and the KMS key from its source (CloudFormation: do not set StorageEncrypted with " +
			"SourceDBInstanceIdentifier); the primary is encrypted with the stack's customer managed key.", nil, true},
		{s.Replica, "AwsSolutions-RDS3", "The read replica only serves reads and can be recreated from the Multi-AZ primary; a Multi-AZ replica would double its cost " +
			"in this reference. Set MultiAz on the replica where reads must survive an AZ outage.", nil, true},
		{s.task, "AwsSolutions-ECS2", "The plain environment holds only non-secret settings (replica host and port, sslmode, listen address, drain timeout); " +
			"the database credentials come from Secrets Manager through the container's secrets.", nil, true},
		{s.accessLogs, "AwsSolutions-S1", "This bucket only receives the ALB's access logs; server access logging for it would need another bucket with the same " +
			"finding. Public access is blocked, SSL is enforced and objects expire after a year.", nil, true},
		{s.task.ExecutionRole(), "AwsSolutions-IAM5",
			"ecr:GetAuthorizationToken supports no resource-level permissions; the image pull actions are scoped to the one repository.",
			[]interface{}{"Resource::*"}, s.fromECR},
	}
	for _, d := range departures {
		if !d.when {
			continue
		}
		sup := &cdknag.NagPackSuppression{Id: jsii.String(d.rule), Reason: jsii.String(d.reason)}
		if len(d.appliesTo) > 0 {
			sup.AppliesTo = &d.appliesTo
		}
		cdknag.NagSuppressions_AddResourceSuppressions(d.construct, &[]*cdknag.NagPackSuppression{sup}, jsii.Bool(true))
	}
}
