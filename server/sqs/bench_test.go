package sqs_test

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"golang.org/x/sync/errgroup"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/internal/apikey"
	"github.com/spoolrun/spool/server"
	"github.com/spoolrun/spool/server/sqs"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/postgres"
	"github.com/spoolrun/spool/store/sqlite"
)

var (
	benchMessages = flag.Int("sqs.messages", 100_000, "messages BenchmarkSQSReceiveDelete sends, then receives and deletes")
	benchPollers  = flag.Int("sqs.pollers", 32, "concurrent pollers of BenchmarkSQSReceiveDelete")
	benchSenders  = flag.Int("sqs.senders", 8, "concurrent senders of BenchmarkSQSReceiveDelete's fill")
	benchStore    = flag.String("sqs.store", "", "a postgres:// URL for BenchmarkSQSReceiveDelete (default: a SQLite file)")
	benchProfile  = flag.String("sqs.cpuprofile", "", "write a CPU profile of BenchmarkSQSReceiveDelete's receive-and-delete phase alone to this file")
)

// BenchmarkSQSReceiveDelete is the workload, through the real Go
// SDK against spool serve (its HTTP handler on a loopback port, SigV4 on)
// over a durable store: SendMessageBatch of 10 until -sqs.messages are
// queued, then -sqs.pollers concurrent pollers each doing ReceiveMessage
// of 10 and DeleteMessageBatch of what it got, until every message is
// deleted. It reports msg/s received and deleted (from the first receive to
// the last delete, acknowledged durable), and msg/s sent for the fill.
// Run it once, on a quiet machine:
//
//	go test -run '^$' -bench SQSReceiveDelete -benchtime 1x ./server/sqs
func BenchmarkSQSReceiveDelete(b *testing.B) {
	for range b.N {
		benchReceiveDelete(b)
	}
}

func benchReceiveDelete(b *testing.B) {
	b.StopTimer()
	ctx := context.Background()
	var st store.Store
	var err error
	if *benchStore != "" {
		schema := fmt.Sprintf("sqs_bench_%d", time.Now().UnixNano()%1e9)
		pg, perr := postgres.Open(ctx, *benchStore, postgres.Config{Schema: schema})
		if perr != nil {
			b.Fatal(perr)
		}
		defer pg.Pool().Exec(ctx, "DROP SCHEMA "+schema+" CASCADE") //nolint:errcheck // a benchmark's leftovers, best effort
		st = pg
	} else {
		st, err = sqlite.Open(filepath.Join(b.TempDir(), "spool.db"), sqlite.Config{})
		if err != nil {
			b.Fatal(err)
		}
	}
	defer st.Close()
	// spool serve's upkeep returns locks whose visibility ran out.
	upkeep, err := spool.NewWorker(spool.WorkerConfig{Store: st, Queues: map[string]spool.QueueConfig{}, Heartbeat: spool.HeartbeatConfig{Disable: true}})
	if err != nil {
		b.Fatal(err)
	}
	if err := upkeep.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer upkeep.Stop(ctx) //nolint:errcheck // at the end of the run
	token, key, err := apikey.New(apikey.Params{Tenant: "bench", Role: store.RoleAdmin, SQS: true}, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.Capabilities().Keys.CreateKey(ctx, key); err != nil {
		b.Fatal(err)
	}
	h, err := sqs.New(sqs.Config{Store: st})
	if err != nil {
		b.Fatal(err)
	}
	srv, err := server.New(server.Config{Store: st, SQS: h})
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	id, secret, _ := apikey.Parse(token)
	creds := aws.Credentials{AccessKeyID: id, SecretAccessKey: apikey.SQSSecret(id, secret)}
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}
	defer tr.CloseIdleConnections()
	// The SDK's own defaults, but for its client-side rate limiter, which
	// exists to spare AWS in an outage and would only throttle a benchmark.
	c := awssqs.New(awssqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(ts.URL), HTTPClient: &http.Client{Transport: tr},
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return creds, nil }),
		Retryer:     retry.NewStandard(func(o *retry.StandardOptions) { o.RateLimiter = ratelimit.None }),
	})
	q, err := c.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String("bench")})
	if err != nil {
		b.Fatal(err)
	}
	n := *benchMessages
	body := aws.String(`{"order":12345,"items":[{"sku":"A-1","qty":2}],"note":"a message of about a hundred bytes"}`)

	// Fill: batches of 10 from a few senders.
	fillStart := time.Now()
	var next atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	for range *benchSenders {
		g.Go(func() error {
			entries := make([]types.SendMessageBatchRequestEntry, 10)
			for i := range entries {
				entries[i] = types.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint("m", i)), MessageBody: body}
			}
			for {
				start := next.Add(10) - 10
				if start >= int64(n) {
					return nil
				}
				k := min(10, n-int(start))
				out, err := c.SendMessageBatch(gctx, &awssqs.SendMessageBatchInput{QueueUrl: q.QueueUrl, Entries: entries[:k]})
				if err != nil {
					return err
				}
				if len(out.Failed) > 0 {
					return fmt.Errorf("send failed: %s", aws.ToString(out.Failed[0].Message))
				}
			}
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	fill := time.Since(fillStart)

	// Drain: pollers receive 10 and delete them in one batch, until the
	// last delete; then the pollers still waiting in a receive are let go.
	var deleted, receives atomic.Int64
	var end time.Time
	var once sync.Once
	dctx, stop := context.WithCancel(ctx)
	defer stop()
	if *benchProfile != "" {
		f, err := os.Create(*benchProfile)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	b.StartTimer()
	start := time.Now()
	g, gctx = errgroup.WithContext(dctx)
	for range *benchPollers {
		g.Go(func() error {
			entries := make([]types.DeleteMessageBatchRequestEntry, 0, 10)
			for {
				out, err := c.ReceiveMessage(gctx, &awssqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
				if dctx.Err() != nil {
					return nil //nolint:nilerr // the last message was deleted: a receive cut short is the end, not a failure
				}
				if err != nil {
					return err
				}
				receives.Add(1)
				if len(out.Messages) == 0 {
					continue
				}
				entries = entries[:0]
				for i, m := range out.Messages {
					entries = append(entries, types.DeleteMessageBatchRequestEntry{Id: aws.String(fmt.Sprint("d", i)), ReceiptHandle: m.ReceiptHandle})
				}
				del, err := c.DeleteMessageBatch(gctx, &awssqs.DeleteMessageBatchInput{QueueUrl: q.QueueUrl, Entries: entries})
				if err != nil {
					return err
				}
				if len(del.Failed) > 0 {
					return fmt.Errorf("delete failed: %s %s", aws.ToString(del.Failed[0].Code), aws.ToString(del.Failed[0].Message))
				}
				if deleted.Add(int64(len(del.Successful))) >= int64(n) {
					once.Do(func() {
						end = time.Now()
						stop()
					})
				}
			}
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	elapsed := end.Sub(start)
	b.ReportMetric(float64(deleted.Load())/elapsed.Seconds(), "msg/s")
	b.ReportMetric(float64(n)/fill.Seconds(), "sent/s")
	b.ReportMetric(float64(deleted.Load())/float64(receives.Load()), "msg/receive")
	if d := deleted.Load(); d != int64(n) {
		b.Fatalf("deleted %d messages, sent %d", d, n)
	}
}
