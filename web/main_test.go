package web

import (
	"testing"

	"github.com/rampart-fw/rampart/internal/testdb"
)

// TestMain stops the PostgreSQL cluster that tests on that engine start
// (RAMPART_TEST_ENGINE=postgres; see internal/testdb).
func TestMain(m *testing.M) { testdb.Main(m) }
