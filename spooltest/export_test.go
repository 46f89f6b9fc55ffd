package spooltest

// SetMaxDrain bounds Drain's executions at n until restore is called. Tests
// that use it must not run in parallel with others.
func SetMaxDrain(n int) (restore func()) {
	old := maxDrain
	maxDrain = n
	return func() { maxDrain = old }
}
