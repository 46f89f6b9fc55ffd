//go:build !(linux || darwin || freebsd)

package sqlite

import "errors"

// statfsFree is not implemented here: the free-space floor is not enforced.
func statfsFree(string) (int64, error) { return 0, errors.ErrUnsupported }
