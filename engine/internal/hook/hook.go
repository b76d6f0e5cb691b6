// Package hook carries the engine's accessors for its maintenance
// sub-packages from package engine to package handle without an import
// cycle: engine cannot import handle (handle imports engine to name its
// types), so engine stores each accessor here at init as an untyped value,
// and handle asserts it back to its real type when it initialises (after
// engine, which it imports). A mismatch fails at program start, never at
// a call.
//
// Nothing outside engine and handle should use this package.
package hook

// The accessors, each documented in package handle under the same name.
var (
	Pager               any
	Snapshot            any
	SnapshotLogicalHash any
	HashTrees           any
	Repair              any
	ImportNode          any
	ImportEdge          any
	ReserveIDs          any
	SpilledFrames       any
)
