package mqtt

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/fabgate/fabgate/internal/mqtt/mqtttest"
)

var hashFormat = regexp.MustCompile(`^\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$`)

func TestMosquittoPasswordHash(t *testing.T) {
	h1, err := MosquittoPasswordHash("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	h2, err := MosquittoPasswordHash("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if !hashFormat.MatchString(h1) {
		t.Errorf("hash %q is not in mosquitto_passwd's format", h1)
	}
	if h1 == h2 {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
	if !VerifyMosquittoHash(h1, "s3cret") || !VerifyMosquittoHash(h2, "s3cret") {
		t.Error("hash does not verify its own password")
	}
	if VerifyMosquittoHash(h1, "s3cret ") || VerifyMosquittoHash(h1, "") {
		t.Error("hash verifies another password")
	}
	if _, err := MosquittoPasswordHash(""); err == nil {
		t.Error("empty password hashed")
	}
}

func TestVerifyMosquittoHash(t *testing.T) {
	// Written by mosquitto_passwd 2.0.11 for the password "secret".
	const fromMosquitto = "$7$101$X8EwPjgzNDJItHpE$p+NwyBVTIynteWlPHSElKj5W7A8UcDp4sIMD7T2j5RHmB1cstavdV4gS30xoUG+s0FiqV2+MFplZKjNqSQJyOQ=="
	cases := []struct {
		name, hash, password string
		want                 bool
	}{
		{"mosquitto 2.0 hash", fromMosquitto, "secret", true},
		{"wrong password", fromMosquitto, "Secret", false},
		{"other iteration count", strings.Replace(fromMosquitto, "$101$", "$102$", 1), "secret", false},
		{"empty", "", "secret", false},
		{"plaintext", "secret", "secret", false},
		{"unknown algorithm", strings.Replace(fromMosquitto, "$7$", "$8$", 1), "secret", false},
		{"zero iterations", strings.Replace(fromMosquitto, "$101$", "$0$", 1), "secret", false},
		{"huge iteration count", strings.Replace(fromMosquitto, "$101$", "$999999999$", 1), "secret", false},
		{"bad base64", strings.Replace(fromMosquitto, "X8Ew", "X8E!", 1), "secret", false},
		{"short key", fromMosquitto[:len(fromMosquitto)-8] + "==", "secret", false},
		{"missing field", "$7$101$X8EwPjgzNDJItHpE", "secret", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := VerifyMosquittoHash(tc.hash, tc.password); got != tc.want {
				t.Errorf("VerifyMosquittoHash = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestVerifyMosquittoHashFromMosquittoPasswd checks hashes written by the
// installed mosquitto_passwd, in its default (PBKDF2) and legacy (SHA-512)
// forms.
func TestVerifyMosquittoHashFromMosquittoPasswd(t *testing.T) {
	bin := mqtttest.RequireTool(t, "mosquitto_passwd")
	for _, tc := range []struct {
		name   string
		args   []string
		prefix string
	}{
		{"default", nil, "$7$"},
		{"sha512", []string{"-H", "sha512"}, "$6$"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "passwd")
			const password = "Pa ss:wörd-42"
			args := append(append([]string{}, tc.args...), "-c", "-b", file, "dev-x", password)
			if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
				t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
			}
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			user, hash, ok := strings.Cut(strings.TrimSpace(string(data)), ":")
			if !ok || user != "dev-x" || !strings.HasPrefix(hash, tc.prefix) {
				t.Fatalf("unexpected password file %q", data)
			}
			if !VerifyMosquittoHash(hash, password) {
				t.Errorf("hash %q from mosquitto_passwd does not verify", hash)
			}
			if VerifyMosquittoHash(hash, password+"x") {
				t.Error("hash verifies a wrong password")
			}
		})
	}
}

func TestWriteMosquittoConfig(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "mosquitto")
	hashA, _ := MosquittoPasswordHash(secretA)
	hashB, _ := MosquittoPasswordHash(secretB)
	devices := map[string]string{devB: hashB, devA: hashA}
	server := MosquittoUser{Username: testServerUser, Password: testServerPass}
	if err := WriteMosquittoConfig(dir, "", "127.0.0.1:18830", server, devices); err != nil {
		t.Fatal(err)
	}

	read := func(name string, perm os.FileMode) string {
		t.Helper()
		path := filepath.Join(dir, name)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != perm {
			t.Errorf("%s has mode %v, want %v", name, fi.Mode().Perm(), perm)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	passwd := read(MosquittoPasswdFile, 0o600)
	var users []string
	sc := bufio.NewScanner(strings.NewReader(passwd))
	for sc.Scan() {
		user, hash, _ := strings.Cut(sc.Text(), ":")
		users = append(users, user)
		want := map[string]string{testServerUser: testServerPass, devA: secretA, devB: secretB}[user]
		if !VerifyMosquittoHash(hash, want) {
			t.Errorf("passwd: %s's hash does not verify", user)
		}
	}
	if strings.Join(users, ",") != testServerUser+",dev-a,dev-b" {
		t.Errorf("passwd users = %v, want the server then the devices in order", users)
	}

	acl := read(MosquittoACLFile, 0o600)
	for _, line := range []string{
		"pattern write fabgate/v1/dev/%u/status",
		"pattern write fabgate/v1/dev/%u/hb",
		"pattern write fabgate/v1/dev/%u/tap",
		"pattern write fabgate/v1/dev/%u/ack",
		"pattern write fabgate/v1/dev/%u/state",
		"pattern read fabgate/v1/dev/%u/cmd",
		"pattern read fabgate/v1/dev/%u/allowlist",
		"pattern read fabgate/v1/server/status",
		"user " + testServerUser + "\ntopic readwrite fabgate/v1/#",
	} {
		if !strings.Contains(acl, line+"\n") {
			t.Errorf("acl lacks %q:\n%s", line, acl)
		}
	}
	if strings.Contains(acl, "readwrite fabgate/v1/dev/%u") || strings.Contains(acl, "#\npattern") {
		t.Errorf("acl gives devices too much:\n%s", acl)
	}

	conf := read(MosquittoConfFile, 0o644)
	abs, _ := filepath.Abs(dir)
	for _, line := range []string{
		"listener 18830 127.0.0.1",
		"allow_anonymous false",
		"password_file " + filepath.Join(abs, "passwd"),
		"acl_file " + filepath.Join(abs, "acl"),
		"set_tcp_nodelay true",
		"persistence false",
	} {
		if !strings.Contains(conf, "\n"+line+"\n") {
			t.Errorf("fabgate.conf lacks %q:\n%s", line, conf)
		}
	}

	// Writing again replaces the files and leaves no temporary file behind.
	if err := WriteMosquittoConfig(dir, "lab/x", ":1883", server, nil); err != nil {
		t.Fatal(err)
	}
	if p := read(MosquittoPasswdFile, 0o600); strings.Contains(p, devA) {
		t.Errorf("passwd still lists the removed devices:\n%s", p)
	}
	if c := read(MosquittoConfFile, 0o644); !strings.Contains(c, "\nlistener 1883\n") {
		t.Errorf("listener on every interface not written as such:\n%s", c)
	}
	if a := read(MosquittoACLFile, 0o600); !strings.Contains(a, "pattern read lab/x/dev/%u/cmd\n") {
		t.Errorf("prefix not applied:\n%s", a)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("directory holds %d entries, want 3: %v", len(entries), entries)
	}
}

func TestWriteMosquittoConfigRefusesBadInput(t *testing.T) {
	good, _ := MosquittoPasswordHash("x")
	server := MosquittoUser{Username: testServerUser, Password: testServerPass}
	cases := []struct {
		name    string
		dir     string
		prefix  string
		listen  string
		server  MosquittoUser
		devices map[string]string
		want    string
	}{
		{"bad prefix", "", "fab/+/x", "127.0.0.1:1883", server, nil, "wildcard"},
		{"prefix with %", "", "fab%u", "127.0.0.1:1883", server, nil, "%"},
		{"no port", "", "", "127.0.0.1", server, nil, "listen"},
		{"port 0", "", "", "127.0.0.1:0", server, nil, "port"},
		{"no server user", "", "", "127.0.0.1:1883", MosquittoUser{Password: "x"}, nil, "server user"},
		{"server user with colon", "", "", "127.0.0.1:1883", MosquittoUser{Username: "a:b", Password: "x"}, nil, "must not contain"},
		{"no server password", "", "", "127.0.0.1:1883", MosquittoUser{Username: "srv"}, nil, "password"},
		{"bad device id", "", "", "127.0.0.1:1883", server, map[string]string{"Dev A": good}, "device id"},
		{"device named like the server", "", "", "127.0.0.1:1883", server, map[string]string{testServerUser: good}, "server user's name"},
		{"plaintext secret", "", "", "127.0.0.1:1883", server, map[string]string{devA: "secret"}, "hash"},
		{"space in directory", "with space", "", "127.0.0.1:1883", server, nil, "spaces"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), tc.dir)
			err := WriteMosquittoConfig(dir, tc.prefix, tc.listen, tc.server, tc.devices)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dir, MosquittoConfFile)); err == nil {
				t.Error("a configuration was written anyway")
			}
		})
	}
}
