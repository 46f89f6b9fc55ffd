//go:build linux || darwin || freebsd

package sqlite

import "golang.org/x/sys/unix"

// statfsFree returns the bytes free for unprivileged users on the file
// system holding dir.
func statfsFree(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil //nolint:gosec,unconvert // block counts and sizes fit; field types differ by OS
}
