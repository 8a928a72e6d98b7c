package wire

import (
	"reflect"
	"strings"
	"testing"
)

func TestNewTopics(t *testing.T) {
	cases := []struct {
		name, prefix, err string
	}{
		{name: "default", prefix: DefaultPrefix},
		{name: "one level", prefix: "lab"},
		{name: "three levels", prefix: "site-a/fabgate_v1/x.y"},
		{name: "100 bytes", prefix: strings.Repeat("p", 100)},
		{name: "empty", prefix: "", err: "must not be empty"},
		{name: "101 bytes", prefix: strings.Repeat("p", 101), err: "101 bytes, at most 100"},
		{name: "plus wildcard", prefix: "fabgate/+", err: "wildcards"},
		{name: "hash wildcard", prefix: "fabgate/#", err: "wildcards"},
		{name: "plus inside level", prefix: "fab+gate", err: "wildcards"},
		{name: "leading slash", prefix: "/fabgate/v1", err: "must not start or end with /"},
		{name: "trailing slash", prefix: "fabgate/v1/", err: "must not start or end with /"},
		{name: "only slash", prefix: "/", err: "must not start or end with /"},
		{name: "empty level", prefix: "fabgate//v1", err: "empty level"},
		{name: "dollar", prefix: "$SYS/fabgate", err: "reserved for the broker"},
		{name: "space", prefix: "fab gate", err: "visible ASCII"},
		{name: "percent", prefix: "fabgate/%u", err: "visible ASCII"},
		{name: "control", prefix: "fabgate\x00", err: "visible ASCII"},
		{name: "non-ascii", prefix: "fabgaté", err: "visible ASCII"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tp, err := NewTopics(tc.prefix)
			if tc.err == "" {
				if err != nil || tp.Prefix != tc.prefix {
					t.Fatalf("NewTopics(%q) = %+v, %v", tc.prefix, tp, err)
				}
				return
			}
			wantInvalid(t, err, tc.err)
		})
	}
}

func TestTopicsBuild(t *testing.T) {
	custom, err := NewTopics("lab-a/fg")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, got, want string
	}{
		{"device tap", Topics{Prefix: DefaultPrefix}.Device("laser-1", KindTap), "fabgate/v1/dev/laser-1/tap"},
		{"device hb", Topics{}.Device("laser-1", KindHeartbeat), "fabgate/v1/dev/laser-1/hb"},
		{"zero value is default", Topics{}.Device("p3", KindCmd), "fabgate/v1/dev/p3/cmd"},
		{"server status", Topics{}.ServerStatus(), "fabgate/v1/server/status"},
		{"filter", Topics{}.DeviceFilter(KindAck), "fabgate/v1/dev/+/ack"},
		{"custom device", custom.Device("cnc", KindAllowlist), "lab-a/fg/dev/cnc/allowlist"},
		{"custom server status", custom.ServerStatus(), "lab-a/fg/server/status"},
		{"custom filter", custom.DeviceFilter(KindState), "lab-a/fg/dev/+/state"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Fatalf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
}

func TestTopicsParse(t *testing.T) {
	custom := Topics{Prefix: "lab-a/fg"}
	id32 := strings.Repeat("a", 32)
	cases := []struct {
		name   string
		topics Topics
		topic  string
		dev    string
		kind   Kind
	}{
		{name: "status", topic: "fabgate/v1/dev/laser-1/status", dev: "laser-1", kind: KindStatus},
		{name: "hb", topic: "fabgate/v1/dev/laser-1/hb", dev: "laser-1", kind: KindHeartbeat},
		{name: "tap", topic: "fabgate/v1/dev/laser-1/tap", dev: "laser-1", kind: KindTap},
		{name: "cmd", topic: "fabgate/v1/dev/laser-1/cmd", dev: "laser-1", kind: KindCmd},
		{name: "ack", topic: "fabgate/v1/dev/laser-1/ack", dev: "laser-1", kind: KindAck},
		{name: "state", topic: "fabgate/v1/dev/laser-1/state", dev: "laser-1", kind: KindState},
		{name: "allowlist", topic: "fabgate/v1/dev/laser-1/allowlist", dev: "laser-1", kind: KindAllowlist},
		{name: "32 char id", topic: "fabgate/v1/dev/" + id32 + "/tap", dev: id32, kind: KindTap},
		{name: "one char id", topic: "fabgate/v1/dev/7/tap", dev: "7", kind: KindTap},
		{name: "custom prefix", topics: custom, topic: "lab-a/fg/dev/cnc/ack", dev: "cnc", kind: KindAck},
		{name: "33 char id", topic: "fabgate/v1/dev/" + id32 + "b/tap"},
		{name: "upper case id", topic: "fabgate/v1/dev/A/tap"},
		{name: "id with slash is an extra level", topic: "fabgate/v1/dev/a/b/tap"},
		{name: "id with underscore", topic: "fabgate/v1/dev/a_b/tap"},
		{name: "empty id", topic: "fabgate/v1/dev//tap"},
		{name: "plus wildcard id", topic: "fabgate/v1/dev/+/tap"},
		{name: "hash wildcard", topic: "fabgate/v1/dev/#"},
		{name: "wildcard kind", topic: "fabgate/v1/dev/d1/+"},
		{name: "unknown kind", topic: "fabgate/v1/dev/d1/foo"},
		{name: "upper case kind", topic: "fabgate/v1/dev/d1/TAP"},
		{name: "long kind name", topic: "fabgate/v1/dev/d1/heartbeat"},
		{name: "empty kind", topic: "fabgate/v1/dev/d1/"},
		{name: "no kind", topic: "fabgate/v1/dev/d1"},
		{name: "extra level", topic: "fabgate/v1/dev/d1/tap/x"},
		{name: "trailing slash", topic: "fabgate/v1/dev/d1/tap/"},
		{name: "other prefix", topic: "other/v1/dev/d1/tap"},
		{name: "custom topic with default prefix", topic: "lab-a/fg/dev/cnc/ack"},
		{name: "default topic with custom prefix", topics: custom, topic: "fabgate/v1/dev/cnc/ack"},
		{name: "prefix is a prefix of a level", topic: "fabgate/v1x/dev/d1/tap"},
		{name: "leading slash", topic: "/fabgate/v1/dev/d1/tap"},
		{name: "server status", topic: "fabgate/v1/server/status"},
		{name: "prefix only", topic: "fabgate/v1"},
		{name: "empty", topic: ""},
		{name: "not dev", topic: "fabgate/v1/devs/d1/tap"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dev, kind, ok := tc.topics.Parse(tc.topic)
			wantOK := tc.dev != ""
			if ok != wantOK || dev != tc.dev || kind != tc.kind {
				t.Fatalf("Parse(%q) = %q, %q, %v; want %q, %q, %v", tc.topic, dev, kind, ok, tc.dev, tc.kind, wantOK)
			}
			if ok && tc.topics.Device(dev, kind) != tc.topic {
				t.Fatalf("Device(%q, %q) = %q, want %q", dev, kind, tc.topics.Device(dev, kind), tc.topic)
			}
		})
	}
}

func TestKinds(t *testing.T) {
	cases := []struct {
		kind     Kind
		valid    bool
		device   bool
		qos      byte
		retained bool
	}{
		{KindStatus, true, true, 1, true},
		{KindHeartbeat, true, true, 0, false},
		{KindTap, true, true, 1, false},
		{KindCmd, true, false, 1, false},
		{KindAck, true, true, 1, false},
		{KindState, true, true, 1, true},
		{KindAllowlist, true, false, 1, true},
		{"heartbeat", false, false, 1, false},
		{"", false, false, 1, false},
	}
	for _, tc := range cases {
		t.Run(string(tc.kind), func(t *testing.T) {
			if tc.kind.Valid() != tc.valid || tc.kind.FromDevice() != tc.device || tc.kind.QoS() != tc.qos || tc.kind.Retained() != tc.retained {
				t.Fatalf("%q: valid %v device %v qos %d retained %v", tc.kind, tc.kind.Valid(), tc.kind.FromDevice(), tc.kind.QoS(), tc.kind.Retained())
			}
		})
	}
	if len(Kinds()) != 7 {
		t.Fatalf("Kinds() = %v", Kinds())
	}
	for _, k := range Kinds() {
		if !k.Valid() {
			t.Fatalf("Kinds() lists invalid %q", k)
		}
	}
}

func TestACL(t *testing.T) {
	tp := Topics{}
	cases := []struct {
		name, dev, topic string
		pub, sub         bool
	}{
		{name: "own status", dev: "d1", topic: "fabgate/v1/dev/d1/status", pub: true},
		{name: "own hb", dev: "d1", topic: "fabgate/v1/dev/d1/hb", pub: true},
		{name: "own tap", dev: "d1", topic: "fabgate/v1/dev/d1/tap", pub: true},
		{name: "own ack", dev: "d1", topic: "fabgate/v1/dev/d1/ack", pub: true},
		{name: "own state", dev: "d1", topic: "fabgate/v1/dev/d1/state", pub: true},
		{name: "own cmd", dev: "d1", topic: "fabgate/v1/dev/d1/cmd", sub: true},
		{name: "own allowlist", dev: "d1", topic: "fabgate/v1/dev/d1/allowlist", sub: true},
		{name: "server status", dev: "d1", topic: "fabgate/v1/server/status", sub: true},
		{name: "other's tap", dev: "d1", topic: "fabgate/v1/dev/d2/tap"},
		{name: "other's cmd", dev: "d1", topic: "fabgate/v1/dev/d2/cmd"},
		{name: "prefix of own id", dev: "d1", topic: "fabgate/v1/dev/d10/tap"},
		{name: "wildcard cmd", dev: "d1", topic: "fabgate/v1/dev/+/cmd"},
		{name: "hash", dev: "d1", topic: "fabgate/v1/#"},
		{name: "own hash", dev: "d1", topic: "fabgate/v1/dev/d1/#"},
		{name: "shared subscription", dev: "d1", topic: "$share/g/fabgate/v1/dev/d1/cmd"},
		{name: "invalid username", dev: "D1", topic: "fabgate/v1/dev/D1/cmd"},
		{name: "wildcard username", dev: "+", topic: "fabgate/v1/dev/+/cmd"},
		{name: "empty username", dev: "", topic: "fabgate/v1/server/status"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tp.MayPublish(tc.dev, tc.topic); got != tc.pub {
				t.Fatalf("MayPublish(%q, %q) = %v", tc.dev, tc.topic, got)
			}
			if got := tp.MaySubscribe(tc.dev, tc.topic); got != tc.sub {
				t.Fatalf("MaySubscribe(%q, %q) = %v", tc.dev, tc.topic, got)
			}
		})
	}
}

func TestMosquittoPatterns(t *testing.T) {
	want := []string{
		"pattern write lab/dev/%u/status",
		"pattern write lab/dev/%u/hb",
		"pattern write lab/dev/%u/tap",
		"pattern write lab/dev/%u/ack",
		"pattern write lab/dev/%u/state",
		"pattern read lab/dev/%u/cmd",
		"pattern read lab/dev/%u/allowlist",
		"pattern read lab/server/status",
	}
	if got := (Topics{Prefix: "lab"}).MosquittoPatterns(); !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
