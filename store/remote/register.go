package remote

import (
	"context"

	"github.com/spoolrun/spool/store"
)

// Importing the package registers the schemes "http" and "https" with
// store.Open: a store URL naming a spool serve opens a remote store, with
// the API key of the URL's password or $SPOOL_API_KEY.
func init() {
	for _, scheme := range []string{"http", "https"} {
		store.Register(scheme, store.Backend{Name: "remote", Open: openURL})
	}
}

func openURL(_ context.Context, rawURL string, opts store.OpenOptions) (store.Store, error) {
	st, err := Open(rawURL, Options{Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	return st, nil
}
