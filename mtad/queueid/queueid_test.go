package queueid

import (
	"regexp"
	"testing"
)

func TestNewIsUniqueAndWellFormed(t *testing.T) {
	re := regexp.MustCompile(`^[0-9A-F]{14}$`)
	seen := map[string]bool{}
	for i := 0; i < 10000; i++ {
		id := New()
		if !re.MatchString(id) {
			t.Fatalf("bad id %q", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q after %d", id, i)
		}
		seen[id] = true
	}
}
