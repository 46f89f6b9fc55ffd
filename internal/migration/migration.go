// Package migration reads a backend's embedded, versioned migration files:
// NNNN_name.up.sql and NNNN_name.down.sql in one directory.
package migration

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Applied is a migration recorded in a store's migrations table.
type Applied struct {
	Version   int
	Name      string
	AppliedAt time.Time
}

// Step is one migration a Migrate call ran.
type Step struct {
	Version int
	Name    string
	Down    bool // true when the migration was undone
}

// Migration is one versioned schema change.
type Migration struct {
	Version int    // 1, 2, ...: applied in this order
	Name    string // from the file name, such as "init"
	Up      string // SQL that applies the change
	Down    string // SQL that undoes it
}

// Read returns the migrations in dir of fsys in version order. Files whose
// names do not start with a version number are ignored; a version without an
// up file is an error.
func Read(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	byVersion := map[int]*Migration{}
	for _, e := range entries {
		num, rest, ok := strings.Cut(e.Name(), "_") // 0001_init.up.sql
		if !ok {
			continue
		}
		v, err := strconv.Atoi(num)
		if err != nil {
			continue
		}
		body, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		m := byVersion[v]
		if m == nil {
			m = &Migration{Version: v}
			byVersion[v] = m
		}
		switch {
		case strings.HasSuffix(rest, ".up.sql"):
			m.Name, m.Up = strings.TrimSuffix(rest, ".up.sql"), string(body)
		case strings.HasSuffix(rest, ".down.sql"):
			m.Down = string(body)
		}
	}
	out := make([]Migration, 0, len(byVersion))
	for _, m := range byVersion {
		if m.Up == "" {
			return nil, fmt.Errorf("migration %d has no up file", m.Version)
		}
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// MustRead is Read for migrations embedded at build time, where an error is
// a bug in the build.
func MustRead(fsys fs.FS, dir string) []Migration {
	ms, err := Read(fsys, dir)
	if err != nil {
		panic(err)
	}
	return ms
}
