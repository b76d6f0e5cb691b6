// Package engine is Sombra's embedded graph database: one database file
// (NAME.db) with a write-ahead log (NAME.db-wal) and a coordination file
// (NAME.db-shm), holding nodes and directed edges with labels and typed
// properties.
//
// Open a database with Open, OpenWithConfig or Create. Read in View (a
// snapshot that never waits for the writer), write in Update or
// BeginTransaction (one writer at a time across all processes; a second
// waits up to Config.BusyTimeout and then fails with ErrBusy). A committed
// transaction is durable when Commit returns; a rolled-back one leaves no
// trace.
//
// Operations live in sub-packages: backup (online full/incremental backup,
// point-in-time restore), integrity (verification), repair (repair and
// salvage), compact (compaction), health, metrics export (on
// PerformanceMetrics for one connection, DatabaseMetrics for the whole
// database: dbmetrics.go), index, logging, adaptive, debug, recovery, security,
// audit and encryption. Errors are the sentinels in errors.go, to be tested
// with errors.Is.
package engine
