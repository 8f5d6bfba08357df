// Package deploy_test checks the deployment in this directory and ../docker-compose.yml: the
// compose topology and the Dockerfile (compose_test.go), and the same topology run as local
// processes on loopback with the same configuration files (cluster_test.go).
package deploy_test

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
