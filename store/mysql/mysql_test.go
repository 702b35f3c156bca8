package mysql_test

import (
	"context"
	"testing"

	"sqlmta/internal/testdb"
	"sqlmta/store"
	"sqlmta/store/mysql"
	"sqlmta/store/storetest"
)

var harness = storetest.Harness{
	NewURL: func(t testing.TB) string {
		url := testdb.MySQLURL(t)
		if err := mysql.Migrate(context.Background(), url); err != nil {
			t.Fatal(err)
		}
		return url
	},
	Open: func(t testing.TB, url string) store.Store {
		s, err := mysql.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		return s
	},
}

func TestConformance(t *testing.T) { storetest.Run(t, harness) }

func TestMapConformance(t *testing.T) { storetest.RunMaps(t, harness) }

func BenchmarkEnqueue(b *testing.B)         { storetest.BenchmarkEnqueue(b, harness) }
func BenchmarkEnqueueParallel(b *testing.B) { storetest.BenchmarkEnqueueParallel(b, harness) }
func BenchmarkClaimComplete(b *testing.B)   { storetest.BenchmarkClaimComplete(b, harness) }
