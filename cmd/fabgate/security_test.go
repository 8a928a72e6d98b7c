package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// e2eMetricsToken is the metrics token of the end-to-end servers.
const e2eMetricsToken = "e2e-metrics-token-0123456789"

// TestServeMetricsAccess: /metrics on the HTTP address answers only the
// metrics token; with --metrics-listen it is served on that address alone.
func TestServeMetricsAccess(t *testing.T) {
	get := func(t *testing.T, url, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body)
	}
	t.Run("token", func(t *testing.T) {
		srv := startServer(t, "--data", t.TempDir(), "--metrics-token", e2eMetricsToken)
		if st, _ := get(t, srv.url+"/metrics", ""); st != http.StatusUnauthorized {
			t.Errorf("scrape without the token: %d, want 401", st)
		}
		if st, _ := get(t, srv.url+"/metrics", "wrong-token-0123456789"); st != http.StatusUnauthorized {
			t.Errorf("scrape with a wrong token: %d, want 401", st)
		}
		if st, body := get(t, srv.url+"/metrics", e2eMetricsToken); st != 200 || !strings.Contains(body, "fabgate_http_requests_total") {
			t.Errorf("scrape with the token: %d %.200s", st, body)
		}
	})
	t.Run("no token", func(t *testing.T) {
		srv := startServer(t, "--data", t.TempDir())
		if st, _ := get(t, srv.url+"/metrics", ""); st != http.StatusNotFound {
			t.Errorf("scrape of a server without metrics settings: %d, want 404", st)
		}
	})
	t.Run("own address", func(t *testing.T) {
		// A free port: listen, note it, close (another program could take it
		// in between; the test then fails at start, saying so).
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		srv := startServer(t, "--data", t.TempDir(), "--metrics-listen", addr)
		if st, body := get(t, "http://"+addr+"/metrics", ""); st != 200 || !strings.Contains(body, "go_goroutines") {
			t.Errorf("scrape of the metrics address: %d %.200s", st, body)
		}
		if st, _ := get(t, srv.url+"/metrics", ""); st != http.StatusNotFound {
			t.Errorf("scrape of the HTTP address: %d, want 404", st)
		}
		if st, _ := get(t, "http://"+addr+"/api/v1/me", ""); st != http.StatusNotFound {
			t.Errorf("the metrics address serves the API: %d", st)
		}
	})
}

// TestBackupFileMode: `fabgate backup` writes a file only its owner can
// read (it holds the badge key and the server's MQTT password), also when it
// replaces a file anyone could read.
func TestBackupFileMode(t *testing.T) {
	data := t.TempDir()
	if err := run(context.Background(), []string{"user", "add", "--data", data, "--email", "a@lab.test", "--name", "A", "--role", "admin"}, strings.NewReader(""), io.Discard, io.Discard, envOf(nil)); err != nil {
		t.Fatalf("user add: %v", err)
	}
	out := filepath.Join(t.TempDir(), "backup.db")
	if err := os.WriteFile(out, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(out, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"backup", "--data", data, "--out", out}, nil, io.Discard, io.Discard, envOf(nil)); err != nil {
		t.Fatalf("backup: %v", err)
	}
	st, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if mode := st.Mode().Perm(); mode != 0o600 {
		t.Fatalf("backup file mode %o, want 600", mode)
	}
	if st.Size() < 1024 {
		t.Fatalf("backup of %d bytes", st.Size())
	}
}
