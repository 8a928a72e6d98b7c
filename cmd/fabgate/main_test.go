package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// testMainEnv, set to 1, makes this test binary run as the fabgate command
// (main) instead of running the tests: tests that start fabgate as a
// process of its own — shell scripts calling it, exit statuses — run the
// code under test, with the race detector, without building a binary.
const testMainEnv = "FABGATE_TEST_MAIN"

// TestMain runs this test binary as fabgate when testMainEnv or, for the
// crash loop's server living at a lab clock of its own, crashChildEnv
// says so; else it runs the tests.
func TestMain(m *testing.M) {
	switch {
	case os.Getenv(crashChildEnv) == "1":
		os.Exit(fabgateChild(os.Args[1:]))
	case os.Getenv(testMainEnv) == "1":
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fabgateBinary is the path of the program to run as fabgate: this test
// binary, with testMainEnv in its environment (fabgateEnv).
func fabgateBinary(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// fabgateEnv is the environment of a process that runs fabgate, or runs a
// script that does (FABGATE names the binary), with extra added.
func fabgateEnv(t *testing.T, extra ...string) []string {
	t.Helper()
	// The race detector waits a second at exit for late reports, by
	// default: a script runs fabgate many times.
	gorace := strings.TrimSpace("atexit_sleep_ms=0 " + os.Getenv("GORACE"))
	return append(append(os.Environ(), testMainEnv+"=1", "FABGATE="+fabgateBinary(t), "GORACE="+gorace), extra...)
}

// runFabgate runs `fabgate args…` as a process and returns its standard
// output and error and its exit error.
func runFabgate(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(fabgateBinary(t), args...)
	cmd.Env = fabgateEnv(t)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// TestCommandsHelp: every command's -h (and --help) prints its usage line
// and every one of its flags to standard output, and exits 0; a flag it
// does not know points to -h and exits 1.
func TestCommandsHelp(t *testing.T) {
	serveFlags := []string{"config"}
	for _, s := range settings {
		serveFlags = append(serveFlags, s.name)
	}
	tests := []struct {
		args  []string // the command, without -h
		usage string   // what the usage line starts with
		flags []string
	}{
		{[]string{"serve"}, "usage: fabgate serve", serveFlags},
		{[]string{"user", "add"}, "usage: fabgate user add", []string{"data", "email", "name", "role", "group", "password-stdin"}},
		{[]string{"user"}, "usage: fabgate user add", nil},
		{[]string{"check"}, "usage: fabgate check", []string{"data"}},
		{[]string{"backup"}, "usage: fabgate backup", []string{"data", "out", "url", "email", "password-stdin"}},
		{[]string{"mosquitto-config"}, "usage: fabgate mosquitto-config", []string{"data", "out", "listen", "prefix", "server-user"}},
		{[]string{"version"}, "usage: fabgate version", nil},
		{nil, "usage: fabgate <command>", nil},
	}
	for _, tt := range tests {
		for _, h := range []string{"-h", "--help"} {
			name := strings.Join(append(append([]string{}, tt.args...), h), " ")
			t.Run(name, func(t *testing.T) {
				stdout, stderr, err := runFabgate(t, append(append([]string{}, tt.args...), h)...)
				if err != nil {
					t.Fatalf("exit: %v, want 0 (stderr %q)", err, stderr)
				}
				if !strings.HasPrefix(stdout, tt.usage) {
					t.Errorf("output starts %q, want %q", firstLine(stdout), tt.usage)
				}
				for _, f := range tt.flags {
					if !strings.Contains(stdout, "\n  -"+f+" ") && !strings.Contains(stdout, "\n  -"+f+"\n") {
						t.Errorf("-%s is not listed:\n%s", f, stdout)
					}
				}
				if stderr != "" {
					t.Errorf("stderr %q, want nothing", stderr)
				}
			})
		}
	}
	for _, args := range [][]string{{"serve"}, {"user", "add"}, {"check"}, {"backup"}, {"mosquitto-config"}, {"version"}} {
		t.Run(strings.Join(args, " ")+" --no-such-flag", func(t *testing.T) {
			cmd := strings.Join(args, " ")
			_, stderr, err := runFabgate(t, append(append([]string{}, args...), "--no-such-flag")...)
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
				t.Fatalf("exit: %v, want 1", err)
			}
			if want := "see fabgate " + cmd + " -h"; !strings.Contains(stderr, want) {
				t.Errorf("stderr %q does not say %q", stderr, want)
			}
		})
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
