package sqs

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/spoolrun/spool/store"
)

// DefaultAccount is the account ID of the default tenant and of operator
// keys in queue URLs and ARNs: the one LocalStack and ElasticMQ use.
const DefaultAccount = "000000000000"

// Lengths of SQS names.
const (
	maxQueueName = 80  // with .fifo
	maxIDLen     = 128 // message group and deduplication IDs
	fifoSuffix   = ".fifo"
)

// scope is what one request's key may see and touch, as the /v1 API gives
// it (server/auth.go): one tenant, whose queues are stored under the
// tenant's prefix ("acme/orders"), or, for an operator's key, the queues
// without a prefix (the default tenant's). An operator's key does not
// reach other tenants' queues through SQS: a queue name has no "/".
type scope struct {
	keyID   string
	tenant  string // the tenant of the jobs it sends: "" for an operator's key
	prefix  string // of its queues' stored names: "acme/", or "" for an operator's key
	account string // in its queue URLs and ARNs
	role    string
	queues  []string // the only queues the key may use, as it names them; nil: any
}

// scopeOf returns the scope of a key.
func scopeOf(k *store.APIKey) *scope {
	if k.Tenant == store.AllTenants {
		return &scope{keyID: k.ID, account: DefaultAccount, role: k.Role, queues: k.Queues}
	}
	return &scope{keyID: k.ID, tenant: k.Tenant, prefix: k.Tenant + "/", account: accountOf(k.Tenant), role: k.Role, queues: k.Queues}
}

// accountOf is a tenant's account ID in URLs and ARNs.
func accountOf(tenant string) string {
	if tenant == "" {
		return DefaultAccount
	}
	return tenant
}

// stored returns the stored name of the key's queue name, after checking
// that the key may use it.
func (sc *scope) stored(name string) (string, *Error) {
	if sc.queues != nil && !slices.Contains(sc.queues, name) {
		return "", newError(errAccessDenied, "The API key may use only the queues %s.", strings.Join(sc.queues, ", "))
	}
	return sc.prefix + name, nil
}

// sees reports whether the key may see the queue of this SQS name.
func (sc *scope) sees(name string) bool {
	return sc.queues == nil || slices.Contains(sc.queues, name)
}

// checkQueueName checks an SQS queue name: 1 to 80 letters, digits, - and
// _, where a FIFO queue's ends with .fifo (counted in the 80).
func checkQueueName(name string) *Error {
	base := strings.TrimSuffix(name, fifoSuffix)
	if name == "" || len(name) > maxQueueName || base == "" {
		return invalid("Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length")
	}
	for i := range len(base) {
		c := base[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' && c != '_' {
			return invalid("Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length")
		}
	}
	return nil
}

// isFIFOName reports whether a queue name is a FIFO queue's.
func isFIFOName(name string) bool { return strings.HasSuffix(name, fifoSuffix) }

// queueURL is a queue's URL: the base, the account and the name.
func queueURL(base, account, name string) string {
	return base + "/" + url.PathEscape(account) + "/" + name
}

// parseQueueURL returns the account and the queue name of a queue URL, of
// any host: /ACCOUNT/NAME is all it reads.
func parseQueueURL(s string) (account, name string, ok bool) {
	u, err := url.Parse(s)
	if err != nil || u.Path == "" {
		return "", "", false
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) < 2 {
		return "", "", false
	}
	return parts[len(parts)-2], parts[len(parts)-1], true
}

// queueARN is a queue's ARN.
func queueARN(region, account, name string) string {
	return "arn:aws:sqs:" + region + ":" + account + ":" + name
}

// parseQueueARN returns the account and name of an SQS queue's ARN, of any
// partition and region: arn:PARTITION:sqs:REGION:ACCOUNT:NAME. An account
// may hold colons (a tenant may); a name never does.
func parseQueueARN(arn string) (account, name string, ok bool) {
	parts := strings.SplitN(arn, ":", 5)
	if len(parts) != 5 || parts[0] != "arn" || parts[2] != "sqs" {
		return "", "", false
	}
	rest := parts[4] // ACCOUNT:NAME
	i := strings.LastIndexByte(rest, ':')
	if i <= 0 || i == len(rest)-1 {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}

// baseURL is where the queue URLs of a request point: the configured base,
// or the request's own scheme and host.
func (h *Handler) baseURL(r *http.Request) string {
	if h.cfg.BaseURL != "" {
		return h.cfg.BaseURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
