package httpapi

import (
	"testing"

	"github.com/fabgate/fabgate/internal/browsertest"
)

// TestMain shares one headless Chromium among the package's browser tests.
func TestMain(m *testing.M) { browsertest.Main(m) }
