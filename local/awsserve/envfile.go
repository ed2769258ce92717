package awsserve

import (
	"fmt"
	"strings"

	"github.com/pgrotate/pgrotate/internal/atomicfile"
)

// Env is what a shell, or the SDK's default configuration, needs to reach the server.
type Env struct {
	Endpoint        string // AWS_ENDPOINT_URL: Server.URL()
	Region          string // AWS_REGION
	AccessKeyID     string // AWS_ACCESS_KEY_ID
	SecretAccessKey string // AWS_SECRET_ACCESS_KEY: a throwaway key of the local server
	SecretARN       string // PGROTATE_SECRET: the application secret's ARN
}

// WriteEnvFile writes env to path as KEY=VALUE lines, mode 0600, replacing the file
// atomically. AWS_ENDPOINT_URL is the SDK's endpoint override for every service
// (https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html).
func WriteEnvFile(path string, env Env) error {
	lines := []struct{ key, value string }{
		{"AWS_ENDPOINT_URL", env.Endpoint},
		{"AWS_REGION", env.Region},
		{"AWS_ACCESS_KEY_ID", env.AccessKeyID},
		{"AWS_SECRET_ACCESS_KEY", env.SecretAccessKey},
		{"PGROTATE_SECRET", env.SecretARN},
	}
	var b strings.Builder
	for _, l := range lines {
		if l.value == "" || strings.ContainsAny(l.value, " \t\r\n\"'$`\\#") {
			// The value itself is not named: AWS_SECRET_ACCESS_KEY is one of them.
			return fmt.Errorf("awsserve: env file: %s is empty or has a character a shell would interpret", l.key)
		}
		fmt.Fprintf(&b, "%s=%s\n", l.key, l.value)
	}
	if err := atomicfile.Write(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("awsserve: env file: %w", err)
	}
	return nil
}
