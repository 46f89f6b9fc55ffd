package sqs_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/spoolrun/spool/server/sqs"
)

// TestNodeSDK runs testdata/node/sqs.mjs, the AWS SDK for JavaScript v3
// (@aws-sdk/client-sqs, pinned by its package-lock.json), against the
// facade on SQLite: send, receive, delete, batches, a stale handle, a FIFO
// group in order, an error's type, with the SDK checking every body's MD5.
// It skips without node and npm, or when npm ci cannot fetch the packages,
// except under CI (the CI environment variable), where that fails; .ci/run
// installs both.
func TestNodeSDK(t *testing.T) {
	t.Parallel()
	skip := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") != "" {
			t.Fatalf(format+" (CI is set, so this fails rather than skips)", args...)
		}
		t.Skipf(format, args...)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		skip("node is not on PATH: %v", err)
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		skip("npm is not on PATH: %v", err)
	}
	dir, err := filepath.Abs(filepath.Join("testdata", "node"))
	if err != nil {
		t.Fatal(err)
	}
	ci := exec.CommandContext(t.Context(), npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	ci.Dir = dir
	if out, err := ci.CombinedOutput(); err != nil {
		skip("npm ci in %s failed (offline?): %v\n%s", dir, err, out)
	}

	e := newEnv(t, backends[0], sqs.Config{Clock: clockwork.NewRealClock()})
	creds := e.creds["acme/admin"]
	run := exec.CommandContext(t.Context(), node, "sqs.mjs")
	run.Dir = dir
	run.Env = append(os.Environ(), "SPOOL_SQS_ENDPOINT="+e.srv.URL, "AWS_ACCESS_KEY_ID="+creds.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY="+creds.SecretAccessKey, "AWS_SESSION_TOKEN=", "AWS_PROFILE=", "AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null")
	var out bytes.Buffer
	run.Stdout, run.Stderr = &out, &out
	run.WaitDelay = 10 * time.Second
	if err := run.Run(); err != nil {
		t.Fatalf("node sqs.mjs: %v\n%s", err, out.String())
	}
	if !strings.HasSuffix(strings.TrimSpace(out.String()), "ok") {
		t.Fatalf("node sqs.mjs did not finish: %s", out.String())
	}
}
