package mqtt

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Limits of the embedded broker's listener, against clients that connect
// and do not log in, or send more than the contract ever needs.
const (
	// DefaultConnectTimeout is how long a new connection has to send its
	// whole CONNECT packet.
	DefaultConnectTimeout = 10 * time.Second
	// DefaultMaxConnections bounds the connections open at once, logged in
	// or not (DESIGN §10's lab has 200 devices).
	DefaultMaxConnections = 1024
	// DefaultMaxConnectionsPerAddr bounds the connections open at once from
	// one IP address. A gateway bridge holds one connection per device it
	// serves, all from its own address.
	DefaultMaxConnectionsPerAddr = 256
	// DefaultMaxPending bounds the connections that have not logged in yet,
	// leaving the rest of DefaultMaxConnections to clients that have.
	DefaultMaxPending = 256
	// DefaultMaxPendingPerAddr bounds one address's connections that have
	// not logged in yet: a gateway's devices log in within milliseconds, and
	// one refused retries within 5 s.
	DefaultMaxPendingPerAddr = 32
	// maxConnectSize bounds the CONNECT packet (its remaining length): a
	// client id, a device id, a secret and a small will fit many times over.
	maxConnectSize = 4 << 10
	// deviceOverhead is the room a device's packet may take beyond its
	// payload: fixed header, topic (prefix + device id + kind), packet id,
	// MQTT 5 properties.
	deviceOverhead = 512
)

// Errors that end a connection at the listener, before mochi reads a byte
// too many.
var (
	errNotConnect     = errors.New("first packet is not a CONNECT")
	errPacketTooLarge = errors.New("packet too large")
	errMalformedSize  = errors.New("malformed remaining length")
)

// guardListener wraps the broker's TCP listener: it refuses connections
// beyond the caps (closing them before anything is read), gives each new
// connection a deadline for its CONNECT, and returns connections that
// check the size of every packet before mochi reads it.
type guardListener struct {
	net.Listener
	timeout time.Duration
	max     int
	maxAddr int
	onDrop  func(remote, user, reason string) // counts and logs a closed connection

	maxPending, maxPendingAddr int

	mu            sync.Mutex
	total         int
	byAddr        map[string]int
	pending       int            // connections not logged in yet
	pendingByAddr map[string]int // the same, by address
}

// Accept returns the next connection within the caps. Connections beyond
// them are closed here and never reach mochi, whose accept loop ends at the
// first error Accept returns.
//
// An accept error other than a closed listener (out of file descriptors,
// say, under a flood of connections) is waited out: mochi would stop
// accepting for good at the first one.
func (l *guardListener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if errors.Is(err, net.ErrClosed) {
			return nil, err
		}
		if err != nil {
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.onDrop("", "", "accept: "+err.Error())
			time.Sleep(delay)
			continue
		}
		delay = 0
		addr := remoteIP(c)
		if reason := l.admit(addr); reason != "" {
			_ = c.Close()
			l.onDrop(c.RemoteAddr().String(), "", reason)
			continue
		}
		// mochi replaces this deadline with the keepalive's once the
		// CONNECT is read.
		_ = c.SetDeadline(time.Now().Add(l.timeout))
		gc := &guardConn{Conn: c, l: l, addr: addr, limit: maxConnectSize, done: make(chan struct{})}
		gc.tls, _ = c.(*tls.Conn)
		return gc, nil
	}
}

// admit counts a new connection from addr, or says why it is refused.
func (l *guardListener) admit(addr string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.total >= l.max:
		return fmt.Sprintf("too many connections (%d)", l.max)
	case l.byAddr[addr] >= l.maxAddr:
		return fmt.Sprintf("too many connections from this address (%d)", l.maxAddr)
	case l.pending >= l.maxPending:
		return fmt.Sprintf("too many connections not logged in (%d)", l.maxPending)
	case l.pendingByAddr[addr] >= l.maxPendingAddr:
		return fmt.Sprintf("too many connections not logged in from this address (%d)", l.maxPendingAddr)
	}
	l.total++
	l.byAddr[addr]++
	l.pending++
	l.pendingByAddr[addr]++
	return ""
}

func (l *guardListener) unpend(addr string) {
	l.pending--
	if l.pendingByAddr[addr]--; l.pendingByAddr[addr] <= 0 {
		delete(l.pendingByAddr, addr)
	}
}

// remoteIP is the address connections are counted by: the IP without the
// port, and for IPv6 its /64 (one host commonly holds a whole /64, so
// counting single addresses would not bound it).
func remoteIP(c net.Conn) string {
	s := c.RemoteAddr().String()
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		return s
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.To4() != nil {
		return host
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// guardConn is one client's connection. It follows the MQTT framing of
// what it reads and ends the connection (Read returns an error) at the
// fixed header of a packet over its limit, so mochi never allocates the
// packet: before login the first packet must be a CONNECT of at most
// maxConnectSize; after login the hook sets the user's limit (a device's
// is its payload limit plus deviceOverhead).
//
// It also carries what the hook learns at login, for the checks that come
// after mochi has registered the client.
type guardConn struct {
	net.Conn
	l     *guardListener
	addr  string
	limit uint32    // atomic: the largest remaining length accepted now
	tls   *tls.Conn // Conn, when the listener speaks TLS

	// Read is only called by the client's own goroutine (mochi reads a
	// connection from one goroutine), so the framing state needs no lock.
	handshook bool   // the TLS handshake was tried
	started   bool   // the first packet's type byte has been seen
	inLength  bool   // reading the remaining length
	lenShift  uint   // bits of remaining length decoded so far
	length    uint32 // remaining length being decoded
	ptype     byte   // the packet type being read
	body      uint32 // bytes of the current packet's body still to come
	pending   error  // returned by the next Read
	closeOnce sync.Once
	loginOnce sync.Once
	logged    atomic.Bool // loggedIn ran: the connection is no longer pending

	// Set by the hook when the client logs in.
	user atomic.Pointer[string] // the username
	gen  atomic.Uint64          // a device's revocation generation at login

	// unlockLogin lets the next login of the client id go on; set by the
	// hook at login, called once the client is registered or its
	// connection ends. Only the connection's own goroutine (which runs
	// mochi's hooks for it) touches it.
	unlockLogin func()
	// done is closed when mochi is done with the connection: its client
	// is cleaned up (for a clean session, removed from the broker).
	done chan struct{}
}

// releaseLogin lets the next login of the connection's client id go on,
// once.
func (c *guardConn) releaseLogin() {
	if c.unlockLogin != nil {
		c.unlockLogin()
		c.unlockLogin = nil
	}
}

// ended is called when mochi is done with the connection.
func (c *guardConn) ended() {
	c.releaseLogin()
	close(c.done)
}

// setLimit sets the largest packet (remaining length) the client may send
// from now on.
func (c *guardConn) setLimit(n uint32) { atomic.StoreUint32(&c.limit, n) }

// Read reads from the connection and checks each packet's fixed header in
// what it read. A packet over the limit ends the connection: the bytes
// before its header are returned first, then the error.
func (c *guardConn) Read(p []byte) (int, error) {
	if c.pending != nil {
		return 0, c.pending
	}
	if c.tls != nil && !c.handshook {
		c.handshook = true
		if err := c.tls.Handshake(); err != nil {
			c.pending = err
			// A connection closed before its first byte (a port check) is
			// not worth a line; a client speaking plain MQTT, or refusing
			// the certificate, is.
			if !errors.Is(err, io.EOF) {
				c.l.onDrop(c.RemoteAddr().String(), "", "tls handshake: "+err.Error())
			}
			return 0, err
		}
	}
	n, err := c.Conn.Read(p)
	for i := 0; i < n; {
		if c.body > 0 {
			skip := min(uint32(n-i), c.body)
			c.body -= skip
			i += int(skip)
			continue
		}
		b := p[i]
		if !c.inLength {
			c.ptype = b >> 4
			if !c.started && c.ptype != 1 {
				return c.cut(i, errNotConnect)
			}
			c.started = true
			c.inLength, c.lenShift, c.length = true, 0, 0
			i++
			continue
		}
		c.length |= uint32(b&0x7f) << c.lenShift
		c.lenShift += 7
		i++
		if b&0x80 != 0 {
			if c.lenShift >= 28 {
				return c.cut(i, errMalformedSize)
			}
			continue
		}
		c.inLength = false
		if limit := atomic.LoadUint32(&c.limit); c.length > limit {
			return c.cut(i, fmt.Errorf("%w: %d bytes over the limit of %d", errPacketTooLarge, c.length, limit))
		}
		c.body = c.length
	}
	return n, err
}

// cut makes this Read return what came before the packet at offset i (its
// header excluded) and every later Read return err, and logs why.
func (c *guardConn) cut(i int, err error) (int, error) {
	c.pending = err
	var user string
	if u := c.user.Load(); u != nil {
		user = clip(*u)
	}
	c.l.onDrop(c.RemoteAddr().String(), user, err.Error())
	// Back up to the start of the offending packet's fixed header: mochi
	// must not see a part of it.
	start := i - 1 - int(c.lenShift/7)
	if errors.Is(err, errNotConnect) {
		start = i
	}
	if start > 0 {
		return start, nil
	}
	return 0, err
}

// loggedIn frees the connection's place among those not logged in, once.
func (c *guardConn) loggedIn() {
	c.loginOnce.Do(func() {
		c.l.mu.Lock()
		defer c.l.mu.Unlock()
		if c.logged.CompareAndSwap(false, true) {
			c.l.unpend(c.addr)
		}
	})
}

// Close closes the connection and frees its places in the caps.
func (c *guardConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		c.l.mu.Lock()
		defer c.l.mu.Unlock()
		c.l.total--
		if c.l.byAddr[c.addr]--; c.l.byAddr[c.addr] <= 0 {
			delete(c.l.byAddr, c.addr)
		}
		// Under the listener's lock, so a login and a close racing count
		// the pending place once.
		if c.logged.CompareAndSwap(false, true) {
			c.l.unpend(c.addr)
		}
	})
	return err
}

// maxLogged is how much of a string a client sent (username, client id,
// topic) is logged.
const maxLogged = 64

// clip cuts s to maxLogged bytes for the log, saying how long it was.
func clip(s string) string {
	if len(s) <= maxLogged {
		return s
	}
	return strings.ToValidUTF8(s[:maxLogged], "") + fmt.Sprintf("…(%d bytes)", len(s))
}

// Refusal log lines allowed per refusalLogWindow; the lines beyond are
// counted and the count is logged with the next line allowed.
const (
	refusalLogBurst  = 20
	refusalLogWindow = time.Minute
)

// logLimiter allows refusalLogBurst lines per refusalLogWindow.
type logLimiter struct {
	now func() time.Time

	mu      sync.Mutex
	start   time.Time // of the current window
	n       int       // lines allowed in it
	skipped int       // lines refused since the last one allowed
}

// allow reports whether a line may be logged now and, if so, how many were
// refused before it.
func (l *logLimiter) allow() (ok bool, skipped int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if now.Sub(l.start) >= refusalLogWindow || now.Before(l.start) {
		l.start, l.n = now, 0
	}
	if l.n >= refusalLogBurst {
		l.skipped++
		return false, 0
	}
	l.n++
	skipped, l.skipped = l.skipped, 0
	return true, skipped
}
