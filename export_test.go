package spool

// TestHooks lets the package's external tests watch and steer a Worker.
type TestHooks = testHooks

// NewWorkerWithHooks is NewWorker with test hooks.
func NewWorkerWithHooks(cfg WorkerConfig, hooks TestHooks) (*Worker, error) {
	return newWorker(cfg, hooks)
}
