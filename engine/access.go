package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/page"
)

// This file holds the engine side of access control and auditing: the
// Permission type, the AccessChecker and Auditor interfaces a DB is given
// (engine/security and engine/audit implement them), and the hooks that the
// transaction and DB methods call. Sessions (a DB seen as one user) are in
// session.go.
//
// Enforcement, once a policy is stored in the file (DB.SetAccessPolicy,
// engine/policy.go: every connection of every process enforces it) or
// DB.SetAccessControl has installed a checker in this connection (both
// apply when both are set):
//
//   - reads (GetNode, Neighbors, NodesByLabel, Nodes, LogicalHash, ...)
//     need PermissionRead;
//   - CreateNode, CreateEdge, SetNodeProperty, RemoveNodeProperty need
//     PermissionWrite;
//   - DeleteNode and DeleteEdge need PermissionDelete;
//   - CreatePropertyIndex, DropPropertyIndex, Rebuild*Index, UpdateCacheSize,
//     EnableGroupCommit, Checkpoint*, SetWALArchiveDir and SetAccessPolicy
//     need PermissionConfigure;
//   - backups need PermissionBackup: engine/backup calls
//     DB.Authorize(user, PermissionBackup) first and reads through
//     DB.ViewAs(user, ...), which needs Read too;
//   - any other write a transaction makes (the repair and salvage
//     primitives of engine/internal/handle: Repair, ImportNode,
//     ImportEdge, ReserveIDs) needs PermissionWrite.
//
// An operation is checked once, at its entry: the reads and writes it makes
// on its own behalf (CreateEdge checking that its endpoints exist, DeleteNode
// deleting the node's edges) need nothing more. A transaction remembers the
// permissions it was granted, so revoking a role takes effect at the user's
// next transaction. Transactions and DB-level operations begun without a
// user run as the connection's user (Config.User, by default the process's
// SetDefaultUser, else ""), which is denied everything the policy does not
// grant it explicitly. With neither a stored policy nor a checker nothing
// is checked.
//
// Not checked: metadata and operational reads that do not go through a
// transaction's read path (Tx.NodeCount, Tx.EdgeCount, Tx.LSN,
// DB.IndexStatistics, DB.Info, DB.GetPerformanceMetrics, DB.CheckpointStatus,
// DB.WALArchiveDir, DB.StoredAccessPolicy), Tx.Snapshot, and the
// checkpoints the engine runs by itself (automatic and on close).
//
// A denied operation returns an error matching ErrPermissionDenied (a
// *PermissionError) before it changes anything; the transaction stays
// usable. The user is a name the caller claims, and the maintenance
// packages of this module reach the pages through engine/internal/handle
// (backup, compact, integrity, repair do; a program outside the module
// cannot): access control guards the engine's API, not the file. On one
// machine, the file's permissions are what stop a process that bypasses
// the library.

// Permission is one right an access policy grants.
type Permission uint8

// The permissions. Each is one bit, so a set of them fits a Permission.
const (
	PermissionRead      Permission = 1 << iota // read nodes, edges, indexes
	PermissionWrite                            // create nodes and edges, set and remove properties
	PermissionDelete                           // delete nodes and edges
	PermissionBackup                           // take backups
	PermissionConfigure                        // indexes, cache, group commit, checkpoints
)

var permissionNames = []struct {
	p    Permission
	name string
}{
	{PermissionRead, "read"}, {PermissionWrite, "write"}, {PermissionDelete, "delete"},
	{PermissionBackup, "backup"}, {PermissionConfigure, "configure"},
}

// AllPermissions returns every permission in a fixed order.
func AllPermissions() []Permission {
	out := make([]Permission, len(permissionNames))
	for i, n := range permissionNames {
		out[i] = n.p
	}
	return out
}

// String returns the permission's name: "read", "write", "delete",
// "backup" or "configure".
func (p Permission) String() string {
	for _, n := range permissionNames {
		if n.p == p {
			return n.name
		}
	}
	return fmt.Sprintf("permission(%d)", uint8(p))
}

// Valid reports whether p is exactly one known permission.
func (p Permission) Valid() bool {
	for _, n := range permissionNames {
		if n.p == p {
			return true
		}
	}
	return false
}

// ParsePermission parses a permission name, ignoring case.
func ParsePermission(s string) (Permission, error) {
	for _, n := range permissionNames {
		if strings.EqualFold(strings.TrimSpace(s), n.name) {
			return n.p, nil
		}
	}
	return 0, fmt.Errorf("permission %q (want read, write, delete, backup or configure): %w", s, ErrInvalid)
}

// MarshalText encodes the permission as its name (so JSON holds "read").
func (p Permission) MarshalText() ([]byte, error) {
	if !p.Valid() {
		return nil, fmt.Errorf("%v: %w", p, ErrInvalid)
	}
	return []byte(p.String()), nil
}

// UnmarshalText parses a permission name.
func (p *Permission) UnmarshalText(b []byte) error {
	v, err := ParsePermission(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// PermissionError says who was denied what. It matches ErrPermissionDenied.
type PermissionError struct {
	User       string
	Permission Permission
	// Op is the operation that was refused (an audit operation name such as
	// "node_delete", or "read"/"write" for generic access); may be empty.
	Op string
	// Reason is the checker's own error when it gave one beyond the denial.
	Reason error
}

func (e *PermissionError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "permission denied: user %q lacks %s permission", e.User, e.Permission)
	if e.Op != "" {
		fmt.Fprintf(&b, " (%s)", e.Op)
	}
	if e.Reason != nil && !errors.Is(e.Reason, ErrPermissionDenied) {
		fmt.Fprintf(&b, ": %v", e.Reason)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrPermissionDenied) true.
func (e *PermissionError) Is(target error) bool { return target == ErrPermissionDenied }

// Unwrap returns the checker's reason, if any.
func (e *PermissionError) Unwrap() error { return e.Reason }

// AccessChecker decides whether user holds permission p; any non-nil error
// denies. engine/security.AccessControl implements it. Check is called
// concurrently from many transactions.
type AccessChecker interface {
	Check(user string, p Permission) error
}

// Auditor receives one call per audited operation: op is one of the Op*
// names, target names what it touched ("node:5", "edge:7 node:1->node:2",
// "lsn:42", ...), err is nil on success. It is called synchronously, from
// many goroutines, and must not call back into the DB. engine/audit's
// AuditLogger implements it.
type Auditor interface {
	Record(op string, user string, target string, err error)
}

// AuditAnchorer is an Auditor whose head the engine records in the
// database at each write commit, so that records cut from the end of the
// log are detected (engine/audit.VerifyFile with the database): AuditAnchor
// makes the log durable up to its last record and returns the log's name
// (its absolute path), that record's sequence number and hash. An error
// skips the anchor of that commit (logged), it does not fail the commit.
type AuditAnchorer interface {
	AuditAnchor() (name string, seq uint64, hash string, err error)
}

// ReadAuditor is an Auditor that asks for reads to be audited as well
// (AuditsReads true when it was installed): each read operation is then
// recorded as "read" with a target naming what was read ("node:5",
// "neighbors node:5", "label:User", "scan:nodes", ...).
type ReadAuditor interface {
	AuditsReads() bool
}

// Audited operation names.
const (
	OpNodeCreate       = "node_create"
	OpNodeUpdate       = "node_update" // a property set or removed
	OpNodeDelete       = "node_delete"
	OpEdgeCreate       = "edge_create"
	OpEdgeDelete       = "edge_delete" // also each edge DeleteNode removes
	OpTxCommit         = "transaction_commit"
	OpTxRollback       = "transaction_rollback"
	OpIndexCreate      = "index_create"
	OpIndexDrop        = "index_drop"
	OpIndexRebuild     = "index_rebuild"
	OpCheckpoint       = "checkpoint" // through Session.Checkpoint*
	OpConfigure        = "configure"  // cache size, group commit, access control
	OpAuthorize        = "authorize"  // DB.Authorize granted (e.g. before a backup)
	OpPermissionDenied = "permission_denied"
	OpRead             = "read" // only with a ReadAuditor asking for reads
)

// AuditOperations returns every operation name the engine audits.
func AuditOperations() []string {
	return []string{OpNodeCreate, OpNodeUpdate, OpNodeDelete, OpEdgeCreate, OpEdgeDelete,
		OpTxCommit, OpTxRollback, OpIndexCreate, OpIndexDrop, OpIndexRebuild, OpCheckpoint,
		OpConfigure, OpAuthorize, OpPermissionDenied, OpRead}
}

// secState is the access checker and auditor in force; a transaction takes
// the one current when it begins. Both may be nil; the state itself is nil
// when both are.
type secState struct {
	acl AccessChecker
	aud Auditor
	// Derived from aud when it is installed.
	anchor AuditAnchorer
	reads  bool
	// policyErr is why the stored policy could not be read (every check
	// is denied then); nil normally.
	policyErr error
}

// dbSec is the DB's field holding the current secState.
type dbSec struct{ p atomic.Pointer[secState] }

// txSec is the Tx's field: who runs it and what it was granted.
type txSec struct {
	st      *secState // nil: neither access control nor auditing (the fast path)
	user    string
	granted Permission // permissions already checked in this transaction
	depth   int        // >0 while inside an operation that was checked at entry
}

// SetAccessControl installs the checker that enforces permissions (nil
// removes it). Transactions begun before the call keep the previous one.
func (db *DB) SetAccessControl(acl AccessChecker) {
	st := db.setSec(func(s *secState) { s.acl = acl })
	target := "access_control:set"
	if acl == nil {
		target = "access_control:removed"
	}
	if st != nil && st.aud != nil {
		st.aud.Record(OpConfigure, "", target, nil)
	}
}

// SetAuditor installs the auditor that receives a record per operation
// (nil removes it). Transactions begun before the call keep the previous one.
func (db *DB) SetAuditor(a Auditor) { db.setSec(func(s *secState) { s.aud = a }) }

// AccessControl returns the installed checker, or nil.
func (db *DB) AccessControl() AccessChecker {
	if st := db.sec.p.Load(); st != nil {
		return st.acl
	}
	return nil
}

// Auditor returns the installed auditor, or nil.
func (db *DB) Auditor() Auditor {
	if st := db.sec.p.Load(); st != nil {
		return st.aud
	}
	return nil
}

func (db *DB) setSec(change func(*secState)) *secState {
	db.mu.Lock()
	defer db.mu.Unlock()
	var next secState
	if cur := db.sec.p.Load(); cur != nil {
		next = *cur
	}
	change(&next)
	next.anchor, next.reads = nil, false
	if a, ok := next.aud.(AuditAnchorer); ok {
		next.anchor = a
	}
	if r, ok := next.aud.(ReadAuditor); ok {
		next.reads = r.AuditsReads()
	}
	if next.acl == nil && next.aud == nil {
		db.sec.p.Store(nil)
		return nil
	}
	db.sec.p.Store(&next)
	return &next
}

// Authorize checks that user holds p under the installed policy (nil when
// none is installed) and audits the outcome: "authorize" with the
// permission as target when granted, "permission_denied" when not. Code
// outside the engine's API that performs a guarded operation calls it
// first; engine/backup should call Authorize(user, PermissionBackup)
// before copying pages.
func (db *DB) Authorize(user string, p Permission) error {
	st, err := db.secNow()
	if err != nil {
		return err
	}
	if err := st.check(user, p, OpAuthorize, p.String()); err != nil {
		return err
	}
	st.audit(OpAuthorize, user, p.String(), nil)
	return nil
}

// check asks the checker; a denial is wrapped as a *PermissionError naming
// op and audited as permission_denied. A nil state allows everything.
func (st *secState) check(user string, p Permission, op, target string) error {
	if st == nil || st.acl == nil {
		return nil
	}
	err := st.acl.Check(user, p)
	if err == nil {
		return nil
	}
	var pe *PermissionError
	var unreadable policyUnreadableError
	switch {
	case errors.As(err, &unreadable):
		// Keep the cause's own words (see policyUnreadableError).
	case errors.As(err, &pe):
		c := *pe
		if c.Op == "" {
			c.Op = op
		}
		err = &c
	default:
		err = &PermissionError{User: user, Permission: p, Op: op, Reason: err}
	}
	if st.aud != nil {
		t := op
		if target != "" {
			t += " " + target
		}
		st.aud.Record(OpPermissionDenied, user, t, err)
	}
	return err
}

func (st *secState) audit(op, user, target string, err error) {
	if st != nil && st.aud != nil {
		st.aud.Record(op, user, target, err)
	}
}

// secGuard is the hook of DB-level guarded operations (index maintenance,
// configuration): it checks p for user, and the returned function, deferred
// with the operation's error, audits the outcome.
func (db *DB) secGuard(user string, p Permission, op, target string) (func(*error), error) {
	st, err := db.secNow()
	if err != nil {
		return noDone, err
	}
	return db.guardWith(st, user, p, op, target)
}

func (db *DB) guardWith(st *secState, user string, p Permission, op, target string) (func(*error), error) {
	if st == nil {
		return noDone, nil
	}
	if err := st.check(user, p, op, target); err != nil {
		return noDone, err
	}
	if st.aud == nil {
		return noDone, nil
	}
	return func(err *error) { st.aud.Record(op, user, target, *err) }, nil
}

func noDone(*error) {}

// secEnter is the hook at the entry of a guarded Tx operation (only called
// when tx.sec.st != nil): it checks p, then marks the transaction as inside
// the operation so the reads and writes it makes itself are not checked
// again. A successful secEnter must be paired with secLeave.
func (tx *Tx) secEnter(p Permission, op, target string) error {
	if err := tx.secAuthorize(p, op, target); err != nil {
		return err
	}
	tx.sec.depth++
	return nil
}

// secLeave ends an operation begun with secEnter and audits it.
func (tx *Tx) secLeave(op, target string, err error) {
	tx.sec.depth--
	tx.sec.st.audit(op, tx.sec.user, target, err)
}

func (tx *Tx) secAuthorize(p Permission, op, target string) error {
	s := &tx.sec
	if s.st.acl == nil || s.depth > 0 || s.granted&p != 0 {
		return nil
	}
	if err := s.st.check(s.user, p, op, target); err != nil {
		return err
	}
	s.granted |= p
	return nil
}

// secCheck is Tx.check's hook: outside a checked operation, a read needs
// Read and a write (handle.ImportNode, handle.Repair, ...) needs Write.
func (tx *Tx) secCheck(write bool) error {
	if write {
		return tx.secAuthorize(PermissionWrite, "write", "")
	}
	return tx.secAuthorize(PermissionRead, "read", "")
}

// auditRead records a read when the auditor asked for reads (the caller
// checks auditingReads first, so targets are only formatted then) and
// marks the transaction as inside it until the returned function runs, so
// the reads it makes itself are not recorded again:
//
//	if tx.auditingReads() {
//		defer tx.auditRead(nodeTarget(id))()
//	}
func (tx *Tx) auditRead(target string) func() {
	if tx.sec.depth == 0 {
		tx.sec.st.aud.Record(OpRead, tx.sec.user, target, nil)
	}
	tx.sec.depth++
	return func() { tx.sec.depth-- }
}

// auditingReads reports whether reads are being audited.
func (tx *Tx) auditingReads() bool { return tx.sec.st != nil && tx.sec.st.reads }

// catAuditHead + log name holds the audit log's head (auditHead, JSON)
// as of the latest write commit.
const catAuditHead = "audit_head/"

type auditHead struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// secAnchor is Commit's hook, before the commit: it records the audit
// log's durable head in the transaction, so the database says how long
// the log was at that commit.
func (tx *Tx) secAnchor() {
	if tx.w.Dirty() == 0 && !tx.pending() {
		return // nothing to commit: do not make a write of it
	}
	name, seq, hash, err := tx.sec.st.anchor.AuditAnchor()
	if err == nil {
		var v []byte
		if v, err = json.Marshal(auditHead{Seq: seq, Hash: hash}); err == nil {
			err = tx.put(page.RootCatalog, []byte(catAuditHead+name), v)
		}
	}
	if err != nil {
		tx.db.log.Error("audit anchor not recorded; a cut of the audit log's tail may go undetected", "path", tx.db.p.Path(), "err", err)
	}
}

// AuditAnchor returns the head of the audit log name (an AuditAnchorer's
// name) as recorded at the latest write commit: the log must hold record
// seq with hash hash. ok is false when none was recorded.
func (db *DB) AuditAnchor(name string) (seq uint64, hash string, ok bool, err error) {
	v, err := view(db, func(tx *Tx) ([]byte, error) {
		v, ok, err := tx.get(page.RootCatalog, []byte(catAuditHead+name))
		if err != nil || !ok {
			return nil, err
		}
		return v, nil
	})
	if err != nil || v == nil {
		return 0, "", false, err
	}
	var h auditHead
	if err := json.Unmarshal(v, &h); err != nil {
		return 0, "", false, fmt.Errorf("audit anchor of %s: %v: %w", name, err, ErrCorrupt)
	}
	return h.Seq, h.Hash, true, nil
}

// secCommitted is Commit's hook: it audits the commit of a write transaction.
func (tx *Tx) secCommitted(lsn common.LSN, err error) {
	target := ""
	if err == nil {
		target = fmt.Sprintf("lsn:%d", lsn)
	}
	tx.sec.st.audit(OpTxCommit, tx.sec.user, target, err)
}

// secRolledBack is Rollback's hook for write transactions.
func (tx *Tx) secRolledBack() { tx.sec.st.audit(OpTxRollback, tx.sec.user, "", nil) }

// Audit targets.
func nodeTarget(id NodeID) string { return fmt.Sprintf("node:%d", id) }
func edgeTarget(id EdgeID) string { return fmt.Sprintf("edge:%d", id) }

// createdTarget names a created node, or nothing when the create failed.
func createdTarget(id NodeID) string {
	if id == 0 {
		return ""
	}
	return nodeTarget(id)
}

func edgeCreateTarget(id EdgeID, from, to NodeID) string {
	if id == 0 { // the create failed: no id was assigned
		return fmt.Sprintf("node:%d->node:%d", from, to)
	}
	return fmt.Sprintf("edge:%d node:%d->node:%d", id, from, to)
}

func propTarget(id NodeID, key string, set bool) string {
	if set {
		return fmt.Sprintf("node:%d set:%s", id, key)
	}
	return fmt.Sprintf("node:%d remove:%s", id, key)
}
