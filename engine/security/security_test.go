package security_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/security"
)

// guidePolicy is the policy of the operations guide ("Security Operations").
func guidePolicy(t testing.TB) *security.AccessControl {
	t.Helper()
	acl := security.NewAccessControl()
	must(t, acl.AddRole("admin", []security.Permission{security.Read, security.Write, security.Delete, security.Backup, security.Configure}))
	must(t, acl.AddRole("user", []security.Permission{security.Read, security.Write}))
	must(t, acl.AddRole("readonly", []security.Permission{security.Read}))
	must(t, acl.AssignRole("alice", "admin"))
	must(t, acl.AssignRole("bob", "user"))
	must(t, acl.AssignRole("charlie", "readonly"))
	return acl
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestPermissionStringParse(t *testing.T) {
	want := map[security.Permission]string{security.Read: "read", security.Write: "write",
		security.Delete: "delete", security.Backup: "backup", security.Configure: "configure"}
	if len(security.AllPermissions()) != len(want) {
		t.Fatalf("AllPermissions = %v", security.AllPermissions())
	}
	for _, p := range security.AllPermissions() {
		if p.String() != want[p] {
			t.Errorf("%d.String() = %q, want %q", p, p.String(), want[p])
		}
		for _, s := range []string{want[p], strings.ToUpper(want[p]), " " + want[p] + " "} {
			got, err := security.ParsePermission(s)
			if err != nil || got != p {
				t.Errorf("ParsePermission(%q) = %v, %v", s, got, err)
			}
		}
	}
	if _, err := security.ParsePermission("admin"); !errors.Is(err, engine.ErrInvalid) {
		t.Errorf("ParsePermission(admin) err = %v, want ErrInvalid", err)
	}
	if s := security.Permission(0).String(); s != "permission(0)" {
		t.Errorf("invalid permission String = %q", s)
	}
}

func TestGuideRoles(t *testing.T) {
	acl := guidePolicy(t)
	grants := map[string][]security.Permission{
		"alice":   {security.Read, security.Write, security.Delete, security.Backup, security.Configure},
		"bob":     {security.Read, security.Write},
		"charlie": {security.Read},
		"dave":    nil, // no roles
		"":        nil, // the anonymous user
	}
	for user, has := range grants {
		for _, p := range security.AllPermissions() {
			err := acl.Check(user, p)
			granted := false
			for _, h := range has {
				granted = granted || h == p
			}
			if granted != (err == nil) {
				t.Errorf("Check(%q, %v) = %v, want granted=%v", user, p, err, granted)
			}
			if err == nil {
				continue
			}
			if !errors.Is(err, engine.ErrPermissionDenied) || !errors.Is(err, security.ErrPermissionDenied) {
				t.Errorf("Check(%q, %v) = %v: does not match ErrPermissionDenied", user, p, err)
			}
			var pe *engine.PermissionError
			if !errors.As(err, &pe) || pe.User != user || pe.Permission != p {
				t.Errorf("Check(%q, %v) = %#v", user, p, err)
			}
			if !strings.Contains(err.Error(), `"`+user+`"`) || !strings.Contains(err.Error(), p.String()) {
				t.Errorf("error %q does not name user %q and permission %v", err, user, p)
			}
		}
		if got := acl.Permissions(user); !reflect.DeepEqual(got, has) {
			t.Errorf("Permissions(%q) = %v, want %v", user, got, has)
		}
	}
	if got := acl.Users(); !reflect.DeepEqual(got, []string{"alice", "bob", "charlie"}) {
		t.Errorf("Users = %v", got)
	}
}

func TestRoleManagement(t *testing.T) {
	acl := guidePolicy(t)
	if err := acl.AddRole("admin", nil); !errors.Is(err, engine.ErrExists) {
		t.Errorf("duplicate AddRole err = %v", err)
	}
	if err := acl.AddRole("", nil); !errors.Is(err, engine.ErrInvalid) {
		t.Errorf("AddRole empty name err = %v", err)
	}
	if err := acl.AddRole("bad", []security.Permission{security.Read | security.Write}); !errors.Is(err, engine.ErrInvalid) {
		t.Errorf("AddRole combined permission err = %v", err)
	}
	if err := acl.AssignRole("bob", "nosuch"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("AssignRole unknown role err = %v", err)
	}
	// Assigning twice is fine; one revoke takes it away.
	must(t, acl.AssignRole("charlie", "user"))
	must(t, acl.AssignRole("charlie", "user"))
	if got := acl.UserRoles("charlie"); !reflect.DeepEqual(got, []string{"readonly", "user"}) {
		t.Errorf("UserRoles(charlie) = %v", got)
	}
	must(t, acl.Check("charlie", security.Write))
	must(t, acl.RevokeRole("charlie", "user"))
	if err := acl.Check("charlie", security.Write); !errors.Is(err, engine.ErrPermissionDenied) {
		t.Errorf("after revoke: %v", err)
	}
	if err := acl.RevokeRole("charlie", "user"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("revoke of a role not held: %v", err)
	}
	must(t, acl.SetRolePermissions("readonly", []security.Permission{security.Read, security.Backup}))
	must(t, acl.Check("charlie", security.Backup))
	must(t, acl.RemoveRole("readonly"))
	if err := acl.Check("charlie", security.Read); err == nil {
		t.Error("charlie still reads after his only role was removed")
	}
	if got := acl.Users(); !reflect.DeepEqual(got, []string{"alice", "bob"}) {
		t.Errorf("Users after RemoveRole = %v", got)
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	acl := guidePolicy(t)
	must(t, acl.AddRole("empty", nil))
	must(t, acl.AssignRole("", "readonly"))
	path := filepath.Join(t.TempDir(), "policy.json")
	must(t, acl.Save(path))
	st, err := os.Stat(path)
	must(t, err)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("policy file mode %v, want 0600", st.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	for _, s := range []string{`"version": 1`, `"admin": [`, `"configure"`, `"charlie": [`} {
		if !strings.Contains(string(b), s) {
			t.Errorf("policy file lacks %s:\n%s", s, b)
		}
	}
	got, err := security.LoadAccessControl(path)
	must(t, err)
	if !reflect.DeepEqual(got.Roles(), acl.Roles()) {
		t.Errorf("roles: got %v, want %v", got.Roles(), acl.Roles())
	}
	for _, u := range []string{"alice", "bob", "charlie", "", "dave"} {
		if !reflect.DeepEqual(got.UserRoles(u), acl.UserRoles(u)) || !reflect.DeepEqual(got.Permissions(u), acl.Permissions(u)) {
			t.Errorf("user %q: got %v %v, want %v %v", u, got.UserRoles(u), got.Permissions(u), acl.UserRoles(u), acl.Permissions(u))
		}
	}
	// Saving the loaded policy gives the same bytes.
	path2 := filepath.Join(t.TempDir(), "policy2.json")
	must(t, got.Save(path2))
	b2, _ := os.ReadFile(path2)
	if string(b) != string(b2) {
		t.Errorf("re-saved policy differs:\n%s\n---\n%s", b, b2)
	}
}

func TestLoadRejectsBadPolicies(t *testing.T) {
	dir := t.TempDir()
	bad := map[string]string{
		"unknown permission": `{"version":1,"roles":{"r":["read","fly"]},"users":{}}`,
		"undefined role":     `{"version":1,"roles":{"r":["read"]},"users":{"bob":["admin"]}}`,
		"unknown field":      `{"version":1,"roles":{},"users":{},"groups":{}}`,
		"version":            `{"version":2,"roles":{},"users":{}}`,
		"not json":           `roles: admin`,
	}
	for name, text := range bad {
		acl := guidePolicy(t)
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		must(t, os.WriteFile(path, []byte(text), 0o600))
		if err := acl.Load(path); err == nil {
			t.Errorf("%s: Load accepted %s", name, text)
		}
		// A failed Load leaves the policy as it was.
		if acl.Check("alice", security.Configure) != nil || acl.Check("charlie", security.Read) != nil {
			t.Errorf("%s: failed Load changed the policy", name)
		}
	}
	if _, err := security.LoadAccessControl(filepath.Join(dir, "missing")); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("missing file: %v", err)
	}
}

func TestReloadLivePolicy(t *testing.T) {
	acl := guidePolicy(t)
	path := filepath.Join(t.TempDir(), "policy.json")
	must(t, os.WriteFile(path, []byte(`{"version":1,"roles":{"readonly":["read"]},"users":{"bob":["readonly"]}}`), 0o600))
	must(t, acl.Load(path))
	if acl.Check("bob", security.Write) == nil || acl.Check("bob", security.Read) != nil || acl.Check("alice", security.Read) == nil {
		t.Error("Load did not replace the policy")
	}
}

func TestConcurrentUse(t *testing.T) {
	acl := guidePolicy(t)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := 0; j < 500; j++ {
				if err := acl.Check("alice", security.Configure); err != nil {
					t.Error(err)
					return
				}
				acl.Check("dave", security.Read)
			}
		}()
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				acl.AssignRole("dave", "user")
				acl.RevokeRole("dave", "user")
				acl.Roles()
				acl.Permissions("dave")
			}
		}()
	}
	wg.Wait()
}

// Store keeps the policy in the database: a connection that installs
// nothing enforces it, and LoadStored reads it back.
func TestStoreInDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "g.db")
	db, err := engine.Open(path)
	must(t, err)
	defer db.Close()
	acl := guidePolicy(t)
	must(t, acl.Store(db))
	other, err := engine.OpenWithConfig(path, engine.Config{User: "charlie"})
	must(t, err)
	defer other.Close()
	err = other.Update(func(tx *engine.Tx) error { _, err := tx.CreateNode("N", nil); return err })
	if !errors.Is(err, engine.ErrPermissionDenied) {
		t.Fatalf("charlie (readonly) wrote: %v", err)
	}
	back, err := security.LoadStored(other)
	must(t, err)
	a, _ := acl.MarshalJSON()
	b, _ := back.MarshalJSON()
	if string(a) != string(b) {
		t.Fatalf("stored policy differs:\n%s\n%s", a, b)
	}
	// Only an admin changes it.
	if err := acl.StoreAs(db, "bob"); !errors.Is(err, engine.ErrPermissionDenied) {
		t.Fatalf("bob stored the policy: %v", err)
	}
	must(t, acl.StoreAs(db, "alice"))
}
