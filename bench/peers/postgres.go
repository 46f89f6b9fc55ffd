package peers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
)

// pgServer is the PostgreSQL server shared by Spool's PostgreSQL store and
// River. Each workload gets a database of its own, dropped afterwards.
type pgServer struct {
	adminURL string // a URL to a database that exists, such as postgres

	version    string // server_version, once probed
	syncCommit string // synchronous_commit
	fsync      string // fsync
}

// probe connects and reads the settings that decide durability.
func (s *pgServer) probe(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, s.adminURL)
	if err != nil {
		return unreachable(redactURL(s.adminURL), err)
	}
	defer conn.Close(ctx)
	for _, v := range []struct {
		name string
		dst  *string
	}{{"server_version", &s.version}, {"synchronous_commit", &s.syncCommit}, {"fsync", &s.fsync}} {
		if err := conn.QueryRow(ctx, "SHOW "+v.name).Scan(v.dst); err != nil {
			return fmt.Errorf("show %s: %w", v.name, err)
		}
	}
	return nil
}

// durable reports whether a committed transaction is fsynced before the
// commit returns, and says so in words.
func (s *pgServer) durability() (durable bool, text, caveat string) {
	if s.fsync == "on" && (s.syncCommit == "on" || s.syncCommit == "remote_apply" || s.syncCommit == "remote_write" || s.syncCommit == "local") {
		return true, "fsync per commit (synchronous_commit=" + s.syncCommit + ")", ""
	}
	if s.version == "" {
		return false, "unknown (server not probed)", "durability unknown"
	}
	return false, fmt.Sprintf("no fsync per commit (fsync=%s, synchronous_commit=%s)", s.fsync, s.syncCommit), "no fsync"
}

func (s *pgServer) serverName() string {
	if s.version == "" {
		return "PostgreSQL"
	}
	return "PostgreSQL " + s.version
}

// createDB creates a fresh database named prefix_<random> and returns its
// name and URL.
func (s *pgServer) createDB(ctx context.Context, prefix string) (name, dbURL string, err error) {
	var b [6]byte
	_, _ = rand.Read(b[:])
	name = prefix + "_" + hex.EncodeToString(b[:])
	conn, err := pgx.Connect(ctx, s.adminURL)
	if err != nil {
		return "", "", unreachable(redactURL(s.adminURL), err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", "", fmt.Errorf("create database %s: %w", name, err)
	}
	u, err := url.Parse(s.adminURL)
	if err != nil {
		return "", "", fmt.Errorf("admin URL: %w", err)
	}
	u.Path = "/" + name
	return name, u.String(), nil
}

// dropDB drops the database, disconnecting whoever is still on it.
func (s *pgServer) dropDB(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, s.adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}

// redactURL hides a password in a URL before it is printed.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return strings.Replace(u.String(), "xxxxx", "…", 1)
}
