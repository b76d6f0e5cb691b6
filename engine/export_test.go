package engine

// Exported for the external tests (package engine_test), which may import
// packages that import the engine (integrity, compact, backup).
var (
	CrashTx     = crashTx
	CrashVerify = crashVerify
)
