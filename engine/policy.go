package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/sombradb/sombra/engine/internal/btree"
	"github.com/sombradb/sombra/engine/internal/page"
)

// policy.go: the access policy stored in the database file (catalog key
// "access_policy"). Once stored it is enforced by every connection of every
// process that opens the file through this library — the operator tools
// included, which act as --user / SOMBRA_USER — not only by the process
// that set it (DB.SetAccessControl installs a policy in one connection
// only). Both apply when both are set: an operation needs the permission
// from each.
//
// The user a connection acts as is a name it claims (Config.User,
// SetDefaultUser, AsUser), not an authenticated identity: the policy stops
// mistakes and tools run under the wrong name, not a process that lies
// about its user or reads the file without the library. On one machine the
// file's permissions are what stop such a process.

// AccessPolicy is the role-based policy stored in a database: roles grant
// permissions, users are assigned roles. engine/security.AccessControl
// converts to and from it (Policy, FromPolicy).
type AccessPolicy struct {
	Roles map[string][]Permission `json:"roles"`
	Users map[string][]string     `json:"users"`
}

// storedPolicyVersion is the version of the stored JSON form; it is the
// same document engine/security's Save writes.
const storedPolicyVersion = 1

type storedPolicyDoc struct {
	Version int `json:"version"`
	AccessPolicy
}

// catPolicy is the catalog key holding the stored policy.
const catPolicy = "access_policy"

// compiledPolicy is a stored policy ready to check: each user's permissions.
type compiledPolicy struct{ users map[string]Permission }

func (c *compiledPolicy) Check(user string, p Permission) error {
	if p.Valid() && c.users[user]&p != 0 {
		return nil
	}
	return &PermissionError{User: user, Permission: p}
}

// compile validates a policy: known permissions, non-empty role names,
// users assigned only defined roles.
func (ap *AccessPolicy) compile() (*compiledPolicy, error) {
	roles := make(map[string]Permission, len(ap.Roles))
	for name, perms := range ap.Roles {
		if name == "" {
			return nil, fmt.Errorf("access policy: empty role name: %w", ErrInvalid)
		}
		var b Permission
		for _, p := range perms {
			if !p.Valid() {
				return nil, fmt.Errorf("access policy: role %q: %v: %w", name, p, ErrInvalid)
			}
			b |= p
		}
		roles[name] = b
	}
	c := &compiledPolicy{users: make(map[string]Permission, len(ap.Users))}
	for u, rs := range ap.Users {
		for _, r := range rs {
			b, ok := roles[r]
			if !ok {
				return nil, fmt.Errorf("access policy: user %q: role %q is not defined: %w", u, r, ErrInvalid)
			}
			c.users[u] |= b
		}
	}
	return c, nil
}

func decodePolicy(raw []byte) (*AccessPolicy, *compiledPolicy, error) {
	var d storedPolicyDoc
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return nil, nil, fmt.Errorf("stored access policy unreadable: %v: %w", err, ErrCorrupt)
	}
	if d.Version != storedPolicyVersion {
		return nil, nil, fmt.Errorf("stored access policy version %d (this build reads %d): %w", d.Version, storedPolicyVersion, ErrVersion)
	}
	c, err := d.AccessPolicy.compile()
	if err != nil {
		return nil, nil, err
	}
	return &d.AccessPolicy, c, nil
}

// bothCheckers requires the permission from each checker.
type bothCheckers [2]AccessChecker

func (b bothCheckers) Check(user string, p Permission) error {
	if err := b[0].Check(user, p); err != nil {
		return err
	}
	return b[1].Check(user, p)
}

// policyCache remembers the stored policy as of one snapshot (file id and
// LSN: the catalog cannot change without a commit, which moves the LSN),
// so transactions of an unchanged database do not look it up again.
type policyCache struct {
	fileID uint64
	lsn    uint64
	base   *secState // the connection's own checker and auditor it was combined with
	raw    []byte    // the stored value (nil: no policy)
	pol    *compiledPolicy
	st     *secState // what transactions of this snapshot run under
}

// dbPolicy is the DB's field holding the policyCache.
type dbPolicy struct {
	cache atomic.Pointer[policyCache]
}

// secFor returns the access state a transaction on meta (read through r)
// runs under: the connection's checker and auditor combined with the
// policy stored in the file as of that snapshot. A stored policy that
// cannot be read (a damaged catalog page) fails closed without failing
// the transaction's begin: every check is then denied with an error that
// also matches the cause (ErrCorrupt), so repair and integrity tools see
// the corruption as they did before there was a policy to read.
func (db *DB) secFor(meta *page.Meta, r btree.Reader) (*secState, error) {
	base := db.sec.p.Load()
	c := db.policy.cache.Load()
	if c != nil && c.fileID == meta.FileID && c.lsn == uint64(meta.LastLSN) && c.base == base {
		return c.st, nil
	}
	n := &policyCache{fileID: meta.FileID, lsn: uint64(meta.LastLSN), base: base}
	var acl AccessChecker
	var perr error
	raw, ok, err := btree.Get(r, meta.Roots[page.RootCatalog], []byte(catPolicy))
	switch {
	case err != nil:
		perr = fmt.Errorf("read the stored access policy: %w", db.annotate(err))
	case !ok:
	case c != nil && c.pol != nil && bytes.Equal(raw, c.raw):
		n.raw, n.pol = raw, c.pol
	default:
		n.raw = raw
		if _, n.pol, err = decodePolicy(raw); err != nil {
			perr = fmt.Errorf("%s: %w", db.p.Path(), err)
		}
	}
	switch {
	case perr != nil:
		acl = unreadablePolicy{perr}
	case n.pol != nil:
		acl = n.pol
	}
	n.st = base
	if acl != nil {
		st := &secState{acl: acl, policyErr: perr}
		if base != nil {
			st.aud, st.anchor, st.reads = base.aud, base.anchor, base.reads
			if base.acl != nil {
				st.acl = bothCheckers{acl, base.acl}
			}
		}
		n.st = st
	}
	if err == nil || errors.Is(err, ErrCorrupt) {
		// A read that failed with an I/O error (EIO) is not remembered:
		// the next transaction reads the policy again instead of being
		// denied until the file changes.
		db.policy.cache.Store(n)
	}
	return n.st, nil
}

// unreadablePolicy denies everything: the stored policy could not be read.
type unreadablePolicy struct{ err error }

func (u unreadablePolicy) Check(user string, p Permission) error {
	return policyUnreadableError(u)
}

// policyUnreadableError is a denial whose cause is the damaged policy: it
// matches ErrPermissionDenied and the cause (ErrCorrupt, an I/O error), and
// its message names only the cause, so an operator is sent to repair the
// file rather than to grant a permission.
type policyUnreadableError struct{ err error }

func (e policyUnreadableError) Error() string        { return e.err.Error() }
func (e policyUnreadableError) Unwrap() error        { return e.err }
func (e policyUnreadableError) Is(target error) bool { return target == ErrPermissionDenied }

// secNow is the access state as of the latest commit, for DB-level
// operations that run outside a transaction (checkpoints, configuration).
func (db *DB) secNow() (*secState, error) {
	s, err := db.p.BeginRead()
	if err != nil {
		return nil, fmt.Errorf("read the access policy: %w", err)
	}
	defer s.Close()
	m, err := s.Meta()
	if err != nil {
		return nil, err
	}
	return db.secFor(m, s)
}

// SetAccessPolicy stores p in the database (nil removes it), acting as the
// connection's user (Config.User). Once a policy is stored, changing or
// removing it needs Configure under it; the first one may be stored by
// anyone. A policy that grants no user Configure is refused (ErrInvalid):
// nobody could change it again. It commits a transaction and is audited as
// "configure".
func (db *DB) SetAccessPolicy(p *AccessPolicy) error { return db.setAccessPolicy(db.cfg.User, p) }

// SetAccessPolicy stores p acting as the session's user (see
// DB.SetAccessPolicy).
func (s *Session) SetAccessPolicy(p *AccessPolicy) error { return s.db.setAccessPolicy(s.user, p) }

func (db *DB) setAccessPolicy(user string, p *AccessPolicy) (err error) {
	var raw []byte
	target := "access_policy:removed"
	if p != nil {
		c, err := p.compile()
		if err != nil {
			return fmt.Errorf("set access policy: %w", err)
		}
		admin := false
		for _, b := range c.users {
			admin = admin || b&PermissionConfigure != 0
		}
		if !admin {
			return fmt.Errorf("set access policy: no user holds configure, so nobody could change it again: %w", ErrInvalid)
		}
		if raw, err = json.Marshal(storedPolicyDoc{Version: storedPolicyVersion, AccessPolicy: *p}); err != nil {
			return fmt.Errorf("set access policy: %w", err)
		}
		target = "access_policy:set"
	}
	err = db.configureTx(user, target, func(tx *Tx) error {
		if raw == nil {
			return tx.del(page.RootCatalog, []byte(catPolicy))
		}
		return tx.put(page.RootCatalog, []byte(catPolicy), raw)
	})
	if err != nil {
		return fmt.Errorf("set access policy: %w", err)
	}
	db.log.Info("access policy stored", "path", db.p.Path(), "removed", p == nil, "user", user)
	return nil
}

// configureTx runs fn in a write transaction as user after checking
// Configure (the writes fn makes are not checked again), and audits it as
// "configure" with target. Deleting an absent key is not an error.
func (db *DB) configureTx(user, target string, fn func(*Tx) error) error {
	tx, err := db.BeginTransactionAs(user)
	if err != nil {
		return err
	}
	if tx.sec.st == nil {
		err = fn(tx)
	} else {
		if err = tx.secEnter(PermissionConfigure, OpConfigure, target); err != nil {
			tx.Rollback()
			return err
		}
		err = fn(tx)
		tx.secLeave(OpConfigure, target, err)
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// StoredAccessPolicy returns the policy stored in the database, or nil
// when there is none.
func (db *DB) StoredAccessPolicy() (*AccessPolicy, error) {
	return view(db, func(tx *Tx) (*AccessPolicy, error) {
		raw, ok, err := tx.get(page.RootCatalog, []byte(catPolicy))
		if err != nil || !ok {
			return nil, err
		}
		p, _, err := decodePolicy(raw)
		return p, err
	})
}

var defaultUser struct {
	sync.Mutex
	name string
}

// SetDefaultUser sets, process-wide, the user connections opened afterwards
// act as when Config.User is empty. The operator tools set it from --user
// or SOMBRA_USER.
func SetDefaultUser(user string) {
	defaultUser.Lock()
	defaultUser.name = user
	defaultUser.Unlock()
}

// DefaultUser returns the user set by SetDefaultUser.
func DefaultUser() string {
	defaultUser.Lock()
	defer defaultUser.Unlock()
	return defaultUser.name
}
