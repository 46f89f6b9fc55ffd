package spool_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/sqlite"
)

// Email is the payload of the examples' job kind.
type Email struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
}

// Receipt is the result the examples' worker returns.
type Receipt struct {
	MessageID string `json:"message_id"`
}

// SendEmail is the examples' job kind. Declare kinds once, at package level.
var SendEmail = spool.NewKind[Email]("email.send")

// exampleStore opens a store in a fresh temporary directory and returns it
// with its file path and a function that closes it and removes the directory.
func exampleStore() (*sqlite.Store, string, func()) {
	dir, err := os.MkdirTemp("", "spool-example-")
	if err != nil {
		log.Fatal(err)
	}
	path := filepath.Join(dir, "spool.db")
	st, err := sqlite.Open(path, sqlite.Config{})
	if err != nil {
		log.Fatal(err)
	}
	return st, path, func() {
		_ = st.Close()
		_ = os.RemoveAll(dir)
	}
}

func ExampleKind_Enqueue() {
	st, _, cleanup := exampleStore()
	defer cleanup()
	client, err := spool.NewClient(spool.Config{Store: st})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	res, err := SendEmail.Enqueue(ctx, client, Email{To: "ada@example.com", Subject: "Welcome"}, &spool.EnqueueOptions{
		Queue:     "mail",
		UniqueKey: "welcome:ada@example.com",
	})
	if err != nil {
		log.Fatal(err)
	}
	job, err := client.Get(ctx, res.ID)
	if err != nil {
		log.Fatal(err)
	}
	email, err := SendEmail.Decode(job)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(job.Kind, job.Queue, job.State, email.To)

	// The same unique key, while the first job is live, returns that job.
	again, err := SendEmail.Enqueue(ctx, client, Email{To: "ada@example.com"}, &spool.EnqueueOptions{
		Queue:     "mail",
		UniqueKey: "welcome:ada@example.com",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("duplicate:", again.Duplicate, "same job:", again.ID == res.ID)

	// Bad input is refused, names the field, and changes nothing.
	_, err = SendEmail.Enqueue(ctx, client, Email{}, &spool.EnqueueOptions{Delay: -time.Minute})
	var invalid *store.ValidationError
	fmt.Println(errors.Is(err, spool.ErrInvalid), errors.As(err, &invalid) && invalid.Field == "delay")
	// Output:
	// email.send mail available ada@example.com
	// duplicate: true same job: true
	// true true
}

func ExampleClient_Wait() {
	st, _, cleanup := exampleStore()
	defer cleanup()
	client, err := spool.NewClient(spool.Config{Store: st})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	res, err := SendEmail.Enqueue(ctx, client, Email{To: "ada@example.com"}, &spool.EnqueueOptions{Queue: "mail"})
	if err != nil {
		log.Fatal(err)
	}

	// A worker elsewhere claims the job and completes it with a result. (This
	// one drives the store by hand, in place of a spool worker.)
	worked := make(chan error, 1)
	go func() {
		jobs, err := st.Claim(ctx, store.ClaimParams{Queue: "mail", Limit: 1, LockFor: time.Minute})
		if err != nil || len(jobs) != 1 {
			worked <- fmt.Errorf("claim: %d jobs: %w", len(jobs), err)
			return
		}
		email, _ := SendEmail.Decode(jobs[0])
		verdict := store.Verdict{
			ID: jobs[0].ID, Token: jobs[0].LockToken, Outcome: store.Complete,
			Result: []byte(`{"message_id":"sent-to-` + email.To + `"}`),
		}
		_, err = st.Settle(ctx, []store.Verdict{verdict})
		worked <- err
	}()

	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	job, err := client.Wait(waitCtx, res.ID)
	if err != nil {
		log.Fatal(err)
	}
	if err := <-worked; err != nil {
		log.Fatal(err)
	}
	receipt, err := spool.DecodeResult[Receipt](job)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(job.State, receipt.MessageID)
	// Output:
	// completed sent-to-ada@example.com
}

// A job enqueued with UniqueFor keeps its unique key after it finishes:
// enqueueing the key again within the window returns the finished job, and
// GetByUniqueKey reads its result back by the key, from any process.
func ExampleClient_GetByUniqueKey() {
	st, _, cleanup := exampleStore()
	defer cleanup()
	client, err := spool.NewClient(spool.Config{Store: st})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	opts := &spool.EnqueueOptions{Queue: "mail", UniqueKey: "welcome:ada", UniqueFor: time.Hour}

	first, err := SendEmail.Enqueue(ctx, client, Email{To: "ada@example.com"}, opts)
	if err != nil {
		log.Fatal(err)
	}
	// A worker completes it with a result (by hand here, in place of a
	// spool worker).
	jobs, err := st.Claim(ctx, store.ClaimParams{Queue: "mail", Limit: 1, LockFor: time.Minute})
	if err != nil || len(jobs) != 1 {
		log.Fatal(len(jobs), err)
	}
	if _, err := st.Settle(ctx, []store.Verdict{{ID: jobs[0].ID, Token: jobs[0].LockToken, Outcome: store.Complete,
		Result: []byte(`{"message_id":"m-1"}`)}}); err != nil {
		log.Fatal(err)
	}

	// Within the hour, the same key returns the finished job: no second email.
	again, err := SendEmail.Enqueue(ctx, client, Email{To: "ada@example.com"}, opts)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(again.Duplicate, again.ID == first.ID, again.State)

	job, err := client.GetByUniqueKey(ctx, "", "welcome:ada")
	if err != nil {
		log.Fatal(err)
	}
	receipt, err := spool.DecodeResult[Receipt](job)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(receipt.MessageID, job.UniqueUntil.Equal(job.CreatedAt.Add(time.Hour)))
	// Output:
	// true true completed
	// m-1 true
}

func ExampleClient_EnqueueTx() {
	st, path, cleanup := exampleStore()
	defer cleanup()
	client, err := spool.NewClient(spool.Config{Store: st})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	// The application's own connection to the same file, with its own table.
	db, err := sql.Open("sqlite", sqlite.DSN(path, 10*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `CREATE TABLE users (email TEXT PRIMARY KEY)`); err != nil {
		log.Fatal(err)
	}

	// signUp records the user and the welcome e-mail together, or neither.
	signUp := func(addr string, commit bool) {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			log.Fatal(err)
		}
		defer tx.Rollback() //nolint:errcheck // a no-op after Commit
		if _, err := tx.ExecContext(ctx, `INSERT INTO users (email) VALUES (?)`, addr); err != nil {
			log.Fatal(err)
		}
		_, err = client.EnqueueTx(ctx, tx, SendEmail.Item(Email{To: addr, Subject: "Welcome"}, nil))
		if err != nil {
			log.Fatal(err)
		}
		if commit {
			if err := tx.Commit(); err != nil {
				log.Fatal(err)
			}
		}
	}
	signUp("grace@example.com", false) // rolled back: no user, no e-mail
	signUp("ada@example.com", true)

	var users int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM users`).Scan(&users); err != nil {
		log.Fatal(err)
	}
	page, err := client.List(ctx, spool.ListParams{Kind: SendEmail.Name()})
	if err != nil {
		log.Fatal(err)
	}
	email, _ := SendEmail.Decode(page.Jobs[0])
	fmt.Println("users:", users, "jobs:", len(page.Jobs), "to:", email.To)
	// Output:
	// users: 1 jobs: 1 to: ada@example.com
}

func ExampleClient_EnqueueMany() {
	st, _, cleanup := exampleStore()
	defer cleanup()
	client, err := spool.NewClient(spool.Config{Store: st})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	// All or nothing: one bad item refuses the batch and names it.
	_, err = client.EnqueueMany(ctx,
		SendEmail.Item(Email{To: "ada@example.com"}, nil),
		SendEmail.Item(Email{To: "grace@example.com"}, &spool.EnqueueOptions{Priority: 1000}),
	)
	var item *store.ItemError
	if errors.As(err, &item) {
		fmt.Println("refused item", item.Index)
	}

	res, err := client.EnqueueMany(ctx,
		SendEmail.Item(Email{To: "ada@example.com"}, nil),
		SendEmail.Item(Email{To: "grace@example.com"}, &spool.EnqueueOptions{Delay: time.Hour}),
		spool.RawItem("report.build", []byte(`{"month":"2030-01"}`), &spool.EnqueueOptions{Queue: "reports"}),
	)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range res {
		fmt.Println(r.State)
	}
	// Output:
	// refused item 1
	// available
	// scheduled
	// available
}
