package postgres_test

import (
	"testing"

	"sqlmta/store/storetest"
)

func TestAdminConformance(t *testing.T) { storetest.RunAdmin(t, harness) }
