package loader

import (
	"errors"
	"fmt"
)

var (
	// ErrNotFound is what a load function returns (or wraps) when the key
	// has no value at its source. It is cached like a value, for
	// Options.NotFoundTTL, and Get returns it; GetMany leaves such keys out
	// of its map without an error. A reload that answers ErrNotFound removes
	// the key's value.
	ErrNotFound = errors.New("loader: not found")

	// ErrClosed is returned by a Get that needs a load after Close.
	ErrClosed = errors.New("loader: closed")
)

// PanicError is the error every waiter of a load gets when the load
// function panicked (or called runtime.Goexit). The panic does not reach
// the callers' goroutines, so it cannot crash the process. It is cached
// like any load error (Options.ErrorTTL).
type PanicError struct {
	// Value is the value the load passed to panic, or the string
	// "runtime.Goexit" when the load called runtime.Goexit.
	Value any
	// Stack is the stack of the goroutine that ran the load, at the panic.
	Stack []byte
}

// Error describes the panic's value.
func (e *PanicError) Error() string {
	return fmt.Sprintf("loader: load panicked: %v", e.Value)
}

// Unwrap returns the panic's value when it is an error (a runtime error,
// say), so errors.Is and errors.As see it.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// KeyError is one failed key of GetMany; GetMany joins one for each key
// that failed. Err is the key's load error, as Get would return it.
type KeyError[K comparable] struct {
	// Key is the key that failed.
	Key K
	// Err is why.
	Err error
}

// Error names the key and its error.
func (e *KeyError[K]) Error() string {
	return fmt.Sprintf("loader: key %v: %v", e.Key, e.Err)
}

// Unwrap returns the key's error.
func (e *KeyError[K]) Unwrap() error { return e.Err }
