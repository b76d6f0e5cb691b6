package audit

import (
	"path/filepath"
	"testing"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/security"
)

// BenchmarkCreateNode measures the cost of the hooks on a write: without
// access control or auditing the engine only tests a nil pointer.
func BenchmarkCreateNode(b *testing.B) {
	for _, mode := range []string{"none", "acl", "acl+audit"} {
		b.Run(mode, func(b *testing.B) {
			dir := b.TempDir()
			db, err := engine.Open(filepath.Join(dir, "g.db"))
			must(b, err)
			defer db.Close()
			if mode != "none" {
				acl := security.NewAccessControl()
				must(b, acl.AddRole("user", []security.Permission{security.Read, security.Write}))
				must(b, acl.AssignRole("bob", "user"))
				db.SetAccessControl(acl)
			}
			if mode == "acl+audit" {
				a, err := NewAuditLogger(filepath.Join(dir, "audit.log"))
				must(b, err)
				defer a.Close()
				db.SetAuditor(a)
			}
			tx, err := db.BeginTransactionAs("bob")
			must(b, err)
			defer tx.Rollback()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := tx.CreateNode("P", nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
