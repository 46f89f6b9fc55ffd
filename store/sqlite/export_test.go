package sqlite

import "os"

// Hooks are the test seams of a store (see hooks).
type Hooks struct {
	Sync        func(*os.File) error
	FreeSpace   func(dir string) (int64, error)
	PollChanges bool
}

// OpenWithHooks is Open with test seams.
func OpenWithHooks(path string, cfg Config, h Hooks) (*Store, error) {
	return open(path, cfg, hooks{sync: h.Sync, freeSpace: h.FreeSpace, pollChanges: h.PollChanges})
}

// ExecOnWriter runs q on the writer's connection, outside any group.
func ExecOnWriter(s *Store, q string) error {
	return s.b.writer.do(bg, func(x execer) error {
		_, err := x.exec(q)
		return err
	}, nil)
}
