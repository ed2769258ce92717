package reference

import (
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

func suppress(construct interface{}, rule, reason string, appliesTo ...interface{}) {
	s := &cdknag.NagPackSuppression{Id: jsii.String(rule), Reason: jsii.String(reason)}
	if len(appliesTo) > 0 {
		s.AppliesTo = &appliesTo
	}
	cdknag.NagSuppressions_AddResourceSuppressions(construct, &[]*cdknag.NagPackSuppression{s}, jsii.Bool(true))
}

// suppressNag records why the reference stack departs from an AwsSolutions rule.
func (s *Stack) suppressNag() {
	suppress(s.AdminSecret, "AwsSolutions-SMG4",
		"The admin secret is the RDS master credential, read only by pgrotate's task Lambdas; pgrotate rotates the app secret. "+
			"Rotating the admin secret needs a single-user rotation timed between pgrotate executions, which this reference leaves to operators.")
	port := "PostgreSQL keeps its standard port 5432: the instances are in isolated subnets and their security group admits only the " +
		"app's and the rotation Lambdas' security groups, so a non-standard port would hide nothing from the only clients that can connect."
	suppress(s.Primary, "AwsSolutions-RDS11", port)
	suppress(s.Replica, "AwsSolutions-RDS11", port)
	suppress(s.Replica, "AwsSolutions-RDS2",
		"A read replica inherits storage encryption and the KMS key from its source (CloudFormation: do not set StorageEncrypted with "+
			"SourceDBInstanceIdentifier); the primary is encrypted with the stack's customer managed key.")
	suppress(s.Replica, "AwsSolutions-RDS3",
		"The read replica only serves reads and can be recreated from the Multi-AZ primary; a Multi-AZ replica would double its cost "+
			"in this reference. Set MultiAz on the replica where reads must survive an AZ outage.")
	suppress(s.task, "AwsSolutions-ECS2",
		"The plain environment holds only non-secret settings (replica host and port, sslmode, listen address, drain timeout); "+
			"the database credentials come from Secrets Manager through the container's secrets.")
	suppress(s.accessLogs, "AwsSolutions-S1",
		"This bucket only receives the ALB's access logs; server access logging for it would need another bucket with the same "+
			"finding. Public access is blocked, SSL is enforced and objects expire after a year.")
	if s.fromECR {
		suppress(s.task.ExecutionRole(), "AwsSolutions-IAM5",
			"ecr:GetAuthorizationToken supports no resource-level permissions; the image pull actions are scoped to the one repository.",
			"Resource::*")
	}
}
