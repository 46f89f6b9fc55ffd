package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/spoolrun/spool/internal/apikey"
	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/store"
)

const keysLong = `API keys let clients call spool serve's HTTP API. A key belongs to one tenant,
or to every tenant (--tenant '*': an operator's key), has a role, and may be
limited to some queues. Roles, from least to most able:
  reader     reads
  producer   also enqueues, publishes and waits on its jobs
  worker     also claims, renews and settles jobs
  admin      does everything within its tenant

Keys live in the store's database, so every server on it accepts the same
keys. The store keeps a hash of a key's secret, never the secret itself: create
prints the key's token once, and it cannot be shown again. A lost token cannot
be recovered: revoke the key and create another.`

func (a *app) keysCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Create, list and revoke the API keys of spool serve",
		Long:  keysLong,
	}
	cmd.AddCommand(a.keysCreateCmd(), a.keysListCmd(), a.keysRevokeCmd(), a.keysSQSCmd())
	return cmd
}

// keyStore opens the command's store (with create, making it if need be)
// and returns its API keys and the function that closes it, or an error
// matching store.ErrUnsupported when the store keeps no keys.
func (a *app) keyStore(cmd *cobra.Command, create bool) (store.KeyStore, func(), error) {
	open := a.openExisting
	if create {
		open = a.openOrCreate
	}
	st, err := open(cmd)
	if err != nil {
		return nil, nil, err
	}
	ks := st.Capabilities().Keys
	if ks == nil {
		st.Close()
		return nil, nil, fmt.Errorf("%w: the store at %s keeps no API keys", store.ErrUnsupported, displayURL(a.storeURL(cmd)))
	}
	return ks, func() { st.Close() }, nil
}

// createdKey is what keys create prints with --json.
type createdKey struct {
	Key   wire.APIKey     `json:"key"`
	Token string          `json:"token"`
	SQS   *sqsCredentials `json:"sqs,omitempty"`
}

// sqsCredentials are the AWS credentials of a key made with --sqs.
type sqsCredentials struct {
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
}

const keysCreateLong = `Create makes a new API key and prints its token, spool_<id>_<secret>, on
stdout. The token is shown this once: the store keeps only a hash of its
secret, so it cannot be shown again. Give it to the client now (as
Authorization: Bearer <token>); a lost token means revoking the key and
creating another.

--tenant is required: the tenant the key acts on ('' for the default tenant),
or '*' for an operator's key, which acts on every tenant. Give '*' only to
operators: an admin key of every tenant can do anything to any job.
--role is required: reader, producer, worker or admin (see spool keys --help).
--queues limits the key to those queues (default: every queue of its tenant).
--expires makes the key stop working after a while: a duration such as 12h or
whole days such as 90d (default: it does not expire).
--sqs lets the key call the SQS facade of spool serve with AWS SDKs too
(docs/sqs.md): stdout then has two more lines, AWS_ACCESS_KEY_ID=<the key's
ID> and AWS_SECRET_ACCESS_KEY=<its SQS secret>, the credentials an SDK signs
with. The SQS secret is derived from the token one way (spool keys
sqs-credentials prints it again from the token) and is stored as it is, for
the server signs with it: reading the database gives the key's access
through SQS, never through the /v1 API.

Invalid input exits 2 and creates nothing. With --json it prints
{"key": {...}, "token": "spool_...", "sqs": {"access_key_id", "secret_access_key"}}.`

const keysCreateExample = `  spool keys create --tenant acme --role worker --queues mail,billing --name "billing workers" --expires 90d
  spool keys create --tenant '*' --role admin --name "ops on-call"
  TOKEN=$(spool keys create --tenant acme --role producer)
  spool keys create --tenant acme --role worker --sqs   # token, then AWS_ACCESS_KEY_ID=... and AWS_SECRET_ACCESS_KEY=...`

type keysCreateFlags struct {
	tenant, role, expires, name string
	queues                      []string
	sqs                         bool
}

func (a *app) keysCreateCmd() *cobra.Command {
	var f keysCreateFlags
	cmd := &cobra.Command{
		Use:     "create --tenant TENANT --role ROLE [flags]",
		Short:   "Make an API key and print its token, once",
		Long:    keysCreateLong,
		Example: keysCreateExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.keysCreate(cmd, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.tenant, "tenant", "", "the tenant the key acts on ('' for the default tenant), or '*' for every tenant: an operator's key (required)")
	fl.StringVar(&f.role, "role", "", "what the key may do: reader, producer, worker or admin (required)")
	fl.StringSliceVar(&f.queues, "queues", nil, "the only queues the key may use (repeat or separate with commas; default every queue)")
	fl.StringVar(&f.expires, "expires", "", "how long the key works: a duration such as 12h, or days such as 90d (default: it does not expire)")
	fl.StringVar(&f.name, "name", "", "a note for people, such as who holds the key")
	fl.BoolVar(&f.sqs, "sqs", false, "let the key call the SQS facade with AWS SDKs too, and print its AWS credentials")
	_ = cmd.MarkFlagRequired("tenant") // the flag exists
	_ = cmd.MarkFlagRequired("role")   // the flag exists
	return cmd
}

// keyAttempts is how many fresh IDs create tries: two keys drawing the same
// 40-bit ID is unlikely, and twice in a row is not going to happen.
const keyAttempts = 3

func (a *app) keysCreate(cmd *cobra.Command, f *keysCreateFlags) error {
	// Check everything before opening (and perhaps creating) the store, so
	// that invalid input changes nothing at all.
	expiresIn, err := apikey.ParseExpiry(f.expires)
	if err != nil {
		return err
	}
	p := apikey.Params{Tenant: f.tenant, Role: f.role, Queues: f.queues, Name: f.name, ExpiresIn: expiresIn, SQS: f.sqs}
	if _, _, err := apikey.New(p, time.Now()); err != nil {
		return err
	}
	ks, closeStore, err := a.keyStore(cmd, true)
	if err != nil {
		return err
	}
	defer closeStore()
	var token string
	var key *store.APIKey
	for range keyAttempts {
		var k store.APIKey
		if token, k, err = apikey.New(p, time.Now()); err != nil {
			return err
		}
		if key, err = ks.CreateKey(cmd.Context(), k); !errors.Is(err, store.ErrDuplicate) {
			break
		}
	}
	if err != nil {
		return err
	}
	var creds *sqsCredentials
	if key.SQSSecret != "" {
		creds = &sqsCredentials{AccessKeyID: key.ID, SecretAccessKey: key.SQSSecret}
	}
	if a.jsonOut {
		a.printJSON(createdKey{Key: wire.KeyOf(key), Token: token, SQS: creds})
		return nil
	}
	fmt.Fprintf(a.stderr, "spool: created API key %s (%s, role %s); its token follows. It is shown only this once and cannot be shown again: store it now.\n",
		key.ID, tenantText(key.Tenant), key.Role)
	fmt.Fprintln(a.stdout, token)
	if creds != nil {
		printSQSCredentials(a.stdout, creds)
	}
	return nil
}

// printSQSCredentials prints AWS credentials as environment assignments,
// the names AWS SDKs read.
func printSQSCredentials(w io.Writer, c *sqsCredentials) {
	fmt.Fprintf(w, "AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n", c.AccessKeyID, c.SecretAccessKey)
}

func (a *app) keysSQSCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "sqs-credentials TOKEN",
		Short: "Print the AWS credentials of a key made with --sqs, from its token",
		Long: `sqs-credentials prints the AWS credentials AWS SDKs sign requests to the SQS
facade with, derived from a key's token (spool_<id>_<secret>): its access key
ID (the key's ID) and its secret access key (derived one way from the token).
Give - to read the token from stdin. It reads no store: the server accepts
the credentials only if the key was made with spool keys create --sqs.

With --json it prints {"access_key_id", "secret_access_key"}.`,
		Example: `  spool keys sqs-credentials "$TOKEN"
  echo "$TOKEN" | spool keys sqs-credentials -`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			token := args[0]
			if token == "-" {
				b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 4096))
				if err != nil {
					return err
				}
				token = strings.TrimSpace(string(b))
			}
			id, secret, err := apikey.Parse(token)
			if err != nil {
				return err
			}
			creds := &sqsCredentials{AccessKeyID: id, SecretAccessKey: apikey.SQSSecret(id, secret)}
			if a.jsonOut {
				a.printJSON(creds)
				return nil
			}
			printSQSCredentials(a.stdout, creds)
			return nil
		},
	}
}

// tenantText names a key's tenant for people.
func tenantText(tenant string) string {
	switch tenant {
	case store.AllTenants:
		return "every tenant"
	case "":
		return "the default tenant"
	}
	return "tenant " + tenant
}

func (a *app) keysListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the API keys, revoked and expired ones included",
		Long: `List prints every API key by ID, revoked and expired ones included, with its
tenant ('*': every tenant), role, queues, name, when it was created and when it
expires, and its status: active, expired or revoked. Tokens and hashes are
never shown.

With --json it prints {"keys": [...]}.`,
		Example: `  spool keys list
  spool keys list --json | jq -r '.keys[] | select(.revoked_at == null) | .id'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ks, closeStore, err := a.keyStore(cmd, false)
			if err != nil {
				return err
			}
			defer closeStore()
			keys, err := ks.ListKeys(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOut {
				a.printJSON(map[string]any{"keys": wire.KeysOf(keys)})
				return nil
			}
			if len(keys) == 0 {
				fmt.Fprintln(a.stderr, "no API keys")
				return nil
			}
			printKeyTable(a.stdout, keys, time.Now())
			return nil
		},
	}
}

func printKeyTable(w io.Writer, keys []*store.APIKey, now time.Time) {
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tTENANT\tROLE\tQUEUES\tSQS\tNAME\tCREATED\tEXPIRES\tSTATUS")
	for _, k := range keys {
		tenant := k.Tenant
		switch tenant {
		case store.AllTenants:
			tenant = "* (all)"
		case "":
			tenant = "(default)"
		}
		queues := "(all)"
		if len(k.Queues) > 0 {
			queues = oneLine(strings.Join(k.Queues, ","), 40)
		}
		name := oneLine(k.Name, 30)
		if name == "" {
			name = "-"
		}
		expires := "never"
		if !k.ExpiresAt.IsZero() {
			expires = timeText(k.ExpiresAt, time.RFC3339)
		}
		sqsAccess := "no"
		if k.SQSSecret != "" {
			sqsAccess = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, tenant, k.Role, queues, sqsAccess, name,
			timeText(k.CreatedAt, time.RFC3339), expires, keyStatus(k, now))
	}
	_ = tw.Flush()
}

// keyStatus is "revoked", "expired" or "active".
func keyStatus(k *store.APIKey, now time.Time) string {
	switch {
	case !k.RevokedAt.IsZero():
		return "revoked"
	case !k.Usable(now):
		return "expired"
	}
	return "active"
}

func (a *app) keysRevokeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID...",
		Short: "Revoke API keys: they stop working at once",
		Long: `Revoke marks API keys revoked: servers refuse them from now on. A revoked key
stays listed, with the time it was revoked; revoking it again changes nothing.
There is no undoing it: create another key instead.

Each key is handled on its own: the ones that exist are revoked, and if any
does not the command says which and exits 1.

With --json it prints {"done": [IDs], "refused": [{"id", "error"}]}.`,
		Example: "  spool keys revoke k3f9a0b1c2d\n  spool keys revoke k3f9a0b1c2d k0c1d2e3f4a",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids := make([]string, 0, len(args))
			seen := make(map[string]bool, len(args))
			for _, id := range args {
				if err := store.ValidName("key id", id, false); err != nil {
					return err
				}
				if !seen[id] {
					seen[id] = true
					ids = append(ids, id)
				}
			}
			ks, closeStore, err := a.keyStore(cmd, false)
			if err != nil {
				return err
			}
			defer closeStore()
			refused := make([]error, len(ids))
			for i, id := range ids {
				refused[i] = ks.RevokeKey(cmd.Context(), id)
			}
			return a.reportRevoked(ids, refused)
		},
	}
}

// reportRevoked prints the outcome of keys revoke, one line a key;
// refused[i] is why ids[i] was refused, or nil. It returns an error (exit 1
// for keys not found) when any was refused.
func (a *app) reportRevoked(ids []string, refused []error) error {
	var errs []error
	out := perItemJSON{Done: []string{}, Refused: []refusal{}}
	for i, id := range ids {
		if err := refused[i]; err != nil {
			errs = append(errs, err)
			out.Refused = append(out.Refused, refusal{ID: id, Error: errorView(err)})
			continue
		}
		out.Done = append(out.Done, id)
		if !a.jsonOut {
			fmt.Fprintf(a.stdout, "revoked API key %s\n", id)
		}
	}
	if a.jsonOut {
		a.printJSON(out)
	}
	if len(errs) == 0 {
		return nil
	}
	return &reportedError{code: exitCode(errors.Join(errs...)),
		err: fmt.Errorf("%d of %d key(s) refused:\n%w", len(errs), len(ids), errors.Join(errs...))}
}
