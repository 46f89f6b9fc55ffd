// Package childenv reads the settings the crash tests pass to their child
// processes through the environment.
package childenv

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

// Int returns the integer in the environment variable name, or def when
// it is unset.
func Int(name string, def int) (int, error) {
	s := os.Getenv(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return n, nil
}

// Duration returns the duration in the environment variable name, or def
// when it is unset.
func Duration(name string, def time.Duration) (time.Duration, error) {
	s := os.Getenv(name)
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return d, nil
}
