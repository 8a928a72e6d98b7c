// Package mqtttest runs real Mosquitto brokers for tests, and makes the
// TLS certificates of test brokers.
//
// Tests that need Mosquitto call RequireMosquitto (or StartMosquitto, which
// calls it): when Mosquitto is not installed the test is skipped, unless the
// environment sets FABGATE_REQUIRE_ALL=1 (as CI does), where a missing
// dependency fails the test instead of hiding behind a skip.
package mqtttest

import (
	"bufio"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RequireAllEnv is the environment variable that turns a missing test
// dependency from a skip into a failure when set to 1.
const RequireAllEnv = "FABGATE_REQUIRE_ALL"

// RequireTool returns the path of the program name, looked up in PATH and
// then in the sbin directories (Mosquitto lives in /usr/sbin, often not in
// a user's PATH). If it is missing the test is skipped, or fails when
// FABGATE_REQUIRE_ALL=1.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin", "/opt/homebrew/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	if os.Getenv(RequireAllEnv) == "1" {
		t.Fatalf("%s is not installed, and %s=1 requires every test dependency", name, RequireAllEnv)
	}
	t.Skipf("%s is not installed (set %s=1 to make this a failure)", name, RequireAllEnv)
	return ""
}

// RequireMosquitto returns the path of the mosquitto broker binary, skipping
// or failing the test as RequireTool does.
func RequireMosquitto(t testing.TB) string {
	t.Helper()
	return RequireTool(t, "mosquitto")
}

// FreeAddr returns 127.0.0.1:<port> with a port that was free a moment ago,
// for a broker that must be told its port in advance.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	return addr
}

// startTimeout bounds how long Mosquitto may take to start listening.
const startTimeout = 10 * time.Second

// StartMosquitto runs `mosquitto -c <dir>/fabgate.conf` (the configuration
// that mqtt.WriteMosquittoConfig writes) and returns the host:port of its
// listener once it accepts connections. The broker is stopped at cleanup and
// its log is shown if the test failed.
//
// When the test runs as root, the broker is started from a copy of the
// configuration with "user root" added: otherwise Mosquitto would switch to
// the "mosquitto" user and could not read the 0600 files in the test's
// private temporary directory.
func StartMosquitto(t testing.TB, dir string) string {
	t.Helper()
	addr, _ := StartMosquittoReloadable(t, dir)
	return addr
}

// StartMosquittoReloadable is StartMosquitto, and also returns a function
// that makes the broker reload its configuration (SIGHUP, as
// `systemctl reload mosquitto` does).
func StartMosquittoReloadable(t testing.TB, dir string) (addr string, reload func()) {
	t.Helper()
	bin := RequireMosquitto(t)
	confPath := filepath.Join(dir, "fabgate.conf")
	conf, err := os.ReadFile(confPath)
	if err != nil {
		t.Fatalf("read mosquitto config: %v", err)
	}
	addr, err = listenerAddr(string(conf))
	if err != nil {
		t.Fatalf("%s: %v", confPath, err)
	}
	if os.Geteuid() == 0 {
		confPath = filepath.Join(dir, "fabgate-test-root.conf")
		conf = append(conf, []byte("user root\n")...)
		if err := os.WriteFile(confPath, conf, 0o600); err != nil {
			t.Fatalf("write mosquitto test config: %v", err)
		}
	}

	cmd := exec.Command(bin, "-c", confPath)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatalf("mosquitto stderr: %v", err)
	}
	cmd.Stdout = nil
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mosquitto: %v", err)
	}

	// Mosquitto logs to stderr; it says "running" once its listeners are open.
	var (
		mu   sync.Mutex
		logs []string
	)
	running := make(chan struct{})
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stderr)
		seen := false
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			logs = append(logs, line)
			mu.Unlock()
			if !seen && strings.Contains(line, " running") {
				seen = true
				close(running)
			}
		}
	}()
	exited := make(chan error, 1)
	go func() {
		<-scanned // Wait must not run before the pipe is drained
		exited <- cmd.Wait()
	}()

	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	showLog := func() {
		mu.Lock()
		defer mu.Unlock()
		t.Logf("mosquitto log:\n%s", strings.Join(logs, "\n"))
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			showLog()
		}
	})

	select {
	case <-running:
	case err := <-exited:
		stopped = true
		showLog()
		t.Fatalf("mosquitto exited before listening: %v", err)
	case <-time.After(startTimeout):
		showLog()
		t.Fatalf("mosquitto did not start listening within %s", startTimeout)
	}
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("mosquitto said it runs but %s does not answer: %v", addr, err)
	}
	_ = c.Close()
	return addr, func() {
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Errorf("reload mosquitto: %v", err)
		}
	}
}

// listenerAddr finds the first "listener <port> [host]" line.
func listenerAddr(conf string) (string, error) {
	for _, line := range strings.Split(conf, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "listener" {
			continue
		}
		host := "127.0.0.1"
		if len(f) >= 3 && f[2] != "0.0.0.0" && f[2] != "::" {
			host = f[2]
		}
		return net.JoinHostPort(host, f[1]), nil
	}
	return "", errors.New("no listener line")
}
