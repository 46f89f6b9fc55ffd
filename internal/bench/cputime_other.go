//go:build !unix

package bench

import (
	"errors"
	"time"
)

// cpuTime is not implemented here.
func cpuTime() (time.Duration, error) { return 0, errors.ErrUnsupported }
