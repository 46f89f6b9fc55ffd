package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/store"
)

const subscriptionsLong = `A durable subscription gets its own delivery of every event published to its
topic from its start point on (of the kinds it takes, when --kinds limits
them). A delivery is a job in the subscription's queue, "sub/TOPIC/NAME": it is
retried with backoff when its handler fails and dead-lettered after its max
attempts, where spool dlq list --queue sub/TOPIC/NAME finds it. Subscriptions
are independent: one that fails or falls behind holds up no other.

Work a subscription with spool work --subscription TOPIC/NAME -- COMMAND, or
from Go with spool.Subscribe. Get shows how far behind a subscription is.`

func (a *app) subscriptionsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "subscriptions",
		Aliases: []string{"subs"},
		Short:   "Add, inspect, pause, rewind and delete durable subscriptions to topics",
		Long:    subscriptionsLong,
	}
	cmd.AddCommand(
		a.subscriptionsAddCmd(),
		a.subscriptionsListCmd(),
		a.subscriptionsGetCmd(),
		a.subscriptionsPauseCmd(true),
		a.subscriptionsPauseCmd(false),
		a.subscriptionsDeleteCmd(),
		a.subscriptionsRewindCmd(),
	)
	return cmd
}

const subscriptionsAddLong = `Add creates a durable subscription NAME to TOPIC. Adding one that exists with
the same definition changes nothing (so it is safe in a deploy script); one
that exists with another definition is refused with exit 3: delete it first,
or use another name.

--from says where a new subscription starts (it is ignored when it exists):
  now (default)   only events published from now on
  start           every event the topic still keeps
  N               the event at position N and those after it
  RFC 3339 time   the first event published at or after it, such as
                  2030-01-02T15:04:05Z

--ordered hands a key's events out one at a time, in publish order: the next
waits until the previous completed or was cancelled. --on-dead-head says what
happens to a key when its delivery at the head of the line is dead-lettered:
  skip (default)  the dead delivery stays in the dead letters and the key's
                  next event runs
  block           the key stops there, while other keys go on, until the dead
                  delivery is requeued (spool dlq requeue ID: it runs again,
                  first in line) or purged (spool dlq purge ID: it is skipped)
block needs --ordered.

Each delivery is retried with exponential backoff between --retry-base and
--retry-max until --max-attempts failed attempts, then dead-lettered.
--lock-for is how long a worker's claim holds a delivery (renewed while it
runs). Invalid input exits 2 and writes nothing.

With --json it prints the subscription, with "created" true when it was new.`

const subscriptionsAddExample = `  spool subscriptions add orders mail --kinds order.placed,order.paid
  spool subscriptions add orders projection --from start --ordered
  spool subscriptions add orders ledger --ordered --on-dead-head block
  spool subscriptions add orders audit --from 2030-01-02T00:00:00Z --max-attempts 5 --retry-base 2s --retry-max 10m`

type subscriptionAddFlags struct {
	from          string
	kinds         []string
	ordered       bool
	onDeadHead    string
	maxAttempts   int
	maxDeliveries int
	lockFor       time.Duration
	retryBase     time.Duration
	retryMax      time.Duration
}

func (a *app) subscriptionsAddCmd() *cobra.Command {
	var f subscriptionAddFlags
	cmd := &cobra.Command{
		Use:     "add TOPIC NAME [flags]",
		Short:   "Create a durable subscription to a topic",
		Long:    subscriptionsAddLong,
		Example: subscriptionsAddExample,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.subscriptionsAdd(cmd, args[0], args[1], &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.from, "from", "now", "where a new subscription starts: start, now, a position or an RFC 3339 time")
	fl.StringSliceVar(&f.kinds, "kinds", nil, "only events of these kinds (repeat or separate with commas; default every kind)")
	fl.BoolVar(&f.ordered, "ordered", false, "hand a key's events out one at a time, in publish order")
	fl.StringVar(&f.onDeadHead, "on-dead-head", string(store.DeadHeadSkip),
		"with --ordered, what a dead-lettered delivery does to its key: skip (the next event runs) or block (the key waits for a requeue or purge)")
	fl.IntVar(&f.maxAttempts, "max-attempts", 0, fmt.Sprintf("failed attempts before a delivery is dead-lettered (default %d)", store.DefaultMaxAttempts))
	fl.IntVar(&f.maxDeliveries, "max-deliveries", 0, fmt.Sprintf("claims of a delivery (lost locks included) before it is dead-lettered (default %d)", store.DefaultMaxDeliveries))
	fl.DurationVar(&f.lockFor, "lock-for", 0, "how long a claim holds a delivery, renewed while it runs (default 30s)")
	fl.DurationVar(&f.retryBase, "retry-base", 0, "backoff after the first failed attempt, doubling after each (default 1s)")
	fl.DurationVar(&f.retryMax, "retry-max", 0, "longest backoff between attempts (default 1h)")
	return cmd
}

func (a *app) subscriptionsAdd(cmd *cobra.Command, topic, name string, f *subscriptionAddFlags) error {
	// Check the definition before opening (and perhaps creating) the
	// store, so that invalid input changes nothing at all.
	from, err := store.ParseStartAt(f.from)
	if err != nil {
		return err
	}
	p := spool.SubscriptionParams{Topic: topic, Name: name, From: from, Kinds: f.kinds, Ordered: f.ordered,
		OnDeadHead: spool.DeadHeadPolicy(f.onDeadHead), LockFor: f.lockFor, MaxAttempts: f.maxAttempts, MaxDeliveries: f.maxDeliveries,
		RetryBase: f.retryBase, RetryMax: f.retryMax}
	if err := p.Normalize(); err != nil {
		return err
	}
	st, err := a.openOrCreate(cmd)
	if err != nil {
		return err
	}
	defer st.Close()
	es := st.Capabilities().Events
	if es == nil {
		return spool.ErrEventsUnsupported
	}
	sub, created, err := es.CreateSubscription(cmd.Context(), p)
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("%w (compare with spool subscriptions get %s %s)", err, topic, name)
		}
		return err
	}
	if a.jsonOut {
		a.printJSON(wire.CreatedSubscription{Subscription: wire.SubscriptionOf(sub), Created: created})
		return nil
	}
	if created {
		fmt.Fprintf(a.stdout, "created subscription %s: its first event is position %d (the topic's head is %d)\n",
			sub.Ref(), sub.Cursor+1, sub.Lag.Head)
	} else {
		fmt.Fprintf(a.stdout, "subscription %s exists with this definition: unchanged (cursor %d, head %d)\n",
			sub.Ref(), sub.Cursor, sub.Lag.Head)
		if f.from != "now" {
			fmt.Fprintf(a.stderr, "spool: --from applies only when a subscription is created; use spool subscriptions rewind %s %s --to %s to move it\n",
				topic, name, f.from)
		}
	}
	return nil
}

func (a *app) subscriptionsListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list [TOPIC]",
		Short: "List subscriptions with their lag",
		Long: `List prints the subscriptions of TOPIC (of every topic without one), by topic
then name, with how far behind each is: BEHIND counts the events not yet
handled (not yet routed to it, plus its deliveries not finished), DEAD its
dead-lettered deliveries, OLDEST how long the oldest event not yet handled has
waited. A subscription holding events past its topic's retention is flagged.

With --json it prints {"subscriptions": [...]}.`,
		Example: `  spool subscriptions list
  spool subscriptions list orders --json | jq '.subscriptions[] | select(.lag.behind > 1000) | .name'`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			topic := ""
			if len(args) == 1 {
				topic = args[0]
				if err := store.ValidTopic(topic); err != nil {
					return err
				}
			}
			client, closeStore, err := a.openClient(cmd, false)
			if err != nil {
				return err
			}
			defer closeStore()
			subs, err := client.Subscriptions().List(cmd.Context(), topic)
			if err != nil {
				return err
			}
			if a.jsonOut {
				a.printJSON(map[string]any{"subscriptions": wire.SubscriptionsOf(subs)})
				return nil
			}
			if len(subs) == 0 {
				fmt.Fprintln(a.stderr, "no subscriptions")
				return nil
			}
			printSubscriptionTable(a.stdout, subs)
			for _, s := range subs {
				if s.Lag.HoldsRetention {
					fmt.Fprintf(a.stderr, "spool: WARNING: subscription %s %s\n", s.Ref(), fallsBehind)
				}
			}
			return nil
		},
	}
}

// fallsBehind is the warning for a subscription with Lag.HoldsRetention.
const fallsBehind = "falls behind: holding events past the topic's retention"

func printSubscriptionTable(w io.Writer, subs []*spool.Subscription) {
	tw := newTable(w)
	fmt.Fprintln(tw, "TOPIC\tNAME\tKINDS\tORDERED\tPAUSED\tCURSOR\tHEAD\tBEHIND\tPENDING\tDEAD\tOLDEST")
	for _, s := range subs {
		oldest := "-"
		if s.Lag.OldestAge > 0 {
			oldest = age(s.Lag.OldestAge)
		}
		if s.Lag.HoldsRetention {
			oldest += " (holds retention!)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", s.Topic, s.Name, oneLine(kindsText(s.Kinds), 40),
			yesNo(s.Ordered), yesNo(s.Paused), s.Cursor, s.Lag.Head, s.Lag.Behind, s.Lag.Pending, s.Lag.Dead, oldest)
	}
	_ = tw.Flush()
}

func kindsText(kinds []string) string {
	if len(kinds) == 0 {
		return "(all)"
	}
	return strings.Join(kinds, ",")
}

func (a *app) subscriptionsGetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "get TOPIC NAME",
		Short: "Show a subscription's definition and lag",
		Long: `Get prints a subscription's definition and how far behind it is:
  head       the topic's last position
  cursor     the last position routed to the subscription
  unrouted   events after the cursor (head - cursor)
  pending    deliveries not finished (scheduled, available, running)
  dead       dead-lettered deliveries kept in its queue
  behind     unrouted + pending: events not yet handled
  oldest     how long the oldest event not yet handled has waited
An ordered subscription also shows what a dead-lettered delivery does to its
key (on dead head: skip or block).
When the subscription holds events past the topic's retention (it has not been
handed them, so they are kept for it) it says so loudly. A subscription that
does not exist exits 1.

With --json it prints the subscription with its "lag".`,
		Example: `  spool subscriptions get orders mail
  spool subscriptions get orders mail --json | jq .lag.behind`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			topic, name := args[0], args[1]
			client, closeStore, err := a.subscriptionClient(cmd, topic, name)
			if err != nil {
				return err
			}
			defer closeStore()
			sub, err := client.Subscriptions().Get(cmd.Context(), topic, name)
			if err != nil {
				return err
			}
			if a.jsonOut {
				a.printJSON(wire.SubscriptionOf(sub))
				return nil
			}
			printSubscription(a.stdout, sub)
			return nil
		},
	}
}

// printSubscription prints a subscription for a person: its definition,
// then its lag, one field a line.
func printSubscription(w io.Writer, s *spool.Subscription) {
	tw, row := newFields(w)
	ts := func(t time.Time) string { return timeText(t, time.RFC3339) }
	row("Topic", s.Topic)
	row("Name", s.Name)
	row("Queue", s.Queue)
	row("Kinds", kindsText(s.Kinds))
	row("Ordered", yesNo(s.Ordered))
	if s.Ordered {
		row("On dead head", string(s.OnDeadHead))
	}
	row("Paused", yesNo(s.Paused))
	row("Lock for", s.LockFor.String())
	row("Max attempts", fmt.Sprint(s.MaxAttempts))
	row("Max deliveries", fmt.Sprint(s.MaxDeliveries))
	row("Retry", fmt.Sprintf("backoff from %v to %v", s.RetryBase, s.RetryMax))
	row("Created", ts(s.CreatedAt))
	row("Updated", ts(s.UpdatedAt))
	row("Head", fmt.Sprint(s.Lag.Head))
	row("Cursor", fmt.Sprint(s.Cursor))
	row("Unrouted", fmt.Sprint(s.Lag.Unrouted))
	row("Pending", fmt.Sprint(s.Lag.Pending))
	row("Dead", fmt.Sprint(s.Lag.Dead))
	row("Behind", fmt.Sprint(s.Lag.Behind))
	oldest := "-"
	if s.Lag.OldestAge > 0 {
		oldest = age(s.Lag.OldestAge)
	}
	row("Oldest age", oldest)
	_ = tw.Flush()
	if s.Lag.Dead > 0 {
		fmt.Fprintf(w, "Dead letters: spool dlq list --queue %s\n", s.Queue)
		if s.OnDeadHead == spool.DeadHeadBlock {
			fmt.Fprintln(w, "Each dead delivery of an event with a key blocks that key: spool dlq requeue ID runs it again, spool dlq purge ID skips it")
		}
	}
	if s.Lag.HoldsRetention {
		fmt.Fprintf(w, "WARNING: %s %s: events it has not been handed are kept until it catches up\n", s.Ref(), fallsBehind)
	}
}

func (a *app) subscriptionsPauseCmd(pause bool) *cobra.Command {
	use, short, done := "resume TOPIC NAME", "Hand out a paused subscription's deliveries again", "resumed"
	long := `Resume lets workers claim a paused subscription's deliveries again.`
	if pause {
		use, short, done = "pause TOPIC NAME", "Stop workers from claiming a subscription's deliveries", "paused"
		long = `Pause stops workers from claiming a subscription's deliveries until it is
resumed. Events go on being routed to it and wait; deliveries already running
finish normally. Other subscriptions of the topic are not affected.`
	}
	verb := strings.Fields(use)[0]
	return &cobra.Command{
		Use:   use,
		Short: short,
		Long: long + `

A subscription that does not exist exits 1. With --json it prints
{"topic", "name", "paused"}.`,
		Example: "  spool subscriptions " + verb + " orders mail",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			topic, name := args[0], args[1]
			client, closeStore, err := a.subscriptionClient(cmd, topic, name)
			if err != nil {
				return err
			}
			defer closeStore()
			if pause {
				err = client.Subscriptions().Pause(cmd.Context(), topic, name)
			} else {
				err = client.Subscriptions().Resume(cmd.Context(), topic, name)
			}
			if err != nil {
				return err
			}
			if a.jsonOut {
				a.printJSON(map[string]any{"topic": topic, "name": name, "paused": pause})
			} else {
				fmt.Fprintf(a.stdout, "subscription %s/%s %s\n", topic, name, done)
			}
			return nil
		},
	}
}

func (a *app) subscriptionsDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete TOPIC NAME",
		Short: "Delete a subscription and all its deliveries",
		Long: `Delete removes a subscription for good, with every delivery it has, dead
letters included. A worker still running one of its deliveries has its verdict
refused. The topic's events are kept (retention permitting).

A subscription that does not exist exits 1. With --json it prints
{"topic", "name", "deleted"}.`,
		Example: "  spool subscriptions delete orders mail",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			topic, name := args[0], args[1]
			client, closeStore, err := a.subscriptionClient(cmd, topic, name)
			if err != nil {
				return err
			}
			defer closeStore()
			if err := client.Subscriptions().Delete(cmd.Context(), topic, name); err != nil {
				return err
			}
			if a.jsonOut {
				a.printJSON(map[string]any{"topic": topic, "name": name, "deleted": true})
			} else {
				fmt.Fprintf(a.stdout, "subscription %s/%s deleted\n", topic, name)
			}
			return nil
		},
	}
}

func (a *app) subscriptionsRewindCmd() *cobra.Command {
	var to string
	var forget bool
	cmd := &cobra.Command{
		Use:   "rewind TOPIC NAME --to start|POSITION|RFC3339",
		Short: "Move a subscription so it gets events again from a point",
		Long: `Rewind moves a subscription's cursor so that the next event routed to it is
the first at or after --to:
  start           the first event the topic still keeps (rebuild a projection)
  N               the event at position N
  RFC 3339 time   the first event published at or after it
  now             skip everything published so far
Deliveries waiting to be claimed are dropped (the rewound cursor routes those
events again, or skips them when moving forward); running ones finish. Dead
letters are kept: with --on-dead-head block, one still blocks its key for the
events routed again until it is requeued or purged.

Rewind only what may run again: a projection that rebuilds its state, not a
subscription that sends e-mails. The subscription's inbox entries (the
handler's MarkSeen marks) are kept, so a handler that checks them skips what
it handled before; --forget-inbox deletes them first, to rebuild. It prints
where the subscription now is; with --json, the subscription. A subscription
that does not exist exits 1.`,
		Example: `  spool subscriptions rewind orders projection --to start
  spool subscriptions rewind orders audit --to 2030-01-02T00:00:00Z`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			topic, name := args[0], args[1]
			at, err := store.ParseStartAt(to)
			if to == "" {
				err = &store.ValidationError{Field: "to", Reason: "is required: start, now, a position or an RFC 3339 time"}
			}
			var ve *store.ValidationError
			if errors.As(err, &ve) && ve.Field == "from" {
				err = &store.ValidationError{Field: "to", Reason: ve.Reason}
			}
			if err := errors.Join(err, store.ValidSubscriptionRef(topic, name)); err != nil {
				return err
			}
			client, closeStore, err := a.openClient(cmd, false)
			if err != nil {
				return err
			}
			defer closeStore()
			if forget {
				if _, err := client.Subscriptions().Get(cmd.Context(), topic, name); err != nil {
					return err
				}
				n, err := client.ForgetInbox(cmd.Context(), topic+"/"+name)
				if err != nil {
					return err
				}
				if !a.jsonOut {
					fmt.Fprintf(a.stdout, "forgot %d inbox entries of %s/%s\n", n, topic, name)
				}
			}
			sub, err := client.Subscriptions().Rewind(cmd.Context(), topic, name, at)
			if err != nil {
				return err
			}
			if a.jsonOut {
				a.printJSON(wire.SubscriptionOf(sub))
				return nil
			}
			fmt.Fprintf(a.stdout, "rewound subscription %s: the next event routed is position %d (head %d, %d behind)\n",
				sub.Ref(), sub.Cursor+1, sub.Lag.Head, sub.Lag.Behind)
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "where the subscription moves to: start, a position, an RFC 3339 time, or now (required)")
	cmd.Flags().BoolVar(&forget, "forget-inbox", false, "delete the subscription's inbox entries first, so its handlers see every replayed event as new")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

// subscriptionClient checks a subscription's TOPIC and NAME, then opens
// the store: bad names exit 2 without creating a store.
func (a *app) subscriptionClient(cmd *cobra.Command, topic, name string) (*spool.Client, func(), error) {
	if err := store.ValidSubscriptionRef(topic, name); err != nil {
		return nil, nil, err
	}
	return a.openClient(cmd, false)
}
