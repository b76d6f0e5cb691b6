module github.com/sombradb/sombra/bench

go 1.26.0

require (
	github.com/mattn/go-sqlite3 v1.14.53
	github.com/sombradb/sombra v0.0.0-00010101000000-000000000000
	go.etcd.io/bbolt v1.5.0
)

require golang.org/x/sys v0.50.0

require github.com/cespare/xxhash/v2 v2.3.0 // indirect

replace github.com/sombradb/sombra => ../
