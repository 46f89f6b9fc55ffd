package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/store"
)

const healthLong = `Health checks readiness and exits 0 when ready, 1 when not, for container
health checks (Docker HEALTHCHECK, a Kubernetes exec probe).

Without --url it opens the store (--store) and checks that the database
answers and that its schema is the one this build expects; it does not
create a SQLite file that is missing. With --url it asks a running spool
serve or spool work --metrics-addr instead: GET URL/readyz (URL/livez with
--live) must answer 200.`

const healthExample = `  spool health --store postgres://app@db/app
  spool health --url http://127.0.0.1:8080
  spool health --url http://127.0.0.1:9090 --live`

type healthFlags struct {
	url     string
	live    bool
	timeout time.Duration
}

func (a *app) healthCmd() *cobra.Command {
	var f healthFlags
	cmd := &cobra.Command{
		Use:     "health",
		Short:   "Check readiness: exit 0 when ready, 1 when not",
		Long:    healthLong,
		Example: healthExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.health(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.url, "url", "", "ask a running server at this base URL (http://HOST:PORT) instead of opening the store")
	fl.BoolVar(&f.live, "live", false, "with --url: check liveness (/livez) instead of readiness")
	fl.DurationVar(&f.timeout, "timeout", 5*time.Second, "give up after this long")
	return cmd
}

func (a *app) health(cmd *cobra.Command, f healthFlags) error {
	if f.timeout <= 0 {
		return usagef("--timeout must be positive")
	}
	if f.live && f.url == "" {
		return usagef("--live needs --url: liveness is a running process's")
	}
	if f.url != "" {
		if u, err := url.Parse(f.url); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usagef("--url %q: want http://HOST:PORT", f.url)
		}
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
	defer cancel()
	var err error
	if f.url != "" {
		err = probeURL(ctx, f.url, f.live)
	} else {
		err = a.checkStore(ctx, cmd)
	}
	if a.jsonOut {
		out := map[string]string{"status": "ok"}
		if err != nil {
			out = map[string]string{"status": "not ok", "error": strings.Join(errorLines(err), "; ")}
		}
		a.printJSON(out)
	}
	if err != nil {
		return &reportedError{code: exitFailed, err: err}
	}
	if !a.jsonOut {
		fmt.Fprintln(a.stdout, "ok")
	}
	return nil
}

// checkStore opens the store and checks it as readiness does.
func (a *app) checkStore(ctx context.Context, cmd *cobra.Command) error {
	st, err := openStore(ctx, a.storeURL(cmd), store.OpenOptions{MustExist: true})
	if err != nil {
		return err
	}
	defer st.Close()
	h, err := spool.NewHealth(spool.HealthConfig{Store: st})
	if err != nil {
		return err
	}
	return h.Ready(ctx)
}

// probeURL asks base's /readyz (or /livez) and wants 200.
func probeURL(ctx context.Context, base string, live bool) error {
	u, err := url.Parse(base)
	if err != nil {
		return err
	}
	path := "/readyz"
	if live {
		path = "/livez"
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return errors.New(u.String() + ": " + resp.Status + ": " + strings.TrimSpace(string(body)))
	}
	return nil
}
