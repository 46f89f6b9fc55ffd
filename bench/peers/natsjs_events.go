package peers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// EmbeddedJetStream is NATS JetStream as an event system: a nats-server
// embedded in the harness's process (github.com/nats-io/nats-server/v2),
// started per workload on a random loopback port with a fresh store
// directory, reached over TCP through nats.go's jetstream API. The topic is
// a stream with limits retention; each subscription is a durable pull
// consumer with explicit acks, consumed by its own workers.
type EmbeddedJetStream struct {
	// SyncAlways sets server.Options.SyncAlways: every write of the file
	// store is fsynced before it is acknowledged. Otherwise the server's
	// default applies: fsync every 2 minutes.
	SyncAlways bool
	// Dir is where the store directories are made. Default: the system's
	// temp dir.
	Dir string

	srv   *server.Server
	store string // this instance's store directory, removed by Close
	nc    *nats.Conn
	js    jetstream.JetStream
	subs  []string
	cons  map[string]jetstream.Consumer
	work  int // workers per subscription

	running []*jsSubscription
	pollWG  sync.WaitGroup
}

const (
	embeddedStream  = "EVENTS"
	embeddedSubject = "events"
	embeddedAckWait = 30 * time.Second
)

// jsSubscription is one consumer's running workers.
type jsSubscription struct {
	name string
	cons jetstream.Consumer
	cc   jetstream.ConsumeContext
	msgs chan jetstream.Msg
	wg   sync.WaitGroup
	stop chan struct{} // stops the ack poller
}

func (j *EmbeddedJetStream) Name() string {
	if j.SyncAlways {
		return "NATS JetStream (sync always)"
	}
	return "NATS JetStream (default sync)"
}

func (j *EmbeddedJetStream) Info() Info {
	info := Info{
		Version: moduleVersion("github.com/nats-io/nats.go"),
		Server:  "nats-server " + server.VERSION + ", embedded in the harness's process",
		Settings: "nats-server embedded (server.Options: JetStream, random loopback port, fresh store dir per workload, " +
			"otherwise defaults), reached over TCP; one stream (LimitsPolicy, FileStorage, 1 replica); one durable pull consumer per subscription " +
			"(AckExplicit, AckWait 30s, default MaxAckPending 1,000), Consume with default PullMaxMessages (500) feeding the subscription's workers; " +
			"msg.Ack(); batches as PublishAsync then wait for every PubAck",
		Completion: fmt.Sprintf("per subscription, the consumer's Delivered.Stream − NumAckPending (the acks the server has applied), "+
			"from consumer info read every %v", natsPoll),
	}
	if j.SyncAlways {
		info.Durable = false
		info.Caveat = "acks fsynced ≈0.1 s late"
		info.Durability = "sync_always (server.Options.SyncAlways): each published message is fsynced before its PubAck; " +
			"an ack is applied in memory and the consumer's state file is rewritten and fsynced by a background flusher at most 10 times a second, " +
			"so after a power loss the last ≈0.1 s of acks can be redelivered (no published event is lost)"
	} else {
		info.Durable = false
		info.Caveat = "fsync every 2 min"
		info.Durability = "messages and consumer state written to the OS page cache, fsync every 2 min (the server's default sync_interval)"
	}
	return info
}

// Probe succeeds: the server is started by Open, in this process.
func (j *EmbeddedJetStream) Probe(context.Context) error { return nil }

func (j *EmbeddedJetStream) Open(ctx context.Context, subscriptions []string, workersPerSubscription int) (err error) {
	if j.srv != nil {
		return errors.New("already open")
	}
	j.store, err = os.MkdirTemp(j.Dir, "spoolbench-nats-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, j.Close(context.WithoutCancel(ctx)))
		}
	}()
	j.srv, err = server.NewServer(&server.Options{
		Host:                   "127.0.0.1",
		Port:                   server.RANDOM_PORT,
		JetStream:              true,
		StoreDir:               j.store,
		SyncAlways:             j.SyncAlways,
		NoLog:                  true,
		NoSigs:                 true,
		DisableJetStreamBanner: true,
	})
	if err != nil {
		return fmt.Errorf("nats-server: %w", err)
	}
	j.srv.Start()
	if !j.srv.ReadyForConnections(10 * time.Second) {
		return errors.New("nats-server: not ready for connections after 10s")
	}
	j.nc, err = nats.Connect(j.srv.ClientURL(), nats.Timeout(3*time.Second))
	if err != nil {
		return unreachable(j.srv.ClientURL(), err)
	}
	j.js, err = jetstream.New(j.nc)
	if err != nil {
		return err
	}
	if _, err = j.js.CreateStream(ctx, jetstream.StreamConfig{
		Name:      embeddedStream,
		Subjects:  []string{embeddedSubject},
		Retention: jetstream.LimitsPolicy,
		Storage:   jetstream.FileStorage,
		Replicas:  1,
	}); err != nil {
		return fmt.Errorf("create stream: %w", err)
	}
	j.cons = make(map[string]jetstream.Consumer, len(subscriptions))
	for _, sub := range subscriptions {
		c, err := j.js.CreateOrUpdateConsumer(ctx, embeddedStream, jetstream.ConsumerConfig{
			Durable:   sub,
			AckPolicy: jetstream.AckExplicitPolicy,
			AckWait:   embeddedAckWait,
		})
		if err != nil {
			return fmt.Errorf("create consumer %s: %w", sub, err)
		}
		j.cons[sub] = c
	}
	j.subs = subscriptions
	j.work = workersPerSubscription
	return nil
}

func (j *EmbeddedJetStream) Publish(ctx context.Context, payloads [][]byte) error {
	if j.js == nil {
		return notOpen(j.Name())
	}
	if len(payloads) == 1 {
		_, err := j.js.Publish(ctx, embeddedSubject, payloads[0])
		return err
	}
	futures := make([]jetstream.PubAckFuture, 0, len(payloads))
	for _, p := range payloads {
		f, err := j.js.PublishAsync(embeddedSubject, p)
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

// ackedCount is how many of the stream's messages the consumer has had
// acked: every message up to the last delivered one, less those delivered
// and not acked yet. The stream is fresh and has one subject, so its
// sequence numbers have no gaps.
func ackedCount(ctx context.Context, c jetstream.Consumer) (int64, error) {
	info, err := c.Info(ctx)
	if err != nil {
		return 0, err
	}
	return int64(info.Delivered.Stream) - int64(info.NumAckPending), nil
}

func (j *EmbeddedJetStream) Start(ctx context.Context, w EventWork) error {
	if j.cons == nil {
		return notOpen(j.Name())
	}
	if j.running != nil {
		return errors.New("already started")
	}
	for _, name := range j.subs {
		s := &jsSubscription{name: name, cons: j.cons[name], msgs: make(chan jetstream.Msg), stop: make(chan struct{})}
		seen, err := ackedCount(ctx, s.cons)
		if err != nil {
			return errors.Join(err, j.Stop(ctx))
		}
		j.running = append(j.running, s)
		for range j.work {
			s.wg.Go(func() {
				for m := range s.msgs {
					w.Started(name, m.Data())
					_ = m.Ack() // a lost ack means a redelivery, which the counts would show
				}
			})
		}
		j.pollWG.Go(func() { observeAcks(s, w, seen) })
		msgs := s.msgs
		s.cc, err = s.cons.Consume(func(m jetstream.Msg) { msgs <- m })
		if err != nil {
			return errors.Join(fmt.Errorf("consume %s: %w", name, err), j.Stop(ctx))
		}
	}
	return nil
}

// observeAcks reports the consumer's newly applied acks every natsPoll,
// and once more when stopped.
func observeAcks(s *jsSubscription, w EventWork, seen int64) {
	tick := time.NewTicker(natsPoll)
	defer tick.Stop()
	read := func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if n, err := ackedCount(ctx, s.cons); err == nil && n > seen {
			w.Completed(s.name, int(n-seen))
			seen = n
		}
	}
	for {
		select {
		case <-tick.C:
			read()
		case <-s.stop:
			read()
			return
		}
	}
}

// Stop stops every consumer, lets the workers finish the messages they
// hold, makes sure their acks reached the server, then stops the pollers
// after a last read.
func (j *EmbeddedJetStream) Stop(ctx context.Context) error {
	if j.running == nil {
		return nil
	}
	var errs []error
	for _, s := range j.running {
		if s.cc == nil {
			continue
		}
		s.cc.Stop()
		select {
		case <-s.cc.Closed():
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("%s: %w", s.name, ctx.Err()))
		}
	}
	if len(errs) > 0 {
		// A consumer still running could hand its workers a message after
		// their channel closed: leave them be.
		return errors.Join(errs...)
	}
	for _, s := range j.running {
		close(s.msgs)
		s.wg.Wait()
	}
	if j.nc != nil {
		errs = append(errs, j.nc.FlushWithContext(ctx))
	}
	for _, s := range j.running {
		close(s.stop)
	}
	j.pollWG.Wait()
	j.running = nil
	return errors.Join(errs...)
}

func (j *EmbeddedJetStream) Remaining(ctx context.Context) (map[string]int, error) {
	if j.cons == nil {
		return nil, notOpen(j.Name())
	}
	rem := make(map[string]int, len(j.cons))
	for name, c := range j.cons {
		info, err := c.Info(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		rem[name] = info.NumAckPending + int(info.NumPending)
	}
	return rem, nil
}

// Close stops the workers, the connection and the server, and deletes the
// store directory.
func (j *EmbeddedJetStream) Close(ctx context.Context) error {
	err := j.Stop(ctx)
	if j.nc != nil {
		j.nc.Close()
	}
	if j.srv != nil {
		j.srv.Shutdown()
		j.srv.WaitForShutdown()
	}
	if j.store != "" {
		err = errors.Join(err, os.RemoveAll(j.store))
	}
	j.srv, j.store, j.nc, j.js, j.cons, j.subs = nil, "", nil, nil, nil, nil
	return err
}
