// Package buildinfo tells which build of Spool a process runs, for the
// workers online and the instrumentation scope of traces.
package buildinfo

import (
	"runtime/debug"
	"sync"
)

// Module is Spool's module path.
const Module = "github.com/spoolrun/spool"

// Version returns the version of Spool in this binary: the module's
// version when a program depends on it, the main module's when the binary
// is Spool's own (the spool command), "(devel)" for a build from a
// working tree, and "" when the binary carries no build information.
var Version = sync.OnceValue(func() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	if bi.Main.Path == Module {
		return bi.Main.Version
	}
	for _, d := range bi.Deps {
		if d.Path == Module {
			if d.Replace != nil && d.Replace.Version != "" {
				return d.Replace.Version
			}
			return d.Version
		}
	}
	return ""
})
