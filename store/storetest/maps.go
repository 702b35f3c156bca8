package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sqlmta/store"
)

// RunMaps runs the managed lookup table conformance tests (store.MapStore) as subtests.
func RunMaps(t *testing.T, h Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, ms store.MapStore)
	}{
		{"ImportLookup", testMapImportLookup},
		{"ReimportReplaces", testMapReimport},
		{"FailedImportChangesNothing", testMapFailedImport},
		{"Duplicates", testMapDuplicates},
		{"PutDelete", testMapPutDelete},
		{"MissingMap", testMapMissing},
		{"ImportAtomicForReaders", testMapAtomic},
		{"ConcurrentImportsNewerWins", testMapSuperseded},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := h.fresh(t)
			ms, ok := s.(store.MapStore)
			if !ok {
				t.Fatalf("%T does not implement store.MapStore", s)
			}
			tc.fn(t, ms)
		})
	}
}

// entriesOf yields es in order.
func entriesOf(es ...store.MapEntry) func(yield func(k, v string) error) error {
	return func(yield func(k, v string) error) error {
		for _, e := range es {
			if err := yield(e.Key, e.Value); err != nil {
				return err
			}
		}
		return nil
	}
}

// numbered yields n entries "prefix<i>" → value.
func numbered(prefix string, n int, value string) func(yield func(k, v string) error) error {
	return func(yield func(k, v string) error) error {
		for i := range n {
			if err := yield(fmt.Sprintf("%s%d", prefix, i), value); err != nil {
				return err
			}
		}
		return nil
	}
}

func mustLookup(t *testing.T, ms store.MapStore, name, key string, wantFound bool, want string) {
	t.Helper()
	v, found, err := ms.MapLookup(context.Background(), name, key)
	if err != nil {
		t.Fatalf("lookup %q: %v", key, err)
	}
	if found != wantFound || v != want {
		t.Errorf("lookup %q = %q, %v; want %q, %v", key, v, found, want, wantFound)
	}
}

func listAll(t *testing.T, ms store.MapStore, name string) []store.MapEntry {
	t.Helper()
	var out []store.MapEntry
	if err := ms.MapList(context.Background(), name, func(k, v string) error {
		out = append(out, store.MapEntry{Key: k, Value: v})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// trickyEntries are keys that must be stored and found byte for byte, never altering a query.
var trickyEntries = []store.MapEntry{
	{Key: "plain@example.com", Value: "user1"},
	{Key: "quote'd@example.com", Value: `it's "quoted"`},
	{Key: `back\slash`, Value: `C:\dir\`},
	{Key: "percent%s%%", Value: "100%"},
	{Key: "semi;colon; DROP TABLE map_entry;--", Value: "x;y"},
	{Key: "latin1-\xe9t\xe9", Value: "non-utf8 \xff\xfe"},
	{Key: "utf8-été", Value: "ünïcödé"},
	{Key: "empty-value", Value: ""},
	{Key: "MixedCase", Value: "kept as given"},
	{Key: "long", Value: strings.Repeat("v", 10000)},
}

func testMapImportLookup(t *testing.T, ms store.MapStore) {
	ctx := context.Background()
	n, err := ms.MapImport(ctx, "/etc/postfix/virtual", entriesOf(trickyEntries...), store.MapImportParams{})
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(trickyEntries)) {
		t.Errorf("import wrote %d entries, want %d", n, len(trickyEntries))
	}
	for _, e := range trickyEntries {
		mustLookup(t, ms, "/etc/postfix/virtual", e.Key, true, e.Value)
	}
	for _, k := range []string{"mixedcase", "plain@example.co", "", "quote'd@example.com' OR '1'='1", "%", "latin1-\xe9t"} {
		mustLookup(t, ms, "/etc/postfix/virtual", k, false, "")
	}
	got := listAll(t, ms, "/etc/postfix/virtual")
	want := slices.Clone(trickyEntries)
	slices.SortFunc(want, func(a, b store.MapEntry) int { return strings.Compare(a.Key, b.Key) })
	if !slices.Equal(got, want) {
		t.Errorf("list = %q,\nwant %q", got, want)
	}
	// Another map with the same keys is separate.
	if _, err := ms.MapImport(ctx, "/etc/postfix/other", entriesOf(store.MapEntry{Key: "plain@example.com", Value: "other"}), store.MapImportParams{}); err != nil {
		t.Fatal(err)
	}
	mustLookup(t, ms, "/etc/postfix/virtual", "plain@example.com", true, "user1")
	mustLookup(t, ms, "/etc/postfix/other", "plain@example.com", true, "other")
	mustLookup(t, ms, "/etc/postfix/other", "empty-value", false, "")
	names, err := ms.MapNames(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 2 || names[0].Name != "/etc/postfix/other" || names[1].Name != "/etc/postfix/virtual" {
		t.Errorf("names = %+v", names)
	}
	for _, mi := range names {
		if d := time.Since(mi.UpdatedAt); d < -time.Minute || d > time.Minute {
			t.Errorf("%s updated at %v, not now", mi.Name, mi.UpdatedAt)
		}
	}
}

func testMapReimport(t *testing.T, ms store.MapStore) {
	ctx := context.Background()
	const name = "/etc/aliases"
	if _, err := ms.MapImport(ctx, name, numbered("old", 1500, "o"), store.MapImportParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ms.MapImport(ctx, name, numbered("new", 1200, "n"), store.MapImportParams{}); err != nil {
		t.Fatal(err)
	}
	mustLookup(t, ms, name, "old0", false, "")
	mustLookup(t, ms, name, "new1199", true, "n")
	if got := listAll(t, ms, name); len(got) != 1200 {
		t.Errorf("after re-import the map lists %d entries, want 1200", len(got))
	}
	// An empty import empties the map, which still exists.
	if _, err := ms.MapImport(ctx, name, entriesOf(), store.MapImportParams{}); err != nil {
		t.Fatal(err)
	}
	mustLookup(t, ms, name, "new0", false, "")
	if got := listAll(t, ms, name); len(got) != 0 {
		t.Errorf("empty import left %d entries", len(got))
	}
}

func testMapFailedImport(t *testing.T, ms store.MapStore) {
	ctx := context.Background()
	const name = "/etc/postfix/access"
	if _, err := ms.MapImport(ctx, name, numbered("k", 10, "old"), store.MapImportParams{}); err != nil {
		t.Fatal(err)
	}
	bad := errors.New("file:1234: bad line")
	// Fail well after the first batches were written.
	_, err := ms.MapImport(ctx, name, func(yield func(k, v string) error) error {
		for i := range 5000 {
			if err := yield(fmt.Sprintf("k%d", i), "new"); err != nil {
				return err
			}
		}
		return bad
	}, store.MapImportParams{})
	if !errors.Is(err, bad) {
		t.Fatalf("import error = %v, want the iterator's", err)
	}
	mustLookup(t, ms, name, "k0", true, "old")
	mustLookup(t, ms, name, "k10", false, "")
	if got := listAll(t, ms, name); len(got) != 10 {
		t.Errorf("failed import left %d entries listed, want 10", len(got))
	}
	// A failed first import creates no map.
	_, err = ms.MapImport(ctx, "/etc/postfix/never", func(yield func(k, v string) error) error {
		yield("a", "b")
		return bad
	}, store.MapImportParams{})
	if !errors.Is(err, bad) {
		t.Fatalf("import error = %v", err)
	}
	if _, _, err := ms.MapLookup(ctx, "/etc/postfix/never", "a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("map of a failed first import: lookup error %v, want ErrNotFound", err)
	}
}

func testMapDuplicates(t *testing.T, ms store.MapStore) {
	ctx := context.Background()
	const name = "/etc/postfix/dups"
	if _, err := ms.MapImport(ctx, name, entriesOf(store.MapEntry{Key: "a", Value: "1"}), store.MapImportParams{}); err != nil {
		t.Fatal(err)
	}
	dup := entriesOf(store.MapEntry{Key: "a", Value: "first"}, store.MapEntry{Key: "b", Value: "x"}, store.MapEntry{Key: "a", Value: "last"})
	if _, err := ms.MapImport(ctx, name, dup, store.MapImportParams{}); err == nil {
		t.Error("duplicate keys without Replace: no error")
	}
	mustLookup(t, ms, name, "a", true, "1")
	mustLookup(t, ms, name, "b", false, "")
	n, err := ms.MapImport(ctx, name, dup, store.MapImportParams{Replace: true})
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("Replace import counted %d entries, want 2", n)
	}
	mustLookup(t, ms, name, "a", true, "last")
	mustLookup(t, ms, name, "b", true, "x")
}

func testMapPutDelete(t *testing.T, ms store.MapStore) {
	ctx := context.Background()
	const name = "/etc/postfix/transport"
	// Put creates the map.
	existed, err := ms.MapPut(ctx, name, []store.MapEntry{{Key: "a", Value: "1"}, {Key: "b", Value: "2"}}, store.MapPutParams{})
	if err != nil || len(existed) != 0 {
		t.Fatalf("put = %v, %v", existed, err)
	}
	existed, err = ms.MapPut(ctx, name, []store.MapEntry{{Key: "a", Value: "one"}, {Key: "c", Value: "3"}}, store.MapPutParams{})
	if err != nil || !slices.Equal(existed, []string{"a"}) {
		t.Fatalf("put over a = %v, %v; want [a]", existed, err)
	}
	mustLookup(t, ms, name, "a", true, "1")
	mustLookup(t, ms, name, "c", true, "3")
	if _, err := ms.MapPut(ctx, name, []store.MapEntry{{Key: "a", Value: "one"}}, store.MapPutParams{Replace: true}); err != nil {
		t.Fatal(err)
	}
	mustLookup(t, ms, name, "a", true, "one")
	ok, err := ms.MapDelete(ctx, name, "b")
	if err != nil || !ok {
		t.Fatalf("delete b = %v, %v", ok, err)
	}
	ok, err = ms.MapDelete(ctx, name, "b")
	if err != nil || ok {
		t.Fatalf("second delete b = %v, %v; want false", ok, err)
	}
	mustLookup(t, ms, name, "b", false, "")
	want := []store.MapEntry{{Key: "a", Value: "one"}, {Key: "c", Value: "3"}}
	if got := listAll(t, ms, name); !slices.Equal(got, want) {
		t.Errorf("list = %v, want %v", got, want)
	}
	// Incremental changes land in the current generation of an imported map, and a re-import drops them.
	if _, err := ms.MapImport(ctx, name, entriesOf(store.MapEntry{Key: "x", Value: "1"}), store.MapImportParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ms.MapPut(ctx, name, []store.MapEntry{{Key: "y", Value: "2"}}, store.MapPutParams{}); err != nil {
		t.Fatal(err)
	}
	mustLookup(t, ms, name, "x", true, "1")
	mustLookup(t, ms, name, "y", true, "2")
}

func testMapMissing(t *testing.T, ms store.MapStore) {
	ctx := context.Background()
	if _, _, err := ms.MapLookup(ctx, "/nope", "k"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("lookup in a missing map: %v, want ErrNotFound", err)
	}
	if _, err := ms.MapDelete(ctx, "/nope", "k"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("delete in a missing map: %v, want ErrNotFound", err)
	}
	if err := ms.MapList(ctx, "/nope", func(k, v string) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("list of a missing map: %v, want ErrNotFound", err)
	}
	names, err := ms.MapNames(ctx)
	if err != nil || len(names) != 0 {
		t.Errorf("names = %v, %v", names, err)
	}
}

// testMapAtomic re-imports a map while a reader looks up in a loop. The import pauses after writing more
// rows than one commit holds, until the reader has looked again: the reader must still see the old
// values then, see only "old" or "new" throughout, and never "old" once it saw "new".
func testMapAtomic(t *testing.T, ms store.MapStore) {
	ctx := context.Background()
	const name = "/etc/postfix/atomic"
	const n = 60000
	if _, err := ms.MapImport(ctx, name, numbered("k", n, "old"), store.MapImportParams{}); err != nil {
		t.Fatal(err)
	}
	var lookups atomic.Int64
	var sawNew atomic.Bool
	stop := make(chan struct{})
	readerErr := make(chan error, 1)
	go func() {
		keys := []string{"k0", fmt.Sprint("k", n/2), fmt.Sprint("k", n-1)}
		for i := 0; ; i++ {
			select {
			case <-stop:
				readerErr <- nil
				return
			default:
			}
			k := keys[i%len(keys)]
			v, found, err := ms.MapLookup(ctx, name, k)
			switch {
			case err != nil:
				readerErr <- err
				return
			case !found:
				readerErr <- fmt.Errorf("%s not found mid-import", k)
				return
			case v == "new":
				sawNew.Store(true)
			case v == "old" && sawNew.Load():
				readerErr <- fmt.Errorf("%s: old value after a new one", k)
				return
			case v != "old":
				readerErr <- fmt.Errorf("%s = %q", k, v)
				return
			}
			lookups.Add(1)
		}
	}()
	var midOld bool
	_, err := ms.MapImport(ctx, name, func(yield func(k, v string) error) error {
		for i := range n {
			if i == n-5000 {
				// Most rows are written (and, where the dialect commits in chunks, committed).
				seen := lookups.Load()
				for deadline := time.Now().Add(30 * time.Second); lookups.Load() < seen+20 && time.Now().Before(deadline); {
					time.Sleep(time.Millisecond)
				}
				midOld = !sawNew.Load()
			}
			if err := yield(fmt.Sprintf("k%d", i), "new"); err != nil {
				return err
			}
		}
		return nil
	}, store.MapImportParams{})
	if err != nil {
		t.Fatal(err)
	}
	// The reader sees the flip soon after the import returns.
	for deadline := time.Now().Add(30 * time.Second); !sawNew.Load() && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	if err := <-readerErr; err != nil {
		t.Fatal(err)
	}
	if !midOld {
		t.Error("a reader saw new values before the import finished")
	}
	if !sawNew.Load() {
		t.Error("the reader never saw the new values")
	}
}

// testMapSuperseded: import A starts, import B starts later and finishes first; A then finds it lost.
func testMapSuperseded(t *testing.T, ms store.MapStore) {
	ctx := context.Background()
	const name = "/etc/postfix/race"
	var wg sync.WaitGroup
	started, release := make(chan struct{}), make(chan struct{})
	var errA error
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, errA = ms.MapImport(ctx, name, func(yield func(k, v string) error) error {
			if err := yield("a", "A"); err != nil {
				return err
			}
			close(started)
			<-release
			return yield("b", "A")
		}, store.MapImportParams{})
	}()
	<-started
	time.Sleep(time.Millisecond) // a later generation for B, whatever the clock's resolution
	if _, err := ms.MapImport(ctx, name, entriesOf(store.MapEntry{Key: "a", Value: "B"}), store.MapImportParams{}); err != nil {
		t.Fatal(err)
	}
	close(release)
	wg.Wait()
	if !errors.Is(errA, store.ErrMapSuperseded) {
		t.Errorf("older import: %v, want ErrMapSuperseded", errA)
	}
	mustLookup(t, ms, name, "a", true, "B")
	mustLookup(t, ms, name, "b", false, "")
	if got := listAll(t, ms, name); len(got) != 1 {
		t.Errorf("map lists %d entries, want 1", len(got))
	}
}
