package loader

// InFlight returns the number of loads in flight the Loader knows of.
func InFlight[K comparable, V any](l *Loader[K, V]) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.flights)
}

// SetHooks installs test hooks, before the Loader is used: joined runs
// (under the Loader's lock) when a lookup starts or joins a load, settled
// after a load's outcome is stored and delivered.
func SetHooks[K comparable, V any](l *Loader[K, V], joined, settled func(K)) {
	l.hooks.joined = joined
	l.hooks.settled = settled
}
