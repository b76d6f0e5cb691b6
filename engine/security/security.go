// Package security holds Sombra's role-based access policy: roles grant
// permissions, users are assigned roles, and the engine asks the policy
// before every guarded operation.
//
//	acl := security.NewAccessControl()
//	acl.AddRole("admin", []security.Permission{security.Read, security.Write,
//		security.Delete, security.Backup, security.Configure})
//	acl.AddRole("user", []security.Permission{security.Read, security.Write})
//	acl.AddRole("readonly", []security.Permission{security.Read})
//	acl.AssignRole("alice", "admin")
//	acl.AssignRole("bob", "user")
//	acl.AssignRole("charlie", "readonly")
//	acl.Store(db) // kept in the database: every process enforces it
//	err := db.AsUser("bob").Update(func(tx *engine.Tx) error { ... })
//
// Store keeps the policy in the database file: every connection of every
// process that opens it, the operator tools included (they act as --user
// or $SOMBRA_USER), enforces it, and changing it needs Configure. A policy
// installed with db.SetAccessControl(acl) binds that connection only.
// The user is a name each program claims, not an authenticated identity:
// on one machine, the file's permissions are what stop a process that
// bypasses the library.
//
// What each operation needs is described in the engine (engine/access.go):
// reads need Read, creates and property changes Write, deletes Delete,
// index and configuration changes Configure, backups Backup. Transactions
// begun without a user run as the user "", which gets only what the policy
// grants "" explicitly (AssignRole("", "readonly") opens reads to
// everyone).
//
// A policy can be kept in a JSON file (Save, Load, LoadAccessControl):
//
//	{
//	  "version": 1,
//	  "roles": {"admin": ["read", "write", "delete", "backup", "configure"],
//	            "readonly": ["read"]},
//	  "users": {"alice": ["admin"], "charlie": ["readonly"]}
//	}
//
// Load replaces the policy of a live AccessControl atomically, so an
// operator can edit the file and reload it without reopening the database;
// transactions already running keep the permissions they were granted.
package security

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/vfs"
)

// Permission is a right granted by a role; it is the engine's type.
type Permission = engine.Permission

// The permissions.
const (
	Read      = engine.PermissionRead
	Write     = engine.PermissionWrite
	Delete    = engine.PermissionDelete
	Backup    = engine.PermissionBackup
	Configure = engine.PermissionConfigure
)

// ErrPermissionDenied is the engine's sentinel: Check's errors match it.
var ErrPermissionDenied = engine.ErrPermissionDenied

// ParsePermission parses "read", "write", "delete", "backup" or
// "configure" (any case).
func ParsePermission(s string) (Permission, error) { return engine.ParsePermission(s) }

// AllPermissions returns every permission.
func AllPermissions() []Permission { return engine.AllPermissions() }

// Role is a named set of permissions.
type Role struct {
	Name        string       `json:"name"`
	Permissions []Permission `json:"permissions"`
}

// AccessControl is a role-based access policy. It is safe for concurrent
// use; the zero value is not usable, call NewAccessControl.
type AccessControl struct {
	mu    sync.RWMutex
	roles map[string]Permission      // role -> permission bits
	users map[string]map[string]bool // user -> roles
}

var _ engine.AccessChecker = (*AccessControl)(nil)

// NewAccessControl returns an empty policy: every check is denied.
func NewAccessControl() *AccessControl {
	return &AccessControl{roles: map[string]Permission{}, users: map[string]map[string]bool{}}
}

func bits(perms []Permission) (Permission, error) {
	var b Permission
	for _, p := range perms {
		if !p.Valid() {
			return 0, fmt.Errorf("%v: %w", p, engine.ErrInvalid)
		}
		b |= p
	}
	return b, nil
}

func list(b Permission) []Permission {
	var out []Permission
	for _, p := range engine.AllPermissions() {
		if b&p != 0 {
			out = append(out, p)
		}
	}
	return out
}

// AddRole defines a role. It fails with engine.ErrExists if the role is
// already defined and engine.ErrInvalid for an empty name or an unknown
// permission. A role may grant no permission.
func (ac *AccessControl) AddRole(name string, perms []Permission) error {
	if name == "" {
		return fmt.Errorf("add role: empty role name: %w", engine.ErrInvalid)
	}
	b, err := bits(perms)
	if err != nil {
		return fmt.Errorf("add role %q: %w", name, err)
	}
	ac.mu.Lock()
	defer ac.mu.Unlock()
	if _, ok := ac.roles[name]; ok {
		return fmt.Errorf("add role %q: %w", name, engine.ErrExists)
	}
	ac.roles[name] = b
	return nil
}

// SetRolePermissions replaces the permissions of an existing role.
func (ac *AccessControl) SetRolePermissions(name string, perms []Permission) error {
	b, err := bits(perms)
	if err != nil {
		return fmt.Errorf("set role %q: %w", name, err)
	}
	ac.mu.Lock()
	defer ac.mu.Unlock()
	if _, ok := ac.roles[name]; !ok {
		return fmt.Errorf("set role %q: %w", name, engine.ErrNotFound)
	}
	ac.roles[name] = b
	return nil
}

// RemoveRole deletes a role and every assignment of it.
func (ac *AccessControl) RemoveRole(name string) error {
	ac.mu.Lock()
	defer ac.mu.Unlock()
	if _, ok := ac.roles[name]; !ok {
		return fmt.Errorf("remove role %q: %w", name, engine.ErrNotFound)
	}
	delete(ac.roles, name)
	for u, rs := range ac.users {
		delete(rs, name)
		if len(rs) == 0 {
			delete(ac.users, u)
		}
	}
	return nil
}

// AssignRole gives user a role (assigning it twice is not an error). The
// role must exist (engine.ErrNotFound otherwise). The user "" is the one
// transactions run as when they were begun without a user.
func (ac *AccessControl) AssignRole(user, role string) error {
	ac.mu.Lock()
	defer ac.mu.Unlock()
	if _, ok := ac.roles[role]; !ok {
		return fmt.Errorf("assign role %q to %q: %w", role, user, engine.ErrNotFound)
	}
	rs := ac.users[user]
	if rs == nil {
		rs = map[string]bool{}
		ac.users[user] = rs
	}
	rs[role] = true
	return nil
}

// RevokeRole takes a role from user; it fails with engine.ErrNotFound if
// the user does not have it.
func (ac *AccessControl) RevokeRole(user, role string) error {
	ac.mu.Lock()
	defer ac.mu.Unlock()
	rs := ac.users[user]
	if !rs[role] {
		return fmt.Errorf("revoke role %q from %q: user does not have it: %w", role, user, engine.ErrNotFound)
	}
	delete(rs, role)
	if len(rs) == 0 {
		delete(ac.users, user)
	}
	return nil
}

func (ac *AccessControl) granted(user string) Permission {
	var b Permission
	for r := range ac.users[user] {
		b |= ac.roles[r]
	}
	return b
}

// Check returns nil if one of user's roles grants p, and otherwise an
// *engine.PermissionError naming the user and the permission, which
// matches engine.ErrPermissionDenied.
func (ac *AccessControl) Check(user string, p Permission) error {
	ac.mu.RLock()
	b := ac.granted(user)
	ac.mu.RUnlock()
	if p.Valid() && b&p != 0 {
		return nil
	}
	return &engine.PermissionError{User: user, Permission: p}
}

// Permissions returns what user's roles grant together.
func (ac *AccessControl) Permissions(user string) []Permission {
	ac.mu.RLock()
	defer ac.mu.RUnlock()
	return list(ac.granted(user))
}

// UserRoles returns user's roles, sorted.
func (ac *AccessControl) UserRoles(user string) []string {
	ac.mu.RLock()
	defer ac.mu.RUnlock()
	out := make([]string, 0, len(ac.users[user]))
	for r := range ac.users[user] {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// Roles returns every role, sorted by name.
func (ac *AccessControl) Roles() []Role {
	ac.mu.RLock()
	defer ac.mu.RUnlock()
	out := make([]Role, 0, len(ac.roles))
	for name, b := range ac.roles {
		out = append(out, Role{Name: name, Permissions: list(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Users returns every user with at least one role, sorted.
func (ac *AccessControl) Users() []string {
	ac.mu.RLock()
	defer ac.mu.RUnlock()
	out := make([]string, 0, len(ac.users))
	for u := range ac.users {
		out = append(out, u)
	}
	sort.Strings(out)
	return out
}

// policyVersion is the version of the policy file format.
const policyVersion = 1

// policyFile is the JSON form of a policy.
type policyFile struct {
	Version int                     `json:"version"`
	Roles   map[string][]Permission `json:"roles"`
	Users   map[string][]string     `json:"users"`
}

// MarshalJSON encodes the policy (roles and assignments, sorted).
func (ac *AccessControl) MarshalJSON() ([]byte, error) {
	ac.mu.RLock()
	f := policyFile{Version: policyVersion, Roles: map[string][]Permission{}, Users: map[string][]string{}}
	for name, b := range ac.roles {
		f.Roles[name] = list(b)
		if f.Roles[name] == nil {
			f.Roles[name] = []Permission{}
		}
	}
	for u, rs := range ac.users {
		for r := range rs {
			f.Users[u] = append(f.Users[u], r)
		}
		sort.Strings(f.Users[u])
	}
	ac.mu.RUnlock()
	return json.MarshalIndent(f, "", "  ")
}

// UnmarshalJSON replaces the policy with the one encoded in b, atomically:
// on error the policy is unchanged. Unknown fields, unknown permission
// names and users assigned undefined roles are errors.
func (ac *AccessControl) UnmarshalJSON(b []byte) error {
	var f policyFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return fmt.Errorf("access policy: %w (%w)", err, engine.ErrInvalid)
	}
	if f.Version != policyVersion {
		return fmt.Errorf("access policy: version %d (want %d): %w", f.Version, policyVersion, engine.ErrInvalid)
	}
	roles := make(map[string]Permission, len(f.Roles))
	for name, perms := range f.Roles {
		if name == "" {
			return fmt.Errorf("access policy: empty role name: %w", engine.ErrInvalid)
		}
		bits, err := bits(perms)
		if err != nil {
			return fmt.Errorf("access policy: role %q: %w", name, err)
		}
		roles[name] = bits
	}
	users := make(map[string]map[string]bool, len(f.Users))
	for u, rs := range f.Users {
		for _, r := range rs {
			if _, ok := roles[r]; !ok {
				return fmt.Errorf("access policy: user %q: role %q is not defined: %w", u, r, engine.ErrInvalid)
			}
			if users[u] == nil {
				users[u] = map[string]bool{}
			}
			users[u][r] = true
		}
	}
	ac.mu.Lock()
	ac.roles, ac.users = roles, users
	ac.mu.Unlock()
	return nil
}

// Save writes the policy to path as JSON, atomically (a temporary file
// renamed over path, then the directory fsynced) and readable by the owner
// only. On error the file at path is as it was, unless only the directory
// fsync failed: then it holds the new policy, which a power cut may undo.
func (ac *AccessControl) Save(path string) error { return ac.SaveFS(vfs.OS, path) }

// SaveFS is Save through the file layer fsys; pass a database's
// (db.Config().FS) to write the policy file the way it writes its own.
func (ac *AccessControl) SaveFS(fsys vfs.FS, path string) error {
	b, err := ac.MarshalJSON()
	if err != nil {
		return err
	}
	if err := vfs.WriteFileAtomic(fsys, path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save access policy: %w", err)
	}
	return nil
}

// Load replaces the policy with the one in the JSON file at path,
// atomically: on error the policy is unchanged.
func (ac *AccessControl) Load(path string) error { return ac.LoadFS(vfs.OS, path) }

// maxPolicyFile bounds a policy file: a few roles and users, never this.
const maxPolicyFile = 16 << 20

// LoadFS is Load through the file layer fsys.
func (ac *AccessControl) LoadFS(fsys vfs.FS, path string) error {
	b, err := vfs.ReadFile(fsys, path, maxPolicyFile)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("load access policy %s: %w", path, engine.ErrNotFound)
		}
		return fmt.Errorf("load access policy: %w", err)
	}
	if err := ac.UnmarshalJSON(b); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// LoadAccessControl reads a policy saved with Save.
func LoadAccessControl(path string) (*AccessControl, error) {
	ac := NewAccessControl()
	if err := ac.Load(path); err != nil {
		return nil, err
	}
	return ac, nil
}

// HasPermission reports whether user holds p.
func (ac *AccessControl) HasPermission(user string, p Permission) bool {
	return ac.Check(user, p) == nil
}

// RolePermissions returns the permissions of a role (ok false if undefined).
func (ac *AccessControl) RolePermissions(role string) (perms []Permission, ok bool) {
	ac.mu.RLock()
	defer ac.mu.RUnlock()
	b, ok := ac.roles[role]
	return list(b), ok
}

// Policy returns the policy as the engine stores it in a database
// (DB.SetAccessPolicy): roles and assignments, each list sorted.
func (ac *AccessControl) Policy() *engine.AccessPolicy {
	ac.mu.RLock()
	defer ac.mu.RUnlock()
	p := &engine.AccessPolicy{Roles: map[string][]Permission{}, Users: map[string][]string{}}
	for name, b := range ac.roles {
		p.Roles[name] = append([]Permission{}, list(b)...)
	}
	for u, rs := range ac.users {
		for r := range rs {
			p.Users[u] = append(p.Users[u], r)
		}
		sort.Strings(p.Users[u])
	}
	return p
}

// FromPolicy builds an AccessControl from a stored policy
// (DB.StoredAccessPolicy).
func FromPolicy(p *engine.AccessPolicy) (*AccessControl, error) {
	b, err := json.Marshal(policyFile{Version: policyVersion, Roles: p.Roles, Users: p.Users})
	if err != nil {
		return nil, err
	}
	ac := NewAccessControl()
	if err := ac.UnmarshalJSON(b); err != nil {
		return nil, err
	}
	return ac, nil
}

// Store saves the policy in the database, so that every connection of
// every process (the operator tools included) enforces it; it acts as the
// connection's user, who needs Configure once a policy is stored (see
// engine.DB.SetAccessPolicy). Policies kept only in a process
// (DB.SetAccessControl) bind that process alone.
func (ac *AccessControl) Store(db *engine.DB) error { return db.SetAccessPolicy(ac.Policy()) }

// StoreAs is Store acting as user.
func (ac *AccessControl) StoreAs(db *engine.DB, user string) error {
	return db.AsUser(user).SetAccessPolicy(ac.Policy())
}

// LoadStored returns the policy stored in db (engine.ErrNotFound when none
// is).
func LoadStored(db *engine.DB) (*AccessControl, error) {
	p, err := db.StoredAccessPolicy()
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, fmt.Errorf("%s: no access policy stored: %w", db.Path(), engine.ErrNotFound)
	}
	return FromPolicy(p)
}
