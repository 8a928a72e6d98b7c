package wire

import (
	"strings"

	"github.com/fabgate/fabgate/internal/fablab"
)

// MaxPrefixLen bounds a topic prefix, in bytes.
const MaxPrefixLen = 100

// Topics builds and parses the topics of one lab. The zero value uses
// DefaultPrefix; other prefixes come from NewTopics, which validates them.
type Topics struct {
	// Prefix is the first levels of every topic, e.g. "fabgate/v1".
	Prefix string
}

// NewTopics returns the topics under prefix. The prefix must be 1–100 bytes
// of visible ASCII (no spaces or control characters), with no MQTT wildcard
// (+ #), no % (Mosquitto ACL patterns substitute it), no leading $ (reserved
// for broker topics), no leading or trailing '/' and no empty level.
// It fails with EINVALID.
func NewTopics(prefix string) (Topics, error) {
	if err := validPrefix(prefix); err != nil {
		return Topics{}, err
	}
	return Topics{Prefix: prefix}, nil
}

func validPrefix(p string) error {
	switch {
	case p == "":
		return fablab.Errorf(fablab.EINVALID, "topic prefix must not be empty (default %q)", DefaultPrefix)
	case len(p) > MaxPrefixLen:
		return fablab.Errorf(fablab.EINVALID, "topic prefix is %d bytes, at most %d allowed", len(p), MaxPrefixLen)
	case strings.ContainsAny(p, "+#"):
		return fablab.Errorf(fablab.EINVALID, "topic prefix %q must not contain the MQTT wildcards + or #", p)
	case strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/"):
		return fablab.Errorf(fablab.EINVALID, "topic prefix %q must not start or end with /", p)
	case strings.Contains(p, "//"):
		return fablab.Errorf(fablab.EINVALID, "topic prefix %q must not have an empty level (//)", p)
	case p[0] == '$':
		return fablab.Errorf(fablab.EINVALID, "topic prefix %q must not start with $ (reserved for the broker)", p)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f || c == '%' {
			return fablab.Errorf(fablab.EINVALID, "topic prefix %q may only contain visible ASCII other than %%, + and #", p)
		}
	}
	return nil
}

func (t Topics) prefix() string {
	if t.Prefix == "" {
		return DefaultPrefix
	}
	return t.Prefix
}

// Device returns the topic {p}/dev/{dev}/{k}. dev must be a valid device id
// (fablab.ValidDeviceID) and k a valid kind; Device does not check.
func (t Topics) Device(dev string, k Kind) string {
	return t.prefix() + "/dev/" + dev + "/" + string(k)
}

// ServerStatus returns {p}/server/status, the server's retained birth and LWT.
func (t Topics) ServerStatus() string { return t.prefix() + "/server/status" }

// DeviceFilter returns the subscription filter {p}/dev/+/{k} that matches
// kind k of every device.
func (t Topics) DeviceFilter(k Kind) string { return t.prefix() + "/dev/+/" + string(k) }

// Parse splits a device topic into its device id and kind. ok is true only
// for {p}/dev/{dev}/{k} with a valid device id, a known kind and no other
// level.
func (t Topics) Parse(topic string) (dev string, k Kind, ok bool) {
	rest, found := strings.CutPrefix(topic, t.prefix()+"/dev/")
	if !found {
		return "", "", false
	}
	dev, kind, found := strings.Cut(rest, "/")
	if !found || !fablab.ValidDeviceID(dev) || !Kind(kind).Valid() {
		return "", "", false
	}
	return dev, Kind(kind), true
}

// MayPublish reports whether device dev (its MQTT username) may publish to
// topic: only its own status, hb, tap, ack and state.
func (t Topics) MayPublish(dev, topic string) bool {
	d, k, ok := t.Parse(topic)
	return ok && d == dev && k.FromDevice()
}

// MaySubscribe reports whether device dev may subscribe to filter: only its
// own cmd and allowlist and the server status, each spelled out (no
// wildcards).
func (t Topics) MaySubscribe(dev, filter string) bool {
	if !fablab.ValidDeviceID(dev) {
		return false
	}
	return filter == t.Device(dev, KindCmd) || filter == t.Device(dev, KindAllowlist) || filter == t.ServerStatus()
}

// MosquittoPatterns returns the Mosquitto ACL "pattern" lines that give every
// device (username = device id, substituted for %u) exactly the rights of
// MayPublish and MaySubscribe. The server's own user needs its own "user"
// section.
func (t Topics) MosquittoPatterns() []string {
	p := t.prefix()
	var lines []string
	for _, k := range Kinds() {
		if k.FromDevice() {
			lines = append(lines, "pattern write "+p+"/dev/%u/"+string(k))
		}
	}
	return append(lines,
		"pattern read "+p+"/dev/%u/"+string(KindCmd),
		"pattern read "+p+"/dev/%u/"+string(KindAllowlist),
		"pattern read "+t.ServerStatus(),
	)
}
