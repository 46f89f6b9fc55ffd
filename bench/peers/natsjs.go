package peers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsPoll is how often the stream's message count is read to observe
// acknowledgements.
const natsPoll = 5 * time.Millisecond

// JetStream is NATS JetStream through nats.go's jetstream API: a work-queue
// stream (WorkQueuePolicy, file storage) per workload, a durable pull
// consumer with explicit acks, and Workers goroutines running the handler.
type JetStream struct {
	URL string // nats://host:port

	version string // server version, once connected

	nc      *nats.Conn
	js      jetstream.JetStream
	stream  jetstream.Stream
	cons    jetstream.Consumer
	name    string // stream name
	subject string
	workers int

	cc       jetstream.ConsumeContext
	msgs     chan jetstream.Msg
	wg       sync.WaitGroup // the worker goroutines
	pollStop chan struct{}
	pollWG   sync.WaitGroup
}

func (j *JetStream) Name() string { return "NATS JetStream" }

func (j *JetStream) Info() Info {
	server := "nats-server"
	if j.version != "" {
		server += " " + j.version
	}
	return Info{
		Version: moduleVersion("github.com/nats-io/nats.go"),
		Server:  server,
		Durable: false,
		Durability: "file store written to the OS page cache, fsync every 2 min (the server's default sync_interval; " +
			"it is server-wide, not per stream, and `sync_interval: always` needs nats-server 2.10+)",
		Caveat:     "fsync every 2 min",
		Settings:   "work-queue stream (WorkQueuePolicy, FileStorage, 1 replica); durable pull consumer, AckExplicit, Consume with default PullMaxMessages (500); msg.Ack(); batches as PublishAsync then wait for every PubAck",
		Completion: fmt.Sprintf("the stream's message count (a work-queue stream deletes a message when its ack is applied), read every %v", natsPoll),
	}
}

func (j *JetStream) Probe(ctx context.Context) error {
	nc, err := nats.Connect(j.URL, nats.Timeout(3*time.Second), nats.MaxReconnects(0))
	if err != nil {
		return unreachable(j.URL, err)
	}
	defer nc.Close()
	j.version = nc.ConnectedServerVersion()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if _, err := js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("%w: %s: JetStream: %v", ErrUnreachable, j.URL, err)
	}
	return nil
}

func (j *JetStream) Open(ctx context.Context, workers int) (err error) {
	j.nc, err = nats.Connect(j.URL, nats.Timeout(3*time.Second))
	if err != nil {
		return unreachable(j.URL, err)
	}
	defer func() {
		if err != nil {
			j.nc.Close()
			j.nc = nil
		}
	}()
	j.version = j.nc.ConnectedServerVersion()
	j.js, err = jetstream.New(j.nc)
	if err != nil {
		return err
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	suffix := hex.EncodeToString(b[:])
	j.name, j.subject = "SPOOLBENCH_"+suffix, "spoolbench."+suffix
	j.stream, err = j.js.CreateStream(ctx, jetstream.StreamConfig{
		Name:      j.name,
		Subjects:  []string{j.subject},
		Retention: jetstream.WorkQueuePolicy,
		Storage:   jetstream.FileStorage,
		Replicas:  1,
	})
	if err != nil {
		return fmt.Errorf("create stream: %w", err)
	}
	j.cons, err = j.js.CreateOrUpdateConsumer(ctx, j.name, jetstream.ConsumerConfig{
		Durable:   "workers",
		AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		return errors.Join(fmt.Errorf("create consumer: %w", err), j.js.DeleteStream(ctx, j.name))
	}
	j.workers = workers
	return nil
}

func (j *JetStream) Enqueue(ctx context.Context, payloads [][]byte) error {
	if j.js == nil {
		return notOpen(j.Name())
	}
	if len(payloads) == 1 {
		_, err := j.js.Publish(ctx, j.subject, payloads[0])
		return err
	}
	futures := make([]jetstream.PubAckFuture, 0, len(payloads))
	for _, p := range payloads {
		f, err := j.js.PublishAsync(j.subject, p)
		if err != nil {
			return err
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (j *JetStream) Start(ctx context.Context, w Work) error {
	if j.cons == nil {
		return notOpen(j.Name())
	}
	seen, err := j.acked(ctx)
	if err != nil {
		return err
	}
	j.msgs = make(chan jetstream.Msg)
	msgs := j.msgs
	for range j.workers {
		j.wg.Go(func() {
			for m := range msgs {
				w.Started(m.Data())
				_ = m.Ack() // a lost ack means a redelivery, which the counts would show
			}
		})
	}
	j.pollStop = make(chan struct{})
	stop := j.pollStop
	j.pollWG.Go(func() { j.observe(w, seen, stop) })
	j.cc, err = j.cons.Consume(func(m jetstream.Msg) { msgs <- m })
	if err != nil {
		return errors.Join(err, j.stopWorkers(ctx))
	}
	return nil
}

// acked returns how many messages of the stream have been acknowledged
// (and so deleted by the work-queue retention).
func (j *JetStream) acked(ctx context.Context) (int64, error) {
	info, err := j.stream.Info(ctx)
	if err != nil {
		return 0, err
	}
	return int64(info.State.LastSeq) - int64(info.State.Msgs), nil
}

func (j *JetStream) observe(w Work, seen int64, stop <-chan struct{}) {
	tick := time.NewTicker(natsPoll)
	defer tick.Stop()
	read := func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if n, err := j.acked(ctx); err == nil && n > seen {
			w.Completed(int(n - seen))
			seen = n
		}
	}
	for {
		select {
		case <-tick.C:
			read()
		case <-stop:
			read()
			return
		}
	}
}

// stopWorkers lets the workers finish the messages they hold, makes sure
// their acks reached the server, then reads the count one last time.
func (j *JetStream) stopWorkers(ctx context.Context) error {
	var err error
	if j.msgs != nil {
		close(j.msgs)
		j.wg.Wait()
		j.msgs = nil
		err = j.nc.FlushWithContext(ctx)
	}
	if j.pollStop != nil {
		close(j.pollStop)
		j.pollWG.Wait()
		j.pollStop = nil
	}
	return err
}

func (j *JetStream) Stop(ctx context.Context) error {
	if j.cc == nil {
		return nil
	}
	j.cc.Stop()
	select {
	case <-j.cc.Closed():
	case <-ctx.Done():
		return ctx.Err()
	}
	j.cc = nil
	return j.stopWorkers(ctx)
}

func (j *JetStream) Remaining(ctx context.Context) (int, error) {
	if j.stream == nil {
		return 0, notOpen(j.Name())
	}
	info, err := j.stream.Info(ctx)
	if err != nil {
		return 0, err
	}
	return int(info.State.Msgs), nil
}

func (j *JetStream) Close(ctx context.Context) error {
	if j.nc == nil {
		return nil
	}
	err := j.Stop(ctx)
	err = errors.Join(err, j.js.DeleteStream(ctx, j.name))
	j.nc.Close()
	j.nc, j.js, j.stream, j.cons = nil, nil, nil, nil
	return err
}
