package backend

import (
	"bytes"
	"log/slog"
	"os"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/pgrotate/pgrotate/adapters/postgres"
	"github.com/pgrotate/pgrotate/internal/testctx"
	"github.com/pgrotate/pgrotate/local/pgcluster/pgtest"
	"github.com/pgrotate/pgrotate/workflow"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// syncBuffer collects log lines from handlers running on several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func TestSmokeOneRotation(t *testing.T) {
	c := pgtest.Cluster(t)
	ctx := testctx.Context(t)
	logs := &syncBuffer{}
	b, err := New(ctx, Options{
		Database: FromCluster(c),
		AppUser:  "smoke_user",
		Services: []workflow.Service{{Cluster: "prod", Service: "api"}},
		Log:      slog.New(slog.NewJSONHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	r, err := b.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.StepErr != nil || r.Status != types.ExecutionStatusSucceeded {
		t.Fatalf("rotation: step error %v, status %s, error %s, cause %s\nlogs:\n%s", r.StepErr, r.Status, r.Error, r.Cause, logs.String())
	}
	cur, _, err := b.Secret(ctx, workflow.StageCurrent)
	if err != nil {
		t.Fatal(err)
	}
	if cur.Username != "smoke_user_clone" {
		t.Fatalf("AWSCURRENT user = %s", cur.Username)
	}
	for _, ep := range append([]workflow.Endpoint{cur.Primary()}, cur.Replicas...) {
		if _, _, err := postgres.Login(ctx, cur.At(ep), postgres.Options{CABundle: c.CAFile}); err != nil {
			t.Fatalf("AWSCURRENT does not log in on %s: %v", ep, err)
		}
	}
	t.Logf("timeline: %+v", r.Timeline)
}
