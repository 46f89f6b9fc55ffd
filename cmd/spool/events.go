package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/store"
)

const publishLong = `Publish appends an event to TOPIC and prints its ID and position: one line,
"ID position N", followed by "version V" when the event has a key (its place
in the key's stream) and by "duplicate" when the topic had the event's ID
already (then nothing was written and the line describes the stored event,
so retrying a publish with --id is safe). When it returns, the event is
durable, and every subscription of the topic gets its own delivery of it.

The payload must be valid JSON (at most 960 KiB); give it inline or as "-" to
read it from stdin. Without --payload the event has none. Invalid input
exits 2 and writes nothing.

With --json it prints {"topic", "id", "position", "version", "duplicate"}.`

const publishExample = `  spool publish orders --kind order.placed --payload '{"order":"o-17","total":42}' --key o-17
  echo '{"user":"ada"}' | spool publish users --kind user.signed_up --payload -
  spool publish orders --kind order.paid --key o-17 --id pay-o-17 --header trace=abc123   # safe to retry`

type publishFlags struct {
	kind    string
	payload string
	key     string
	tenant  string
	id      string
	headers []string
}

func (a *app) publishCmd() *cobra.Command {
	var f publishFlags
	cmd := &cobra.Command{
		Use:     "publish TOPIC --kind KIND [flags]",
		Short:   "Publish an event to a topic",
		Long:    publishLong,
		Example: publishExample,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.publish(cmd, args[0], &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.kind, "kind", "k", "", "the event's kind, such as order.placed: letters, digits and . _ : / - (required)")
	fl.StringVarP(&f.payload, "payload", "p", "", `JSON payload, or "-" to read it from stdin`)
	fl.StringVar(&f.key, "key", "", "ordering key (an aggregate's ID): its events form a stream with versions 1, 2, 3...")
	fl.StringVar(&f.tenant, "tenant", "", "tenant the event belongs to (its deliveries' tenant)")
	fl.StringVar(&f.id, "id", "", "the event's ID (default a new UUIDv7); publishing an ID the topic has writes nothing")
	fl.StringArrayVarP(&f.headers, "header", "H", nil, "a header NAME=VALUE, such as trace=abc123 (repeatable)")
	_ = cmd.MarkFlagRequired("kind")
	return cmd
}

func (a *app) publish(cmd *cobra.Command, topic string, f *publishFlags) error {
	// Check the event before opening (and perhaps creating) the store, so
	// that invalid input changes nothing at all.
	headers, err := parseHeaders(f.headers)
	if err != nil {
		return err
	}
	payload, err := a.payload(f.payload, "")
	if err != nil {
		return err
	}
	in := store.EventInput{ID: f.id, Kind: f.kind, Payload: payload, Key: f.key, Tenant: f.tenant, Headers: headers}
	check := in
	if err := errors.Join(store.ValidTopic(topic), check.Normalize()); err != nil {
		return err
	}
	client, closeStore, err := a.openClient(cmd, true)
	if err != nil {
		return err
	}
	defer closeStore()
	res, err := client.Publish(cmd.Context(), topic, spool.RawEvent(in.Kind, in.Payload,
		&spool.EventOptions{ID: in.ID, Key: in.Key, Tenant: in.Tenant, Headers: in.Headers}))
	if err != nil {
		return unwrapItem(err)
	}
	r := res[0]
	if a.jsonOut {
		a.printJSON(wire.PublishResultOf(topic, r))
		return nil
	}
	line := fmt.Sprintf("%s position %d", r.ID, r.Position)
	if r.Version > 0 {
		line += fmt.Sprintf(" version %d", r.Version)
	}
	if r.Duplicate {
		line += " duplicate"
	}
	fmt.Fprintln(a.stdout, line)
	if r.Duplicate {
		fmt.Fprintf(a.stderr, "spool: not published again: topic %s has event %s already, at position %d\n", topic, r.ID, r.Position)
	}
	return nil
}

// parseHeaders reads --header NAME=VALUE flags.
func parseHeaders(flags []string) (map[string]string, error) {
	return parseKeyValues("--header", flags)
}

// parseKeyValues reads flag's NAME=VALUE values into a map; nil for none.
func parseKeyValues(flag string, flags []string) (map[string]string, error) {
	if len(flags) == 0 {
		return nil, nil
	}
	h := make(map[string]string, len(flags))
	for _, kv := range flags {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("%s %q: want NAME=VALUE", flag, kv)
		}
		if _, dup := h[k]; dup {
			return nil, usagef("%s %s given twice", flag, k)
		}
		h[k] = v
	}
	return h, nil
}

func (a *app) eventsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Read a topic's events",
		Long: `Events reads the log of a topic: events in position order (1, 2, 3... in
commit order), or one key's stream in version order. Events are kept for the
topic's retention (forever by default; see spool topics retention), and
always until every subscription of the topic has been handed them.`,
	}
	cmd.AddCommand(a.eventsListCmd(), a.eventsGetCmd())
	return cmd
}

func (a *app) eventsListCmd() *cobra.Command {
	var after int64
	var key string
	var limit int
	cmd := &cobra.Command{
		Use:   "list TOPIC [flags]",
		Short: "List a topic's events, or one key's stream, a page at a time",
		Long: `List prints a topic's events in position order, at most --limit of them,
starting after position --after. With --key it prints that key's stream
instead, in version order, and --after is then a stream VERSION, not a
position. When there are more, it says so and gives the cursor to pass as
--after for the next page.

With --json it prints {"events": [...], "next": N}, next being 0 on the last
page.`,
		Example: `  spool events list orders
  spool events list orders --after 1200 --limit 500
  spool events list orders --key o-17 --json | jq -r '.events[] | "\(.version) \(.kind)"'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := spool.ReadEventsParams{Topic: args[0], After: after, Key: key, Limit: limit}
			var errs []error
			if limit < 1 || limit > store.MaxReadEvents {
				errs = append(errs, usagef("--limit must be 1..%d, not %d", store.MaxReadEvents, limit))
			}
			if after < 0 {
				errs = append(errs, usagef("--after must not be negative, not %d", after))
			}
			errs = append(errs, store.ValidTopic(p.Topic))
			if err := errors.Join(errs...); err != nil {
				return err
			}
			client, closeStore, err := a.openClient(cmd, false)
			if err != nil {
				return err
			}
			defer closeStore()
			page, err := client.ReadEvents(cmd.Context(), p)
			if err != nil {
				return err
			}
			if a.jsonOut {
				a.printJSON(wire.EventPageOf(page))
				return nil
			}
			if len(page.Events) == 0 {
				fmt.Fprintln(a.stderr, "no events")
				return nil
			}
			printEventTable(a.stdout, page.Events)
			if page.Next != 0 {
				fmt.Fprintf(a.stderr, "more events: next page with --after %d\n", page.Next)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.Int64Var(&after, "after", 0, "only events after this position (with --key: after this stream version)")
	fl.StringVar(&key, "key", "", "only the stream of this ordering key, in version order")
	fl.IntVarP(&limit, "limit", "l", store.DefaultListLimit, fmt.Sprintf("most events to print, 1..%d", store.MaxReadEvents))
	return cmd
}

func printEventTable(w io.Writer, events []*spool.StoredEvent) {
	tw := newTable(w)
	fmt.Fprintln(tw, "POSITION\tID\tKIND\tKEY\tVERSION\tPUBLISHED\tPAYLOAD")
	for _, e := range events {
		key, version := "-", "-"
		if e.Key != "" {
			key, version = e.Key, fmt.Sprint(e.Version)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Position, e.ID, e.Kind, key, version,
			timeText(e.PublishedAt, time.RFC3339), oneLine(bytesText(e.Payload), 60))
	}
	_ = tw.Flush()
}

func (a *app) eventsGetCmd() *cobra.Command {
	var topic string
	cmd := &cobra.Command{
		Use:   "get ID [--topic TOPIC]",
		Short: "Show one event in full",
		Long: `Get prints one event: its topic, position, kind, key and stream version,
tenant, headers and payload. Without --topic it looks in every topic and shows
the first found. An event that does not exist (or was removed by the topic's
retention) exits 1.

With --json it prints the event.`,
		Example: `  spool events get 0193a4c1-5e3b-7d2e-8f00-1a2b3c4d5e6f
  spool events get pay-o-17 --topic orders --json | jq .payload`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if topic != "" {
				if err := store.ValidTopic(topic); err != nil {
					return err
				}
			}
			if args[0] == "" {
				return usagef("the event ID is empty")
			}
			client, closeStore, err := a.openClient(cmd, false)
			if err != nil {
				return err
			}
			defer closeStore()
			e, err := client.GetEvent(cmd.Context(), topic, args[0])
			if err != nil {
				return err
			}
			if a.jsonOut {
				a.printJSON(wire.EventOf(e))
				return nil
			}
			printEvent(a.stdout, e)
			return nil
		},
	}
	cmd.Flags().StringVar(&topic, "topic", "", "the event's topic (default: look in every topic)")
	return cmd
}

// printEvent prints an event for a person, one field a line.
func printEvent(w io.Writer, e *spool.StoredEvent) {
	tw, row := newFields(w)
	row("Topic", e.Topic)
	row("Position", fmt.Sprint(e.Position))
	row("ID", e.ID)
	row("Kind", e.Kind)
	row("Key", e.Key)
	if e.Key != "" {
		row("Version", fmt.Sprint(e.Version))
	}
	row("Tenant", e.Tenant)
	row("Published", timeText(e.PublishedAt, time.RFC3339Nano))
	var hs []string
	for _, k := range slices.Sorted(maps.Keys(e.Headers)) {
		hs = append(hs, k+"="+e.Headers[k])
	}
	row("Headers", strings.Join(hs, ", "))
	row("Payload", bytesText(e.Payload))
	_ = tw.Flush()
}

func (a *app) topicsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topics",
		Short: "List topics and set how long they keep their events",
		Long: `A topic is created by its first event, subscription or retention setting. It
keeps its events forever unless given a retention; even then, an event is
kept until every subscription of the topic has been handed it (a subscription
holding events this way reports it in spool subscriptions get).`,
	}
	cmd.AddCommand(a.topicsListCmd(), a.topicsRetentionCmd())
	return cmd
}

func (a *app) topicsListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List topics with their heads and retention",
		Long: `List prints every topic with its head (the last position given out), the
first position it still keeps, its retention and when its last event was
published.

With --json it prints {"topics": [{"name", "head", "oldest",
"retention_seconds", "published"}]}, retention_seconds being null for a topic
that keeps its events forever.`,
		Example: `  spool topics list
  spool topics list --json | jq -r '.topics[].name'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, closeStore, err := a.openClient(cmd, false)
			if err != nil {
				return err
			}
			defer closeStore()
			topics, err := client.Topics(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOut {
				a.printJSON(map[string]any{"topics": wire.TopicsOf(topics)})
				return nil
			}
			if len(topics) == 0 {
				fmt.Fprintln(a.stderr, "no topics")
				return nil
			}
			printTopicTable(a.stdout, topics, time.Now())
			return nil
		},
	}
}

func printTopicTable(w io.Writer, topics []spool.TopicInfo, now time.Time) {
	tw := newTable(w)
	fmt.Fprintln(tw, "TOPIC\tHEAD\tOLDEST\tRETENTION\tLAST PUBLISHED")
	for _, t := range topics {
		oldest, last := "-", "-"
		if t.Oldest > 0 {
			oldest = fmt.Sprint(t.Oldest)
		}
		if !t.Published.IsZero() {
			last = relative(t.Published, now)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", t.Name, t.Head, oldest, retentionText(t.Retention), last)
	}
	_ = tw.Flush()
}

// retentionText is a topic's retention for a person.
func retentionText(d time.Duration) string {
	if d == spool.KeepEvents {
		return "forever"
	}
	return d.String()
}

func (a *app) topicsRetentionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "retention TOPIC DURATION|forever",
		Short: "Set how long a topic keeps its events",
		Long: `Retention keeps a topic's events for at least DURATION (such as 72h or 30m),
or "forever" (the default). Older events are deleted by the retention pass of
any running worker, but never one that a subscription of the topic has not yet
been handed: a subscription that falls behind holds them, and says so.

With --json it prints the topic as spool topics list does.`,
		Example: `  spool topics retention orders 168h
  spool topics retention audit forever`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			topic := args[0]
			d, err := parseRetention(args[1])
			if err != nil {
				return err
			}
			if err := store.ValidTopic(topic); err != nil {
				return err
			}
			client, closeStore, err := a.openClient(cmd, true)
			if err != nil {
				return err
			}
			defer closeStore()
			ctx := cmd.Context()
			if err := client.SetTopicRetention(ctx, topic, d); err != nil {
				return err
			}
			if a.jsonOut {
				topics, err := client.Topics(ctx)
				if err != nil {
					return err
				}
				info := spool.TopicInfo{Name: topic, Retention: d}
				if i := slices.IndexFunc(topics, func(t spool.TopicInfo) bool { return t.Name == topic }); i >= 0 {
					info = topics[i]
				}
				a.printJSON(wire.TopicOf(info))
				return nil
			}
			if d == spool.KeepEvents {
				fmt.Fprintf(a.stdout, "topic %s keeps its events forever\n", topic)
			} else {
				fmt.Fprintf(a.stdout, "topic %s keeps its events for %s\n", topic, d)
			}
			return nil
		},
	}
}

// parseRetention reads a retention: a duration of at least 0, or "forever".
func parseRetention(s string) (time.Duration, error) {
	if s == "forever" {
		return spool.KeepEvents, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, &store.ValidationError{Field: "retention", Reason: fmt.Sprintf("%q is not a duration of 0 or more (such as 72h) or forever", s)}
	}
	return d, nil
}
