package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/fabgate/fabgate/internal/bolt"
)

// backupCmd writes a backup of the data file to --out: a stopped server's
// (--data), or a running server's snapshot, downloaded through its API
// (--url, as an admin). Either way the copy is written beside the target,
// checked, and renamed into place once complete, so --out is never a partial
// or unchecked file. The copy holds the badge key, the server's MQTT
// password and every password hash, so it is readable by its owner only
// (0600), whatever the umask and whatever file it replaces.
func backupCmd(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := newFlags("backup", "backup (--data DIR | --url URL --email E --password-stdin) --out FILE",
		"Writes a consistent copy of the data file to FILE (mode 0600), checked before it is\n"+
			"renamed into place: with --data, of a stopped server's data directory; with --url, of\n"+
			"a running server's, downloaded from POST /api/v1/backup as the admin account --email,\n"+
			"whose password is the first line of standard input.", stdout)
	data := fs.String("data", "data", "data directory of a stopped server")
	out := fs.String("out", "", "backup file to write")
	base := fs.String("url", "", "a running server's address, such as http://127.0.0.1:8080, instead of --data")
	email := fs.String("email", "", "with --url: the admin account to log in as")
	pwStdin := fs.Bool("password-stdin", false, "with --url: read the account's password from the first line of standard input")
	if err := fs.parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *out == "" {
		return errors.New("backup: --out FILE is required")
	}
	var (
		n   int64
		err error
	)
	if *base == "" {
		if set["email"] || set["password-stdin"] {
			return errors.New("backup: --email and --password-stdin go with --url")
		}
		n, err = backupStopped(*data, *out)
	} else {
		if set["data"] {
			return errors.New("backup: give --data (a stopped server) or --url (a running one), not both")
		}
		if *email == "" || !*pwStdin {
			return errors.New("backup: --url needs --email and --password-stdin (an admin account)")
		}
		var password string
		if password, err = readPasswordLine(stdin); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		n, err = backupOnline(ctx, *base, *email, password, *out)
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %d bytes to %s\n", n, *out)
	return nil
}

// readPasswordLine reads the first line of r, without its line ending.
func readPasswordLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// backupStopped copies the data file of a stopped server to out.
func backupStopped(data, out string) (int64, error) {
	store, err := openStopped(data, true)
	if err != nil {
		return 0, err
	}
	defer store.Close()
	return writeBackup(out, store.WriteTo)
}

// backupOnline logs in to the server at base as an admin, saves the
// snapshot POST /api/v1/backup streams to out, and logs out.
func backupOnline(ctx context.Context, base, email, password, out string) (int64, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return 0, fmt.Errorf("--url %q must be the server's address, such as http://127.0.0.1:8080", base)
	}
	api := strings.TrimSuffix(base, "/") + "/api/v1"
	body, _ := json.Marshal(map[string]string{"email": email, "password": password})
	resp, err := apiCall(ctx, "POST", api+"/auth/login", "", bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("log in: %w", err)
	}
	var login struct {
		Token string `json:"token"`
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&login)
	resp.Body.Close()
	if err != nil || login.Token == "" {
		return 0, fmt.Errorf("log in: the server's answer has no token (%v)", err)
	}
	defer func() {
		// The login ends here rather than at its expiry; a failure to log
		// out leaves a token that expires by itself, so it is not an error.
		if resp, err := apiCall(context.WithoutCancel(ctx), "POST", api+"/auth/logout", login.Token, nil); err == nil {
			resp.Body.Close()
		}
	}()
	resp, err = apiCall(ctx, "POST", api+"/backup", login.Token, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.ContentLength < 0 {
		return 0, errors.New("POST /api/v1/backup: the answer has no Content-Length, so a short download could not be told from a whole one")
	}
	return writeBackup(out, func(w io.Writer) (int64, error) {
		// A body shorter than its Content-Length fails here (unexpected EOF).
		n, err := io.Copy(w, resp.Body)
		if err == nil && n != resp.ContentLength {
			err = fmt.Errorf("downloaded %d bytes of %d", n, resp.ContentLength)
		}
		return n, err
	})
}

// apiCall sends a request to the FabGate API and returns its answer when it
// succeeded (2xx); otherwise the error carries the problem's detail.
func apiCall(ctx context.Context, method, url, token string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	var problem struct {
		Code   string `json:"code"`
		Detail string `json:"detail"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&problem)
	path := req.URL.Path
	if problem.Detail == "" {
		return nil, fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return nil, fmt.Errorf("%s %s: %s: %s (%s)", method, path, resp.Status, problem.Detail, problem.Code)
}

// writeBackup writes a backup to out through write: into a file of its own
// beside out (mode 0600 before the first byte), synced, checked with
// bolt.CheckFile, then renamed over out.
func writeBackup(out string, write func(io.Writer) (int64, error)) (int64, error) {
	tmp, err := os.CreateTemp(filepath.Dir(out), ".fabgate-backup-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	err = tmp.Chmod(0o600)
	var n int64
	if err == nil {
		n, err = write(tmp)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, err
	}
	if err := bolt.CheckFile(tmp.Name()); err != nil {
		return n, fmt.Errorf("the copy does not pass the check, %s is left as it was: %w", out, err)
	}
	return n, os.Rename(tmp.Name(), out)
}
